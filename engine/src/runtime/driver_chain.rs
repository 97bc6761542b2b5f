//! The shard driver's CRAQ side (`replication=craq`, and `chain`: the same chain with
//! every read ordered by the tail, `ReadMode::TailOrdered`): the pure [`ChainNode`] of
//! `engine::craq` carried out with the WAL, the quorum links and the shard core, on
//! top of the Zab group of the same servers.
//!
//! # Who does what
//! - **Zab is the control plane.** Election, discovery and synchronisation run as in
//!   Zab mode: a server joins only through them, so every member of a chain holds the
//!   leader's committed history when it joins. The Zab leader is the chain's
//!   manager and its head; its configurations are numbered `make_zxid(epoch, n)`, so
//!   a later epoch's always wins and a member drops messages of another.
//! - **The chain is the data plane.** Once the leader serves, prep hands each txn to
//!   the leader's Zab core (it keeps the log learners synchronise from, and sends the
//!   txn to learners not in the chain) and to [`ChainNode::propose`]; each member
//!   persists an entry's bytes as they arrived (`ShardCore::learn`) and forwards them
//!   before its own flush, and reports its flushes to the tail (`Durable`); the tail
//!   commits what every member holds durably and tells every member (`Ack`). A member
//!   applies a txn when it knows the tail committed it, and answers its clients then.
//!   The head's Zab core takes the chain's commits as its members' acks; its own WAL
//!   writes, applies and messages to chain members are the chain's business and are
//!   dropped (`chain_takes_over`).
//! - **Reads** wait for the chain's word (`ShardCore::set_chain_reads`): a read at
//!   the head of its session's queue is answered at once when no uncommitted txn
//!   touches its keys, else once the tail said what it committed.
//!
//! # Membership (decided by the pure [`Manager`], carried out here)
//! The leader forms the chain from itself and every synchronised learner when it
//! starts serving, and appends a learner that synchronises later at the tail (it
//! catches up from its predecessor's log: `Need` / `Resend`). A member Zab stops
//! counting (its link dropped, or silent past syncLimit) leaves the chain once every
//! lease it may hold has run out (a lease length after it last asked for one; it gets
//! none meanwhile); it comes back through Zab's synchronisation, at the tail. A lost
//! head is a lost leader: an election, and a new chain. Back to election too: a
//! successor further behind than its predecessor's chain log (it would need a
//! snapshot from it; the next epoch's synchronisation sends one).
//!
//! # Read leases
//! A member answers reads only under a lease, so a member cut off from the chain stops
//! reading before a new chain can commit writes it would miss:
//! - The leader asks its learners every tick; a round a majority of voters granted
//!   (they still follow it) gives the leader a lease of `CHAIN_LEASE_TICKS` ticks
//!   from the round's *sending* time.
//! - A learner asks its leader every tick; the answer carries the leader's remaining
//!   lease, and the learner's lease runs from its own sending time for the shorter of
//!   the two. Both ends measure from before the other side answered, so a lease never
//!   outlives the leader's.
//! - A new leader takes no writes and grants no leases for one lease length after it
//!   starts serving: every member of its discovery quorum had left the old leader
//!   before, so every round the old one could still count was sent before that, and
//!   every lease it (and through it, its learners) held has run out. Clocks are each
//!   server's monotonic clock; only their rates are assumed equal.
//!
//! Not yet: snapshots between chain members (a member that needs one sends the leader
//! back to election, whose synchronisation sends it).

use std::collections::VecDeque;
use std::sync::Arc;

use rkyv::util::AlignedVec;
use transport::peer::PeerMsg;

use super::super::clock::mono_ms;
use super::{Driver, Outlet};
use crate::config::Replication;
use crate::craq::keys::txn_keys;
use crate::craq::manager::Manager;
use crate::craq::wire::{ChainIn, config_to_peer, lease_ask, lease_grant, to_peer};
use crate::craq::{ChainAction, ChainConfig, ChainMsg, ChainNode, Entry, Keys, NodeRole};
use crate::peer::node::Mode;
use crate::zab::quorum::majority;
use crate::zab::{Epoch, Role, ServerId, TxnBytes, Zxid, make_zxid};

/// A frame as it arrived (16-aligned, shareable between sends).
type Frame = std::rc::Rc<AlignedVec<16>>;

/// A read lease lasts this many ticks (renewed every tick).
pub const CHAIN_LEASE_TICKS: u64 = 3;
/// Lease rounds a server remembers waiting for answers; older ones are forgotten.
pub const LEASE_ROUNDS_MAX: usize = 8;
/// Txns a new leader holds while its write gate is closed; the shard core's credits
/// keep it far below.
pub const CHAIN_HELD_MAX: usize = crate::zab::PROPOSALS_INFLIGHT_MAX;

const _: () = assert!(
    CHAIN_LEASE_TICKS >= 2,
    "a lease outlives one renewal period"
);

/// One server's chain in the current epoch.
pub struct ChainRun {
    pub node: ChainNode,
    pub epoch: Epoch,
    lease_ms: u64,
    /// Lease rounds this server started: (seq, sent at, voters that granted).
    rounds: VecDeque<(u64, u64, Vec<ServerId>)>,
    next_seq: u64,
    /// Leader: its own lease as a majority last confirmed it (monotonic ms).
    own_until_ms: u64,
    /// Leader: no writes and no leases before this.
    gate_until_ms: u64,
    /// The entry being stepped and the frame it came in (version, zxid, frame).
    arrived: Option<(u64, Zxid, Frame)>,
    /// Leader: txns prepped while the gate was closed, in zxid order.
    held: VecDeque<(Zxid, TxnBytes)>,
    /// Leader: what the next configuration is (lost members, joiners, leases).
    mgr: Option<Manager>,
}

impl ChainRun {
    fn new(node: ChainNode, epoch: Epoch, lease_ms: u64) -> Self {
        ChainRun {
            node,
            epoch,
            lease_ms,
            rounds: VecDeque::new(),
            next_seq: 1,
            own_until_ms: 0,
            gate_until_ms: 0,
            arrived: None,
            held: VecDeque::new(),
            mgr: None,
        }
    }

    /// Whether `id` is in the current configuration.
    pub fn in_chain(&self, id: ServerId) -> bool {
        self.node.config().is_some_and(|c| c.position(id).is_some())
    }

    fn start_round(&mut self, now: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.rounds.len() == LEASE_ROUNDS_MAX {
            self.rounds.pop_front();
        }
        self.rounds.push_back((seq, now, Vec::new()));
        seq
    }

    fn sent_at(&self, seq: u64) -> Option<u64> {
        self.rounds.iter().find(|r| r.0 == seq).map(|r| r.1)
    }

    /// Whether reads may be served here now.
    pub fn leased(&self, now: u64) -> bool {
        self.node.role() != NodeRole::Out && now < self.node.lease_until_ms()
    }
}

/// The chain core's read mode for `replication=chain` (reads at the tail) or `craq`.
fn read_mode(replication: Replication) -> crate::craq::ReadMode {
    match replication {
        Replication::Chain => crate::craq::ReadMode::TailOrdered,
        _ => crate::craq::ReadMode::Craq,
    }
}

impl<O: Outlet> Driver<O> {
    pub(super) fn craq(&self) -> bool {
        self.repl.as_ref().is_some_and(|r| r.replication.chained())
    }

    /// CRAQ: clients are served only under a read lease (a member outside the chain,
    /// or cut off from it, closes connections so clients move on).
    pub(super) fn chain_serving(&self) -> bool {
        let Some(r) = &self.repl else { return true };
        if !r.replication.chained() {
            return true;
        }
        r.chain.as_ref().is_some_and(|c| c.leased(mono_ms() as u64))
    }

    fn lease_ms(&self) -> u64 {
        CHAIN_LEASE_TICKS * self.session_config.tick_ms.max(1) as u64
    }

    /// Leader: it starts serving `epoch`; its chain is itself and every synchronised
    /// learner, and its gate stays closed for a lease length.
    pub(super) fn chain_lead(&mut self, epoch: Epoch) -> Result<(), String> {
        let lease_ms = self.lease_ms();
        let applied = self.core.db().last_zxid();
        debug_assert_eq!(self.core.inflight(), 0, "a leader serves once applied");
        self.core.set_chain_reads(true);
        let r = self.repl.as_mut().expect("replicated");
        let me = r.node.id();
        let mut run = ChainRun::new(ChainNode::recover(me, applied, Vec::new()), epoch, lease_ms);
        run.node.set_read_mode(read_mode(r.replication));
        run.gate_until_ms = mono_ms() as u64 + lease_ms;
        let mut learners = r.node.synced_learners();
        learners.sort_unstable();
        let mut chain = vec![me];
        chain.extend(learners);
        run.mgr = Some(Manager::new(me, lease_ms));
        r.chain = Some(run);
        tracing::info!(epoch, ?chain, gate_ms = lease_ms, "CRAQ: heading the chain");
        self.chain_configure(chain)?;
        self.chain_lease_round();
        Ok(())
    }

    /// Leader: the next configuration of this epoch is `chain` (numbered after the
    /// one its own node holds, the last it made).
    fn chain_configure(&mut self, chain: Vec<ServerId>) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let run = r.chain.as_mut().expect("leading a chain");
        let version = run
            .node
            .config()
            .map_or(make_zxid(run.epoch, 1) as u64, |c| c.version + 1);
        let cfg = ChainConfig { version, chain };
        let msg = config_to_peer(&cfg);
        for &m in cfg.chain.iter().filter(|&&m| m != r.node.id()) {
            let _ = r.net.send(m, &msg);
        }
        // The lease it granted itself carries over (only rounds sent after its gate
        // ever grant it one).
        let lease = run.node.lease_until_ms();
        let mut acts = Vec::new();
        run.node.configure(cfg, lease, &mut acts);
        self.chain_actions(acts)
    }

    /// Learner: its leader's configuration. The first of an epoch starts this
    /// server's chain from what it holds: the applied state, and what it logged after.
    pub(super) fn chain_config_in(
        &mut self,
        from: ServerId,
        cfg: ChainConfig,
    ) -> Result<(), String> {
        let lease_ms = self.lease_ms();
        let Some(r) = &self.repl else { return Ok(()) };
        let Some(leader) = r.node.leader() else {
            return Ok(());
        };
        if !r.replication.chained() || from != leader || leader == r.node.id() {
            return Ok(());
        }
        if !r.node.serving() {
            // Sent right behind UPTODATE: taken once this server serves.
            self.repl.as_mut().expect("replicated").chain_pending = Some((from, cfg));
            return Ok(());
        }
        let Some(epoch) = r.serve_epoch else {
            return Ok(());
        };
        if (cfg.version >> 32) as Epoch != epoch {
            return Ok(()); // another epoch's (a late frame)
        }
        if r.chain.as_ref().is_none_or(|c| c.epoch != epoch) {
            let applied = self.core.db().last_zxid();
            let mut entries = Vec::new();
            let mut prev = applied;
            for t in self.core.unapplied() {
                let bytes: TxnBytes = Arc::from(&t.to_bytes()[..]);
                entries.push(Entry {
                    zxid: t.zxid(),
                    prev,
                    txn: bytes,
                    keys: txn_keys(t),
                });
                prev = t.zxid();
            }
            let me = self.repl.as_ref().expect("replicated").node.id();
            let mut node = ChainNode::recover(me, applied, entries);
            self.core.set_chain_reads(true);
            let r = self.repl.as_mut().expect("replicated");
            node.set_read_mode(read_mode(r.replication));
            r.chain = Some(ChainRun::new(node, epoch, lease_ms));
            tracing::info!(epoch, chain = ?cfg.chain, "CRAQ: joined the chain");
        }
        let r = self.repl.as_mut().expect("replicated");
        let run = r.chain.as_mut().expect("made above");
        let mut acts = Vec::new();
        run.node.configure(cfg, 0, &mut acts);
        self.chain_actions(acts)?;
        self.chain_ask_lease();
        Ok(())
    }

    /// Learner: asks its leader for a lease (from now).
    fn chain_ask_lease(&mut self) {
        let Some(r) = &mut self.repl else { return };
        let Some(leader) = r.node.leader() else {
            return;
        };
        let Some(run) = &mut r.chain else { return };
        let version = run.node.config().map_or(0, |c| c.version);
        let seq = run.start_round(mono_ms() as u64);
        let _ = r.net.send(leader, &lease_ask(version, seq));
    }

    /// Leader: a lease round to every learner in the chain.
    fn chain_lease_round(&mut self) {
        let Some(r) = &mut self.repl else { return };
        let me = r.node.id();
        let Some(run) = &mut r.chain else { return };
        let Some(cfg) = run.node.config().cloned() else {
            return;
        };
        let seq = run.start_round(mono_ms() as u64);
        let msg = lease_ask(cfg.version, seq);
        // The configuration goes along (a member ignores one it has): a learner that
        // missed it (a lost link, a frame before it served) gets it within a tick.
        let config = config_to_peer(&cfg);
        for &m in cfg.chain.iter().filter(|&&m| m != me) {
            let _ = r.net.send(m, &config);
            let _ = r.net.send(m, &msg);
        }
        self.chain_count_round(seq); // a chain of one voter is its own majority
    }

    /// Leader: whether round `seq` has a majority of voters; if so, its lease runs
    /// from the round's sending time.
    fn chain_count_round(&mut self, seq: u64) {
        let r = self.repl.as_mut().expect("replicated");
        let voters = r.node.voters();
        let me = r.node.id();
        let Some(run) = &mut r.chain else { return };
        let Some((_, sent, granted)) = run.rounds.iter().find(|x| x.0 == seq) else {
            return;
        };
        let votes = granted.len() + usize::from(voters.contains(&me));
        if votes < majority(voters.len()) {
            return;
        }
        let until = sent + run.lease_ms;
        tracing::debug!(
            seq,
            votes,
            until,
            gate = run.gate_until_ms,
            "CRAQ: lease round confirmed"
        );
        run.own_until_ms = run.own_until_ms.max(until);
        if *sent >= run.gate_until_ms {
            let version = run.node.config().map_or(0, |c| c.version);
            run.node.grant_lease(version, until);
        }
    }

    /// A chain frame from `from`.
    pub(super) fn chain_in(
        &mut self,
        from: ServerId,
        m: ChainIn,
        frame: Option<AlignedVec<16>>,
    ) -> Result<(), String> {
        let now = mono_ms() as u64;
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        let leading = matches!(r.node.mode(), Mode::Leading { .. });
        let Some(run) = &mut r.chain else {
            return Ok(()); // not in a chain (yet): the repair handshake follows
        };
        run.node.tick(now);
        match m {
            ChainIn::Core(msg) => {
                // An entry's frame, to pass on unchanged if the node forwards it now.
                run.arrived = match (&msg, frame) {
                    (ChainMsg::Propagate { version, entry }, Some(f)) => {
                        Some((*version, entry.zxid, std::rc::Rc::new(f)))
                    }
                    _ => None,
                };
                let mut acts = Vec::new();
                run.node.step(from, msg, &mut acts);
                let done = self.chain_actions(acts);
                if let Some(run) = self.repl.as_mut().and_then(|r| r.chain.as_mut()) {
                    run.arrived = None;
                }
                done
            }
            ChainIn::LeaseAsk { version, seq } if leading => {
                // A learner of this chain: the leader's remaining lease, none while
                // its gate is closed or the member is being removed.
                let may = run.mgr.as_mut().is_some_and(|m| m.asked(from, now));
                if run.in_chain(from) && may {
                    let remaining = if now < run.gate_until_ms {
                        0
                    } else {
                        run.own_until_ms.saturating_sub(now)
                    };
                    let _ = r.net.send(from, &lease_grant(version, seq, remaining));
                }
                Ok(())
            }
            ChainIn::LeaseAsk { version, seq } => {
                // The leader asks whether this server still follows it: it does, as
                // long as this link is up (looking closes it).
                if r.node.leader() == Some(from) {
                    let _ = r.net.send(from, &lease_grant(version, seq, 0));
                }
                Ok(())
            }
            ChainIn::LeaseGrant { seq, .. } if leading => {
                if let Some(round) = run.rounds.iter_mut().find(|x| x.0 == seq)
                    && !round.2.contains(&from)
                    && r.node.role_of(from) == Role::Participant
                {
                    round.2.push(from);
                }
                self.chain_count_round(seq);
                Ok(())
            }
            ChainIn::LeaseGrant {
                version,
                seq,
                remaining_ms,
            } => {
                if r.node.leader() == Some(from)
                    && let Some(sent) = run.sent_at(seq)
                {
                    let until = sent + remaining_ms.min(run.lease_ms);
                    tracing::debug!(seq, until, version, remaining_ms, "CRAQ: lease granted");
                    run.node.grant_lease(version, until);
                }
                Ok(())
            }
        }
    }

    /// A quorum-port event that concerns the chain. Returns whether the Zab node must
    /// not see it (a link between two learners is the chain's alone).
    pub(super) fn chain_link(&mut self, from: ServerId, up: bool) -> Result<bool, String> {
        let Some(r) = &mut self.repl else {
            return Ok(false);
        };
        if !r.replication.chained() {
            return Ok(false);
        }
        let me = r.node.id();
        let leader = r.node.leader();
        let peers_only = leader.is_some() && leader != Some(me) && leader != Some(from);
        let Some(run) = &mut r.chain else {
            return Ok(peers_only);
        };
        if up {
            let mut acts = Vec::new();
            run.node.link_up(from, &mut acts);
            self.chain_actions(acts)?;
        }
        // A lost member: the leader's Zab core drops it, and a tick removes it from
        // the chain (`chain_tick`).
        Ok(peers_only)
    }

    /// Learner: it serves now; a configuration that came first is taken.
    pub(super) fn chain_serve(&mut self) -> Result<(), String> {
        match self.repl.as_mut().and_then(|r| r.chain_pending.take()) {
            Some((from, cfg)) => self.chain_config_in(from, cfg),
            None => Ok(()),
        }
    }

    fn chain_look(&mut self, reason: String) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let mut acts = Vec::new();
        r.node.look(reason, &mut acts);
        self.node_actions(acts)
    }

    /// Every tick: leases, the leader's membership and its write gate.
    pub(super) fn chain_tick(&mut self) -> Result<(), String> {
        let now = mono_ms() as u64;
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        let leading = matches!(r.node.mode(), Mode::Leading { .. });
        let Some(run) = &mut r.chain else {
            return Ok(());
        };
        run.node.tick(now);
        if !leading {
            self.chain_ask_lease();
            return Ok(());
        }
        let chain = run
            .node
            .config()
            .map(|c| c.chain.clone())
            .expect("the leader configured its chain");
        let synced = r.node.synced_learners();
        let mgr = run.mgr.as_mut().expect("the leader manages");
        if let Some(next) = mgr.next(&chain, &synced, now) {
            self.chain_configure(next)?;
        }
        self.chain_lease_round();
        self.chain_release_held()
    }

    /// Leader: once the gate opened, the held txns go down the chain.
    fn chain_release_held(&mut self) -> Result<(), String> {
        let now = mono_ms() as u64;
        let r = self.repl.as_mut().expect("replicated");
        let Some(run) = &mut r.chain else {
            return Ok(());
        };
        if now < run.gate_until_ms || run.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut run.held);
        for (zxid, txn) in held {
            self.chain_propose_now(zxid, txn)?;
        }
        Ok(())
    }

    /// Leader: whether the chain (if it runs) has room for another txn.
    pub(super) fn chain_has_room(&self) -> bool {
        let Some(run) = self.repl.as_ref().and_then(|r| r.chain.as_ref()) else {
            return true;
        };
        run.node.uncommitted() + run.held.len() < crate::zab::PROPOSALS_INFLIGHT_MAX
            && run.held.len() < CHAIN_HELD_MAX
    }

    /// Leader: the shard core prepped `bytes` at `zxid`. The Zab core takes it first
    /// (it keeps the log learners synchronise from, and sends it to learners not in
    /// the chain yet); the chain replicates it.
    pub(super) fn chain_propose(&mut self, zxid: Zxid, bytes: AlignedVec) -> Result<(), String> {
        let txn: TxnBytes = Arc::from(&bytes[..]);
        let now = mono_ms() as u64;
        let r = self.repl.as_mut().expect("replicated");
        if r.chain.is_none() {
            return self.chain_look(format!("CRAQ: txn {zxid:#x} prepped without a chain"));
        }
        if crate::zab::counter_of(zxid) >= r.node.limits().zxid_counter_max {
            // Zab mode rolls the counter over without an election (`zab::leader`);
            // chain members persist from the chain, not through Zab's follower core,
            // so they would not promise the next epoch first: CRAQ takes the next
            // epoch through an election, as ZooKeeper does.
            return self.chain_look(format!(
                "CRAQ: the zxid counter of epoch {} is exhausted at {zxid:#x}; a new epoch needs an election",
                crate::zab::epoch_of(zxid)
            ));
        }
        let mut zacts = Vec::new();
        if let Err(e) = r.node.propose(zxid, txn.clone(), &mut zacts) {
            return self.chain_look(format!("CRAQ: txn {zxid:#x} refused by Zab: {e}"));
        }
        self.node_actions(zacts)?;
        let r = self.repl.as_mut().expect("replicated");
        let Some(run) = &mut r.chain else {
            return Ok(()); // carrying out Zab's actions went back to election
        };
        if now < run.gate_until_ms || !run.held.is_empty() {
            run.held.push_back((zxid, txn));
            return Ok(());
        }
        self.chain_propose_now(zxid, txn)
    }

    fn chain_propose_now(&mut self, zxid: Zxid, txn: TxnBytes) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let run = r.chain.as_mut().expect("checked by the caller");
        // Prepped here and not applied yet, so the shard core holds the txn; were it
        // gone, "touches everything" is never wrong (dirty reads ask the tail).
        let keys = self.core.keys_of(zxid);
        debug_assert!(
            keys.is_some(),
            "a proposed txn is in flight in the shard core"
        );
        let entry = Entry {
            zxid,
            prev: run.node.received(),
            txn,
            keys: keys.unwrap_or(Keys::All),
        };
        let mut acts = Vec::new();
        if let Err(e) = run.node.propose(entry, &mut acts) {
            return self.chain_look(format!("CRAQ: txn {zxid:#x} refused by the chain: {e}"));
        }
        self.chain_actions(acts)
    }

    /// A read of the shard core waits for the chain.
    pub(super) fn chain_read(&mut self, id: u64, keys: &Keys) -> Result<(), String> {
        let now = mono_ms() as u64;
        let Some(run) = self.repl.as_mut().and_then(|r| r.chain.as_mut()) else {
            self.core.read_refused(id, &mut self.actions);
            return Ok(());
        };
        run.node.tick(now);
        let mut acts = Vec::new();
        run.node.read(id, keys, &mut acts);
        self.chain_actions(acts)
    }

    /// The WAL is durable up to `durable` (this epoch's chain entries).
    /// The head's Zab core counts it as the leader's own ack.
    pub(super) fn chain_persisted(&mut self, durable: Zxid) -> Result<(), String> {
        if self.leading() {
            let r = self.repl.as_mut().expect("leading means replicated");
            let mut zacts = Vec::new();
            r.node.persisted(durable, &mut zacts);
            self.node_actions(zacts)?;
        }
        let Some(run) = self.repl.as_mut().and_then(|r| r.chain.as_mut()) else {
            return Ok(());
        };
        let mut acts = Vec::new();
        run.node.persisted(durable, &mut acts);
        self.chain_actions(acts)
    }

    /// Head: the chain committed up to `zxid`, so every member below holds that much
    /// durably; each voter among them acks it to the Zab core.
    fn chain_to_zab(&mut self, zxid: Zxid) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let Some(cfg) = r.chain.as_ref().and_then(|c| c.node.config().cloned()) else {
            return Ok(());
        };
        let me = r.node.id();
        let mut zacts = Vec::new();
        for &m in cfg.chain.iter().filter(|&&m| m != me) {
            if r.node.role_of(m) == Role::Participant {
                r.node.chain_acked(m, zxid, &mut zacts);
            }
        }
        self.node_actions(zacts)
    }

    /// Whether a Zab action of the head is the chain's business (CRAQ, once the chain
    /// runs): WAL writes and applies, and proposals, commits and informs to members
    /// of the chain, which the chain carries. (A Zab commit may even run ahead of the
    /// chain's, with acks of learners outside it; the head applies only what the
    /// chain committed, so no client sees a write the tail has not committed.)
    pub(super) fn chain_takes_over(&self, z: &crate::zab::Action) -> bool {
        use crate::zab::{Action as Z, Body};
        let Some(r) = self.repl.as_ref() else {
            return false;
        };
        let Some(run) = r.chain.as_ref() else {
            return false;
        };
        if !matches!(r.node.mode(), Mode::Leading { .. }) {
            return false;
        }
        match z {
            Z::Persist { .. } | Z::Commit { .. } => true,
            Z::Send { to, msg } => {
                matches!(
                    msg.body,
                    Body::Proposal { .. } | Body::Commit { .. } | Body::Inform { .. }
                ) && run.in_chain(*to)
            }
            _ => false,
        }
    }

    /// Carries out the chain's actions, in order.
    fn chain_actions(&mut self, acts: Vec<ChainAction>) -> Result<(), String> {
        // The head tells its Zab core once per batch, for the last txn applied.
        let mut applied = None;
        for a in acts {
            match a {
                ChainAction::Send { to, msg } => {
                    if matches!(msg, ChainMsg::Query { .. }) {
                        let queries = &self.stats.shard.chain_queries;
                        queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let r = self.repl.as_ref().expect("replicated");
                    // The entry that just arrived goes on as the bytes it came in.
                    let raw = match (&msg, r.chain.as_ref().and_then(|c| c.arrived.as_ref())) {
                        (ChainMsg::Propagate { version, entry }, Some((v, z, f)))
                            if v == version && *z == entry.zxid =>
                        {
                            Some(f.clone())
                        }
                        _ => None,
                    };
                    match raw {
                        Some(f) => {
                            let _ = r.net.send_frame(to, f);
                        }
                        None => {
                            let m: PeerMsg = to_peer(&msg);
                            let _ = r.net.send(to, &m);
                        }
                    }
                }
                ChainAction::Persist(entry) => {
                    let mut bytes = AlignedVec::with_capacity(entry.txn.len());
                    bytes.extend_from_slice(&entry.txn);
                    if self.leading() {
                        self.commit.persist(entry.zxid, bytes, &mut self.run);
                    } else if let Err(e) = self.core.learn(bytes, &mut self.actions) {
                        return self.chain_look(format!("CRAQ: entry {:#x}: {e}", entry.zxid));
                    }
                }
                ChainAction::Apply { zxid, .. } => {
                    self.core.durable(zxid, &mut self.actions);
                    applied = Some(zxid);
                }
                // Applying answers the clients of writes; a txn is applied only once
                // the tail committed it, so durable on every member of the chain (see
                // the module docs of `craq`).
                ChainAction::Answerable { .. } => {}
                ChainAction::ReadReady { id } => self.core.read_ready(id, &mut self.actions),
                ChainAction::ReadRefused { id, why } => {
                    tracing::debug!(id, why, "CRAQ: read refused");
                    self.core.read_refused(id, &mut self.actions);
                }
                ChainAction::Truncate { after } => self.truncate(after)?,
                ChainAction::SendSnapshot { to, .. } => {
                    return self.chain_look(format!(
                        "CRAQ: chain member {to} needs a snapshot; it syncs in a new epoch"
                    ));
                }
            }
        }
        match applied {
            Some(zxid) if self.leading() => self.chain_to_zab(zxid),
            _ => Ok(()),
        }
    }
}
