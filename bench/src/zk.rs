//! The ZooKeeper-protocol driver: real sessions over TCP, for corekeeper and Apache
//! ZooKeeper alike (the same bytes go to both).
//!
//! Design: threads and blocking sockets. Per session, the driver's thread encodes request
//! frames into a buffer (`submit`) and writes each session's buffer with one syscall at
//! the next `poll` (so a batch of refills costs one write, as in an async client; the
//! runner's "actual send" time is taken at `submit`, microseconds earlier), and one
//! reader thread decodes reply frames and sends completions,
//! stamped with the shared monotonic clock, over one channel to the driver (`poll`).
//! Replies of a session come in request order (ZooKeeper's per-session FIFO), so the
//! reader matches them to the `(xid, opcode, tag)` queue the writer filled. Watch events
//! (xid -1) become [`Event::Watch`]; ping replies (xid -2) are dropped.
//!
//! Invariants: every submitted request gets exactly one completion — when a connection
//! breaks, whichever side notices first (reader: EOF or bad frame; writer: failed write)
//! marks the connection dead and answers everything still owed with `ConnectionLoss`,
//! under the same lock the writer takes to enqueue, so nothing is lost in between.
//!
//! Failover: a request for a dead session reconnects it — a *new* session (its
//! ephemerals and watches are gone, as after an expiry) — to the next server of the
//! connect string, at most every [`RECONNECT_INTERVAL_MS`]; meanwhile its requests fail
//! with `ConnectionLoss`, delivered when the next attempt is due (so a closed loop waits
//! instead of spinning). After [`RECONNECT_ATTEMPTS_MAX`] failed attempts in a row the
//! run stops with an error naming the server. A session
//! idle for a third of its timeout gets a ping from `poll`, so setup, cleanup and waiting
//! lock contenders do not expire. Paths are sent below the connect string's chroot, and
//! created paths and event paths come back with the chroot stripped.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use transport::jute::{
    Acl, ConnectRequest, ConnectResponse, CreateRequest, DeleteRequest, ErrorCode, EventType,
    ExistsRequest, FRAME_BYTES_MAX_DEFAULT, FrameBuffer, FrameDecoder, GetChildrenRequest,
    GetDataRequest, OpCode, ReplyHeader, Request, Response, SetDataRequest, SyncRequest, xid,
};

use crate::driver::{Completion, Connector, Driver, DriverError, Event, Nanos, Reply, SessionPlan};
use crate::workload::{Op, OpKind};

/// Session timeout asked for, ms (the server may negotiate it down).
pub const SESSION_TIMEOUT_MS: i32 = 30_000;
/// Longest wait for a TCP connect or the session handshake.
pub const CONNECT_TIMEOUT_MS_MAX: u64 = 10_000;
/// Longest wait for close-session replies at the end.
pub const CLOSE_WAIT_MS_MAX: u64 = 5_000;
/// Buffered request bytes per session that force a write before the next `poll`.
pub const WRITE_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Most completions one `poll` returns (keeps the runner responsive to its schedule).
pub const POLL_BATCH_MAX: usize = 4_096;
/// Shortest time between two reconnection attempts of one session.
pub const RECONNECT_INTERVAL_MS: u64 = 250;
/// Failed reconnection attempts in a row that end the run.
pub const RECONNECT_ATTEMPTS_MAX: u32 = 3;
/// Longest wait for a reconnection (shorter than a first connect: the worker waits).
pub const RECONNECT_TIMEOUT_MS_MAX: u64 = 1_000;

/// Makes [`ZkDriver`]s; all share one clock epoch so workers' times compare.
#[derive(Debug, Clone)]
pub struct ZkConnector {
    pub chroot: Option<String>,
    pub epoch: Instant,
    /// Every server of the connect string, for failover (empty: reconnect in place).
    pub servers: Vec<String>,
    /// Each get goes out as `sync` + `getData` (ZooKeeper's linearizable read).
    pub sync_reads: bool,
}

impl ZkConnector {
    pub fn new(chroot: Option<String>) -> Self {
        ZkConnector {
            chroot,
            epoch: Instant::now(),
            servers: Vec::new(),
            sync_reads: false,
        }
    }

    /// Fails sessions over to these servers (the connect string's) when theirs goes.
    pub fn with_failover(mut self, servers: Vec<String>) -> Self {
        self.servers = servers;
        self
    }

    /// Each get goes out as `sync` + `getData`, its latency from the sync's sending.
    pub fn with_sync_reads(mut self, on: bool) -> Self {
        self.sync_reads = on;
        self
    }
}

/// What a reader needs to decode a reply.
#[derive(Debug, Clone, Copy)]
struct Sent {
    xid: i32,
    op: OpCode,
    tag: u64,
}

/// The tag of a `sync` sent ahead of a get ([`ZkConnector::sync_reads`]): its reply
/// completes nothing (the get's does). Runner tags count up from 0 and never reach it.
const SYNC_AHEAD_TAG: u64 = u64::MAX;

/// What a connection still owes, and whether it is dead (one lock for both, so a
/// request is either enqueued before the connection is declared dead, and answered by
/// whoever declares it, or refused).
#[derive(Debug, Default)]
struct Owed {
    dead: bool,
    sent: VecDeque<Sent>,
}

type Shared = Arc<Mutex<Owed>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Owed> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Declares the connection dead; returns what it owes (empty if already declared).
fn kill(shared: &Shared) -> Vec<Sent> {
    let mut g = lock(shared);
    if g.dead {
        return Vec::new();
    }
    g.dead = true;
    g.sent.drain(..).collect()
}

fn connection_loss(session: usize, at: Nanos, s: Sent) -> Completion {
    Completion {
        at,
        event: Event::Reply {
            session,
            tag: s.tag,
            result: Err(ErrorCode::ConnectionLoss),
        },
    }
}

/// One session's writer half.
#[derive(Debug)]
struct Session {
    stream: TcpStream,
    server: String,
    /// Index into the failover list of the server this session is on.
    server_index: usize,
    queue: Shared,
    /// Failed reconnection attempts in a row, and when the next one may start.
    failed_attempts: u32,
    next_attempt: Instant,
    next_xid: i32,
    /// Encoded requests not yet written (flushed by `poll`).
    out: Vec<u8>,
    last_send: Instant,
    ping_every: Duration,
    reader: Option<JoinHandle<()>>,
    /// Readers of earlier connections (joined at close).
    retired: Vec<JoinHandle<()>>,
    global: usize,
}

/// One worker's ZooKeeper sessions.
#[derive(Debug)]
pub struct ZkDriver {
    sessions: Vec<Session>,
    rx: Receiver<Completion>,
    epoch: Instant,
    chroot: Option<String>,
    /// Whether this (the worker's) thread got a tight timer slack yet.
    slack_set: bool,
    /// For readers of reconnected sessions.
    tx: Sender<Completion>,
    /// Failover list (the connect string's servers).
    servers: Vec<String>,
    /// Completions made here (dead sessions), delivered by `poll` when due.
    local: Vec<Completion>,
    sync_reads: bool,
}

/// Timer slack of the polling thread, ns. Linux lets a timed wait end up to 50 us late
/// by default; an open-loop schedule would count that lateness as server latency.
pub const TIMER_SLACK_NS: u64 = 1_000;

/// Asks Linux to wake this thread's timed waits within [`TIMER_SLACK_NS`].
fn tight_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only affects this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS as libc::c_ulong);
    }
}

fn since(epoch: Instant) -> Nanos {
    epoch.elapsed().as_nanos() as Nanos
}

fn io_err(server: &str, what: &str) -> impl FnOnce(std::io::Error) -> DriverError {
    let server = server.to_string();
    let what = what.to_string();
    move |e| DriverError(format!("{server}: {what}: {e}"))
}

/// Reads one whole frame body (blocking) into `frames`.
fn read_frame(stream: &mut TcpStream, frames: &mut FrameBuffer) -> std::io::Result<Vec<u8>> {
    loop {
        match frames.next_frame() {
            Ok(Some(body)) => return Ok(body.to_vec()),
            Ok(None) => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{e:?}"),
                ));
            }
        }
        let spare = frames.spare(64 * 1024);
        let n = stream.read(spare)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        frames.filled(n);
    }
}

fn connect_one(
    timeout_ms: u64,
    plan: &SessionPlan,
) -> Result<(TcpStream, FrameBuffer, ConnectResponse), DriverError> {
    let s = &plan.server;
    let timeout = Duration::from_millis(timeout_ms);
    let addr = s
        .to_socket_addrs()
        .map_err(io_err(s, "resolving"))?
        .next()
        .ok_or_else(|| DriverError(format!("{s}: no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io_err(s, "connecting"))?;
    stream.set_nodelay(true).map_err(io_err(s, "TCP_NODELAY"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_err(s, "read timeout"))?;
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: SESSION_TIMEOUT_MS,
        session_id: 0,
        passwd: Some(vec![0; transport::jute::CONNECT_PASSWD_BYTES]),
        read_only: Some(false),
    };
    let mut out = Vec::new();
    req.encode_frame(&mut out);
    stream
        .write_all(&out)
        .map_err(io_err(s, "sending the handshake"))?;
    let mut frames = FrameBuffer::new(FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT));
    let body = read_frame(&mut stream, &mut frames).map_err(io_err(s, "reading the handshake"))?;
    let resp = ConnectResponse::decode(&body)
        .map_err(|e| DriverError(format!("{s}: bad handshake reply: {e:?}")))?;
    if resp.session_id == 0 || resp.time_out <= 0 {
        return Err(DriverError(format!("{s}: session refused")));
    }
    stream
        .set_read_timeout(None)
        .map_err(io_err(s, "read timeout"))?;
    Ok((stream, frames, resp))
}

fn strip(chroot: &Option<String>, path: String) -> String {
    match chroot {
        Some(c) => match path.strip_prefix(c.as_str()) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => path,
        },
        None => path,
    }
}

/// The reader thread of session `session`.
fn reader(
    session: usize,
    mut stream: TcpStream,
    mut frames: FrameBuffer,
    queue: Shared,
    tx: Sender<Completion>,
    epoch: Instant,
    chroot: Option<String>,
) {
    while let Ok(body) = read_frame(&mut stream, &mut frames) {
        let Ok((header, rest)) = ReplyHeader::split(&body) else {
            break;
        };
        let at = since(epoch);
        if header.xid == xid::PING || header.xid == xid::AUTH || header.xid == xid::SET_WATCHES {
            continue;
        }
        if header.xid == xid::NOTIFICATION {
            let Ok(Response::Notification(ev)) =
                Response::decode(OpCode::Notification, &header, rest)
            else {
                break;
            };
            let kind = EventType::from_code(ev.event_type).unwrap_or(EventType::None);
            let path = strip(&chroot, ev.path);
            if tx
                .send(Completion {
                    at,
                    event: Event::Watch {
                        session,
                        path,
                        kind,
                    },
                })
                .is_err()
            {
                return;
            }
            continue;
        }
        let sent = lock(&queue).sent.pop_front();
        let Some(sent) = sent else { break };
        if sent.tag == SYNC_AHEAD_TAG && sent.xid == header.xid {
            continue; // the get behind it completes the op
        }
        if sent.xid != header.xid {
            // FIFO broken: the server or the wire is confused; stop this session.
            let _ = tx.send(Completion {
                at,
                event: Event::Reply {
                    session,
                    tag: sent.tag,
                    result: Err(ErrorCode::MarshallingError),
                },
            });
            break;
        }
        let result = match header.error_code() {
            Some(ErrorCode::Ok) => match Response::decode(sent.op, &header, rest) {
                Ok(Response::Create(c)) => Ok(Reply::Created(strip(&chroot, c.path))),
                Ok(Response::Create2(c)) => Ok(Reply::Created(strip(&chroot, c.path))),
                Ok(Response::GetChildren(c)) => Ok(Reply::Children(c.children)),
                Ok(Response::GetChildren2(c)) => Ok(Reply::Children(c.children)),
                Ok(_) => Ok(Reply::Done),
                Err(_) => Err(ErrorCode::MarshallingError),
            },
            Some(code) => Err(code),
            None => Err(ErrorCode::SystemError),
        };
        if tx
            .send(Completion {
                at,
                event: Event::Reply {
                    session,
                    tag: sent.tag,
                    result,
                },
            })
            .is_err()
        {
            return;
        }
    }
    // The connection is gone: answer everything still owed (unless the writer did).
    let at = since(epoch);
    for sent in kill(&queue) {
        let _ = tx.send(connection_loss(session, at, sent));
    }
}

/// Where and how to open a session.
struct Open<'a> {
    session: usize,
    global: usize,
    server: &'a str,
    server_index: usize,
    timeout_ms: u64,
    tx: &'a Sender<Completion>,
    epoch: Instant,
    chroot: &'a Option<String>,
}

/// Connects a session and starts its reader.
fn open(o: Open<'_>) -> Result<Session, DriverError> {
    let plan = SessionPlan {
        global: o.global,
        server: o.server.to_string(),
    };
    let (stream, frames, resp) = connect_one(o.timeout_ms, &plan)?;
    let queue: Shared = Arc::default();
    let read_half = stream
        .try_clone()
        .map_err(io_err(o.server, "cloning the socket"))?;
    let (q, tx, epoch, chroot, i) = (
        queue.clone(),
        o.tx.clone(),
        o.epoch,
        o.chroot.clone(),
        o.session,
    );
    let handle = std::thread::Builder::new()
        .name(format!("zk-reader-{}", o.global))
        .spawn(move || reader(i, read_half, frames, q, tx, epoch, chroot))
        .map_err(io_err(o.server, "spawning a reader thread"))?;
    Ok(Session {
        stream,
        server: o.server.to_string(),
        server_index: o.server_index,
        queue,
        failed_attempts: 0,
        next_attempt: Instant::now(),
        next_xid: 1,
        out: Vec::new(),
        last_send: Instant::now(),
        ping_every: Duration::from_millis(resp.time_out as u64 / 3),
        reader: Some(handle),
        retired: Vec::new(),
        global: o.global,
    })
}

impl Connector for ZkConnector {
    type Driver = ZkDriver;

    fn connect(&self, worker: usize, plans: &[SessionPlan]) -> Result<ZkDriver, DriverError> {
        let (tx, rx) = mpsc::channel();
        let mut sessions = Vec::with_capacity(plans.len());
        for (i, plan) in plans.iter().enumerate() {
            let server_index = self
                .servers
                .iter()
                .position(|s| *s == plan.server)
                .unwrap_or(0);
            sessions.push(open(Open {
                session: i,
                global: plan.global,
                server: &plan.server,
                server_index,
                timeout_ms: CONNECT_TIMEOUT_MS_MAX,
                tx: &tx,
                epoch: self.epoch,
                chroot: &self.chroot,
            })?);
        }
        let mut d = ZkDriver {
            sessions,
            rx,
            epoch: self.epoch,
            chroot: self.chroot.clone(),
            slack_set: false,
            tx,
            servers: self.servers.clone(),
            local: Vec::new(),
            sync_reads: self.sync_reads,
        };
        if worker == 0 {
            d.ensure_chroot()?;
        }
        Ok(d)
    }
}

impl ZkDriver {
    /// Creates the chroot's nodes (`/a`, `/a/b`) if missing, as `zkCli` users expect a
    /// fresh chroot to just work. Cleanup leaves them.
    fn ensure_chroot(&mut self) -> Result<(), DriverError> {
        let Some(chroot) = self.chroot.take() else {
            return Ok(());
        };
        let ops: Vec<Op> = chroot
            .match_indices('/')
            .skip(1)
            .map(|(i, _)| &chroot[..i])
            .chain([chroot.as_str()])
            .map(|p| Op::new(OpKind::Create, p))
            .collect();
        let r = crate::runner::run_batch(self, ops, 1, ErrorCode::NodeExists);
        self.chroot = Some(chroot);
        r.map_err(|e| DriverError(format!("creating the chroot: {e}")))
    }

    fn full_path(&self, path: &str) -> String {
        match &self.chroot {
            Some(c) if path == "/" => c.clone(),
            Some(c) => format!("{c}{path}"),
            None => path.to_string(),
        }
    }

    fn request(&self, op: &Op) -> Result<Request, DriverError> {
        let path = self.full_path(&op.path);
        let data = || Some(op.data.as_deref().unwrap_or(&[]).to_vec());
        Ok(match op.kind {
            OpKind::Get => Request::GetData(GetDataRequest {
                path,
                watch: op.watch,
            }),
            OpKind::Exists => Request::Exists(ExistsRequest {
                path,
                watch: op.watch,
            }),
            OpKind::Children => Request::GetChildren(GetChildrenRequest {
                path,
                watch: op.watch,
            }),
            OpKind::Set => Request::SetData(SetDataRequest {
                path,
                data: data(),
                version: -1,
            }),
            OpKind::Delete => Request::Delete(DeleteRequest { path, version: -1 }),
            OpKind::Create => Request::Create(CreateRequest {
                path,
                data: data(),
                acl: Acl::open_unsafe(),
                flags: op.mode.code(),
            }),
            OpKind::WatchEvent | OpKind::LockAcquire => {
                return Err(DriverError(format!("{} is not a request", op.kind)));
            }
        })
    }

    /// Encodes `req` into the session's buffer; `false` if the connection is dead.
    fn send(&mut self, session: usize, req: &Request, tag: Option<u64>) -> bool {
        let s = &mut self.sessions[session];
        let xid = match req.special_xid() {
            Some(x) => x,
            None => {
                let x = s.next_xid;
                s.next_xid = s.next_xid.checked_add(1).unwrap_or(1);
                x
            }
        };
        {
            let mut owed = lock(&s.queue);
            if owed.dead {
                return false;
            }
            if let Some(tag) = tag {
                owed.sent.push_back(Sent {
                    xid,
                    op: req.op_code(),
                    tag,
                });
            }
        }
        req.encode_frame(xid, &mut s.out);
        s.last_send = Instant::now();
        if s.out.len() >= WRITE_BUFFER_BYTES_MAX {
            self.flush_one(session);
        }
        true
    }

    /// Writes a session's buffer; a failed write declares the connection dead.
    fn flush_one(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        if s.out.is_empty() {
            return;
        }
        let written = s.stream.write_all(&s.out);
        s.out.clear();
        if written.is_err() {
            let _ = s.stream.shutdown(Shutdown::Both); // the reader ends too
            let at = since(self.epoch);
            for sent in kill(&s.queue) {
                self.local.push(connection_loss(i, at, sent));
            }
        }
    }

    /// Writes every session's buffered requests (one write per session).
    fn flush(&mut self) {
        for i in 0..self.sessions.len() {
            self.flush_one(i);
        }
    }

    fn ping_idle(&mut self) {
        for i in 0..self.sessions.len() {
            if self.sessions[i].last_send.elapsed() >= self.sessions[i].ping_every {
                self.send(i, &Request::Ping, None);
            }
        }
    }

    /// Reconnects dead session `i` to the next server, if an attempt is due.
    fn revive(&mut self, i: usize) -> Result<(), DriverError> {
        let s = &self.sessions[i];
        if !lock(&s.queue).dead || Instant::now() < s.next_attempt {
            return Ok(());
        }
        let (server_index, server) = match self.servers.len() {
            0 => (s.server_index, s.server.clone()),
            n => (
                (s.server_index + 1) % n,
                self.servers[(s.server_index + 1) % n].clone(),
            ),
        };
        let opened = open(Open {
            session: i,
            global: s.global,
            server: &server,
            server_index,
            timeout_ms: RECONNECT_TIMEOUT_MS_MAX,
            tx: &self.tx,
            epoch: self.epoch,
            chroot: &self.chroot,
        });
        let s = &mut self.sessions[i];
        match opened {
            Ok(mut fresh) => {
                let _ = s.stream.shutdown(Shutdown::Both);
                fresh.retired = std::mem::take(&mut s.retired);
                fresh.retired.extend(s.reader.take());
                *s = fresh;
                Ok(())
            }
            Err(e) => {
                s.failed_attempts += 1;
                s.next_attempt = Instant::now() + Duration::from_millis(RECONNECT_INTERVAL_MS);
                (s.server_index, s.server) = (server_index, server);
                if s.failed_attempts >= RECONNECT_ATTEMPTS_MAX {
                    return Err(DriverError(format!(
                        "session lost; {} reconnection attempts failed, last: {e}",
                        s.failed_attempts
                    )));
                }
                Ok(())
            }
        }
    }

    /// Moves local completions due by `now` to `out`.
    fn take_local(&mut self, now: Nanos, out: &mut Vec<Completion>) {
        let (due, later): (Vec<_>, Vec<_>) = self.local.drain(..).partition(|c| c.at <= now);
        self.local = later;
        out.extend(due);
    }
}

impl Driver for ZkDriver {
    fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn now(&self) -> Nanos {
        since(self.epoch)
    }

    fn submit(&mut self, session: usize, tag: u64, op: &Op) -> Result<(), DriverError> {
        if session >= self.sessions.len() {
            return Err(DriverError(format!("no session {session}")));
        }
        let req = self.request(op)?;
        if self.sync_reads && op.kind == OpKind::Get {
            let sync = Request::Sync(SyncRequest {
                path: self.full_path(&op.path),
            });
            // Its reply is skipped; a dead connection fails the get below.
            let _ = self.send(session, &sync, Some(SYNC_AHEAD_TAG));
        }
        if self.send(session, &req, Some(tag)) {
            return Ok(());
        }
        self.revive(session)?;
        if self.send(session, &req, Some(tag)) {
            return Ok(());
        }
        // Still dead: fail it when the next attempt is due, so callers wait, not spin.
        let wait = self.sessions[session]
            .next_attempt
            .saturating_duration_since(Instant::now());
        let at = self.now() + wait.as_nanos() as Nanos;
        let none = Sent {
            xid: 0,
            op: OpCode::Error,
            tag,
        };
        self.local.push(connection_loss(session, at, none));
        Ok(())
    }

    fn poll(&mut self, deadline: Nanos, out: &mut Vec<Completion>) -> Result<(), DriverError> {
        if !self.slack_set {
            tight_timer_slack();
            self.slack_set = true;
        }
        self.ping_idle();
        self.flush();
        let now = self.now();
        self.take_local(now, out);
        if out.is_empty() {
            let next_local = self.local.iter().map(|c| c.at).min().unwrap_or(Nanos::MAX);
            let wait = Duration::from_nanos(deadline.min(next_local).saturating_sub(now));
            // Never disconnected: the driver keeps a sender for future readers.
            if let Ok(c) = self.rx.recv_timeout(wait) {
                out.push(c);
            }
            let now = self.now();
            self.take_local(now, out);
        }
        while out.len() < POLL_BATCH_MAX {
            match self.rx.try_recv() {
                Ok(c) => out.push(c),
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), DriverError> {
        let close_tag = u64::MAX;
        let mut waiting = 0;
        for i in 0..self.sessions.len() {
            if self.send(i, &Request::CloseSession, Some(close_tag)) {
                waiting += 1;
            }
        }
        let deadline = self.now() + CLOSE_WAIT_MS_MAX * 1_000_000;
        let mut out = Vec::new();
        while waiting > 0 && self.now() < deadline {
            self.poll(deadline, &mut out)?;
            waiting -= out
                .drain(..)
                .filter(|c| matches!(c.event, Event::Reply { tag, .. } if tag == close_tag))
                .count();
        }
        for s in &mut self.sessions {
            let _ = s.stream.shutdown(Shutdown::Both);
            for h in s.reader.take().into_iter().chain(s.retired.drain(..)) {
                let _ = h.join();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chroot_is_added_and_stripped() {
        let c = Some("/app".to_string());
        assert_eq!(strip(&c, "/app/ckbench/k1".into()), "/ckbench/k1");
        assert_eq!(strip(&c, "/app".into()), "/");
        assert_eq!(strip(&c, "/apple".into()), "/apple");
        assert_eq!(strip(&None, "/x".into()), "/x");
    }
}
