use std::sync::Arc;

use super::*;
use crate::zab::{Action, Body, Limits, Msg, PROPOSALS_INFLIGHT_MAX, Role, TxnBytes, make_zxid};

const E: Epoch = 1;

/// Asks for the next zxid and proposes `txn` with it, as the shard does (a refusal of
/// `next_zxid` comes back from `propose` too, which counts it).
fn propose(l: &mut Leader, txn: TxnBytes, out: &mut Vec<Action>) -> Result<Zxid, ProposeError> {
    let zxid = l.next_zxid().unwrap_or(0);
    l.propose(zxid, txn, out).map(|()| zxid)
}

#[test]
fn a_txn_prepped_with_another_zxid_is_refused() {
    let mut l = leader_with(Limits::default());
    let mut out = Vec::new();
    let next = l.next_zxid().unwrap();
    assert_eq!(next, l.next_zxid().unwrap(), "asking assigns nothing");
    let wrong = next + 1;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        l.propose(wrong, txn(1), &mut Vec::new())
    }));
    if cfg!(debug_assertions) {
        assert!(r.is_err(), "a debug build asserts");
    } else {
        assert_eq!(
            r.unwrap(),
            Err(ProposeError::NotNext {
                zxid: wrong,
                expected: next
            })
        );
    }
    let mut l = leader_with(Limits::default());
    assert_eq!(propose(&mut l, txn(1), &mut out), Ok(next));
    assert_eq!(l.next_zxid(), Ok(next + 1));
}

fn members(voters: &[ServerId], observers: &[ServerId]) -> Vec<Member> {
    let p = voters.iter().map(|&id| Member {
        id,
        role: Role::Participant,
    });
    let o = observers.iter().map(|&id| Member {
        id,
        role: Role::Observer,
    });
    p.chain(o).collect()
}

fn txn(i: u8) -> TxnBytes {
    Arc::from(vec![i; 4])
}

fn z(c: u32) -> Zxid {
    make_zxid(E, c)
}

/// `id` acknowledges the NEWLEADER of its link: it holds everything sent so far.
fn newleader_ack(l: &mut Leader, id: ServerId) -> Vec<Action> {
    let mut out = Vec::new();
    let msg = Msg::new(
        l.epoch(),
        Body::AckNewLeader {
            zxid: l.last_zxid(),
        },
    );
    l.step(id, msg, &mut out).unwrap();
    out
}

/// Leader 1 with voters 2, 3 and observer 4, all connected from an empty log, and
/// ready (both voters acknowledged NEWLEADER).
fn leader_with(limits: Limits) -> Leader {
    let mut cfg = LeaderConfig::new(1, E, members(&[1, 2, 3], &[4]));
    cfg.limits = limits;
    let mut l = Leader::new(cfg, 0, 0, Vec::new()).unwrap();
    let mut out = Vec::new();
    for id in [2, 3] {
        assert_eq!(
            l.follower_connected(id, 0, &mut out).unwrap(),
            SyncKind::Diff
        );
    }
    assert_eq!(
        l.follower_connected(4, 0, &mut out).unwrap(),
        SyncKind::Deferred,
        "an observer is synchronised once the commit point is known"
    );
    assert!(!l.is_ready());
    let first = newleader_ack(&mut l, 2);
    assert_eq!(
        sent_to(&first, 4),
        vec![Body::Diff { from: 0 }],
        "ready with the first: the observer's sync follows"
    );
    assert!(l.is_ready() && l.is_synced(4));
    assert_eq!(newleader_ack(&mut l, 3), vec![]);
    l
}

fn leader() -> Leader {
    leader_with(Limits::DEFAULT)
}

fn ack(l: &mut Leader, from: ServerId, zxid: Zxid) -> Vec<Action> {
    let mut out = Vec::new();
    l.step(from, Msg::new(E, Body::Ack { zxid }), &mut out)
        .unwrap();
    out
}

fn commits(out: &[Action]) -> Vec<Zxid> {
    out.iter()
        .filter_map(|a| match a {
            Action::Commit { upto_zxid } => Some(*upto_zxid),
            _ => None,
        })
        .collect()
}

fn sent_to(out: &[Action], id: ServerId) -> Vec<Body> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } if *to == id => Some(msg.body.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn propose_persists_and_sends_proposals_to_voters_only() {
    let mut l = leader();
    let mut out = Vec::new();
    let zx = propose(&mut l, txn(1), &mut out).unwrap();
    assert_eq!(zx, z(1));
    assert_eq!(
        out[0],
        Action::Persist {
            zxid: z(1),
            txn: txn(1)
        }
    );
    for id in [2, 3] {
        assert_eq!(
            sent_to(&out, id),
            vec![Body::Proposal {
                zxid: z(1),
                txn: txn(1)
            }]
        );
    }
    assert!(sent_to(&out, 4).is_empty(), "observers get no proposals");
    assert_eq!(
        propose(&mut l, txn(2), &mut out).unwrap(),
        z(2),
        "zxids are contiguous"
    );
}

#[test]
fn commits_in_order_on_a_durable_majority() {
    let mut l = leader();
    let mut out = Vec::new();
    for i in 1..=3 {
        propose(&mut l, txn(i), &mut out).unwrap();
    }
    // One follower alone is not a majority of 3 while the leader is not durable.
    assert!(commits(&ack(&mut l, 2, z(3))).is_empty());
    assert_eq!(l.committed_zxid(), 0);
    // The leader's own durability completes the majority, up to what it persisted.
    out.clear();
    l.persisted(z(2), &mut out).unwrap();
    assert_eq!(commits(&out), vec![z(2)]);
    assert_eq!(sent_to(&out, 2), vec![Body::Commit { zxid: z(2) }]);
    assert_eq!(sent_to(&out, 3), vec![Body::Commit { zxid: z(2) }]);
    assert_eq!(
        sent_to(&out, 4),
        vec![
            Body::Inform {
                zxid: z(1),
                txn: txn(1)
            },
            Body::Inform {
                zxid: z(2),
                txn: txn(2)
            }
        ],
        "observers learn committed txns in order"
    );
    // The other follower's ack completes the rest.
    assert_eq!(commits(&ack(&mut l, 3, z(3))), vec![z(3)]);
    assert_eq!(l.committed_zxid(), z(3));
    assert_eq!(l.inflight(), 0);
}

#[test]
fn followers_alone_can_form_the_majority() {
    let mut l = leader();
    let mut out = Vec::new();
    propose(&mut l, txn(1), &mut out).unwrap();
    ack(&mut l, 2, z(1));
    assert_eq!(commits(&ack(&mut l, 3, z(1))), vec![z(1)]);
}

#[test]
fn single_voter_commits_on_its_own_durability() {
    let cfg = LeaderConfig::new(1, E, members(&[1], &[]));
    let mut l = Leader::new(cfg, 0, 0, Vec::new()).unwrap();
    let mut out = Vec::new();
    l.start(&mut out);
    assert_eq!(out, vec![Action::SetCurrentEpoch(E)], "a majority alone");
    propose(&mut l, txn(1), &mut out).unwrap();
    out.clear();
    l.persisted(z(1), &mut out).unwrap();
    assert_eq!(commits(&out), vec![z(1)]);
}

#[test]
fn five_voters_need_three() {
    let cfg = LeaderConfig::new(1, E, members(&[1, 2, 3, 4, 5], &[]));
    let mut l = Leader::new(cfg, 0, 0, Vec::new()).unwrap();
    let mut out = Vec::new();
    for id in 2..=5 {
        l.follower_connected(id, 0, &mut out).unwrap();
    }
    newleader_ack(&mut l, 2);
    assert!(!l.is_ready(), "two of five");
    newleader_ack(&mut l, 3);
    propose(&mut l, txn(1), &mut out).unwrap();
    l.persisted(z(1), &mut out).unwrap();
    assert!(commits(&ack(&mut l, 2, z(1))).is_empty());
    assert_eq!(commits(&ack(&mut l, 5, z(1))), vec![z(1)]);
}

#[test]
fn throttles_at_the_inflight_limit() {
    let limits = Limits {
        proposals_inflight_max: 4,
        committed_log_max: 8,
        follower_lag_proposals_max: 8,
        zxid_counter_max: u32::MAX,
    };
    let mut l = leader_with(limits);
    let mut out = Vec::new();
    for _ in 0..4 {
        propose(&mut l, txn(0), &mut out).unwrap();
    }
    assert_eq!(
        propose(&mut l, txn(0), &mut out),
        Err(ProposeError::Throttled {
            inflight: 4,
            max: 4
        })
    );
    assert_eq!(l.stats().throttled, 1);
    l.persisted(z(2), &mut out).unwrap();
    ack(&mut l, 2, z(2));
    assert_eq!(
        propose(&mut l, txn(0), &mut out),
        Ok(z(5)),
        "commits open the window"
    );
}

#[test]
fn throttles_at_the_default_limit() {
    let cfg = LeaderConfig::new(1, E, members(&[1, 2, 3], &[]));
    let mut l = Leader::new(cfg, 0, 0, Vec::new()).unwrap();
    let mut out = Vec::new();
    l.follower_connected(2, 0, &mut out).unwrap();
    newleader_ack(&mut l, 2);
    for _ in 0..PROPOSALS_INFLIGHT_MAX {
        propose(&mut l, txn(0), &mut out).unwrap();
        out.clear();
    }
    assert!(matches!(
        propose(&mut l, txn(0), &mut out),
        Err(ProposeError::Throttled { .. })
    ));
}

#[test]
fn refuses_oversized_txns() {
    let mut l = leader();
    let big: TxnBytes = Arc::from(vec![0u8; crate::zab::TXN_BYTES_MAX + 1]);
    let mut out = Vec::new();
    assert!(matches!(
        propose(&mut l, big, &mut out),
        Err(ProposeError::TxnTooLarge { .. })
    ));
    assert!(out.is_empty());
}

#[test]
fn ignores_stale_epochs_unknown_senders_and_bad_acks() {
    let mut l = leader();
    let mut out = Vec::new();
    propose(&mut l, txn(1), &mut out).unwrap();
    l.persisted(z(1), &mut out).unwrap();
    out.clear();
    l.step(2, Msg::new(E + 1, Body::Ack { zxid: z(1) }), &mut out)
        .unwrap();
    l.step(2, Msg::new(E - 1, Body::Ack { zxid: z(1) }), &mut out)
        .unwrap();
    l.step(9, Msg::new(E, Body::Ack { zxid: z(1) }), &mut out)
        .unwrap();
    l.step(2, Msg::new(E, Body::Ack { zxid: z(7) }), &mut out)
        .unwrap();
    l.step(4, Msg::new(E, Body::Ack { zxid: z(1) }), &mut out)
        .unwrap();
    assert!(out.is_empty(), "nothing committed: {out:?}");
    let s = l.stats();
    assert_eq!(s.msgs_stale_epoch, 2);
    assert_eq!(s.msgs_unknown_sender, 1);
    assert_eq!(s.acks_beyond_log, 1);
    assert_eq!(s.msgs_unexpected, 1, "observers do not vote");
}

#[test]
fn duplicate_and_regressing_acks_are_harmless() {
    let mut l = leader();
    let mut out = Vec::new();
    for i in 1..=2 {
        propose(&mut l, txn(i), &mut out).unwrap();
    }
    l.persisted(z(2), &mut out).unwrap();
    assert_eq!(commits(&ack(&mut l, 2, z(2))), vec![z(2)]);
    assert!(ack(&mut l, 2, z(2)).is_empty());
    assert!(ack(&mut l, 2, z(1)).is_empty());
    assert_eq!(l.acked_zxid(2), Some(z(2)));
    assert_eq!(l.stats().acks_duplicate, 2);
    assert_eq!(l.committed_zxid(), z(2));
}

#[test]
fn acks_from_a_disconnected_follower_are_not_counted() {
    let mut l = leader();
    let mut out = Vec::new();
    propose(&mut l, txn(1), &mut out).unwrap();
    l.persisted(z(1), &mut out).unwrap();
    l.follower_disconnected(2).unwrap();
    assert!(ack(&mut l, 2, z(1)).is_empty());
    assert_eq!(l.stats().acks_unsynced, 1);
    out.clear();
    propose(&mut l, txn(2), &mut out).unwrap();
    assert!(
        sent_to(&out, 2).is_empty(),
        "no stream to a disconnected follower"
    );
}

/// A leader of epoch 2 whose history is epoch-1 zxids 1..=5, retaining 3 of them.
fn leader_with_history() -> Leader {
    let limits = Limits {
        proposals_inflight_max: 2,
        committed_log_max: 3,
        follower_lag_proposals_max: 5,
        zxid_counter_max: u32::MAX,
    };
    let mut cfg = LeaderConfig::new(1, 2, members(&[1, 2, 3], &[4]));
    cfg.limits = limits;
    let history = (1..=5).map(|c| (z(c), txn(c as u8))).collect();
    let mut l = Leader::new(cfg, 0, z(5), history).unwrap();
    assert_eq!(l.log_base(), z(2));
    assert_eq!(l.committed_zxid(), z(5));
    // Voter 3 holds it all and acknowledges NEWLEADER: the leader is ready.
    l.follower_connected(3, z(5), &mut Vec::new()).unwrap();
    assert_eq!(newleader_ack(&mut l, 3), vec![Action::SetCurrentEpoch(2)]);
    l
}

#[test]
fn diff_when_the_follower_is_in_the_log() {
    let mut l = leader_with_history();
    let mut out = Vec::new();
    assert_eq!(
        l.follower_connected(2, z(4), &mut out).unwrap(),
        SyncKind::Diff
    );
    assert_eq!(
        sent_to(&out, 2),
        vec![
            Body::Diff { from: z(4) },
            Body::Proposal {
                zxid: z(5),
                txn: txn(5)
            },
            Body::Commit { zxid: z(5) },
            Body::NewLeader { zxid: z(5) },
        ]
    );
    out.clear();
    // At the base itself, every retained txn follows.
    assert_eq!(
        l.follower_connected(3, z(2), &mut out).unwrap(),
        SyncKind::Diff
    );
    assert_eq!(sent_to(&out, 3).len(), 1 + 3 + 1 + 1);
    // In-flight proposals follow the commit.
    let e2 = make_zxid(2, 1);
    propose(&mut l, txn(9), &mut out).unwrap();
    out.clear();
    l.follower_connected(2, z(5), &mut out).unwrap();
    assert_eq!(
        sent_to(&out, 2),
        vec![
            Body::Diff { from: z(5) },
            Body::Commit { zxid: z(5) },
            Body::Proposal {
                zxid: e2,
                txn: txn(9)
            },
            Body::NewLeader { zxid: e2 },
        ]
    );
}

#[test]
fn observers_are_synchronised_with_informs_of_committed_txns_only() {
    let mut l = leader_with_history();
    let mut out = Vec::new();
    propose(&mut l, txn(9), &mut out).unwrap();
    out.clear();
    l.follower_connected(4, z(3), &mut out).unwrap();
    assert_eq!(
        sent_to(&out, 4),
        vec![
            Body::Diff { from: z(3) },
            Body::Inform {
                zxid: z(4),
                txn: txn(4)
            },
            Body::Inform {
                zxid: z(5),
                txn: txn(5)
            },
        ]
    );
}

#[test]
fn trunc_when_the_follower_has_txns_the_leader_never_had() {
    let mut l = leader_with_history();
    let mut out = Vec::new();
    // Epoch-1 txns 6 and 7 never reached this leader: they were never committed.
    assert_eq!(
        l.follower_connected(2, z(7), &mut out).unwrap(),
        SyncKind::Trunc
    );
    assert_eq!(
        sent_to(&out, 2),
        vec![
            Body::Trunc { to: z(5) },
            Body::Commit { zxid: z(5) },
            Body::NewLeader { zxid: z(5) }
        ]
    );
    out.clear();
    propose(&mut l, txn(9), &mut out).unwrap();
    out.clear();
    assert_eq!(
        l.follower_connected(3, z(6), &mut out).unwrap(),
        SyncKind::Trunc
    );
    assert_eq!(
        sent_to(&out, 3),
        vec![
            Body::Trunc { to: z(5) },
            Body::Commit { zxid: z(5) },
            Body::Proposal {
                zxid: make_zxid(2, 1),
                txn: txn(9)
            },
            Body::NewLeader {
                zxid: make_zxid(2, 1)
            },
        ]
    );
}

#[test]
fn snap_when_the_follower_is_older_than_the_retained_log() {
    let mut l = leader_with_history();
    let mut out = Vec::new();
    assert_eq!(
        l.follower_connected(2, z(1), &mut out).unwrap(),
        SyncKind::Snap
    );
    assert_eq!(out[0], Action::SendSnapshot { to: 2, zxid: z(5) });
    assert_eq!(
        sent_to(&out, 2),
        vec![Body::Commit { zxid: z(5) }, Body::NewLeader { zxid: z(5) }]
    );
    out.clear();
    assert_eq!(
        l.follower_connected(3, 0, &mut out).unwrap(),
        SyncKind::Snap
    );
}

#[test]
fn refuses_a_follower_ahead_in_its_own_epoch() {
    let mut l = leader_with_history();
    let mut out = Vec::new();
    let err = l
        .follower_connected(2, make_zxid(2, 3), &mut out)
        .unwrap_err();
    assert!(matches!(err, LeaderError::FollowerAhead { id: 2, .. }));
    assert!(matches!(
        l.follower_connected(9, 0, &mut out),
        Err(LeaderError::UnknownMember(9))
    ));
    assert!(out.is_empty());
}

#[test]
fn committed_log_is_trimmed_to_its_limit() {
    let limits = Limits {
        proposals_inflight_max: 4,
        committed_log_max: 3,
        follower_lag_proposals_max: 7,
        zxid_counter_max: u32::MAX,
    };
    let mut l = leader_with(limits);
    let mut out = Vec::new();
    for _ in 0..10 {
        let zx = propose(&mut l, txn(0), &mut out).unwrap();
        l.persisted(zx, &mut out).unwrap();
        ack(&mut l, 2, zx);
    }
    assert_eq!(l.committed_zxid(), z(10));
    assert_eq!(l.log_base(), z(7));
    out.clear();
    assert_eq!(
        l.follower_connected(3, z(6), &mut out).unwrap(),
        SyncKind::Snap
    );
}

#[test]
fn drops_a_voter_that_lags_too_far() {
    let limits = Limits {
        proposals_inflight_max: 2,
        committed_log_max: 8,
        follower_lag_proposals_max: 3,
        zxid_counter_max: u32::MAX,
    };
    let mut l = leader_with(limits);
    let mut out = Vec::new();
    for c in 1..=3 {
        propose(&mut l, txn(0), &mut out).unwrap();
        l.persisted(z(c), &mut out).unwrap();
        ack(&mut l, 2, z(c));
    }
    assert!(!out.contains(&Action::Disconnect { to: 3 }));
    propose(&mut l, txn(0), &mut out).unwrap();
    assert!(out.contains(&Action::Disconnect { to: 3 }));
    assert!(!l.is_synced(3) && l.is_synced(2));
    assert_eq!(l.stats().lagging_dropped, 1);
}

#[test]
fn refuses_bad_configurations() {
    let bad = |cfg: LeaderConfig| Leader::new(cfg, 0, 0, Vec::new()).err();
    assert_eq!(
        bad(LeaderConfig::new(1, E, members(&[2, 3], &[]))),
        Some(LeaderError::LeaderNotParticipant(1))
    );
    assert_eq!(
        bad(LeaderConfig::new(1, E, members(&[1, 2], &[1]))),
        Some(LeaderError::DuplicateMember(1))
    );
    assert_eq!(
        bad(LeaderConfig::new(1, E, members(&[1, 2, 2], &[]))),
        Some(LeaderError::DuplicateMember(2))
    );
    assert_eq!(
        bad(LeaderConfig::new(1, 0, members(&[1], &[]))),
        Some(LeaderError::BadEpoch(0))
    );
    let history = vec![(z(2), txn(2)), (z(1), txn(1))];
    let cfg = LeaderConfig::new(1, 2, members(&[1], &[]));
    assert!(matches!(
        Leader::new(cfg, 0, 0, history),
        Err(LeaderError::BadHistory { .. })
    ));
    let mut out = Vec::new();
    let mut l = leader();
    assert!(matches!(
        l.persisted(z(1), &mut out),
        Err(LeaderError::PersistedBeyondLog { .. })
    ));
}

/// Leader 1 of epoch 2 over epoch-1 txns 1..=4, of which 1..=2 are known committed.
fn leader_with_initial_history() -> Leader {
    let cfg = LeaderConfig::new(1, 2, members(&[1, 2, 3], &[4]));
    let history = (1..=4).map(|c| (z(c), txn(c as u8))).collect();
    Leader::new(cfg, 0, z(2), history).unwrap()
}

fn ack_in(l: &mut Leader, epoch: Epoch, from: ServerId, zxid: Zxid) -> Vec<Action> {
    let mut out = Vec::new();
    l.step(from, Msg::new(epoch, Body::Ack { zxid }), &mut out)
        .unwrap();
    out
}

#[test]
fn the_initial_history_commits_only_once_a_majority_has_it() {
    let mut l = leader_with_initial_history();
    assert_eq!(
        (l.committed_zxid(), l.last_zxid(), l.inflight()),
        (z(2), z(4), 2)
    );
    let mut out = Vec::new();
    // 2 has it all; 3 has only what is committed; the observer nothing.
    l.follower_connected(2, z(4), &mut out).unwrap();
    l.follower_connected(3, z(2), &mut out).unwrap();
    l.follower_connected(4, 0, &mut out).unwrap();
    assert!(
        commits(&out).is_empty(),
        "nothing new is committed by a sync"
    );
    let informed = |out: &[Action]| -> Vec<Zxid> {
        out.iter()
            .filter_map(|a| match a {
                Action::Send {
                    to: 4,
                    msg:
                        Msg {
                            body: Body::Inform { zxid, .. },
                            ..
                        },
                } => Some(*zxid),
                _ => None,
            })
            .collect()
    };
    assert!(
        sent_to(&out, 4).is_empty(),
        "an observer waits until the history is committed"
    );
    let to_3: Vec<&Body> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send { to: 3, msg } => Some(&msg.body),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            to_3[..],
            [
                Body::Diff { .. },
                Body::Commit { .. },
                Body::Proposal { .. },
                Body::Proposal { .. },
                Body::NewLeader { .. }
            ]
        ),
        "the uncommitted tail goes as proposals, then NEWLEADER: {to_3:?}"
    );
    // Nothing is proposed or committed before a majority acknowledged NEWLEADER.
    let mut out = Vec::new();
    assert_eq!(
        propose(&mut l, txn(9), &mut out),
        Err(ProposeError::NotReady)
    );
    let out = ack_in(&mut l, 2, 2, z(4));
    assert!(commits(&out).is_empty(), "a plain ack is not NEWLEADER's");
    // 2 acknowledges NEWLEADER (it holds all of it): with the leader, a majority.
    let mut out = Vec::new();
    let msg = Msg::new(2, Body::AckNewLeader { zxid: z(4) });
    l.step(2, msg, &mut out).unwrap();
    assert_eq!(out[0], Action::SetCurrentEpoch(2));
    assert_eq!(commits(&out), vec![z(4)], "the initial history commits");
    assert_eq!(
        informed(&out),
        vec![z(1), z(2), z(3), z(4)],
        "then the observer learns it, committed txns only"
    );
    let zxid = propose(&mut l, txn(9), &mut out).unwrap();
    assert_eq!(zxid, make_zxid(2, 1));
    let out = ack_in(&mut l, 2, 3, make_zxid(2, 1));
    assert!(
        commits(&out).is_empty(),
        "the leader's own WAL is not durable yet"
    );
    let mut out = Vec::new();
    l.persisted(make_zxid(2, 1), &mut out).unwrap();
    assert_eq!(commits(&out), vec![make_zxid(2, 1)]);
}

#[test]
fn a_committed_point_outside_the_history_is_refused() {
    let cfg = || LeaderConfig::new(1, 2, members(&[1], &[]));
    let history = || (2..=4).map(|c| (z(c), txn(c as u8))).collect::<Vec<_>>();
    assert!(matches!(
        Leader::new(cfg(), z(1), z(9), history()),
        Err(LeaderError::BadCommitted { .. })
    ));
    assert!(matches!(
        Leader::new(cfg(), z(1), 0, history()),
        Err(LeaderError::BadCommitted { .. })
    ));
    assert!(Leader::new(cfg(), z(1), z(1), history()).is_ok());
    assert!(Leader::new(cfg(), z(1), z(3), history()).is_ok());
}

/// Counter rollover (module docs): the epoch's last txn carries the promise of the
/// next epoch; the next epoch's proposals wait, unpersisted and unsent, until it
/// commits; the new epoch becomes current once that txn is durable here too; links
/// keep their epoch.
#[test]
fn the_counter_rolls_over_into_the_next_epoch_without_an_election() {
    let mut l = leader_with(Limits {
        zxid_counter_max: 3,
        ..Limits::DEFAULT
    });
    let mut out = Vec::new();
    for c in 1..=2 {
        assert_eq!(propose(&mut l, txn(c as u8), &mut out), Ok(z(c)));
    }
    out.clear();
    assert_eq!(propose(&mut l, txn(3), &mut out), Ok(z(3)));
    assert_eq!(out[0], Action::SetAcceptedEpoch(E + 1), "promised first");
    assert!(matches!(out[1], Action::Persist { zxid, .. } if zxid == z(3)));
    // The next epoch's first txn: held while the last of E is uncommitted.
    let next = make_zxid(E + 1, 1);
    assert_eq!(l.next_zxid(), Ok(next));
    out.clear();
    assert_eq!(propose(&mut l, txn(4), &mut out), Ok(next));
    assert_eq!(
        out,
        vec![],
        "neither persisted nor sent before the rollover"
    );
    assert_eq!(l.inflight(), 4);
    assert_eq!(l.next_zxid(), Ok(make_zxid(E + 1, 2)));
    // Followers 2 and 3 hold everything durably: the last txn of E commits and the
    // held proposal goes out, still stamped with each link's epoch.
    ack(&mut l, 2, z(3));
    let out = ack(&mut l, 3, z(3));
    assert_eq!(commits(&out), vec![z(3)]);
    assert_eq!(l.epoch(), E + 1);
    assert_eq!(l.first_epoch(), E);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Persist { zxid, .. } if *zxid == next))
    );
    let to2: Vec<&Action> = out
        .iter()
        .filter(|a| matches!(a, Action::Send { to: 2, .. }))
        .collect();
    assert_eq!(to2.len(), 2, "the commit, then the held proposal: {to2:?}");
    assert!(matches!(to2[1], Action::Send { msg, .. } if msg.epoch == E
            && matches!(msg.body, Body::Proposal { zxid, .. } if zxid == next)));
    assert!(
        !out.iter().any(|a| matches!(a, Action::SetCurrentEpoch(_))),
        "not current before the leader holds the last txn of E durably"
    );
    let mut out = Vec::new();
    l.persisted(z(3), &mut out).unwrap();
    assert_eq!(out, vec![Action::SetCurrentEpoch(E + 1)]);
    // Acks on the old links still count; a link opened now takes the new epoch.
    let out = ack(&mut l, 2, next);
    assert!(commits(&out).is_empty(), "a majority needs the leader or 3");
    let mut out = Vec::new();
    l.persisted(next, &mut out).unwrap();
    assert_eq!(commits(&out), vec![next]);
    l.follower_disconnected(3).unwrap();
    let mut out = Vec::new();
    l.follower_connected(3, z(3), &mut out).unwrap();
    assert!(
        out.iter()
            .all(|a| !matches!(a, Action::Send { msg, .. } if msg.epoch != E + 1))
    );
}

#[test]
fn the_last_epoch_has_no_rollover() {
    let mut cfg = LeaderConfig::new(1, crate::zab::EPOCH_MAX, members(&[1], &[]));
    cfg.limits = Limits {
        zxid_counter_max: 2,
        ..Limits::DEFAULT
    };
    let mut l = Leader::new(cfg, 0, 0, Vec::new()).unwrap();
    let mut out = Vec::new();
    l.start(&mut out);
    assert!(l.is_ready());
    for _ in 0..2 {
        propose(&mut l, txn(1), &mut out).unwrap();
    }
    assert_eq!(
        l.next_zxid(),
        Err(ProposeError::ZxidExhausted(crate::zab::EPOCH_MAX))
    );
}

#[test]
fn a_voter_that_joins_is_counted_from_then_on() {
    // Voters 1, 2, 3 (+ observer 4): 5 joins as a voter, so 3 of 4 make a majority.
    let mut l = leader();
    let mut out = Vec::new();
    l.set_member(5, Some(Role::Participant), &mut out).unwrap();
    let a = propose(&mut l, txn(1), &mut out).unwrap();
    l.persisted(a, &mut out).unwrap();
    assert!(
        commits(&ack(&mut l, 2, a)).is_empty(),
        "2 of 4 is no majority"
    );
    // 5 connects (its first link after the reconfig) as a participant.
    let mut out = Vec::new();
    assert_eq!(
        l.follower_connected(5, 0, &mut out).unwrap(),
        SyncKind::Diff
    );
    assert!(matches!(
        sent_to(&out, 5).last(),
        Some(Body::NewLeader { .. })
    ));
    newleader_ack(&mut l, 5);
    assert_eq!(l.committed_zxid(), a, "1, 2 and 5 hold it");
}

#[test]
fn a_voter_that_leaves_no_longer_holds_commits_back() {
    // Voters 1, 2, 3 with 3 silent: removing 3 leaves {1, 2}, where both are
    // needed; removing 2 as well leaves the leader a majority alone.
    let mut l = leader();
    let mut out = Vec::new();
    let a = propose(&mut l, txn(1), &mut out).unwrap();
    l.persisted(a, &mut out).unwrap();
    assert_eq!(l.committed_zxid(), 0);
    // Remove 3 (silent): voters {1, 2} need both.
    l.set_member(3, None, &mut out).unwrap();
    assert_eq!(l.committed_zxid(), 0, "2 has not acked");
    assert_eq!(commits(&ack(&mut l, 2, a)), vec![a]);
    // 3's messages are from a stranger now.
    let before = l.stats().msgs_unknown_sender;
    ack(&mut l, 3, a);
    assert_eq!(l.stats().msgs_unknown_sender, before + 1);
    // Remove 2 as well: the leader is a majority alone.
    let b = propose(&mut l, txn(2), &mut out).unwrap();
    l.persisted(b, &mut out).unwrap();
    assert_eq!(l.committed_zxid(), a);
    let mut out = Vec::new();
    l.set_member(2, None, &mut out).unwrap();
    assert_eq!(commits(&out), vec![b], "removing a laggard commits at once");
}

#[test]
fn a_learner_streams_as_it_says_until_it_reconnects_as_what_it_became() {
    let mut l = leader();
    let mut out = Vec::new();
    // Observer 4 is promoted: its current link keeps informs, its acks do not count.
    l.set_member(4, Some(Role::Participant), &mut out).unwrap();
    let a = propose(&mut l, txn(1), &mut out).unwrap();
    assert!(
        sent_to(&out, 4).is_empty(),
        "no proposal on an observer's link"
    );
    l.persisted(a, &mut out).unwrap();
    let unexpected = l.stats().msgs_unexpected;
    ack(&mut l, 4, a);
    assert_eq!(l.stats().msgs_unexpected, unexpected + 1, "not counted");
    assert_eq!(l.committed_zxid(), 0, "1 of {{1, 2, 3, 4}} acked");
    let out = ack(&mut l, 2, a);
    assert!(commits(&out).is_empty(), "2 of 4 is no majority");
    let out = ack(&mut l, 3, a);
    assert_eq!(commits(&out), vec![a]);
    assert!(
        matches!(sent_to(&out, 4)[..], [Body::Inform { .. }]),
        "the old link still learns by informs"
    );
    // It reconnects as a participant (it applied its promotion): a voter's stream.
    let mut out = Vec::new();
    l.follower_connected_at(4, a, E, Role::Participant, &mut out)
        .unwrap();
    assert!(matches!(
        sent_to(&out, 4).last(),
        Some(Body::NewLeader { .. })
    ));

    // Voter 2 is demoted while its link still says participant: proposals go on,
    // its acks do not count.
    let mut out = Vec::new();
    l.set_member(2, Some(Role::Observer), &mut out).unwrap();
    let b = propose(&mut l, txn(2), &mut out).unwrap();
    assert!(matches!(sent_to(&out, 2)[..], [Body::Proposal { .. }]));
    l.persisted(b, &mut out).unwrap();
    ack(&mut l, 2, b);
    assert_eq!(l.committed_zxid(), a, "{{1, 3, 4}} votes; only 1 has b");
    ack(&mut l, 3, b);
    assert_eq!(l.committed_zxid(), b);
    // Reconnecting as an observer with a proposal not committed yet: it is cut
    // (an observer commits what it logged), and it learns it again by inform.
    let c = propose(&mut l, txn(3), &mut out).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        l.follower_connected_at(2, c, E, Role::Observer, &mut out)
            .unwrap(),
        SyncKind::Trunc
    );
    assert_eq!(sent_to(&out, 2), vec![Body::Trunc { to: b }]);
}

#[test]
fn a_membership_beyond_the_limits_is_refused_and_changes_nothing() {
    let mut l = leader();
    let mut out = Vec::new();
    let mut id = 10;
    let err = loop {
        match l.set_member(id, Some(Role::Participant), &mut out) {
            Ok(()) => id += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LeaderError::TooManyMembers { .. }), "{err:?}");
    assert_eq!(l.voters(), VOTERS_MAX);
}
