//! One client connection: handshake, request decoding, FIFO replies.
//!
//! Two tasks per connection on its core: the reader (this module's [`serve`]) decodes
//! frames and sends ops to the shard; the writer encodes what comes back. Contract:
//! - The first frame is a ConnectRequest (or a four-letter word, answered and closed).
//!   No request is read before the handshake is answered, because requests name the
//!   session the handshake creates.
//! - Replies leave in request order. Every request takes a slot in `pending` when it
//!   is read; a reply fills its slot and the writer sends filled slots from the front,
//!   so an error answered locally (an unknown opcode) never overtakes a reply the shard
//!   still owes. Pings (xid -2) and auth (xid -4) are answered out of band, as
//!   ZooKeeper does and every client expects.
//! - At most [`CONN_PENDING_MAX`] requests are outstanding; past that the reader stops
//!   reading the socket (TCP pushes back on the client) instead of queueing.
//! - Malformed frames close the connection with a logged reason; the server and the
//!   other sessions are untouched.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use transport::jute::connect::ConnectRequest;
use transport::jute::frame::{FrameBuffer, FrameDecoder};
use transport::jute::header::{ReplyHeader, RequestHeader};
use transport::jute::records::{AuthPacket, WatcherEvent};
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::wire::DecodeError;
use transport::jute::{ErrorCode, OpCode, xid};

use super::convert::{Asked, to_op, to_response};
use super::fourlw;
use super::listen::ConnLimiter;
use crate::config::Config;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::msg::{ToConn, ToShard};
use crate::runtime::stats::Stats;
use crate::shard::{ClientRef, ConnId};
use crate::tree::acl::{self, AclConfig};

/// Requests one connection may have outstanding (ZooKeeper throttles similarly).
pub const CONN_PENDING_MAX: usize = 1000;
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
        CoreCtx {
            core,
            cfg,
            stats,
            shard,
            limiter,
            acl,
            registry,
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        }
    }

    /// This core's counters.
    pub fn my_stats(&self) -> &crate::runtime::stats::CoreStats {
        self.stats.core(self.core as usize)
    }

    /// Hands the shard's messages to their connections; those already gone are dropped.
    pub fn dispatch(&self, msgs: Vec<ToConn>) {
        let conns = self.conns.borrow();
        for m in msgs {
            debug_assert_eq!(m.conn().core, self.core, "routed to the owning core");
            if let Some(c) = conns.get(&m.conn().id) {
                c.out.push(Out::Shard(m));
            }
        }
    }
}

enum Out {
    Shard(ToConn),
    Pong,
    Auth(ErrorCode),
    /// A slot was answered locally: send what is ready.
    Wake,
}

struct Slot {
    xid: i32,
    asked: Asked,
    started: Instant,
    ready: Option<(i64, ErrorCode, Response)>,
}

struct Conn {
    id: ConnId,
    peer: SocketAddr,
    fd: RawFd,
    out: Mailbox<Out>,
    pending: RefCell<VecDeque<Slot>>,
    credits: Semaphore,
    /// Signalled once the handshake is answered.
    connected: Semaphore,
    session: Cell<i64>,
    last_zxid: Cell<i64>,
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
        pending: RefCell::new(VecDeque::new()),
        credits: Semaphore::new(CONN_PENDING_MAX as u64),
        connected: Semaphore::new(0),
        session: Cell::new(0),
        last_zxid: Cell::new(0),
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
    Ping,
    Auth(AuthPacket),
    Close(String),
}

fn decode_step(frame: &[u8]) -> Step {
    let (hdr, body) = match RequestHeader::split(frame) {
        Ok(x) => x,
        Err(e) => return Step::Close(format!("malformed request header: {e}")),
    };
    match hdr.op_code() {
        Some(OpCode::Ping) => return Step::Ping,
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

/// False when the connection must close.
async fn handle_step(step: Step, conn: &Rc<Conn>, ctx: &CoreCtx) -> bool {
    let session = conn.session.get();
    match step {
        Step::Ping => {
            ctx.shard.push(ToShard::Touch { session });
            conn.out.push(Out::Pong);
        }
        Step::Auth(a) => match acl::auth_ids(&a.scheme, a.auth.as_deref().unwrap_or(&[]), &ctx.acl)
        {
            Ok(ids) => {
                for id in ids {
                    ctx.shard.push(ToShard::Auth { conn: conn.id, id });
                }
                conn.out.push(Out::Auth(ErrorCode::Ok));
            }
            Err(_) => {
                // ZooKeeper answers AUTHFAILED, stops reading and closes. The writer
                // closes after sending it; stopping here without the reader's shutdown
                // lets the reply out first (clients raise AuthFailedError on it).
                tracing::info!(peer = %conn.peer, scheme = a.scheme, "authentication failed");
                conn.out.push(Out::Auth(ErrorCode::AuthFailed));
                conn.flush_then_close.set(true);
                return false;
            }
        },
        Step::Shard { xid, asked, op } => {
            if conn.credits.acquire(1).await.is_err() {
                return false;
            }
            // A request refused here is answered in its own slot at once; the writer
            // sends it when the replies the shard owes before it have gone out.
            let ready = op
                .as_ref()
                .err()
                .map(|e| (conn.last_zxid.get(), *e, Response::Empty));
            let slot = Slot {
                xid,
                asked,
                started: Instant::now(),
                ready,
            };
            conn.pending.borrow_mut().push_back(slot);
            match op {
                Ok(op) => ctx.shard.push(ToShard::Request {
                    client: ClientRef {
                        conn: conn.id,
                        session,
                        xid,
                    },
                    op,
                }),
                Err(_) => conn.out.push(Out::Wake),
            }
        }
        Step::Close(reason) => {
            tracing::warn!(peer = %conn.peer, session = format_args!("0x{session:x}"), "closing connection: {reason}");
            return false;
        }
    }
    true
}

async fn write_loop(mut writer: impl AsyncWriteExt + Unpin, conn: Rc<Conn>, ctx: Rc<CoreCtx>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    let mut wbuf = Vec::with_capacity(64 << 10);
    while conn.out.recv_batch(&mut batch, WRITE_BATCH_MAX).await {
        let mut close = false;
        for out in batch.drain(..) {
            close |= encode(out, &conn, &ctx, &mut wbuf);
        }
        drain_ready(&conn, &ctx, &mut wbuf);
        ctx.my_stats()
            .bytes_out
            .fetch_add(wbuf.len() as u64, Relaxed);
        if !wbuf.is_empty() && writer.write_all(&wbuf).await.is_err() {
            break;
        }
        wbuf.clear();
        if close {
            let _ = writer.flush().await;
            break;
        }
    }
    conn.credits.close();
    conn.connected.close();
    conn.shutdown();
}

/// Encodes or slots one message; true when the connection must close after it.
fn encode(out: Out, conn: &Conn, ctx: &CoreCtx, wbuf: &mut Vec<u8>) -> bool {
    match out {
        Out::Pong => {
            drain_ready(conn, ctx, wbuf);
            Response::Empty.encode_frame(
                &ReplyHeader::new(xid::PING, conn.last_zxid.get(), ErrorCode::Ok),
                wbuf,
            );
        }
        Out::Auth(err) => {
            Response::Empty.encode_frame(&ReplyHeader::new(xid::AUTH, 0, err), wbuf);
            return err != ErrorCode::Ok;
        }
        Out::Wake => {}
        Out::Shard(ToConn::Connected { resp, accepted, .. }) => {
            resp.encode_frame(wbuf);
            if !accepted {
                return true;
            }
            conn.session.set(resp.session_id);
            let mut reg = ctx.registry.lock().unwrap_or_else(|p| p.into_inner());
            reg.insert(conn.id, (conn.peer, resp.session_id));
            conn.connected.signal(1);
        }
        Out::Shard(ToConn::Reply {
            xid, zxid, reply, ..
        }) => {
            conn.last_zxid.set(conn.last_zxid.get().max(zxid));
            let err = reply.error();
            let Some(asked) = conn
                .pending
                .borrow()
                .iter()
                .find(|s| s.ready.is_none())
                .map(|s| s.asked.clone())
            else {
                tracing::error!(xid, "reply with nothing outstanding; dropped");
                return false;
            };
            fill(conn, xid, zxid, err, to_response(&asked, reply));
        }
        Out::Shard(ToConn::Event { event, .. }) => {
            // Replies already answered left the shard before this event: they go
            // first. A read that set this watch must reach the client before the
            // event, or the client (kazoo) has no watcher registered to hear it.
            drain_ready(conn, ctx, wbuf);
            let ev = Response::Notification(WatcherEvent::node(event.kind, event.path));
            ev.encode_frame(&ReplyHeader::notification(), wbuf);
            ctx.my_stats().packets_sent.fetch_add(1, Relaxed);
        }
        Out::Shard(ToConn::Close { .. }) => return true,
    }
    false
}

/// Fills the oldest unanswered slot, which must be `xid`'s: the shard answers a
/// session in request order, and locally answered slots are never unanswered.
fn fill(conn: &Conn, xid: i32, zxid: i64, err: ErrorCode, resp: Response) {
    let mut pending = conn.pending.borrow_mut();
    let Some(slot) = pending.iter_mut().find(|s| s.ready.is_none()) else {
        return;
    };
    debug_assert_eq!(slot.xid, xid, "replies arrive in request order");
    slot.ready = Some((zxid, err, resp));
}

/// Sends answered slots from the front.
fn drain_ready(conn: &Conn, ctx: &CoreCtx, wbuf: &mut Vec<u8>) {
    let mut pending = conn.pending.borrow_mut();
    while pending.front().is_some_and(|s| s.ready.is_some()) {
        let Some(slot) = pending.pop_front() else {
            break;
        };
        let Some((zxid, err, resp)) = slot.ready else {
            break;
        };
        resp.encode_frame(&ReplyHeader::new(slot.xid, zxid, err), wbuf);
        ctx.my_stats()
            .record_latency(slot.started.elapsed().as_micros() as u64);
        ctx.my_stats().packets_sent.fetch_add(1, Relaxed);
        conn.credits.signal(1);
    }
}
