//! Peer links over real loopback TCP: three servers' election ports on one executor.
//! Links come up between every pair (dialled by the higher id), carry frames both
//! ways, survive a malformed frame (only that link drops, then it is redialled),
//! refuse strangers and wrong ports, and come back after a server stops and restarts.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use rkyv::util::AlignedVec;

use engine::peer::links::LINK_QUEUE_BYTES_MAX;
use engine::peer::net::{NetEvent, PeerNet, PortSpec};
use engine::runtime::exec::run_on_cores;
use transport::peer::{
    Ack, HELLO_PORT_ELECTION, HELLO_PORT_QUORUM, HELLO_PROTOCOL, Hello, PeerMsg, encode_frame,
};

/// A bound for "this happens": reaching it means a bug, not a slow machine.
const WAIT_MAX: Duration = Duration::from_secs(20);

type Log = Rc<RefCell<Vec<(u64, String)>>>;

fn start(me: u64, addrs: &[std::net::SocketAddr], log: &Log) -> Rc<PeerNet> {
    let spec = PortSpec {
        me,
        port: HELLO_PORT_ELECTION,
        listen: addrs[me as usize - 1],
        peers: (1..=addrs.len() as u64)
            .filter(|&id| id != me)
            .map(|id| (id, addrs[id as usize - 1]))
            .collect(),
        queue_bytes_max: LINK_QUEUE_BYTES_MAX,
    };
    let log = log.clone();
    PeerNet::start(spec, move |e| {
        let line = match e {
            NetEvent::Up(l) => format!("up {}", l.peer),
            NetEvent::Down(l) => format!("down {}", l.peer),
            NetEvent::Msg(l, m) => format!("msg {} {}", l.peer, m.name()),
        };
        log.borrow_mut().push((me, line));
    })
    .unwrap()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT_MAX, "waited {WAIT_MAX:?} for {what}");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
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
    run_on_cores(1, move |_| {
        let addrs = addrs.clone();
        async move {
            let log: Log = Rc::default();
            let mut nets: Vec<_> = (1..=3).map(|id| start(id, &addrs, &log)).collect();
            wait_for("every pair linked", || all_up(&nets)).await;

            // Frames both ways over a link.
            assert!(nets[2].send(1, &PeerMsg::Ack(Ack { zxid: 7 })));
            assert!(nets[0].send(3, &PeerMsg::Ack(Ack { zxid: 8 })));
            wait_for("acks delivered", || {
                count(&log, 1, "msg 3 ACK") == 1 && count(&log, 3, "msg 1 ACK") == 1
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
            wait_for("the bad link dropped", || {
                count(&log, 1, "down 3") >= downs_before + 2
            })
            .await;
            drop(s);
            wait_for("relinked after bad input", || all_up(&nets)).await;
            assert_eq!(count(&log, 1, "down 2"), 0, "the other link never dropped");

            // Server 2 stops: its peers see it go; a new server 2 links again.
            nets[1].stop();
            wait_for("2 gone", || {
                nets[0].up().len() == 1 && nets[2].up().len() == 1
            })
            .await;
            nets[1] = start(2, &addrs, &log);
            wait_for("2 back", || all_up(&nets)).await;
            assert!(nets[1].send(1, &PeerMsg::Ack(Ack { zxid: 9 })));
            wait_for("a frame from the new 2", || {
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
