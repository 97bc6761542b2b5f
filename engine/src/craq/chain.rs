//! One chain member: [`ChainNode`]. See the module docs of `craq` for the protocol;
//! here, the rules each input follows.
//!
//! Invariants (asserted):
//! - `committed <= received`, `durable <= received`, `acked_up` only grows;
//! - the tail commits only what every other member said is durable on it (`Durable`)
//!   and what is durable on itself, so whatever any member committed is durable on
//!   every member of the configuration it was committed in;
//! - the log holds every entry after `committed`, in zxid order, each right after its
//!   `prev`; `dirty` counts exactly the keys of those entries;
//! - a member commits, acks and answers only while `synced`: its predecessor, itself
//!   synced, answered its `Need` (`Resend`, after a snapshot if one was needed) and it
//!   holds what the predecessor held then. A member with no predecessor (the head) is
//!   synced by definition (the manager makes only a caught-up member head).

use std::collections::{HashMap, VecDeque};

use super::{
    CHAIN_FUTURE_MSGS_MAX, CHAIN_LOG_ENTRIES_MAX, CHAIN_READS_WAITING_MAX, ChainAction,
    ChainConfig, ChainMsg, Entry, Keys, ServerId, Zxid,
};

/// How reads are ordered: CRAQ (a member answers a clean key at once, and asks the
/// tail's commit point for a dirty one) or plain chain replication (the tail orders
/// every read: the baseline the CRAQ paper compares with). In both, a read is
/// answered where its client is connected, from state this member applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    #[default]
    Craq,
    /// Every read at a member other than the tail waits for the tail's commit point,
    /// as a dirty one does in CRAQ: a client may connect anywhere (ZooKeeper clients
    /// pick a server of their connect string at random) and reads what the tail had
    /// committed when the query reached it.
    TailOrdered,
}

/// A member's place in the current chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Not in the current configuration (or none yet).
    Out,
    Head,
    Middle,
    Tail,
    /// Head and tail: a chain of one.
    Single,
}

#[derive(Debug)]
pub struct ChainNode {
    id: ServerId,
    cfg: Option<ChainConfig>,
    now_ms: u64,
    lease_until_ms: u64,
    log: VecDeque<Entry>,
    /// The zxid right before `log[0]` (what a snapshot covered, or 0).
    log_base: Zxid,
    received: Zxid,
    durable: Zxid,
    committed: Zxid,
    /// What the tail said it committed, in this configuration.
    tail_acked: Zxid,
    /// As tail: the last `Ack` sent to the other members in this configuration.
    ack_sent: Zxid,
    acked_up: Zxid,
    /// As tail: how far each other member said it is durable, in this configuration.
    durable_at: Vec<(ServerId, Zxid)>,
    /// The last `Durable` sent to the tail in this configuration.
    durable_sent: Zxid,
    synced: bool,
    dirty: HashMap<u64, u32>,
    dirty_all: u32,
    /// A commit point some reader may have seen: the most this member committed or
    /// heard committed (`Floor`). Only committed zxids, so it only grows.
    floor: Zxid,
    /// A `Floor` came from the predecessor in this configuration.
    floor_heard: bool,
    /// As tail: what it held when it synced in this configuration (a removed tail may
    /// have committed, and shown, any of it).
    hold_floor: Option<Zxid>,
    /// As tail: queries and reads waiting for it to be ready.
    tail_queries: Vec<(ServerId, u64)>,
    tail_reads: Vec<u64>,
    /// Not tail: the tail query in flight and the reads it answers; reads for the next.
    query: Option<(u64, Vec<u64>)>,
    next_reads: Vec<u64>,
    next_qid: u64,
    need_sent: Option<Zxid>,
    /// Synced once `received` reaches it (set by a matching `Resend`).
    sync_upto: Option<Zxid>,
    /// What it held when it synced in this configuration.
    synced_at: Option<Zxid>,
    /// A `Need` from the successor that came while not synced (after, committed).
    pending_need: Option<(Zxid, Zxid)>,
    /// Stepping back to meet the predecessor's history: the point the last `Need`
    /// named after a `Resend` offered one this member does not hold (a `Floor` asks
    /// from there too, not from `received` again). Cleared once a `Resend` is taken.
    step_back: Option<Zxid>,
    /// Messages of configurations newer than this member's, for when it learns them.
    future: Vec<(ServerId, ChainMsg)>,
    read_mode: ReadMode,
}

impl ChainNode {
    /// A member with an empty history.
    pub fn new(id: ServerId) -> ChainNode {
        Self::recover(id, 0, Vec::new())
    }

    /// A member restarted from its durable state: a snapshot at `snapshot_zxid`
    /// (already applied by the caller) and the durable entries after it, which are
    /// applied only once known committed.
    pub fn recover(id: ServerId, snapshot_zxid: Zxid, entries: Vec<Entry>) -> ChainNode {
        let mut n = ChainNode {
            id,
            cfg: None,
            now_ms: 0,
            lease_until_ms: 0,
            log: VecDeque::new(),
            log_base: snapshot_zxid,
            received: snapshot_zxid,
            durable: snapshot_zxid,
            committed: snapshot_zxid,
            tail_acked: 0,
            ack_sent: 0,
            acked_up: 0,
            durable_at: Vec::new(),
            durable_sent: 0,
            synced: false,
            dirty: HashMap::new(),
            dirty_all: 0,
            floor: snapshot_zxid,
            floor_heard: false,
            hold_floor: None,
            tail_queries: Vec::new(),
            tail_reads: Vec::new(),
            query: None,
            next_reads: Vec::new(),
            next_qid: 1,
            need_sent: None,
            sync_upto: None,
            pending_need: None,
            step_back: None,
            synced_at: None,
            future: Vec::new(),
            read_mode: ReadMode::Craq,
        };
        for e in entries {
            debug_assert!(e.prev == n.received, "recovered entries follow each other");
            n.mark(&e.keys, true);
            n.received = e.zxid;
            n.log.push_back(e);
        }
        n.durable = n.received;
        n
    }

    pub fn id(&self) -> ServerId {
        self.id
    }

    /// Plain chain replication instead of CRAQ: reads go to the tail.
    pub fn set_read_mode(&mut self, mode: ReadMode) {
        self.read_mode = mode;
    }
    pub fn config(&self) -> Option<&ChainConfig> {
        self.cfg.as_ref()
    }
    pub fn received(&self) -> Zxid {
        self.received
    }
    pub fn durable(&self) -> Zxid {
        self.durable
    }
    pub fn committed(&self) -> Zxid {
        self.committed
    }
    pub fn acked_up(&self) -> Zxid {
        self.acked_up
    }
    pub fn synced(&self) -> bool {
        self.synced
    }
    /// Until when (the caller's monotonic ms) this member may answer reads.
    pub fn lease_until_ms(&self) -> u64 {
        self.lease_until_ms
    }

    /// Synced and what it held then is durable: it holds every txn committed before
    /// it synced on its disk, so the manager may count it as a complete copy.
    pub fn complete(&self) -> bool {
        self.synced && self.synced_at.is_some_and(|z| self.durable >= z)
    }

    pub fn role(&self) -> NodeRole {
        let Some(c) = &self.cfg else {
            return NodeRole::Out;
        };
        match c.position(self.id) {
            None => NodeRole::Out,
            Some(_) if c.chain.len() == 1 => NodeRole::Single,
            Some(0) => NodeRole::Head,
            Some(i) if i + 1 == c.chain.len() => NodeRole::Tail,
            Some(_) => NodeRole::Middle,
        }
    }

    fn is_tail(&self) -> bool {
        matches!(self.role(), NodeRole::Tail | NodeRole::Single)
    }
    fn is_head(&self) -> bool {
        matches!(self.role(), NodeRole::Head | NodeRole::Single)
    }
    /// Whether `id` is a member of this member's configuration.
    fn in_chain(&self, id: ServerId) -> bool {
        self.cfg.as_ref().is_some_and(|c| c.position(id).is_some())
    }
    fn pred(&self) -> Option<ServerId> {
        self.cfg.as_ref()?.predecessor(self.id)
    }
    fn succ(&self) -> Option<ServerId> {
        self.cfg.as_ref()?.successor(self.id)
    }
    fn version(&self) -> u64 {
        self.cfg.as_ref().map_or(0, |c| c.version)
    }

    /// A tail answers reads and queries once it committed what it held when it synced
    /// in this configuration and what its predecessor knew committed.
    pub fn ready(&self) -> bool {
        self.is_tail()
            && self.synced
            && self.floor_heard
            && self
                .hold_floor
                .is_some_and(|h| self.committed >= h.max(self.floor))
    }

    /// Entries after `committed` (uncommitted here).
    pub fn uncommitted(&self) -> usize {
        self.log.len() - self.log.partition_point(|e| e.zxid <= self.committed)
    }

    /// The clock (milliseconds, monotonic) for leases.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Extends the read lease of configuration `version` (ignored for another).
    pub fn grant_lease(&mut self, version: u64, until_ms: u64) {
        if self.cfg.as_ref().is_some_and(|c| c.version == version) {
            self.lease_until_ms = self.lease_until_ms.max(until_ms);
        }
    }

    /// A new configuration from the manager (older or equal versions are ignored), with
    /// its read lease.
    pub fn configure(&mut self, cfg: ChainConfig, lease_until_ms: u64, out: &mut Vec<ChainAction>) {
        if self.cfg.as_ref().is_some_and(|c| c.version >= cfg.version) {
            return;
        }
        debug_assert!(
            cfg.chain.len() <= super::CHAIN_MEMBERS_MAX,
            "chains are bounded"
        );
        self.cfg = Some(cfg);
        self.lease_until_ms = lease_until_ms;
        self.need_sent = None;
        let (pred, succ) = (self.pred(), self.succ());
        // Every configuration starts over with the neighbours: the tail's acks are
        // counted anew, and a member with a predecessor syncs again (it may have missed
        // configurations, and the predecessor may be another incarnation).
        self.tail_acked = 0;
        self.ack_sent = 0;
        self.durable_at.clear();
        self.durable_sent = 0;
        self.sync_upto = None;
        self.pending_need = None;
        self.step_back = None;
        self.hold_floor = None;
        self.synced = pred.is_none();
        self.floor_heard = pred.is_none();
        self.synced_at = self.synced.then_some(self.received);
        if self.synced && self.is_tail() {
            self.hold_floor = Some(self.received);
        }
        if self.role() == NodeRole::Out {
            self.drop_reads("not in the chain", out);
            self.tail_queries.clear();
            return;
        }
        let version = self.version();
        if self.is_tail() {
            if let Some((_, ids)) = self.query.take() {
                self.tail_reads.extend(ids);
            }
            self.tail_reads.append(&mut self.next_reads);
        } else {
            // Askers resend their queries to the new tail.
            self.tail_queries.clear();
            let mut ids = std::mem::take(&mut self.tail_reads);
            if let Some((_, q)) = self.query.take() {
                ids.extend(q);
            }
            ids.append(&mut self.next_reads);
            self.next_reads = ids;
        }
        if let Some(p) = pred {
            let after = self.received;
            out.push(ChainAction::Send {
                to: p,
                msg: self.need(version, after),
            });
        }
        if let Some(s) = succ {
            let zxid = self.floor;
            out.push(ChainAction::Send {
                to: s,
                msg: ChainMsg::Floor { version, zxid },
            });
        }
        self.advance(out);
        self.maybe_query(out);
        let version = self.version();
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .filter(|(_, m)| m.version() >= version)
            .partition(|(_, m)| m.version() == version);
        self.future = later;
        for (from, m) in now {
            self.step(from, m, out);
        }
    }

    /// A link to `peer` came up (a reconnect: what was in flight on the old one may be
    /// lost): ask the predecessor for what follows, repeat the last ack, give the
    /// successor the floor, repeat a query to the tail.
    pub fn link_up(&mut self, peer: ServerId, out: &mut Vec<ChainAction>) {
        if self.role() == NodeRole::Out {
            return;
        }
        let version = self.version();
        if self.pred() == Some(peer) {
            let after = self.received;
            out.push(ChainAction::Send {
                to: peer,
                msg: self.need(version, after),
            });
        }
        if self.is_tail() && self.in_chain(peer) && self.ack_sent > 0 {
            let zxid = self.ack_sent;
            out.push(ChainAction::Send {
                to: peer,
                msg: ChainMsg::Ack { version, zxid },
            });
        }
        if self.succ() == Some(peer) {
            let zxid = self.floor;
            out.push(ChainAction::Send {
                to: peer,
                msg: ChainMsg::Floor { version, zxid },
            });
        }
        let tail = self.cfg.as_ref().and_then(|c| c.tail());
        if tail == Some(peer) && !self.is_tail() && self.durable_sent > 0 {
            let zxid = self.durable_sent;
            out.push(ChainAction::Send {
                to: peer,
                msg: ChainMsg::Durable { version, zxid },
            });
        }
        if let (Some((qid, _)), Some(t)) = (&self.query, tail)
            && t == peer
            && !self.is_tail()
        {
            let qid = *qid;
            out.push(ChainAction::Send {
                to: peer,
                msg: ChainMsg::Query { version, qid },
            });
        }
    }

    /// Head: a new txn, `entry.prev` the last one held. Persisted here and sent down
    /// at once.
    pub fn propose(
        &mut self,
        entry: Entry,
        out: &mut Vec<ChainAction>,
    ) -> Result<(), &'static str> {
        if !self.is_head() {
            return Err("not the head");
        }
        if entry.prev != self.received || entry.zxid <= entry.prev {
            return Err("the entry does not follow the last one");
        }
        if self.uncommitted() >= crate::zab::PROPOSALS_INFLIGHT_MAX {
            return Err("too many txns in flight");
        }
        self.take(entry, out);
        Ok(())
    }

    /// Everything up to `upto` is durable in the WAL (cumulative).
    pub fn persisted(&mut self, upto: Zxid, out: &mut Vec<ChainAction>) {
        self.durable = self.durable.max(upto.min(self.received));
        self.advance(out);
    }

    /// Whether a snapshot at `zxid` from the predecessor in `version` should be
    /// installed: only while not synced, and never one older than what this member
    /// committed (a duplicate answer to a repeated `Need` must not take its state
    /// back).
    pub fn wants_snapshot(&self, version: u64, zxid: Zxid) -> bool {
        !self.synced && version == self.version() && zxid >= self.committed
    }

    /// The caller installed (and made durable) a snapshot from the predecessor at
    /// `zxid`; everything held before is gone. Stale `persisted` reports for the old
    /// entries must not reach this member afterwards.
    pub fn installed(&mut self, version: u64, zxid: Zxid, out: &mut Vec<ChainAction>) {
        if !self.wants_snapshot(version, zxid) {
            debug_assert!(false, "installed a snapshot it did not want");
            return;
        }
        self.log.clear();
        self.dirty.clear();
        self.dirty_all = 0;
        self.log_base = zxid;
        self.received = zxid;
        self.durable = zxid;
        self.committed = zxid;
        self.synced = false;
        self.synced_at = None;
        self.sync_upto = None;
        self.need_sent = None;
        self.step_back = None;
        self.advance(out);
    }

    /// A message from `from`.
    pub fn step(&mut self, from: ServerId, msg: ChainMsg, out: &mut Vec<ChainAction>) {
        if self.cfg.is_none() || msg.version() > self.version() {
            if self.future.len() < CHAIN_FUTURE_MSGS_MAX {
                self.future.push((from, msg));
            }
            return;
        }
        if msg.version() < self.version() {
            return;
        }
        let (pred, succ) = (self.pred(), self.succ());
        let tail = self.cfg.as_ref().and_then(|c| c.tail());
        match msg {
            ChainMsg::Propagate { entry, .. } if pred == Some(from) => self.receive(entry, out),
            ChainMsg::Ack { zxid, .. } if tail == Some(from) && !self.is_tail() => {
                self.tail_acked = self.tail_acked.max(zxid.min(self.received));
                self.advance(out);
            }
            ChainMsg::Need {
                after, committed, ..
            } if succ == Some(from) => {
                if self.synced {
                    self.resend(from, after, committed, out);
                } else {
                    // What this member holds may be short of what was committed: it
                    // answers once its own history is confirmed.
                    self.pending_need = Some((after, committed));
                }
            }
            // `after` is a point this member held when it asked (or the snapshot it
            // installed); what it took since came from this predecessor in order. The
            // histories match up to `after`; what this member holds beyond it is
            // dropped (a history the chain did not keep, or entries the predecessor
            // sends again). Synced once what follows has arrived (a returning member
            // lost entries committed meanwhile: until they are back it could not
            // answer a clean read).
            //
            // The predecessor cannot tell which of its entries this member holds past
            // what the member said; it offers its latest entry at or below `after`.
            // Held here: the histories match up to it (zxids are unique, and entries
            // chain by `prev`). Not held: this member says its latest entry below
            // it, and the two step back until they meet, so that no entry both hold
            // is dropped here. (Falling back straight to the commit point a restarted
            // member knows, often 0, dropped entries it had reported durable, on
            // which a cut-off tail of an older configuration could still commit.)
            ChainMsg::Resend { after, upto, .. }
                if pred == Some(from)
                    && !self.synced
                    && after >= self.committed
                    && after <= self.received =>
            {
                if !self.holds(after) {
                    let version = self.version();
                    let before = self.held_below(after);
                    self.step_back = Some(before);
                    return out.push(ChainAction::Send {
                        to: from,
                        msg: self.need(version, before),
                    });
                }
                self.step_back = None;
                self.truncate_after(after, out);
                self.sync_upto = Some(upto);
                self.check_synced(out);
            }
            ChainMsg::Floor { zxid, .. } if pred == Some(from) => {
                self.floor = self.floor.max(zxid);
                self.floor_heard = true;
                if !self.synced {
                    // The predecessor may not have known this configuration when the
                    // Need went out.
                    let after = self.step_back.unwrap_or(self.received);
                    let version = self.version();
                    out.push(ChainAction::Send {
                        to: from,
                        msg: self.need(version, after),
                    });
                }
                self.advance(out);
            }
            ChainMsg::Durable { zxid, .. } if self.is_tail() && self.in_chain(from) => {
                match self.durable_at.iter_mut().find(|(m, _)| *m == from) {
                    Some((_, z)) => *z = (*z).max(zxid),
                    None => self.durable_at.push((from, zxid)),
                }
                self.advance(out);
            }
            ChainMsg::Query { qid, .. } if self.is_tail() => {
                if self.ready() {
                    let (version, zxid) = (self.version(), self.committed);
                    out.push(ChainAction::Send {
                        to: from,
                        msg: ChainMsg::QueryReply { version, qid, zxid },
                    });
                } else {
                    self.tail_queries.push((from, qid));
                }
            }
            ChainMsg::QueryReply { qid, zxid, .. }
                if tail == Some(from) && self.query.as_ref().is_some_and(|(q, _)| *q == qid) =>
            {
                let (_, ids) = self.query.take().expect("checked");
                if self.synced {
                    // Every txn up to the tail's commit point is committed, and this
                    // member holds them (it is above the tail).
                    self.commit_to(zxid.min(self.received), out);
                    for id in ids {
                        self.read_ready(id, out);
                    }
                } else {
                    // Asked again once synced.
                    self.next_reads.extend(ids);
                }
                self.maybe_query(out);
            }
            _ => {}
        }
    }

    /// A read of state depending on `keys`, with id `id` (the caller's): answered by
    /// a [`ChainAction::ReadReady`] or [`ChainAction::ReadRefused`], now or later.
    pub fn read(&mut self, id: u64, keys: &Keys, out: &mut Vec<ChainAction>) {
        if self.role() == NodeRole::Out {
            return out.push(ChainAction::ReadRefused {
                id,
                why: "not in the chain",
            });
        }
        if self.now_ms >= self.lease_until_ms {
            return out.push(ChainAction::ReadRefused {
                id,
                why: "no read lease",
            });
        }
        let waiting = self.tail_reads.len()
            + self.next_reads.len()
            + self.query.as_ref().map_or(0, |(_, q)| q.len());
        if waiting >= CHAIN_READS_WAITING_MAX {
            return out.push(ChainAction::ReadRefused {
                id,
                why: "too many reads waiting",
            });
        }
        if self.is_tail() {
            if self.ready() {
                self.read_ready(id, out);
            } else {
                self.tail_reads.push(id);
            }
        } else if self.read_mode == ReadMode::Craq && self.synced && !self.is_dirty(keys) {
            self.read_ready(id, out);
        } else {
            self.next_reads.push(id);
            self.maybe_query(out);
        }
    }

    fn read_ready(&self, id: u64, out: &mut Vec<ChainAction>) {
        if self.now_ms >= self.lease_until_ms {
            out.push(ChainAction::ReadRefused {
                id,
                why: "no read lease",
            });
        } else {
            out.push(ChainAction::ReadReady { id });
        }
    }

    fn drop_reads(&mut self, why: &'static str, out: &mut Vec<ChainAction>) {
        let mut ids = std::mem::take(&mut self.tail_reads);
        ids.append(&mut self.next_reads);
        if let Some((_, q)) = self.query.take() {
            ids.extend(q);
        }
        for id in ids {
            out.push(ChainAction::ReadRefused { id, why });
        }
    }

    fn is_dirty(&self, keys: &Keys) -> bool {
        if self.dirty_all > 0 {
            return true;
        }
        match keys {
            Keys::All => !self.dirty.is_empty(),
            Keys::Some(ks) => ks.iter().any(|k| self.dirty.contains_key(k)),
        }
    }

    fn mark(&mut self, keys: &Keys, add: bool) {
        match keys {
            Keys::All if add => self.dirty_all += 1,
            Keys::All => {
                debug_assert!(self.dirty_all > 0, "unmarking a marked entry");
                self.dirty_all -= 1;
            }
            Keys::Some(ks) => {
                for k in ks {
                    if add {
                        *self.dirty.entry(*k).or_default() += 1;
                    } else if let Some(n) = self.dirty.get_mut(k) {
                        *n -= 1;
                        if *n == 0 {
                            self.dirty.remove(k);
                        }
                    } else {
                        debug_assert!(false, "unmarking a key never marked");
                    }
                }
            }
        }
    }

    fn maybe_query(&mut self, out: &mut Vec<ChainAction>) {
        if self.query.is_some() || self.next_reads.is_empty() || self.is_tail() || !self.synced {
            return;
        }
        let Some(tail) = self.cfg.as_ref().and_then(|c| c.tail()) else {
            return;
        };
        let qid = self.next_qid;
        self.next_qid += 1;
        self.query = Some((qid, std::mem::take(&mut self.next_reads)));
        let version = self.version();
        out.push(ChainAction::Send {
            to: tail,
            msg: ChainMsg::Query { version, qid },
        });
    }

    /// Takes an entry that follows the last one: persist, pass on.
    fn take(&mut self, entry: Entry, out: &mut Vec<ChainAction>) {
        debug_assert!(
            entry.prev == self.received && entry.zxid > entry.prev,
            "in order"
        );
        self.mark(&entry.keys, true);
        self.received = entry.zxid;
        self.log.push_back(entry.clone());
        self.trim_log();
        if let Some(s) = self.succ() {
            let version = self.version();
            out.push(ChainAction::Persist(entry.clone()));
            out.push(ChainAction::Send {
                to: s,
                msg: ChainMsg::Propagate { version, entry },
            });
        } else {
            out.push(ChainAction::Persist(entry));
        }
    }

    fn receive(&mut self, entry: Entry, out: &mut Vec<ChainAction>) {
        if entry.zxid <= self.received {
            return; // a duplicate of what is held (or a history being replaced)
        }
        if entry.prev != self.received {
            // A gap, or a history that differs: say what is held (once per point).
            if self.need_sent != Some(self.received)
                && let Some(p) = self.pred()
            {
                self.need_sent = Some(self.received);
                let (version, after) = (self.version(), self.received);
                out.push(ChainAction::Send {
                    to: p,
                    msg: self.need(version, after),
                });
            }
            return;
        }
        // Taken right after this member's last entry (the histories match: zxids are
        // unique, and every member takes an entry only after its prev). That alone does
        // not make it synced: the predecessor may itself be catching up; only its
        // `Resend`, sent once it is synced, does.
        self.need_sent = None;
        self.take(entry, out);
        self.check_synced(out);
        self.advance(out);
    }

    /// Whether `z` is a point of this member's history it can continue from: its
    /// log's base (a snapshot, or 0) or an entry of its log.
    fn holds(&self, z: Zxid) -> bool {
        z <= self.received
            && (z == self.log_base || self.log.binary_search_by_key(&z, |e| e.zxid).is_ok())
    }

    /// The latest point of this member's history at or below `z`, if the log reaches
    /// down to it.
    fn held_at_or_below(&self, z: Zxid) -> Option<Zxid> {
        if z < self.log_base {
            return None;
        }
        let i = self.log.partition_point(|e| e.zxid <= z);
        Some(i.checked_sub(1).map_or(self.log_base, |i| self.log[i].zxid))
    }

    /// The latest point of this member's history below `z` (its log's base at least).
    fn held_below(&self, z: Zxid) -> Zxid {
        self.held_at_or_below(z.saturating_sub(1))
            .unwrap_or(self.log_base)
            .min(z)
    }

    fn need(&self, version: u64, after: Zxid) -> ChainMsg {
        ChainMsg::Need {
            version,
            after,
            committed: self.committed,
        }
    }

    fn became_synced(&mut self, out: &mut Vec<ChainAction>) {
        self.synced = true;
        self.synced_at = Some(self.received);
        if self.is_tail() {
            self.hold_floor = Some(self.received);
        }
        if let (Some((after, committed)), Some(s)) = (self.pending_need.take(), self.succ()) {
            self.resend(s, after, committed, out);
        }
        self.advance(out);
        self.maybe_query(out);
    }

    fn truncate_after(&mut self, after: Zxid, out: &mut Vec<ChainAction>) {
        if after >= self.received {
            return;
        }
        debug_assert!(
            after >= self.committed,
            "truncation never cuts committed txns"
        );
        while self.log.back().is_some_and(|e| e.zxid > after) {
            let e = self.log.pop_back().expect("non-empty");
            self.mark(&e.keys, false);
        }
        self.received = after;
        self.durable = self.durable.min(after);
        out.push(ChainAction::Truncate { after });
    }

    fn check_synced(&mut self, out: &mut Vec<ChainAction>) {
        if let Some(upto) = self.sync_upto
            && self.received >= upto
        {
            self.sync_upto = None;
            if !self.synced {
                self.became_synced(out);
            }
        }
    }

    /// The successor holds everything up to `after` and committed up to `committed`:
    /// send what follows the latest of the two that is a point of this log (what
    /// follows `committed` in its log may be a history the chain dropped), else a
    /// snapshot first (it is too far behind for the log).
    fn resend(&mut self, to: ServerId, after: Zxid, committed: Zxid, out: &mut Vec<ChainAction>) {
        let version = self.version();
        let from = if self.holds(after) {
            after
        } else if let Some(z) = self.held_at_or_below(after).filter(|&z| z >= committed) {
            // The successor may hold it (see the `Resend` handler), else it steps back.
            z
        } else if self.holds(committed) {
            committed
        } else {
            debug_assert!(
                committed <= self.committed,
                "a snapshot never takes a member back"
            );
            out.push(ChainAction::SendSnapshot {
                to,
                zxid: self.committed,
            });
            self.committed
        };
        let upto = self.received;
        out.push(ChainAction::Send {
            to,
            msg: ChainMsg::Resend {
                version,
                after: from,
                upto,
            },
        });
        let start = self.log.partition_point(|e| e.zxid <= from);
        for e in self.log.range(start..) {
            out.push(ChainAction::Send {
                to,
                msg: ChainMsg::Propagate {
                    version,
                    entry: e.clone(),
                },
            });
        }
        let zxid = self.floor;
        out.push(ChainAction::Send {
            to,
            msg: ChainMsg::Floor { version, zxid },
        });
    }

    /// Commits (applies) every held entry up to `target`.
    fn commit_to(&mut self, target: Zxid, out: &mut Vec<ChainAction>) {
        if target <= self.committed || !self.synced {
            return;
        }
        let start = self.log.partition_point(|e| e.zxid <= self.committed);
        let end = self.log.partition_point(|e| e.zxid <= target);
        for i in start..end {
            let (zxid, txn, keys) = {
                let e = &self.log[i];
                (e.zxid, e.txn.clone(), e.keys.clone())
            };
            self.mark(&keys, false);
            self.committed = zxid;
            out.push(ChainAction::Apply { zxid, txn });
        }
        debug_assert!(self.committed <= self.received, "commits only what is held");
        self.floor = self.floor.max(self.committed);
        self.trim_log();
    }

    /// As tail: how far every member of the chain is durable, as far as it knows
    /// (a member it has not heard from counts as holding nothing durably).
    fn chain_durable(&self) -> Zxid {
        let Some(cfg) = &self.cfg else { return 0 };
        cfg.chain
            .iter()
            .filter(|&&m| m != self.id)
            .map(|m| {
                self.durable_at
                    .iter()
                    .find(|(x, _)| x == m)
                    .map_or(0, |(_, z)| *z)
            })
            .fold(self.durable, Zxid::min)
    }

    /// Commits (the tail tells every member), tells the tail how far this member is
    /// durable, and answers what the current knowledge allows.
    fn advance(&mut self, out: &mut Vec<ChainAction>) {
        if !self.synced || self.role() == NodeRole::Out {
            return;
        }
        let tail = self.is_tail();
        if !tail && self.durable > self.durable_sent {
            // Straight to the tail, not down the chain: one hop after each flush, so
            // the tail's commit waits for the slowest flush plus one hop.
            self.durable_sent = self.durable;
            let (version, zxid) = (self.version(), self.durable);
            let to = self
                .cfg
                .as_ref()
                .and_then(|c| c.tail())
                .expect("in a chain");
            out.push(ChainAction::Send {
                to,
                msg: ChainMsg::Durable { version, zxid },
            });
        }
        let target = if tail {
            self.chain_durable()
        } else {
            self.tail_acked.min(self.received)
        };
        self.commit_to(target, out);
        // Committed means durable on every member: answerable at once.
        let up = self.committed.min(self.durable);
        if up > self.acked_up {
            self.acked_up = up;
            out.push(ChainAction::Answerable { upto: up });
        }
        if tail && self.committed > self.ack_sent {
            // Straight to every member (one hop each, not back up the chain hop by
            // hop); in every configuration anew, so members of a new one learn the
            // commit point without waiting for the next write.
            self.ack_sent = self.committed;
            let (version, zxid) = (self.version(), self.committed);
            let others: Vec<ServerId> = self
                .cfg
                .as_ref()
                .map(|c| c.chain.iter().copied().filter(|&m| m != self.id).collect())
                .unwrap_or_default();
            for to in others {
                out.push(ChainAction::Send {
                    to,
                    msg: ChainMsg::Ack { version, zxid },
                });
            }
        }
        if tail && self.ready() {
            let (version, zxid) = (self.version(), self.committed);
            for (to, qid) in std::mem::take(&mut self.tail_queries) {
                out.push(ChainAction::Send {
                    to,
                    msg: ChainMsg::QueryReply { version, qid, zxid },
                });
            }
            for id in std::mem::take(&mut self.tail_reads) {
                self.read_ready(id, out);
            }
        }
    }

    fn trim_log(&mut self) {
        while self.log.len() > CHAIN_LOG_ENTRIES_MAX
            && self.log.front().is_some_and(|e| e.zxid <= self.committed)
        {
            let e = self.log.pop_front().expect("non-empty");
            self.log_base = e.zxid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cfg(version: u64, chain: &[ServerId]) -> ChainConfig {
        ChainConfig {
            version,
            chain: chain.to_vec(),
        }
    }

    fn entry(zxid: Zxid, prev: Zxid, key: u64) -> Entry {
        Entry {
            zxid,
            prev,
            txn: Arc::from(vec![key as u8]),
            keys: Keys::Some(vec![key]),
        }
    }

    /// Delivers every `Send` among `nodes` (ids 1..) until none is left; returns the
    /// other actions per node.
    fn pump(
        nodes: &mut [ChainNode],
        mut pending: Vec<(ServerId, ChainAction)>,
    ) -> Vec<(ServerId, ChainAction)> {
        let mut rest = Vec::new();
        while let Some((from, a)) = (!pending.is_empty()).then(|| pending.remove(0)) {
            match a {
                ChainAction::Send { to, msg } => {
                    let mut out = Vec::new();
                    nodes[to as usize - 1].step(from, msg, &mut out);
                    pending.extend(out.into_iter().map(|a| (to, a)));
                }
                other => rest.push((from, other)),
            }
        }
        rest
    }

    #[test]
    fn a_write_commits_at_the_tail_and_a_dirty_read_asks_it() {
        let mut nodes: Vec<ChainNode> = (1..=3).map(ChainNode::new).collect();
        let mut pending = Vec::new();
        for n in &mut nodes {
            let mut out = Vec::new();
            n.configure(cfg(1, &[1, 2, 3]), 1_000, &mut out);
            pending.extend(out.into_iter().map(|a| (n.id(), a)));
        }
        pump(&mut nodes, pending);
        assert!(
            nodes.iter().all(ChainNode::synced),
            "all synced on an empty history"
        );

        let mut out = Vec::new();
        nodes[0].propose(entry(1, 0, 7), &mut out).unwrap();
        let rest = pump(&mut nodes, out.into_iter().map(|a| (1, a)).collect());
        assert!(
            rest.iter()
                .all(|(_, a)| matches!(a, ChainAction::Persist(_)))
        );
        assert_eq!(
            nodes.iter().map(ChainNode::received).collect::<Vec<_>>(),
            [1, 1, 1]
        );

        // Key 7 is dirty at the head until the tail commits: the read asks the tail,
        // which has committed nothing yet, so it runs on the state before the write
        // (the write is not committed: no client saw it).
        let mut out = Vec::new();
        nodes[0].read(10, &Keys::Some(vec![7]), &mut out);
        assert!(matches!(out[0], ChainAction::Send { to: 3, .. }), "{out:?}");
        let mut out2 = Vec::new();
        nodes[0].read(11, &Keys::Some(vec![8]), &mut out2);
        assert_eq!(
            out2,
            [ChainAction::ReadReady { id: 11 }],
            "a clean key reads locally"
        );
        let rest = pump(&mut nodes, out.into_iter().map(|a| (1, a)).collect());
        assert_eq!(rest, [(1, ChainAction::ReadReady { id: 10 })]);
        assert_eq!(nodes[0].committed(), 0);

        // The tail's own flush commits nothing: the tail commits only what is durable
        // on the whole chain, which the members above tell it (`Durable`).
        let flush = |nodes: &mut Vec<ChainNode>, id: usize| {
            let mut out = Vec::new();
            nodes[id - 1].persisted(1, &mut out);
            pump(nodes, out.into_iter().map(|a| (id as u64, a)).collect())
        };
        let rest = flush(&mut nodes, 3);
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(nodes[2].committed(), 0, "durable on the tail alone");
        let rest = flush(&mut nodes, 1);
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(nodes[2].committed(), 0, "not durable on the middle yet");
        // A dirty read at the head asks the tail, which still has committed nothing.
        let mut out = Vec::new();
        nodes[0].read(12, &Keys::Some(vec![7]), &mut out);
        let rest = pump(&mut nodes, out.into_iter().map(|a| (1, a)).collect());
        assert_eq!(rest, [(1, ChainAction::ReadReady { id: 12 })]);
        // The middle's flush completes the chain: the tail commits, and its acks to
        // every member commit and answer there.
        let rest = flush(&mut nodes, 2);
        let apply = |at: u64| {
            (
                at,
                ChainAction::Apply {
                    zxid: 1,
                    txn: Arc::from(vec![7u8]),
                },
            )
        };
        for at in [3, 2, 1] {
            assert!(rest.contains(&apply(at)), "{at}: {rest:?}");
            assert!(
                rest.contains(&(at, ChainAction::Answerable { upto: 1 })),
                "{at}: {rest:?}"
            );
        }
        assert_eq!(
            nodes.iter().map(ChainNode::acked_up).collect::<Vec<_>>(),
            [1, 1, 1],
            "durable everywhere: answerable everywhere"
        );
    }

    /// A member back from a crash whose log forked from its predecessor's (it headed
    /// a configuration whose last entries went nowhere) and which knows of no commit:
    /// the two step back to the last entry both hold, and the member drops only what
    /// follows it, not the entries both hold (which it may have reported durable).
    #[test]
    fn a_forked_successor_keeps_the_entries_both_hold() {
        let common = [entry(1, 0, 1), entry(2, 1, 2), entry(3, 2, 3)];
        let mut head_log = common.to_vec();
        head_log.push(entry(0x10, 3, 4));
        let mut forked = common.to_vec();
        forked.extend([entry(0x20, 3, 5), entry(0x21, 0x20, 6)]);
        let mut nodes = vec![
            ChainNode::new(1),
            ChainNode::recover(2, 0, head_log),
            ChainNode::recover(3, 0, forked),
        ];
        let mut pending = Vec::new();
        for n in &mut nodes[1..] {
            let mut out = Vec::new();
            n.configure(cfg(5, &[2, 3]), 1_000, &mut out);
            pending.extend(out.into_iter().map(|a| (n.id(), a)));
        }
        let rest = pump(&mut nodes, pending);
        let cuts: Vec<(ServerId, Zxid)> = rest
            .iter()
            .filter_map(|(n, a)| match a {
                ChainAction::Truncate { after } => Some((*n, *after)),
                _ => None,
            })
            .collect();
        assert_eq!(cuts, [(3, 3)], "only the forked entries go");
        assert_eq!((nodes[2].received(), nodes[2].synced()), (0x10, true));
    }

    #[test]
    fn reads_are_refused_outside_the_chain_and_without_a_lease() {
        let mut n = ChainNode::new(4);
        let mut out = Vec::new();
        n.read(1, &Keys::All, &mut out);
        n.configure(cfg(1, &[4]), 100, &mut out);
        n.read(2, &Keys::All, &mut out);
        n.tick(100);
        n.read(3, &Keys::All, &mut out);
        let verdicts: Vec<&ChainAction> = out
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    ChainAction::ReadReady { .. } | ChainAction::ReadRefused { .. }
                )
            })
            .collect();
        assert_eq!(
            verdicts,
            [
                &ChainAction::ReadRefused {
                    id: 1,
                    why: "not in the chain"
                },
                &ChainAction::ReadReady { id: 2 },
                &ChainAction::ReadRefused {
                    id: 3,
                    why: "no read lease"
                },
            ]
        );
    }
}
