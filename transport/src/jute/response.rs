//! [`Response`]: the body of a reply frame, typed by shape.
//!
//! A reply does not say which op it answers: the client keeps xid → opcode for its
//! outstanding requests (special xids map through [`super::op_for_special_xid`]) and
//! calls [`Response::decode`] with that opcode. Rules (ZooKeeper's `ClientCnxn`):
//! - xid -1 (notification) carries a [`WatcherEvent`], whatever `op` says;
//! - a reply with `err != 0` has no body: [`Response::Empty`] (the header holds the
//!   error); bytes after the header are ignored;
//! - otherwise the op picks the record (table in [`Response::decode`]).
//!
//! The server encodes with [`Response::encode`] / [`Response::encode_frame`], giving
//! the header. Several ops share a shape (create2/createTTL/createContainer all reply
//! [`Create2Response`]; exists/setData/setACL/check a [`StatResponse`]).

use super::codes::{OpCode, xid};
use super::frame::write_frame;
use super::header::ReplyHeader;
use super::multi::MultiResponse;
use super::records::*;
use super::wire::{DecodeError, Reader, Wire};

/// A reply body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Response {
    /// No body: an error reply, or an op that returns nothing (delete, ping, auth,
    /// setWatches, setWatches2, checkWatches, removeWatches, closeSession).
    Empty,
    /// A watch event (reply xid -1).
    Notification(WatcherEvent),
    /// create.
    Create(CreateResponse),
    /// create2, createTTL, createContainer.
    Create2(Create2Response),
    /// exists, setData, setACL, check.
    Stat(StatResponse),
    /// getData, reconfig.
    GetData(GetDataResponse),
    GetAcl(GetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    GetEphemerals(GetEphemeralsResponse),
    Sync(SyncResponse),
    /// multi, multiRead.
    Multi(MultiResponse),
    /// addWatch: ZooKeeper sends `ErrorResponse { err: 0 }` as the body.
    AddWatch(ErrorResponse),
    WhoAmI(WhoAmIResponse),
    /// sasl.
    Sasl(SetSaslResponse),
}

impl Response {
    /// addWatch's success body, as ZooKeeper sends it.
    pub fn add_watch_ok() -> Self {
        Response::AddWatch(ErrorResponse { err: 0 })
    }

    /// Appends the body only.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Response::Empty => {}
            Response::Notification(r) => r.encode(out),
            Response::Create(r) => r.encode(out),
            Response::Create2(r) => r.encode(out),
            Response::Stat(r) => r.encode(out),
            Response::GetData(r) => r.encode(out),
            Response::GetAcl(r) => r.encode(out),
            Response::GetChildren(r) => r.encode(out),
            Response::GetChildren2(r) => r.encode(out),
            Response::GetAllChildrenNumber(r) => r.encode(out),
            Response::GetEphemerals(r) => r.encode(out),
            Response::Sync(r) => r.encode(out),
            Response::Multi(r) => r.encode(out),
            Response::AddWatch(r) => r.encode(out),
            Response::WhoAmI(r) => r.encode(out),
            Response::Sasl(r) => r.encode(out),
        }
    }

    /// Appends `header` and the body (no length prefix).
    pub fn encode(&self, header: &ReplyHeader, out: &mut Vec<u8>) {
        debug_assert!(
            header.err == 0 || matches!(self, Response::Empty | Response::Notification(_)),
            "ZooKeeper sends no body with an error reply; clients would not read it"
        );
        header.encode(out);
        self.encode_body(out);
    }

    /// Appends the whole frame: length prefix, header, body. Returns the body length.
    pub fn encode_frame(&self, header: &ReplyHeader, out: &mut Vec<u8>) -> usize {
        write_frame(out, |b| self.encode(header, b))
    }

    /// Decodes the body that follows `header`, for a reply to an `op` request.
    ///
    /// | op                                              | variant                  |
    /// |-------------------------------------------------|--------------------------|
    /// | (xid -1) / notification                         | `Notification`           |
    /// | create                                          | `Create`                 |
    /// | create2, createTTL, createContainer             | `Create2`                |
    /// | exists, setData, setACL, check                  | `Stat`                   |
    /// | getData, reconfig                               | `GetData`                |
    /// | getACL / getChildren / getChildren2 / sync ...  | same-named variant       |
    /// | multi, multiRead                                | `Multi`                  |
    /// | delete, ping, auth, setWatches(2), checkWatches, removeWatches, closeSession, and server-internal ops | `Empty` |
    pub fn decode(op: OpCode, header: &ReplyHeader, body: &[u8]) -> Result<Self, DecodeError> {
        let r = &mut Reader::new(body);
        if header.xid == xid::NOTIFICATION || op == OpCode::Notification {
            return Ok(Response::Notification(Wire::decode(r)?));
        }
        if header.err != 0 {
            return Ok(Response::Empty);
        }
        Ok(match op {
            OpCode::Create => Response::Create(Wire::decode(r)?),
            OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
                Response::Create2(Wire::decode(r)?)
            }
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl | OpCode::Check => {
                Response::Stat(Wire::decode(r)?)
            }
            OpCode::GetData | OpCode::Reconfig => Response::GetData(Wire::decode(r)?),
            OpCode::GetAcl => Response::GetAcl(Wire::decode(r)?),
            OpCode::GetChildren => Response::GetChildren(Wire::decode(r)?),
            OpCode::GetChildren2 => Response::GetChildren2(Wire::decode(r)?),
            OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber(Wire::decode(r)?),
            OpCode::GetEphemerals => Response::GetEphemerals(Wire::decode(r)?),
            OpCode::Sync => Response::Sync(Wire::decode(r)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(Wire::decode(r)?),
            OpCode::AddWatch => Response::AddWatch(Wire::decode(r)?),
            OpCode::WhoAmI => Response::WhoAmI(Wire::decode(r)?),
            OpCode::Sasl => Response::Sasl(Wire::decode(r)?),
            OpCode::Delete
            | OpCode::Ping
            | OpCode::Auth
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::CheckWatches
            | OpCode::RemoveWatches
            | OpCode::CloseSession
            | OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => Response::Empty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::codes::{ErrorCode, EventType};
    use crate::jute::data::Stat;

    #[test]
    fn error_replies_have_no_body() {
        let h = ReplyHeader::new(3, 9, ErrorCode::NoNode);
        let mut frame = Vec::new();
        assert_eq!(Response::Empty.encode_frame(&h, &mut frame), 16);
        assert_eq!(
            Response::decode(OpCode::Exists, &h, &frame[20..]),
            Ok(Response::Empty)
        );
    }

    #[test]
    fn notification_ignores_the_op() {
        let ev = WatcherEvent::node(EventType::NodeDataChanged, "/a");
        let mut body = Vec::new();
        Response::Notification(ev.clone()).encode(&ReplyHeader::notification(), &mut body);
        let (h, rest) = ReplyHeader::split(&body).unwrap();
        assert_eq!(
            Response::decode(OpCode::GetData, &h, rest),
            Ok(Response::Notification(ev))
        );
    }

    #[test]
    fn shared_shapes_decode_for_each_op() {
        let rsp = Response::Create2(Create2Response {
            path: "/c".into(),
            stat: Stat::default(),
        });
        let mut body = Vec::new();
        rsp.encode_body(&mut body);
        let h = ReplyHeader::default();
        for op in [OpCode::Create2, OpCode::CreateTtl, OpCode::CreateContainer] {
            assert_eq!(Response::decode(op, &h, &body), Ok(rsp.clone()));
        }
    }
}
