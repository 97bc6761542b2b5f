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
            Request::Multi(m) | Request::MultiRead(m) => m.ops.iter().map(step_code).collect(),
            _ => Vec::new(),
        };
        Asked {
            op: req.op_code(),
            steps,
        }
    }
}

/// create, create2 and createContainer. Modes are settled the way ZooKeeper 3.8's
/// `PrepRequestProcessor` settles them, and the refusals it makes there are left to
/// prep, so that they take a zxid as ZooKeeper's error txns do:
/// - a flag value no mode has is refused (BADARGUMENTS) whatever else is wrong;
/// - create/create2 with the container flag logs a plain create: a persistent node;
/// - create/create2 with a TTL mode carries no TTL: prep answers BADARGUMENTS (or
///   UNIMPLEMENTED without `extendedTypesEnabled`);
/// - createContainer makes a container whatever the flags, named as they say (a
///   sequential container for sequential flags), except TTL flags, refused like a
///   TTL mode without a TTL.
fn create(r: CreateRequest, container: bool) -> Result<Op, ErrorCode> {
    let Some(flags) = CreateMode::from_code(r.flags) else {
        return Ok(bad_flags(r.path));
    };
    let mode = match (container, flags) {
        (false, CreateMode::Container) => CreateMode::Persistent,
        (_, m) => m,
    };
    Ok(Op::Create {
        path: r.path,
        data: r.data,
        acl: r.acl,
        mode,
        ttl_ms: None,
        container,
    })
}

/// ZooKeeper's `CreateMode.fromFlag` refusal, made in prep (it takes a zxid).
fn bad_flags(path: String) -> Op {
    Op::Malformed {
        path,
        error: ErrorCode::BadArguments,
        whole_multi: false,
    }
}

/// createTTL. A mode other than a TTL one with a TTL >= 0 is left to prep
/// (BADARGUMENTS with a zxid, as ZooKeeper's `validateTTL`); one with a negative TTL
/// is refused here, on purpose unlike ZooKeeper 3.8, which logs it as a TTL txn of that
/// TTL, then fails applying it and exits (and cannot replay its log).
fn create_ttl(r: CreateTtlRequest) -> Result<Op, ErrorCode> {
    let Some(mode) = CreateMode::from_code(r.flags) else {
        return Ok(bad_flags(r.path));
    };
    if !mode.is_ttl() && r.ttl < 0 {
        return Err(ErrorCode::BadArguments);
    }
    Ok(Op::Create {
        path: r.path,
        data: r.data,
        acl: r.acl,
        mode,
        ttl_ms: Some(r.ttl),
        container: false,
    })
}

fn watcher_type(code: i32) -> Result<WatcherType, ErrorCode> {
    WatcherType::from_code(code).ok_or(ErrorCode::BadArguments)
}

/// A multi step's type as ZooKeeper 3.8 re-derives it from a create step's flags
/// when it reads a multi (its `Op.create`), whatever opcode the step came with: TTL
/// flags make a createTTL step, the container flag a createContainer step, anything
/// else (unknown flags too) a create step. It decides the step's result shape.
fn step_code(op: &MultiOp) -> OpCode {
    let flags = match op {
        MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.flags,
        MultiOp::CreateTtl(r) => r.flags,
        other => return other.op_code(),
    };
    match CreateMode::from_code(flags) {
        Some(m) if m.is_ttl() => OpCode::CreateTtl,
        Some(CreateMode::Container) => OpCode::CreateContainer,
        _ => OpCode::Create,
    }
}

/// A multi step is the same record as the standalone request, converted as one,
/// except creates, whose type ZooKeeper 3.8 re-derives from their flags
/// ([`step_code`]): a createTTL step without TTL flags drops its TTL and makes what
/// the flags say (a container for the container flag); any other create step makes
/// a container for the container flag and a node as its flags say otherwise (not a
/// container for createContainer); a step with TTL flags that is not a createTTL
/// record fails the whole multi with MARSHALLINGERROR once prep reaches it
/// (ZooKeeper casts the record to the TTL one). (multiRead steps keep their watch
/// flag, as ZooKeeper honours it.)
fn multi_step(op: MultiOp) -> Result<Op, ErrorCode> {
    let code = step_code(&op);
    let (r, ttl) = match op {
        MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => (r, None),
        MultiOp::CreateTtl(r) => {
            let plain = CreateRequest {
                path: r.path,
                data: r.data,
                acl: r.acl,
                flags: r.flags,
            };
            (plain, Some(r.ttl))
        }
        other => return plain_step(other),
    };
    match (code, ttl) {
        (OpCode::CreateTtl, Some(ttl)) => create_ttl(CreateTtlRequest {
            path: r.path,
            data: r.data,
            acl: r.acl,
            flags: r.flags,
            ttl,
        }),
        (OpCode::CreateTtl, None) => Ok(Op::Malformed {
            path: r.path,
            error: ErrorCode::MarshallingError,
            whole_multi: true,
        }),
        (code, _) => create(r, code == OpCode::CreateContainer),
    }
}

/// A step other than a create, converted as the standalone request.
fn plain_step(op: MultiOp) -> Result<Op, ErrorCode> {
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
        Request::Reconfig(r) => Op::Reconfig {
            joining: r.joining_servers,
            leaving: r.leaving_servers,
            new_members: r.new_members,
            from_config: r.cur_config_id,
        },
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
        OpResult::Reconfig { data, stat } if op == OpCode::Reconfig => {
            Response::GetData(GetDataResponse {
                data: Some(data),
                stat,
            })
        }
        OpResult::SetData { stat }
        | OpResult::SetAcl { stat }
        | OpResult::Reconfig { stat, .. } => Response::Stat(StatResponse { stat }),
        OpResult::Delete | OpResult::Check | OpResult::Error(_) => Response::Empty,
    }
}

/// One result of a multi, shaped by the step's derived type ([`step_code`]): ZooKeeper
/// 3.8 answers a create step (a create2 one too, unlike a standalone create2) with a
/// plain create result (path only, type 1), createTTL and createContainer steps with
/// a create2 result with the stat.
fn step(op: OpCode, r: OpResult) -> WireOpResult {
    match r {
        OpResult::Create { path, .. } if matches!(op, OpCode::Create | OpCode::Create2) => {
            WireOpResult::Create { path }
        }
        OpResult::Create { path, stat } => WireOpResult::Create2 { path, stat },
        OpResult::Delete => WireOpResult::Delete,
        OpResult::SetData { stat }
        | OpResult::SetAcl { stat }
        | OpResult::Reconfig { stat, .. } => WireOpResult::SetData { stat },
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
        // createContainer: a container named as the flags say (ZooKeeper 3.8).
        let op = to_op(Request::CreateContainer(create_req(0))).unwrap();
        assert!(matches!(
            op,
            Op::Create {
                mode: CreateMode::Persistent,
                container: true,
                ..
            }
        ));
        let op = to_op(Request::CreateContainer(create_req(2))).unwrap();
        assert!(matches!(
            op,
            Op::Create {
                mode: CreateMode::PersistentSequential,
                container: true,
                ..
            }
        ));
        // The container flag on a plain create makes a persistent node in ZooKeeper
        // 3.8; TTL modes without a TTL are prep's to refuse (they take a zxid).
        assert!(matches!(
            to_op(Request::Create(create_req(4))).unwrap(),
            Op::Create {
                mode: CreateMode::Persistent,
                ttl_ms: None,
                ..
            }
        ));
        assert!(matches!(
            to_op(Request::Create2(create_req(5))).unwrap(),
            Op::Create {
                mode: CreateMode::PersistentWithTtl,
                ttl_ms: None,
                ..
            }
        ));
        assert!(matches!(
            to_op(Request::CreateContainer(create_req(6))).unwrap(),
            Op::Create {
                mode: CreateMode::PersistentSequentialWithTtl,
                ttl_ms: None,
                ..
            }
        ));
        // Unknown flags: refused by prep, with a zxid, as ZooKeeper's error txn.
        for req in [
            Request::Create(create_req(99)),
            Request::Create2(create_req(-1)),
            Request::CreateContainer(create_req(7)),
        ] {
            assert_eq!(
                to_op(req),
                Ok(Op::Malformed {
                    path: "/a".into(),
                    error: ErrorCode::BadArguments,
                    whole_multi: false
                })
            );
        }
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

    /// ZooKeeper 3.8 re-derives a multi create step's type from its flags (checked
    /// against it with ckdiff's malformed creates).
    #[test]
    fn multi_create_steps_take_their_type_from_their_flags() {
        let ttl_req = |flags: i32| CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: vec![],
            flags,
            ttl: 100,
        };
        let multi = Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::CreateContainer(create_req(3)),
                MultiOp::CreateTtl(ttl_req(0)),
                MultiOp::CreateTtl(ttl_req(4)),
                MultiOp::Create2(create_req(4)),
                MultiOp::CreateTtl(ttl_req(5)),
                MultiOp::Create(create_req(9)),
                MultiOp::Create2(create_req(6)),
            ],
        });
        assert_eq!(
            Asked::of(&multi).steps,
            [
                OpCode::Create,
                OpCode::Create,
                OpCode::CreateContainer,
                OpCode::CreateContainer,
                OpCode::CreateTtl,
                OpCode::Create,
                OpCode::CreateTtl,
            ]
        );
        let Ok(Op::Multi(steps)) = to_op(multi) else {
            panic!("a multi")
        };
        let shape: Vec<_> = steps
            .iter()
            .map(|s| match s {
                Op::Create {
                    mode,
                    ttl_ms,
                    container,
                    ..
                } => format!("{mode:?} {ttl_ms:?} {container}"),
                Op::Malformed {
                    error, whole_multi, ..
                } => format!("{error:?} {whole_multi}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "EphemeralSequential None false",
                "Persistent None false",
                "Container None true",
                "Container None true",
                "PersistentWithTtl Some(100) false",
                "BadArguments false",
                "MarshallingError true",
            ]
        );
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
    fn a_create2_step_in_a_multi_answers_like_zookeeper() {
        // Seen against ZooKeeper 3.8.0 by ckdiff: create2 steps get a create result
        // (no stat), createContainer and createTTL steps a create2 result.
        let req = Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::Create2(create_req(0)),
                MultiOp::CreateContainer(create_req(4)),
                MultiOp::Create(create_req(0)),
            ],
        });
        let created = |p: &str| OpResult::Create {
            path: p.into(),
            stat: Stat::default(),
        };
        let reply = Reply::Write(TxnResult::Multi(vec![
            created("/a"),
            created("/b"),
            created("/c"),
        ]));
        let Response::Multi(m) = to_response(&Asked::of(&req), reply) else {
            panic!("a multi answers a multi response");
        };
        assert_eq!(
            m.results,
            vec![
                WireOpResult::Create { path: "/a".into() },
                WireOpResult::Create2 {
                    path: "/b".into(),
                    stat: Stat::default()
                },
                WireOpResult::Create { path: "/c".into() },
            ]
        );
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
