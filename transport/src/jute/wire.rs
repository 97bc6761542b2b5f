//! Jute primitives: the encoding of `int`, `long`, `boolean`, `buffer`, `ustring` and
//! `vector`, a bounds-checked [`Reader`], and the [`Wire`] trait every record implements.
//!
//! Encoding (ZooKeeper's `BinaryOutputArchive`):
//! - `int`: i32 big-endian; `long`: i64 big-endian; `boolean`: one byte (0 or 1).
//! - `buffer`: i32 length then the bytes; length -1 is a null buffer. Modelled as
//!   `Option<Vec<u8>>` so null (`None`) and empty (`Some(vec![])`) stay distinct.
//! - `ustring`: i32 length then UTF-8; -1 is null. Modelled as `String` where ZooKeeper
//!   never sends null (paths, schemes, children): a null there is a decode error.
//!   [`NullableString`] (`Option<String>`) is used where null is meaningful.
//! - `vector<T>`: i32 count then the elements; -1 is null. Modelled as `Vec<T>`; null is
//!   a decode error (no ZooKeeper client or server sends one).
//!
//! Decoding contract:
//! - Every read is bounds-checked and returns a [`DecodeError`]; nothing panics.
//! - Nothing is allocated that the remaining input cannot justify: a buffer or string
//!   length is checked against the bytes left before allocating, and a vector count is
//!   checked against `count * T::MIN_BYTES` (the smallest encoding of one element).
//! - Booleans decode as ZooKeeper does (any nonzero byte is `true`); they encode as 0/1.
//! - Strings must be valid UTF-8 (ZooKeeper would substitute U+FFFD; we refuse instead,
//!   which keeps every decoded record re-encodable byte for byte).
//! - Trailing bytes after a record are left in the reader: top-level decoders ignore
//!   them, as ZooKeeper does, so callers that want strictness check [`Reader::finish`].

use thiserror::Error;

/// Why a jute record could not be decoded. Offsets are relative to the start of the
/// bytes given to the decoder: for `Request::decode` / `Response::decode` the record
/// after the header, for `*::decode_body` / `split` the frame body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated at offset {at}: needed {needed} bytes, {remaining} left")]
    Truncated {
        at: usize,
        needed: usize,
        remaining: usize,
    },
    /// A length or count below -1, or -1 (null) where null is not allowed.
    #[error("invalid length {len} at offset {at}")]
    InvalidLength { at: usize, len: i32 },
    /// A length or count that cannot fit in the bytes that remain.
    #[error("length {len} at offset {at} needs {needed} bytes, only {remaining} left")]
    LengthExceedsInput {
        at: usize,
        len: i32,
        needed: usize,
        remaining: usize,
    },
    /// A ustring that is not UTF-8.
    #[error("string at offset {at} is not valid UTF-8")]
    InvalidUtf8 { at: usize },
    /// A request or response type this codec does not know or does not accept here.
    #[error("unsupported opcode {op}")]
    UnsupportedOpCode { op: i32 },
    /// A multi header naming an op that cannot appear in a multi.
    #[error("opcode {op} at offset {at} is not allowed inside a multi")]
    InvalidMultiOp { at: usize, op: i32 },
    /// Bytes left after a record where the caller asked for an exact fit.
    #[error("{count} trailing bytes at offset {at}")]
    TrailingBytes { at: usize, count: usize },
}

/// A bounds-checked cursor over an encoded record.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unconsumed bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Ok if every byte was consumed, else [`DecodeError::TrailingBytes`].
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                at: self.pos,
                count,
            }),
        }
    }

    /// The next `n` bytes, consumed.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array::<4>().map(i32::from_be_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array::<8>().map(i64::from_be_bytes)
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        // Java's DataInput.readBoolean: any nonzero byte is true.
        self.array::<1>().map(|[b]| b != 0)
    }

    /// A length or count prefix: `Ok(None)` for -1 (null), an error below -1, and an
    /// error if `len * unit_bytes` exceeds what remains (so no caller over-allocates).
    pub fn length(&mut self, unit_bytes: usize) -> Result<Option<usize>, DecodeError> {
        debug_assert!(unit_bytes > 0, "every element takes at least one byte");
        let at = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(count) = usize::try_from(len) else {
            return Err(DecodeError::InvalidLength { at, len });
        };
        let needed = count.saturating_mul(unit_bytes);
        if needed > self.remaining() {
            return Err(DecodeError::LengthExceedsInput {
                at,
                len,
                needed,
                remaining: self.remaining(),
            });
        }
        Ok(Some(count))
    }

    /// Like [`Reader::length`], but null is an error.
    pub fn length_non_null(&mut self, unit_bytes: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        self.length(unit_bytes)?
            .ok_or(DecodeError::InvalidLength { at, len: -1 })
    }

    /// A jute `buffer` (None = null).
    pub fn buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.length(1)? {
            None => Ok(None),
            Some(n) => self.bytes(n).map(|b| Some(b.to_vec())),
        }
    }

    /// A jute `ustring` that may be null.
    pub fn nullable_string(&mut self) -> Result<Option<String>, DecodeError> {
        let Some(n) = self.length(1)? else {
            return Ok(None);
        };
        let at = self.pos;
        let b = self.bytes(n)?;
        std::str::from_utf8(b)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8 { at })
    }

    /// A jute `ustring` that must not be null.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        self.nullable_string()?
            .ok_or(DecodeError::InvalidLength { at, len: -1 })
    }
}

/// Appends an i32 big-endian.
pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an i64 big-endian.
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a boolean as one byte, 0 or 1.
pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

/// A length as jute's i32. Lengths come from records that fit in a frame (at most
/// `i32::MAX` bytes by construction of the length prefix), so this never saturates for
/// anything that can be sent.
pub fn len_i32(len: usize) -> i32 {
    debug_assert!(len <= i32::MAX as usize, "a record field exceeds 2 GiB");
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, len_i32(b.len()));
    out.extend_from_slice(b);
}

/// Appends a jute `buffer` (None = null, length -1).
pub fn put_buffer(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_i32(out, -1),
        Some(b) => put_bytes(out, b),
    }
}

/// Appends a non-null jute `ustring`.
pub fn put_string(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// A jute value: something with a fixed ZooKeeper encoding.
pub trait Wire: Sized {
    /// The fewest bytes any value of this type encodes to (bounds vector allocation).
    const MIN_BYTES: usize;

    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes from the start of `buf`, ignoring trailing bytes (as ZooKeeper does).
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(buf))
    }

    /// Decodes `buf` exactly: trailing bytes are an error.
    fn from_bytes_exact(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl Wire for i32 {
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, *self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i32()
    }
}

impl Wire for i64 {
    const MIN_BYTES: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        put_i64(out, *self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i64()
    }
}

impl Wire for bool {
    const MIN_BYTES: usize = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        put_bool(out, *self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool()
    }
}

/// A non-null `ustring`.
impl Wire for String {
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        put_string(out, self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string()
    }
}

/// A `ustring` that may be null (`None` encodes as length -1).
pub type NullableString = Option<String>;

impl Wire for Option<String> {
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        put_buffer(out, self.as_deref().map(str::as_bytes));
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.nullable_string()
    }
}

/// A jute `buffer`: `None` is null (length -1), distinct from empty.
pub type Buffer = Option<Vec<u8>>;

impl Wire for Option<Vec<u8>> {
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        put_buffer(out, self.as_deref());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.buffer()
    }
}

/// A non-null jute `vector<T>`.
impl<T: Wire> Wire for Vec<T> {
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        put_i32(out, len_i32(self.len()));
        for item in self {
            item.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // The count was checked against count * MIN_BYTES <= remaining, so the
        // capacity is bounded by the input size.
        let count = r.length_non_null(T::MIN_BYTES.max(1))?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(r)?);
        }
        Ok(items)
    }
}

/// Implements [`Wire`] for an existing struct whose fields are encoded in the order
/// listed.
macro_rules! impl_wire_record {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        impl $crate::jute::wire::Wire for $name {
            const MIN_BYTES: usize = 0 $(+ <$ty as $crate::jute::wire::Wire>::MIN_BYTES)*;
            #[allow(unused_variables)]
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) {
                $(<$ty as $crate::jute::wire::Wire>::encode(&self.$field, out);)*
            }
            #[allow(unused_variables)]
            fn decode(
                r: &mut $crate::jute::wire::Reader<'_>,
            ) -> ::std::result::Result<Self, $crate::jute::wire::DecodeError> {
                Ok($name { $($field: <$ty as $crate::jute::wire::Wire>::decode(r)?,)* })
            }
        }
    };
}

/// Defines a jute record: a struct whose fields are encoded in declaration order.
macro_rules! wire_record {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
        pub struct $name { $($(#[$fm])* pub $field: $ty,)* }
        $crate::jute::wire::impl_wire_record!($name { $($field: $ty),* });
    };
}

pub(crate) use impl_wire_record;
pub(crate) use wire_record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian() {
        assert_eq!(0x01020304i32.to_bytes(), [1, 2, 3, 4]);
        assert_eq!((-1i64).to_bytes(), [0xff; 8]);
        assert_eq!(true.to_bytes(), [1]);
        assert_eq!(bool::from_bytes(&[7]), Ok(true));
    }

    #[test]
    fn null_and_empty_buffers_differ() {
        let null: Buffer = None;
        let empty: Buffer = Some(vec![]);
        assert_eq!(null.to_bytes(), [0xff; 4]);
        assert_eq!(empty.to_bytes(), [0; 4]);
        assert_eq!(Buffer::from_bytes(&[0xff; 4]), Ok(None));
        assert_eq!(Buffer::from_bytes(&[0; 4]), Ok(Some(vec![])));
    }

    #[test]
    fn strings_and_vectors_refuse_null() {
        assert!(matches!(
            String::from_bytes(&[0xff; 4]),
            Err(DecodeError::InvalidLength { at: 0, len: -1 })
        ));
        assert!(matches!(
            Vec::<String>::from_bytes(&[0xff; 4]),
            Err(DecodeError::InvalidLength { at: 0, len: -1 })
        ));
        assert_eq!(NullableString::from_bytes(&[0xff; 4]), Ok(None));
    }

    #[test]
    fn huge_lengths_are_errors_not_allocations() {
        let mut frame = vec![0x7f, 0xff, 0xff, 0xff];
        frame.extend_from_slice(&[0u8; 16]);
        assert!(matches!(
            Buffer::from_bytes(&frame),
            Err(DecodeError::LengthExceedsInput { len: i32::MAX, .. })
        ));
        assert!(matches!(
            Vec::<String>::from_bytes(&frame),
            Err(DecodeError::LengthExceedsInput { len: i32::MAX, .. })
        ));
        // 4 strings need at least 16 bytes: 3 bytes of input cannot hold them.
        assert!(matches!(
            Vec::<String>::from_bytes(&[0, 0, 0, 4, 0, 0, 0]),
            Err(DecodeError::LengthExceedsInput { needed: 16, .. })
        ));
        assert!(matches!(
            Buffer::from_bytes(&[0xff, 0xff, 0xff, 0xfe]),
            Err(DecodeError::InvalidLength { len: -2, .. })
        ));
    }

    #[test]
    fn truncation_and_utf8_are_reported() {
        assert_eq!(
            i64::from_bytes(&[1, 2, 3]),
            Err(DecodeError::Truncated {
                at: 0,
                needed: 8,
                remaining: 3
            })
        );
        assert_eq!(
            String::from_bytes(&[0, 0, 0, 2, 0xc3, 0x28]),
            Err(DecodeError::InvalidUtf8 { at: 4 })
        );
        assert_eq!(
            i32::from_bytes_exact(&[0, 0, 0, 1, 9]),
            Err(DecodeError::TrailingBytes { at: 4, count: 1 })
        );
    }
}
