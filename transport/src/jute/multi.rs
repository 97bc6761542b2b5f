//! `multi` / `multiRead` framing (ZooKeeper's `MultiOperationRecord` and
//! `MultiResponse`).
//!
//! A multi request body is a sequence of `MultiHeader { type, done: false, err: -1 }`
//! each followed by the op's request record, ended by `MultiHeader { -1, true, -1 }`.
//! The reply body is the same shape: per op a `MultiHeader { type, false, err }` and the
//! result record, then the same end marker. Result types:
//!
//! | result                    | header type | header err | body                    |
//! |---------------------------|-------------|------------|-------------------------|
//! | create                    | 1           | 0          | `CreateResponse`        |
//! | create2 / TTL / container | 15          | 0          | `Create2Response`       |
//! | delete                    | 2           | 0          | none                    |
//! | setData                   | 5           | 0          | `SetDataResponse`       |
//! | check                     | 13          | 0          | none                    |
//! | getChildren (multiRead)   | 8           | 0          | `GetChildrenResponse`   |
//! | getData (multiRead)       | 4           | 0          | `GetDataResponse`       |
//! | error                     | -1          | code       | `ErrorResponse { code }`|
//!
//! A failed multi is still a successful reply (ReplyHeader err 0) whose results are
//! all errors: 0 for the ops before the failing one, its code, then -2
//! (RuntimeInconsistency) for the rest. The decoder, like ZooKeeper's, ends at the first
//! header with `done` set and takes the error code of an error result from its body.
//! Whether a multi mixes reads and writes is for the engine to judge
//! ([`MultiRequest::is_read_only`]): the codec accepts every op in both opcodes.

use super::codes::OpCode;
use super::data::Stat;
use super::records::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, GetChildrenRequest,
    GetDataRequest, SetDataRequest,
};
use super::wire::{Buffer, DecodeError, Reader, Wire, put_bool, put_i32};

/// `MultiHeader`: precedes each op (and result) of a multi, and ends the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MultiHeader {
    /// Raw opcode of the op or result (-1 for an error result and the end marker).
    pub op: i32,
    /// Set only on the end marker.
    pub done: bool,
    /// -1 in requests; in replies 0, or the code of an error result.
    pub err: i32,
}

impl MultiHeader {
    /// The end-of-list marker, as every client and ZooKeeper write it.
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };
}

crate::jute::wire::impl_wire_record!(MultiHeader {
    op: i32,
    done: bool,
    err: i32
});

/// One op of a multi / multiRead request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    /// multiRead only.
    GetChildren(GetChildrenRequest),
    /// multiRead only.
    GetData(GetDataRequest),
}

impl MultiOp {
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// Whether the op belongs in a multiRead rather than a multi.
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    /// The path the op acts on.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(out),
            MultiOp::CreateTtl(r) => r.encode(out),
            MultiOp::Delete(r) => r.encode(out),
            MultiOp::SetData(r) => r.encode(out),
            MultiOp::Check(r) => r.encode(out),
            MultiOp::GetChildren(r) => r.encode(out),
            MultiOp::GetData(r) => r.encode(out),
        }
    }

    fn decode_body(at: usize, op: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match OpCode::from_code(op) {
            Some(OpCode::Create) => MultiOp::Create(Wire::decode(r)?),
            Some(OpCode::Create2) => MultiOp::Create2(Wire::decode(r)?),
            Some(OpCode::CreateContainer) => MultiOp::CreateContainer(Wire::decode(r)?),
            Some(OpCode::CreateTtl) => MultiOp::CreateTtl(Wire::decode(r)?),
            Some(OpCode::Delete) => MultiOp::Delete(Wire::decode(r)?),
            Some(OpCode::SetData) => MultiOp::SetData(Wire::decode(r)?),
            Some(OpCode::Check) => MultiOp::Check(Wire::decode(r)?),
            Some(OpCode::GetChildren) => MultiOp::GetChildren(Wire::decode(r)?),
            Some(OpCode::GetData) => MultiOp::GetData(Wire::decode(r)?),
            _ => return Err(DecodeError::InvalidMultiOp { at, op }),
        })
    }
}

/// The body of a multi or multiRead request (`MultiOperationRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct MultiRequest {
    pub ops: Vec<MultiOp>,
}

impl MultiRequest {
    /// True if every op is a read (getData / getChildren): a multiRead.
    pub fn is_read_only(&self) -> bool {
        self.ops.iter().all(MultiOp::is_read)
    }
}

fn put_header(out: &mut Vec<u8>, op: i32, err: i32) {
    put_i32(out, op);
    put_bool(out, false);
    put_i32(out, err);
}

impl Wire for MultiRequest {
    const MIN_BYTES: usize = MultiHeader::MIN_BYTES;

    fn encode(&self, out: &mut Vec<u8>) {
        for op in &self.ops {
            put_header(out, op.op_code().code(), -1);
            op.encode_body(out);
        }
        MultiHeader::END.encode(out);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // Each op consumes at least a header, so the loop is bounded by the input.
        let mut ops = Vec::new();
        loop {
            let at = r.position();
            let h = MultiHeader::decode(r)?;
            if h.done {
                return Ok(MultiRequest { ops });
            }
            ops.push(MultiOp::decode_body(at, h.op, r)?);
        }
    }
}

/// One result of a multi / multiRead reply (ZooKeeper's `OpResult`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpResult {
    /// Result of a create op.
    Create {
        path: String,
    },
    /// Result of a create2, createTTL or createContainer op.
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetChildren {
        children: Vec<String>,
    },
    GetData {
        data: Buffer,
        stat: Stat,
    },
    /// A failed op, or (code 0) an op rolled back because another failed.
    Error {
        err: i32,
    },
}

impl OpResult {
    /// The raw type written in the result's header.
    pub fn type_code(&self) -> i32 {
        match self {
            OpResult::Create { .. } => OpCode::Create.code(),
            OpResult::Create2 { .. } => OpCode::Create2.code(),
            OpResult::Delete => OpCode::Delete.code(),
            OpResult::SetData { .. } => OpCode::SetData.code(),
            OpResult::Check => OpCode::Check.code(),
            OpResult::GetChildren { .. } => OpCode::GetChildren.code(),
            OpResult::GetData { .. } => OpCode::GetData.code(),
            OpResult::Error { .. } => OpCode::Error.code(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let err = match self {
            OpResult::Error { err } => *err,
            _ => 0,
        };
        put_header(out, self.type_code(), err);
        match self {
            OpResult::Create { path } => path.encode(out),
            OpResult::Create2 { path, stat } => {
                path.encode(out);
                stat.encode(out);
            }
            OpResult::Delete | OpResult::Check => {}
            OpResult::SetData { stat } => stat.encode(out),
            OpResult::GetChildren { children } => children.encode(out),
            OpResult::GetData { data, stat } => {
                data.encode(out);
                stat.encode(out);
            }
            OpResult::Error { err } => err.encode(out),
        }
    }

    fn decode_body(at: usize, op: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match OpCode::from_code(op) {
            Some(OpCode::Create) => OpResult::Create {
                path: Wire::decode(r)?,
            },
            Some(OpCode::Create2) => OpResult::Create2 {
                path: Wire::decode(r)?,
                stat: Wire::decode(r)?,
            },
            Some(OpCode::Delete) => OpResult::Delete,
            Some(OpCode::SetData) => OpResult::SetData {
                stat: Wire::decode(r)?,
            },
            Some(OpCode::Check) => OpResult::Check,
            Some(OpCode::GetChildren) => OpResult::GetChildren {
                children: Wire::decode(r)?,
            },
            Some(OpCode::GetData) => OpResult::GetData {
                data: Wire::decode(r)?,
                stat: Wire::decode(r)?,
            },
            Some(OpCode::Error) => OpResult::Error { err: r.i32()? },
            _ => return Err(DecodeError::InvalidMultiOp { at, op }),
        })
    }
}

/// The body of a multi or multiRead reply (`MultiResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct MultiResponse {
    pub results: Vec<OpResult>,
}

impl MultiResponse {
    /// The first nonzero error code among the results, if any (a failed multi).
    pub fn first_error(&self) -> Option<i32> {
        self.results.iter().find_map(|r| match r {
            OpResult::Error { err } if *err != 0 => Some(*err),
            _ => None,
        })
    }
}

impl Wire for MultiResponse {
    const MIN_BYTES: usize = MultiHeader::MIN_BYTES;

    fn encode(&self, out: &mut Vec<u8>) {
        for result in &self.results {
            result.encode(out);
        }
        MultiHeader::END.encode(out);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let at = r.position();
            let h = MultiHeader::decode(r)?;
            if h.done {
                return Ok(MultiResponse { results });
            }
            results.push(OpResult::decode_body(at, h.op, r)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_multi_is_just_the_end_marker() {
        let bytes = MultiRequest::default().to_bytes();
        assert_eq!(bytes, [0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            MultiRequest::from_bytes(&bytes),
            Ok(MultiRequest::default())
        );
    }

    #[test]
    fn failed_multi_results_round_trip() {
        let rsp = MultiResponse {
            results: vec![
                OpResult::Error { err: 0 },
                OpResult::Error { err: -101 },
                OpResult::Error { err: -2 },
            ],
        };
        let bytes = rsp.to_bytes();
        // header(-1, false, 0) + body 0
        assert_eq!(
            &bytes[..13],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(MultiResponse::from_bytes_exact(&bytes), Ok(rsp.clone()));
        assert_eq!(rsp.first_error(), Some(-101));
    }

    #[test]
    fn ops_not_allowed_in_a_multi_are_refused() {
        let mut bytes = Vec::new();
        put_header(&mut bytes, OpCode::Sync.code(), -1);
        assert_eq!(
            MultiRequest::from_bytes(&bytes),
            Err(DecodeError::InvalidMultiOp { at: 0, op: 9 })
        );
    }
}
