//! The shard driver: the IO around one [`ShardCore`], on the shard's core.
//!
//! It owns the WAL and the snapshot store, turns the core's actions into appends and
//! socket-bound messages, and feeds back what the disk and the clock say:
//! - `Persist` → [`Wal::append`] (a copy into the memory map; never waits for disk);
//! - group commit: while one flush runs on glommio's blocking pool, appends keep
//!   coming; when it returns, one [`ShardCore::durable`] releases every reply it
//!   covers, and the next flush takes everything appended meanwhile (ZooKeeper's
//!   SyncRequestProcessor, without its fixed batch timer: the flush itself is the
//!   batching window). With `sync=always` each txn is appended and flushed on its
//!   own, still on the blocking pool: the shard's core never waits on the disk;
//! - replies and events are grouped per destination core and sent once per batch;
//! - sessions move between connections here: a request that arrives on a connection
//!   its session has left is answered `SessionMoved` (ZooKeeper's answer), never run;
//! - purging (old snapshots and WAL segments) runs only with
//!   `autopurge.purgeInterval` > 0, as in ZooKeeper: once at start and then every
//!   interval, the deletions and directory fsyncs on the blocking pool;
//! - time: wall clock for txn stamps, monotonic for deadlines ([`super::clock`]).
//!
//! A failed flush is fatal: the WAL cannot promise durability any more, so the driver
//! stops and the server exits rather than acknowledge what may be lost.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rkyv::util::AlignedVec;
use wal::snapshot::SnapshotStore;
use wal::{Syncer, Wal, WalOptions};

use super::mailbox::Mailbox;
use super::msg::{PeerIn, ToConn, ToShard};
use super::stats::Stats;
use crate::config::{Config, SyncPolicy};
use crate::op::SESSION_PASSWORD_LEN;
use crate::prep::PrepConfig;
use crate::session::{SessionConfig, SessionIdGen};
use crate::shard::clients::Clients;
use crate::shard::commit::{Committer, Flush};
use crate::shard::{Action, ClientRef, Now, Reply, ShardCore};
use crate::tree::acl::{self, AclConfig};
use crate::txn::{Db, Txn};

/// Messages the driver takes per loop iteration; one flush and one cross-core send per
/// destination cover them all.
pub const DRIVER_BATCH_MAX: usize = 1024;
pub use crate::shard::clients::CONNECT_XID;
/// Ticks between container/TTL reaping passes (ZooKeeper checks every 60 s).
pub const REAP_EVERY_TICKS: u64 = 30;
/// Records between progress lines while replaying the WAL.
const REPLAY_PROGRESS_EVERY: u64 = 100_000;

/// The WAL record kind of a txn.
pub const RECORD_KIND_TXN: u8 = 1;

/// Milliseconds since the epoch: the time prep stamps on txns.
pub fn now_ms() -> i64 {
    super::clock::wall_ms()
}

/// The shard's state as found on disk.
pub struct Recovered {
    pub db: Db,
    pub wal: Wal,
    pub snapshots: SnapshotStore,
    /// (Ensemble members) the txns the WAL holds after `db`: logged, not known to be
    /// committed, so not applied until the group commits them.
    pub logged: Vec<Txn>,
}

/// Where the snapshots of `cfg` live.
pub fn snapshot_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir.join("snapshots")
}

/// Where the WAL of `cfg` lives.
pub fn wal_dir(cfg: &Config) -> PathBuf {
    cfg.wal_dir().join("wal")
}

/// The session rules of `cfg`.
pub fn session_config(cfg: &Config) -> SessionConfig {
    SessionConfig {
        tick_ms: cfg.tick_time_ms as i32,
        timeout_ms_min: cfg.min_session_timeout_ms.min(i32::MAX as u32) as i32,
        timeout_ms_max: cfg.max_session_timeout_ms.min(i32::MAX as u32) as i32,
    }
}

fn ensure_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path)
        .map_err(|e| format!("cannot create directory {}: {e}", path.display()))
}

/// Txns after zxid `from` up to `to` (applied since a snapshot, covered by a flush):
/// zxids count txns within an epoch, and a new epoch counts from its first (the old
/// epoch's tail is not counted).
fn txns_between(from: i64, to: i64) -> u64 {
    if to <= from {
        0
    } else if (to >> 32) == (from >> 32) {
        (to - from) as u64
    } else {
        u64::from(to as u32)
    }
}

const _: () = assert!(
    wal::snapshot::SNAPSHOT_PAYLOAD_ALIGN.is_multiple_of(crate::txn::TXN_ALIGN),
    "snapshot payloads are read in place (Db::restore copies a misaligned one)"
);

/// The newest valid snapshot's state, or a fresh one.
fn load_snapshot(
    snapshots: &SnapshotStore,
    snap_dir: &Path,
    scfg: SessionConfig,
) -> Result<Db, String> {
    Ok(match snapshots.load_newest().map_err(|e| e.to_string())? {
        Some((zxid, file)) => {
            let bytes = file.payload();
            tracing::info!(zxid, bytes = bytes.len(), "loading snapshot");
            Db::restore(bytes, scfg, super::clock::mono_ms())
                .map_err(|e| format!("snapshot {zxid:#x} in {}: {e}", snap_dir.display()))?
        }
        None => Db::new(scfg),
    })
}

/// Loads the newest valid snapshot and replays the WAL after it.
pub fn recover(cfg: &Config) -> Result<Recovered, String> {
    let started = Instant::now();
    let (snap_dir, log_dir) = (snapshot_dir(cfg), wal_dir(cfg));
    ensure_dir(&snap_dir)?;
    ensure_dir(&log_dir)?;
    let snapshots = SnapshotStore::open(&snap_dir).map_err(|e| e.to_string())?;
    let scfg = session_config(cfg);
    let opts = WalOptions {
        sync: wal_sync(cfg.sync),
        segment_bytes: cfg.wal_segment_bytes,
        ..WalOptions::default()
    };
    // The log is opened (every segment scanned, 0.1 s at 1M records) beside the
    // snapshot's load, which leaves a CPU idle for most of its time.
    let (db, opened) = std::thread::scope(|scope| {
        let log = std::thread::Builder::new()
            .name("wal-open".into())
            .spawn_scoped(scope, || Wal::open(&log_dir, opts.clone()));
        let db = load_snapshot(&snapshots, &snap_dir, scfg);
        let opened = match log {
            Ok(job) => job.join().expect("opening the WAL does not panic"),
            Err(_) => Wal::open(&log_dir, opts.clone()),
        };
        (db, opened)
    });
    let mut db = db?;
    let (mut wal, recovery) = opened.map_err(|e| e.to_string())?;
    if (wal.last_zxid() as i64) < db.last_zxid() {
        // The log ends before the snapshot (a learner installed its leader's image,
        // or old segments were purged): it continues from the snapshot, and the
        // durable history this server reports includes it.
        wal.reset_to(db.last_zxid() as u64)
            .map_err(|e| format!("cannot continue the WAL after the snapshot: {e}"))?;
    }
    if let Some((file, offset)) = &recovery.torn_tail {
        tracing::warn!(file = %file.display(), offset, bytes = recovery.bytes_truncated, "truncated a torn WAL tail");
    }
    let mut replayed = 0u64;
    let mut logged = Vec::new();
    let replicated = cfg.ensemble.is_some();
    for rec in wal.read_from(db.last_zxid() as u64 + 1) {
        let rec = rec.map_err(|e| e.to_string())?;
        let txn = Txn::from_bytes(rec.payload)
            .map_err(|e| format!("WAL record {:#x} does not decode: {e}", rec.zxid))?;
        if replicated {
            // A member's log may end in txns its group never committed: the next
            // leader's sync decides them (ZooKeeper applies them at load and reloads
            // on TRUNC; holding them back means no client ever reads one).
            logged.push(txn);
        } else {
            db.apply_if_new(&txn);
        }
        replayed += 1;
        if replayed.is_multiple_of(REPLAY_PROGRESS_EVERY) {
            tracing::info!(replayed, zxid = rec.zxid, "replaying WAL");
        }
    }
    db.sessions.restart_timers(super::clock::mono_ms());
    tracing::info!(
        last_zxid = db.last_zxid(),
        replayed,
        logged = logged.len(),
        znodes = db.tree.len(),
        sessions = db.sessions.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    release_freed_heap();
    Ok(Recovered {
        db,
        wal,
        snapshots,
        logged,
    })
}

fn wal_sync(s: SyncPolicy) -> wal::SyncMode {
    match s {
        SyncPolicy::Always => wal::SyncMode::Always,
        SyncPolicy::Batch => wal::SyncMode::Batch,
        SyncPolicy::Never => wal::SyncMode::Never,
    }
}

/// Where the driver's output goes: one outbox per core, drained by `send`.
pub trait Outlet {
    /// Hands `msgs` to core `core` (the driver's own core included).
    fn send(&self, core: usize, msgs: Vec<ToConn>);
}

/// The driver of one shard.
pub struct Driver<O: Outlet> {
    core: ShardCore,
    wal: Wal,
    syncer: Syncer,
    commit: Committer,
    snapshots: Arc<SnapshotStore>,
    snap_count: u64,
    snap_retain: usize,
    /// The zxid the newest snapshot (or the recovered or installed state) holds:
    /// `snapCount` counts the txns applied since, whoever's clients sent them (a
    /// follower applies mostly other servers' writes).
    snap_base_zxid: i64,
    snapshot_running: bool,
    /// `autopurge.purgeInterval` (0: never purge).
    purge_interval: Option<Duration>,
    /// When the last purge started; `None`: none yet (the first runs at start).
    purged_at: Option<Instant>,
    purge_running: bool,
    inbox: Rc<Mailbox<ToShard>>,
    outlet: O,
    outboxes: Vec<Vec<ToConn>>,
    clients: Clients,
    rng: SmallRng,
    ticks: u64,
    stats: Arc<Stats>,
    actions: Vec<Action>,
    /// Persisted txns not yet appended to the WAL (one `append_batch` per pass).
    run: Vec<(i64, AlignedVec)>,
    prep_config: PrepConfig,
    session_config: SessionConfig,
    /// Replication (ensemble members); `None`: standalone.
    repl: Option<super::replica::Replica>,
}

impl<O: Outlet> Driver<O> {
    pub fn new(
        cfg: &Config,
        rec: Recovered,
        inbox: Rc<Mailbox<ToShard>>,
        outlet: O,
        cores: usize,
        stats: Arc<Stats>,
    ) -> Self {
        let acl = AclConfig {
            super_digest: cfg.super_digest.clone(),
        };
        let prep = PrepConfig {
            acl,
            ttl_enabled: cfg.extended_types_enabled,
            zxid_counter_max: cfg.zxid_counter_max,
            reconfig_enabled: cfg.ensemble.as_ref().is_some_and(|e| e.reconfig_enabled),
            voter_reconfig: cfg.replication == crate::config::Replication::Zab,
        };
        let last = rec.wal.last_zxid() as i64;
        let syncer = rec.wal.syncer();
        let mut seed = [0u8; 32];
        fill_random(&mut seed);
        stats.shard.publish_db(&rec.db);
        let ids = SessionIdGen::resume(
            cfg.server_id(),
            super::clock::wall_ms(),
            rec.db.sessions.iter().map(|s| s.id),
        );
        let snap_base_zxid = rec.db.last_zxid();
        let mut core = ShardCore::new(rec.db, prep.clone());
        let replicated = cfg.ensemble.is_some();
        if replicated {
            core.set_role(crate::shard::Role::Learner);
        }
        for txn in rec.logged {
            core.restore_logged(txn);
        }
        Driver {
            core,
            wal: rec.wal,
            syncer,
            commit: Committer::new(cfg.sync, last).with_flushes_max(cfg.flushes_inflight_max),
            snapshots: Arc::new(rec.snapshots),
            snap_count: cfg.snap_count,
            snap_retain: cfg.autopurge_snap_retain_count as usize,
            snap_base_zxid,
            snapshot_running: false,
            purge_interval: (cfg.autopurge_purge_interval_h > 0)
                .then(|| Duration::from_secs(u64::from(cfg.autopurge_purge_interval_h) * 3600)),
            purged_at: None,
            purge_running: false,
            inbox,
            outlet,
            outboxes: (0..cores).map(|_| Vec::new()).collect(),
            clients: Clients::new(ids),
            rng: SmallRng::from_seed(seed),
            ticks: 0,
            stats,
            actions: Vec::new(),
            run: Vec::new(),
            prep_config: prep,
            session_config: session_config(cfg),
            repl: None,
        }
    }

    /// Makes this shard a member of a replicated group (see `replica`).
    pub fn with_replica(mut self, r: super::replica::Replica) -> Self {
        self.repl = Some(r);
        self
    }

    /// The last txn in the WAL (applied or not).
    pub fn logged_zxid(&self) -> i64 {
        self.core.logged_zxid()
    }

    /// Runs until the inbox closes; an error means the WAL failed and the server must
    /// stop.
    pub async fn run(mut self) -> Result<(), String> {
        let mut batch = Vec::with_capacity(DRIVER_BATCH_MAX);
        self.maybe_purge();
        while self.inbox.recv_batch(&mut batch, DRIVER_BATCH_MAX).await {
            let now = super::clock::now();
            for msg in batch.drain(..) {
                self.handle(msg, now)?;
                self.maybe_reconfigure();
            }
            self.publish();
        }
        Ok(())
    }

    fn handle(&mut self, msg: ToShard, now: Now) -> Result<(), String> {
        self.core.observe(now);
        let mut out = Vec::new();
        match msg {
            ToShard::Connect { conn, .. } if !self.serving() => {
                // Not in broadcast: ZooKeeper closes the socket; the client moves on.
                out.push(ToConn::Close { conn });
            }
            ToShard::Request { client, .. } if !self.serving() => {
                out.push(ToConn::Close { conn: client.conn });
            }
            ToShard::Connect { conn, req, peer } => {
                if req.session_id != 0 {
                    self.touched(req.session_id);
                }
                let mut password = [0u8; SESSION_PASSWORD_LEN];
                self.rng.fill_bytes(&mut password);
                let ip = acl::ip_id(peer.ip());
                let core = &mut self.core;
                self.clients.connect(
                    core,
                    conn,
                    req,
                    ip,
                    password,
                    now,
                    &mut out,
                    &mut self.actions,
                );
            }
            ToShard::Request { client, op } => {
                self.touched(client.session);
                if op.is_write() && !self.leader_takes_write() {
                    // The Zab leader cannot take a proposal now (not serving, or
                    // throttled): the session sees its connection lost.
                    out.push(ToConn::Close { conn: client.conn });
                    self.route(out);
                    return self.execute();
                }
                self.clients
                    .request(&mut self.core, client, op, now, &mut self.actions);
            }
            ToShard::Auth { client, ids } => self.clients.auth(client, ids, &mut out),
            ToShard::Closed { conn } => {
                if let Some(session) = self.clients.closed(conn) {
                    self.core.db_mut().tree.watches.remove_session(session);
                }
            }
            ToShard::Flushed { result } => self.flushed_now(result, false)?,
            ToShard::Tick => self.tick(now, &mut out)?,
            ToShard::Snapshotted { zxid, result } => self.snapshotted(zxid, result),
            ToShard::Purged { result } => self.purged(result),
            ToShard::Peer { from, ev } => {
                if let Some(r) = &mut self.repl {
                    if let Some(i) = &mut r.installing {
                        // Behind the snapshot being loaded; still counted as pending,
                        // so a fast leader is pushed back on (`PEER_INBOX_MAX`). It
                        // still shows the leader alive: a load of seconds must not
                        // make this learner give up on it.
                        if !matches!(ev, PeerIn::Up | PeerIn::Down | PeerIn::Bad(_)) {
                            r.node.heard(from);
                        }
                        i.queued.push_back((from, ev));
                        return Ok(());
                    }
                    let n = r.peer_pending.get();
                    debug_assert!(n > 0, "every peer message in the inbox was counted");
                    r.peer_pending.set(n.saturating_sub(1));
                }
                self.peer_event(from, ev, now)?
            }
            ToShard::Installed { zxid, result } => self.installed(zxid, result, now)?,
            ToShard::Decided(d) => self.decided(d)?,
            ToShard::Members { version, text } => self.members_arrived(version, &text),
        }
        self.route(out);
        self.execute()
    }

    /// Puts messages into their cores' outboxes.
    fn route(&mut self, msgs: Vec<ToConn>) {
        for m in msgs {
            self.outboxes[m.conn().core as usize].push(m);
        }
    }

    fn tick(&mut self, now: Now, out: &mut Vec<ToConn>) -> Result<(), String> {
        self.ticks += 1;
        // Counting watches walks every session's set: once a tick, not per batch.
        let watches = self.core.db().tree.watches.total() as u64;
        self.stats.shard.watches.store(watches, Relaxed);
        self.repl_tick()?;
        for session in self.core.tick(now, &mut self.actions) {
            self.clients.expired(session, out);
        }
        if self.ticks.is_multiple_of(REAP_EVERY_TICKS) {
            self.core.reap(now, &mut self.actions);
        }
        self.maybe_purge();
        Ok(())
    }

    /// Carries out the core's actions until none are left (an inline flush, with
    /// `sync=never`, makes the core release replies, which are actions too), then
    /// starts the flush the committer asks for. Persists of one pass go to the WAL in
    /// one `append_batch` (one write system call instead of one per txn).
    fn execute(&mut self) -> Result<(), String> {
        loop {
            while !self.actions.is_empty() {
                for action in std::mem::take(&mut self.actions) {
                    match action {
                        Action::Persist { zxid, bytes } if self.leading() => {
                            self.propose(zxid, bytes)?;
                        }
                        Action::Persist { zxid, bytes } => {
                            self.commit.persist(zxid, bytes, &mut self.run);
                        }
                        Action::Event(event) => {
                            if let Some(conn) = self.clients.event_conn(&event) {
                                self.outboxes[conn.core as usize]
                                    .push(ToConn::Event { conn, event });
                            }
                        }
                        Action::Reply { to, zxid, reply } => self.reply(to, zxid, reply),
                        Action::Forward {
                            session,
                            cxid,
                            auth,
                            op,
                        } => self.forward(session, cxid, &auth, &op),
                        Action::ForwardSync { session, cxid } => self.forward_sync(session, cxid),
                        Action::ChainRead { id, keys } => self.chain_read(id, &keys)?,
                    }
                }
                self.append_run()?;
            }
            if !self.start_flush()? {
                break;
            }
        }
        self.maybe_serve()?;
        // A learner closes the connections of sessions its leader expired, as any
        // ZooKeeper server does for its own clients.
        let mut closes = Vec::new();
        for session in self.core.take_expired() {
            self.clients.expired(session, &mut closes);
        }
        self.route(closes);
        self.maybe_snapshot();
        Ok(())
    }

    /// Appends a run of persisted txns with one WAL write.
    fn append_run(&mut self) -> Result<(), String> {
        let run = &mut self.run;
        let Some(&(last, _)) = run.last() else {
            return Ok(());
        };
        debug_assert!(
            run.windows(2).all(|w| w[0].0 < w[1].0),
            "the core persists in zxid order"
        );
        let records: Vec<(u64, u8, &[u8])> = run
            .iter()
            .map(|(z, b)| (*z as u64, RECORD_KIND_TXN, &b[..]))
            .collect();
        self.wal
            .append_batch(&records)
            .map_err(|e| format!("WAL append failed: {e}"))?;
        self.commit.appended_to(last);
        run.clear();
        Ok(())
    }

    fn reply(&mut self, to: ClientRef, zxid: i64, reply: Reply) {
        let mut out = Vec::new();
        self.clients.reply(&self.core, to, zxid, reply, &mut out);
        self.route(out);
    }

    /// Starts the flush the committer asks for: on the blocking pool, or inline with
    /// `sync=never` (no disk work). True when an inline flush released actions.
    fn start_flush(&mut self) -> Result<bool, String> {
        let covered_before = self.commit.covered();
        let flush = self.commit.next_flush(&mut self.run);
        self.append_run()?;
        match flush {
            None => Ok(false),
            Some(Flush::Inline { .. }) => {
                let started = Instant::now();
                super::fault::fsync_stall();
                let result = self.syncer.flush_tagged().map_err(|e| e.to_string());
                self.stats
                    .shard
                    .record_flush(0, started.elapsed().as_micros() as u64);
                self.flushed_now(result, true)?;
                Ok(true)
            }
            Some(Flush::Background { covers }) => {
                let (syncer, inbox, stats) =
                    (self.syncer.clone(), self.inbox.clone(), self.stats.clone());
                let txns = txns_between(covered_before, covers);
                glommio::spawn_local(async move {
                    let started = Instant::now();
                    let result = glommio::executor()
                        .spawn_blocking(move || {
                            super::fault::fsync_stall();
                            syncer.flush_tagged()
                        })
                        .await;
                    stats
                        .shard
                        .record_flush(txns, started.elapsed().as_micros() as u64);
                    inbox.push(ToShard::Flushed {
                        result: result.map_err(|e| e.to_string()),
                    });
                })
                .detach();
                Ok(false)
            }
        }
    }

    fn flushed_now(
        &mut self,
        result: Result<(u64, u64), String>,
        inline: bool,
    ) -> Result<(), String> {
        let (generation, zxid) = result.map_err(|e| {
            format!("WAL flush failed, stopping to avoid acknowledging lost writes: {e}")
        })?;
        if generation != self.syncer.generation() {
            // The log was truncated or reset since: what it names may be gone.
            self.commit.flushed_stale(inline);
            return Ok(());
        }
        let durable = self.commit.flushed(zxid as i64, inline);
        if self.repl.is_some() {
            // Replicated: durable here is an ack (or the leader's own vote); the
            // group's commit applies.
            return self.repl_persisted(durable);
        }
        self.core.durable(durable, &mut self.actions);
        Ok(())
    }

    fn maybe_snapshot(&mut self) {
        let applied = txns_between(self.snap_base_zxid, self.core.db().last_zxid());
        if self.snapshot_running || applied < self.snap_count {
            return;
        }
        // A copy-on-write image here (microseconds); serialising (O(tree)) and writing it
        // happen on the blocking pool while this core goes on applying.
        let image = self.core.db().snapshot_image();
        let zxid = image.last_zxid();
        self.snapshot_running = true;
        self.snap_base_zxid = zxid;
        let (store, inbox) = (self.snapshots.clone(), self.inbox.clone());
        glommio::spawn_local(async move {
            let result = glommio::executor()
                .spawn_blocking(move || {
                    let bytes = image.to_bytes();
                    store
                        .write(zxid as u64, &bytes)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await;
            inbox.push(ToShard::Snapshotted { zxid, result });
        })
        .detach();
    }

    /// A SNAP's state replaced the tree: it is on disk as a snapshot already.
    pub(super) fn snapshot_installed(&mut self, zxid: i64) {
        self.snap_base_zxid = zxid;
    }

    fn snapshotted(&mut self, zxid: i64, result: Result<(), String>) {
        self.snapshot_running = false;
        if let Err(e) = result {
            return tracing::error!(zxid, "snapshot failed: {e}");
        }
        self.stats.shard.snapshots.fetch_add(1, Relaxed);
        tracing::info!(zxid, "snapshot written");
    }

    /// Starts a purge when `autopurge.purgeInterval` is set and due (at start, then
    /// every interval): the snapshots beyond `autopurge.snapRetainCount` and the WAL
    /// segments older than the oldest kept snapshot are deleted on the blocking pool.
    fn maybe_purge(&mut self) {
        let Some(interval) = self.purge_interval else {
            return;
        };
        if self.repl.as_ref().is_some_and(|r| r.installing.is_some()) {
            return; // the snapshot being loaded is not to be purged under it
        }
        if self.purge_running || self.purged_at.is_some_and(|t| t.elapsed() < interval) {
            return;
        }
        self.purged_at = Some(Instant::now());
        self.purge_running = true;
        let (store, retain) = (self.snapshots.clone(), self.snap_retain);
        // Which snapshots stay is read here (a directory listing); the log is cut
        // below the oldest of them, so falling back to it (if a newer one is found
        // corrupt) still has every txn after it.
        let kept = store.list().map(|l| l.into_iter().take(retain).min());
        let wal_job = match &kept {
            Ok(Some(oldest)) => Some(self.wal.detach_below(oldest + 1)),
            _ => None,
        };
        let inbox = self.inbox.clone();
        glommio::spawn_local(async move {
            let result = glommio::executor()
                .spawn_blocking(move || {
                    kept.map_err(|e| e.to_string())?;
                    let snaps = store.retain(retain).map_err(|e| e.to_string())?;
                    let segments = match wal_job {
                        Some(job) => job.run().map_err(|e| e.to_string())?,
                        None => 0,
                    };
                    Ok((snaps, segments))
                })
                .await;
            inbox.push(ToShard::Purged { result });
        })
        .detach();
    }

    fn purged(&mut self, result: Result<(usize, usize), String>) {
        self.purge_running = false;
        match result {
            Ok((snaps, segments)) if snaps + segments > 0 => {
                tracing::info!(snapshots = snaps, wal_segments = segments, "purged")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("purge failed: {e}"),
        }
    }

    /// Sends every outbox and publishes the counters.
    fn publish(&mut self) {
        for (core, out) in self.outboxes.iter_mut().enumerate() {
            if !out.is_empty() {
                self.outlet.send(core, std::mem::take(out));
            }
        }
        let db = self.core.db();
        self.stats.shard.last_zxid.store(db.last_zxid(), Relaxed);
        self.stats.shard.znodes.store(db.tree.len() as u64, Relaxed);
        self.stats
            .shard
            .sessions
            .store(db.sessions.len() as u64, Relaxed);
        self.stats
            .shard
            .inflight
            .store(self.core.inflight() as u64, Relaxed);
    }

    /// Tick period for the timer task.
    pub fn tick_period(cfg: &Config) -> Duration {
        Duration::from_millis(u64::from(cfg.tick_time_ms).max(1))
    }
}

#[path = "driver_repl.rs"]
mod repl;

#[path = "driver_reconfig.rs"]
mod reconfig;

#[path = "driver_chain.rs"]
pub mod chain;

/// Seeds from the OS (session passwords must not be guessable from the session id).
fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_err()
    {
        let t = now_ms() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t.rotate_left(i as u32 * 7) & 0xff) as u8;
        }
    }
}

/// Hands the heap pages freed since to the kernel. Loading a snapshot holds its bytes
/// and a deserialised copy beside the tree being built; glibc keeps those pages once
/// freed (hundreds of MB of RSS at 1M znodes) unless asked. The `corekeeper` binary
/// allocates with jemalloc, whose background thread returns freed pages within a
/// second on its own (`crate::server_allocator`); this matters where the library runs
/// on glibc's malloc (unit tests, embedders).
pub(super) fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own arenas; it takes their
    // locks itself and touches no memory of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::txns_between;

    #[test]
    fn snap_count_counts_txns_within_and_across_epochs() {
        let z = |epoch: i64, n: i64| (epoch << 32) | n;
        assert_eq!(txns_between(z(1, 5), z(1, 25)), 20);
        assert_eq!(txns_between(z(1, 25), z(1, 25)), 0);
        // A truncation may leave the state behind the last snapshot.
        assert_eq!(txns_between(z(1, 25), z(1, 20)), 0);
        // A new epoch counts from its first txn.
        assert_eq!(txns_between(z(1, 900), z(2, 7)), 7);
        assert_eq!(txns_between(0, 42), 42);
    }
}
