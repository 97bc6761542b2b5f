//! Peer links over real loopback TCP: three servers' election ports on one executor.
//! Links come up between every pair (dialled by the higher id), carry frames both
//! ways, survive a malformed frame (only that link drops, then it is redialled),
//! refuse strangers and wrong ports, and come back after a server stops and restarts.

mod common;

use common::wait_for as wait;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use rkyv::util::AlignedVec;

use engine::peer::links::Policy;
use engine::peer::net::{NetEvent, PeerNet};
use engine::runtime::exec::run_on_cores;
use transport::peer::{
    Ack, HELLO_PORT_ELECTION, HELLO_PORT_QUORUM, HELLO_PROTOCOL, Hello, PeerMsg, encode_frame,
};

/// A bound for "this happens": reaching it means a bug, not a slow machine.
const WAIT_MAX: Duration = Duration::from_secs(20);

type Log = Rc<RefCell<Vec<(u64, String)>>>;

fn start(me: u64, addrs: &[std::net::SocketAddr], log: &Log) -> Rc<PeerNet> {
    start_port(me, HELLO_PORT_ELECTION, addrs, log)
}

fn start_port(me: u64, port: u8, addrs: &[std::net::SocketAddr], log: &Log) -> Rc<PeerNet> {
    let spec = common::port_spec(me, port, addrs);
    let log = log.clone();
    PeerNet::start(spec, move |e| {
        let line = match e {
            NetEvent::Up(l) => format!("up {}", l.peer),
            NetEvent::Down(l) => format!("down {}", l.peer),
            NetEvent::Msg(l, m, _) => format!("msg {} {}", l.peer, m.name()),
        };
        log.borrow_mut().push((me, line));
    })
    .unwrap()
}

fn all_up(nets: &[Rc<PeerNet>]) -> bool {
    nets.iter().all(|n| n.up().len() == nets.len() - 1)
}

fn frame(msg: &PeerMsg) -> AlignedVec<16> {
    let mut f = AlignedVec::new();
    encode_frame(msg, &mut f).unwrap();
    f
}

fn hello(server_id: u64, port: u8) -> AlignedVec<16> {
    frame(&PeerMsg::Hello(Hello {
        protocol: HELLO_PROTOCOL,
        server_id,
        port,
    }))
}

fn count(log: &Log, who: u64, line: &str) -> usize {
    log.borrow()
        .iter()
        .filter(|(w, l)| *w == who && l == line)
        .count()
}

#[test]
fn links_connect_carry_frames_drop_bad_input_and_recover() {
    let addrs: Vec<_> = (0..3).map(|_| common::free_addr()).collect();
    run_on_cores(1, 0, move |_| {
        let addrs = addrs.clone();
        async move {
            let log: Log = Rc::default();
            let mut nets: Vec<_> = (1..=3).map(|id| start(id, &addrs, &log)).collect();
            wait(WAIT_MAX, "every pair linked", || all_up(&nets)).await;

            // Frames both ways over a link.
            assert!(nets[2].send(1, &PeerMsg::Ack(Ack { zxid: 7 })));
            assert!(nets[0].send(3, &PeerMsg::Ack(Ack { zxid: 8 })));
            wait(WAIT_MAX, "acks delivered", || {
                count(&log, 1, "msg 3 ACK") == 1 && count(&log, 3, "msg 1 ACK") == 1
            })
            .await;

            // A paused net stops reading (its consumer is behind) once the read it is
            // waiting in returns, and reads on when the pause lifts. (The absence can
            // only be shown over a while: a wrong net would show the frame within it,
            // a slow machine cannot fake one.)
            let paused = Rc::new(std::cell::Cell::new(true));
            let p = paused.clone();
            nets[0].set_pause(move || p.get());
            assert!(nets[2].send(1, &PeerMsg::Ack(Ack { zxid: 70 })));
            wait(WAIT_MAX, "the read already waiting completes", || {
                count(&log, 1, "msg 3 ACK") == 2
            })
            .await;
            assert!(nets[2].send(1, &PeerMsg::Ack(Ack { zxid: 71 })));
            glommio::timer::sleep(Duration::from_millis(200)).await;
            assert_eq!(count(&log, 1, "msg 3 ACK"), 2, "nothing read while paused");
            paused.set(false);
            wait(WAIT_MAX, "the held ack read after the pause", || {
                count(&log, 1, "msg 3 ACK") == 3
            })
            .await;

            // A stranger and a wrong port are refused; the links stay.
            for (id, port) in [(9, HELLO_PORT_ELECTION), (3, HELLO_PORT_QUORUM)] {
                let mut s = TcpStream::connect(addrs[0]).await.unwrap();
                s.write_all(&hello(id, port)).await.unwrap();
                let mut buf = [0u8; 1];
                let n = futures_lite::AsyncReadExt::read(&mut s, &mut buf).await;
                assert!(matches!(n, Ok(0) | Err(_)), "refused connection is closed");
            }
            assert!(all_up(&nets));

            // Server 3's link to 1 is replaced by an impostor that sends garbage:
            // server 1 drops that link only, server 3 redials, all are linked again.
            let downs_before = count(&log, 1, "down 3");
            let mut s = TcpStream::connect(addrs[0]).await.unwrap();
            s.write_all(&hello(3, HELLO_PORT_ELECTION)).await.unwrap();
            s.write_all(&[0xAB; 64]).await.unwrap();
            wait(WAIT_MAX, "the bad link dropped", || {
                count(&log, 1, "down 3") >= downs_before + 2
            })
            .await;
            drop(s);
            wait(WAIT_MAX, "relinked after bad input", || all_up(&nets)).await;
            assert_eq!(count(&log, 1, "down 2"), 0, "the other link never dropped");

            // Server 2 stops: its peers see it go; a new server 2 links again.
            nets[1].stop();
            wait(WAIT_MAX, "2 gone", || {
                nets[0].up().len() == 1 && nets[2].up().len() == 1
            })
            .await;
            nets[1] = start(2, &addrs, &log);
            wait(WAIT_MAX, "2 back", || all_up(&nets)).await;
            assert!(nets[1].send(1, &PeerMsg::Ack(Ack { zxid: 9 })));
            wait(WAIT_MAX, "a frame from the new 2", || {
                count(&log, 1, "msg 2 ACK") == 1
            })
            .await;
            for n in &nets {
                n.stop();
            }
        }
    })
    .unwrap();
}

#[test]
fn quorum_port_links_follow_the_leader() {
    let addrs: Vec<_> = (0..3).map(|_| common::free_addr()).collect();
    run_on_cores(1, 0, move |_| {
        let addrs = addrs.clone();
        async move {
            let log: Log = Rc::default();
            let nets: Vec<_> = (1..=3)
                .map(|id| start_port(id, HELLO_PORT_QUORUM, &addrs, &log))
                .collect();
            for n in &nets {
                n.set_policy(Policy::ToLeader(None));
            }
            for n in &nets {
                n.set_policy(Policy::ToLeader(Some(2)));
            }
            let peers = |n: &Rc<PeerNet>| {
                let mut p: Vec<u64> = n.up().iter().map(|l| l.peer).collect();
                p.sort();
                p
            };
            wait(WAIT_MAX, "learners linked to 2", || {
                peers(&nets[1]) == [1, 3] && peers(&nets[0]) == [2] && peers(&nets[2]) == [2]
            })
            .await;
            // A new leader: every link of the old role closes, learners dial 1.
            for n in &nets {
                n.set_policy(Policy::ToLeader(Some(1)));
            }
            wait(WAIT_MAX, "learners linked to 1", || {
                peers(&nets[0]) == [2, 3] && peers(&nets[1]) == [1] && peers(&nets[2]) == [1]
            })
            .await;
            assert!(nets[2].send(1, &PeerMsg::Ack(Ack { zxid: 1 })));
            assert!(
                !nets[2].send(2, &PeerMsg::Ack(Ack { zxid: 1 })),
                "no learner-to-learner link"
            );
            wait(WAIT_MAX, "a learner's frame at the leader", || {
                count(&log, 1, "msg 3 ACK") == 1
            })
            .await;
            for n in &nets {
                n.stop();
            }
        }
    })
    .unwrap();
}

/// A handler that calls back into its PeerNet (`set_policy` when Zab steps down on a
/// message, or a `send` that overflows the queue) gets the resulting `Down` events
/// after it returns, never nested inside its own call (a protocol handler holding a
/// `RefCell` borrow of its state would panic).
#[test]
fn the_handler_is_not_reentered_by_its_own_calls() {
    use std::cell::Cell;
    use std::rc::Weak;
    let addrs: Vec<_> = (0..2).map(|_| common::free_addr()).collect();
    run_on_cores(1, 0, move |_| {
        let addrs = addrs.clone();
        async move {
            let log: Log = Rc::default();
            let learner = start_port(1, HELLO_PORT_QUORUM, &addrs, &log);
            // The leader's handler steps down when a frame arrives.
            let me: Rc<RefCell<Option<Weak<PeerNet>>>> = Rc::default();
            let (depth, deepest) = (Rc::new(Cell::new(0u32)), Rc::new(Cell::new(0u32)));
            let spec = common::port_spec(2, HELLO_PORT_QUORUM, &addrs);
            let leader = {
                let (me, depth, deepest) = (me.clone(), depth.clone(), deepest.clone());
                PeerNet::start(spec, move |e| {
                    depth.set(depth.get() + 1);
                    deepest.set(deepest.get().max(depth.get()));
                    if let NetEvent::Msg(..) = e {
                        let net = me.borrow().as_ref().and_then(Weak::upgrade);
                        if let Some(net) = net {
                            net.set_policy(Policy::ToLeader(None));
                        }
                    }
                    depth.set(depth.get() - 1);
                })
                .unwrap()
            };
            *me.borrow_mut() = Some(Rc::downgrade(&leader));
            leader.set_policy(Policy::ToLeader(Some(2)));
            learner.set_policy(Policy::ToLeader(Some(2)));
            wait(WAIT_MAX, "linked", || leader.up().len() == 1).await;
            assert!(learner.send(2, &PeerMsg::Ack(Ack { zxid: 1 })));
            wait(WAIT_MAX, "stepped down", || leader.up().is_empty()).await;
            assert_eq!(deepest.get(), 1, "the handler was re-entered");
            leader.stop();
            learner.stop();
        }
    })
    .unwrap();
}
