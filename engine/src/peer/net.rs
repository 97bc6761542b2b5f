//! The glommio side of one port's replication links (election or quorum): listening,
//! dialling, the `Hello` exchange, and one reader and one writer task per link, all
//! on the executor that owns the port. What to do is [`LinkBook`]'s; this module only
//! moves bytes. Contract:
//! - A dialler's first frame is a [`Hello`] with its id, [`HELLO_PROTOCOL`] and the
//!   port kind; the acceptor reads it within [`HELLO_WAIT_MS_MAX`], checks it and asks
//!   the book, then the link is up on both sides (the dialler counts it up once its
//!   hello is written). A wrong protocol, port or id, or anything but a hello, closes
//!   the connection with a logged reason.
//! - Every received frame is validated by `transport::peer::PeerDecoder` (crcs,
//!   bytecheck, [`PEER_FRAME_BYTES_MAX`]) and handed to the port's handler as an
//!   `&ArchivedPeerMsg`, read in place. A malformed or oversized frame drops that
//!   link (logged with the peer's id), never the process; the book redials.
//! - [`PeerNet::send`] queues an encoded frame for a peer's link; bytes queued and not
//!   written are bounded by the book (the link is dropped past the limit). Nothing is
//!   queued for a peer without a link, nor once the net is stopped.
//! - The handler is never re-entered: `Up`/`Down` caused by a call the handler makes
//!   (`send`, `set_policy`) are queued and delivered after it returns, in order. Per
//!   link the handler sees `Up`, then messages, then `Down`, and nothing after it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{Task, spawn_local, timer};
use rkyv::util::AlignedVec;
use std::future::Future;
use transport::peer::{
    ArchivedPeerMsg, HELLO_PROTOCOL, Hello, PEER_FRAME_BYTES_MAX, PeerDecoder, PeerMsg,
    encode_frame,
};

use super::links::{LinkAction, LinkBook, LinkId, Policy};
use crate::runtime::mailbox::Mailbox;
use crate::zab::ServerId;

/// How often a paused reader looks whether it may read again.
pub const PAUSE_POLL_MS: u64 = 1;
/// How long an accepted connection may take to send its hello.
pub const HELLO_WAIT_MS_MAX: u64 = 2_000;
/// How long a dial may take.
pub const DIAL_MS_MAX: u64 = 2_000;
/// Period of the book's clock (due dials).
pub const LINK_TICK_MS: u64 = 10;
/// Bytes asked of a socket per read.
pub const PEER_READ_CHUNK_BYTES: usize = 64 << 10;
/// Frames a writer takes per wake-up; they go out in one write.
pub const PEER_WRITE_BATCH_MAX: usize = 256;

const _: () = assert!(PEER_READ_CHUNK_BYTES <= PEER_FRAME_BYTES_MAX);

/// One port of this server and its peers.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub me: ServerId,
    /// `HELLO_PORT_ELECTION` or `HELLO_PORT_QUORUM`.
    pub port: u8,
    pub listen: SocketAddr,
    /// Every other member and its address for this port.
    pub peers: Vec<(ServerId, SocketAddr)>,
    pub queue_bytes_max: usize,
}

/// What the port's handler is told, in order per link.
#[derive(Debug)]
pub enum NetEvent<'a> {
    Up(LinkId),
    /// A frame from the link, validated and read in place, with the frame's bytes
    /// (what to send on, unchanged, to forward it).
    Msg(LinkId, &'a ArchivedPeerMsg, &'a [u8]),
    Down(LinkId),
}

type Handler = Box<dyn Fn(NetEvent<'_>)>;

struct LinkIo {
    fd: RawFd,
    out: Rc<Mailbox<Rc<AlignedVec<16>>>>,
}

/// The links of one port, running on the current executor.
pub struct PeerNet {
    spec: PortSpec,
    /// Every other member's address for this port: `spec.peers`, then what dynamic
    /// reconfiguration changed.
    addrs: RefCell<HashMap<ServerId, SocketAddr>>,
    book: RefCell<LinkBook>,
    links: RefCell<HashMap<LinkId, LinkIo>>,
    handler: Handler,
    tasks: RefCell<Vec<Task<()>>>,
    stopped: Cell<bool>,
    /// Link events waiting for the handler, and whether it is running now.
    events: RefCell<std::collections::VecDeque<(bool, LinkId)>>,
    in_handler: Cell<bool>,
    started: Instant,
    /// Bytes written to and read from each peer, over all its links so far.
    traffic: RefCell<HashMap<ServerId, (u64, u64)>>,
    /// While it says so, reader tasks stop reading sockets (the handler's consumer is
    /// behind): TCP then pushes back on the peers.
    pause: RefCell<Option<Box<dyn Fn() -> bool>>>,
}

impl PeerNet {
    /// Binds the port and starts accepting and dialling. `handler` is called for every
    /// link event and message, on this executor; it must not block.
    pub fn start(
        spec: PortSpec,
        handler: impl Fn(NetEvent<'_>) + 'static,
    ) -> std::io::Result<Rc<PeerNet>> {
        let listener = crate::server::listen::bind_listener(spec.listen)?;
        let members: Vec<ServerId> = spec.peers.iter().map(|(id, _)| *id).collect();
        let net = Rc::new(PeerNet {
            book: RefCell::new(LinkBook::new(spec.me, &members, spec.queue_bytes_max)),
            addrs: RefCell::new(spec.peers.iter().copied().collect()),
            spec,
            links: RefCell::new(HashMap::new()),
            handler: Box::new(handler),
            tasks: RefCell::new(Vec::new()),
            stopped: Cell::new(false),
            events: RefCell::new(std::collections::VecDeque::new()),
            in_handler: Cell::new(false),
            started: Instant::now(),
            traffic: RefCell::new(HashMap::new()),
            pause: RefCell::new(None),
        });
        let accept = spawn_local(accept_loop(listener, Rc::downgrade(&net)));
        let tick = spawn_local(tick_loop(Rc::downgrade(&net)));
        net.tasks.borrow_mut().extend([accept, tick]);
        Ok(net)
    }

    /// Bytes sent to and received from each peer so far (`(peer, sent, received)`),
    /// totals that only grow.
    pub fn traffic(&self) -> Vec<(ServerId, u64, u64)> {
        let mut v: Vec<_> = self
            .traffic
            .borrow()
            .iter()
            .map(|(&p, &(s, r))| (p, s, r))
            .collect();
        v.sort_unstable();
        v
    }

    fn count(&self, peer: ServerId, sent: usize, received: usize) {
        let mut t = self.traffic.borrow_mut();
        let e = t.entry(peer).or_default();
        e.0 += sent as u64;
        e.1 += received as u64;
    }

    /// Which links the port has from now on (the quorum port follows the server's
    /// role: see `links::Policy`); links that no longer fit close.
    pub fn set_policy(self: &Rc<Self>, policy: Policy) {
        let mut acts = Vec::new();
        self.book
            .borrow_mut()
            .set_policy(policy, self.now_ms(), &mut acts);
        self.apply(acts);
    }

    /// The peers with a link up now.
    pub fn up(&self) -> Vec<LinkId> {
        self.book.borrow().up().collect()
    }

    /// Readers stop reading while `paused()` is true (checked before each socket
    /// read, every [`PAUSE_POLL_MS`] while paused; a read already waiting completes,
    /// so one more read's frames may still come).
    pub fn set_pause(&self, paused: impl Fn() -> bool + 'static) {
        *self.pause.borrow_mut() = Some(Box::new(paused));
    }

    fn paused(&self) -> bool {
        self.pause.borrow().as_ref().is_some_and(|p| p())
    }

    /// The link to `peer` now, if one is up.
    pub fn link_to(&self, peer: ServerId) -> Option<LinkId> {
        self.book.borrow().link(peer)
    }

    /// Bytes queued on `link` and not written yet (0 once it is gone).
    pub fn queued_bytes(&self, link: LinkId) -> usize {
        self.book.borrow().queued_bytes(link)
    }

    /// Queues `msg` for `peer`'s link. False when there is no link (nothing is queued:
    /// the protocols resend after a reconnect) or the link was just dropped for being
    /// too far behind.
    pub fn send(self: &Rc<Self>, peer: ServerId, msg: &PeerMsg) -> bool {
        let mut frame = AlignedVec::<16>::new();
        if let Err(e) = encode_frame(msg, &mut frame) {
            tracing::error!(peer, error = %e, "peer message not encodable; not sent");
            return false;
        }
        self.send_frame(peer, Rc::new(frame))
    }

    /// Queues an encoded frame (the same `Rc` may go to several peers).
    pub fn send_frame(self: &Rc<Self>, peer: ServerId, frame: Rc<AlignedVec<16>>) -> bool {
        if self.stopped.get() {
            return false;
        }
        let Some(link) = self.book.borrow().link(peer) else {
            return false;
        };
        let mut acts = Vec::new();
        let ok = self
            .book
            .borrow_mut()
            .queued(link, frame.len(), self.now_ms(), &mut acts);
        if ok && let Some(io) = self.links.borrow().get(&link) {
            io.out.push(frame);
        }
        self.apply(acts);
        ok
    }

    /// A member joined at `addr` (dynamic reconfiguration), or moved there.
    pub fn add_peer(self: &Rc<Self>, peer: ServerId, addr: SocketAddr) {
        if peer == self.spec.me {
            return;
        }
        let moved = self
            .addrs
            .borrow_mut()
            .insert(peer, addr)
            .is_some_and(|a| a != addr);
        if moved {
            self.close(peer, "the server moved (reconfig)".into());
        }
        self.book.borrow_mut().add_peer(peer);
    }

    /// A member left: its link closes for good.
    pub fn remove_peer(self: &Rc<Self>, peer: ServerId) {
        self.addrs.borrow_mut().remove(&peer);
        let mut acts = Vec::new();
        self.book.borrow_mut().remove_peer(peer, &mut acts);
        self.apply(acts);
    }

    /// Drops the link to `peer` (a protocol error, silence, a lagging follower);
    /// the book redials it if this server dials, with backoff.
    pub fn close(self: &Rc<Self>, peer: ServerId, reason: String) {
        let Some(link) = self.book.borrow().link(peer) else {
            return;
        };
        let mut acts = Vec::new();
        self.book
            .borrow_mut()
            .failed(link, reason, self.now_ms(), &mut acts);
        self.apply(acts);
    }

    /// Closes every link and stops listening and dialling.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.tasks.borrow_mut().clear();
        for (_, io) in self.links.borrow_mut().drain() {
            shutdown(io.fd);
            io.out.close();
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Carries out the book's actions.
    fn apply(self: &Rc<Self>, acts: Vec<LinkAction>) {
        for a in acts {
            match a {
                LinkAction::Dial { peer, attempt } => self.dial(peer, attempt),
                LinkAction::Knock { peer } => self.knock(peer),
                LinkAction::Up(link) => self.events.borrow_mut().push_back((true, link)),
                LinkAction::Close { link, reason } => {
                    tracing::info!(peer = link.peer, port = self.spec.port, %reason, "peer link closed");
                    if let Some(io) = self.links.borrow_mut().remove(&link) {
                        shutdown(io.fd);
                        io.out.close();
                    }
                }
                LinkAction::Down(link) => self.events.borrow_mut().push_back((false, link)),
            }
        }
        self.deliver_events();
    }

    /// Hands queued link events to the handler, unless it is running (then they go
    /// when it returns).
    fn deliver_events(&self) {
        if self.stopped.get() {
            self.events.borrow_mut().clear(); // a stopped net tells nothing more
            return;
        }
        if self.in_handler.get() {
            return;
        }
        self.in_handler.set(true);
        loop {
            let Some((up, link)) = self.events.borrow_mut().pop_front() else {
                break;
            };
            (self.handler)(if up {
                NetEvent::Up(link)
            } else {
                NetEvent::Down(link)
            });
        }
        self.in_handler.set(false);
    }

    /// Hands a received message to the handler, if its link is still the current one.
    fn deliver_msg(&self, link: LinkId, msg: &ArchivedPeerMsg, frame: &[u8]) -> bool {
        if self.stopped.get() || self.book.borrow().link(link.peer) != Some(link) {
            return false;
        }
        debug_assert!(
            !self.in_handler.get(),
            "messages come from reader tasks only"
        );
        self.in_handler.set(true);
        (self.handler)(NetEvent::Msg(link, msg, frame));
        self.in_handler.set(false);
        self.deliver_events();
        true
    }

    /// Connects to `peer`, says hello and hangs up (`LinkAction::Knock`): it refuses
    /// the connection and dials this server back.
    fn knock(self: &Rc<Self>, peer: ServerId) {
        let Some(addr) = self.addrs.borrow().get(&peer).copied() else {
            return;
        };
        let frame = self.hello_frame();
        spawn_local(async move {
            let knocked = within(DIAL_MS_MAX, async {
                let mut s = TcpStream::connect(addr).await.map_err(io_err)?;
                s.write_all(&frame).await.map_err(io_err)?;
                s.close().await.map_err(io_err)
            })
            .await;
            if let Err(e) = knocked {
                tracing::debug!(peer, %addr, error = %e, "peer knock failed");
            }
        })
        .detach();
    }

    fn hello_frame(&self) -> AlignedVec<16> {
        let hello = PeerMsg::Hello(Hello {
            protocol: HELLO_PROTOCOL,
            server_id: self.spec.me,
            port: self.spec.port,
        });
        let mut frame = AlignedVec::<16>::new();
        encode_frame(&hello, &mut frame).expect("a hello always encodes");
        frame
    }

    fn dial(self: &Rc<Self>, peer: ServerId, attempt: u64) {
        let Some(addr) = self.addrs.borrow().get(&peer).copied() else {
            return;
        };
        let frame = self.hello_frame();
        let net = Rc::downgrade(self);
        spawn_local(async move {
            let connected = within(DIAL_MS_MAX, async {
                let mut s = TcpStream::connect(addr).await.map_err(io_err)?;
                s.set_nodelay(true).map_err(io_err)?;
                s.write_all(&frame).await.map_err(io_err)?;
                Ok(s)
            })
            .await;
            let Some(net) = net.upgrade().filter(|n| !n.stopped.get()) else {
                return;
            };
            let mut acts = Vec::new();
            let ok = connected.is_ok();
            let link = net
                .book
                .borrow_mut()
                .dialed(peer, attempt, ok, net.now_ms(), &mut acts);
            if let Err(e) = &connected {
                tracing::debug!(peer, %addr, error = %e, "peer dial failed");
            }
            match (connected, link) {
                (Ok(stream), Some(link)) => {
                    net.run_link(stream, link, acts, PeerDecoder::new(), Vec::new())
                }
                (Ok(stream), None) => drop(stream),
                (Err(_), _) => net.apply(acts),
            }
        })
        .detach();
    }

    /// Registers the link's writer, tells the handler (through `acts`, which hold its
    /// `Up`), and reads frames until the link ends: from `first` (bytes that came
    /// with the hello), then the socket, through `decoder`.
    fn run_link(
        self: &Rc<Self>,
        stream: TcpStream,
        link: LinkId,
        acts: Vec<LinkAction>,
        decoder: PeerDecoder,
        first: Vec<u8>,
    ) {
        let fd = stream.as_raw_fd();
        let out = Rc::new(Mailbox::new());
        self.links.borrow_mut().insert(
            link,
            LinkIo {
                fd,
                out: out.clone(),
            },
        );
        self.apply(acts);
        let (reader, writer) = futures_lite::io::split(stream);
        spawn_local(write_loop(writer, out, Rc::downgrade(self), link)).detach();
        spawn_local(read_loop(reader, Rc::downgrade(self), link, decoder, first)).detach();
    }

    fn lost(self: &Rc<Self>, link: LinkId, reason: String) {
        let mut acts = Vec::new();
        self.book
            .borrow_mut()
            .failed(link, reason, self.now_ms(), &mut acts);
        self.apply(acts);
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn io_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `f`, or an error once `ms` have passed.
async fn within<T>(ms: u64, f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    futures_lite::future::or(f, async {
        timer::sleep(Duration::from_millis(ms)).await;
        Err(format!("no answer within {ms} ms"))
    })
    .await
}

fn shutdown(fd: RawFd) {
    // SAFETY: `fd` belongs to a stream the link's tasks hold; shutdown does not close
    // it, it only ends both directions so those tasks finish.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

async fn tick_loop(net: Weak<PeerNet>) {
    loop {
        {
            let Some(net) = net.upgrade() else { return };
            let mut acts = Vec::new();
            net.book.borrow_mut().tick(net.now_ms(), &mut acts);
            net.apply(acts);
        }
        timer::sleep(Duration::from_millis(LINK_TICK_MS)).await;
    }
}

async fn accept_loop(listener: TcpListener, net: Weak<PeerNet>) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                timer::sleep(Duration::from_millis(LINK_TICK_MS)).await;
                continue;
            }
        };
        if net.upgrade().is_none() {
            return;
        }
        // Both ends of a link send small frames (commits, acks) that must not wait
        // for Nagle's algorithm: without it a leader's commit reached an idle
        // follower up to 40 ms late (the peer's delayed ACK), seen as reads at one
        // follower missing a write acknowledged at another.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a peer link");
        }
        spawn_local(greet(stream, net.clone())).detach();
    }
}

/// Reads the hello of an accepted connection and, if the book takes it, runs the link.
async fn greet(mut stream: TcpStream, net: Weak<PeerNet>) {
    let from = stream.peer_addr().ok();
    let mut decoder = PeerDecoder::new();
    let mut buf = vec![0u8; PEER_READ_CHUNK_BYTES];
    let said = within(HELLO_WAIT_MS_MAX, async {
        loop {
            let n = stream.read(&mut buf).await.map_err(io_err)?;
            if n == 0 {
                return Err("closed before its hello".to_string());
            }
            let mut chunk = &buf[..n];
            let hello = match decoder.decode(&mut chunk).map_err(io_err)? {
                None => continue,
                Some(ArchivedPeerMsg::Hello(h)) => Hello {
                    protocol: h.protocol.to_native(),
                    server_id: h.server_id.to_native(),
                    port: h.port,
                },
                Some(other) => return Err(format!("first frame is {}, not HELLO", other.name())),
            };
            // What followed the hello in this read starts the link's stream.
            return Ok((hello, chunk.to_vec()));
        }
    })
    .await;
    let Some(net) = net.upgrade().filter(|n| !n.stopped.get()) else {
        return;
    };
    let (hello, rest) = match said {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(?from, port = net.spec.port, reason = %e, "peer connection refused");
            return;
        }
    };
    if hello.protocol != HELLO_PROTOCOL || hello.port != net.spec.port {
        tracing::info!(
            ?from,
            peer = hello.server_id,
            protocol = hello.protocol,
            port = hello.port,
            "peer connection refused: wrong protocol or port"
        );
        return;
    }
    let mut acts = Vec::new();
    let accepted = net
        .book
        .borrow_mut()
        .accepted(hello.server_id, net.now_ms(), &mut acts);
    match accepted {
        Ok(link) => net.run_link(stream, link, acts, decoder, rest),
        // A knock (`LinkAction::Knock`) is refused by design: the book dials back.
        Err(refusal @ super::links::Refusal::WeDial(_)) => {
            net.apply(acts);
            tracing::debug!(?from, peer = hello.server_id, reason = %refusal, "peer knocked: dialling it");
        }
        Err(refusal) => {
            net.apply(acts);
            tracing::info!(?from, peer = hello.server_id, reason = %refusal, "peer connection refused");
        }
    }
}

async fn read_loop(
    mut reader: impl AsyncReadExt + Unpin,
    net: Weak<PeerNet>,
    link: LinkId,
    mut decoder: PeerDecoder,
    first: Vec<u8>,
) {
    let mut buf = vec![0u8; PEER_READ_CHUNK_BYTES];
    let mut pending = first;
    let reason = loop {
        while net.upgrade().is_some_and(|n| n.paused()) {
            timer::sleep(Duration::from_millis(PAUSE_POLL_MS)).await;
        }
        if pending.is_empty() {
            match reader.read(&mut buf).await {
                Ok(0) => break "closed by the peer".to_string(),
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) => break e.to_string(),
            }
        }
        let Some(net) = net.upgrade() else { return };
        net.count(link.peer, 0, pending.len());
        let mut chunk: &[u8] = &pending;
        let (mut failed, mut heard) = (None, false);
        loop {
            match decoder.decode_framed(&mut chunk) {
                Ok(Some((msg, frame))) => {
                    if !net.deliver_msg(link, msg, frame) {
                        return; // closed meanwhile (the handler may drop it)
                    }
                    heard = true;
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(format!("bad frame: {e}"));
                    break;
                }
            }
        }
        pending.clear();
        if heard {
            // Once per read, not per frame: the link works, its backoff resets.
            net.book.borrow_mut().heard(link);
        }
        if let Some(reason) = failed {
            tracing::warn!(peer = link.peer, port = net.spec.port, %reason, "dropping peer link");
            break reason;
        }
    };
    if let Some(net) = net.upgrade() {
        net.lost(link, reason);
    }
}

async fn write_loop(
    mut writer: impl AsyncWriteExt + Unpin,
    out: Rc<Mailbox<Rc<AlignedVec<16>>>>,
    net: Weak<PeerNet>,
    link: LinkId,
) {
    let mut batch = Vec::new();
    let mut wbuf = Vec::new();
    while out.recv_batch(&mut batch, PEER_WRITE_BATCH_MAX).await {
        wbuf.clear();
        for f in batch.drain(..) {
            wbuf.extend_from_slice(&f);
        }
        if let Err(e) = writer.write_all(&wbuf).await {
            if let Some(net) = net.upgrade() {
                net.lost(link, format!("write failed: {e}"));
            }
            return;
        }
        let Some(net) = net.upgrade() else { return };
        net.count(link.peer, wbuf.len(), 0);
        net.book.borrow_mut().written(link, wbuf.len());
    }
}
