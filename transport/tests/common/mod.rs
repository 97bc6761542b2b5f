//! Strategies shared by the property tests: one per jute record, plus [`Request`] and
//! (op, [`Response`]) pairs. Seeds are fixed so runs are deterministic; override with
//! `PROPTEST_RNG_SEED=<u64>` to explore, and the failing seed is printed to replay.

#![allow(dead_code)] // each test binary uses a different subset

pub mod golden;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use transport::jute::*;

/// Default seed of every property test in this crate.
pub const SEED_DEFAULT: u64 = 0x6a75_7465_5eed;

/// A deterministic config: `cases` cases from a fixed (or `PROPTEST_RNG_SEED`) seed, no
/// regression files written into the source tree.
pub fn config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED_DEFAULT);
    // Shown by the test harness only when the test fails.
    eprintln!("proptest seed {seed}; replay with PROPTEST_RNG_SEED={seed} cargo test -p transport");
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "/[a-z0-9_./-]{0,16}",
        1 => "\\PC{0,8}",
    ]
}

pub fn nullable_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(string())
}

pub fn buffer() -> impl Strategy<Value = Buffer> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
}

pub fn strings() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(string(), 0..5)
}

pub fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

pub fn id() -> impl Strategy<Value = Id> {
    (string(), string()).prop_map(|(scheme, id)| Id { scheme, id })
}

pub fn acls() -> impl Strategy<Value = Vec<Acl>> {
    proptest::collection::vec(
        (any::<i32>(), id()).prop_map(|(perms, id)| Acl { perms, id }),
        0..4,
    )
}

pub fn create() -> impl Strategy<Value = CreateRequest> {
    (string(), buffer(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest {
        path,
        data,
        acl,
        flags,
    })
}

pub fn create_ttl() -> impl Strategy<Value = CreateTtlRequest> {
    (create(), any::<i64>()).prop_map(|(c, ttl)| CreateTtlRequest {
        path: c.path,
        data: c.data,
        acl: c.acl,
        flags: c.flags,
        ttl,
    })
}

pub fn path_version() -> impl Strategy<Value = (String, i32)> {
    (string(), any::<i32>())
}

pub fn path_watch() -> impl Strategy<Value = (String, bool)> {
    (string(), any::<bool>())
}

pub fn delete() -> impl Strategy<Value = DeleteRequest> {
    path_version().prop_map(|(path, version)| DeleteRequest { path, version })
}

pub fn set_data() -> impl Strategy<Value = SetDataRequest> {
    (string(), buffer(), any::<i32>()).prop_map(|(path, data, version)| SetDataRequest {
        path,
        data,
        version,
    })
}

pub fn check() -> impl Strategy<Value = CheckVersionRequest> {
    path_version().prop_map(|(path, version)| CheckVersionRequest { path, version })
}

pub fn get_data() -> impl Strategy<Value = GetDataRequest> {
    path_watch().prop_map(|(path, watch)| GetDataRequest { path, watch })
}

pub fn get_children() -> impl Strategy<Value = GetChildrenRequest> {
    path_watch().prop_map(|(path, watch)| GetChildrenRequest { path, watch })
}

pub fn set_watches() -> impl Strategy<Value = SetWatches> {
    (any::<i64>(), strings(), strings(), strings()).prop_map(|(z, d, e, c)| SetWatches {
        relative_zxid: z,
        data_watches: d,
        exist_watches: e,
        child_watches: c,
    })
}

pub fn set_watches2() -> impl Strategy<Value = SetWatches2> {
    (set_watches(), strings(), strings()).prop_map(|(s, p, pr)| SetWatches2 {
        relative_zxid: s.relative_zxid,
        data_watches: s.data_watches,
        exist_watches: s.exist_watches,
        child_watches: s.child_watches,
        persistent_watches: p,
        persistent_recursive_watches: pr,
    })
}

pub fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create().prop_map(MultiOp::Create),
        create().prop_map(MultiOp::Create2),
        create().prop_map(MultiOp::CreateContainer),
        create_ttl().prop_map(MultiOp::CreateTtl),
        delete().prop_map(MultiOp::Delete),
        set_data().prop_map(MultiOp::SetData),
        check().prop_map(MultiOp::Check),
        get_children().prop_map(MultiOp::GetChildren),
        get_data().prop_map(MultiOp::GetData),
    ]
}

pub fn multi_request() -> impl Strategy<Value = MultiRequest> {
    proptest::collection::vec(multi_op(), 0..5).prop_map(|ops| MultiRequest { ops })
}

pub fn op_result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        string().prop_map(|path| OpResult::Create { path }),
        (string(), stat()).prop_map(|(path, stat)| OpResult::Create2 { path, stat }),
        Just(OpResult::Delete),
        stat().prop_map(|stat| OpResult::SetData { stat }),
        Just(OpResult::Check),
        strings().prop_map(|children| OpResult::GetChildren { children }),
        (buffer(), stat()).prop_map(|(data, stat)| OpResult::GetData { data, stat }),
        any::<i32>().prop_map(|err| OpResult::Error { err }),
    ]
}

pub fn multi_response() -> impl Strategy<Value = MultiResponse> {
    proptest::collection::vec(op_result(), 0..5).prop_map(|results| MultiResponse { results })
}

pub fn reconfig() -> impl Strategy<Value = ReconfigRequest> {
    (
        nullable_string(),
        nullable_string(),
        nullable_string(),
        any::<i64>(),
    )
        .prop_map(|(j, l, n, c)| ReconfigRequest {
            joining_servers: j,
            leaving_servers: l,
            new_members: n,
            cur_config_id: c,
        })
}

pub fn auth() -> impl Strategy<Value = AuthPacket> {
    (any::<i32>(), string(), buffer()).prop_map(|(auth_type, scheme, auth)| AuthPacket {
        auth_type,
        scheme,
        auth,
    })
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create().prop_map(Request::Create),
        create().prop_map(Request::Create2),
        create().prop_map(Request::CreateContainer),
        create_ttl().prop_map(Request::CreateTtl),
        delete().prop_map(Request::Delete),
        path_watch().prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
        get_data().prop_map(Request::GetData),
        set_data().prop_map(Request::SetData),
        string().prop_map(|path| Request::GetAcl(GetAclRequest { path })),
        (string(), acls(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        get_children().prop_map(Request::GetChildren),
        path_watch()
            .prop_map(|(path, watch)| Request::GetChildren2(GetChildren2Request { path, watch })),
        string()
            .prop_map(|path| Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path })),
        string()
            .prop_map(|prefix_path| Request::GetEphemerals(GetEphemeralsRequest { prefix_path })),
        string().prop_map(|path| Request::Sync(SyncRequest { path })),
        check().prop_map(Request::Check),
        multi_request().prop_map(Request::Multi),
        multi_request().prop_map(Request::MultiRead),
        reconfig().prop_map(Request::Reconfig),
        path_version().prop_map(|(path, watcher_type)| {
            Request::CheckWatches(CheckWatchesRequest { path, watcher_type })
        }),
        path_version().prop_map(|(path, watcher_type)| {
            Request::RemoveWatches(RemoveWatchesRequest { path, watcher_type })
        }),
        path_version().prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        Just(Request::Ping),
        auth().prop_map(Request::Auth),
        set_watches().prop_map(Request::SetWatches),
        set_watches2().prop_map(Request::SetWatches2),
        buffer().prop_map(|token| Request::Sasl(GetSaslRequest { token })),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

/// A reply body together with an opcode whose reply has that shape.
pub fn op_and_response() -> impl Strategy<Value = (OpCode, Response)> {
    let any_of = |ops: &'static [OpCode]| proptest::sample::select(ops);
    prop_oneof![
        any_of(&[
            OpCode::Delete,
            OpCode::Ping,
            OpCode::Auth,
            OpCode::SetWatches,
            OpCode::SetWatches2,
            OpCode::CheckWatches,
            OpCode::RemoveWatches,
            OpCode::CloseSession,
        ])
        .prop_map(|op| (op, Response::Empty)),
        (any::<i32>(), any::<i32>(), string()).prop_map(|(event_type, state, path)| (
            OpCode::Notification,
            Response::Notification(WatcherEvent {
                event_type,
                state,
                path
            })
        )),
        string().prop_map(|path| (OpCode::Create, Response::Create(CreateResponse { path }))),
        (
            any_of(&[OpCode::Create2, OpCode::CreateTtl, OpCode::CreateContainer]),
            string(),
            stat()
        )
            .prop_map(|(op, path, stat)| (op, Response::Create2(Create2Response { path, stat }))),
        (
            any_of(&[
                OpCode::Exists,
                OpCode::SetData,
                OpCode::SetAcl,
                OpCode::Check
            ]),
            stat()
        )
            .prop_map(|(op, stat)| (op, Response::Stat(StatResponse { stat }))),
        (
            any_of(&[OpCode::GetData, OpCode::Reconfig]),
            buffer(),
            stat()
        )
            .prop_map(|(op, data, stat)| (op, Response::GetData(GetDataResponse { data, stat }))),
        (acls(), stat()).prop_map(|(acl, stat)| (
            OpCode::GetAcl,
            Response::GetAcl(GetAclResponse { acl, stat })
        )),
        strings().prop_map(|children| (
            OpCode::GetChildren,
            Response::GetChildren(GetChildrenResponse { children })
        )),
        (strings(), stat()).prop_map(|(children, stat)| (
            OpCode::GetChildren2,
            Response::GetChildren2(GetChildren2Response { children, stat })
        )),
        any::<i32>().prop_map(|total_number| (
            OpCode::GetAllChildrenNumber,
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number })
        )),
        strings().prop_map(|ephemerals| (
            OpCode::GetEphemerals,
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals })
        )),
        string().prop_map(|path| (OpCode::Sync, Response::Sync(SyncResponse { path }))),
        (
            any_of(&[OpCode::Multi, OpCode::MultiRead]),
            multi_response()
        )
            .prop_map(|(op, m)| (op, Response::Multi(m))),
        any::<i32>().prop_map(|err| (OpCode::AddWatch, Response::AddWatch(ErrorResponse { err }))),
        proptest::collection::vec(
            (string(), string()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }),
            0..3
        )
        .prop_map(|client_info| (
            OpCode::WhoAmI,
            Response::WhoAmI(WhoAmIResponse { client_info })
        )),
        buffer().prop_map(|token| (OpCode::Sasl, Response::Sasl(SetSaslResponse { token }))),
    ]
}

pub fn connect_request() -> impl Strategy<Value = ConnectRequest> {
    (
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        buffer(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(protocol_version, last_zxid_seen, time_out, session_id, passwd, read_only)| {
                ConnectRequest {
                    protocol_version,
                    last_zxid_seen,
                    time_out,
                    session_id,
                    passwd,
                    read_only,
                }
            },
        )
}

pub fn connect_response() -> impl Strategy<Value = ConnectResponse> {
    (
        any::<i32>(),
        any::<i32>(),
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 16)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(protocol_version, time_out, session_id, passwd, read_only)| ConnectResponse {
                protocol_version,
                time_out,
                session_id,
                passwd,
                read_only,
            },
        )
}
