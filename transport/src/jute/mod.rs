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
//!
//! [`codes`] holds the numeric constants clients depend on (opcodes, error codes,
//! permissions, create modes, watch event types, special xids); [`data`] holds the
//! records shared by the codec and the engine's tree (`Stat`, `Id`, `Acl`).

pub mod codes;
pub mod connect;
pub mod data;
pub mod frame;
pub mod header;
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
pub use wire::{Buffer, DecodeError, NullableString, Reader, Wire};
