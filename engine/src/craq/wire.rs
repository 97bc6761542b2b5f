//! The chain's messages on the peer wire (`transport::peer::Chain`, one frame shape
//! for all of them) and back. Decoding checks what each kind uses, so the core never
//! sees a malformed message: a bad one is an error, and the runtime drops that link
//! (as for any bad frame).

use transport::peer::{
    ArchivedChain, ArchivedChainConfig, CHAIN_CONFIG_MEMBERS_MAX, CHAIN_KEYS_MAX, Chain, PeerMsg,
};

use super::{CHAIN_MEMBERS_MAX, ChainConfig, ChainMsg, Entry, Keys};

const PROPAGATE: u8 = 1;
const ACK: u8 = 2;
const NEED: u8 = 3;
const RESEND: u8 = 4;
const FLOOR: u8 = 5;
const QUERY: u8 = 6;
const QUERY_REPLY: u8 = 7;
/// The runtime's read leases (not the core's): "still my leader / still following
/// you?" and its answer, with the lease time the leader has left.
const LEASE_ASK: u8 = 8;
const LEASE_GRANT: u8 = 9;
const DURABLE: u8 = 10;

const _: () = assert!(CHAIN_MEMBERS_MAX <= CHAIN_CONFIG_MEMBERS_MAX);

/// What a chain frame carries: a message for the core, or the runtime's lease
/// exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainIn {
    Core(ChainMsg),
    LeaseAsk {
        version: u64,
        seq: u64,
    },
    LeaseGrant {
        version: u64,
        seq: u64,
        remaining_ms: u64,
    },
}

pub fn lease_ask(version: u64, seq: u64) -> PeerMsg {
    PeerMsg::Chain(Chain {
        qid: seq,
        ..frame(version, LEASE_ASK)
    })
}

pub fn lease_grant(version: u64, seq: u64, remaining_ms: u64) -> PeerMsg {
    PeerMsg::Chain(Chain {
        qid: seq,
        zxid: remaining_ms.min(i64::MAX as u64) as i64,
        ..frame(version, LEASE_GRANT)
    })
}

/// What a validated chain frame says.
pub fn decode(a: &ArchivedChain) -> Result<ChainIn, String> {
    let (version, qid) = (a.version.to_native(), a.qid.to_native());
    let plain = a.txn.is_empty() && a.keys.is_empty() && !a.keys_all && a.other == 0;
    match a.kind {
        LEASE_ASK if plain && a.zxid == 0 => Ok(ChainIn::LeaseAsk { version, seq: qid }),
        LEASE_GRANT if plain && a.zxid >= 0 => Ok(ChainIn::LeaseGrant {
            version,
            seq: qid,
            remaining_ms: a.zxid.to_native() as u64,
        }),
        LEASE_ASK | LEASE_GRANT => Err(format!("a {} with fields it does not use", name(a.kind))),
        _ => from_peer(a).map(ChainIn::Core),
    }
}

/// A configuration on the wire (the lease is granted separately).
pub fn config_to_peer(cfg: &ChainConfig) -> PeerMsg {
    PeerMsg::ChainConfig(transport::peer::ChainConfig {
        version: cfg.version,
        chain: cfg.chain.clone(),
        lease_ms: 0,
    })
}

/// A configuration from the wire: a non-empty chain of distinct members, within
/// [`CHAIN_MEMBERS_MAX`].
pub fn config_from_peer(a: &ArchivedChainConfig) -> Result<ChainConfig, String> {
    let chain: Vec<u64> = a.chain.iter().map(|m| m.to_native()).collect();
    let mut sorted = chain.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if chain.is_empty() || chain.len() > CHAIN_MEMBERS_MAX || sorted.len() != chain.len() {
        return Err(format!("a chain configuration of members {chain:?}"));
    }
    Ok(ChainConfig {
        version: a.version.to_native(),
        chain,
    })
}

fn frame(version: u64, kind: u8) -> Chain {
    Chain {
        txn: Vec::new(),
        version,
        kind,
        zxid: 0,
        other: 0,
        qid: 0,
        keys: Vec::new(),
        keys_all: false,
    }
}

/// The wire form of `msg`. An entry naming more than [`CHAIN_KEYS_MAX`] keys goes as
/// touching everything (reads then ask the tail: slower, never wrong).
pub fn to_peer(msg: &ChainMsg) -> PeerMsg {
    let m = match msg {
        ChainMsg::Propagate { version, entry } => {
            let (keys, keys_all) = match &entry.keys {
                Keys::Some(k) if k.len() <= CHAIN_KEYS_MAX => (k.clone(), false),
                _ => (Vec::new(), true),
            };
            Chain {
                txn: entry.txn.to_vec(),
                zxid: entry.zxid,
                other: entry.prev,
                keys,
                keys_all,
                ..frame(*version, PROPAGATE)
            }
        }
        ChainMsg::Ack { version, zxid } => Chain {
            zxid: *zxid,
            ..frame(*version, ACK)
        },
        ChainMsg::Need {
            version,
            after,
            committed,
        } => Chain {
            zxid: *after,
            other: *committed,
            ..frame(*version, NEED)
        },
        ChainMsg::Resend {
            version,
            after,
            upto,
        } => Chain {
            zxid: *after,
            other: *upto,
            ..frame(*version, RESEND)
        },
        ChainMsg::Floor { version, zxid } => Chain {
            zxid: *zxid,
            ..frame(*version, FLOOR)
        },
        ChainMsg::Durable { version, zxid } => Chain {
            zxid: *zxid,
            ..frame(*version, DURABLE)
        },
        ChainMsg::Query { version, qid } => Chain {
            qid: *qid,
            ..frame(*version, QUERY)
        },
        ChainMsg::QueryReply { version, qid, zxid } => Chain {
            qid: *qid,
            zxid: *zxid,
            ..frame(*version, QUERY_REPLY)
        },
    };
    PeerMsg::Chain(m)
}

/// The chain message a validated frame carries.
pub fn from_peer(a: &ArchivedChain) -> Result<ChainMsg, String> {
    let version = a.version.to_native();
    let (zxid, other, qid) = (a.zxid.to_native(), a.other.to_native(), a.qid.to_native());
    let plain = a.txn.is_empty() && a.keys.is_empty() && !a.keys_all;
    let msg = match a.kind {
        PROPAGATE => {
            if zxid <= other || other < 0 {
                return Err(format!(
                    "an entry {zxid:#x} that does not follow {other:#x}"
                ));
            }
            if a.keys.len() > CHAIN_KEYS_MAX {
                return Err(format!("an entry naming {} keys", a.keys.len()));
            }
            let keys = if a.keys_all {
                Keys::All
            } else {
                Keys::Some(a.keys.iter().map(|k| k.to_native()).collect())
            };
            return Ok(ChainMsg::Propagate {
                version,
                entry: Entry {
                    zxid,
                    prev: other,
                    txn: std::sync::Arc::from(&a.txn[..]),
                    keys,
                },
            });
        }
        ACK => ChainMsg::Ack { version, zxid },
        NEED => ChainMsg::Need {
            version,
            after: zxid,
            committed: other,
        },
        RESEND if other >= zxid => ChainMsg::Resend {
            version,
            after: zxid,
            upto: other,
        },
        FLOOR => ChainMsg::Floor { version, zxid },
        DURABLE => ChainMsg::Durable { version, zxid },
        QUERY => ChainMsg::Query { version, qid },
        QUERY_REPLY => ChainMsg::QueryReply { version, qid, zxid },
        k => return Err(format!("a chain message of kind {k} with these fields")),
    };
    if !plain || zxid < 0 {
        return Err(format!("a {} with fields it does not use", name(a.kind)));
    }
    Ok(msg)
}

fn name(kind: u8) -> &'static str {
    match kind {
        PROPAGATE => "Propagate",
        ACK => "Ack",
        NEED => "Need",
        RESEND => "Resend",
        FLOOR => "Floor",
        DURABLE => "Durable",
        QUERY => "Query",
        QUERY_REPLY => "QueryReply",
        LEASE_ASK => "LeaseAsk",
        LEASE_GRANT => "LeaseGrant",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::peer::{ArchivedPeerMsg, PeerDecoder, encode_frame};

    fn round_trip(msg: &ChainMsg) -> Result<ChainMsg, String> {
        let mut wire = rkyv::util::AlignedVec::<16>::new();
        encode_frame(&to_peer(msg), &mut wire).unwrap();
        let mut d = PeerDecoder::new();
        let mut bytes: &[u8] = &wire;
        match d.decode(&mut bytes).unwrap() {
            Some(ArchivedPeerMsg::Chain(c)) => from_peer(c),
            other => panic!("not a chain frame: {other:?}"),
        }
    }

    #[test]
    fn every_chain_message_survives_the_wire() {
        let entry = Entry {
            zxid: 0x2_0000_0005,
            prev: 0x2_0000_0004,
            txn: std::sync::Arc::from(vec![1u8, 2, 3, 4]),
            keys: Keys::Some(vec![7, 9]),
        };
        let msgs = [
            ChainMsg::Propagate {
                version: 3,
                entry: entry.clone(),
            },
            ChainMsg::Propagate {
                version: 3,
                entry: Entry {
                    keys: Keys::All,
                    ..entry
                },
            },
            ChainMsg::Ack {
                version: 3,
                zxid: 9,
            },
            ChainMsg::Need {
                version: 3,
                after: 9,
                committed: 4,
            },
            ChainMsg::Resend {
                version: 3,
                after: 4,
                upto: 9,
            },
            ChainMsg::Floor {
                version: 3,
                zxid: 4,
            },
            ChainMsg::Durable {
                version: 3,
                zxid: 7,
            },
            ChainMsg::Query {
                version: 3,
                qid: 11,
            },
            ChainMsg::QueryReply {
                version: 3,
                qid: 11,
                zxid: 8,
            },
        ];
        for m in &msgs {
            assert_eq!(round_trip(m).as_ref(), Ok(m), "{m:?}");
        }
    }

    #[test]
    fn malformed_chain_frames_are_refused() {
        let bad = |c: Chain| {
            let mut wire = rkyv::util::AlignedVec::<16>::new();
            encode_frame(&PeerMsg::Chain(c), &mut wire).unwrap();
            let mut d = PeerDecoder::new();
            let mut bytes: &[u8] = &wire;
            match d.decode(&mut bytes).unwrap() {
                Some(ArchivedPeerMsg::Chain(c)) => from_peer(c),
                other => panic!("not a chain frame: {other:?}"),
            }
        };
        // An entry that does not follow its prev; a kind nobody knows; an ack with a
        // payload; a resend whose end is before its start.
        assert!(
            bad(Chain {
                zxid: 4,
                other: 4,
                ..frame(1, PROPAGATE)
            })
            .is_err()
        );
        assert!(bad(frame(1, 99)).is_err());
        assert!(
            bad(Chain {
                txn: vec![1],
                ..frame(1, ACK)
            })
            .is_err()
        );
        assert!(
            bad(Chain {
                zxid: 9,
                other: 4,
                ..frame(1, RESEND)
            })
            .is_err()
        );
        assert!(
            bad(Chain {
                zxid: -1,
                ..frame(1, FLOOR)
            })
            .is_err()
        );
    }
}

#[cfg(test)]
mod lease_tests {
    use super::*;
    use transport::peer::{ArchivedPeerMsg, PeerDecoder, encode_frame};

    fn through_wire<T>(msg: &PeerMsg, f: impl FnOnce(&ArchivedPeerMsg) -> T) -> T {
        let mut wire = rkyv::util::AlignedVec::<16>::new();
        encode_frame(msg, &mut wire).unwrap();
        let mut d = PeerDecoder::new();
        let mut bytes: &[u8] = &wire;
        f(d.decode(&mut bytes).unwrap().expect("a whole frame"))
    }

    fn chain_in(msg: &PeerMsg) -> Result<ChainIn, String> {
        through_wire(msg, |m| match m {
            ArchivedPeerMsg::Chain(c) => decode(c),
            other => panic!("not a chain frame: {other:?}"),
        })
    }

    #[test]
    fn leases_and_configurations_survive_the_wire() {
        assert_eq!(
            chain_in(&lease_ask(5, 7)),
            Ok(ChainIn::LeaseAsk { version: 5, seq: 7 })
        );
        assert_eq!(
            chain_in(&lease_grant(5, 7, 1500)),
            Ok(ChainIn::LeaseGrant {
                version: 5,
                seq: 7,
                remaining_ms: 1500
            })
        );
        let ack = ChainMsg::Ack {
            version: 5,
            zxid: 3,
        };
        assert_eq!(chain_in(&to_peer(&ack)), Ok(ChainIn::Core(ack)));
        let cfg = ChainConfig {
            version: 0x1_0000_0002,
            chain: vec![2, 1, 3],
        };
        let back = through_wire(&config_to_peer(&cfg), |m| match m {
            ArchivedPeerMsg::ChainConfig(c) => config_from_peer(c),
            other => panic!("not a configuration: {other:?}"),
        });
        assert_eq!(back, Ok(cfg));
    }

    #[test]
    fn bad_leases_and_configurations_are_refused() {
        let mut ask = Chain {
            qid: 1,
            ..frame(1, LEASE_ASK)
        };
        ask.txn = vec![1];
        assert!(chain_in(&PeerMsg::Chain(ask)).is_err());
        let negative = Chain {
            zxid: -5,
            ..frame(1, LEASE_GRANT)
        };
        assert!(chain_in(&PeerMsg::Chain(negative)).is_err());
        for chain in [vec![], vec![1, 2, 1]] {
            let m = PeerMsg::ChainConfig(transport::peer::ChainConfig {
                version: 1,
                chain,
                lease_ms: 0,
            });
            let r = through_wire(&m, |m| match m {
                ArchivedPeerMsg::ChainConfig(c) => config_from_peer(c),
                other => panic!("not a configuration: {other:?}"),
            });
            assert!(r.is_err(), "{r:?}");
        }
    }
}
