//! Seeded simulation of the standalone server's glue: many client connections
//! ([`ConnCore`]), the session table ([`Clients`]), the shard pipeline ([`ShardCore`])
//! and group commit ([`Committer`]) over a fake WAL, driven as the runtime drives them,
//! through overload (a small `globalOutstandingLimit`), slow readers, reconnects
//! (sessions moving between connections), wall-clock steps and crashes that lose what
//! was not flushed.
//!
//! Checked, per session and after every step:
//! - replies arrive in request order and each matches its request (its xid, and a body
//!   that decodes as the answer to that request's opcode); a reply that matches no
//!   outstanding request is a failure;
//! - no write is answered before its zxid is durable; after a crash, every write a
//!   client was answered is still in the log; group commit runs 1-3 overlapping flushes
//!   (per seed) that end in any order; a crash keeps the longest prefix of the log
//!   that is on the fake disk;
//! - a watch event reaches the client before any reply that reflects its txn;
//! - limits hold: credits per connection, the per-core share of the outstanding
//!   budget, the shard's in-flight txns; a connection whose unread output passes
//!   `CONN_OUT_BYTES_MAX` is closed;
//! - a session whose client keeps pinging never expires, whatever the wall clock does.
//!
//! Replay one seed: `GLUE_SIM_SEED=S cargo test -p engine --test sim_glue`; more seeds:
//! `GLUE_SIM_SEEDS=N` (default 300).

mod sim_common;

use std::collections::{HashMap, VecDeque};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use engine::config::SyncPolicy;
use engine::op::Op;
use engine::prep::PrepConfig;
use engine::runtime::msg::ToConn;
use engine::server::conn_core::{CONN_PENDING_MAX, ConnCore, OutState};
use engine::server::convert::{Asked, to_op, to_response};
use engine::session::{SessionConfig, SessionIdGen};
use engine::shard::clients::Clients;
use engine::shard::commit::{Committer, Flush};
use engine::shard::core::INFLIGHT_TXNS_MAX;
use engine::shard::{Action, ClientRef, ConnId, Now, Reply, ShardCore};
use engine::txn::{Db, Txn};
use transport::jute::connect::ConnectRequest;
use transport::jute::header::ReplyHeader;
use transport::jute::records::*;
use transport::jute::request::Request;
use transport::jute::response::Response;
use transport::jute::{Acl, CreateMode, Id, OpCode, xid};

const STEPS: usize = 1500;
const CLIENTS: usize = 6;
/// Bytes a simulated socket buffers towards the client before the writer blocks.
const SOCKET_BYTES: usize = 4 << 10;
/// The connections' output limits, small enough for slow readers to reach.
const OUT_BYTES_PAUSE: usize = 4 << 10;
const OUT_BYTES_MAX: usize = 12 << 10;
const SESSION_TIMEOUT_MS: i32 = 2000;
const TICK_MS: i64 = 100;
const PATHS: [&str; 5] = ["/a", "/b", "/a/x", "/a/y", "/c"];

type Res<T = ()> = Result<T, String>;

/// A bug planted in the simulated driver, to show the checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// Tells the core a flush is durable when it starts, not when it ends.
    AckBeforeFlush,
    /// A WAL whose overlapping flushes each write only the bytes appended since the
    /// previous flush started, and publish what they covered when they end: a later
    /// flush ending first leaves a hole below its watermark.
    FlushOwnRangeOnly,
    /// Feeds the wall clock where the monotonic one belongs (the old driver's bug).
    WallClockDeadlines,
    /// Delivers a txn's watch events after its reply.
    EventsAfterReply,
}

/// What a run went through (so a passing seed is known to have exercised something).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    replies: usize,
    events: usize,
    crashes: usize,
    expiries: usize,
    moved: usize,
    paused: usize,
    overflows: usize,
}

/// One server-side connection and its two directions of "socket".
struct SimConn {
    id: ConnId,
    core: ConnCore,
    /// Requests the client wrote and the server has not read: (xid, request).
    inbound: VecDeque<(i32, Request)>,
    /// Messages from the shard not yet taken by the writer, with their sizes.
    from_shard: VecDeque<(ToConn, usize)>,
    /// Encoded frames written to the socket, not yet read by the client.
    socket: Vec<u8>,
    /// Zxids of the txns behind the events handed to this connection, in order.
    event_zxids: VecDeque<i64>,
    handshake: bool,
    closed: bool,
    /// The session it serves once the handshake is answered.
    session: i64,
}

/// A simulated user of one session.
struct User {
    conn: Option<usize>,
    session: i64,
    password: Vec<u8>,
    next_xid: i32,
    /// Sent and unanswered on the current connection: (xid, opcode, is_write).
    outstanding: VecDeque<(i32, OpCode, bool)>,
    /// Highest zxid seen in any reply.
    seen_zxid: i64,
    /// Highest reply zxid on the current connection (for event order).
    reply_zxid_conn: i64,
    /// Stops reading its socket until this step.
    slow_until: usize,
    /// Does nothing at all (no requests, no pings) until this step.
    idle_until: usize,
    /// Last time (monotonic) it pinged or was answered.
    last_heard_ms: i64,
}

struct World {
    rng: SmallRng,
    step: usize,
    now: Now,
    core: ShardCore,
    clients: Clients,
    commit: Committer,
    flushes_max: usize,
    policy: SyncPolicy,
    /// The fake WAL: appended txns; the first `durable` entries survive a crash.
    log: Vec<(i64, Vec<u8>)>,
    /// Overlapping flushes under way: (first zxid of its own range, covers).
    flushes: Vec<(i64, i64)>,
    /// Zxids of the fake disk that a crash keeps (a prefix of them survives recovery).
    on_disk: std::collections::BTreeSet<i64>,
    inbox: VecDeque<Inbound>,
    conns: Vec<SimConn>,
    users: Vec<User>,
    /// Per core: budget units taken (requests the shard has not answered).
    budget_used: [usize; 2],
    budget_max: usize,
    /// Highest zxid of a write any client was answered.
    acked_write_zxid: i64,
    /// When the server last heard of each session (request, reconnect, creation).
    touched: HashMap<i64, i64>,
    /// Requests delayed on an old connection until the shard takes the new one's (the
    /// key's) handshake.
    late: HashMap<usize, (usize, Vec<(i32, Request)>)>,
    next_conn: u64,
    actions: Vec<Action>,
    /// What the fake disk holds for sure: the end of the last flush that finished.
    wal_durable: i64,
    bug: Bug,
    counts: Counts,
}

enum Inbound {
    Connect(ConnId, ConnectRequest),
    Request(ClientRef, Op),
    Closed(ConnId),
}

fn new_core(db: Db) -> ShardCore {
    ShardCore::new(db, PrepConfig::default())
}

fn session_config() -> SessionConfig {
    SessionConfig::from_tick(TICK_MS as i32)
}

impl World {
    fn new(seed: u64, bug: Bug) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let policy = if rng.random_bool(0.3) {
            SyncPolicy::Always
        } else {
            SyncPolicy::Batch
        };
        let budget_max = [1, 3, 20, 500][rng.random_range(0..4)];
        let flushes_max = rng.random_range(1..=3);
        let users = (0..CLIENTS)
            .map(|_| User {
                conn: None,
                session: 0,
                password: vec![0; 16],
                next_xid: 1,
                outstanding: VecDeque::new(),
                seen_zxid: 0,
                reply_zxid_conn: 0,
                slow_until: 0,
                idle_until: 0,
                last_heard_ms: 0,
            })
            .collect();
        World {
            rng,
            step: 0,
            now: Now {
                wall_ms: 1_700_000_000_000,
                mono_ms: 1,
            },
            core: new_core(Db::new(session_config())),
            clients: Clients::new(SessionIdGen::new(0, 1_700_000_000_000)),
            commit: Committer::new(policy, 0).with_flushes_max(flushes_max),
            flushes_max,
            policy,
            log: Vec::new(),
            flushes: Vec::new(),
            on_disk: Default::default(),
            inbox: VecDeque::new(),
            conns: Vec::new(),
            users,
            budget_used: [0; 2],
            budget_max,
            acked_write_zxid: 0,
            touched: HashMap::new(),
            late: HashMap::new(),
            next_conn: 1,
            actions: Vec::new(),
            wal_durable: 0,
            bug,
            counts: Counts::default(),
        }
    }

    fn run(&mut self) -> Res {
        for step in 0..STEPS {
            self.step = step;
            self.advance_clock()?;
            match self.rng.random_range(0..100) {
                0..=29 => self.user_acts()?,
                30..=49 => self.conn_reads(),
                50..=69 => self.shard_steps()?,
                70..=84 => self.conn_writes()?,
                85..=94 => self.users_read()?,
                95..=96 => self.flush_ends()?,
                97 => self.reconnect_someone(),
                98 => self.make_slow(),
                _ => {
                    if self.rng.random_bool(0.2) {
                        self.crash()?;
                    }
                }
            }
            self.check_limits()?;
        }
        Ok(())
    }

    /// Monotonic time moves forward a little; the wall clock sometimes steps an hour.
    fn advance_clock(&mut self) -> Res {
        let dt = self.rng.random_range(0..6);
        self.now.mono_ms += dt;
        self.now.wall_ms += dt;
        if self.rng.random_ratio(1, 200) {
            let step = if self.rng.random_bool(0.5) {
                3_600_000
            } else {
                -3_600_000
            };
            self.now.wall_ms += step;
        }
        if self.rng.random_ratio(1, 20) {
            self.tick()?;
        }
        Ok(())
    }

    /// Session expiry on the monotonic clock: a session expires exactly when its
    /// timeout has passed since the server last heard of it, whatever the wall clock did.
    fn tick(&mut self) -> Res {
        let mut out = Vec::new();
        let now = match self.bug {
            Bug::WallClockDeadlines => Now {
                wall_ms: self.now.wall_ms,
                mono_ms: self.now.wall_ms - 1_700_000_000_000,
            },
            _ => self.now,
        };
        let expired = self.core.tick(now, &mut self.actions);
        self.counts.expiries += expired.len();
        let timeout = i64::from(SESSION_TIMEOUT_MS);
        for s in expired {
            let heard = self.touched.get(&s).copied().unwrap_or(0);
            if self.now.mono_ms - heard < timeout {
                return Err(format!(
                    "session {s:#x} expired {} ms after it was last heard of",
                    self.now.mono_ms - heard
                ));
            }
            self.clients.expired(s, &mut out);
        }
        for (&s, &heard) in &self.touched {
            if self.core.db().sessions.is_active(s) && self.now.mono_ms >= heard + timeout + TICK_MS
            {
                return Err(format!(
                    "session {s:#x} still alive {} ms after it was last heard of",
                    self.now.mono_ms - heard
                ));
            }
        }
        self.route(out);
        self.execute()
    }

    fn open_conn(&mut self, u: usize) {
        let id = ConnId {
            core: (self.next_conn % 2) as u16,
            id: self.next_conn,
        };
        self.next_conn += 1;
        let user = &mut self.users[u];
        let req = ConnectRequest {
            time_out: SESSION_TIMEOUT_MS,
            session_id: user.session,
            passwd: Some(user.password.clone()),
            last_zxid_seen: user.seen_zxid,
            read_only: Some(false),
            ..Default::default()
        };
        self.inbox.push_back(Inbound::Connect(id, req));
        self.conns.push(SimConn {
            id,
            core: ConnCore::with_limits(OUT_BYTES_PAUSE, OUT_BYTES_MAX),
            session: 0,
            inbound: VecDeque::new(),
            from_shard: VecDeque::new(),
            socket: Vec::new(),
            event_zxids: VecDeque::new(),
            handshake: false,
            closed: false,
        });
        user.conn = Some(self.conns.len() - 1);
        user.outstanding.clear();
        user.reply_zxid_conn = 0;
        user.last_heard_ms = self.now.mono_ms;
    }

    fn random_request(&mut self) -> Request {
        let path = PATHS[self.rng.random_range(0..PATHS.len())].to_string();
        let data = Some(vec![self.rng.random::<u8>(); self.rng.random_range(0..64)]);
        let watch = self.rng.random_bool(0.5);
        match self.rng.random_range(0..12) {
            0 | 1 => Request::Create(CreateRequest {
                path,
                data,
                acl: Acl::open_unsafe(),
                flags: if self.rng.random_bool(0.3) {
                    CreateMode::Ephemeral.code()
                } else {
                    CreateMode::Persistent.code()
                },
            }),
            2 => Request::Delete(DeleteRequest { path, version: -1 }),
            3 | 4 => Request::SetData(SetDataRequest {
                path,
                data,
                version: -1,
            }),
            5 => Request::GetData(GetDataRequest { path, watch }),
            6 => Request::Exists(ExistsRequest { path, watch }),
            7 => Request::GetChildren(GetChildrenRequest { path, watch }),
            8 => Request::Sync(SyncRequest { path }),
            9 => Request::AddWatch(AddWatchRequest {
                path,
                mode: transport::jute::AddWatchMode::Persistent.code(),
            }),
            _ => Request::Ping,
        }
    }

    /// A user sends a few requests on its connection (or connects first).
    fn user_acts(&mut self) -> Res {
        let u = self.rng.random_range(0..CLIENTS);
        if self.users[u].idle_until > self.step {
            return Ok(());
        }
        let Some(c) = self.users[u].conn else {
            self.open_conn(u);
            return Ok(());
        };
        if self.conns[c].closed {
            self.users[u].conn = None;
            return Ok(());
        }
        if !self.conns[c].handshake {
            return Ok(());
        }
        for _ in 0..self.rng.random_range(1..6) {
            let req = self.random_request();
            let user = &mut self.users[u];
            let x = req.special_xid().unwrap_or_else(|| {
                let x = user.next_xid;
                user.next_xid += 1;
                x
            });
            let is_write = matches!(
                req,
                Request::Create(_) | Request::Delete(_) | Request::SetData(_)
            );
            user.outstanding.push_back((x, req.op_code(), is_write));
            if matches!(req, Request::Ping) {
                user.last_heard_ms = self.now.mono_ms;
            }
            self.conns[c].inbound.push_back((x, req));
        }
        Ok(())
    }

    /// Connections read requests while they may (credits, output, budget).
    fn conn_reads(&mut self) {
        for c in 0..self.conns.len() {
            let conn = &mut self.conns[c];
            if conn.closed || !conn.handshake {
                continue;
            }
            let core = conn.id.core as usize;
            while conn.core.may_read() && self.budget_used[core] < self.budget_max {
                let Some((x, req)) = conn.inbound.pop_front() else {
                    break;
                };
                let asked = if matches!(req, Request::Ping) {
                    Asked {
                        op: OpCode::Ping,
                        steps: Vec::new(),
                    }
                } else {
                    Asked::of(&req)
                };
                let op = if matches!(req, Request::Ping) {
                    Ok(Op::Ping)
                } else {
                    to_op(req)
                };
                let session = self
                    .users
                    .iter()
                    .find(|u| u.conn == Some(c))
                    .map_or(0, |u| u.session);
                match op {
                    Ok(op) => {
                        conn.core.admit(x, asked, 0, None);
                        self.budget_used[core] += 1;
                        let client = ClientRef {
                            conn: conn.id,
                            session,
                            xid: x,
                        };
                        self.inbox.push_back(Inbound::Request(client, op));
                    }
                    Err(e) => conn.core.admit(x, asked, 0, Some(e)),
                }
            }
        }
    }

    /// Requests an old connection read (within its credits and its core's budget)
    /// and sent to the shard behind a handshake that moved their session away.
    fn admit_late(&mut self, old: usize, late: Vec<(i32, Request)>) {
        let conn = &mut self.conns[old];
        let core = conn.id.core as usize;
        for (x, req) in late {
            if conn.closed || !conn.core.has_credit() || self.budget_used[core] >= self.budget_max {
                break;
            }
            let asked = Asked::of(&req);
            let Ok(op) = to_op(req) else { continue };
            conn.core.admit(x, asked, 0, None);
            self.budget_used[core] += 1;
            let client = ClientRef {
                conn: conn.id,
                session: conn.session,
                xid: x,
            };
            self.inbox.push_back(Inbound::Request(client, op));
        }
    }

    /// The shard takes a batch from its inbox and carries out what follows.
    fn shard_steps(&mut self) -> Res {
        let n = self.rng.random_range(1..20);
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(m) = self.inbox.pop_front() else {
                break;
            };
            match m {
                Inbound::Connect(conn, req) => {
                    if req.session_id != 0 && self.core.db().sessions.is_active(req.session_id) {
                        self.touched.insert(req.session_id, self.now.mono_ms);
                    }
                    let ip = Id {
                        scheme: "ip".into(),
                        id: "127.0.0.1".into(),
                    };
                    let pw = [self.rng.random::<u8>(); 16];
                    // Requests the session's old connection read before the move, on
                    // another core: they reach the shard after this handshake.
                    if let Some(i) = self.conns.iter().position(|c| c.id == conn)
                        && let Some((old, late)) = self.late.remove(&i)
                    {
                        self.admit_late(old, late);
                    }
                    self.clients.connect(
                        &mut self.core,
                        conn,
                        req,
                        ip,
                        pw,
                        self.now,
                        &mut out,
                        &mut self.actions,
                    );
                }
                Inbound::Request(client, op) => {
                    let here = self.clients.conn_of(client.session) == Some(client.conn);
                    if here && self.core.db().sessions.is_active(client.session) {
                        self.touched.insert(client.session, self.now.mono_ms);
                    }
                    self.clients
                        .request(&mut self.core, client, op, self.now, &mut self.actions);
                }
                Inbound::Closed(conn) => {
                    if let Some(s) = self.clients.closed(conn) {
                        self.core.db_mut().tree.watches.remove_session(s);
                    }
                }
            }
        }
        self.route(out);
        self.execute()
    }

    /// The driver's loop: actions until none are left, then the committer's flush.
    fn execute(&mut self) -> Res {
        loop {
            let mut run = Vec::new();
            while !self.actions.is_empty() {
                for a in std::mem::take(&mut self.actions) {
                    self.action(a, &mut run)?;
                }
                self.append(&mut run);
            }
            match self.commit.next_flush(&mut run) {
                None => return Ok(()),
                Some(Flush::Inline { covers }) => {
                    self.append(&mut run);
                    self.wal_durable = covers;
                    self.durable(covers, true)?;
                }
                Some(Flush::Background { covers }) => {
                    self.append(&mut run);
                    if self.flushes.len() >= self.flushes_max && self.bug != Bug::AckBeforeFlush {
                        return Err(format!(
                            "{} flushes running, the limit is {}",
                            self.flushes.len() + 1,
                            self.flushes_max
                        ));
                    }
                    let own_from = self.flushes.iter().map(|f| f.1).max();
                    let own_from = own_from.unwrap_or(self.wal_durable).max(self.wal_durable);
                    self.flushes.push((own_from + 1, covers));
                    if self.bug == Bug::AckBeforeFlush {
                        self.durable(covers, false)?;
                    }
                }
            }
        }
    }

    fn append(&mut self, run: &mut Vec<(i64, rkyv::util::AlignedVec)>) {
        let Some(&(last, _)) = run.last() else {
            return;
        };
        self.log.extend(run.drain(..).map(|(z, b)| (z, b.to_vec())));
        self.commit.appended_to(last);
    }

    /// One of the running flushes (any: overlapping ones end in any order) ends. Like
    /// the real WAL, a flush writes from the durable end to what it covers, so when it
    /// ends everything up to that is on disk, whatever the earlier flushes do.
    fn flush_ends(&mut self) -> Res {
        if self.flushes.is_empty() {
            return Ok(());
        }
        let i = self.rng.random_range(0..self.flushes.len());
        let (own_from, mut covers) = self.flushes.remove(i);
        if self.rng.random_bool(0.3) {
            // Its thread started late and read the WAL's end then: it covers all
            // appended so far (the real syncer reads the end when it runs).
            covers = covers.max(self.log.last().map_or(0, |(z, _)| *z));
        }
        let from = match self.bug {
            Bug::FlushOwnRangeOnly => own_from,
            _ => 0,
        };
        let written: Vec<i64> = self
            .log
            .iter()
            .map(|(z, _)| *z)
            .filter(|z| (from..=covers).contains(z))
            .collect();
        self.on_disk.extend(written);
        // Recovery keeps the longest prefix of the log that is on disk.
        let prefix = self
            .log
            .iter()
            .take_while(|(z, _)| self.on_disk.contains(z))
            .last()
            .map_or(self.wal_durable, |(z, _)| *z);
        self.wal_durable = self.wal_durable.max(prefix);
        if self.bug != Bug::AckBeforeFlush {
            self.durable(covers, false)?;
        }
        self.execute()
    }

    /// Releases the core one zxid at a time, so each event is tagged with its txn.
    fn durable(&mut self, covers: i64, inline: bool) -> Res {
        let from = self.commit.durable();
        let to = self.commit.flushed(covers, inline);
        self.core.observe(self.now);
        for z in from + 1..=to {
            let mut acts = Vec::new();
            self.core.durable(z, &mut acts);
            if self.bug == Bug::EventsAfterReply {
                acts.sort_by_key(|a| matches!(a, Action::Event(_)));
            }
            for a in acts {
                if let Action::Reply {
                    to,
                    reply: Reply::Write(engine::txn::TxnResult::CreateSession { .. }),
                    ..
                } = &a
                {
                    self.touched.insert(to.session, self.now.mono_ms);
                }
                if let Action::Event(e) = &a
                    && let Some(conn) = self.clients.event_conn(e)
                    && let Some(c) = self.conns.iter_mut().find(|c| c.id == conn)
                {
                    c.event_zxids.push_back(z);
                }
                self.actions.push(a);
            }
        }
        Ok(())
    }

    fn action(&mut self, a: Action, run: &mut Vec<(i64, rkyv::util::AlignedVec)>) -> Res {
        match a {
            Action::Persist { zxid, bytes } => self.commit.persist(zxid, bytes, run),
            Action::Event(event) => {
                if let Some(conn) = self.clients.event_conn(&event) {
                    self.route(vec![ToConn::Event { conn, event }]);
                }
            }
            Action::Reply { to, zxid, reply } => {
                if matches!(reply, Reply::Write(_)) && zxid > self.wal_durable {
                    return Err(format!(
                        "write {zxid:#x} answered while the disk holds only up to {:#x}",
                        self.wal_durable
                    ));
                }
                if reply.error() == transport::jute::ErrorCode::SessionMoved {
                    self.counts.moved += 1;
                }
                let mut out = Vec::new();
                self.clients.reply(&self.core, to, zxid, reply, &mut out);
                self.route(out);
            }
            Action::Forward { .. } | Action::ForwardSync { .. } => {
                return Err("a standalone shard forwarded a request".into());
            }
            Action::ChainRead { .. } => {
                return Err("a standalone shard asked a chain about a read".into());
            }
        }
        Ok(())
    }

    /// Hands messages to their connections (output accounting as `CoreCtx::dispatch`).
    fn route(&mut self, msgs: Vec<ToConn>) {
        for m in msgs {
            let Some(c) = self.conns.iter_mut().find(|c| c.id == m.conn()) else {
                continue;
            };
            if c.closed {
                continue;
            }
            let bytes = m.approx_bytes();
            match c.core.queued(bytes) {
                OutState::Overflow => {
                    self.counts.overflows += 1;
                    close(c, &mut self.inbox, &mut self.budget_used);
                    continue;
                }
                OutState::Paused => self.counts.paused += 1,
                OutState::Flowing => {}
            }
            c.from_shard.push_back((m, bytes));
        }
    }

    /// Connection writers take what the shard sent while their socket has room.
    fn conn_writes(&mut self) -> Res {
        for c in 0..self.conns.len() {
            let conn = &mut self.conns[c];
            while !conn.closed && conn.socket.len() < SOCKET_BYTES {
                let Some((m, bytes)) = conn.from_shard.pop_front() else {
                    break;
                };
                let core = conn.id.core as usize;
                match m {
                    ToConn::Connected { resp, accepted, .. } => {
                        if !accepted {
                            if let Some(u) = self.users.iter_mut().find(|u| u.conn == Some(c)) {
                                // Expired (or refused): start over with a new session.
                                u.conn = None;
                                u.session = 0;
                                u.password = vec![0; 16];
                            }
                            close(conn, &mut self.inbox, &mut self.budget_used);
                            break;
                        }
                        conn.handshake = true;
                        conn.session = resp.session_id;

                        if let Some(u) = self.users.iter_mut().find(|u| u.conn == Some(c)) {
                            if u.session != 0 && u.session != resp.session_id {
                                return Err("a reconnect got another session".into());
                            }
                            u.session = resp.session_id;
                            u.password = resp.passwd.clone().unwrap_or_default();
                        }
                    }
                    ToConn::Reply {
                        xid, zxid, reply, ..
                    } => {
                        let err = reply.error();
                        match conn.core.answer(xid, zxid, err, |a| to_response(a, reply)) {
                            Ok(()) => self.budget_used[core] -= 1,
                            Err(e) => {
                                return Err(format!("reply xid {} matches no request", e.xid));
                            }
                        }
                    }
                    ToConn::Event { event, .. } => {
                        conn.core.event(event, &mut conn.socket, 0, |_| {});
                    }
                    ToConn::Close { .. } => {
                        close(conn, &mut self.inbox, &mut self.budget_used);
                        break;
                    }
                }
                conn.core.drain(&mut conn.socket, 0, |_| {});
                conn.core.written(bytes);
            }
            if !conn.closed {
                conn.core.drain(&mut conn.socket, 0, |_| {});
            }
        }
        Ok(())
    }

    /// Users read their sockets (slow ones do not) and check every frame.
    fn users_read(&mut self) -> Res {
        for u in 0..CLIENTS {
            let Some(c) = self.users[u].conn else {
                continue;
            };
            if self.users[u].slow_until > self.step {
                continue;
            }
            let bytes = std::mem::take(&mut self.conns[c].socket);
            let mut rest = &bytes[..];
            while rest.len() >= 4 {
                let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                let body = &rest[4..4 + len];
                rest = &rest[4 + len..];
                self.frame(u, c, body)?;
            }
        }
        Ok(())
    }

    fn frame(&mut self, u: usize, c: usize, body: &[u8]) -> Res {
        let (header, rest) = ReplyHeader::split(body).map_err(|e| e.to_string())?;
        let user = &mut self.users[u];
        if header.xid == xid::NOTIFICATION {
            self.counts.events += 1;
            let z = self.conns[c]
                .event_zxids
                .pop_front()
                .ok_or("an event with no txn behind it")?;
            if user.reply_zxid_conn >= z {
                return Err(format!(
                    "session {:#x}: event of txn {z:#x} after a reply at zxid {:#x}",
                    user.session, user.reply_zxid_conn
                ));
            }
            return Ok(());
        }
        let (want, op, is_write) = user
            .outstanding
            .pop_front()
            .ok_or_else(|| format!("reply xid {} with nothing outstanding", header.xid))?;
        if header.xid != want {
            return Err(format!(
                "session {:#x}: reply xid {} while {want} is oldest",
                user.session, header.xid
            ));
        }
        Response::decode(op, &header, rest)
            .map_err(|e| format!("reply to xid {want} ({op:?}) does not decode: {e}"))?;
        self.counts.replies += 1;
        user.seen_zxid = user.seen_zxid.max(header.zxid);
        user.reply_zxid_conn = user.reply_zxid_conn.max(header.zxid);
        user.last_heard_ms = self.now.mono_ms;
        if is_write && header.err == 0 {
            self.acked_write_zxid = self.acked_write_zxid.max(header.zxid);
        }
        Ok(())
    }

    /// A user moves its session to a new connection; the old one may stay open.
    fn reconnect_someone(&mut self) {
        let u = self.rng.random_range(0..CLIENTS);
        if self.users[u].session == 0 {
            return;
        }
        if let Some(c) = self.users[u].conn {
            if self.rng.random_bool(0.5) {
                close(&mut self.conns[c], &mut self.inbox, &mut self.budget_used);
            } else if self.conns[c].handshake {
                // Requests still in the network on the old connection: they reach the
                // server once the session has moved, and must not run.
                let late = (0..3)
                    .map(|_| {
                        let req = self.random_request();
                        let x = self.users[u].next_xid;
                        self.users[u].next_xid += 1;
                        (x, req)
                    })
                    .collect();
                self.open_conn(u);
                self.late.insert(self.conns.len() - 1, (c, late));
                return;
            }
        }
        self.open_conn(u);
    }

    /// A user stops reading for a while, or goes quiet long enough to expire.
    fn make_slow(&mut self) {
        let u = self.rng.random_range(0..CLIENTS);
        if self.rng.random_bool(0.7) {
            self.users[u].slow_until = self.step + self.rng.random_range(10..600);
        } else {
            self.users[u].idle_until = self.step + self.rng.random_range(100..1000);
        }
    }

    /// The server crashes: what was not flushed is lost; it recovers from the log.
    fn crash(&mut self) -> Res {
        self.counts.crashes += 1;
        let durable = self.wal_durable;
        self.log.retain(|(z, _)| *z <= durable);
        if self.acked_write_zxid > durable {
            return Err(format!(
                "write {:#x} was acknowledged but the log is durable only to {durable:#x}",
                self.acked_write_zxid
            ));
        }
        let mut db = Db::new(session_config());
        for (_, bytes) in &self.log {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(bytes);
            let txn = Txn::from_bytes(&aligned).map_err(|e| e.to_string())?;
            db.apply_if_new(&txn);
        }
        db.sessions.restart_timers(self.now.mono_ms);
        for t in self.touched.values_mut() {
            *t = self.now.mono_ms; // recovery gives every session a full timeout
        }
        let last = db.last_zxid();
        let ids = SessionIdGen::resume(0, self.now.wall_ms, db.sessions.iter().map(|s| s.id));
        self.core = new_core(db);
        self.clients = Clients::new(ids);
        self.late.clear();
        self.commit = Committer::new(self.policy, last).with_flushes_max(self.flushes_max);
        self.wal_durable = last;
        self.flushes.clear();
        self.on_disk = self.log.iter().map(|(z, _)| *z).collect();
        self.inbox.clear();
        self.conns.clear();
        self.budget_used = [0; 2];
        for u in &mut self.users {
            u.conn = None;
            u.outstanding.clear();
            u.last_heard_ms = self.now.mono_ms;
        }
        Ok(())
    }

    fn check_limits(&self) -> Res {
        for (core, used) in self.budget_used.iter().enumerate() {
            if *used > self.budget_max {
                return Err(format!(
                    "core {core} has {used} outstanding > {}",
                    self.budget_max
                ));
            }
        }
        for c in &self.conns {
            if c.core.pending() > CONN_PENDING_MAX {
                return Err("a connection passed its credits".into());
            }
        }
        if self.core.inflight() > INFLIGHT_TXNS_MAX {
            return Err("the shard passed its in-flight limit".into());
        }
        Ok(())
    }
}

/// A connection closes: the shard hears of it; its budget comes back.
fn close(c: &mut SimConn, inbox: &mut VecDeque<Inbound>, budget: &mut [usize; 2]) {
    if c.closed {
        return;
    }
    c.closed = true;
    budget[c.id.core as usize] -= c.core.shard_owes();
    // The shard's late answers are dropped: take them off the books here.
    inbox.push_back(Inbound::Closed(c.id));
}

/// Runs one seed; the counts say what it went through.
fn run(seed: u64, bug: Bug) -> Res<Counts> {
    let mut w = World::new(seed, bug);
    w.run()?;
    Ok(w.counts)
}

#[test]
fn glue_keeps_order_durability_and_limits() {
    let counts =
        sim_common::for_each_seed("GLUE_SIM", "sim_glue", 300, |seed| run(seed, Bug::None));
    let sum = |f: fn(&Counts) -> usize| counts.iter().map(f).sum::<usize>();
    let total = (
        sum(|c| c.replies),
        sum(|c| c.events),
        sum(|c| c.crashes),
        sum(|c| c.expiries),
        sum(|c| c.moved),
        sum(|c| c.paused),
    );
    println!("replies, events, crashes, expiries, SessionMoved, paused: {total:?}");
    if counts.len() >= 100 {
        // The faults happened: a sweep that never crashed or moved a session checks little.
        assert!(total.0 > 10_000 && total.1 > 100, "{total:?}");
        assert!(total.2 > 10 && total.3 > 10 && total.4 > 0, "{total:?}");
        assert!(total.5 > 0 && sum(|c| c.overflows) > 0, "{total:?}");
    }
}

/// Sweeps seeds until `bug` is caught; it must be, within `seeds_max`.
fn catches(bug: Bug, seeds_max: u64, what: &str) {
    for seed in 0..seeds_max {
        if let Err(e) = run(seed, bug) {
            assert!(e.contains(what), "seed {seed}: {bug:?} caught as {e}");
            return;
        }
    }
    panic!("{bug:?} went unnoticed in {seeds_max} seeds");
}

#[test]
fn an_ack_before_the_flush_ends_is_caught() {
    catches(Bug::AckBeforeFlush, 50, "answered while the disk holds");
}

#[test]
fn a_flush_that_leaves_a_hole_below_its_watermark_is_caught() {
    catches(Bug::FlushOwnRangeOnly, 300, "answered while the disk holds");
}

#[test]
fn wall_clock_deadlines_are_caught() {
    catches(Bug::WallClockDeadlines, 100, "last heard of");
}

#[test]
fn events_after_their_reply_are_caught() {
    catches(Bug::EventsAfterReply, 200, "event of txn");
}
