//! Batch mode survives a dropped connection: the session is reattached through the
//! connect string and its auth is re-added. A TCP proxy in front of the server lets the
//! test cut the connection at a known point.

mod common;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;
use tools::connect::ConnectString;
use tools::run::Session;

/// Forwards every accepted connection to `target`; `cut` severs all open ones.
struct Proxy {
    addr: SocketAddr,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(Mutex::new(Vec::new()));
        let registry = open.clone();
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { return };
                let Ok(up) = TcpStream::connect(target) else {
                    continue;
                };
                let mut reg = registry.lock().unwrap();
                reg.push(down.try_clone().unwrap());
                reg.push(up.try_clone().unwrap());
                pump(down.try_clone().unwrap(), up.try_clone().unwrap());
                pump(up, down);
            }
        });
        Proxy { addr, open }
    }

    fn cut(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[test]
fn a_cut_connection_is_reported_then_the_session_reattached() {
    let proxy = Proxy::start(server());
    let conn = ConnectString::parse(&proxy.addr.to_string()).unwrap();
    let auth = [("digest".to_string(), b"rc:pw".to_vec())];
    let mut s = Session::open(&conn, 30_000, &auth).unwrap();
    ok(&mut s, "create /rc");
    ok(&mut s, "create -e /rc/e x auth::cdrwa");
    let sid = s.session_id();

    proxy.cut();
    let e = fails(&mut s, "get /rc/e");
    assert!(
        e.starts_with("KeeperErrorCode = ConnectionLoss for /rc/e"),
        "{e}"
    );

    let mut notices = Vec::new();
    s.keep_alive(&mut notices).unwrap();
    assert_eq!(
        String::from_utf8(notices).unwrap(),
        "",
        "reattached, not a new session"
    );
    assert_eq!(s.session_id(), sid);
    // The ephemeral survived (same session) and the digest auth is back (it is readable).
    assert_eq!(ok(&mut s, "get /rc/e"), "x\n");
}

#[test]
fn watches_are_set_again_after_a_reconnect() {
    let proxy = Proxy::start(server());
    let conn = ConnectString::parse(&proxy.addr.to_string()).unwrap();
    let mut s = Session::open(&conn, 30_000, &[]).unwrap();
    ok(&mut s, "create /rw");
    ok(&mut s, "create /rw/d 1");
    ok(&mut s, "addWatch -m persistent /rw");
    ok(&mut s, "get -w /rw/d");

    proxy.cut();
    fails(&mut s, "ls /rw");
    // Changed while ckctl is disconnected: the re-set watch fires on reconnect.
    let mut other = session("");
    ok(&mut other, "set /rw/d 2");
    s.keep_alive(&mut Vec::new()).unwrap();
    // Changed after the reconnect: the persistent watch still fires.
    ok(&mut other, "set /rw x");

    let mut out = Vec::new();
    s.wait_events(Some(2), &mut out, Some(EVENT_WAIT)).unwrap();
    let text = String::from_utf8(out).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("WatchedEvent"))
        .collect();
    assert_eq!(
        events,
        [
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/rw/d",
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/rw",
        ],
        "{text}"
    );
}
