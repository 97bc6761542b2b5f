//! Fast leader election over real loopback links: three servers on one executor elect
//! the best history (ties: the highest id), re-elect among the survivors when the
//! leader stops, and a restarted server follows the leader they chose.

mod common;

use common::wait_for as wait;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use engine::peer::elect::{ElectionRunner, election_timing};
use engine::runtime::exec::run_on_cores;
use engine::zab::election::{Decision, PeerState};
use engine::zab::{Role, make_zxid};
use transport::peer::HELLO_PORT_ELECTION;

/// A bound for "this happens": reaching it means a bug, not a slow machine.
const WAIT_MAX: Duration = Duration::from_secs(30);

type Decisions = Rc<RefCell<Vec<(u64, Decision)>>>;

fn start(
    me: u64,
    addrs: &[std::net::SocketAddr],
    zxid: i64,
    log: &Decisions,
) -> Rc<ElectionRunner> {
    let n = addrs.len() as u64;
    let spec = common::port_spec(me, HELLO_PORT_ELECTION, addrs);
    let cfg = election_timing(me, Role::Participant, (1..=n).collect());
    let log = log.clone();
    ElectionRunner::start(spec, cfg, zxid, 1, move |d| {
        log.borrow_mut().push((me, d.clone()))
    })
    .unwrap()
}

/// Each live runner's decided leader and state.
fn decided(rs: &[Option<Rc<ElectionRunner>>]) -> Vec<Option<(u64, PeerState)>> {
    rs.iter()
        .map(|r| {
            r.as_ref()
                .and_then(|r| r.decided())
                .map(|d| (d.vote.leader, d.state))
        })
        .collect()
}

#[test]
fn three_servers_elect_reelect_and_take_back_a_restarted_one() {
    let addrs: Vec<_> = (0..3).map(|_| common::free_addr()).collect();
    run_on_cores(1, 0, move |_| {
        let addrs = addrs.clone();
        async move {
            let log: Decisions = Rc::default();
            // Server 1 holds the longest history: it must win although its id is lowest.
            let zxids = [make_zxid(1, 9), make_zxid(1, 5), make_zxid(1, 5)];
            let mut rs: Vec<Option<Rc<ElectionRunner>>> = (1..=3)
                .map(|id| Some(start(id, &addrs, zxids[id as usize - 1], &log)))
                .collect();
            use PeerState::*;
            let want = vec![
                Some((1, Leading)),
                Some((1, Following)),
                Some((1, Following)),
            ];
            wait(WAIT_MAX, "1 elected", || decided(&rs) == want).await;

            // The leader stops; the others look again and the better of them (equal
            // histories: the higher id, 3) leads.
            rs[0].take().unwrap().stop();
            for id in [2usize, 3] {
                rs[id - 1].as_ref().unwrap().look(zxids[id - 1], 1);
            }
            let want = vec![None, Some((3, Following)), Some((3, Leading))];
            wait(WAIT_MAX, "3 elected among the survivors", || {
                decided(&rs) == want
            })
            .await;

            // Server 1 comes back (looking, with its longer history): the others have
            // decided, so it learns their decision and follows 3.
            rs[0] = Some(start(1, &addrs, zxids[0], &log));
            let want = vec![
                Some((3, Following)),
                Some((3, Following)),
                Some((3, Leading)),
            ];
            wait(WAIT_MAX, "1 follows 3", || decided(&rs) == want).await;
            for r in rs.iter().flatten() {
                assert_eq!(r.ignored(), 0, "only votes on the election port");
                r.stop();
            }
            assert!(log.borrow().len() >= 6, "every decision was reported");
        }
    })
    .unwrap();
}

/// A callback that starts a new round (`look`, e.g. Zab could not reach the chosen
/// leader) does not have that round's "nothing decided yet" overwritten by the old
/// decision.
#[test]
fn a_round_started_from_on_decided_is_not_clobbered() {
    use std::rc::Weak;
    let addrs = [common::free_addr()];
    run_on_cores(1, 0, move |_| async move {
        let me: Rc<RefCell<Option<Weak<ElectionRunner>>>> = Rc::default();
        let rounds: Rc<RefCell<Vec<u64>>> = Rc::default();
        let spec = common::port_spec(1, HELLO_PORT_ELECTION, &addrs);
        let cfg = election_timing(1, Role::Participant, vec![1]);
        let runner = {
            let (me, rounds) = (me.clone(), rounds.clone());
            ElectionRunner::start(spec, cfg, 0, 1, move |d| {
                rounds.borrow_mut().push(d.round);
                if rounds.borrow().len() == 1 {
                    let r = me.borrow().as_ref().and_then(Weak::upgrade);
                    if let Some(r) = r {
                        r.look(0, 1); // a new round, from the callback
                    }
                }
            })
            .unwrap()
        };
        *me.borrow_mut() = Some(Rc::downgrade(&runner));
        wait(WAIT_MAX, "decided once", || !rounds.borrow().is_empty()).await;
        let first = rounds.borrow()[0];
        assert_ne!(
            runner.decided().map(|d| d.round),
            Some(first),
            "decided() reports the round the callback superseded"
        );
        runner.stop();
    })
    .unwrap();
}
