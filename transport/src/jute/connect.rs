//! The connect handshake: the first frame in each direction, which has no
//! `RequestHeader` / `ReplyHeader`.
//!
//! Both records end with a `readOnly` boolean that clients before 3.4 neither send nor
//! expect. It is modelled as `Option<bool>`: `None` means the byte was absent. Decoding
//! accepts both forms (ZooKeeper's `ProtocolManager` does the same: it tries to read
//! the byte and treats end of input as "old client"). A server should answer an old
//! client without the byte, i.e. echo the request's `read_only.is_some()`; see
//! [`ConnectResponse::for_request`].
//!
//! The password in a reply must be exactly [`CONNECT_PASSWD_BYTES`] long: the C client
//! reads a fixed-size reply and a different size shifts the readOnly byte.

use super::frame::write_frame;
use super::wire::{Buffer, DecodeError, Reader, Wire, put_bool, put_buffer, put_i32, put_i64};

/// Length of a session password as ZooKeeper issues it (and the C client expects).
pub const CONNECT_PASSWD_BYTES: usize = 16;

/// Body length of a ConnectRequest with a 16-byte password and the readOnly byte.
pub const CONNECT_REQUEST_BYTES: usize = 4 + 8 + 4 + 8 + 4 + CONNECT_PASSWD_BYTES + 1;

/// Body length of a ConnectResponse with a 16-byte password and the readOnly byte.
pub const CONNECT_RESPONSE_BYTES: usize = 4 + 4 + 8 + 4 + CONNECT_PASSWD_BYTES + 1;

/// A client's session request (first frame from the client).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ConnectRequest {
    /// Always 0 in practice.
    pub protocol_version: i32,
    /// Highest zxid the client has seen (0 on a new session).
    pub last_zxid_seen: i64,
    /// Requested session timeout, ms.
    pub time_out: i32,
    /// 0 for a new session, else the session to resume.
    pub session_id: i64,
    /// The session password (16 zero bytes on a new session).
    pub passwd: Buffer,
    /// Whether the client accepts a read-only server; `None` if the byte was absent.
    pub read_only: Option<bool>,
}

/// The server's reply to a [`ConnectRequest`] (first frame from the server).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    /// Negotiated session timeout, ms; 0 (with session id 0) rejects the session.
    pub time_out: i32,
    pub session_id: i64,
    /// The session password, [`CONNECT_PASSWD_BYTES`] long.
    pub passwd: Buffer,
    /// Whether the server is read-only; `None` to omit the byte (for old clients).
    pub read_only: Option<bool>,
}

/// Reads the optional trailing readOnly byte.
fn optional_bool(r: &mut Reader<'_>) -> Result<Option<bool>, DecodeError> {
    if r.remaining() == 0 {
        Ok(None)
    } else {
        r.bool().map(Some)
    }
}

impl ConnectRequest {
    /// Whether the client accepts a read-only server (false when it did not say).
    pub fn can_be_read_only(&self) -> bool {
        self.read_only.unwrap_or(false)
    }

    /// Appends the body (no length prefix).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.protocol_version);
        put_i64(out, self.last_zxid_seen);
        put_i32(out, self.time_out);
        put_i64(out, self.session_id);
        put_buffer(out, self.passwd.as_deref());
        if let Some(ro) = self.read_only {
            put_bool(out, ro);
        }
    }

    /// Appends the whole frame, length prefix included.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        write_frame(out, |b| self.encode(b));
    }

    /// Decodes a frame body. Bytes after the readOnly byte are ignored.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_from(&mut Reader::new(body))
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.i32()?,
            last_zxid_seen: r.i64()?,
            time_out: r.i32()?,
            session_id: r.i64()?,
            passwd: r.buffer()?,
            read_only: optional_bool(r)?,
        })
    }
}

impl ConnectResponse {
    /// A reply shaped for `req`'s client: the readOnly byte is sent only if the
    /// client sent one.
    pub fn for_request(
        req: &ConnectRequest,
        time_out: i32,
        session_id: i64,
        passwd: [u8; CONNECT_PASSWD_BYTES],
        read_only: bool,
    ) -> Self {
        ConnectResponse {
            protocol_version: 0,
            time_out,
            session_id,
            passwd: Some(passwd.to_vec()),
            read_only: req.read_only.map(|_| read_only),
        }
    }

    /// A rejection (expired or invalid session): timeout 0, session 0, zero password.
    pub fn rejected(req: &ConnectRequest) -> Self {
        ConnectResponse::for_request(req, 0, 0, [0; CONNECT_PASSWD_BYTES], false)
    }

    /// Whether the server said it is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only.unwrap_or(false)
    }

    /// Appends the body (no length prefix). Any password is encoded as given (so a
    /// decoded reply re-encodes unchanged); build replies with
    /// [`ConnectResponse::for_request`], whose type fixes the size at 16 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, self.protocol_version);
        put_i32(out, self.time_out);
        put_i64(out, self.session_id);
        put_buffer(out, self.passwd.as_deref());
        if let Some(ro) = self.read_only {
            put_bool(out, ro);
        }
    }

    /// Appends the whole frame, length prefix included.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        write_frame(out, |b| self.encode(b));
    }

    /// Decodes a frame body. Bytes after the readOnly byte are ignored.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_from(&mut Reader::new(body))
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.i32()?,
            time_out: r.i32()?,
            session_id: r.i64()?,
            passwd: r.buffer()?,
            read_only: optional_bool(r)?,
        })
    }
}

// `Wire` impls so generic code can treat them like other records. The optional
// trailing byte is read whenever input remains, so these are meant for whole bodies.
impl Wire for ConnectRequest {
    const MIN_BYTES: usize = 4 + 8 + 4 + 8 + 4;
    fn encode(&self, out: &mut Vec<u8>) {
        ConnectRequest::encode(self, out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        ConnectRequest::decode_from(r)
    }
}

impl Wire for ConnectResponse {
    const MIN_BYTES: usize = 4 + 4 + 8 + 4;
    fn encode(&self, out: &mut Vec<u8>) {
        ConnectResponse::encode(self, out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        ConnectResponse::decode_from(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(read_only: Option<bool>) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1234,
            time_out: 30_000,
            session_id: 0,
            passwd: Some(vec![0; 16]),
            read_only,
        }
    }

    #[test]
    fn request_with_and_without_read_only_byte() {
        let new = request(Some(false)).to_bytes();
        assert_eq!(new.len(), CONNECT_REQUEST_BYTES);
        assert_eq!(ConnectRequest::decode(&new), Ok(request(Some(false))));
        let old = request(None).to_bytes();
        assert_eq!(old.len(), CONNECT_REQUEST_BYTES - 1);
        assert_eq!(ConnectRequest::decode(&old), Ok(request(None)));
    }

    #[test]
    fn response_mirrors_the_clients_form() {
        let rsp = ConnectResponse::for_request(&request(Some(true)), 4000, 7, [9; 16], false);
        let bytes = rsp.to_bytes();
        assert_eq!(bytes.len(), CONNECT_RESPONSE_BYTES);
        assert_eq!(ConnectResponse::decode(&bytes), Ok(rsp));
        let old = ConnectResponse::for_request(&request(None), 4000, 7, [9; 16], false);
        let bytes = old.to_bytes();
        assert_eq!(bytes.len(), CONNECT_RESPONSE_BYTES - 1);
        assert_eq!(ConnectResponse::decode(&bytes), Ok(old));
    }

    #[test]
    fn response_frame_is_41_bytes_for_the_c_client() {
        let rsp = ConnectResponse::for_request(&request(Some(false)), 4000, 7, [9; 16], false);
        let mut frame = Vec::new();
        rsp.encode_frame(&mut frame);
        assert_eq!(frame.len(), 41);
        assert_eq!(&frame[..4], &37i32.to_be_bytes());
    }
}
