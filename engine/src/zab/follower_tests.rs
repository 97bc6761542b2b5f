use std::sync::Arc;

use super::*;
use crate::zab::{Action, Body, Msg, Role, TxnBytes, make_zxid};

const E: Epoch = 1;
const LEADER: ServerId = 1;

fn z(c: u32) -> Zxid {
    make_zxid(E, c)
}

fn txn(i: u8) -> TxnBytes {
    Arc::from(vec![i; 4])
}

fn cfg(role: Role) -> FollowerConfig {
    FollowerConfig {
        id: 2,
        leader: LEADER,
        epoch: E,
        role,
        zxid_counter_max: u32::MAX,
    }
}

fn newleader_done(zxid: Zxid) -> Vec<Action> {
    vec![
        Action::SetCurrentEpoch(E),
        Action::Send {
            to: LEADER,
            msg: Msg::new(E, Body::AckNewLeader { zxid }),
        },
    ]
}

/// A follower at `last`/`committed`, connected and synchronised by DIFF, and for a
/// participant past NEWLEADER (acked at `last`, durable already). Returns what the
/// sync pushed.
fn synced(role: Role, last: Zxid, committed: Zxid) -> (Follower, Vec<Action>) {
    let mut f = Follower::new(cfg(role), last, committed).unwrap();
    let mut out = Vec::new();
    f.connect(&mut out);
    assert_eq!(
        out,
        vec![Action::Send {
            to: LEADER,
            msg: Msg::new(
                E,
                Body::FollowerInfo {
                    last_zxid: last,
                    role
                }
            )
        }]
    );
    out.clear();
    f.step(LEADER, Msg::new(E, Body::Diff { from: last }), &mut out)
        .unwrap();
    if role == Role::Participant {
        let nl = step(&mut f, Body::NewLeader { zxid: last }).unwrap();
        assert_eq!(nl, newleader_done(last));
    }
    (f, out)
}

fn step(f: &mut Follower, body: Body) -> Result<Vec<Action>, FollowerError> {
    let mut out = Vec::new();
    f.step(LEADER, Msg::new(E, body), &mut out).map(|()| out)
}

fn ack(zxid: Zxid) -> Action {
    Action::Send {
        to: LEADER,
        msg: Msg::new(E, Body::Ack { zxid }),
    }
}

#[test]
fn proposal_persists_and_acks_only_once_durable() {
    let (mut f, out) = synced(Role::Participant, 0, 0);
    assert!(out.is_empty());
    let out = step(
        &mut f,
        Body::Proposal {
            zxid: z(1),
            txn: txn(1),
        },
    )
    .unwrap();
    assert_eq!(
        out,
        vec![Action::Persist {
            zxid: z(1),
            txn: txn(1)
        }],
        "no ack before durable"
    );
    step(
        &mut f,
        Body::Proposal {
            zxid: z(2),
            txn: txn(2),
        },
    )
    .unwrap();
    let mut out = Vec::new();
    f.persisted(z(2), &mut out).unwrap();
    assert_eq!(out, vec![ack(z(2))], "one cumulative ack");
    out.clear();
    f.persisted(z(1), &mut out).unwrap();
    assert!(out.is_empty(), "a regressing persisted report is harmless");
}

#[test]
fn commit_applies_only_what_it_has() {
    let (mut f, _) = synced(Role::Participant, 0, 0);
    step(
        &mut f,
        Body::Proposal {
            zxid: z(1),
            txn: txn(1),
        },
    )
    .unwrap();
    assert_eq!(
        step(&mut f, Body::Commit { zxid: z(1) }).unwrap(),
        vec![Action::Commit { upto_zxid: z(1) }]
    );
    assert!(
        step(&mut f, Body::Commit { zxid: z(1) })
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.stats().commits_duplicate, 1);
    let err = step(&mut f, Body::Commit { zxid: z(2) }).unwrap_err();
    assert_eq!(
        err,
        FollowerError::CommitBeyondLog {
            zxid: z(2),
            last_logged: z(1)
        }
    );
    assert_eq!(
        f.link(),
        LinkState::Disconnected,
        "an error forces a re-sync"
    );
    assert_eq!(f.committed_zxid(), z(1));
}

#[test]
fn ignores_other_epochs_and_senders() {
    let (mut f, _) = synced(Role::Participant, 0, 0);
    let mut out = Vec::new();
    let p = Body::Proposal {
        zxid: z(1),
        txn: txn(1),
    };
    f.step(LEADER, Msg::new(E + 1, p.clone()), &mut out)
        .unwrap();
    f.step(LEADER, Msg::new(E - 1, p.clone()), &mut out)
        .unwrap();
    f.step(7, Msg::new(E, p), &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(f.stats().msgs_stale_epoch, 2);
    assert_eq!(f.stats().msgs_not_from_leader, 1);
    assert_eq!(f.last_logged(), 0);
}

#[test]
fn nothing_before_the_sync_and_no_acks_while_syncing() {
    let mut f = Follower::new(cfg(Role::Participant), z(2), z(1)).unwrap();
    let mut out = Vec::new();
    // Disconnected: ignored.
    f.step(LEADER, Msg::new(E, Body::Commit { zxid: z(2) }), &mut out)
        .unwrap();
    assert_eq!(f.stats().msgs_ignored, 1);
    f.connect(&mut out);
    let err = step(
        &mut f,
        Body::Proposal {
            zxid: z(3),
            txn: txn(3),
        },
    )
    .unwrap_err();
    assert!(matches!(err, FollowerError::BeforeSync { .. }));
    f.connect(&mut out);
    let err = step(&mut f, Body::Diff { from: z(1) }).unwrap_err();
    assert!(matches!(err, FollowerError::DiffMismatch { .. }));
}

#[test]
fn diff_acks_what_was_already_durable() {
    let (mut f, out) = synced(Role::Participant, z(3), z(1));
    assert!(out.is_empty(), "nothing is acked before NEWLEADER");
    assert_eq!(
        step(&mut f, Body::Commit { zxid: z(3) }).unwrap(),
        vec![Action::Commit { upto_zxid: z(3) }]
    );
    let err = step(&mut f, Body::Diff { from: z(3) }).unwrap_err();
    assert!(matches!(err, FollowerError::SyncTwice { .. }));
}

#[test]
fn trunc_cuts_uncommitted_txns_then_continues() {
    let mut f = Follower::new(cfg(Role::Participant), z(5), z(2)).unwrap();
    let mut out = Vec::new();
    f.connect(&mut out);
    let out = step(&mut f, Body::Trunc { to: z(3) }).unwrap();
    assert_eq!(out, vec![Action::Truncate { after_zxid: z(3) }]);
    assert_eq!(
        step(&mut f, Body::NewLeader { zxid: z(3) }).unwrap(),
        newleader_done(z(3))
    );
    assert_eq!((f.last_logged(), f.durable_zxid()), (z(3), z(3)));
    step(
        &mut f,
        Body::Proposal {
            zxid: z(4),
            txn: txn(4),
        },
    )
    .unwrap();
    // Never below the commit point.
    let mut g = Follower::new(cfg(Role::Participant), z(5), z(2)).unwrap();
    g.connect(&mut Vec::new());
    assert!(matches!(
        step(&mut g, Body::Trunc { to: z(1) }),
        Err(FollowerError::BadTrunc { .. })
    ));
}

#[test]
fn snap_installs_then_acks_once_durable() {
    let mut f = Follower::new(cfg(Role::Participant), z(1), z(1)).unwrap();
    let mut out = Vec::new();
    f.connect(&mut out);
    let out = step(&mut f, Body::Snap { zxid: z(9) }).unwrap();
    assert_eq!(out, vec![Action::InstallSnapshot { zxid: z(9) }]);
    assert_eq!((f.committed_zxid(), f.last_logged()), (z(9), z(9)));
    assert!(
        step(&mut f, Body::NewLeader { zxid: z(9) })
            .unwrap()
            .is_empty()
    );
    let mut out = Vec::new();
    f.persisted(z(9), &mut out).unwrap();
    assert_eq!(
        out,
        newleader_done(z(9)),
        "the image is durable: NEWLEADER is done"
    );
    step(
        &mut f,
        Body::Proposal {
            zxid: z(10),
            txn: txn(10),
        },
    )
    .unwrap();
}

#[test]
fn gaps_and_repeats_in_the_stream_are_errors() {
    let (mut f, _) = synced(Role::Participant, 0, 0);
    step(
        &mut f,
        Body::Proposal {
            zxid: z(1),
            txn: txn(1),
        },
    )
    .unwrap();
    let err = step(
        &mut f,
        Body::Proposal {
            zxid: z(3),
            txn: txn(3),
        },
    )
    .unwrap_err();
    assert!(matches!(err, FollowerError::NotNext { .. }));
    let (mut f, _) = synced(Role::Participant, z(1), 0);
    let err = step(
        &mut f,
        Body::Proposal {
            zxid: z(1),
            txn: txn(1),
        },
    )
    .unwrap_err();
    assert!(matches!(err, FollowerError::NotNext { .. }));
    // A txn of a later epoch than the leader's is never valid.
    let (mut f, _) = synced(Role::Participant, 0, 0);
    let later = make_zxid(E + 1, 1);
    assert!(
        step(
            &mut f,
            Body::Proposal {
                zxid: later,
                txn: txn(1)
            }
        )
        .is_err()
    );
}

#[test]
fn observer_logs_and_applies_informs_without_acking() {
    let (mut f, _) = synced(Role::Observer, 0, 0);
    let out = step(
        &mut f,
        Body::Inform {
            zxid: z(1),
            txn: txn(1),
        },
    )
    .unwrap();
    assert_eq!(
        out,
        vec![
            Action::Persist {
                zxid: z(1),
                txn: txn(1)
            },
            Action::Commit { upto_zxid: z(1) }
        ]
    );
    let mut out = Vec::new();
    f.persisted(z(1), &mut out).unwrap();
    assert!(out.is_empty(), "observers do not vote");
    let err = step(
        &mut f,
        Body::Proposal {
            zxid: z(2),
            txn: txn(2),
        },
    )
    .unwrap_err();
    assert!(matches!(err, FollowerError::WrongRole { .. }));
}

#[test]
fn participant_refuses_informs_and_bad_reports() {
    let (mut f, _) = synced(Role::Participant, 0, 0);
    let err = step(
        &mut f,
        Body::Inform {
            zxid: z(1),
            txn: txn(1),
        },
    )
    .unwrap_err();
    assert!(matches!(err, FollowerError::WrongRole { .. }));
    let mut out = Vec::new();
    assert!(matches!(
        f.persisted(z(1), &mut out),
        Err(FollowerError::PersistedBeyondLog { .. })
    ));
    assert!(matches!(
        Follower::new(cfg(Role::Participant), z(1), z(2)),
        Err(FollowerError::BadRestore { .. })
    ));
}

#[test]
fn observer_applies_its_whole_log_after_a_sync() {
    let (f, out) = synced(Role::Observer, z(4), z(2));
    assert_eq!(
        out,
        vec![Action::Commit { upto_zxid: z(4) }],
        "informs are committed txns"
    );
    assert_eq!(f.committed_zxid(), z(4));
}

#[test]
fn nothing_is_acked_until_the_newleader_history_is_durable() {
    let mut f = Follower::new(cfg(Role::Participant), 0, 0).unwrap();
    f.connect(&mut Vec::new());
    step(&mut f, Body::Diff { from: 0 }).unwrap();
    for c in 1..=2 {
        let p = Body::Proposal {
            zxid: z(c),
            txn: txn(c as u8),
        };
        step(&mut f, p).unwrap();
    }
    let mut out = Vec::new();
    f.persisted(z(1), &mut out).unwrap();
    assert!(out.is_empty(), "no ack before NEWLEADER");
    assert!(
        step(&mut f, Body::NewLeader { zxid: z(2) })
            .unwrap()
            .is_empty()
    );
    f.persisted(z(1), &mut out).unwrap();
    assert!(out.is_empty(), "NEWLEADER's history is not durable yet");
    f.persisted(z(2), &mut out).unwrap();
    assert_eq!(out, newleader_done(z(2)));
    // Then acks as usual.
    let p = Body::Proposal {
        zxid: z(3),
        txn: txn(3),
    };
    step(&mut f, p).unwrap();
    out.clear();
    f.persisted(z(3), &mut out).unwrap();
    assert_eq!(out, vec![ack(z(3))]);
    // NEWLEADER beyond the log, twice, or before the sync is a violation.
    assert!(matches!(
        step(&mut f, Body::NewLeader { zxid: z(3) }),
        Err(FollowerError::BadNewLeader { .. })
    ));
    let mut g = Follower::new(cfg(Role::Participant), 0, 0).unwrap();
    g.connect(&mut Vec::new());
    assert!(step(&mut g, Body::NewLeader { zxid: 0 }).is_err());
    let mut h = Follower::new(cfg(Role::Participant), 0, 0).unwrap();
    h.connect(&mut Vec::new());
    step(&mut h, Body::Diff { from: 0 }).unwrap();
    assert!(matches!(
        step(&mut h, Body::NewLeader { zxid: z(1) }),
        Err(FollowerError::BadNewLeader { .. })
    ));
}

/// Counter rollover (`leader`'s module docs) on a follower: logging an epoch's last
/// txn promises the next epoch first; committing it lets the next epoch's txns in;
/// the new epoch becomes current only once that txn is durable here; the link keeps
/// its epoch.
#[test]
fn a_follower_rolls_over_with_its_leader() {
    let mut f = Follower::new(
        FollowerConfig {
            zxid_counter_max: 3,
            ..cfg(Role::Participant)
        },
        z(1),
        z(1),
    )
    .unwrap();
    let mut out = Vec::new();
    f.connect(&mut out);
    step(&mut f, Body::Diff { from: z(1) }).unwrap();
    let nl = step(&mut f, Body::NewLeader { zxid: z(1) }).unwrap();
    assert_eq!(nl, newleader_done(z(1)));
    step(
        &mut f,
        Body::Proposal {
            zxid: z(2),
            txn: txn(2),
        },
    )
    .unwrap();
    let out = step(
        &mut f,
        Body::Proposal {
            zxid: z(3),
            txn: txn(3),
        },
    )
    .unwrap();
    assert_eq!(
        out[0],
        Action::SetAcceptedEpoch(E + 1),
        "promised before persisted"
    );
    assert!(matches!(out[1], Action::Persist { zxid, .. } if zxid == z(3)));
    let next = make_zxid(E + 1, 1);
    let early = step(
        &mut f,
        Body::Proposal {
            zxid: next,
            txn: txn(4),
        },
    );
    assert!(
        matches!(early, Err(FollowerError::NotNext { .. })),
        "the next epoch only after the rollover committed: {early:?}"
    );

    let mut f = Follower::new(
        FollowerConfig {
            zxid_counter_max: 3,
            ..cfg(Role::Participant)
        },
        z(1),
        z(1),
    )
    .unwrap();
    let mut out = Vec::new();
    f.connect(&mut out);
    step(&mut f, Body::Diff { from: z(1) }).unwrap();
    step(&mut f, Body::NewLeader { zxid: z(1) }).unwrap();
    step(
        &mut f,
        Body::Proposal {
            zxid: z(2),
            txn: txn(2),
        },
    )
    .unwrap();
    step(
        &mut f,
        Body::Proposal {
            zxid: z(3),
            txn: txn(3),
        },
    )
    .unwrap();
    let out = step(&mut f, Body::Commit { zxid: z(3) }).unwrap();
    assert_eq!(
        out,
        vec![Action::Commit { upto_zxid: z(3) }],
        "not durable yet"
    );
    assert_eq!(f.epoch(), E + 1);
    let out = step(
        &mut f,
        Body::Proposal {
            zxid: next,
            txn: txn(4),
        },
    )
    .unwrap();
    assert!(matches!(out[0], Action::Persist { zxid, .. } if zxid == next));
    let mut out = Vec::new();
    f.persisted(z(3), &mut out).unwrap();
    assert_eq!(out, vec![ack(z(3)), Action::SetCurrentEpoch(E + 1)]);
    let mut out = Vec::new();
    f.persisted(next, &mut out).unwrap();
    assert_eq!(out, vec![ack(next)], "acks keep the link's epoch");
}
