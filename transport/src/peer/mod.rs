//! The replication peer protocol: the messages Zab replicas exchange over TCP
//! ([`msg`]) and their framing ([`frame`], [`decoder`]).
//!
//! Contract:
//! - **One message per frame.** A frame is a 16-byte header (magic, version, flags,
//!   body length, body crc32c, header crc32c; drawn in [`frame`]) and the rkyv archive
//!   of one [`PeerMsg`], zero-padded to a multiple of 16.
//! - **Alignment.** Frames are multiples of 16 bytes, and [`encode_frame`] appends to
//!   an `AlignedVec<16>`, so every body sits 16-aligned in a 16-aligned buffer: the
//!   receiver validates and reads the archive in place. Opaque payloads
//!   ([`Proposal::txn`], [`Inform::txn`], [`Request::body`], [`SnapChunk::bytes`]) are
//!   serialized first, so they too start 16-aligned.
//! - **Zero-copy.** [`PeerDecoder::decode`] returns `&ArchivedPeerMsg` borrowed from the
//!   caller's chunk when the frame lies whole and aligned in it, otherwise from the
//!   decoder's buffer after one copy. `Proposal.txn` is then a `&[u8]` into the receive
//!   buffer, written to the WAL as-is.
//! - **Validated.** Header fields and the header crc are checked before any body byte
//!   is buffered (a hostile length costs nothing); then the body crc (every single-bit
//!   error in a frame is caught by one of the two crcs); then rkyv's bytecheck, so no
//!   input makes an access unsound or panics. Errors ([`PeerFrameError`]) name the
//!   check and the frame's stream offset, and poison the decoder: drop the link.
//! - **Limits.** A body is at most [`PEER_FRAME_BYTES_MAX`], which fits a proposal of
//!   ZooKeeper's `jute.maxbuffer` (1 MiB, [`TXN_BYTES_MAX`]), a [`SNAP_CHUNK_BYTES_MAX`]
//!   snapshot chunk and a ping of [`PING_SESSIONS_MAX`] sessions; the relations are
//!   asserted at compile time. The decoder never buffers more than one frame.
//!
//! Cost per operation (criterion medians, `cargo bench -p bench --bench peer_msg`,
//! measured on the 2-core dev machine, loaded; two runs differed by up to ~30%):
//!
//! | operation                                         | ns/op |
//! |---------------------------------------------------|------:|
//! | encode Proposal, 100 B txn (rkyv, pad, two crcs)  |    57 |
//! | encode Proposal, 1 KiB txn                        |   112 |
//! | encode Vote                                       |    50 |
//! | decode Proposal, 100 B txn, in place (all checks) |    54 |
//! |   of which header parse + header crc              |    15 |
//! |   of which crc32c of its 160 B padded body        |    20 |
//! |   of which bytecheck (`rkyv::access`)             |     6 |
//! |   `access_unchecked` instead of bytecheck         |     1 |
//! | decode Proposal, 1 KiB txn, in place (all checks) |   123 |
//! |   of which bytecheck (`rkyv::access`)             |     6 |
//! | decode Vote                                       |    50 |
//! | decode 64 Acks from one buffer, per ack           | 30–41 |
//!
//! So bytecheck costs ~5 ns a frame (a txn is bytes: nothing per byte to check); the
//! body crc is what grows with size (~70 ns per KiB here).
//!
//! This module knows nothing of the engine: txns are opaque bytes here.

pub mod decoder;
pub mod frame;
pub mod msg;

pub use decoder::PeerDecoder;
pub use frame::{
    FrameHeader, PEER_FRAME_MAGIC, PEER_FRAME_VERSION, PeerEncodeError, PeerFrameError,
    access_body, align16, encode_frame, frame_bytes, split_frame,
};
pub use msg::*;

/// Size of a frame header; the body follows it.
pub const PEER_FRAME_HEADER_BYTES: usize = 16;
/// Alignment of every frame start and body, and the unit frames are padded to.
pub const PEER_FRAME_ALIGN: usize = 16;
/// Largest txn in a [`Proposal`] or [`Inform`]: ZooKeeper's `jute.maxbuffer` (1 MiB).
pub const TXN_BYTES_MAX: usize = 1 << 20;
/// Largest forwarded [`Request::body`]: a client frame is at most `jute.maxbuffer`.
pub const REQUEST_BODY_BYTES_MAX: usize = 1 << 20;
/// Largest [`SnapChunk::bytes`]: big enough to stream fast, small enough that pings
/// and commits are not stuck behind it for long.
pub const SNAP_CHUNK_BYTES_MAX: usize = 512 << 10;
/// Most sessions in one [`Ping`] (16 archived bytes each); a learner with more touched
/// sessions sends several pings.
pub const PING_SESSIONS_MAX: usize = 64 << 10;
/// Most bytes an archive takes beyond its payload (root enum, vector headers,
/// alignment): checked against the real encoder by tests.
pub const PEER_MSG_OVERHEAD_BYTES_MAX: usize = 256;
/// Largest frame body: the largest payload plus overhead, with room to spare.
pub const PEER_FRAME_BYTES_MAX: usize = (1 << 20) + (64 << 10);

const _: () = {
    assert!(PEER_FRAME_HEADER_BYTES.is_multiple_of(PEER_FRAME_ALIGN));
    assert!(PEER_FRAME_BYTES_MAX.is_multiple_of(PEER_FRAME_ALIGN));
    assert!(PEER_FRAME_BYTES_MAX + PEER_FRAME_HEADER_BYTES <= u32::MAX as usize);
    assert!(TXN_BYTES_MAX + PEER_MSG_OVERHEAD_BYTES_MAX <= PEER_FRAME_BYTES_MAX);
    assert!(REQUEST_BODY_BYTES_MAX + PEER_MSG_OVERHEAD_BYTES_MAX <= PEER_FRAME_BYTES_MAX);
    assert!(SNAP_CHUNK_BYTES_MAX + PEER_MSG_OVERHEAD_BYTES_MAX <= PEER_FRAME_BYTES_MAX);
    assert!(
        PING_SESSIONS_MAX * size_of::<ArchivedSessionTouch>() + PEER_MSG_OVERHEAD_BYTES_MAX
            <= PEER_FRAME_BYTES_MAX
    );
    // rkyv's archives here align to at most 8; a 16-aligned body satisfies them.
    assert!(align_of::<ArchivedPeerMsg>() <= PEER_FRAME_ALIGN);
};
