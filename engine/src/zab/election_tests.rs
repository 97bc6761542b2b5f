use std::collections::{BTreeMap, VecDeque};

use super::*;

const FINALIZE: u32 = 3;

fn cfg(id: ServerId, voters: &[ServerId]) -> ElectionConfig {
    ElectionConfig {
        id,
        role: if voters.contains(&id) {
            Role::Participant
        } else {
            Role::Observer
        },
        voters: voters.to_vec(),
        finalize_ticks: FINALIZE,
        resend_ticks_min: 10,
        resend_ticks_max: 80,
    }
}

/// Servers on perfect FIFO links: every message is delivered before the next tick.
struct Net {
    nodes: BTreeMap<ServerId, Election>,
    wire: VecDeque<(ServerId, ServerId, Notification)>,
    decisions: BTreeMap<ServerId, Decision>,
    /// Links that drop everything (both directions).
    cut: Vec<(ServerId, ServerId)>,
}

impl Net {
    fn new(voters: &[ServerId], observers: &[ServerId]) -> Net {
        let nodes = voters
            .iter()
            .chain(observers)
            .map(|&id| (id, Election::new(cfg(id, voters)).unwrap()))
            .collect();
        Net {
            nodes,
            wire: VecDeque::new(),
            decisions: BTreeMap::new(),
            cut: Vec::new(),
        }
    }

    fn absorb(&mut self, from: ServerId, out: Vec<ElectionAction>) {
        for a in out {
            match a {
                ElectionAction::Send { to, n } | ElectionAction::SendConfig { to, n } => {
                    self.wire.push_back((from, to, n))
                }
                ElectionAction::Decided(d) => {
                    self.decisions.insert(from, d);
                }
            }
        }
    }

    fn look(&mut self, id: ServerId, zxid: Zxid, epoch: Epoch) {
        let mut out = Vec::new();
        self.nodes.get_mut(&id).unwrap().look(zxid, epoch, &mut out);
        self.decisions.remove(&id);
        self.absorb(id, out);
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, n)) = self.wire.pop_front() {
            if self.cut.contains(&(from.min(to), from.max(to))) {
                continue;
            }
            let mut out = Vec::new();
            if let Some(node) = self.nodes.get_mut(&to) {
                node.step(from, n, &mut out);
            }
            self.absorb(to, out);
        }
    }

    fn run(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.deliver_all();
            let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
            for id in ids {
                let mut out = Vec::new();
                self.nodes.get_mut(&id).unwrap().tick(&mut out);
                self.absorb(id, out);
            }
        }
        self.deliver_all();
    }

    fn state(&self, id: ServerId) -> PeerState {
        self.nodes[&id].state()
    }

    fn leader_of(&self, id: ServerId) -> Option<ServerId> {
        self.decisions.get(&id).map(|d| d.vote.leader)
    }
}

#[test]
fn the_most_up_to_date_voter_is_elected_after_the_finalize_wait() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.look(1, 50, 2);
    net.look(2, 70, 2);
    net.look(3, 60, 2);
    net.deliver_all();
    assert!(
        net.decisions.is_empty(),
        "nobody decides before the finalize wait"
    );
    net.run(FINALIZE + 1);
    assert_eq!(net.state(2), PeerState::Leading);
    assert_eq!(net.state(1), PeerState::Following);
    assert_eq!(net.state(3), PeerState::Following);
    for id in [1, 2, 3] {
        assert_eq!(net.leader_of(id), Some(2), "server {id}");
        assert_eq!(net.decisions[&id].vote, Vote::of(2, 70, 2));
        assert_eq!(net.decisions[&id].round, 1);
    }
    assert!(net.decisions[&2].quorum.len() >= 2);
}

#[test]
fn a_newer_epoch_beats_a_longer_log_and_ids_break_ties() {
    assert!(Vote::of(1, 5, 3).beats(&Vote::of(2, 900, 2)));
    assert!(Vote::of(3, 5, 3).beats(&Vote::of(2, 5, 3)));
    assert!(!Vote::of(2, 5, 3).beats(&Vote::of(2, 5, 3)));
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.look(1, 5, 3);
    net.look(2, 900, 2);
    net.look(3, 5, 3);
    net.run(FINALIZE + 1);
    assert_eq!(net.leader_of(1), Some(3));
    assert_eq!(net.state(3), PeerState::Leading);
}

#[test]
fn a_majority_elects_without_the_minority() {
    let mut net = Net::new(&[1, 2, 3, 4, 5], &[]);
    // 5 has the best history but cannot be reached: the other four elect 4.
    net.cut = (1..5).map(|i| (i, 5)).collect();
    for id in 1..=5 {
        net.look(id, 10 * id as Zxid, 1);
    }
    net.run(FINALIZE + 1);
    assert_eq!(net.state(4), PeerState::Leading);
    for id in 1..=3 {
        assert_eq!(net.leader_of(id), Some(4));
    }
    assert_eq!(net.state(5), PeerState::Looking, "alone it has no majority");
}

#[test]
fn a_server_that_restarts_joins_the_leader_the_others_decided() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    for id in [1, 2, 3] {
        net.look(id, 100, 1);
    }
    net.run(FINALIZE + 1);
    assert_eq!(net.state(3), PeerState::Leading);
    // 1 restarts (round 1 again, newer history than the leader's vote says): the
    // decided servers answer and it follows 3 at once, without a new election.
    net.nodes
        .insert(1, Election::new(cfg(1, &[1, 2, 3])).unwrap());
    net.look(1, 150, 1);
    net.deliver_all();
    assert_eq!(net.state(1), PeerState::Following);
    assert_eq!(net.leader_of(1), Some(3));
    assert_eq!(
        net.state(3),
        PeerState::Leading,
        "the leader is not disturbed"
    );
}

#[test]
fn a_late_server_does_not_follow_a_leader_that_never_said_it_leads() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    for id in [1, 2, 3] {
        net.look(id, 100, 1);
    }
    net.run(FINALIZE + 1);
    net.nodes
        .insert(1, Election::new(cfg(1, &[1, 2, 3])).unwrap());
    net.cut = vec![(1, 3)];
    net.look(1, 100, 1);
    net.deliver_all();
    // 2 says it follows 3, but 1 cannot hear 3 itself: a majority of decisions it
    // has (1 of them) and no word from the leader are not enough.
    assert_eq!(net.state(1), PeerState::Looking);
    net.cut.clear();
    net.run(80);
    assert_eq!(
        net.leader_of(1),
        Some(3),
        "a re-broadcast reaches 3, which answers"
    );
}

#[test]
fn observers_learn_the_leader_and_never_count() {
    let mut net = Net::new(&[1, 2, 3], &[9]);
    net.look(9, 1_000, 9);
    for id in [1, 2, 3] {
        net.look(id, 100, 1);
    }
    net.run(FINALIZE + 1);
    assert_eq!(
        net.state(3),
        PeerState::Leading,
        "9's better history is no vote"
    );
    net.run(80);
    assert_eq!(net.state(9), PeerState::Observing);
    assert_eq!(net.leader_of(9), Some(3));
    let d = &net.decisions[&3];
    assert!(!d.quorum.contains(&9));
}

#[test]
fn a_lone_voter_elects_itself() {
    let mut net = Net::new(&[7], &[]);
    net.look(7, 0, 0);
    assert!(net.wire.is_empty(), "nobody to tell");
    net.run(FINALIZE);
    assert_eq!(net.state(7), PeerState::Leading);
}

#[test]
fn silence_is_met_with_re_broadcasts_that_back_off() {
    let mut e = Election::new(cfg(1, &[1, 2, 3])).unwrap();
    let mut out = Vec::new();
    e.look(0, 0, &mut out);
    assert_eq!(out.len(), 2, "one notification per other voter");
    let mut resent_at = Vec::new();
    for t in 1..=400u32 {
        out.clear();
        e.tick(&mut out);
        if !out.is_empty() {
            assert_eq!(out.len(), 2);
            resent_at.push(t);
        }
    }
    assert_eq!(resent_at[..4], [10, 30, 70, 150], "10, then doubling gaps");
    assert!(
        resent_at.windows(2).all(|w| w[1] - w[0] <= 80),
        "capped at max"
    );
    assert_eq!(e.state(), PeerState::Looking);
}

#[test]
fn a_voter_in_an_older_round_is_answered_and_catches_up() {
    let mut a = Election::new(cfg(1, &[1, 2, 3])).unwrap();
    let mut out = Vec::new();
    for _ in 0..3 {
        a.look(5, 1, &mut out);
    }
    assert_eq!(a.round(), 3);
    out.clear();
    let old = Notification {
        round: 1,
        vote: Vote::of(2, 9, 1),
        state: PeerState::Looking,
        config: 0,
    };
    a.step(2, old, &mut out);
    assert_eq!(
        out,
        vec![ElectionAction::Send {
            to: 2,
            n: Notification {
                round: 3,
                vote: Vote::of(1, 5, 1),
                state: PeerState::Looking,
                config: 0,
            }
        }],
        "an old round is answered, not counted"
    );
    out.clear();
    let newer = Notification {
        round: 7,
        vote: Vote::of(3, 2, 1),
        state: PeerState::Looking,
        config: 0,
    };
    a.step(3, newer, &mut out);
    assert_eq!(a.round(), 7);
    assert_eq!(
        a.vote(),
        Vote::of(1, 5, 1),
        "a worse vote in a newer round: keep own"
    );
}

#[test]
fn votes_for_non_voters_and_from_itself_are_ignored() {
    let mut a = Election::new(cfg(1, &[1, 2, 3])).unwrap();
    let mut out = Vec::new();
    a.look(5, 1, &mut out);
    out.clear();
    let bogus = Notification {
        round: 1,
        vote: Vote::of(42, 1 << 40, 9),
        state: PeerState::Looking,
        config: 0,
    };
    a.step(2, bogus, &mut out);
    a.step(1, bogus, &mut out);
    assert!(out.is_empty());
    assert_eq!(a.vote(), Vote::of(1, 5, 1));
    assert_eq!(a.stats().ignored, 2);
}

#[test]
fn bad_configurations_are_refused() {
    let bad = |c: ElectionConfig| Election::new(c).unwrap_err();
    assert!(matches!(
        bad(ElectionConfig {
            voters: vec![],
            ..cfg(1, &[1])
        }),
        ElectionError::BadVoters(_)
    ));
    assert!(matches!(
        bad(ElectionConfig {
            voters: vec![1, 2, 2],
            ..cfg(1, &[1, 2])
        }),
        ElectionError::BadVoters(_)
    ));
    assert!(matches!(
        bad(ElectionConfig {
            role: Role::Observer,
            ..cfg(1, &[1, 2, 3])
        }),
        ElectionError::BadRole { listed: true, .. }
    ));
    assert!(matches!(
        bad(ElectionConfig {
            resend_ticks_min: 9,
            resend_ticks_max: 8,
            ..cfg(1, &[1])
        }),
        ElectionError::BadTicks
    ));
    let too_many: Vec<ServerId> = (0..=VOTERS_MAX as ServerId).collect();
    assert!(matches!(
        bad(cfg(1, &too_many)),
        ElectionError::BadVoters(_)
    ));
}

#[test]
fn a_decided_observer_and_a_looking_voter_do_not_bounce_replies_forever() {
    // Found in review: an observer's Looking notification still in flight when it
    // decides reached a looking voter, and each answered the other's answer.
    let mut voter = Election::new(cfg(1, &[1, 2, 3])).unwrap();
    let mut obs = Election::new(cfg(9, &[1, 2, 3])).unwrap();
    let mut out = Vec::new();
    voter.look(0, 0, &mut out);
    out.clear();
    obs.look(0, 0, &mut out);
    let stale = out
        .iter()
        .find_map(|a| match a {
            ElectionAction::Send { to: 1, n } => Some(*n),
            _ => None,
        })
        .unwrap();
    let said = |state| Notification {
        round: 1,
        vote: Vote::of(2, 0, 0),
        state,
        config: 0,
    };
    obs.step(2, said(PeerState::Leading), &mut out);
    obs.step(3, said(PeerState::Following), &mut out);
    assert_eq!(obs.state(), PeerState::Observing);
    let (mut from, mut n) = (9, stale);
    let mut bounces = 0;
    loop {
        let mut out = Vec::new();
        if from == 9 {
            voter.step(9, n, &mut out);
        } else {
            obs.step(1, n, &mut out);
        }
        let Some(next) = out.iter().find_map(|a| match a {
            ElectionAction::Send { n, .. } => Some(*n),
            _ => None,
        }) else {
            break;
        };
        (from, n) = (if from == 9 { 1 } else { 9 }, next);
        bounces += 1;
        assert!(bounces < 10, "replies bounce between observer and voter");
    }
    assert!(bounces <= 2, "{bounces} bounces");
}

#[test]
fn a_voter_that_became_an_observer_is_never_elected_by_voters_that_lag() {
    // Server 1 was a voter with the newest history; a reconfig made it an observer,
    // which 2 and 3 have not applied: they elect one of themselves, never 1.
    let mut e1 = Election::new(cfg(1, &[2, 3])).unwrap();
    let mut e2 = Election::new(cfg(2, &[1, 2, 3])).unwrap();
    let mut out = Vec::new();
    e1.look(crate::zab::make_zxid(4, 9), 4, &mut out);
    let ElectionAction::Send { n, .. } = out[0] else {
        panic!("{out:?}")
    };
    assert!(
        !n.vote.beats(&Vote::of(3, 0, 0)),
        "it names no history: {n:?}"
    );
    let mut out = Vec::new();
    e2.look(crate::zab::make_zxid(4, 1), 4, &mut out);
    e2.step(1, n, &mut out);
    assert_eq!(e2.vote().leader, 2, "1's notification is not adopted");
    // Its role and voters change at run time: a round in progress starts over.
    let round = e2.round();
    e2.set_voters(Role::Participant, vec![2, 3], 7, &mut out)
        .unwrap();
    assert_eq!(e2.round(), round + 1);
    assert!(
        e2.set_voters(Role::Participant, vec![1, 3], 8, &mut out)
            .is_err(),
        "a participant is among the voters"
    );
}

#[test]
fn members_travel_from_the_server_that_knows_newer_ones() {
    let mut old = Election::new(cfg(1, &[1, 2, 3])).unwrap();
    let mut new = Election::new(cfg(2, &[1, 2, 3])).unwrap();
    let mut out = Vec::new();
    new.set_voters(Role::Participant, vec![1, 2, 3], 9, &mut out)
        .unwrap();
    assert!(
        out.is_empty(),
        "a new version alone does not restart a round"
    );
    old.look(5, 1, &mut out);
    new.look(5, 1, &mut out);
    out.clear();
    // The newer side pushes its members to an older sender...
    let from_old = old.notification();
    new.step(1, from_old, &mut out);
    assert!(
        matches!(out[..], [ElectionAction::SendConfig { to: 1, n }, ..] if n.config == 9),
        "{out:?}"
    );
    // ... and the older side answers a newer sender, which then pushes.
    out.clear();
    old.step(2, new.notification(), &mut out);
    assert!(
        matches!(out.first(), Some(ElectionAction::Send { to: 2, n }) if n.config == 0),
        "{out:?}"
    );
}
