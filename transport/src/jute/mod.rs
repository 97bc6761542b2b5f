//! ZooKeeper's client protocol (jute), byte compatible with ZooKeeper 3.5–3.8 clients.
//!
//! Layers, bottom up:
//! - [`wire`]: the jute primitives (`int`, `long`, `boolean`, `buffer`, `ustring`,
//!   `vector`), the bounds-checked [`Reader`] and the [`Wire`] trait. Decoding never
//!   panics and never allocates more than the remaining input justifies.
//! - [`frame`]: the 4-byte big-endian length prefix and the `jute.maxbuffer`-style
//!   limit ([`FRAME_BYTES_MAX_DEFAULT`], configurable per [`FrameDecoder`]).
//! - [`connect`]: the handshake (the first frame each way, no header).
//! - [`header`]: `RequestHeader` / `ReplyHeader`, which start every later frame.
//! - [`records`]: the per-op request and reply records of `zookeeper.jute`.
//! - [`multi`]: multi / multiRead bodies (`MultiHeader` framing, per-op results).
//! - [`request`] / [`response`]: [`Request`] (one variant per opcode) and
//!   [`Response`] (one variant per reply shape), the typed API both the server
//!   (decode requests, encode replies) and clients (the reverse) use.
//!
//! Contract for every decoder: malformed input is a [`DecodeError`] or
//! [`FrameError`], never a panic; decoding then re-encoding a frame that real
//! ZooKeeper peers produce gives the same bytes (checked against captured traffic in
//! `tests/golden/`).
//!
//! [`codes`] holds the numeric constants clients depend on (opcodes, error codes,
//! permissions, create modes, watch event types, special xids); [`data`] holds the
//! records shared by the codec and the engine's tree (`Stat`, `Id`, `Acl`).
//!
//! # Server side: decode requests, encode replies
//!
//! ```
//! use transport::jute::*;
//! # let mut wire_in = Vec::new();
//! # ConnectRequest { time_out: 30_000, passwd: Some(vec![0; 16]), read_only: Some(false),
//! #     ..Default::default() }.encode_frame(&mut wire_in);
//! # Request::GetData(GetDataRequest { path: "/a".into(), watch: false }).encode_frame(1, &mut wire_in);
//! let mut rx = FrameBuffer::new(FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT));
//! rx.extend_from_slice(&wire_in); // whatever the socket gave
//! let mut out = Vec::new();
//!
//! // The first frame is the handshake; answer in the client's own form.
//! let body = rx.next_frame()?.expect("a whole frame");
//! let connect = ConnectRequest::decode(body)?;
//! ConnectResponse::for_request(&connect, 4000, 0x1234, [7; 16], false).encode_frame(&mut out);
//!
//! // Then header + record per frame. A FrameError or DecodeError closes the connection
//! // (log it); an unknown opcode can be answered since the header decoded.
//! while let Some(body) = rx.next_frame()? {
//!     let (header, rest) = RequestHeader::split(body)?;
//!     let reply = match Request::decode(header, rest) {
//!         Ok(Request::GetData(_)) => Response::GetData(GetDataResponse {
//!             data: Some(b"v".to_vec()),
//!             stat: Stat::default(),
//!         }),
//!         _ => Response::Empty,
//!     };
//!     reply.encode_frame(&ReplyHeader::new(header.xid, 0x42, ErrorCode::Ok), &mut out);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Client side: encode requests, decode replies
//!
//! ```
//! use std::collections::HashMap;
//! use transport::jute::*;
//! let mut out = Vec::new();
//! let mut outstanding = HashMap::new(); // xid -> opcode, to decode replies
//! let req = Request::Exists(ExistsRequest { path: "/a".into(), watch: true });
//! req.encode_frame(1, &mut out);
//! outstanding.insert(1, req.op_code());
//! # let mut reply_frame = Vec::new();
//! # Response::Empty.encode_frame(&ReplyHeader::new(1, 9, ErrorCode::NoNode), &mut reply_frame);
//! # let body = &reply_frame[4..];
//!
//! // For each reply frame body:
//! let (header, rest) = ReplyHeader::split(body)?;
//! let op = op_for_special_xid(header.xid)
//!     .or_else(|| outstanding.remove(&header.xid))
//!     .expect("a reply to something outstanding");
//! let reply = Response::decode(op, &header, rest)?;
//! assert_eq!((header.error_code(), reply), (Some(ErrorCode::NoNode), Response::Empty));
//! # Ok::<(), DecodeError>(())
//! ```

pub mod codes;
pub mod connect;
pub mod data;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod multi;
pub mod records;
pub mod request;
pub mod response;
pub mod wire;

pub use codes::{
    AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType, perms, xid,
};
pub use connect::{CONNECT_PASSWD_BYTES, ConnectRequest, ConnectResponse};
pub use data::{Acl, Id, Stat};
pub use frame::{
    FRAME_BYTES_MAX_DEFAULT, FrameBuffer, FrameDecoder, FrameError, FrameStatus, write_frame,
};
pub use header::{ReplyHeader, RequestHeader, op_for_special_xid};
pub use multi::{MultiHeader, MultiOp, MultiRequest, MultiResponse, OpResult};
pub use records::*;
pub use request::Request;
pub use response::Response;
pub use wire::{Buffer, DecodeError, NullableString, Reader, Wire};
