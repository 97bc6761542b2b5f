//! [`Request`]: every client op, typed, with its record.
//!
//! The server decodes: split the frame body with [`RequestHeader::split`], then
//! [`Request::decode`] (an unsupported opcode is [`DecodeError::UnsupportedOpCode`];
//! the header's xid is still known, so the server can answer it with an error).
//! Clients encode: [`Request::encode`] writes header and record,
//! [`Request::encode_frame`] the whole frame with its length prefix.
//!
//! The xid is the caller's: ordinary requests use increasing positive xids; pings and
//! auth always use the special xids of [`super::codes::xid`] (-2, -4). setWatches and
//! setWatches2 are sent with -8 by the C client but with an ordinary xid by the Java
//! client (seen in the golden captures): a server must accept both and answer with the
//! xid it was given. [`Request::special_xid`] gives the conventional one. Ops without a
//! body (ping, closeSession, whoAmI) decode from any body, ignoring it, as ZooKeeper
//! does.

use super::codes::{OpCode, xid};
use super::frame::write_frame;
use super::header::RequestHeader;
use super::multi::MultiRequest;
use super::records::*;
use super::wire::{DecodeError, Reader, Wire};

/// A client request: one variant per opcode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    GetEphemerals(GetEphemeralsRequest),
    Sync(SyncRequest),
    Check(CheckVersionRequest),
    Multi(MultiRequest),
    MultiRead(MultiRequest),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    AddWatch(AddWatchRequest),
    /// xid -2, no body.
    Ping,
    /// xid -4.
    Auth(AuthPacket),
    /// xid -8.
    SetWatches(SetWatches),
    /// xid -8.
    SetWatches2(SetWatches2),
    Sasl(GetSaslRequest),
    /// No body.
    WhoAmI,
    /// No body.
    CloseSession,
}

/// Applies `$body` to the record inside every variant that has one, or evaluates
/// `$none` for the bodiless ones.
macro_rules! with_record {
    ($self:expr, $rec:ident => $body:expr, none => $none:expr) => {
        match $self {
            Request::Create($rec) | Request::Create2($rec) | Request::CreateContainer($rec) => {
                $body
            }
            Request::CreateTtl($rec) => $body,
            Request::Delete($rec) => $body,
            Request::Exists($rec) => $body,
            Request::GetData($rec) => $body,
            Request::SetData($rec) => $body,
            Request::GetAcl($rec) => $body,
            Request::SetAcl($rec) => $body,
            Request::GetChildren($rec) => $body,
            Request::GetChildren2($rec) => $body,
            Request::GetAllChildrenNumber($rec) => $body,
            Request::GetEphemerals($rec) => $body,
            Request::Sync($rec) => $body,
            Request::Check($rec) => $body,
            Request::Multi($rec) | Request::MultiRead($rec) => $body,
            Request::Reconfig($rec) => $body,
            Request::CheckWatches($rec) => $body,
            Request::RemoveWatches($rec) => $body,
            Request::AddWatch($rec) => $body,
            Request::Auth($rec) => $body,
            Request::SetWatches($rec) => $body,
            Request::SetWatches2($rec) => $body,
            Request::Sasl($rec) => $body,
            Request::Ping | Request::WhoAmI | Request::CloseSession => $none,
        }
    };
}

impl Request {
    /// The opcode written in the header.
    pub fn op_code(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::Sync(_) => OpCode::Sync,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::Ping => OpCode::Ping,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::Sasl(_) => OpCode::Sasl,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// The special xid clients conventionally send this request with, if any (ping
    /// and auth must use theirs; for setWatches it is the C client's choice, the Java
    /// client uses an ordinary xid).
    pub fn special_xid(&self) -> Option<i32> {
        match self {
            Request::Ping => Some(xid::PING),
            Request::Auth(_) => Some(xid::AUTH),
            Request::SetWatches(_) | Request::SetWatches2(_) => Some(xid::SET_WATCHES),
            _ => None,
        }
    }

    /// Whether the op goes through the replicated log as a txn (ZooKeeper logs a
    /// standalone check too, and closeSession).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// Appends the record only (no header, no prefix).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        with_record!(self, rec => rec.encode(out), none => ())
    }

    /// Appends `RequestHeader { xid, type }` and the record (no length prefix).
    pub fn encode(&self, xid: i32, out: &mut Vec<u8>) {
        RequestHeader::new(xid, self.op_code()).encode(out);
        self.encode_body(out);
    }

    /// Appends the whole frame: length prefix, header, record. Returns the body length.
    pub fn encode_frame(&self, xid: i32, out: &mut Vec<u8>) -> usize {
        write_frame(out, |b| self.encode(xid, b))
    }

    /// Decodes the record that follows `header` (bytes after it are ignored).
    pub fn decode(header: RequestHeader, body: &[u8]) -> Result<Request, DecodeError> {
        let r = &mut Reader::new(body);
        let unsupported = DecodeError::UnsupportedOpCode { op: header.op };
        let Some(op) = header.op_code() else {
            return Err(unsupported);
        };
        Ok(match op {
            OpCode::Create => Request::Create(Wire::decode(r)?),
            OpCode::Create2 => Request::Create2(Wire::decode(r)?),
            OpCode::CreateContainer => Request::CreateContainer(Wire::decode(r)?),
            OpCode::CreateTtl => Request::CreateTtl(Wire::decode(r)?),
            OpCode::Delete => Request::Delete(Wire::decode(r)?),
            OpCode::Exists => Request::Exists(Wire::decode(r)?),
            OpCode::GetData => Request::GetData(Wire::decode(r)?),
            OpCode::SetData => Request::SetData(Wire::decode(r)?),
            OpCode::GetAcl => Request::GetAcl(Wire::decode(r)?),
            OpCode::SetAcl => Request::SetAcl(Wire::decode(r)?),
            OpCode::GetChildren => Request::GetChildren(Wire::decode(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(Wire::decode(r)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Wire::decode(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(Wire::decode(r)?),
            OpCode::Sync => Request::Sync(Wire::decode(r)?),
            OpCode::Check => Request::Check(Wire::decode(r)?),
            OpCode::Multi => Request::Multi(Wire::decode(r)?),
            OpCode::MultiRead => Request::MultiRead(Wire::decode(r)?),
            OpCode::Reconfig => Request::Reconfig(Wire::decode(r)?),
            OpCode::CheckWatches => Request::CheckWatches(Wire::decode(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(Wire::decode(r)?),
            OpCode::AddWatch => Request::AddWatch(Wire::decode(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::Auth => Request::Auth(Wire::decode(r)?),
            OpCode::SetWatches => Request::SetWatches(Wire::decode(r)?),
            OpCode::SetWatches2 => Request::SetWatches2(Wire::decode(r)?),
            OpCode::Sasl => Request::Sasl(Wire::decode(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Err(unsupported),
        })
    }

    /// Decodes a whole frame body: header, then record.
    pub fn decode_body(body: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
        let (header, rest) = RequestHeader::split(body)?;
        Ok((header, Request::decode(header, rest)?))
    }

    /// The path the op names, if it names one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => Some(&r.path),
            Request::CreateTtl(r) => Some(&r.path),
            Request::Delete(r) => Some(&r.path),
            Request::Exists(r) => Some(&r.path),
            Request::GetData(r) => Some(&r.path),
            Request::SetData(r) => Some(&r.path),
            Request::GetAcl(r) => Some(&r.path),
            Request::SetAcl(r) => Some(&r.path),
            Request::GetChildren(r) => Some(&r.path),
            Request::GetChildren2(r) => Some(&r.path),
            Request::GetAllChildrenNumber(r) => Some(&r.path),
            Request::GetEphemerals(r) => Some(&r.prefix_path),
            Request::Sync(r) => Some(&r.path),
            Request::Check(r) => Some(&r.path),
            Request::CheckWatches(r) => Some(&r.path),
            Request::RemoveWatches(r) => Some(&r.path),
            Request::AddWatch(r) => Some(&r.path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::data::Acl;

    #[test]
    fn get_data_frame_layout() {
        let req = Request::GetData(GetDataRequest {
            path: "/a".into(),
            watch: true,
        });
        let mut frame = Vec::new();
        let n = req.encode_frame(5, &mut frame);
        assert_eq!(n, 8 + 4 + 2 + 1);
        assert_eq!(
            frame,
            [
                0, 0, 0, 15, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 2, b'/', b'a', 1
            ]
        );
        assert_eq!(
            Request::decode_body(&frame[4..]),
            Ok((RequestHeader::new(5, OpCode::GetData), req))
        );
    }

    #[test]
    fn create_round_trips_and_bodiless_ops_ignore_bodies() {
        let req = Request::Create2(CreateRequest {
            path: "/x".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 3,
        });
        let mut body = Vec::new();
        req.encode(1, &mut body);
        assert_eq!(Request::decode_body(&body).map(|(_, r)| r), Ok(req));
        let h = RequestHeader::new(xid::PING, OpCode::Ping);
        assert_eq!(Request::decode(h, &[1, 2, 3]), Ok(Request::Ping));
    }

    #[test]
    fn server_internal_and_unknown_opcodes_are_unsupported() {
        for op in [0, 20, -10, -1, 999] {
            let h = RequestHeader { xid: 1, op };
            assert_eq!(
                Request::decode(h, &[]),
                Err(DecodeError::UnsupportedOpCode { op })
            );
        }
    }
}
