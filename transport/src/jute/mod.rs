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
