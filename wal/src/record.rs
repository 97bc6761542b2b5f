//! The record format: encoding, decoding and validation of one log record.
//!
//! ```text
//!  byte 0      2       3      4           8                16         20         24
//!       +------+-------+------+-----------+----------------+----------+----------+---------------+-----+
//!       |magic |version| kind |payload_len|      zxid      |  crc32c  | reserved | payload ...   | pad |
//!       | u16  |  u8   |  u8  |    u32    |      u64       |   u32    | u32 = 0  | payload_len B | 0-7 |
//!       +------+-------+------+-----------+----------------+----------+----------+---------------+-----+
//! ```
//! All integers are little-endian. `crc32c` covers bytes `0..16`, `20..24` and the
//! payload, so every header field and every payload byte is checked. A record starts at an
//! 8-byte-aligned offset and is padded with zeros to a multiple of 8, so its payload (at
//! record offset 24) is 8-byte aligned in the segment too: the engine validates rkyv
//! archives in place from the map.
//!
//! Invariant: a header whose first 24 bytes are all zero marks the end of the written
//! data (segments are pre-written with zeros, and truncation zeroes what it removes).

/// Magic number at the start of every record (chosen to be unlikely in text or zeros).
pub const RECORD_MAGIC: u16 = 0xA5C3;
/// Format version written into every record.
pub const RECORD_VERSION: u8 = 1;
/// Size of the record header; the payload starts right after it.
pub const RECORD_HEADER_BYTES: usize = 24;

const _: () = assert!(
    RECORD_HEADER_BYTES.is_multiple_of(8),
    "payloads must stay 8-byte aligned"
);

/// Rounds `n` up to a multiple of 8.
pub const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Bytes a record with `payload_len` bytes of payload takes in a segment, padding included.
pub const fn encoded_len(payload_len: usize) -> usize {
    align8(RECORD_HEADER_BYTES + payload_len)
}

/// One record read from the log; `payload` borrows from the segment map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Transaction id, `epoch << 32 | counter`.
    pub zxid: u64,
    /// Caller-defined record kind.
    pub kind: u8,
    /// The opaque payload, 8-byte aligned when read from a segment.
    pub payload: &'a [u8],
}

/// Writes the header of a record into `header` (which must be [`RECORD_HEADER_BYTES`]
/// long), computing the crc over the header and `payload`.
pub fn encode_header(header: &mut [u8], zxid: u64, kind: u8, payload: &[u8]) {
    debug_assert_eq!(
        header.len(),
        RECORD_HEADER_BYTES,
        "header buffer has the header size"
    );
    debug_assert!(
        payload.len() <= u32::MAX as usize,
        "payload length fits the u32 field"
    );
    header[0..2].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    header[2] = RECORD_VERSION;
    header[3] = kind;
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&zxid.to_le_bytes());
    header[20..24].copy_from_slice(&0u32.to_le_bytes());
    let crc = record_crc(header, payload);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes a whole record (header, payload, padding) into a new vector.
pub fn encode(zxid: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(payload.len())];
    encode_header(&mut out[..RECORD_HEADER_BYTES], zxid, kind, payload);
    out[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + payload.len()].copy_from_slice(payload);
    out
}

fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header[0..16]);
    let crc = crc32c::crc32c_append(crc, &header[20..24]);
    crc32c::crc32c_append(crc, payload)
}

/// What is found at an offset of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record, taking `len` bytes (padding included).
    Record { record: RecordRef<'a>, len: usize },
    /// The header is all zeros (or fewer than a header's bytes remain): end of data.
    End,
    /// Something that is not a valid record; the reason says what is wrong.
    Invalid(&'static str),
}

/// Decodes the record at the start of `buf` (which extends to the end of the segment).
/// Never panics, whatever the bytes.
pub fn decode(buf: &[u8], record_bytes_max: u32) -> Decoded<'_> {
    if buf.len() < RECORD_HEADER_BYTES {
        return if buf.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Invalid("partial header")
        };
    }
    let header = &buf[..RECORD_HEADER_BYTES];
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    if u16::from_le_bytes([header[0], header[1]]) != RECORD_MAGIC {
        return Decoded::Invalid("bad magic");
    }
    if header[2] != RECORD_VERSION {
        return Decoded::Invalid("unknown record version");
    }
    let payload_len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if payload_len > record_bytes_max {
        return Decoded::Invalid("payload length over record_bytes_max");
    }
    let len = encoded_len(payload_len as usize);
    if len > buf.len() {
        return Decoded::Invalid("record runs past the end of the segment");
    }
    let payload = &buf[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + payload_len as usize];
    let crc = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    if crc != record_crc(header, payload) {
        return Decoded::Invalid("crc mismatch");
    }
    if header[20..24] != [0; 4] {
        return Decoded::Invalid("reserved bytes are not zero");
    }
    // Padding is not covered by the crc, but it must be zero: non-zero padding means the
    // bytes around this record are not what was written.
    if buf[RECORD_HEADER_BYTES + payload_len as usize..len]
        .iter()
        .any(|&b| b != 0)
    {
        return Decoded::Invalid("non-zero padding");
    }
    let zxid = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    Decoded::Record {
        record: RecordRef {
            zxid,
            kind: header[3],
            payload,
        },
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(zxid in any::<u64>(), kind in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = encode(zxid, kind, &payload);
            prop_assert_eq!(buf.len() % 8, 0);
            buf.extend_from_slice(&[0u8; 40]);
            match decode(&buf, 1024) {
                Decoded::Record { record, len } => {
                    prop_assert_eq!(record, RecordRef { zxid, kind, payload: &payload });
                    prop_assert_eq!(len, encoded_len(payload.len()));
                    prop_assert_eq!(decode(&buf[len..], 1024), Decoded::End);
                }
                other => prop_assert!(false, "decoded {:?}", other),
            }
        }

        #[test]
        fn any_single_byte_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 0..100), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = encode(7, 1, &payload);
            let i = at.index(buf.len());
            buf[i] ^= 1 << bit;
            let ok = matches!(decode(&buf, 1024), Decoded::Record { .. });
            prop_assert!(!ok, "flip at {} undetected", i);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, 64);
        }

        #[test]
        fn every_strict_prefix_is_rejected(payload in proptest::collection::vec(1u8..=255, 0..100), cut in any::<prop::sample::Index>()) {
            let buf = encode(9, 2, &payload);
            // Zeroing from `cut` must change something: cut at or before the last non-zero byte.
            let last_nonzero = buf.iter().rposition(|&b| b != 0).expect("the magic is not zero");
            let cut = cut.index(last_nonzero + 1);
            // A torn record: the tail of the segment after `cut` is zeros.
            let mut torn = buf[..cut].to_vec();
            torn.resize(buf.len() + 64, 0);
            let ok = matches!(decode(&torn, 1024), Decoded::Record { .. });
            prop_assert!(!ok, "cut at {} undetected", cut);
        }
    }

    #[test]
    fn too_long_payload_is_invalid() {
        let buf = encode(1, 0, &[1; 100]);
        assert_eq!(
            decode(&buf, 99),
            Decoded::Invalid("payload length over record_bytes_max")
        );
    }
}
