//! Length-prefixed framing of the client protocol, with ZooKeeper's `jute.maxbuffer`
//! style limit.
//!
//! Every message in either direction is `[len: i32 BE][body: len bytes]`. The first
//! frame of a connection carries a `ConnectRequest` / `ConnectResponse` body; every
//! later frame a `RequestHeader` / `ReplyHeader` and a record.
//!
//! Contract:
//! - A body length of `0..=max` is accepted (exactly `max` passes, as ZooKeeper's
//!   `len > maxBuffer` check does); `max + 1` and more is [`FrameError::TooLarge`]; a
//!   negative length is [`FrameError::NegativeLength`]. Either error means the stream
//!   cannot be resynchronised: the connection should be closed with the error logged.
//! - The limit is checked as soon as the 4 prefix bytes are in, before the body
//!   arrives, so a hostile length never makes anyone buffer it.
//! - Decoding never copies: [`FrameDecoder::decode`] borrows the body from the input.

use thiserror::Error;

/// Default limit on a frame's body, in bytes (ZooKeeper's `jute.maxbuffer`, 1 MiB).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Size of the length prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Why a byte stream cannot be split into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The announced body length exceeds the decoder's limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The announced body length is negative.
    #[error("frame length {len} is negative")]
    NegativeLength { len: i32 },
}

/// What [`FrameDecoder::decode`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus<'a> {
    /// Not a whole frame yet: at least `missing` more bytes are needed.
    NeedMore { missing: usize },
    /// A whole frame: its body (without the prefix) and the bytes it took, prefix
    /// included.
    Frame { body: &'a [u8], consumed: usize },
}

/// Splits frames off the front of a byte buffer, enforcing a body size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder accepting bodies of at most `frame_bytes_max` bytes.
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder { frame_bytes_max }
    }

    /// The body size limit.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Looks at the front of `buf`: a complete frame, a request for more bytes, or an
    /// error if the announced length is negative or over the limit.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<FrameStatus<'a>, FrameError> {
        let Some((prefix, rest)) = buf.split_first_chunk::<FRAME_PREFIX_BYTES>() else {
            return Ok(FrameStatus::NeedMore {
                missing: FRAME_PREFIX_BYTES - buf.len(),
            });
        };
        let len = self.check_len(i32::from_be_bytes(*prefix))?;
        if rest.len() < len {
            return Ok(FrameStatus::NeedMore {
                missing: len - rest.len(),
            });
        }
        Ok(FrameStatus::Frame {
            body: &rest[..len],
            consumed: FRAME_PREFIX_BYTES + len,
        })
    }

    fn check_len(&self, len: i32) -> Result<usize, FrameError> {
        let Ok(len_bytes) = usize::try_from(len) else {
            return Err(FrameError::NegativeLength { len });
        };
        if len_bytes > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                len: len_bytes,
                max: self.frame_bytes_max,
            });
        }
        Ok(len_bytes)
    }
}

/// Reserves a length prefix at the end of `out`; returns where it is for
/// [`finish_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    start
}

/// Writes the length of everything after the prefix at `start` into that prefix.
/// Returns the body length.
pub fn finish_frame(out: &mut [u8], start: usize) -> usize {
    debug_assert!(
        out.len() >= start + FRAME_PREFIX_BYTES,
        "finish_frame without begin_frame"
    );
    let body_bytes = out.len() - start - FRAME_PREFIX_BYTES;
    let len = super::wire::len_i32(body_bytes);
    out[start..start + FRAME_PREFIX_BYTES].copy_from_slice(&len.to_be_bytes());
    body_bytes
}

/// Appends one frame whose body `write_body` produces. Returns the body length (the
/// caller compares it with the peer's limit if it cares).
pub fn write_frame(out: &mut Vec<u8>, write_body: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = begin_frame(out);
    write_body(out);
    finish_frame(out, start)
}

/// An owned receive buffer that yields whole frames: append what the socket gave,
/// then take frames until [`FrameBuffer::next_frame`] says `None`.
///
/// Consumed bytes are reclaimed lazily (when more room is asked for), so a frame
/// returned by `next_frame` costs no copy.
#[derive(Debug, Clone, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    /// Start of unconsumed bytes.
    start: usize,
    /// End of received bytes (`buf[end..]` is spare room).
    end: usize,
    decoder: FrameDecoder,
}

impl FrameBuffer {
    pub fn new(decoder: FrameDecoder) -> Self {
        FrameBuffer {
            decoder,
            ..FrameBuffer::default()
        }
    }

    /// The decoder (and so the limit) in use.
    pub fn decoder(&self) -> FrameDecoder {
        self.decoder
    }

    /// Changes the limit for frames not yet taken.
    pub fn set_decoder(&mut self, decoder: FrameDecoder) {
        self.decoder = decoder;
    }

    /// Received bytes not yet taken as frames (e.g. to recognise a four-letter word).
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Appends received bytes.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.spare(bytes.len())[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// Room for at least `min_bytes` more received bytes, to read into directly; call
    /// [`FrameBuffer::filled`] with how many were written.
    pub fn spare(&mut self, min_bytes: usize) -> &mut [u8] {
        if self.buf.len() - self.end < min_bytes {
            self.compact();
            if self.buf.len() - self.end < min_bytes {
                self.buf.resize(self.end + min_bytes, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`FrameBuffer::spare`] as received.
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len(), "filled past spare room");
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next whole frame's body, `Ok(None)` if more bytes are needed, or an error
    /// if the stream announces an unacceptable length (close the connection).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        match self.decoder.decode(&self.buf[self.start..self.end])? {
            FrameStatus::NeedMore { .. } => Ok(None),
            FrameStatus::Frame { body, consumed } => {
                let body_start = self.start + FRAME_PREFIX_BYTES;
                let body_end = body_start + body.len();
                self.start += consumed;
                Ok(Some(&self.buf[body_start..body_end]))
            }
        }
    }

    /// Moves unconsumed bytes to the front so spare room is contiguous.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(len: i32, body: &[u8]) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn limit_is_inclusive() {
        let d = FrameDecoder::new(8);
        let at_limit = frame_of(8, &[7; 8]);
        assert_eq!(
            d.decode(&at_limit),
            Ok(FrameStatus::Frame {
                body: &[7; 8],
                consumed: 12
            })
        );
        assert_eq!(
            d.decode(&frame_of(9, &[])),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        );
    }

    #[test]
    fn default_limit_is_one_mib() {
        let d = FrameDecoder::default();
        let max = FRAME_BYTES_MAX_DEFAULT as i32;
        assert_eq!(
            d.decode(&frame_of(max, &[])),
            Ok(FrameStatus::NeedMore {
                missing: FRAME_BYTES_MAX_DEFAULT
            })
        );
        assert_eq!(
            d.decode(&frame_of(max + 1, &[])),
            Err(FrameError::TooLarge {
                len: FRAME_BYTES_MAX_DEFAULT + 1,
                max: FRAME_BYTES_MAX_DEFAULT
            })
        );
        assert_eq!(
            d.decode(&frame_of(i32::MAX, &[])),
            Err(FrameError::TooLarge {
                len: i32::MAX as usize,
                max: FRAME_BYTES_MAX_DEFAULT
            })
        );
    }

    #[test]
    fn a_frame_of_exactly_the_default_limit_passes_through_a_frame_buffer() {
        let body = vec![0x5a; FRAME_BYTES_MAX_DEFAULT];
        let mut stream = Vec::new();
        write_frame(&mut stream, |b| b.extend_from_slice(&body));
        let mut fb = FrameBuffer::default();
        for chunk in stream.chunks(64 * 1024) {
            fb.extend_from_slice(chunk);
        }
        assert_eq!(fb.next_frame(), Ok(Some(&body[..])));
        assert_eq!(fb.next_frame(), Ok(None));
    }

    #[test]
    fn negative_lengths_fail() {
        let d = FrameDecoder::default();
        for len in [-1, -2, i32::MIN] {
            assert_eq!(
                d.decode(&frame_of(len, &[1, 2, 3])),
                Err(FrameError::NegativeLength { len })
            );
        }
    }

    #[test]
    fn partial_input_asks_for_more() {
        let d = FrameDecoder::default();
        assert_eq!(d.decode(&[]), Ok(FrameStatus::NeedMore { missing: 4 }));
        assert_eq!(d.decode(&[0, 0]), Ok(FrameStatus::NeedMore { missing: 2 }));
        assert_eq!(
            d.decode(&frame_of(5, &[1, 2])),
            Ok(FrameStatus::NeedMore { missing: 3 })
        );
        assert_eq!(
            d.decode(&frame_of(0, &[9])),
            Ok(FrameStatus::Frame {
                body: &[],
                consumed: 4
            })
        );
    }

    #[test]
    fn write_frame_patches_the_prefix() {
        let mut out = vec![0xaa];
        let n = write_frame(&mut out, |b| b.extend_from_slice(b"hello"));
        assert_eq!(n, 5);
        assert_eq!(out, [0xaa, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn frame_buffer_yields_frames_byte_by_byte() {
        let mut stream = Vec::new();
        for body in [&b"one"[..], b"", b"three"] {
            write_frame(&mut stream, |b| b.extend_from_slice(body));
        }
        let mut fb = FrameBuffer::new(FrameDecoder::new(16));
        let mut got: Vec<Vec<u8>> = Vec::new();
        for byte in &stream {
            fb.extend_from_slice(std::slice::from_ref(byte));
            while let Some(body) = fb.next_frame().unwrap() {
                got.push(body.to_vec());
            }
        }
        assert_eq!(got, [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert!(fb.unread().is_empty());
    }

    #[test]
    fn frame_buffer_reports_oversize_before_the_body_arrives() {
        let mut fb = FrameBuffer::new(FrameDecoder::new(16));
        fb.extend_from_slice(&17i32.to_be_bytes());
        assert_eq!(
            fb.next_frame(),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        );
    }
}
