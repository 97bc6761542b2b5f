//! Shared by the `peer_*` tests: a proptest strategy for every [`PeerMsg`], one example
//! of each variant, and helpers to encode streams and decode them chunk by chunk.
//! Seeds are fixed (override with `PROPTEST_RNG_SEED=<u64>`); a failure prints the seed.

#![allow(dead_code)] // each test binary uses a different subset

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use transport::peer::*;

/// Default seed of the peer property tests.
pub const SEED_DEFAULT: u64 = 0x7065_6572_5eed;

/// A deterministic config: `cases` cases from a fixed (or `PROPTEST_RNG_SEED`) seed.
pub fn config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED_DEFAULT);
    eprintln!(
        "proptest seed {seed}; replay with PROPTEST_RNG_SEED={seed} cargo test -p transport --test <this test>"
    );
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn server_state() -> impl Strategy<Value = ServerState> {
    prop_oneof![
        Just(ServerState::Looking),
        Just(ServerState::Following),
        Just(ServerState::Leading),
        Just(ServerState::Observing),
    ]
}

fn role() -> impl Strategy<Value = LearnerRole> {
    prop_oneof![Just(LearnerRole::Participant), Just(LearnerRole::Observer)]
}

fn vote() -> impl Strategy<Value = Vote> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<i64>(),
        any::<u32>(),
        server_state(),
        any::<i64>(),
    )
        .prop_map(
            |(sender, round, leader, zxid, peer_epoch, state, config)| Vote {
                sender,
                round,
                leader,
                zxid,
                peer_epoch,
                state,
                config,
            },
        )
}

fn session_touch() -> impl Strategy<Value = SessionTouch> {
    (any::<i64>(), any::<i32>()).prop_map(|(session, timeout_ms)| SessionTouch {
        session,
        timeout_ms,
    })
}

/// Any peer message, payloads up to a few hundred bytes.
pub fn peer_msg() -> impl Strategy<Value = PeerMsg> {
    let z = any::<i64>;
    prop_oneof![
        vote().prop_map(PeerMsg::Vote),
        (any::<u64>(), any::<u32>(), z(), role()).prop_map(
            |(id, accepted_epoch, last_zxid, role)| {
                PeerMsg::FollowerInfo(FollowerInfo {
                    id,
                    accepted_epoch,
                    last_zxid,
                    role,
                })
            }
        ),
        any::<u32>().prop_map(|new_epoch| PeerMsg::LeaderInfo(LeaderInfo { new_epoch })),
        (any::<u32>(), z(), any::<bool>()).prop_map(|(current_epoch, last_zxid, repeat)| {
            PeerMsg::AckEpoch(AckEpoch {
                current_epoch,
                last_zxid,
                repeat,
            })
        }),
        z().prop_map(|last_zxid| PeerMsg::Diff(Diff { last_zxid })),
        z().prop_map(|zxid| PeerMsg::Trunc(Trunc { zxid })),
        (z(), any::<u64>())
            .prop_map(|(zxid, total_bytes)| PeerMsg::Snap(Snap { zxid, total_bytes })),
        (any::<u64>(), bytes(300))
            .prop_map(|(offset, bytes)| { PeerMsg::SnapChunk(SnapChunk { offset, bytes }) }),
        z().prop_map(|zxid| PeerMsg::NewLeader(NewLeader { zxid })),
        z().prop_map(|zxid| PeerMsg::AckNewLeader(AckNewLeader { zxid })),
        Just(PeerMsg::UpToDate),
        (z(), bytes(300)).prop_map(|(zxid, txn)| PeerMsg::Proposal(Proposal { zxid, txn })),
        z().prop_map(|zxid| PeerMsg::Ack(Ack { zxid })),
        z().prop_map(|zxid| PeerMsg::Commit(Commit { zxid })),
        (z(), bytes(300)).prop_map(|(zxid, txn)| PeerMsg::Inform(Inform { zxid, txn })),
        (z(), prop::collection::vec(session_touch(), 0..20), z()).prop_map(
            |(zxid, sessions, config)| PeerMsg::Ping(Ping {
                zxid,
                sessions,
                config
            })
        ),
        (any::<i64>(), any::<i32>(), any::<i32>(), bytes(300)).prop_map(
            |(session, cxid, op, body)| PeerMsg::Request(Request {
                session,
                cxid,
                op,
                body
            })
        ),
        (any::<i64>(), any::<i32>()).prop_map(|(session, timeout_ms)| {
            PeerMsg::Revalidate(Revalidate {
                session,
                timeout_ms,
            })
        }),
        (any::<i64>(), any::<bool>()).prop_map(|(session, valid)| PeerMsg::RevalidateReply(
            RevalidateReply { session, valid }
        )),
        (any::<i64>(), any::<i32>(), any::<i64>()).prop_map(|(session, cxid, zxid)| PeerMsg::Sync(
            Sync {
                session,
                cxid,
                zxid
            }
        )),
        (any::<u32>(), any::<u64>(), any::<u8>()).prop_map(|(protocol, server_id, port)| {
            PeerMsg::Hello(Hello {
                protocol,
                server_id,
                port,
            })
        }),
    ]
}

/// One example of every variant (so a new variant without a test shows up here).
pub fn one_of_each() -> Vec<PeerMsg> {
    let z = zxid(3, 17);
    vec![
        PeerMsg::Vote(Vote {
            sender: 2,
            round: 9,
            leader: 3,
            zxid: z,
            peer_epoch: 3,
            state: ServerState::Looking,
            config: z,
        }),
        PeerMsg::FollowerInfo(FollowerInfo {
            id: 2,
            accepted_epoch: 3,
            last_zxid: z,
            role: LearnerRole::Observer,
        }),
        PeerMsg::LeaderInfo(LeaderInfo { new_epoch: 4 }),
        PeerMsg::AckEpoch(AckEpoch {
            current_epoch: 3,
            last_zxid: z,
            repeat: false,
        }),
        PeerMsg::Diff(Diff { last_zxid: z }),
        PeerMsg::Trunc(Trunc { zxid: z }),
        PeerMsg::Snap(Snap {
            zxid: z,
            total_bytes: 1 << 30,
        }),
        PeerMsg::SnapChunk(SnapChunk {
            offset: 4096,
            bytes: vec![0xa5; 77],
        }),
        PeerMsg::NewLeader(NewLeader { zxid: zxid(4, 0) }),
        PeerMsg::AckNewLeader(AckNewLeader { zxid: zxid(4, 0) }),
        PeerMsg::UpToDate,
        PeerMsg::Proposal(Proposal {
            zxid: zxid(4, 1),
            txn: (0..100).collect(),
        }),
        PeerMsg::Ack(Ack { zxid: zxid(4, 1) }),
        PeerMsg::Commit(Commit { zxid: zxid(4, 1) }),
        PeerMsg::Inform(Inform {
            zxid: zxid(4, 1),
            txn: vec![1, 2, 3],
        }),
        PeerMsg::Ping(Ping {
            zxid: zxid(4, 1),
            sessions: vec![
                SessionTouch {
                    session: 0x100,
                    timeout_ms: 30_000,
                },
                SessionTouch {
                    session: -1,
                    timeout_ms: 4_000,
                },
            ],
            config: zxid(3, 9),
        }),
        PeerMsg::Request(Request {
            session: 0x100,
            cxid: 42,
            op: 1,
            body: b"/app/x".to_vec(),
        }),
        PeerMsg::Revalidate(Revalidate {
            session: 0x100,
            timeout_ms: 30_000,
        }),
        PeerMsg::RevalidateReply(RevalidateReply {
            session: 0x100,
            valid: true,
        }),
        PeerMsg::Sync(Sync {
            session: 0x100,
            cxid: 7,
            zxid: 0x200,
        }),
        PeerMsg::Hello(Hello {
            protocol: HELLO_PROTOCOL,
            server_id: 3,
            port: HELLO_PORT_QUORUM,
        }),
        PeerMsg::Members(Members {
            version: z,
            text: "server.1=127.0.0.1:2888:3888:participant\nversion=300000011".into(),
        }),
    ]
}

/// All messages framed back to back in one aligned buffer.
pub fn encode_all(msgs: &[PeerMsg]) -> AlignedVec<16> {
    let mut out = AlignedVec::new();
    for m in msgs {
        encode_frame(m, &mut out).expect("test messages fit a frame");
    }
    out
}

/// Feeds `chunks` in order; returns every message decoded (deserialized, after checking
/// that the archive equals it) or the first error.
pub fn decode_chunks<'c>(
    decoder: &mut PeerDecoder,
    chunks: impl IntoIterator<Item = &'c [u8]>,
) -> Result<Vec<PeerMsg>, PeerFrameError> {
    let mut got = Vec::new();
    for mut chunk in chunks {
        while let Some(archived) = decoder.decode(&mut chunk)? {
            let owned = rkyv::deserialize::<PeerMsg, rancor::Error>(archived).expect("validated");
            assert!(archived == &owned, "archived and deserialized agree");
            got.push(owned);
        }
        assert!(
            chunk.is_empty(),
            "decode used the whole chunk before saying None"
        );
    }
    Ok(got)
}

/// Builds a header with the given fields and a correct header crc.
pub fn header(magic: u16, version: u8, flags: u8, body_len: u32, body_crc: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..2].copy_from_slice(&magic.to_le_bytes());
    h[2] = version;
    h[3] = flags;
    h[4..8].copy_from_slice(&body_len.to_le_bytes());
    h[8..12].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A frame whose header and crcs are right around an arbitrary `body`.
pub fn frame_around(body: &[u8]) -> AlignedVec<16> {
    let mut padded = body.to_vec();
    padded.resize(align16(body.len()), 0);
    let h = header(
        PEER_FRAME_MAGIC,
        PEER_FRAME_VERSION,
        0,
        body.len() as u32,
        crc32c::crc32c(&padded),
    );
    let mut out = AlignedVec::new();
    out.extend_from_slice(&h);
    out.extend_from_slice(&padded);
    out
}
