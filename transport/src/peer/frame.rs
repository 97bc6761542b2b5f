//! The peer frame: a 16-byte header, then the rkyv archive of one [`PeerMsg`] padded
//! to a multiple of 16.
//!
//! ```text
//!  byte 0       2         3        4            8            12           16
//!       +-------+---------+--------+------------+------------+------------+-------------+-------+
//!       | magic | version | flags  |  body_len  |  body_crc  |  head_crc  | body ...    |  pad  |
//!       |  u16  |   u8    | u8 = 0 |    u32     |    u32     |    u32     | body_len B  | 0..15 |
//!       +-------+---------+--------+------------+------------+------------+-------------+-------+
//! ```
//! All integers are little-endian. `head_crc` is the crc32c of header bytes `0..12`, so
//! a damaged header (above all a damaged length) is caught from the header alone, before
//! any body byte is buffered. `body_crc` is the crc32c of the body *and* its zero
//! padding, so every byte of a frame is covered by one of the two crcs (crc32c detects
//! every single-bit error). The padding makes every frame a multiple of 16 bytes: frames
//! laid end to end in a 16-aligned buffer all have 16-aligned bodies, which is what rkyv
//! needs to access an archive in place (its types align to at most 8 here).
//!
//! `body_len` counts the archive only (rkyv finds the root at the end of the body), and
//! is at most [`PEER_FRAME_BYTES_MAX`].

use rkyv::rancor;
use rkyv::util::AlignedVec;
use thiserror::Error;

use super::msg::{ArchivedPeerMsg, PeerMsg};
use super::{PEER_FRAME_ALIGN, PEER_FRAME_BYTES_MAX, PEER_FRAME_HEADER_BYTES};

/// First two bytes of every frame (`0xCB5A` little-endian: `5A CB` on the wire).
pub const PEER_FRAME_MAGIC: u16 = 0xCB5A;
/// The frame format version this code writes and accepts.
pub const PEER_FRAME_VERSION: u8 = 1;

/// Rounds `n` up to a multiple of [`PEER_FRAME_ALIGN`].
pub const fn align16(n: usize) -> usize {
    (n + PEER_FRAME_ALIGN - 1) & !(PEER_FRAME_ALIGN - 1)
}

/// Bytes a frame with a `body_len`-byte body takes on the wire, header and padding
/// included.
pub const fn frame_bytes(body_len: usize) -> usize {
    PEER_FRAME_HEADER_BYTES + align16(body_len)
}

/// Why a byte stream is not a valid sequence of peer frames. `offset` is where the
/// offending frame starts in the stream (bytes since the decoder was created). Every
/// one of these means the link cannot be trusted any more: drop it and log the error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeerFrameError {
    /// The frame does not start with [`PEER_FRAME_MAGIC`] (not a peer, or out of step).
    #[error(
        "peer frame at stream byte {offset}: bad magic {found:#06x} (want {PEER_FRAME_MAGIC:#06x})"
    )]
    BadMagic { offset: u64, found: u16 },
    /// A frame version this code does not speak.
    #[error(
        "peer frame at stream byte {offset}: unsupported version {found} (want {PEER_FRAME_VERSION})"
    )]
    UnsupportedVersion { offset: u64, found: u8 },
    /// The header's own crc does not match: the header was damaged.
    #[error(
        "peer frame at stream byte {offset}: header crc {stored:#010x} != computed {computed:#010x}"
    )]
    HeaderCrc {
        offset: u64,
        stored: u32,
        computed: u32,
    },
    /// Flags this code does not know (all must be zero in version 1).
    #[error("peer frame at stream byte {offset}: unknown flags {flags:#04x}")]
    UnknownFlags { offset: u64, flags: u8 },
    /// The announced body is larger than the decoder's limit.
    #[error("peer frame at stream byte {offset}: body of {len} bytes exceeds the limit of {max}")]
    TooLarge { offset: u64, len: usize, max: usize },
    /// The body's crc does not match: the body or its padding was damaged.
    #[error(
        "peer frame at stream byte {offset}: body crc {stored:#010x} != computed {computed:#010x} ({len} B body)"
    )]
    BodyCrc {
        offset: u64,
        len: usize,
        stored: u32,
        computed: u32,
    },
    /// The body passed its crc but is not a valid archived [`PeerMsg`] (a sender bug or
    /// a version skew, not line noise).
    #[error("peer frame at stream byte {offset}: invalid {len} B message archive: {reason}")]
    Invalid {
        offset: u64,
        len: usize,
        reason: String,
    },
}

/// Why a message could not be appended as a frame (the buffer is left as it was).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeerEncodeError {
    /// The message's archive would exceed [`PEER_FRAME_BYTES_MAX`].
    #[error("peer message of at least {len} bytes exceeds the frame limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// The output buffer's length is not a multiple of 16, so the body would be
    /// misaligned (something other than this encoder wrote to it).
    #[error("peer frame output buffer has length {len}, not a multiple of {PEER_FRAME_ALIGN}")]
    UnalignedBuffer { len: usize },
    /// rkyv refused to serialize the message.
    #[error("peer message could not be serialized: {reason}")]
    Serialize { reason: String },
}

/// The checked fields of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Length of the archive, padding excluded.
    pub body_len: usize,
    /// crc32c of the body and its padding.
    pub body_crc: u32,
}

impl FrameHeader {
    /// Parses and checks a header (magic, version, header crc, flags, length limit)
    /// that starts at stream byte `offset`.
    pub fn parse(
        bytes: &[u8; PEER_FRAME_HEADER_BYTES],
        offset: u64,
        frame_bytes_max: usize,
    ) -> Result<FrameHeader, PeerFrameError> {
        let magic = u16::from_le_bytes([bytes[0], bytes[1]]);
        if magic != PEER_FRAME_MAGIC {
            return Err(PeerFrameError::BadMagic {
                offset,
                found: magic,
            });
        }
        if bytes[2] != PEER_FRAME_VERSION {
            return Err(PeerFrameError::UnsupportedVersion {
                offset,
                found: bytes[2],
            });
        }
        let [
            _,
            _,
            _,
            flags,
            l0,
            l1,
            l2,
            l3,
            c0,
            c1,
            c2,
            c3,
            h0,
            h1,
            h2,
            h3,
        ] = *bytes;
        let stored = u32::from_le_bytes([h0, h1, h2, h3]);
        let computed = crc32c::crc32c(&bytes[..12]);
        if stored != computed {
            return Err(PeerFrameError::HeaderCrc {
                offset,
                stored,
                computed,
            });
        }
        if flags != 0 {
            return Err(PeerFrameError::UnknownFlags { offset, flags });
        }
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if len > frame_bytes_max {
            return Err(PeerFrameError::TooLarge {
                offset,
                len,
                max: frame_bytes_max,
            });
        }
        Ok(FrameHeader {
            body_len: len,
            body_crc: u32::from_le_bytes([c0, c1, c2, c3]),
        })
    }

    /// Bytes the whole frame takes, header and padding included.
    pub fn frame_bytes(&self) -> usize {
        frame_bytes(self.body_len)
    }

    /// The header's wire form.
    fn to_bytes(self) -> [u8; PEER_FRAME_HEADER_BYTES] {
        debug_assert!(self.body_len <= u32::MAX as usize, "checked by the encoder");
        let mut h = [0u8; PEER_FRAME_HEADER_BYTES];
        h[0..2].copy_from_slice(&PEER_FRAME_MAGIC.to_le_bytes());
        h[2] = PEER_FRAME_VERSION;
        h[4..8].copy_from_slice(&(self.body_len as u32).to_le_bytes());
        h[8..12].copy_from_slice(&self.body_crc.to_le_bytes());
        let head_crc = crc32c::crc32c(&h[..12]);
        h[12..16].copy_from_slice(&head_crc.to_le_bytes());
        h
    }
}

/// Appends `msg` as one frame to `out`, whose length must be a multiple of 16 (it is
/// if only this function appends to it): many messages batch into one socket write.
/// Returns the frame's size in bytes. On error `out` is left as it was.
pub fn encode_frame(msg: &PeerMsg, out: &mut AlignedVec<16>) -> Result<usize, PeerEncodeError> {
    let start = out.len();
    if !start.is_multiple_of(PEER_FRAME_ALIGN) {
        return Err(PeerEncodeError::UnalignedBuffer { len: start });
    }
    if msg.payload_bytes() > PEER_FRAME_BYTES_MAX {
        return Err(too_large(msg.payload_bytes()));
    }
    out.extend_from_slice(&[0; PEER_FRAME_HEADER_BYTES]);
    match append_body(msg, out, start + PEER_FRAME_HEADER_BYTES) {
        Ok(header) => {
            out.as_mut_slice()[start..start + PEER_FRAME_HEADER_BYTES]
                .copy_from_slice(&header.to_bytes());
            Ok(out.len() - start)
        }
        Err(e) => {
            out.resize(start, 0);
            Err(e)
        }
    }
}

/// Serializes `msg` at `body_start` (16-aligned), pads, and returns the header for it.
fn append_body(
    msg: &PeerMsg,
    out: &mut AlignedVec<16>,
    body_start: usize,
) -> Result<FrameHeader, PeerEncodeError> {
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(msg, &mut *out).map_err(|e| {
        PeerEncodeError::Serialize {
            reason: e.to_string(),
        }
    })?;
    let body_len = out.len() - body_start;
    if body_len > PEER_FRAME_BYTES_MAX {
        return Err(too_large(body_len));
    }
    out.resize(body_start + align16(body_len), 0);
    Ok(FrameHeader {
        body_len,
        body_crc: crc32c::crc32c(&out[body_start..]),
    })
}

fn too_large(len: usize) -> PeerEncodeError {
    PeerEncodeError::TooLarge {
        len,
        max: PEER_FRAME_BYTES_MAX,
    }
}

/// Checks one whole frame at the start of `frame` (header, then body crc) and returns
/// its header and its body (padding excluded). `frame` may hold more bytes after it;
/// it must hold all of this one (see [`FrameHeader::frame_bytes`]).
pub fn split_frame(
    frame: &[u8],
    offset: u64,
    frame_bytes_max: usize,
) -> Result<Option<(FrameHeader, &[u8])>, PeerFrameError> {
    let Some((head, rest)) = frame.split_first_chunk::<PEER_FRAME_HEADER_BYTES>() else {
        return Ok(None);
    };
    let header = FrameHeader::parse(head, offset, frame_bytes_max)?;
    let Some(padded) = rest.get(..align16(header.body_len)) else {
        return Ok(None);
    };
    check_body_crc(&header, padded, offset)?;
    Ok(Some((header, &padded[..header.body_len])))
}

/// Checks the crc of a padded body against its header.
pub(super) fn check_body_crc(
    header: &FrameHeader,
    padded: &[u8],
    offset: u64,
) -> Result<(), PeerFrameError> {
    debug_assert_eq!(padded.len(), align16(header.body_len), "body with padding");
    let computed = crc32c::crc32c(padded);
    if computed != header.body_crc {
        return Err(PeerFrameError::BodyCrc {
            offset,
            len: header.body_len,
            stored: header.body_crc,
            computed,
        });
    }
    Ok(())
}

/// Validates a frame body (bytecheck) and returns the message, read in place. The
/// body must be 16-aligned in memory, as frame bodies in a 16-aligned buffer are; a
/// misaligned one is an [`PeerFrameError::Invalid`] error, never an unaligned read.
pub fn access_body(body: &[u8], offset: u64) -> Result<&ArchivedPeerMsg, PeerFrameError> {
    rkyv::access::<ArchivedPeerMsg, rancor::Error>(body).map_err(|e| PeerFrameError::Invalid {
        offset,
        len: body.len(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::msg::{Ack, Proposal};
    use super::*;

    fn one(msg: &PeerMsg) -> AlignedVec<16> {
        let mut out = AlignedVec::new();
        encode_frame(msg, &mut out).unwrap();
        out
    }

    #[test]
    fn header_fields_sit_where_the_drawing_says() {
        let f = one(&PeerMsg::Ack(Ack { zxid: 7 }));
        assert_eq!(&f[0..2], &[0x5a, 0xcb]);
        assert_eq!(f[2], PEER_FRAME_VERSION);
        assert_eq!(f[3], 0);
        let len = u32::from_le_bytes(f[4..8].try_into().unwrap()) as usize;
        assert_eq!(f.len(), PEER_FRAME_HEADER_BYTES + align16(len));
        let body_crc = u32::from_le_bytes(f[8..12].try_into().unwrap());
        assert_eq!(body_crc, crc32c::crc32c(&f[16..]));
        let head_crc = u32::from_le_bytes(f[12..16].try_into().unwrap());
        assert_eq!(head_crc, crc32c::crc32c(&f[..12]));
    }

    #[test]
    fn frames_are_multiples_of_16_and_bodies_aligned() {
        let mut out = AlignedVec::new();
        for n in 0..40 {
            let msg = PeerMsg::Proposal(Proposal {
                zxid: n,
                txn: vec![n as u8; n as usize],
            });
            let before = out.len();
            let len = encode_frame(&msg, &mut out).unwrap();
            assert_eq!(len % 16, 0);
            assert_eq!(out.len(), before + len);
        }
    }

    #[test]
    fn an_unaligned_buffer_is_refused_untouched() {
        let mut out = AlignedVec::<16>::new();
        out.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            encode_frame(&PeerMsg::UpToDate, &mut out),
            Err(PeerEncodeError::UnalignedBuffer { len: 3 })
        );
        assert_eq!(out.as_slice(), &[1, 2, 3]);
    }

    #[test]
    fn an_oversize_payload_is_refused_before_serializing() {
        let mut out = AlignedVec::<16>::new();
        let msg = PeerMsg::Proposal(Proposal {
            zxid: 1,
            txn: vec![0; PEER_FRAME_BYTES_MAX + 1],
        });
        assert_eq!(
            encode_frame(&msg, &mut out),
            Err(too_large(PEER_FRAME_BYTES_MAX + 1))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn an_archive_just_over_the_limit_is_refused_after_serializing() {
        let mut out = AlignedVec::<16>::new();
        out.extend_from_slice(&[9; 16]);
        let msg = PeerMsg::Proposal(Proposal {
            zxid: 1,
            txn: vec![0; PEER_FRAME_BYTES_MAX],
        });
        let err = encode_frame(&msg, &mut out).unwrap_err();
        assert!(matches!(err, PeerEncodeError::TooLarge { len, .. } if len > PEER_FRAME_BYTES_MAX));
        assert_eq!(out.as_slice(), &[9; 16]);
    }

    #[test]
    fn split_frame_wants_the_whole_frame() {
        let f = one(&PeerMsg::Ack(Ack { zxid: 7 }));
        for cut in 0..f.len() {
            assert_eq!(split_frame(&f[..cut], 0, PEER_FRAME_BYTES_MAX), Ok(None));
        }
        let (h, body) = split_frame(&f, 0, PEER_FRAME_BYTES_MAX).unwrap().unwrap();
        assert_eq!(body.len(), h.body_len);
        assert_eq!(h.frame_bytes(), f.len());
    }

    #[test]
    fn a_misaligned_body_is_an_error_not_undefined_behaviour() {
        let f = one(&PeerMsg::Ack(Ack { zxid: 7 }));
        let (_, body) = split_frame(&f, 0, PEER_FRAME_BYTES_MAX).unwrap().unwrap();
        assert!(access_body(body, 0).is_ok());
        let mut shifted = AlignedVec::<16>::new();
        shifted.extend_from_slice(&[0]);
        shifted.extend_from_slice(body);
        let err = access_body(&shifted[1..], 0).unwrap_err();
        assert!(matches!(err, PeerFrameError::Invalid { .. }), "{err}");
    }

    #[test]
    fn errors_name_what_and_where() {
        let mut f = one(&PeerMsg::UpToDate);
        f[0] ^= 1;
        let e = split_frame(&f, 4096, PEER_FRAME_BYTES_MAX).unwrap_err();
        assert_eq!(
            e.to_string(),
            "peer frame at stream byte 4096: bad magic 0xcb5b (want 0xcb5a)"
        );
    }
}
