//! One client connection's IO: handshake, request decoding, replies and events out.
//!
//! Two tasks per connection on its core: the reader (this module's [`serve`]) decodes
//! frames and sends ops to the shard; the writer encodes what comes back. What they
//! decide (credits, reply matching, order, output limits) is [`ConnCore`]'s, pure and
//! simulated; this module only moves bytes. Contract:
//! - The first frame is a ConnectRequest (or a four-letter word, answered and closed).
//!   No request is read before the handshake is answered, because requests name the
//!   session the handshake creates.
//! - Every request (pings and auth packets too) takes a credit; the reader stops
//!   reading the socket while the connection has none ([`CONN_PENDING_MAX`]
//!   outstanding), while its unsent output is above [`CONN_OUT_BYTES_PAUSE`], or while
//!   its core's share of `globalOutstandingLimit` is taken by requests the shard has
//!   not answered yet: TCP pushes back on clients, no request is refused for load
//!   (ZooKeeper does the same).
//! - Pings go through the shard like reads (they touch the session and are answered
//!   behind the session's own writes, as ZooKeeper's pipeline answers them).
//! - Malformed frames close the connection with a logged reason; the server and the
//!   other sessions are untouched. A client whose unsent output passes
//!   [`CONN_OUT_BYTES_MAX`] is closed, logged with its session id.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use transport::jute::connect::ConnectRequest;
use transport::jute::frame::{FrameBuffer, FrameDecoder};
use transport::jute::header::{ReplyHeader, RequestHeader};
use transport::jute::records::AuthPacket;
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::wire::DecodeError;
use transport::jute::{ErrorCode, OpCode, xid};

pub use super::conn_core::{CONN_OUT_BYTES_MAX, CONN_OUT_BYTES_PAUSE, CONN_PENDING_MAX};
use super::conn_core::{ConnCore, OutState};
use super::convert::{Asked, to_op, to_response};
use super::fourlw;
use super::listen::ConnLimiter;
use crate::config::Config;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::msg::{ToConn, ToShard};
use crate::runtime::stats::Stats;
use crate::shard::{ClientRef, ConnId};
use crate::tree::acl::{self, AclConfig};

/// Bytes asked of the socket per read.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// Messages the writer takes per wake-up; their frames go out in one write.
pub const WRITE_BATCH_MAX: usize = 256;

/// What one core knows: its connections and the way to its shard.
pub struct CoreCtx {
    pub core: u16,
    pub cfg: Arc<Config>,
    pub stats: Arc<Stats>,
    /// The shard driver's inbox (on the shard's core) or this core's uplink to it.
    pub shard: Rc<Mailbox<ToShard>>,
    pub limiter: ConnLimiter,
    pub acl: AclConfig,
    /// Every connection of every core, for `cons` (touched at connect and close only).
    pub registry: Arc<Mutex<HashMap<ConnId, (SocketAddr, i64)>>>,
    /// This core's share of `globalOutstandingLimit`: a unit per request the shard
    /// has not answered yet.
    budget: Semaphore,
    conns: RefCell<HashMap<u64, Rc<Conn>>>,
    next_id: Cell<u64>,
}

impl CoreCtx {
    pub fn new(
        core: u16,
        cfg: Arc<Config>,
        stats: Arc<Stats>,
        shard: Rc<Mailbox<ToShard>>,
        limiter: ConnLimiter,
        registry: Arc<Mutex<HashMap<ConnId, (SocketAddr, i64)>>>,
    ) -> Self {
        let acl = AclConfig {
            super_digest: cfg.super_digest.clone(),
        };
        let budget = Semaphore::new(cfg.outstanding_per_core(super::core_count(&cfg)) as u64);
        CoreCtx {
            core,
            cfg,
            stats,
            shard,
            limiter,
            acl,
            registry,
            budget,
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        }
    }

    /// This core's counters.
    pub fn my_stats(&self) -> &crate::runtime::stats::CoreStats {
        self.stats.core(self.core as usize)
    }

    /// Hands the shard's messages to their connections; those already gone are dropped.
    /// A connection whose unsent output passes [`CONN_OUT_BYTES_MAX`] is closed.
    pub fn dispatch(&self, msgs: Vec<ToConn>) {
        let conns = self.conns.borrow();
        for m in msgs {
            debug_assert_eq!(m.conn().core, self.core, "routed to the owning core");
            let Some(c) = conns.get(&m.conn().id) else {
                continue;
            };
            if c.dead.get() {
                continue;
            }
            let bytes = m.approx_bytes();
            if c.core.borrow_mut().queued(bytes) == OutState::Overflow {
                tracing::warn!(
                    peer = %c.peer,
                    session = format_args!("0x{:x}", c.session.get()),
                    bytes_max = CONN_OUT_BYTES_MAX,
                    "closing a connection whose client does not read its output"
                );
                c.dead.set(true);
                c.out.close();
                c.shutdown();
                continue;
            }
            c.out.push(Out::Shard(m, bytes));
        }
    }
}

enum Out {
    /// From the shard, with its estimated size (output accounting).
    Shard(ToConn, usize),
    /// A failed auth packet's answer; the connection closes after it.
    AuthFailed,
    /// A slot was answered locally: send what is ready.
    Wake,
}

struct Conn {
    id: ConnId,
    peer: SocketAddr,
    fd: RawFd,
    out: Mailbox<Out>,
    core: RefCell<ConnCore>,
    /// The reader waits here while it may not read ([`ConnCore::may_read`]).
    resume: Semaphore,
    reader_waiting: Cell<bool>,
    /// Signalled once the handshake is answered.
    connected: Semaphore,
    session: Cell<i64>,
    /// Closed for overflow: messages for it are dropped.
    dead: Cell<bool>,
    /// Set by the reader when it stops with a final message queued (a failed auth):
    /// the writer sends what is queued and then shuts the socket itself.
    flush_then_close: Cell<bool>,
}

impl Conn {
    /// Unblocks the reader and ends the connection.
    fn shutdown(&self) {
        // SAFETY: `fd` belongs to the stream both tasks hold; shutdown does not close it.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(mut stream: TcpStream, ctx: Rc<CoreCtx>) {
    // `stream` is a parameter so it drops after every local, `_slot` included: a
    // client that sees the close can reconnect without finding its slot still taken.
    let Ok(peer) = stream.peer_addr() else { return };
    let _slot = match ctx.limiter.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(refused) => {
            return tracing::warn!(%peer, "too many connections: {refused}; closing");
        }
    };
    let _ = stream.set_nodelay(true);
    let mut buf = FrameBuffer::new(FrameDecoder::new(ctx.cfg.jute_maxbuffer));
    if !fill_at_least(&mut stream, &mut buf, 4).await {
        return;
    }
    if let Some(word) = fourlw::word(&buf.unread()[..4]) {
        let text = fourlw::answer(word, &ctx);
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.close().await;
        return;
    }
    let Some(req) = read_connect(&mut stream, &mut buf, peer).await else {
        return;
    };
    ctx.my_stats().connections.fetch_add(1, Relaxed);
    let conn = register(&ctx, &stream, peer);
    ctx.shard.push(ToShard::Connect {
        conn: conn.id,
        req,
        peer,
    });
    let (reader, writer) = futures_lite::io::split(stream);
    let writer_task = glommio::spawn_local(write_loop(writer, conn.clone(), ctx.clone()));
    if conn.connected.acquire(1).await.is_ok() {
        read_loop(reader, buf, &conn, &ctx).await;
    }
    conn.out.close();
    if !conn.flush_then_close.get() {
        conn.shutdown();
    }
    writer_task.await;
    // Answers the shard still owes will be dropped on arrival: give their budget back.
    ctx.budget.signal(conn.core.borrow().shard_owes() as u64);
    ctx.conns.borrow_mut().remove(&conn.id.id);
    ctx.registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&conn.id);
    ctx.shard.push(ToShard::Closed { conn: conn.id });
    ctx.my_stats().connections.fetch_sub(1, Relaxed);
}

fn register(ctx: &Rc<CoreCtx>, stream: &TcpStream, peer: SocketAddr) -> Rc<Conn> {
    let id = ConnId {
        core: ctx.core,
        id: ctx.next_id.get(),
    };
    ctx.next_id.set(id.id + 1);
    let conn = Rc::new(Conn {
        id,
        peer,
        fd: stream.as_raw_fd(),
        out: Mailbox::new(),
        core: RefCell::new(ConnCore::new()),
        resume: Semaphore::new(0),
        reader_waiting: Cell::new(false),
        connected: Semaphore::new(0),
        session: Cell::new(0),
        dead: Cell::new(false),
        flush_then_close: Cell::new(false),
    });
    ctx.conns.borrow_mut().insert(id.id, conn.clone());
    ctx.registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, (peer, 0));
    conn
}

/// Reads until `buf` holds `n` unread bytes; false on EOF or error.
async fn fill_at_least(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut FrameBuffer,
    n: usize,
) -> bool {
    while buf.unread().len() < n {
        match stream.read(buf.spare(READ_CHUNK_BYTES)).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => buf.filled(k),
        }
    }
    true
}

async fn read_connect(
    stream: &mut TcpStream,
    buf: &mut FrameBuffer,
    peer: SocketAddr,
) -> Option<ConnectRequest> {
    loop {
        match buf.next_frame() {
            Ok(Some(frame)) => {
                return match ConnectRequest::decode(frame) {
                    Ok(req) => Some(req),
                    Err(e) => {
                        tracing::warn!(%peer, "malformed ConnectRequest, closing: {e}");
                        None
                    }
                };
            }
            Ok(None) => {
                let want = buf.unread().len() + 1;
                if !fill_at_least(stream, buf, want).await {
                    return None;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, "bad handshake frame, closing: {e}");
                return None;
            }
        }
    }
}

/// What the reader does with one frame.
enum Step {
    /// A request for the shard (after taking a credit and a slot).
    Shard {
        xid: i32,
        asked: Asked,
        op: Result<crate::op::Op, ErrorCode>,
    },
    Auth(AuthPacket),
    Close(String),
}

fn decode_step(frame: &[u8]) -> Step {
    let (hdr, body) = match RequestHeader::split(frame) {
        Ok(x) => x,
        Err(e) => return Step::Close(format!("malformed request header: {e}")),
    };
    match hdr.op_code() {
        Some(OpCode::Ping) => {
            let asked = Asked {
                op: OpCode::Ping,
                steps: Vec::new(),
            };
            return Step::Shard {
                xid: hdr.xid,
                asked,
                op: Ok(crate::op::Op::Ping),
            };
        }
        Some(OpCode::Auth) => {
            return match Request::decode(hdr, body) {
                Ok(Request::Auth(a)) => Step::Auth(a),
                _ => Step::Close("malformed auth packet".into()),
            };
        }
        _ => {}
    }
    match Request::decode(hdr, body) {
        Ok(req) => Step::Shard {
            xid: hdr.xid,
            asked: Asked::of(&req),
            op: to_op(req),
        },
        Err(DecodeError::UnsupportedOpCode { .. }) => {
            let asked = Asked {
                op: OpCode::Error,
                steps: Vec::new(),
            };
            Step::Shard {
                xid: hdr.xid,
                asked,
                op: Err(ErrorCode::Unimplemented),
            }
        }
        Err(e) => Step::Close(format!("malformed request (op {}): {e}", hdr.op)),
    }
}

async fn read_loop(
    mut reader: impl AsyncReadExt + Unpin,
    mut buf: FrameBuffer,
    conn: &Rc<Conn>,
    ctx: &CoreCtx,
) {
    loop {
        loop {
            if !wait_until_readable(conn).await {
                return;
            }
            let step = match buf.next_frame() {
                Ok(Some(frame)) => decode_step(frame),
                Ok(None) => break,
                Err(e) => Step::Close(e.to_string()),
            };
            ctx.my_stats().packets_received.fetch_add(1, Relaxed);
            if !handle_step(step, conn, ctx).await {
                return;
            }
        }
        match reader.read(buf.spare(READ_CHUNK_BYTES)).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                ctx.my_stats().bytes_in.fetch_add(n as u64, Relaxed);
                buf.filled(n);
            }
        }
    }
}

/// Waits while the connection may not read (no credit, or output backed up); false
/// once the connection is closing.
async fn wait_until_readable(conn: &Conn) -> bool {
    while !conn.core.borrow().may_read() {
        conn.reader_waiting.set(true);
        if conn.resume.acquire(1).await.is_err() {
            return false;
        }
    }
    true
}

/// False when the connection must close.
async fn handle_step(step: Step, conn: &Rc<Conn>, ctx: &CoreCtx) -> bool {
    let session = conn.session.get();
    let client = |xid| ClientRef {
        conn: conn.id,
        session,
        xid,
    };
    match step {
        Step::Auth(a) => match acl::auth_ids(&a.scheme, a.auth.as_deref().unwrap_or(&[]), &ctx.acl)
        {
            Ok(ids) => {
                let asked = Asked {
                    op: OpCode::Auth,
                    steps: Vec::new(),
                };
                if !take_budget(ctx).await {
                    return false;
                }
                conn.core
                    .borrow_mut()
                    .admit(xid::AUTH, asked, now_us(), None);
                ctx.shard.push(ToShard::Auth {
                    client: client(xid::AUTH),
                    ids,
                });
            }
            Err(_) => {
                // ZooKeeper answers AUTHFAILED, stops reading and closes. The writer
                // closes after sending it; stopping here without the reader's shutdown
                // lets the reply out first (clients raise AuthFailedError on it).
                tracing::info!(peer = %conn.peer, scheme = a.scheme, "authentication failed");
                conn.out.push(Out::AuthFailed);
                conn.flush_then_close.set(true);
                return false;
            }
        },
        Step::Shard { xid, asked, op } => match op {
            Ok(op) => {
                if !take_budget(ctx).await {
                    return false;
                }
                conn.core.borrow_mut().admit(xid, asked, now_us(), None);
                ctx.shard.push(ToShard::Request {
                    client: client(xid),
                    op,
                });
            }
            Err(e) => {
                // Answered here; the writer sends it once the replies the shard owes
                // before it have gone out.
                conn.core.borrow_mut().admit(xid, asked, now_us(), Some(e));
                conn.out.push(Out::Wake);
            }
        },
        Step::Close(reason) => {
            tracing::warn!(peer = %conn.peer, session = format_args!("0x{session:x}"), "closing connection: {reason}");
            return false;
        }
    }
    true
}

/// Takes a unit of the core's outstanding budget (waits while it is all taken).
async fn take_budget(ctx: &CoreCtx) -> bool {
    match ctx.budget.try_acquire(1) {
        Ok(true) => true,
        Ok(false) => ctx.budget.acquire(1).await.is_ok(),
        Err(_) => false,
    }
}

/// Microseconds on this process's monotonic clock (request latency).
fn now_us() -> u64 {
    crate::runtime::clock::mono_us()
}

async fn write_loop(mut writer: impl AsyncWriteExt + Unpin, conn: Rc<Conn>, ctx: Rc<CoreCtx>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    let mut wbuf = Vec::with_capacity(64 << 10);
    while conn.out.recv_batch(&mut batch, WRITE_BATCH_MAX).await {
        let mut close = false;
        let mut bytes = 0;
        for out in batch.drain(..) {
            if let Out::Shard(_, b) = &out {
                bytes += b;
            }
            close |= encode(out, &conn, &ctx, &mut wbuf);
        }
        let freed = conn
            .core
            .borrow_mut()
            .drain(&mut wbuf, now_us(), sent(&ctx));
        ctx.my_stats()
            .bytes_out
            .fetch_add(wbuf.len() as u64, Relaxed);
        if !wbuf.is_empty() && writer.write_all(&wbuf).await.is_err() {
            break;
        }
        wbuf.clear();
        conn.core.borrow_mut().written(bytes);
        if freed > 0 || bytes > 0 {
            wake_reader(&conn);
        }
        if close {
            let _ = writer.flush().await;
            break;
        }
    }
    conn.resume.close();
    conn.connected.close();
    conn.shutdown();
}

/// Lets a waiting reader re-check whether it may read.
fn wake_reader(conn: &Conn) {
    if conn.reader_waiting.get() && conn.core.borrow().may_read() {
        conn.reader_waiting.set(false);
        conn.resume.signal(1);
    }
}

/// Counts one reply sent, with its latency.
fn sent(ctx: &CoreCtx) -> impl FnMut(u64) + '_ {
    move |latency_us| {
        ctx.my_stats().record_latency(latency_us);
        ctx.my_stats().packets_sent.fetch_add(1, Relaxed);
    }
}

/// Encodes or slots one message; true when the connection must close after it.
fn encode(out: Out, conn: &Conn, ctx: &CoreCtx, wbuf: &mut Vec<u8>) -> bool {
    match out {
        Out::AuthFailed => {
            conn.core.borrow_mut().drain(wbuf, now_us(), sent(ctx));
            Response::Empty
                .encode_frame(&ReplyHeader::new(xid::AUTH, 0, ErrorCode::AuthFailed), wbuf);
            return true;
        }
        Out::Wake => {}
        Out::Shard(ToConn::Connected { resp, accepted, .. }, _) => {
            resp.encode_frame(wbuf);
            if !accepted {
                return true;
            }
            conn.session.set(resp.session_id);
            let mut reg = ctx.registry.lock().unwrap_or_else(|p| p.into_inner());
            reg.insert(conn.id, (conn.peer, resp.session_id));
            conn.connected.signal(1);
        }
        Out::Shard(
            ToConn::Reply {
                xid, zxid, reply, ..
            },
            _,
        ) => {
            let err = reply.error();
            let answered = conn
                .core
                .borrow_mut()
                .answer(xid, zxid, err, |asked| to_response(asked, reply));
            match answered {
                Ok(()) => ctx.budget.signal(1),
                Err(e) => tracing::error!(
                    xid = e.xid,
                    session = format_args!("0x{:x}", conn.session.get()),
                    "reply matches no outstanding request; dropped"
                ),
            }
        }
        Out::Shard(ToConn::Event { event, .. }, _) => {
            // Replies already answered left the shard before this event: they go
            // first. A read that set this watch must reach the client before the
            // event, or the client (kazoo) has no watcher registered to hear it.
            conn.core
                .borrow_mut()
                .event(event, wbuf, now_us(), sent(ctx));
            ctx.my_stats().packets_sent.fetch_add(1, Relaxed);
        }
        Out::Shard(ToConn::Close { .. }, _) => return true,
    }
    false
}
