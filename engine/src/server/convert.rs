//! Between the wire and the engine: decoded jute [`Request`]s become [`Op`]s, and the
//! engine's [`Reply`]s become jute [`Response`]s shaped for the opcode that asked.
//!
//! Several opcodes share an `Op` (create, create2, createContainer and createTTL are
//! all `Op::Create`) but not a reply shape, so the connection remembers each
//! outstanding request's [`Asked`] and renders the reply with it.

use transport::jute::multi::{MultiOp, MultiResponse, OpResult as WireOpResult};
use transport::jute::records::*;
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::{AddWatchMode, CreateMode, ErrorCode, OpCode, WatcherType};

use crate::op::Op;
use crate::shard::Reply;
use crate::tree::read::ReadResult;
use crate::txn::{OpResult, TxnResult};

/// What a request asked, as far as its reply's shape depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub op: OpCode,
    /// For multi / multiRead: each step's opcode.
    pub steps: Vec<OpCode>,
}

impl Asked {
    pub fn of(req: &Request) -> Asked {
        let steps = match req {
            Request::Multi(m) | Request::MultiRead(m) => {
                m.ops.iter().map(MultiOp::op_code).collect()
            }
            _ => Vec::new(),
        };
        Asked {
            op: req.op_code(),
            steps,
        }
    }
}

fn create_mode(flags: i32) -> Result<CreateMode, ErrorCode> {
    CreateMode::from_code(flags).ok_or(ErrorCode::BadArguments)
}

fn create(r: CreateRequest, container: bool) -> Result<Op, ErrorCode> {
    let mode = if container {
        CreateMode::Container
    } else {
        create_mode(r.flags)?
    };
    if !container && (mode.is_container() || mode.is_ttl()) {
        // create/create2 cannot ask for these: ZooKeeper answers BADARGUMENTS.
        return Err(ErrorCode::BadArguments);
    }
    Ok(Op::Create {
        path: r.path,
        data: r.data,
        acl: r.acl,
        mode,
        ttl_ms: None,
    })
}

fn create_ttl(r: CreateTtlRequest) -> Result<Op, ErrorCode> {
    let mode = create_mode(r.flags)?;
    if !mode.is_ttl() {
        return Err(ErrorCode::BadArguments);
    }
    Ok(Op::Create {
        path: r.path,
        data: r.data,
        acl: r.acl,
        mode,
        ttl_ms: Some(r.ttl),
    })
}

fn watcher_type(code: i32) -> Result<WatcherType, ErrorCode> {
    WatcherType::from_code(code).ok_or(ErrorCode::BadArguments)
}

/// A multi step is the same record as the standalone request: convert it as one.
/// (multiRead steps keep their watch flag, as ZooKeeper honours it.)
fn multi_step(op: MultiOp) -> Result<Op, ErrorCode> {
    to_op(match op {
        MultiOp::Create(r) => Request::Create(r),
        MultiOp::Create2(r) => Request::Create2(r),
        MultiOp::CreateContainer(r) => Request::CreateContainer(r),
        MultiOp::CreateTtl(r) => Request::CreateTtl(r),
        MultiOp::Delete(r) => Request::Delete(r),
        MultiOp::SetData(r) => Request::SetData(r),
        MultiOp::Check(r) => Request::Check(r),
        MultiOp::GetChildren(r) => Request::GetChildren(r),
        MultiOp::GetData(r) => Request::GetData(r),
    })
}

/// The engine op for a client request. Ping, auth and connect are the connection's
/// business and never reach here; unsupported ops answer `Unimplemented`.
pub fn to_op(req: Request) -> Result<Op, ErrorCode> {
    Ok(match req {
        Request::Create(r) | Request::Create2(r) => create(r, false)?,
        Request::CreateContainer(r) => create(r, true)?,
        Request::CreateTtl(r) => create_ttl(r)?,
        Request::Delete(r) => Op::Delete {
            path: r.path,
            version: r.version,
        },
        Request::Exists(r) => Op::Exists {
            path: r.path,
            watch: r.watch,
        },
        Request::GetData(r) => Op::GetData {
            path: r.path,
            watch: r.watch,
        },
        Request::SetData(r) => Op::SetData {
            path: r.path,
            data: r.data,
            version: r.version,
        },
        Request::GetAcl(r) => Op::GetAcl { path: r.path },
        Request::SetAcl(r) => Op::SetAcl {
            path: r.path,
            acl: r.acl,
            version: r.version,
        },
        Request::GetChildren(r) => Op::GetChildren {
            path: r.path,
            watch: r.watch,
        },
        Request::GetChildren2(r) => Op::GetChildren2 {
            path: r.path,
            watch: r.watch,
        },
        Request::GetAllChildrenNumber(r) => Op::GetAllChildrenNumber { path: r.path },
        Request::GetEphemerals(r) => Op::GetEphemerals {
            prefix: r.prefix_path,
        },
        Request::Sync(r) => Op::Sync { path: r.path },
        Request::Check(r) => Op::Check {
            path: r.path,
            version: r.version,
        },
        Request::Multi(m) => Op::Multi(
            m.ops
                .into_iter()
                .map(multi_step)
                .collect::<Result<_, _>>()?,
        ),
        Request::MultiRead(m) => Op::MultiRead(
            m.ops
                .into_iter()
                .map(multi_step)
                .collect::<Result<_, _>>()?,
        ),
        Request::CheckWatches(r) => Op::CheckWatches {
            path: r.path,
            kind: watcher_type(r.watcher_type)?,
        },
        Request::RemoveWatches(r) => Op::RemoveWatches {
            path: r.path,
            kind: watcher_type(r.watcher_type)?,
        },
        Request::AddWatch(r) => {
            let mode = AddWatchMode::from_code(r.mode).ok_or(ErrorCode::BadArguments)?;
            Op::AddWatch { path: r.path, mode }
        }
        Request::SetWatches(w) => Op::SetWatches {
            relative_zxid: w.relative_zxid,
            data: w.data_watches,
            exist: w.exist_watches,
            child: w.child_watches,
            persistent: Vec::new(),
            persistent_recursive: Vec::new(),
        },
        Request::SetWatches2(w) => Op::SetWatches {
            relative_zxid: w.relative_zxid,
            data: w.data_watches,
            exist: w.exist_watches,
            child: w.child_watches,
            persistent: w.persistent_watches,
            persistent_recursive: w.persistent_recursive_watches,
        },
        Request::CloseSession => Op::CloseSession,
        Request::Reconfig(_) => return Err(ErrorCode::ReconfigDisabled),
        Request::WhoAmI => Op::WhoAmI,
        Request::Ping | Request::Auth(_) | Request::Sasl(_) => {
            return Err(ErrorCode::Unimplemented);
        }
    })
}

/// The reply body for `reply` to a request that asked `asked`. An error reply has no
/// body (the header carries the error), except a multi, whose header error stays 0.
pub fn to_response(asked: &Asked, reply: Reply) -> Response {
    match reply {
        Reply::Write(TxnResult::Op(r)) => single(asked.op, r),
        Reply::Write(TxnResult::Multi(rs)) => {
            let results = rs
                .into_iter()
                .zip(asked.steps.iter().copied())
                .map(|(r, op)| step(op, r))
                .collect();
            Response::Multi(MultiResponse { results })
        }
        Reply::Write(TxnResult::CreateSession { .. } | TxnResult::CloseSession) => Response::Empty,
        Reply::Read(Ok(r)) => read(asked, r),
        Reply::Read(Err(_)) => Response::Empty,
    }
}

fn single(op: OpCode, r: OpResult) -> Response {
    match r {
        OpResult::Create { path, .. } if op == OpCode::Create => {
            Response::Create(CreateResponse { path })
        }
        OpResult::Create { path, stat } => Response::Create2(Create2Response { path, stat }),
        OpResult::SetData { stat } | OpResult::SetAcl { stat } => {
            Response::Stat(StatResponse { stat })
        }
        OpResult::Delete | OpResult::Check | OpResult::Error(_) => Response::Empty,
    }
}

fn step(op: OpCode, r: OpResult) -> WireOpResult {
    match r {
        OpResult::Create { path, .. } if op == OpCode::Create => WireOpResult::Create { path },
        OpResult::Create { path, stat } => WireOpResult::Create2 { path, stat },
        OpResult::Delete => WireOpResult::Delete,
        OpResult::SetData { stat } | OpResult::SetAcl { stat } => WireOpResult::SetData { stat },
        OpResult::Check => WireOpResult::Check,
        OpResult::Error(e) => WireOpResult::Error { err: e.code() },
    }
}

fn read(asked: &Asked, r: ReadResult) -> Response {
    match r {
        ReadResult::Sync { path } => Response::Sync(SyncResponse { path }),
        ReadResult::Exists { stat } => Response::Stat(StatResponse { stat }),
        ReadResult::GetData { data, stat } => Response::GetData(GetDataResponse { data, stat }),
        ReadResult::GetChildren { children } => {
            Response::GetChildren(GetChildrenResponse { children })
        }
        ReadResult::GetChildren2 { children, stat } => {
            Response::GetChildren2(GetChildren2Response { children, stat })
        }
        ReadResult::GetAcl { acl, stat } => Response::GetAcl(GetAclResponse { acl, stat }),
        ReadResult::GetAllChildrenNumber { count } => {
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                total_number: count,
            })
        }
        ReadResult::GetEphemerals { paths } => {
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals: paths })
        }
        ReadResult::WhoAmI { ids } => Response::WhoAmI(WhoAmIResponse {
            client_info: ids
                .into_iter()
                .map(|id| ClientInfo {
                    user: user_name(&id.scheme, id.id),
                    auth_scheme: id.scheme,
                })
                .collect(),
        }),
        ReadResult::AddWatch => Response::add_watch_ok(),
        ReadResult::RemoveWatches
        | ReadResult::CheckWatches
        | ReadResult::SetWatches { .. }
        | ReadResult::Empty => Response::Empty,
        ReadResult::MultiRead(rs) => {
            let results = rs
                .into_iter()
                .map(|r| match r {
                    Ok(ReadResult::GetData { data, stat }) => WireOpResult::GetData { data, stat },
                    Ok(ReadResult::GetChildren { children }) => {
                        WireOpResult::GetChildren { children }
                    }
                    Ok(other) => {
                        debug_assert!(
                            false,
                            "multiRead holds getData/getChildren only, got {other:?} for {asked:?}"
                        );
                        WireOpResult::Error {
                            err: ErrorCode::SystemError.code(),
                        }
                    }
                    Err(e) => WireOpResult::Error { err: e.code() },
                })
                .collect();
            Response::Multi(MultiResponse { results })
        }
    }
}

/// The user whoAmI names for an id: ZooKeeper's providers report a digest id
/// (`user:base64(sha1)`) by its user name alone, other schemes by the whole id.
fn user_name(scheme: &str, id: String) -> String {
    match id.split_once(':') {
        Some((user, _)) if scheme == "digest" => user.to_string(),
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::multi::MultiRequest;
    use transport::jute::{Acl, Stat};

    fn create_req(flags: i32) -> CreateRequest {
        CreateRequest {
            path: "/a".into(),
            data: Some(vec![1]),
            acl: Acl::open_unsafe(),
            flags,
        }
    }

    #[test]
    fn create_flavours_map_to_one_op_with_the_right_mode() {
        let op = to_op(Request::Create(create_req(3))).unwrap();
        assert!(matches!(
            op,
            Op::Create {
                mode: CreateMode::EphemeralSequential,
                ..
            }
        ));
        let op = to_op(Request::CreateContainer(create_req(0))).unwrap();
        assert!(matches!(
            op,
            Op::Create {
                mode: CreateMode::Container,
                ..
            }
        ));
        assert_eq!(
            to_op(Request::Create(create_req(4))),
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(
            to_op(Request::Create(create_req(99))),
            Err(ErrorCode::BadArguments)
        );
        let ttl = CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: vec![],
            flags: 5,
            ttl: 100,
        };
        assert!(matches!(
            to_op(Request::CreateTtl(ttl)).unwrap(),
            Op::Create {
                ttl_ms: Some(100),
                ..
            }
        ));
    }

    #[test]
    fn whoami_names_digest_users_like_zookeeper() {
        assert_eq!(to_op(Request::WhoAmI), Ok(Op::WhoAmI));
        let asked = Asked::of(&Request::WhoAmI);
        let ids = vec![
            transport::jute::Id {
                scheme: "digest".into(),
                id: "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=".into(),
            },
            transport::jute::Id {
                scheme: "super".into(),
                id: "".into(),
            },
        ];
        let resp = to_response(&asked, Reply::Read(Ok(ReadResult::WhoAmI { ids })));
        let Response::WhoAmI(w) = resp else {
            panic!("expected a WhoAmI response, got {resp:?}");
        };
        let got: Vec<_> = w
            .client_info
            .iter()
            .map(|c| (c.auth_scheme.as_str(), c.user.as_str()))
            .collect();
        assert_eq!(got, [("digest", "alice"), ("super", "")]);
    }

    #[test]
    fn reply_shape_follows_the_asking_opcode() {
        let r = || {
            Reply::Write(TxnResult::Op(OpResult::Create {
                path: "/a".into(),
                stat: Stat::default(),
            }))
        };
        let create = Asked {
            op: OpCode::Create,
            steps: vec![],
        };
        let create2 = Asked {
            op: OpCode::Create2,
            steps: vec![],
        };
        assert!(matches!(to_response(&create, r()), Response::Create(_)));
        assert!(matches!(to_response(&create2, r()), Response::Create2(_)));
    }

    #[test]
    fn failed_multi_keeps_per_step_results() {
        let req = Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::Create(create_req(0)),
                MultiOp::Delete(DeleteRequest {
                    path: "/x".into(),
                    version: 3,
                }),
            ],
        });
        let asked = Asked::of(&req);
        let reply = Reply::Write(TxnResult::Multi(vec![
            OpResult::Error(ErrorCode::Ok),
            OpResult::Error(ErrorCode::BadVersion),
        ]));
        let Response::Multi(m) = to_response(&asked, reply) else {
            panic!("multi reply")
        };
        assert_eq!(
            m.results,
            vec![
                WireOpResult::Error { err: 0 },
                WireOpResult::Error { err: -103 }
            ]
        );
    }
}
