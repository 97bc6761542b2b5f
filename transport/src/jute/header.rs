//! The headers that start every frame after the connect handshake.
//!
//! A request frame body is `RequestHeader { xid, type }` then the op's record; a reply
//! frame body is `ReplyHeader { xid, zxid, err }` then the reply record (absent when
//! `err != 0`). Special xids ([`super::codes::xid`]) mark pings, auth, setWatches and
//! server-pushed watch notifications.
//!
//! Header fields stay raw integers so a header with an unknown opcode still decodes:
//! the server can then answer that xid with an error instead of dropping the client.

use super::codes::{ErrorCode, OpCode, xid};
use super::wire::{DecodeError, Reader, Wire, put_i32, put_i64};

/// Encoded size of a [`RequestHeader`].
pub const REQUEST_HEADER_BYTES: usize = 8;
/// Encoded size of a [`ReplyHeader`].
pub const REPLY_HEADER_BYTES: usize = 16;

/// `RequestHeader`: the xid the client chose and the opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RequestHeader {
    pub xid: i32,
    /// The raw opcode (see [`OpCode`]).
    pub op: i32,
}

impl RequestHeader {
    pub fn new(xid: i32, op: OpCode) -> Self {
        RequestHeader { xid, op: op.code() }
    }

    /// The opcode, if known.
    pub fn op_code(&self) -> Option<OpCode> {
        OpCode::from_code(self.op)
    }

    /// Splits a request frame body into its header and the op's record bytes.
    pub fn split(body: &[u8]) -> Result<(RequestHeader, &[u8]), DecodeError> {
        let mut r = Reader::new(body);
        let header = RequestHeader::decode(&mut r)?;
        Ok((header, r.rest()))
    }
}

impl Wire for RequestHeader {
    const MIN_BYTES: usize = REQUEST_HEADER_BYTES;
    fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.xid);
        put_i32(out, self.op);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RequestHeader {
            xid: r.i32()?,
            op: r.i32()?,
        })
    }
}

/// `ReplyHeader`: the xid answered, the server's last zxid, and the error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ReplyHeader {
    pub xid: i32,
    /// The server's last processed zxid (ZooKeeper sends it on every reply, reads
    /// too); -1 on watch notifications.
    pub zxid: i64,
    /// The raw error code (see [`ErrorCode`]); 0 = OK.
    pub err: i32,
}

impl ReplyHeader {
    pub fn new(xid: i32, zxid: i64, err: ErrorCode) -> Self {
        ReplyHeader {
            xid,
            zxid,
            err: err.code(),
        }
    }

    /// The header of a watch notification (xid -1, zxid -1, OK).
    pub fn notification() -> Self {
        ReplyHeader::new(xid::NOTIFICATION, -1, ErrorCode::Ok)
    }

    /// The error code, if known.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.err)
    }

    /// Whether this is a server-pushed watch notification.
    pub fn is_notification(&self) -> bool {
        self.xid == xid::NOTIFICATION
    }

    /// Splits a reply frame body into its header and the reply record bytes.
    pub fn split(body: &[u8]) -> Result<(ReplyHeader, &[u8]), DecodeError> {
        let mut r = Reader::new(body);
        let header = ReplyHeader::decode(&mut r)?;
        Ok((header, r.rest()))
    }
}

impl Wire for ReplyHeader {
    const MIN_BYTES: usize = REPLY_HEADER_BYTES;
    fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.xid);
        put_i64(out, self.zxid);
        put_i32(out, self.err);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.i32()?,
            zxid: r.i64()?,
            err: r.i32()?,
        })
    }
}

/// The opcode whose reply a special xid carries, for clients that track outstanding
/// requests by xid: watch notifications, pings, auth and setWatches replies are not in
/// that table.
pub fn op_for_special_xid(xid: i32) -> Option<OpCode> {
    match xid {
        xid::NOTIFICATION => Some(OpCode::Notification),
        xid::PING => Some(OpCode::Ping),
        xid::AUTH => Some(OpCode::Auth),
        xid::SET_WATCHES => Some(OpCode::SetWatches),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_encode_in_jute_order() {
        let h = RequestHeader::new(7, OpCode::GetData);
        assert_eq!(h.to_bytes(), [0, 0, 0, 7, 0, 0, 0, 4]);
        let (back, rest) = RequestHeader::split(&[0, 0, 0, 7, 0, 0, 0, 4, 9]).unwrap();
        assert_eq!((back, rest), (h, &[9u8][..]));

        let r = ReplyHeader::new(-2, 0x10, ErrorCode::NoNode);
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), REPLY_HEADER_BYTES);
        assert_eq!(&bytes[12..], &(-101i32).to_be_bytes());
        assert_eq!(ReplyHeader::from_bytes(&bytes), Ok(r));
    }

    #[test]
    fn unknown_opcode_still_decodes_as_a_header() {
        let (h, _) = RequestHeader::split(&[0, 0, 0, 1, 0, 0, 0x03, 0xe7]).unwrap();
        assert_eq!((h.xid, h.op, h.op_code()), (1, 999, None));
    }
}
