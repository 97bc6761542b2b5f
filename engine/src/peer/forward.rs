//! A learner's client write on its way to the leader: the request's [`Op`] and the
//! identities its connection authenticated as (the leader checks ACLs with them, as
//! ZooKeeper's leader does with the forwarded request's auth info), archived with
//! rkyv into `transport::peer::Request::body`.
//!
//! Only writes travel ([`Op::is_write`]); the leader refuses anything else. The
//! mirror types below exist because `Op` holds wire enums (`CreateMode`, `ErrorCode`)
//! that are kept free of rkyv; they carry those as their numeric codes.

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use transport::jute::{Acl, CreateMode, ErrorCode, Id};

use crate::op::{Op, SESSION_PASSWORD_LEN};

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Forwarded {
    auth: Vec<Id>,
    op: FwdOp,
}

/// A whole request: rkyv's derive cannot archive a recursive enum without bounds
/// annotations, and a multi's steps are never multis, so the nesting is spelled out.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
enum FwdOp {
    One(FwdStep),
    Multi(Vec<FwdStep>),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
enum FwdStep {
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        mode: i32,
        ttl_ms: Option<i64>,
        container: bool,
    },
    Malformed {
        path: String,
        error: i32,
        whole_multi: bool,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; SESSION_PASSWORD_LEN],
    },
    CloseSession,
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        new_members: Option<String>,
        from_config: i64,
    },
}

fn to_fwd(op: &Op) -> Result<FwdOp, String> {
    Ok(match op {
        Op::Multi(ops) => FwdOp::Multi(ops.iter().map(to_step).collect::<Result<_, _>>()?),
        other => FwdOp::One(to_step(other)?),
    })
}

fn to_step(op: &Op) -> Result<FwdStep, String> {
    Ok(match op {
        Op::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
            container,
        } => FwdStep::Create {
            path: path.clone(),
            data: data.clone(),
            acl: acl.clone(),
            mode: mode.code(),
            ttl_ms: *ttl_ms,
            container: *container,
        },
        Op::Malformed {
            path,
            error,
            whole_multi,
        } => FwdStep::Malformed {
            path: path.clone(),
            error: error.code(),
            whole_multi: *whole_multi,
        },
        Op::Delete { path, version } => FwdStep::Delete {
            path: path.clone(),
            version: *version,
        },
        Op::SetData {
            path,
            data,
            version,
        } => FwdStep::SetData {
            path: path.clone(),
            data: data.clone(),
            version: *version,
        },
        Op::SetAcl { path, acl, version } => FwdStep::SetAcl {
            path: path.clone(),
            acl: acl.clone(),
            version: *version,
        },
        Op::Check { path, version } => FwdStep::Check {
            path: path.clone(),
            version: *version,
        },
        Op::CreateSession {
            session_id,
            timeout_ms,
            password,
        } => FwdStep::CreateSession {
            session_id: *session_id,
            timeout_ms: *timeout_ms,
            password: *password,
        },
        Op::CloseSession => FwdStep::CloseSession,
        Op::Reconfig {
            joining,
            leaving,
            new_members,
            from_config,
        } => FwdStep::Reconfig {
            joining: joining.clone(),
            leaving: leaving.clone(),
            new_members: new_members.clone(),
            from_config: *from_config,
        },
        other => return Err(format!("{other:?} is not forwarded to the leader")),
    })
}

fn from_fwd(op: FwdOp) -> Result<Op, String> {
    Ok(match op {
        FwdOp::Multi(steps) => {
            Op::Multi(steps.into_iter().map(from_step).collect::<Result<_, _>>()?)
        }
        FwdOp::One(step) => from_step(step)?,
    })
}

fn from_step(op: FwdStep) -> Result<Op, String> {
    Ok(match op {
        FwdStep::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
            container,
        } => Op::Create {
            path,
            data,
            acl,
            mode: CreateMode::from_code(mode).ok_or(format!("unknown create mode {mode}"))?,
            ttl_ms,
            container,
        },
        FwdStep::Malformed {
            path,
            error,
            whole_multi,
        } => Op::Malformed {
            path,
            error: ErrorCode::from_code(error).ok_or(format!("unknown error code {error}"))?,
            whole_multi,
        },
        FwdStep::Delete { path, version } => Op::Delete { path, version },
        FwdStep::SetData {
            path,
            data,
            version,
        } => Op::SetData {
            path,
            data,
            version,
        },
        FwdStep::SetAcl { path, acl, version } => Op::SetAcl { path, acl, version },
        FwdStep::Check { path, version } => Op::Check { path, version },
        FwdStep::CreateSession {
            session_id,
            timeout_ms,
            password,
        } => Op::CreateSession {
            session_id,
            timeout_ms,
            password,
        },
        FwdStep::CloseSession => Op::CloseSession,
        FwdStep::Reconfig {
            joining,
            leaving,
            new_members,
            from_config,
        } => Op::Reconfig {
            joining,
            leaving,
            new_members,
            from_config,
        },
    })
}

/// The body of a forwarded write.
pub fn encode(auth: &[Id], op: &Op) -> Result<Vec<u8>, String> {
    let f = Forwarded {
        auth: auth.to_vec(),
        op: to_fwd(op)?,
    };
    rkyv::to_bytes::<BoxedError>(&f)
        .map(|b| b.to_vec())
        .map_err(|e| format!("cannot archive a forwarded request: {e}"))
}

/// A forwarded write's auth and op; an error for bytes that are not one (the link
/// that carried them is then dropped).
pub fn decode(body: &[u8]) -> Result<(Vec<Id>, Op), String> {
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    let f: Forwarded = rkyv::from_bytes::<Forwarded, BoxedError>(&aligned)
        .map_err(|e| format!("a forwarded request does not decode: {e}"))?;
    let op = from_fwd(f.op)?;
    if !op.is_write() {
        return Err("a forwarded request is not a write".into());
    }
    Ok((f.auth, op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forwarded_write_round_trips() {
        let acl = Acl::open_unsafe();
        let create = Op::Create {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: acl.clone(),
            mode: CreateMode::EphemeralSequential,
            ttl_ms: None,
            container: false,
        };
        let ops = vec![
            create.clone(),
            Op::Malformed {
                path: "/m".into(),
                error: ErrorCode::BadArguments,
                whole_multi: true,
            },
            Op::Delete {
                path: "/a".into(),
                version: 3,
            },
            Op::SetData {
                path: "/a".into(),
                data: None,
                version: -1,
            },
            Op::SetAcl {
                path: "/a".into(),
                acl,
                version: 0,
            },
            Op::Check {
                path: "/a".into(),
                version: 1,
            },
            Op::Multi(vec![create]),
            Op::CreateSession {
                session_id: 0x0100_0000_0000_0007,
                timeout_ms: 4000,
                password: [7; SESSION_PASSWORD_LEN],
            },
            Op::CloseSession,
        ];
        let auth = vec![Id::new("digest", "u:p"), Id::new("ip", "127.0.0.1")];
        for op in ops {
            let body = encode(&auth, &op).unwrap();
            assert_eq!(decode(&body).unwrap(), (auth.clone(), op));
        }
    }

    #[test]
    fn reads_and_garbage_are_refused() {
        assert!(encode(&[], &Op::Ping).is_err());
        assert!(decode(b"not an archive at all").is_err());
        assert!(decode(&[]).is_err());
    }
}
