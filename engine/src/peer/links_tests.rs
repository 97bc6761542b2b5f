use super::links::*;

fn ups(out: &[LinkAction]) -> Vec<LinkId> {
    out.iter()
        .filter_map(|a| match a {
            LinkAction::Up(l) => Some(*l),
            _ => None,
        })
        .collect()
}

fn dials(out: &[LinkAction]) -> Vec<(u64, u64)> {
    out.iter()
        .filter_map(|a| match a {
            LinkAction::Dial { peer, attempt } => Some((*peer, *attempt)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_higher_id_dials_and_the_lower_accepts() {
    let mut b = LinkBook::new(2, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    b.tick(0, &mut out);
    assert_eq!(dials(&out), [(1, 1)], "2 dials 1 only");
    out.clear();
    b.dialed(1, 1, true, 5, &mut out);
    let l1 = ups(&out)[0];
    assert_eq!((l1.peer, b.link(1)), (1, Some(l1)));
    out.clear();
    let l3 = b.accepted(3, 5, &mut out).unwrap();
    assert_eq!(ups(&out), [l3]);
    assert_ne!(
        l1.generation, l3.generation,
        "every link its own generation"
    );
    assert_eq!(b.up().count(), 2);
    out.clear();
    b.tick(10_000, &mut out);
    assert!(out.is_empty(), "nothing to dial while links are up");
}

#[test]
fn refusals_name_the_reason_and_a_lower_id_is_dialled_back_at_once() {
    let mut b = LinkBook::new(2, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    assert_eq!(b.accepted(2, 0, &mut out), Err(Refusal::Myself));
    assert_eq!(b.accepted(9, 0, &mut out), Err(Refusal::Unknown(9)));
    // A failed dial backs off ...
    b.tick(0, &mut out);
    b.dialed(1, 1, false, 0, &mut out);
    out.clear();
    b.tick(LINK_RETRY_MS_MIN - 1, &mut out);
    assert!(out.is_empty(), "backing off");
    // ... but a connection from 1 (it restarted) makes 2 dial it now.
    let e = b.accepted(1, 1, &mut out).unwrap_err();
    assert_eq!(e, Refusal::WeDial(1));
    assert!(e.to_string().contains("this server dials it"), "{e}");
    b.tick(1, &mut out);
    assert_eq!(dials(&out), [(1, 2)]);
}

#[test]
fn retries_back_off_to_the_limit_and_reset_once_up() {
    let mut b = LinkBook::new(5, &[1, 5], LINK_QUEUE_BYTES_MAX);
    let (mut now, mut out, mut delays) = (0, Vec::new(), Vec::new());
    let mut last_dial = 0;
    for _ in 0..10 {
        loop {
            out.clear();
            b.tick(now, &mut out);
            if let Some(&(_, attempt)) = dials(&out).first() {
                delays.push(now - last_dial);
                last_dial = now;
                b.dialed(1, attempt, false, now, &mut out);
                break;
            }
            now += 1;
        }
    }
    assert_eq!(delays[1], LINK_RETRY_MS_MIN);
    assert!(delays.windows(2).all(|w| w[1] >= w[0]), "{delays:?}");
    assert_eq!(*delays.last().unwrap(), LINK_RETRY_MS_MAX);
    // Up, then lost: the next retry starts from the minimum again.
    out.clear();
    now += LINK_RETRY_MS_MAX;
    b.tick(now, &mut out);
    let (_, attempt) = dials(&out)[0];
    b.dialed(1, attempt, true, now, &mut out);
    let link = ups(&out)[0];
    b.heard(link); // it carried a frame: it works
    out.clear();
    b.failed(link, "reset by peer".into(), now, &mut out);
    assert_eq!(
        out,
        [
            LinkAction::Close {
                link,
                reason: "reset by peer".into()
            },
            LinkAction::Down(link)
        ]
    );
    out.clear();
    b.tick(now + LINK_RETRY_MS_MIN, &mut out);
    assert_eq!(dials(&out).len(), 1, "retried after the minimum delay");
}

#[test]
fn a_reconnecting_peer_replaces_its_link_and_stale_reports_are_ignored() {
    let mut b = LinkBook::new(1, &[1, 2], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    let old = b.accepted(2, 0, &mut out).unwrap();
    out.clear();
    let new = b.accepted(2, 1, &mut out).unwrap();
    assert_eq!(
        out,
        [
            LinkAction::Close {
                link: old,
                reason: "replaced by a new connection from the peer".into()
            },
            LinkAction::Down(old),
            LinkAction::Up(new)
        ]
    );
    out.clear();
    // The old link's reader reports its end late: nothing happens to the new one.
    b.failed(old, "eof".into(), 2, &mut out);
    assert!(!b.queued(old, 10, 2, &mut out));
    assert!(out.is_empty());
    assert_eq!(b.link(2), Some(new));
}

#[test]
fn a_peer_that_does_not_read_is_dropped_past_the_queue_limit() {
    let mut b = LinkBook::new(1, &[1, 2], 1000);
    let mut out = Vec::new();
    let l = b.accepted(2, 0, &mut out).unwrap();
    out.clear();
    assert!(b.queued(l, 600, 0, &mut out));
    b.written(l, 200);
    assert_eq!(b.queued_bytes(l), 400);
    assert!(b.queued(l, 600, 0, &mut out), "exactly at the limit");
    assert!(!b.queued(l, 1, 0, &mut out));
    assert!(
        matches!(&out[0], LinkAction::Close { link, reason } if *link == l && reason.contains("1001 bytes unwritten")),
        "{out:?}"
    );
    assert_eq!(out[1], LinkAction::Down(l));
    assert_eq!(b.link(2), None);
}

/// Two books driven against each other through random losses settle with the link
/// up on both sides, with matching generations counted per side.
#[test]
fn two_books_converge_through_random_failures() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    for seed in 0..200u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut hi = LinkBook::new(3, &[1, 3], LINK_QUEUE_BYTES_MAX);
        let mut lo = LinkBook::new(1, &[1, 3], LINK_QUEUE_BYTES_MAX);
        let mut now = 0;
        // (hi's link, lo's link) of the connection that is open, if any.
        let mut conn: Option<(LinkId, LinkId)> = None;
        for step in 0..400 {
            now += rng.random_range(0..100);
            let mut out = Vec::new();
            hi.tick(now, &mut out);
            for (peer, attempt) in dials(&out) {
                assert_eq!(peer, 1);
                let ok = step > 300 || rng.random_bool(0.6);
                let mut o2 = Vec::new();
                if ok {
                    let theirs = lo.accepted(3, now, &mut o2).unwrap();
                    hi.dialed(1, attempt, true, now, &mut o2);
                    let ours = hi.link(1).unwrap();
                    conn = Some((ours, theirs));
                } else {
                    hi.dialed(1, attempt, false, now, &mut o2);
                }
            }
            if step < 300
                && rng.random_bool(0.1)
                && let Some((ours, theirs)) = conn.take()
            {
                let mut o = Vec::new();
                if rng.random_bool(0.5) {
                    hi.failed(ours, "lost".into(), now, &mut o);
                    lo.failed(theirs, "lost".into(), now, &mut o);
                } else {
                    lo.failed(theirs, "lost".into(), now, &mut o);
                    hi.failed(ours, "lost".into(), now, &mut o);
                }
            }
            assert_eq!(
                hi.link(1).is_some(),
                lo.link(3).is_some(),
                "seed {seed} step {step}: both sides agree the link is up"
            );
        }
        assert!(
            hi.link(1).is_some() && lo.link(3).is_some(),
            "seed {seed}: settled with the link up"
        );
    }
}

#[test]
fn on_the_quorum_port_learners_dial_their_leader_only() {
    // Server 2 follows 3: it dials 3 (a higher id) and nobody else, and refuses all.
    let mut b = LinkBook::new(2, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    b.set_policy(Policy::ToLeader(None), 0, &mut out);
    b.tick(0, &mut out);
    assert!(out.is_empty(), "a looking server has no quorum links");
    b.set_policy(Policy::ToLeader(Some(3)), 1, &mut out);
    b.tick(1, &mut out);
    assert_eq!(dials(&out), [(3, 1)]);
    assert!(b.dials(3) && !b.dials(1));
    out.clear();
    let l3 = b.dialed(3, 1, true, 1, &mut out).unwrap();
    assert_eq!(
        b.accepted(1, 1, &mut out),
        Err(Refusal::NotLeading(1)),
        "learners dial the leader, not each other"
    );
    // 2 becomes the leader: its link to 3 goes, learners 1 and 3 may connect.
    out.clear();
    b.set_policy(Policy::ToLeader(Some(2)), 2, &mut out);
    assert_eq!(
        out,
        [
            LinkAction::Close {
                link: l3,
                reason: "the server's role changed".into()
            },
            LinkAction::Down(l3)
        ]
    );
    out.clear();
    b.tick(3, &mut out);
    assert!(out.is_empty(), "a leader dials nobody");
    let l1 = b.accepted(1, 3, &mut out).unwrap();
    let l3 = b.accepted(3, 3, &mut out).unwrap();
    assert_eq!(b.up().count(), 2);
    // Back to looking: every quorum link closes.
    out.clear();
    b.set_policy(Policy::ToLeader(None), 4, &mut out);
    let downs: Vec<LinkId> = out
        .iter()
        .filter_map(|a| match a {
            LinkAction::Down(l) => Some(*l),
            _ => None,
        })
        .collect();
    assert_eq!(downs, [l1, l3]);
    assert_eq!(b.up().count(), 0);
}

/// A dial started under one policy does not bring a link up under another (the leader
/// changed, or this server started leading or looking, while it was in flight).
#[test]
fn a_dial_in_flight_across_a_policy_change_does_not_come_up() {
    let mut b = LinkBook::new(1, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    b.set_policy(Policy::ToLeader(Some(2)), 0, &mut out);
    b.tick(0, &mut out);
    assert_eq!(dials(&out), [(2, 1)]);
    out.clear();
    // The leader changes to 3 while the dial of 2 is under way.
    b.set_policy(Policy::ToLeader(Some(3)), 1, &mut out);
    let link = b.dialed(2, 1, true, 2, &mut out);
    assert_eq!(
        (link, ups(&out)),
        (None, vec![]),
        "no quorum link to a server this one no longer follows"
    );
}

#[test]
fn a_link_refused_right_after_the_dial_keeps_backing_off() {
    let mut b = LinkBook::new(5, &[1, 5], LINK_QUEUE_BYTES_MAX);
    let (mut now, mut delays, mut last) = (0, Vec::new(), 0);
    while delays.len() < 6 {
        let mut out = Vec::new();
        b.tick(now, &mut out);
        if let Some(&(_, attempt)) = dials(&out).first() {
            delays.push(now - last);
            last = now;
            let link = b.dialed(1, attempt, true, now, &mut out).unwrap();
            b.failed(link, "refused by the peer".into(), now, &mut out);
        }
        now += 1;
    }
    assert!(
        delays.windows(2).skip(1).all(|w| w[1] >= w[0]) && delays[5] > LINK_RETRY_MS_MIN,
        "no redial storm: {delays:?}"
    );
}

#[test]
fn in_craq_learners_also_link_among_themselves_higher_id_dialling() {
    // Server 3 follows 1 (leader) with learners 2, 3, 4: it dials the leader and 2,
    // accepts 4, refuses nobody else's dial but 2's (3 dials 2).
    let mut b = LinkBook::new(3, &[1, 2, 3, 4], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    b.set_policy(Policy::ToLeaderAndPeers(None), 0, &mut out);
    b.tick(0, &mut out);
    assert!(out.is_empty(), "a looking server has no quorum links");
    b.set_policy(Policy::ToLeaderAndPeers(Some(1)), 1, &mut out);
    b.tick(1, &mut out);
    let mut d: Vec<u64> = dials(&out).iter().map(|&(p, _)| p).collect();
    d.sort_unstable();
    assert_eq!(d, [1, 2]);
    out.clear();
    assert!(b.accepted(4, 1, &mut out).is_ok());
    assert_eq!(b.accepted(2, 1, &mut out), Err(Refusal::WeDial(2)));
    // As the leader it accepts everyone and dials nobody.
    let mut l = LinkBook::new(1, &[1, 2, 3, 4], LINK_QUEUE_BYTES_MAX);
    l.set_policy(Policy::ToLeaderAndPeers(Some(1)), 0, &mut out);
    out.clear();
    l.tick(0, &mut out);
    assert!(dials(&out).is_empty());
    for p in [2, 3, 4] {
        assert!(l.accepted(p, 0, &mut out).is_ok());
    }
}

fn knocks(out: &[LinkAction]) -> Vec<u64> {
    out.iter()
        .filter_map(|a| match a {
            LinkAction::Knock { peer } => Some(*peer),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lower_id_knocks_on_the_peers_that_dial_it_until_one_does() {
    // Server 1 restarted: 2 and 3 dial it, after their own backoff. It knocks at
    // once, then backs off while nobody dials, and stops once the link is up.
    let mut b = LinkBook::new(1, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    b.tick(0, &mut out);
    assert_eq!((dials(&out), knocks(&out)), (vec![], vec![2, 3]));
    out.clear();
    b.tick(LINK_RETRY_MS_MIN - 1, &mut out);
    assert!(out.is_empty(), "a knock backs off as a dial does");
    b.tick(LINK_RETRY_MS_MIN, &mut out);
    assert_eq!(knocks(&out), [2, 3]);
    out.clear();
    let l2 = b.accepted(2, LINK_RETRY_MS_MIN + 1, &mut out).unwrap();
    b.heard(l2);
    out.clear();
    b.tick(10 * LINK_RETRY_MS_MAX, &mut out);
    assert_eq!(knocks(&out), [3], "no knock on a peer with a link");
    // The knocked peer's side: a hello from the lower id makes it dial now.
    let mut b3 = LinkBook::new(3, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    b3.tick(0, &mut out);
    b3.dialed(1, 1, false, 0, &mut out);
    out.clear();
    assert_eq!(b3.accepted(1, 1, &mut out), Err(Refusal::WeDial(1)));
    b3.tick(1, &mut out);
    assert_eq!(
        dials(&out),
        [(1, 2)],
        "dialled back without waiting for the backoff"
    );
    assert!(knocks(&out).is_empty(), "the higher id never knocks");
}

#[test]
fn leaders_and_learners_of_the_quorum_port_do_not_knock() {
    let mut out = Vec::new();
    for policy in [
        Policy::ToLeader(Some(1)),
        Policy::ToLeader(None),
        Policy::ToLeaderAndPeers(None),
    ] {
        for me in [1, 2] {
            let mut b = LinkBook::new(me, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
            b.set_policy(policy, 0, &mut out);
            b.tick(0, &mut out);
        }
    }
    assert!(knocks(&out).is_empty(), "{out:?}");
    // CRAQ's learners link among themselves, dialled by the higher id, and do not
    // knock either: a leader (in some view) would take a knock as a link.
    let mut b = LinkBook::new(2, &[1, 2, 3, 4], LINK_QUEUE_BYTES_MAX);
    b.set_policy(Policy::ToLeaderAndPeers(Some(3)), 0, &mut out);
    out.clear();
    b.tick(0, &mut out);
    assert_eq!((dials(&out), knocks(&out)), (vec![(1, 1), (3, 1)], vec![]));
}

#[test]
fn knocks_follow_policy_changes_and_membership() {
    let mut b = LinkBook::new(1, &[1, 2, 3], LINK_QUEUE_BYTES_MAX);
    let mut out = Vec::new();
    b.tick(0, &mut out);
    assert_eq!(knocks(&out), [2, 3]);
    // A joined peer is knocked on at once; a removed one never again.
    assert!(b.add_peer(4));
    b.remove_peer(3, &mut out);
    out.clear();
    b.tick(1, &mut out);
    assert_eq!(knocks(&out), [4]);
    // A knock answered by the peer's dial while ours is out: the link is the peer's.
    let l2 = b.accepted(2, 2, &mut out).unwrap();
    assert_eq!(b.link(2), Some(l2));
    out.clear();
    b.tick(10 * LINK_RETRY_MS_MAX, &mut out);
    assert_eq!(knocks(&out), [4], "not on 2, which has a link");
}
