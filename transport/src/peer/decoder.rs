//! [`PeerDecoder`]: turns the byte chunks TCP delivers into validated messages read in
//! place.
//!
//! Zero-copy contract: a frame that lies whole in the caller's chunk, starting at a
//! 16-aligned address, is checked and accessed right there (the returned
//! `&ArchivedPeerMsg` points into the chunk). That is the common case when the runtime
//! reads into a 16-aligned buffer: frames are multiples of 16 bytes, so every frame
//! after an aligned one is aligned too. Only a frame split across chunks (or in a
//! misaligned chunk) is copied, once, into the decoder's own 16-aligned buffer. To
//! avoid even that copy for a large frame, read its remaining bytes straight into
//! [`PeerDecoder::spare`] and report them with [`PeerDecoder::filled`].
//!
//! Checks, in order: the header (magic, version, header crc, flags, length limit) as
//! soon as its 16 bytes are in, before any body byte is buffered; then the body crc;
//! then rkyv's bytecheck of the archive. The first error poisons the decoder: every
//! later call returns the same error, and the link should be dropped.
//!
//! Memory: the decoder holds at most one partial frame, so its buffer never exceeds
//! [`frame_bytes`](super::frame_bytes)`(frame_bytes_max)`.

use rkyv::util::AlignedVec;

use super::frame::{FrameHeader, PeerFrameError, access_body, check_body_crc};
use super::msg::ArchivedPeerMsg;
use super::{PEER_FRAME_ALIGN, PEER_FRAME_BYTES_MAX, PEER_FRAME_HEADER_BYTES};

/// Splits a byte stream into peer frames and hands out their messages, validated and
/// read in place.
///
/// ```
/// use transport::peer::*;
/// # use rkyv::util::AlignedVec;
/// let mut wire = AlignedVec::<16>::new();
/// encode_frame(&PeerMsg::Ack(Ack { zxid: zxid(1, 7) }), &mut wire)?;
/// encode_frame(&PeerMsg::Commit(Commit { zxid: zxid(1, 7) }), &mut wire)?;
///
/// let mut decoder = PeerDecoder::new();
/// let mut chunk: &[u8] = &wire; // what one socket read gave
/// while let Some(msg) = decoder.decode(&mut chunk)? {
///     match msg {
///         ArchivedPeerMsg::Ack(ack) => assert_eq!(ack.zxid.to_native(), zxid(1, 7)),
///         other => assert_eq!(other.name(), "COMMIT"),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PeerDecoder {
    frame_bytes_max: usize,
    /// The one frame being assembled from several chunks; starts 16-aligned.
    partial: AlignedVec<16>,
    /// Bytes of `partial` received so far (`partial` may be longer while lent out by
    /// [`PeerDecoder::spare`]).
    have: usize,
    /// The header of the frame in `partial`, once its 16 bytes are in and checked.
    header: Option<FrameHeader>,
    /// The frame in `partial` is whole and was handed out; drop it on the next call.
    handed_out: bool,
    /// Stream offset of the first byte of the frame being decoded.
    offset: u64,
    poisoned: Option<PeerFrameError>,
}

/// Where the next whole, crc-checked frame body is.
enum Found<'a> {
    /// In the caller's chunk: the whole frame, and its body's length.
    InChunk(&'a [u8], usize),
    /// In `partial`, `len` bytes after the header.
    InPartial(usize),
}

impl Default for PeerDecoder {
    fn default() -> Self {
        PeerDecoder::new()
    }
}

impl PeerDecoder {
    /// A decoder accepting bodies up to [`PEER_FRAME_BYTES_MAX`].
    pub fn new() -> Self {
        PeerDecoder::with_frame_bytes_max(PEER_FRAME_BYTES_MAX)
    }

    /// A decoder accepting bodies up to `frame_bytes_max` (capped at
    /// [`PEER_FRAME_BYTES_MAX`]).
    pub fn with_frame_bytes_max(frame_bytes_max: usize) -> Self {
        PeerDecoder {
            frame_bytes_max: frame_bytes_max.min(PEER_FRAME_BYTES_MAX),
            partial: AlignedVec::new(),
            have: 0,
            header: None,
            handed_out: false,
            offset: 0,
            poisoned: None,
        }
    }

    /// The body size limit.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Bytes consumed from the stream so far, including a partial frame's.
    pub fn stream_offset(&self) -> u64 {
        self.offset + self.pending_bytes() as u64
    }

    /// The error that poisoned this decoder, if any.
    pub fn poisoned(&self) -> Option<&PeerFrameError> {
        self.poisoned.as_ref()
    }

    /// Bytes of an incomplete frame held back, waiting for the rest.
    pub fn pending_bytes(&self) -> usize {
        if self.handed_out { 0 } else { self.have }
    }

    /// Capacity of the internal buffer (bounded by the frame limit).
    pub fn buffer_capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// How many more bytes the frame being assembled needs at least (the rest of the
    /// header, or the rest of the frame once the header is in).
    pub fn missing_bytes(&self) -> usize {
        match (&self.header, self.handed_out) {
            (_, true) => PEER_FRAME_HEADER_BYTES,
            (None, false) => PEER_FRAME_HEADER_BYTES.saturating_sub(self.have),
            (Some(h), false) => h.frame_bytes().saturating_sub(self.have),
        }
    }

    /// Takes the next message off the front of `chunk` (advancing it past the bytes
    /// used), buffering an incomplete frame. `Ok(None)`: `chunk` is used up and no whole
    /// frame is ready. Call again until it says `None`, then feed the next chunk.
    pub fn decode<'s, 'a: 's>(
        &'s mut self,
        chunk: &mut &'a [u8],
    ) -> Result<Option<&'s ArchivedPeerMsg>, PeerFrameError> {
        Ok(self.decode_framed(chunk)?.map(|(m, _)| m))
    }

    /// [`PeerDecoder::decode`], with the whole frame the message came in (header,
    /// body and padding: position-independent, so it can be sent on as it is).
    pub fn decode_framed<'s, 'a: 's>(
        &'s mut self,
        chunk: &mut &'a [u8],
    ) -> Result<Option<(&'s ArchivedPeerMsg, &'s [u8])>, PeerFrameError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        self.drop_handed_out();
        let offset = self.offset;
        let found = match self.locate(chunk) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.poison(e)),
        };
        // Borrow fields apart: `partial` lends the message, `poisoned` may be set.
        let (frame, len) = match found {
            Found::InChunk(frame, len) => (frame, len),
            Found::InPartial(len) => (&self.partial[..super::frame::frame_bytes(len)], len),
        };
        let body = &frame[PEER_FRAME_HEADER_BYTES..PEER_FRAME_HEADER_BYTES + len];
        match access_body(body, offset) {
            Ok(m) => Ok(Some((m, frame))),
            Err(e) => {
                self.poisoned = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Room to read the rest of the current frame into directly (exactly
    /// [`PeerDecoder::missing_bytes`] long, so a read cannot run into the next frame).
    /// Report what was written with [`PeerDecoder::filled`], then call
    /// [`PeerDecoder::decode`] with an empty chunk.
    pub fn spare(&mut self) -> &mut [u8] {
        self.drop_handed_out();
        let missing = self.missing_bytes();
        self.partial.resize(self.have + missing, 0);
        &mut self.partial[self.have..]
    }

    /// Marks `n` bytes of [`PeerDecoder::spare`] as received.
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.have + n <= self.partial.len(), "filled past spare");
        self.have = (self.have + n).min(self.partial.len());
    }

    fn poison(&mut self, e: PeerFrameError) -> PeerFrameError {
        self.poisoned = Some(e.clone());
        e
    }

    fn drop_handed_out(&mut self) {
        if self.handed_out {
            self.handed_out = false;
            self.have = 0;
            self.header = None;
            self.partial.clear();
        }
    }

    /// Finds the next whole frame, in place if possible, else by buffering.
    fn locate<'a>(&mut self, chunk: &mut &'a [u8]) -> Result<Option<Found<'a>>, PeerFrameError> {
        self.sync_partial();
        let aligned = (chunk.as_ptr() as usize).is_multiple_of(PEER_FRAME_ALIGN);
        if self.have == 0
            && aligned
            && let Some((frame, len)) = self.take_in_place(chunk)?
        {
            return Ok(Some(Found::InChunk(frame, len)));
        }
        self.fill_partial(chunk)
    }

    /// `partial` is longer than `have` after a `spare` that was not all filled.
    fn sync_partial(&mut self) {
        if self.partial.len() != self.have {
            self.partial.resize(self.have, 0);
        }
    }

    /// A whole frame at the front of an aligned chunk: check it, step past it, return
    /// it with its body's length. `None` (chunk untouched) if the frame is not whole.
    fn take_in_place<'a>(
        &mut self,
        chunk: &mut &'a [u8],
    ) -> Result<Option<(&'a [u8], usize)>, PeerFrameError> {
        let input: &'a [u8] = chunk;
        let Some(head) = input.first_chunk::<PEER_FRAME_HEADER_BYTES>() else {
            return Ok(None);
        };
        let header = FrameHeader::parse(head, self.offset, self.frame_bytes_max)?;
        let Some(frame) = input.get(..header.frame_bytes()) else {
            return Ok(None);
        };
        check_body_crc(&header, &frame[PEER_FRAME_HEADER_BYTES..], self.offset)?;
        *chunk = &input[frame.len()..];
        self.offset += frame.len() as u64;
        Ok(Some((frame, header.body_len)))
    }

    /// Copies what the current frame needs from `chunk` into `partial`, checking the
    /// header once it is in and the body crc once the frame is whole.
    fn fill_partial(
        &mut self,
        chunk: &mut &[u8],
    ) -> Result<Option<Found<'static>>, PeerFrameError> {
        if self.header.is_none() {
            self.copy_in(chunk, PEER_FRAME_HEADER_BYTES);
            let Some(head) = self.partial.first_chunk::<PEER_FRAME_HEADER_BYTES>() else {
                return Ok(None);
            };
            let header = FrameHeader::parse(head, self.offset, self.frame_bytes_max)?;
            // Exactly one frame's room: no doubling past the limit, no regrowth copies.
            self.partial
                .reserve_exact(header.frame_bytes().saturating_sub(self.have));
            self.header = Some(header);
        }
        let Some(header) = self.header else {
            return Ok(None);
        };
        self.copy_in(chunk, header.frame_bytes());
        if self.have < header.frame_bytes() {
            return Ok(None);
        }
        check_body_crc(
            &header,
            &self.partial[PEER_FRAME_HEADER_BYTES..],
            self.offset,
        )?;
        self.offset += header.frame_bytes() as u64;
        self.handed_out = true;
        Ok(Some(Found::InPartial(header.body_len)))
    }

    /// Moves bytes from the front of `chunk` into `partial` until it holds `upto`.
    fn copy_in(&mut self, chunk: &mut &[u8], upto: usize) {
        let n = upto.saturating_sub(self.have).min(chunk.len());
        let (take, rest) = chunk.split_at(n);
        self.partial.extend_from_slice(take);
        self.have += n;
        *chunk = rest;
    }
}
