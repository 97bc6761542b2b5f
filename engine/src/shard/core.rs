//! `ShardCore`: the request pipeline of one shard, as a pure state machine.
//!
//! Inputs are client requests, "the log is durable up to zxid", and clock ticks (all
//! with the time supplied by the caller as [`Now`]: wall-clock time stamps txns
//! (ctime, mtime, TTL), monotonic time drives session deadlines, so a wall-clock step
//! (NTP) neither expires every session at once nor keeps dead ones alive). Outputs are [`Action`]s, in the order the
//! driver must carry them out:
//! - [`Action::Persist`]: append the txn's bytes to the WAL. Nothing that depends on it
//!   is released until the driver reports [`ShardCore::durable`] for its zxid
//!   (DESIGN principle 2: reply only after what it confirms is durable).
//! - [`Action::Event`]: a watch event for a session's connection.
//! - [`Action::Reply`]: the answer to one request.
//! - [`Action::Forward`]: (a learner only) send this write to the leader.
//! - [`Action::ForwardSync`]: (a learner only) send this `sync` to the leader, whose
//!   answer ([`ShardCore::synced`]) names the zxid it had committed when the sync
//!   reached it; the client is answered once this server applied that far, so its next
//!   read is as fresh as the leader was (ZooKeeper's `sync` + read).
//!
//! Roles ([`Role`]): a **standalone** server or a Zab **leader** preps every write
//! itself (its own clients' through [`ShardCore::request`], learners' through
//! [`ShardCore::request_forwarded`]); a **learner** (follower, observer) forwards its
//! clients' writes and takes the leader's txns through [`ShardCore::learn`], whose
//! bytes it persists as they arrived. Everywhere, [`ShardCore::durable`] means "the
//! txns up to this zxid are committed" (standalone: durable on the local disk; Zab:
//! committed by a quorum) and applies them in order. A session's writes are matched to
//! their txns by (session, cxid), never by a zxid this server assigned, so a learner
//! answers its clients when the leader's txn for their request commits.
//!
//! Invariants:
//! - Txns are persisted and applied in zxid order; `inflight` holds exactly the txns
//!   persisted but not yet applied, oldest first.
//! - Per session, replies leave in request order: a read that arrives while the same
//!   session has a write in flight waits behind it (ZooKeeper's CommitProcessor rule),
//!   so a client never sees a read that misses its own earlier write.
//! - Events caused by a txn are emitted before the reply to that txn and before any
//!   later reply, so a client receives an event before any reply reflecting the change.
//! - A refusal (`ThrottledOp`, a full session queue) is an answer like any other: it
//!   queues behind the session's earlier requests, never overtakes them. Refusals are a
//!   last line of defence: the runtime's credits (per connection, and
//!   `globalOutstandingLimit` per core) keep client requests below
//!   [`INFLIGHT_TXNS_MAX`], so clients see backpressure (an unread socket), not errors.
//! - The reaper never proposes a second delete for a path whose delete is in flight,
//!   and runs under steady writes too (prep validates against in-flight changes).

use std::collections::{HashMap, VecDeque};

use rkyv::util::AlignedVec;
use transport::jute::{ErrorCode, Id};

use crate::op::Op;
use crate::prep::{Prep, PrepConfig, RequestCtx};
use crate::tree::read::{ReadResult, read};
use crate::tree::watch::WatchEvent;
use crate::txn::{Db, Txn, TxnResult};

/// Writes persisted but not yet applied; beyond it writes are refused with
/// `ThrottledOp`, in order. The runtime's credits keep client requests well below it
/// (`Config::global_outstanding_limit` is clamped to it), so only internal txns
/// (expiry, reaping) could ever reach it.
pub const INFLIGHT_TXNS_MAX: usize = 16_384;
/// The cxid of txns the server preps for itself (session expiry, reaping): no client
/// request is a write with this xid (ZooKeeper's clients count xids up from 1, and
/// negative xids are reserved for pings, auth, watches and notifications), so a
/// server (a learner too, which learns its leader's internal txns) never answers a
/// client with one.
pub const INTERNAL_CXID: i32 = i32::MIN + 1;

const _: () = assert!(
    INTERNAL_CXID != crate::shard::clients::CONNECT_XID,
    "a session's creation is answered to its client"
);

/// Requests one session may have waiting behind its own writes.
pub const SESSION_QUEUE_MAX: usize = 4_096;

const _: () = assert!(SESSION_QUEUE_MAX <= INFLIGHT_TXNS_MAX);

/// The time, as the caller's clocks tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// Milliseconds since the Unix epoch: stamped on txns (ctime, mtime), TTLs.
    pub wall_ms: i64,
    /// Milliseconds on a monotonic clock: session deadlines only.
    pub mono_ms: i64,
}

impl Now {
    /// Both clocks at `ms` (tests and simulations that need no clock step).
    pub fn at(ms: i64) -> Self {
        Now {
            wall_ms: ms,
            mono_ms: ms,
        }
    }
}

/// A connection, named by the core that owns it and a number unique on that core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub core: u16,
    pub id: u64,
}

/// Where a reply goes: the connection, its session, and the request's xid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRef {
    pub conn: ConnId,
    pub session: i64,
    pub xid: i32,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A write's outcome (the reply header error is `result.error()`).
    Write(TxnResult),
    /// A read's outcome.
    Read(Result<ReadResult, ErrorCode>),
}

impl Reply {
    /// The error for the reply header.
    pub fn error(&self) -> ErrorCode {
        match self {
            Reply::Write(r) => r.error(),
            Reply::Read(Ok(_)) => ErrorCode::Ok,
            Reply::Read(Err(e)) => *e,
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// Append this archived txn to the WAL.
    Persist { zxid: i64, bytes: AlignedVec },
    /// Deliver a watch event to the session's connection.
    Event(WatchEvent),
    /// Answer a request; `zxid` is the shard's last applied zxid, carried on every
    /// reply as ZooKeeper does.
    Reply {
        to: ClientRef,
        zxid: i64,
        reply: Reply,
    },
    /// (Learners) send a client's write to the leader, which preps it with
    /// [`ShardCore::request_forwarded`]; its txn comes back through
    /// [`ShardCore::learn`].
    Forward {
        session: i64,
        cxid: i32,
        auth: Vec<Id>,
        op: Op,
    },
    /// (Learners) send a client's `sync` to the leader; its answer comes back through
    /// [`ShardCore::synced`].
    ForwardSync { session: i64, cxid: i32 },
    /// (CRAQ) a read at the head of its session's queue, depending on `keys`: it is
    /// answered when the chain says so ([`ShardCore::read_ready`] runs it on the state
    /// applied at that moment) or refused ([`ShardCore::read_refused`]).
    ChainRead { id: u64, keys: crate::craq::Keys },
}

/// What this shard's server is in its replication group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Preps its own writes and commits them on local durability.
    #[default]
    Standalone,
    /// Preps every write, its learners' too; commits on a quorum (the caller's Zab
    /// leader decides).
    Leader,
    /// Forwards writes to the leader and applies the txns it learns.
    Learner,
}

struct Inflight {
    zxid: i64,
    txn: Txn,
}

enum Queued {
    /// The session's write with this cxid; later entries wait until its txn is applied.
    Write { client: ClientRef },
    /// A refusal, answered in its turn.
    Refused { client: ClientRef, error: ErrorCode },
    Read {
        client: ClientRef,
        op: Op,
        auth: Vec<Id>,
        /// (CRAQ) the id it was given when it reached the head of the queue and
        /// waits for the chain with.
        asked: Option<u64>,
    },
    /// (CRAQ) a write behind a read that waits for the chain: sent once it reaches
    /// the head of the queue.
    Deferred {
        client: ClientRef,
        op: Op,
        auth: Vec<Id>,
    },
    /// (Learners) a `sync` sent to the leader; answered in its turn once the leader
    /// said up to which zxid (`upto`) and this server applied that far.
    Sync {
        client: ClientRef,
        op: Op,
        upto: Option<i64>,
    },
}

/// The pipeline of one shard.
pub struct ShardCore {
    db: Db,
    prep: Prep,
    inflight: VecDeque<Inflight>,
    queues: HashMap<i64, VecDeque<Queued>>,
    /// Paths whose reaper delete is in flight, with its zxid.
    reaping: Vec<(i64, String)>,
    /// The latest monotonic time seen: the start of the timer of a session whose
    /// create is applied.
    mono_ms: i64,
    /// The latest wall-clock time seen: stamps a deferred write sent later.
    wall_ms: i64,
    role: Role,
    /// Sessions whose queue head is a `Sync` the leader answered, with the zxid it
    /// waits for: re-examined as txns are applied.
    syncs_waiting: Vec<(i64, i64)>,
    /// (Learners) sessions the leader expired, as their `CloseSession` applied here:
    /// the driver closes their connections ([`ShardCore::take_expired`]).
    expired_applied: Vec<i64>,
    /// (CRAQ) reads wait for the chain's word ([`Action::ChainRead`]).
    chain_reads: bool,
    next_read_id: u64,
    /// (CRAQ) reads waiting for the chain: id → session.
    reads_asked: HashMap<u64, i64>,
}

impl ShardCore {
    /// A pipeline over `db` (fresh, or restored from a snapshot plus the WAL).
    pub fn new(db: Db, prep_config: PrepConfig) -> Self {
        let prep = Prep::new(db.last_zxid(), prep_config);
        ShardCore {
            db,
            prep,
            inflight: VecDeque::new(),
            queues: HashMap::new(),
            reaping: Vec::new(),
            mono_ms: 0,
            wall_ms: 0,
            role: Role::Standalone,
            syncs_waiting: Vec::new(),
            expired_applied: Vec::new(),
            chain_reads: false,
            next_read_id: 1,
            reads_asked: HashMap::new(),
        }
    }

    /// (CRAQ) from now on every read waits for the chain's word before it runs.
    pub fn set_chain_reads(&mut self, on: bool) {
        self.chain_reads = on;
    }

    /// (CRAQ) read `id` may run now, on the state applied at this moment.
    pub fn read_ready(&mut self, id: u64, out: &mut Vec<Action>) {
        self.chain_answer(id, None, out);
    }

    /// (CRAQ) read `id` cannot be answered here now: its client gets
    /// `ConnectionLoss`, which clients retry (on this server or another).
    pub fn read_refused(&mut self, id: u64, out: &mut Vec<Action>) {
        self.chain_answer(id, Some(ErrorCode::ConnectionLoss), out);
    }

    fn chain_answer(&mut self, id: u64, error: Option<ErrorCode>, out: &mut Vec<Action>) {
        let Some(session) = self.reads_asked.remove(&id) else {
            return; // its session closed, or the server lost its leader meanwhile
        };
        // An asked read stays at the head of its session's queue until answered; a
        // queue dropped meanwhile (the session closed) took it along.
        let Some(q) = self.queues.get_mut(&session) else {
            return;
        };
        if !matches!(q.front(), Some(Queued::Read { asked: Some(a), .. }) if *a == id) {
            return;
        }
        let Some(Queued::Read {
            client, op, auth, ..
        }) = q.pop_front()
        else {
            return;
        };
        match error {
            None => self.answer_read(client, &auth, &op, out),
            Some(e) => self.reply_now(client, Reply::Read(Err(e)), out),
        }
        self.drain_session(session, out);
    }

    /// The server's role from now on. A learner's prep is idle (the leader preps); a
    /// new leader's prep must start at its epoch's base: build a new core for that.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Becomes the leader of a new epoch whose first zxid follows `base` (the Zab
    /// leader's `make_zxid(epoch, 0)`): prep starts over there, so the zxid it gives
    /// each txn is the one the Zab leader's `next_zxid` expects (the leader owns
    /// zxids; its `propose` refuses any other). Nothing may be in flight: a new
    /// leader starts once its history is committed.
    pub fn lead_from(&mut self, base: i64) {
        debug_assert!(
            self.inflight.is_empty(),
            "a new epoch starts with nothing in flight"
        );
        debug_assert!(
            base >= self.db.last_zxid(),
            "an epoch's base is past the history"
        );
        let check = self.prep.check_sessions();
        self.prep = Prep::new(base, self.prep.config().clone());
        self.prep.set_check_sessions(check);
        self.role = Role::Leader;
    }

    /// Leader: the voters in sync with it, itself included (`Prep::set_synced_voters`).
    pub fn set_synced_voters(&mut self, voters: std::collections::BTreeSet<u64>) {
        self.prep.set_synced_voters(voters);
    }

    /// Leader: the members' versions each server carried out (`Prep::set_carried_out`).
    pub fn set_carried_out(&mut self, versions: std::collections::BTreeMap<u64, i64>) {
        self.prep.set_carried_out(versions);
    }

    /// The zxid the next prepped txn gets.
    pub fn next_zxid(&self) -> i64 {
        self.prep.next_zxid()
    }

    /// The replicated state.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Mutable access for the driver's session bookkeeping (touch, reconnect).
    pub fn db_mut(&mut self) -> &mut Db {
        &mut self.db
    }

    /// Last zxid handed out by prep (persisted or not).
    pub fn last_prepped_zxid(&self) -> i64 {
        self.prep.last_zxid()
    }

    /// Writes persisted but not applied.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether another write may be accepted now.
    pub fn has_room(&self) -> bool {
        self.inflight.len() < INFLIGHT_TXNS_MAX
    }

    /// A request from an established (or, for `CreateSession`, a new) session.
    pub fn request(
        &mut self,
        client: ClientRef,
        auth: &[Id],
        op: Op,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        self.observe(now);
        let is_create = matches!(op, Op::CreateSession { .. });
        if !is_create && !self.db.sessions.touch(client.session, now.mono_ms) {
            return self.reply_now(client, Reply::Read(Err(ErrorCode::SessionExpired)), out);
        }
        let queued = self.queues.get(&client.session).map_or(0, VecDeque::len);
        if queued >= SESSION_QUEUE_MAX || (op.is_write() && !self.has_room()) {
            return self.refuse(client, ErrorCode::ThrottledOp, queued, out);
        }
        if op.is_write() {
            debug_assert!(
                !self.queues.get(&client.session).is_some_and(|q| q
                    .iter()
                    .any(|e| matches!(e, Queued::Write { client: c } if c.xid == client.xid))),
                "a session's writes in flight have distinct cxids"
            );
            let q = self.queues.entry(client.session).or_default();
            if self.chain_reads
                && q.iter()
                    .any(|e| matches!(e, Queued::Read { .. } | Queued::Deferred { .. }))
            {
                // CRAQ: a read ahead of it waits for the chain; were the write sent now
                // it could apply first. It goes when it reaches the head of the queue.
                q.push_back(Queued::Deferred {
                    client,
                    op,
                    auth: auth.to_vec(),
                });
                return;
            }
            q.push_back(Queued::Write { client });
            self.submit_write(client, auth, op, now.wall_ms, out);
        } else if self.role == Role::Learner && matches!(op, Op::Sync { .. }) {
            out.push(Action::ForwardSync {
                session: client.session,
                cxid: client.xid,
            });
            self.queues
                .entry(client.session)
                .or_default()
                .push_back(Queued::Sync {
                    client,
                    op,
                    upto: None,
                });
        } else if queued == 0 && !self.chain_reads {
            self.answer_read(client, auth, &op, out);
        } else {
            let q = self.queues.entry(client.session).or_default();
            q.push_back(Queued::Read {
                client,
                op,
                auth: auth.to_vec(),
                asked: None,
            });
            if queued == 0 {
                self.drain_session(client.session, out);
            }
        }
    }

    /// Sends a client's write on its way: to the leader (a learner), else prepped and
    /// persisted here.
    fn submit_write(
        &mut self,
        client: ClientRef,
        auth: &[Id],
        op: Op,
        wall_ms: i64,
        out: &mut Vec<Action>,
    ) {
        if self.role == Role::Learner {
            out.push(Action::Forward {
                session: client.session,
                cxid: client.xid,
                auth: auth.to_vec(),
                op,
            });
        } else {
            let ctx = RequestCtx {
                session: client.session,
                cxid: client.xid,
                auth,
            };
            let txn = self.prep.prep(&self.db, &ctx, &op, wall_ms);
            self.persist(txn, out);
        }
    }

    /// (Leader) a write a learner forwarded: prepped and persisted like a local one;
    /// the learner answers its client when the txn commits there. Refused (and
    /// dropped: the learner's client sees its connection lost, as in ZooKeeper when a
    /// leader cannot take a request) only past [`INFLIGHT_TXNS_MAX`]; returns whether
    /// it was taken.
    pub fn request_forwarded(
        &mut self,
        session: i64,
        cxid: i32,
        auth: &[Id],
        op: &Op,
        now: Now,
        out: &mut Vec<Action>,
    ) -> bool {
        self.observe(now);
        debug_assert!(
            self.role == Role::Leader,
            "only a leader preps forwarded writes"
        );
        debug_assert!(op.is_write(), "learners answer reads themselves");
        if !self.has_room() {
            return false;
        }
        if !matches!(op, Op::CreateSession { .. }) {
            // Pings at any server keep a session alive; a forwarded write is one.
            self.db.sessions.touch(session, now.mono_ms);
        }
        let ctx = RequestCtx {
            session,
            cxid,
            auth,
        };
        let txn = self.prep.prep(&self.db, &ctx, op, now.wall_ms);
        self.persist(txn, out);
        true
    }

    /// (Learner) the leader's txn `bytes` (as they arrived: they are persisted
    /// unchanged), to apply once [`ShardCore::durable`] says it is committed. If it is
    /// one of this server's clients' writes, that client is answered then.
    pub fn learn(&mut self, bytes: AlignedVec, out: &mut Vec<Action>) -> Result<i64, String> {
        debug_assert!(self.role == Role::Learner, "leaders prep, learners learn");
        let txn = Txn::from_bytes(&bytes).map_err(|e| format!("undecodable txn: {e}"))?;
        let zxid = txn.zxid();
        let last = self.inflight.back().map_or(self.db.last_zxid(), |f| f.zxid);
        if zxid <= last {
            return Err(format!("txn {zxid:#x} is not after {last:#x}"));
        }
        out.push(Action::Persist { zxid, bytes });
        self.inflight.push_back(Inflight { zxid, txn });
        Ok(zxid)
    }

    /// (Replicated, at start) a txn the WAL holds after the recovered state: logged
    /// but not known to be committed, so it is not applied until the group commits
    /// it ([`ShardCore::durable`]) or cut by a TRUNC ([`ShardCore::truncate_after`]).
    pub fn restore_logged(&mut self, txn: Txn) {
        let zxid = txn.zxid();
        debug_assert!(
            zxid > self.logged_zxid(),
            "the WAL holds txns in zxid order, after the recovered state"
        );
        self.inflight.push_back(Inflight { zxid, txn });
    }

    /// (CRAQ) the keys txn `zxid` touches, while it is logged and not applied.
    pub fn keys_of(&self, zxid: i64) -> Option<crate::craq::Keys> {
        let i = self.inflight.binary_search_by_key(&zxid, |f| f.zxid).ok()?;
        Some(crate::craq::keys::txn_keys(&self.inflight[i].txn))
    }

    /// Txns logged or prepped here and not applied yet, oldest first.
    pub fn unapplied(&self) -> impl Iterator<Item = &Txn> {
        self.inflight.iter().map(|f| &f.txn)
    }

    /// The last txn logged here (applied or not).
    pub fn logged_zxid(&self) -> i64 {
        self.inflight.back().map_or(self.db.last_zxid(), |f| f.zxid)
    }

    /// (Replicated) the log was cut after `zxid` (a TRUNC, or a leader stepping down
    /// drops what it prepped and never logged): those txns are forgotten. Never cuts
    /// an applied txn.
    pub fn truncate_after(&mut self, zxid: i64) {
        debug_assert!(
            zxid >= self.db.last_zxid(),
            "truncation never cuts applied txns"
        );
        while self.inflight.back().is_some_and(|f| f.zxid > zxid) {
            self.inflight.pop_back();
        }
        self.reaping.retain(|(z, _)| *z <= zxid);
    }

    /// (Learner) the leader answered the `sync` `cxid` of `session`: it had committed
    /// up to `upto` when the sync reached it. The client is answered in its turn once
    /// this server applied that far.
    pub fn synced(&mut self, session: i64, cxid: i32, upto: i64, out: &mut Vec<Action>) {
        let Some(q) = self.queues.get_mut(&session) else {
            return; // the session closed meanwhile
        };
        let Some(Queued::Sync { upto: at, .. }) = q
            .iter_mut()
            .find(|e| matches!(e, Queued::Sync { client, upto: None, .. } if client.xid == cxid))
        else {
            return;
        };
        *at = Some(upto);
        self.syncs_waiting.push((upto, session));
        self.drain_session(session, out);
    }

    /// The server lost its leader or its leadership (it goes back to election):
    /// forwarded writes and syncs that did not come back, and writes proposed but not
    /// committed, have an unknown outcome. Nothing may answer them: an error reply
    /// says "not applied", which a later leader may contradict. So every queued
    /// request is forgotten without a reply, and the connections it came on are
    /// returned for the driver to close: the clients see their connections lost (an
    /// unknown outcome, as ZooKeeper's followers give when they close sockets) and
    /// nothing waits forever behind a forward the old leader will never answer.
    /// Logged txns stay: the next leader's synchronisation decides them.
    pub fn leader_lost(&mut self) -> Vec<ConnId> {
        self.syncs_waiting.clear();
        self.reads_asked.clear();
        let mut conns: Vec<ConnId> = self
            .queues
            .drain()
            .flat_map(|(_, q)| q.into_iter())
            .map(|e| match e {
                Queued::Write { client }
                | Queued::Sync { client, .. }
                | Queued::Refused { client, .. }
                | Queued::Read { client, .. }
                | Queued::Deferred { client, .. } => client.conn,
            })
            .collect();
        conns.sort_unstable_by_key(|c| (c.core, c.id));
        conns.dedup();
        conns
    }

    /// Answers `client` with `error` in its turn: at once when the session has nothing
    /// queued, else behind what it has (a queue over its limit still takes a refusal:
    /// refusals are bounded by the connection's credits, which the core cannot see).
    fn refuse(
        &mut self,
        client: ClientRef,
        error: ErrorCode,
        queued: usize,
        out: &mut Vec<Action>,
    ) {
        tracing::debug!(
            session = format_args!("0x{:x}", client.session),
            ?error,
            "request refused"
        );
        if queued == 0 {
            return self.reply_now(client, Reply::Read(Err(error)), out);
        }
        self.queues
            .entry(client.session)
            .or_default()
            .push_back(Queued::Refused { client, error });
    }

    /// The time is `now` (every input does this too; a caller whose next input is
    /// [`ShardCore::durable`] calls it first, so a session created by that call starts
    /// its timer now). The monotonic clock never goes back.
    pub fn observe(&mut self, now: Now) {
        self.mono_ms = self.mono_ms.max(now.mono_ms);
        self.wall_ms = now.wall_ms;
    }

    /// The log is durable up to `zxid`: apply what it covers, emit events and replies.
    pub fn durable(&mut self, zxid: i64, out: &mut Vec<Action>) {
        while self.inflight.front().is_some_and(|f| f.zxid <= zxid) {
            let Some(f) = self.inflight.pop_front() else {
                break;
            };
            let applied = self.db.apply(&f.txn);
            debug_assert_eq!(applied.zxid, f.zxid, "apply follows persist order");
            if let crate::txn::TxnBody::CreateSession { .. } = &f.txn.body {
                // Apply started the timer from the txn's wall-clock stamp; deadlines
                // live on the monotonic clock.
                self.db.sessions.touch(f.txn.header.session, self.mono_ms);
            }
            if self.role == Role::Learner
                && f.txn.header.cxid == INTERNAL_CXID
                && matches!(f.txn.body, crate::txn::TxnBody::CloseSession)
            {
                self.expired_applied.push(f.txn.header.session);
            }
            self.reaping.retain(|(z, _)| *z > f.zxid);
            self.prep.applied(f.zxid);
            out.extend(applied.events.into_iter().map(Action::Event));
            if let Some(client) = self.waiting_client(&f) {
                let reply = Reply::Write(applied.result);
                out.push(Action::Reply {
                    to: client,
                    zxid: f.zxid,
                    reply,
                });
                self.release_session(client.session, out);
            }
            // A sync answered by the leader may wait for exactly this txn; it goes
            // before any later write of its session (whose txn comes later).
            self.release_syncs(out);
        }
    }

    /// Drains the sessions whose answered `sync` waited for a zxid now applied.
    fn release_syncs(&mut self, out: &mut Vec<Action>) {
        let applied = self.db.last_zxid();
        if self.syncs_waiting.iter().all(|(z, _)| *z > applied) {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.syncs_waiting)
            .into_iter()
            .partition(|(z, _)| *z <= applied);
        self.syncs_waiting = waiting;
        for (_, session) in ready {
            self.drain_session(session, out);
        }
    }

    /// The client of this server whose write `txn` is: the head of its session's queue
    /// with the txn's cxid. Internal txns ([`INTERNAL_CXID`]: expiry, reaping) and learners'
    /// writes (on a leader) have none; on a learner, a txn of another server's client
    /// has none either.
    fn waiting_client(&self, f: &Inflight) -> Option<ClientRef> {
        let (session, cxid) = (f.txn.header.session, f.txn.header.cxid);
        if cxid == INTERNAL_CXID {
            return None;
        }
        let q = self.queues.get(&session)?;
        debug_assert!(
            !q.iter()
                .skip(1)
                .any(|e| matches!(e, Queued::Write { client } if client.xid == cxid)),
            "a session's txns commit in its request order, behind its syncs"
        );
        match q.front()? {
            Queued::Write { client } if client.xid == cxid => Some(*client),
            _ => None,
        }
    }

    /// (Learners) the sessions the leader expired since the last call, in the order
    /// their `CloseSession` applied here (the leader's own come from
    /// [`ShardCore::tick`]).
    pub fn take_expired(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.expired_applied)
    }

    /// Expires sessions whose deadline passed on the monotonic clock: each gets a
    /// `CloseSession` txn that removes its ephemerals once durable. Returns them.
    pub fn tick(&mut self, now: Now, out: &mut Vec<Action>) -> Vec<i64> {
        self.observe(now);
        if self.role == Role::Learner {
            return Vec::new(); // the leader expires sessions
        }
        let expired = self.db.sessions.expired(now.mono_ms);
        for &session in &expired {
            tracing::info!(session = format_args!("0x{session:x}"), "session expired");
            let ctx = RequestCtx {
                session,
                cxid: INTERNAL_CXID,
                auth: &[],
            };
            let txn = self
                .prep
                .prep(&self.db, &ctx, &Op::CloseSession, now.wall_ms);
            self.persist(txn, out);
        }
        expired
    }

    /// Deletes empty containers and expired TTL nodes (ZooKeeper's ContainerManager).
    /// Runs whatever is in flight: prep validates each delete against the in-flight
    /// changes, and a path whose delete is already in flight is skipped.
    pub fn reap(&mut self, now: Now, out: &mut Vec<Action>) {
        self.observe(now);
        if self.role == Role::Learner {
            return; // the leader reaps
        }
        let mut paths = self.db.tree.empty_containers();
        paths.extend(self.db.tree.expired_ttls(now.wall_ms));
        for path in paths {
            if self.reaping.iter().any(|(_, p)| *p == path) {
                continue;
            }
            let ctx = RequestCtx {
                session: 0,
                cxid: INTERNAL_CXID,
                auth: &[],
            };
            let op = Op::DeleteContainer { path: path.clone() };
            let txn = self.prep.prep(&self.db, &ctx, &op, now.wall_ms);
            let zxid = self.persist(txn, out);
            self.reaping.push((zxid, path));
        }
        debug_assert!(
            self.reaping.len() <= self.inflight.len(),
            "a reaping path is forgotten once its delete is applied"
        );
    }

    fn persist(&mut self, txn: Txn, out: &mut Vec<Action>) -> i64 {
        let zxid = txn.zxid();
        debug_assert!(
            self.inflight.back().is_none_or(|b| b.zxid < zxid),
            "zxids increase"
        );
        out.push(Action::Persist {
            zxid,
            bytes: txn.to_bytes(),
        });
        self.inflight.push_back(Inflight { zxid, txn });
        zxid
    }

    fn answer_read(&mut self, client: ClientRef, auth: &[Id], op: &Op, out: &mut Vec<Action>) {
        let mut result = read(&mut self.db.tree, client.session, auth, op);
        if let Ok(ReadResult::SetWatches { events }) = &mut result {
            out.extend(std::mem::take(events).into_iter().map(Action::Event));
        }
        self.reply_now(client, Reply::Read(result), out);
    }

    fn reply_now(&self, client: ClientRef, reply: Reply, out: &mut Vec<Action>) {
        out.push(Action::Reply {
            to: client,
            zxid: self.db.last_zxid(),
            reply,
        });
    }

    /// The session's oldest write was answered: answer what is queued behind it, up
    /// to its next write (or a sync still waiting).
    fn release_session(&mut self, session: i64, out: &mut Vec<Action>) {
        let head = self.queues.get_mut(&session).and_then(VecDeque::pop_front);
        debug_assert!(
            matches!(head, Some(Queued::Write { .. })),
            "a client write is queued, and writes answer in order"
        );
        self.drain_session(session, out);
    }

    /// Answers the session's queued entries from the head while they can be answered:
    /// reads, refusals, and syncs whose zxid is applied; stops at a write or a sync
    /// still waiting.
    fn drain_session(&mut self, session: i64, out: &mut Vec<Action>) {
        let Some(mut q) = self.queues.remove(&session) else {
            return;
        };
        let applied = self.db.last_zxid();
        loop {
            match q.front_mut() {
                Some(Queued::Read { asked: Some(_), .. }) => break,
                Some(Queued::Read { op, asked, .. }) if self.chain_reads => {
                    let id = self.next_read_id;
                    self.next_read_id += 1;
                    *asked = Some(id);
                    let keys = crate::craq::keys::read_keys(op);
                    self.reads_asked.insert(id, session);
                    out.push(Action::ChainRead { id, keys });
                    break;
                }
                Some(Queued::Read { .. }) => {
                    let Some(Queued::Read {
                        client, op, auth, ..
                    }) = q.pop_front()
                    else {
                        break;
                    };
                    self.answer_read(client, &auth, &op, out);
                }
                Some(Queued::Deferred { .. }) => {
                    let Some(Queued::Deferred { client, op, auth }) = q.pop_front() else {
                        break;
                    };
                    if self.role != Role::Learner && !self.has_room() {
                        self.reply_now(client, Reply::Read(Err(ErrorCode::ThrottledOp)), out);
                        continue;
                    }
                    q.push_front(Queued::Write { client });
                    self.submit_write(client, &auth, op, self.wall_ms, out);
                    break;
                }
                Some(Queued::Refused { client, error }) => {
                    let (client, error) = (*client, *error);
                    q.pop_front();
                    self.reply_now(client, Reply::Read(Err(error)), out);
                }
                Some(Queued::Sync { upto: Some(z), .. }) if *z <= applied => {
                    let Some(Queued::Sync { client, op, .. }) = q.pop_front() else {
                        break;
                    };
                    self.answer_read(client, &[], &op, out);
                }
                Some(Queued::Sync { .. } | Queued::Write { .. }) | None => break,
            }
        }
        if !q.is_empty() {
            self.queues.insert(session, q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::SESSION_PASSWORD_LEN;
    use crate::session::SessionConfig;
    use crate::txn::OpResult;
    use transport::jute::{Acl, CreateMode, EventType};

    const CONN: ConnId = ConnId { core: 0, id: 1 };

    fn core() -> ShardCore {
        ShardCore::new(
            Db::new(SessionConfig::from_tick(2000)),
            PrepConfig::default(),
        )
    }

    fn client(session: i64, xid: i32) -> ClientRef {
        ClientRef {
            conn: CONN,
            session,
            xid,
        }
    }

    /// `session`'s request `xid`: `op` at time `now`.
    fn send(c: &mut ShardCore, session: i64, xid: i32, op: Op, now: i64, out: &mut Vec<Action>) {
        c.request(client(session, xid), &[], op, Now::at(now), out);
    }

    fn persisted(out: &[Action]) -> Vec<i64> {
        out.iter()
            .filter_map(|a| {
                if let Action::Persist { zxid, .. } = a {
                    Some(*zxid)
                } else {
                    None
                }
            })
            .collect()
    }

    fn replies(out: &[Action]) -> Vec<(i32, ErrorCode)> {
        out.iter()
            .filter_map(|a| {
                if let Action::Reply { to, reply, .. } = a {
                    Some((to.xid, reply.error()))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Opens session `id` and makes it durable.
    fn open(c: &mut ShardCore, id: i64) {
        let mut out = Vec::new();
        let op = Op::CreateSession {
            session_id: id,
            timeout_ms: 10_000,
            password: [7; SESSION_PASSWORD_LEN],
        };
        c.request(client(id, 0), &[], op, Now::at(0), &mut out);
        let z = persisted(&out)[0];
        out.clear();
        c.durable(z, &mut out);
        assert_eq!(replies(&out), vec![(0, ErrorCode::Ok)]);
    }

    fn create(path: &str, mode: CreateMode) -> Op {
        Op::Create {
            path: path.into(),
            data: Some(b"v".to_vec()),
            acl: Acl::open_unsafe(),
            mode,
            ttl_ms: None,
            container: false,
        }
    }

    fn chain_reads(out: &[Action]) -> Vec<u64> {
        out.iter()
            .filter_map(|a| match a {
                Action::ChainRead { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn craq_reads_wait_for_the_chain_in_session_order() {
        let mut c = core();
        c.set_chain_reads(true);
        open(&mut c, 1);
        let mut out = Vec::new();
        let get = |p: &str| Op::GetData {
            path: p.into(),
            watch: false,
        };
        // A read behind the session's own write asks the chain only once the write
        // is applied (it must see it).
        send(
            &mut c,
            1,
            1,
            create("/a", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(&mut c, 1, 2, get("/a"), 1, &mut out);
        send(&mut c, 1, 3, get("/nope"), 1, &mut out);
        assert!(chain_reads(&out).is_empty());
        let z = persisted(&out)[0];
        out.clear();
        c.durable(z, &mut out);
        assert_eq!(replies(&out), vec![(1, ErrorCode::Ok)]);
        let asked = chain_reads(&out);
        assert_eq!(asked.len(), 1, "one read of a session asks at a time");
        out.clear();
        c.read_ready(asked[0], &mut out);
        assert_eq!(replies(&out), vec![(2, ErrorCode::Ok)]);
        let next = chain_reads(&out);
        assert_eq!(next.len(), 1);
        out.clear();
        // Stale or repeated answers do nothing.
        c.read_ready(asked[0], &mut out);
        assert!(out.is_empty());
        c.read_refused(next[0], &mut out);
        assert_eq!(replies(&out), vec![(3, ErrorCode::ConnectionLoss)]);
        out.clear();
        // A write behind a read that waits for the chain waits too: were it persisted
        // now, it could apply (and answer) before the read.
        send(&mut c, 1, 6, get("/a"), 2, &mut out);
        let waiting = chain_reads(&out);
        send(
            &mut c,
            1,
            7,
            create("/b", CreateMode::Persistent),
            2,
            &mut out,
        );
        assert!(
            persisted(&out).is_empty(),
            "the write waits behind the read"
        );
        out.clear();
        c.read_ready(waiting[0], &mut out);
        assert_eq!(replies(&out), vec![(6, ErrorCode::Ok)]);
        let z = persisted(&out);
        assert_eq!(z.len(), 1, "then it goes");
        out.clear();
        c.durable(z[0], &mut out);
        assert_eq!(replies(&out), vec![(7, ErrorCode::Ok)]);
        out.clear();
        // A read with nothing queued asks at once; without chain reads it is answered.
        send(&mut c, 1, 4, get("/a"), 2, &mut out);
        assert_eq!(chain_reads(&out).len(), 1);
        assert!(replies(&out).is_empty());
        c.set_chain_reads(false);
        out.clear();
        let mut d = core();
        open(&mut d, 1);
        send(&mut d, 1, 5, get("/a"), 2, &mut out);
        assert_eq!(replies(&out), vec![(5, ErrorCode::NoNode)]);
    }

    #[test]
    fn nothing_is_answered_before_it_is_durable() {
        let mut c = core();
        open(&mut c, 1);
        let mut out = Vec::new();
        send(
            &mut c,
            1,
            1,
            create("/a", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(
            &mut c,
            1,
            2,
            create("/a/b", CreateMode::Persistent),
            1,
            &mut out,
        );
        let zs = persisted(&out);
        assert_eq!(zs.len(), 2, "pipelined writes are both persisted");
        assert!(replies(&out).is_empty(), "no reply before durable");
        out.clear();
        c.durable(zs[0], &mut out);
        assert_eq!(replies(&out), vec![(1, ErrorCode::Ok)]);
        out.clear();
        c.durable(zs[1], &mut out);
        assert_eq!(replies(&out), vec![(2, ErrorCode::Ok)]);
        assert_eq!(c.inflight(), 0);
    }

    #[test]
    fn reads_wait_behind_the_sessions_own_writes_only() {
        let mut c = core();
        open(&mut c, 1);
        open(&mut c, 2);
        let mut out = Vec::new();
        send(
            &mut c,
            1,
            1,
            create("/x", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(
            &mut c,
            1,
            2,
            Op::Exists {
                path: "/x".into(),
                watch: false,
            },
            1,
            &mut out,
        );
        send(
            &mut c,
            2,
            1,
            Op::Exists {
                path: "/x".into(),
                watch: false,
            },
            1,
            &mut out,
        );
        // Session 2 has nothing in flight: answered at once, before /x exists.
        assert_eq!(replies(&out), vec![(1, ErrorCode::NoNode)]);
        let z = persisted(&out)[0];
        out.clear();
        c.durable(z, &mut out);
        // Session 1's read follows its write and sees it.
        assert_eq!(replies(&out), vec![(1, ErrorCode::Ok), (2, ErrorCode::Ok)]);
    }

    #[test]
    fn events_precede_the_reply_that_caused_them() {
        let mut c = core();
        open(&mut c, 1);
        open(&mut c, 2);
        let mut out = Vec::new();
        send(
            &mut c,
            2,
            1,
            Op::Exists {
                path: "/w".into(),
                watch: true,
            },
            1,
            &mut out,
        );
        out.clear();
        send(
            &mut c,
            1,
            1,
            create("/w", CreateMode::Persistent),
            1,
            &mut out,
        );
        let z = persisted(&out)[0];
        out.clear();
        c.durable(z, &mut out);
        assert!(
            matches!(&out[0], Action::Event(e) if e.session == 2 && e.kind == EventType::NodeCreated && e.path == "/w")
        );
        assert!(matches!(&out[1], Action::Reply { to, .. } if to.session == 1));
    }

    #[test]
    fn expiry_removes_ephemerals_once_durable() {
        let mut c = core();
        open(&mut c, 1);
        let mut out = Vec::new();
        send(
            &mut c,
            1,
            1,
            create("/e", CreateMode::Ephemeral),
            1,
            &mut out,
        );
        c.durable(persisted(&out)[0], &mut out);
        out.clear();
        c.tick(Now::at(60_000), &mut out);
        let zs = persisted(&out);
        assert_eq!(zs.len(), 1, "one CloseSession for the expired session");
        assert!(
            c.db().tree.get("/e").is_some(),
            "not applied before durable"
        );
        c.durable(zs[0], &mut out);
        assert!(c.db().tree.get("/e").is_none());
        out.clear();
        send(
            &mut c,
            1,
            2,
            Op::Exists {
                path: "/".into(),
                watch: false,
            },
            60_001,
            &mut out,
        );
        assert_eq!(replies(&out), vec![(2, ErrorCode::SessionExpired)]);
    }

    #[test]
    fn failed_writes_are_answered_in_order_too() {
        let mut c = core();
        open(&mut c, 1);
        let mut out = Vec::new();
        send(
            &mut c,
            1,
            1,
            create("/d", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(
            &mut c,
            1,
            2,
            create("/d", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(
            &mut c,
            1,
            3,
            Op::Delete {
                path: "/nope".into(),
                version: -1,
            },
            1,
            &mut out,
        );
        let last = *persisted(&out).last().unwrap();
        out.clear();
        c.durable(last, &mut out);
        assert_eq!(
            replies(&out),
            vec![
                (1, ErrorCode::Ok),
                (2, ErrorCode::NodeExists),
                (3, ErrorCode::NoNode)
            ]
        );
        let created = out.iter().any(|a| matches!(a, Action::Reply { reply: Reply::Write(TxnResult::Op(OpResult::Create { path, .. })), .. } if path == "/d"));
        assert!(created);
    }

    #[test]
    fn a_refusal_waits_behind_the_sessions_earlier_write() {
        let mut c = core();
        // Other sessions fill the in-flight limit (each within its own queue limit).
        let others = INFLIGHT_TXNS_MAX / SESSION_QUEUE_MAX + 1;
        for s in 1..=others as i64 + 1 {
            open(&mut c, s);
        }
        let mut out = Vec::new();
        send(
            &mut c,
            1,
            1,
            create("/a", CreateMode::Persistent),
            1,
            &mut out,
        );
        let mut x = 0;
        while c.has_room() {
            x += 1;
            assert!(x <= INFLIGHT_TXNS_MAX as i32, "the limit is reached");
            let op = Op::SetData {
                path: "/".into(),
                data: None,
                version: -1,
            };
            let session = 2 + (x as usize % others) as i64;
            send(&mut c, session, x, op, 1, &mut out);
        }
        out.clear();
        // Session 1's next write is refused, but only after its first write's answer.
        send(
            &mut c,
            1,
            2,
            create("/b", CreateMode::Persistent),
            1,
            &mut out,
        );
        assert!(
            replies(&out).is_empty(),
            "the refusal queues behind write 1"
        );
        let last = c.last_prepped_zxid();
        c.durable(last, &mut out);
        let mine: Vec<_> = out
            .iter()
            .filter_map(|a| match a {
                Action::Reply { to, reply, .. } if to.session == 1 => Some((to.xid, reply.error())),
                _ => None,
            })
            .collect();
        assert_eq!(mine, vec![(1, ErrorCode::Ok), (2, ErrorCode::ThrottledOp)]);
    }

    #[test]
    fn wall_clock_steps_neither_expire_nor_keep_sessions() {
        let mut c = core();
        open(&mut c, 1); // 10 s timeout, created at mono 0
        let mut out = Vec::new();
        // NTP steps the wall clock an hour forward; 1 s passes on the monotonic one.
        let ahead = Now {
            wall_ms: 3_600_000,
            mono_ms: 1_000,
        };
        assert!(c.tick(ahead, &mut out).is_empty(), "not expired by a step");
        // Then an hour back; 30 s pass with no word from the client.
        let behind = Now {
            wall_ms: -3_600_000,
            mono_ms: 31_000,
        };
        assert_eq!(c.tick(behind, &mut out), vec![1], "expired on time");
    }

    #[test]
    fn a_session_timer_starts_on_the_monotonic_clock() {
        let mut c = core();
        let mut out = Vec::new();
        let op = Op::CreateSession {
            session_id: 9,
            timeout_ms: 10_000,
            password: [7; SESSION_PASSWORD_LEN],
        };
        // The wall clock is far ahead of the monotonic one when the session is made.
        let now = Now {
            wall_ms: 1_700_000_000_000,
            mono_ms: 5_000,
        };
        c.request(client(9, 0), &[], op, now, &mut out);
        c.durable(persisted(&out)[0], &mut out);
        let later = Now {
            wall_ms: 1_700_000_000_000,
            mono_ms: 10_000,
        };
        assert!(c.tick(later, &mut out).is_empty());
        let expired = Now {
            wall_ms: 1_700_000_000_000,
            mono_ms: 20_000,
        };
        assert_eq!(c.tick(expired, &mut out), vec![9]);
    }

    #[test]
    fn the_reaper_runs_under_writes_and_reaps_each_path_once() {
        let mut c = core();
        open(&mut c, 1);
        let mut out = Vec::new();
        send(
            &mut c,
            1,
            1,
            create("/c", CreateMode::Container),
            1,
            &mut out,
        );
        send(
            &mut c,
            1,
            2,
            create("/c/x", CreateMode::Persistent),
            1,
            &mut out,
        );
        c.durable(c.last_prepped_zxid(), &mut out);
        send(
            &mut c,
            1,
            3,
            Op::Delete {
                path: "/c/x".into(),
                version: -1,
            },
            1,
            &mut out,
        );
        c.durable(c.last_prepped_zxid(), &mut out);
        // A write is in flight; the empty container is reaped all the same, once.
        send(
            &mut c,
            1,
            4,
            create("/w", CreateMode::Persistent),
            1,
            &mut out,
        );
        out.clear();
        c.reap(Now::at(2), &mut out);
        c.reap(Now::at(3), &mut out);
        assert_eq!(persisted(&out).len(), 1, "one delete for /c");
        c.durable(c.last_prepped_zxid(), &mut out);
        assert!(c.db().tree.get("/c").is_none());
        assert!(c.db().tree.get("/w").is_some());
    }

    /// A leader and a learner core over the same history, wired as Zab would: the
    /// learner forwards, the leader preps, the learner learns the leader's bytes, and
    /// both apply on commit.
    struct Pair {
        leader: ShardCore,
        learner: ShardCore,
    }

    impl Pair {
        fn new() -> Self {
            let mut leader = core();
            leader.set_role(Role::Leader);
            let mut learner = core();
            learner.set_role(Role::Learner);
            Pair { leader, learner }
        }

        /// Carries the learner's forwards to the leader and the leader's txns back;
        /// returns the learner's other actions and the zxids proposed.
        fn exchange(&mut self, out: Vec<Action>) -> (Vec<Action>, Vec<i64>) {
            let (mut rest, mut proposed) = (Vec::new(), Vec::new());
            for a in out {
                let Action::Forward {
                    session,
                    cxid,
                    auth,
                    op,
                } = a
                else {
                    rest.push(a);
                    continue;
                };
                let mut lout = Vec::new();
                assert!(self.leader.request_forwarded(
                    session,
                    cxid,
                    &auth,
                    &op,
                    Now::at(1),
                    &mut lout
                ));
                for la in lout {
                    if let Action::Persist { bytes, .. } = la {
                        let z = self.learner.learn(bytes, &mut rest).unwrap();
                        proposed.push(z);
                    }
                }
            }
            (rest, proposed)
        }

        /// Opens session `id` through the learner (forwarded, committed everywhere).
        fn open_on_learner(&mut self, id: i64) {
            let mut out = Vec::new();
            let op = Op::CreateSession {
                session_id: id,
                timeout_ms: 10_000,
                password: [7; SESSION_PASSWORD_LEN],
            };
            self.learner
                .request(client(id, 0), &[], op, Now::at(0), &mut out);
            let (_, zs) = self.exchange(out);
            self.commit(zs[0]);
        }

        /// The group committed up to `zxid`: both apply; the learner's actions.
        fn commit(&mut self, zxid: i64) -> Vec<Action> {
            let (mut lout, mut out) = (Vec::new(), Vec::new());
            self.leader.durable(zxid, &mut lout);
            assert!(
                replies(&lout).is_empty(),
                "the leader has no client of these"
            );
            self.learner.durable(zxid, &mut out);
            out
        }
    }

    #[test]
    fn a_learner_answers_its_forwarded_writes_when_the_leaders_txns_commit() {
        let mut p = Pair::new();
        let mut out = Vec::new();
        let op = Op::CreateSession {
            session_id: 7,
            timeout_ms: 10_000,
            password: [7; SESSION_PASSWORD_LEN],
        };
        p.learner
            .request(client(7, 0), &[], op, Now::at(0), &mut out);
        let (rest, zs) = p.exchange(std::mem::take(&mut out));
        assert_eq!(persisted(&rest), zs, "the learner persists what it learns");
        assert!(replies(&rest).is_empty());
        assert_eq!(replies(&p.commit(zs[0])), vec![(0, ErrorCode::Ok)]);
        // Two pipelined writes and a read behind them, from one session.
        send(
            &mut p.learner,
            7,
            1,
            create("/a", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(
            &mut p.learner,
            7,
            2,
            create("/a", CreateMode::Persistent),
            1,
            &mut out,
        );
        send(
            &mut p.learner,
            7,
            3,
            Op::Exists {
                path: "/a".into(),
                watch: false,
            },
            1,
            &mut out,
        );
        assert!(
            replies(&out).is_empty(),
            "the read waits behind the session's writes"
        );
        let (_, zs) = p.exchange(std::mem::take(&mut out));
        assert_eq!(zs.len(), 2);
        assert_eq!(replies(&p.commit(zs[0])), vec![(1, ErrorCode::Ok)]);
        let out = p.commit(zs[1]);
        assert_eq!(
            replies(&out),
            vec![(2, ErrorCode::NodeExists), (3, ErrorCode::Ok)],
            "answers in request order, the read sees the session's own writes"
        );
        assert_eq!(p.leader.db().last_zxid(), p.learner.db().last_zxid());
    }

    #[test]
    fn a_learned_txn_of_another_servers_client_answers_nobody_here() {
        let mut p = Pair::new();
        // Learns the leader's own persists, in order, as a learner would.
        fn learn_all(learner: &mut ShardCore, leader_out: Vec<Action>) -> Vec<i64> {
            let mut zs = Vec::new();
            for a in leader_out {
                if let Action::Persist { bytes, .. } = a {
                    zs.push(learner.learn(bytes, &mut Vec::new()).unwrap());
                }
            }
            zs
        }
        let create_session = |id| Op::CreateSession {
            session_id: id,
            timeout_ms: 10_000,
            password: [7; SESSION_PASSWORD_LEN],
        };
        // Session 9 is the leader's client, session 7 the learner's.
        let mut lout = Vec::new();
        p.leader
            .request(client(9, 0), &[], create_session(9), Now::at(0), &mut lout);
        learn_all(&mut p.learner, lout);
        let mut out = Vec::new();
        p.learner
            .request(client(7, 0), &[], create_session(7), Now::at(0), &mut out);
        let (_, zs) = p.exchange(out);
        let mut applied = Vec::new();
        p.learner.durable(zs[0], &mut applied);
        assert_eq!(
            replies(&applied),
            vec![(0, ErrorCode::Ok)],
            "session 7's only"
        );
        let mut lout = Vec::new();
        p.leader.durable(zs[0], &mut lout);
        assert_eq!(replies(&lout), vec![(0, ErrorCode::Ok)], "session 9's only");
        // Both write with cxid 5.
        let mut lout = Vec::new();
        send(
            &mut p.leader,
            9,
            5,
            create("/x", CreateMode::Persistent),
            1,
            &mut lout,
        );
        let z9 = learn_all(&mut p.learner, lout)[0];
        let mut out = Vec::new();
        send(
            &mut p.learner,
            7,
            5,
            create("/y", CreateMode::Persistent),
            1,
            &mut out,
        );
        let (_, zs) = p.exchange(out);
        let mut applied = Vec::new();
        p.learner.durable(z9, &mut applied);
        assert!(
            replies(&applied).is_empty(),
            "session 9's write is not answered here"
        );
        p.learner.durable(zs[0], &mut applied);
        assert_eq!(replies(&applied), vec![(5, ErrorCode::Ok)]);
        assert!(p.learner.db().tree.get("/x").is_some());
    }

    #[test]
    fn a_learner_refuses_a_txn_out_of_order() {
        let mut p = Pair::new();
        let mut lout = Vec::new();
        for id in [1, 2] {
            let op = Op::CreateSession {
                session_id: id,
                timeout_ms: 10_000,
                password: [7; SESSION_PASSWORD_LEN],
            };
            p.leader
                .request(client(id, 0), &[], op, Now::at(0), &mut lout);
        }
        let bytes: Vec<AlignedVec> = lout
            .into_iter()
            .filter_map(|a| match a {
                Action::Persist { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        p.learner.learn(bytes[1].clone(), &mut out).unwrap();
        let e = p.learner.learn(bytes[0].clone(), &mut out).unwrap_err();
        assert!(e.contains("is not after"), "{e}");
        let e = p.learner.learn(AlignedVec::new(), &mut out).unwrap_err();
        assert!(e.contains("undecodable"), "{e}");
    }

    #[test]
    fn a_leaders_prep_gives_the_zab_leaders_zxids_across_epochs() {
        use crate::zab::{
            Action as ZabAction, Leader, LeaderConfig, Member, Role as ZabRole, epoch_of, make_zxid,
        };
        use std::sync::Arc;
        let mut history = 0;
        for epoch in [1, 2] {
            let members = vec![Member {
                id: 1,
                role: ZabRole::Participant,
            }];
            let cfg = LeaderConfig::new(1, epoch, members);
            let mut zab = Leader::new(cfg, history, history, Vec::new()).unwrap();
            let mut zout = Vec::new();
            zab.start(&mut zout);
            let mut c = core();
            // Replays the history so far (a fresh core per epoch stands for the
            // restarted leader; the db only matters for prep's checks).
            c.lead_from(make_zxid(epoch, 0));
            for i in 0..3 {
                let mut out = Vec::new();
                let op = Op::CreateSession {
                    session_id: i64::from(epoch) * 10 + i,
                    timeout_ms: 10_000,
                    password: [7; SESSION_PASSWORD_LEN],
                };
                let expected = zab.next_zxid().unwrap();
                assert_eq!(c.next_zxid(), expected);
                c.request(
                    client(i64::from(epoch) * 10 + i, 0),
                    &[],
                    op,
                    Now::at(0),
                    &mut out,
                );
                let Some(Action::Persist { zxid, bytes }) = out.into_iter().next() else {
                    panic!("a write is persisted");
                };
                assert_eq!((zxid, epoch_of(zxid)), (expected, epoch));
                zab.propose(zxid, Arc::from(bytes.as_slice()), &mut zout)
                    .unwrap();
                history = zxid;
            }
            assert!(zout.iter().any(|a| matches!(a, ZabAction::Persist { .. })));
        }
    }

    #[test]
    fn a_learners_sync_waits_for_what_the_leader_had_committed() {
        let mut p = Pair::new();
        let create_session = |id| Op::CreateSession {
            session_id: id,
            timeout_ms: 10_000,
            password: [7; SESSION_PASSWORD_LEN],
        };
        // Session 7 on the learner, 9 on the leader.
        let mut out = Vec::new();
        p.learner
            .request(client(7, 0), &[], create_session(7), Now::at(0), &mut out);
        let (_, zs) = p.exchange(out);
        p.commit(zs[0]);
        let mut lout = Vec::new();
        p.leader
            .request(client(9, 0), &[], create_session(9), Now::at(0), &mut lout);
        let z9 = p.leader.last_prepped_zxid();
        p.leader.durable(z9, &mut Vec::new());
        for a in lout.drain(..) {
            if let Action::Persist { bytes, .. } = a {
                p.learner.learn(bytes, &mut Vec::new()).unwrap();
            }
        }
        p.learner.durable(z9, &mut Vec::new());
        send(
            &mut p.leader,
            9,
            1,
            create("/fresh", CreateMode::Persistent),
            1,
            &mut lout,
        );
        let z = p.leader.last_prepped_zxid();
        p.leader.durable(z, &mut Vec::new());
        // The learner got the txns but has not applied them (their commit is late).
        for a in lout {
            if let Action::Persist { bytes, .. } = a {
                p.learner.learn(bytes, &mut Vec::new()).unwrap();
            }
        }
        // 7: sync, then a read and a write behind it.
        let mut out = Vec::new();
        let sync = Op::Sync { path: "/".into() };
        send(&mut p.learner, 7, 5, sync, 1, &mut out);
        let get = Op::GetData {
            path: "/fresh".into(),
            watch: false,
        };
        send(&mut p.learner, 7, 6, get, 1, &mut out);
        send(
            &mut p.learner,
            7,
            7,
            create("/after", CreateMode::Persistent),
            1,
            &mut out,
        );
        assert!(matches!(
            out[0],
            Action::ForwardSync {
                session: 7,
                cxid: 5
            }
        ));
        assert!(
            replies(&out).is_empty(),
            "a learner's sync waits for the leader"
        );
        let forwards: Vec<Action> = out.drain(1..).collect();
        // The leader answers the sync with what it had committed: z.
        p.learner.synced(7, 5, z, &mut out);
        assert!(replies(&out).is_empty(), "not applied that far yet");
        // The late commits arrive; then the write forwarded after the sync.
        p.learner.durable(z, &mut out);
        assert_eq!(
            replies(&out),
            [(5, ErrorCode::Ok), (6, ErrorCode::Ok)],
            "the sync, then a read that sees the leader's write"
        );
        let read = out.iter().find_map(|a| match a {
            Action::Reply {
                to,
                reply: Reply::Read(Ok(r)),
                ..
            } if to.xid == 6 => Some(r.clone()),
            _ => None,
        });
        assert!(matches!(read, Some(ReadResult::GetData { .. })), "{read:?}");
        let (_, zs) = p.exchange(forwards);
        assert_eq!(replies(&p.commit(zs[0])), [(7, ErrorCode::Ok)]);
    }

    /// A learner's tick preps nothing: the leader expires sessions and owns zxids.
    #[test]
    fn a_learners_tick_preps_nothing() {
        let mut p = Pair::new();
        p.open_on_learner(7);
        let mut out = Vec::new();
        let expired = p.learner.tick(Now::at(1_000_000), &mut out);
        assert_eq!(
            (expired, persisted(&out)),
            (vec![], vec![]),
            "a learner preps no expiry txn of its own"
        );
    }

    /// A forwarded write that never comes back (the leader changed) does not stay at
    /// the head of its session's queue once the learner says the leader is lost.
    #[test]
    fn a_lost_forward_does_not_wedge_the_session() {
        let mut p = Pair::new();
        p.open_on_learner(7);
        // Write 1 is forwarded but lost on the way (dropped, not exchanged): the link
        // to the leader broke, and the learner says so.
        let mut lost = Vec::new();
        send(
            &mut p.learner,
            7,
            1,
            create("/a", CreateMode::Persistent),
            1,
            &mut lost,
        );
        assert!(matches!(lost[..], [Action::Forward { .. }]));
        let lost_conns = p.learner.leader_lost();
        assert_eq!(
            lost_conns.len(),
            1,
            "its connection closes: the outcome is unknown, never an error reply"
        );
        // The client reconnects (new connection, same session) and writes again.
        let conn2 = ClientRef {
            conn: ConnId { core: 0, id: 2 },
            session: 7,
            xid: 2,
        };
        let mut out = Vec::new();
        p.learner.request(
            conn2,
            &[],
            create("/b", CreateMode::Persistent),
            Now::at(2),
            &mut out,
        );
        let (_, zs) = p.exchange(std::mem::take(&mut out));
        let out = p.commit(zs[0]);
        assert!(
            p.learner.db().tree.get("/b").is_some(),
            "write 2 is applied"
        );
        assert_eq!(
            replies(&out),
            vec![(2, ErrorCode::Ok)],
            "write 2 is answered"
        );
    }

    #[test]
    fn a_learned_expiry_never_answers_a_client_write_with_the_same_session() {
        let mut p = Pair::new();
        p.open_on_learner(7);
        // Session 7 writes with xid 0 (a client whose xids wrapped) and the write's
        // forward is in flight when the leader expires the session.
        let mut out = Vec::new();
        send(
            &mut p.learner,
            7,
            0,
            create("/a", CreateMode::Persistent),
            1,
            &mut out,
        );
        let mut lout = Vec::new();
        let expired = p.leader.tick(Now::at(1_000_000), &mut lout);
        assert_eq!(expired, [7]);
        let mut applied = Vec::new();
        for a in lout {
            if let Action::Persist { zxid, bytes } = a {
                p.learner.learn(bytes, &mut Vec::new()).unwrap();
                p.learner.durable(zxid, &mut applied);
            }
        }
        assert!(
            replies(&applied).is_empty(),
            "the expiry is not the answer to the client's write: {applied:?}"
        );
    }
}
