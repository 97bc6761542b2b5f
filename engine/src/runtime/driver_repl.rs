//! The shard driver's replication side: it carries out the pure [`Node`]'s actions
//! with the WAL, the epoch files, the quorum links and the shard core, and feeds the
//! node what the links, the election, the disk and the clock say.
//!
//! How the pieces meet (ZooKeeper's request processors, one core):
//! - Leader: a client's write (or a learner's, `PeerIn::Request`) is prepped by the
//!   shard core with the zxid the Zab leader hands out next (checked before prep, so
//!   a prepped txn is always proposed); the core's `Persist` becomes
//!   `Leader::propose`, whose `Persist` appends to the WAL and whose `Send`s go to the
//!   followers; a flush reports `persisted` (the leader's own vote); the leader's
//!   `Commit` applies through `ShardCore::durable`, which answers the clients.
//! - Learner: the leader's `Proposal` is persisted as it arrived (`ShardCore::learn`)
//!   and acked once durable; its `Commit` applies; the core's `Forward` and
//!   `ForwardSync` go to the leader; touched sessions ride on pings.
//! - `Look`: every client connection closes (ZooKeeper's behaviour: clients move to
//!   a server with a quorum), queued requests are answered `ConnectionLoss`, the WAL
//!   is made durable and forgets what was prepped but never logged, and election
//!   starts from the durable history.
//!
//! [`Node`]: crate::peer::node::Node

use std::sync::Arc;

use rkyv::util::AlignedVec;
use transport::peer::{self, PeerMsg, SNAP_CHUNK_BYTES_MAX};

use super::super::msg::{PeerIn, ToConn, ToShard};
use super::super::replica::{
    PING_TOUCHES_MAX, Replica, SNAP_HELD_BYTES_MAX, SNAP_PACE_POLL_MS, SNAP_QUEUE_BYTES_MAX,
    SNAP_RECEIVE_BYTES_MAX, SnapIn, SnapOut, SnapsOut,
};
use super::{Driver, Outlet};
use crate::peer::forward;
use crate::peer::links::LinkId;
use crate::peer::net::PeerNet;
use crate::peer::node::{Mode, NodeAction};
use crate::shard::{Now, Role as ShardRole, ShardCore};
use crate::txn::Db;
use crate::zab::election::Decision;
use crate::zab::{Action as ZabAction, Body, History, Msg, ServerId, TxnBytes, Zxid, make_zxid};

/// Ticks between the election rounds of a server that is not a member.
pub const NON_MEMBER_LOOK_TICKS: u64 = 10;

impl<O: Outlet> Driver<O> {
    /// Whether clients may be served: standalone always; a member once in broadcast.
    pub(super) fn serving(&self) -> bool {
        self.repl.as_ref().is_none_or(|r| r.node.serving()) && self.chain_serving()
    }

    /// Whether this server leads (its shard core's writes become proposals).
    pub(super) fn leading(&self) -> bool {
        self.repl
            .as_ref()
            .is_some_and(|r| matches!(r.node.mode(), Mode::Leading { .. }))
    }

    /// A learner remembers sessions its clients touch, for its next ping (nothing to
    /// do standalone or leading: on every request's path, so that is checked first).
    pub(super) fn touched(&mut self, session: i64) {
        let Some(r) = &mut self.repl else { return };
        if matches!(r.node.mode(), Mode::Leading { .. }) || r.touched.len() >= PING_TOUCHES_MAX {
            return;
        }
        let timeout = self
            .core
            .db()
            .sessions
            .get(session)
            .map_or(0, |s| s.timeout_ms);
        r.touched.insert(session, timeout);
    }

    /// Whether a write may be prepped now: the leader's next zxid is the one prep
    /// would give (so the txn will be proposed); always for learners and standalone.
    pub(super) fn leader_takes_write(&self) -> bool {
        if !self.leading() {
            return true;
        }
        // Zab owns zxids (in CRAQ mode too: it keeps the log), and a running chain
        // needs room.
        let r = self.repl.as_ref().expect("leading means replicated");
        r.node.next_zxid() == Ok(self.core.next_zxid()) && self.chain_has_room()
    }

    fn history(&self) -> History {
        let r = self.repl.as_ref().expect("replicated");
        let e = r.epochs.epochs();
        History {
            accepted_epoch: e.accepted,
            current_epoch: e.current,
            last_zxid: self.syncer.durable_zxid() as i64,
        }
    }

    /// The shard core prepped `bytes` at `zxid`: the Zab leader proposes it.
    pub(super) fn propose(&mut self, zxid: i64, bytes: AlignedVec) -> Result<(), String> {
        if self.craq() {
            return self.chain_propose(zxid, bytes);
        }
        let txn: TxnBytes = Arc::from(&bytes[..]);
        let mut acts = Vec::new();
        let r = self.repl.as_mut().expect("leading means replicated");
        if let Err(e) = r.node.propose(zxid, txn, &mut acts) {
            // Checked before prep; an internal txn (expiry, reaping) past the
            // window is the only way here. Stepping down drops what was prepped.
            r.node
                .look(format!("proposal {zxid:#x} refused: {e}"), &mut acts);
        }
        self.node_actions(acts)
    }

    pub(super) fn forward(
        &mut self,
        session: i64,
        cxid: i32,
        auth: &[transport::jute::Id],
        op: &crate::op::Op,
    ) {
        let Some(r) = &self.repl else { return };
        let Some(leader) = r.node.leader() else {
            return;
        };
        match forward::encode(auth, op) {
            Ok(body) => {
                let msg = PeerMsg::Request(peer::Request {
                    session,
                    cxid,
                    op: 0,
                    body,
                });
                // Lost with the link: the leader-lost path closes the client's
                // connection (its outcome is unknown).
                let _ = r.net.send(leader, &msg);
            }
            Err(e) => tracing::error!("cannot forward a write: {e}"),
        }
    }

    pub(super) fn forward_sync(&mut self, session: i64, cxid: i32) {
        let Some(r) = &self.repl else { return };
        if let Some(leader) = r.node.leader() {
            let msg = PeerMsg::Sync(peer::Sync {
                session,
                cxid,
                zxid: 0,
            });
            let _ = r.net.send(leader, &msg);
        }
    }

    /// A leader whose history is applied starts serving.
    pub(super) fn maybe_serve(&mut self) -> Result<(), String> {
        let applied_all = self.core.inflight() == 0;
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        let mut acts = Vec::new();
        r.node.maybe_serve(applied_all, &mut acts);
        if acts.is_empty() {
            return Ok(());
        }
        self.node_actions(acts)?;
        self.execute()
    }

    /// Leader: tells prep which voters are in sync with it, itself included: what a
    /// reconfig's quorum check counts (`Prep::set_synced_voters`). Called on every
    /// tick and after every peer event that may start or end a sync, so a reconfig
    /// sent right after the ensemble settles sees the followers that just synced.
    fn refresh_synced_voters(&mut self) {
        let Some(r) = &self.repl else {
            return;
        };
        if !matches!(r.node.mode(), Mode::Leading { .. }) {
            return;
        }
        let mut voters: std::collections::BTreeSet<u64> = r
            .node
            .synced_learners()
            .into_iter()
            .filter(|&id| r.node.role_of(id) == crate::zab::Role::Participant)
            .collect();
        voters.insert(r.node.id());
        let mut carried = r.carried_out.clone();
        carried.insert(r.node.id(), r.config_stored);
        self.core.set_synced_voters(voters);
        self.core.set_carried_out(carried);
    }

    pub(super) fn repl_tick(&mut self) -> Result<(), String> {
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        let mut acts = Vec::new();
        if r.installing.is_some()
            && let Some(leader) = r.node.leader()
        {
            // Loading its leader's SNAP, the learner reads nothing new (its inbox may
            // pause the links): its own work is not the leader's silence.
            r.node.heard(leader);
        }
        r.node.tick(&mut acts);
        if !r.node.is_member() && self.ticks.is_multiple_of(NON_MEMBER_LOOK_TICKS) {
            // Out of the members (removed, or started before the reconfig that adds
            // it): it asks again now and then, so the push of newer members tells it
            // when it is in.
            let own = self.history();
            let r = self.repl.as_mut().expect("checked above");
            r.election.look(own.last_zxid, own.current_epoch);
        }
        self.refresh_synced_voters();
        let r = self.repl.as_mut().expect("checked above");
        // Pings: the leader to every synchronised learner, a learner to its leader
        // with the sessions its clients touched.
        match r.node.mode() {
            Mode::Leading { .. } => {
                let zxid = r.node.leader_core().map_or(0, |l| l.committed_zxid());
                let ping = ping(zxid, Vec::new(), r.config_stored);
                if let Some(frame) = encode(&ping) {
                    for to in r.node.synced_learners() {
                        let preparing = r.snap_out.borrow().get(&to).is_some_and(|o| !o.streaming);
                        if preparing {
                            // Nothing of its SNAP is out yet (serialising a big tree
                            // takes seconds): a ping keeps its initLimit from running
                            // out; the learner only notes that it heard us.
                            let _ = r.net.send_frame(to, frame.clone());
                        } else {
                            send_held(r, to, frame.clone());
                        }
                    }
                }
            }
            Mode::Following { leader, .. } | Mode::Observing { leader, .. } => {
                let sessions = std::mem::take(&mut r.touched)
                    .into_iter()
                    .map(|(session, timeout_ms)| peer::SessionTouch {
                        session,
                        timeout_ms,
                    })
                    .collect();
                let ping = ping(self.core.logged_zxid(), sessions, r.config_stored);
                let _ = r.net.send(leader, &ping);
            }
            Mode::Looking => {}
        }
        r.link_stats
            .traffic(std::time::Instant::now(), &r.net.traffic());
        self.publish_mode();
        self.node_actions(acts)?;
        self.chain_tick()
    }

    fn publish_mode(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(r) = &self.repl else { return };
        use super::super::stats::{MODE_FOLLOWER, MODE_LEADER, MODE_LOOKING, MODE_OBSERVER};
        // As ZooKeeper's four-letter words: a server shows its role once it serves
        // (CRAQ: once it holds a read lease too).
        let serving = self.serving();
        let code = match r.node.mode() {
            _ if !serving => MODE_LOOKING,
            Mode::Looking => MODE_LOOKING,
            Mode::Leading { .. } => MODE_LEADER,
            Mode::Following { .. } => MODE_FOLLOWER,
            Mode::Observing { .. } => MODE_OBSERVER,
        };
        let sh = &self.stats.shard;
        sh.mode.store(code, Relaxed);
        let synced = r.node.synced_learners();
        let observers = synced
            .iter()
            .filter(|&&id| r.node.role_of(id) == crate::zab::Role::Observer)
            .count();
        sh.synced_learners.store(synced.len() as u64, Relaxed);
        sh.synced_observers.store(observers as u64, Relaxed);
        sh.learners.store(r.net.up().len() as u64, Relaxed);
        let l = r.node.leader_core();
        let st = l.map(|l| l.stats().clone()).unwrap_or_default();
        sh.proposals_inflight
            .store(l.map_or(0, |l| l.inflight() as u64), Relaxed);
        sh.syncs_diff.store(st.syncs_diff, Relaxed);
        sh.epoch_rollovers.store(st.rollovers, Relaxed);
        let chain = r.chain.as_ref().and_then(|c| {
            let cfg = c.node.config()?;
            Some((
                cfg.position(r.node.id())?,
                cfg.chain.len(),
                c.node.uncommitted(),
            ))
        });
        let (pos, members, uncommitted) = chain.unwrap_or((0, 0, 0));
        sh.chain_position.store(pos as u64, Relaxed);
        sh.chain_members.store(members as u64, Relaxed);
        sh.chain_uncommitted.store(uncommitted as u64, Relaxed);
        sh.syncs_trunc.store(st.syncs_trunc, Relaxed);
        sh.syncs_snap.store(st.syncs_snap, Relaxed);
        *sh.links.lock().unwrap_or_else(|e| e.into_inner()) = r.link_stats.figures_all();
    }

    pub(super) fn repl_persisted(&mut self, durable: i64) -> Result<(), String> {
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        if r.chain.is_some() {
            return self.chain_persisted(durable);
        }
        let mut acts = Vec::new();
        r.node.persisted(durable, &mut acts);
        self.node_actions(acts)
    }

    pub(super) fn decided(&mut self, d: Decision) -> Result<(), String> {
        let own = self.history();
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        if r.election.decided().as_ref() != Some(&d) {
            return Ok(()); // a decision of a round since abandoned
        }
        let mut acts = Vec::new();
        r.node.decided(&d, own, &mut acts);
        self.publish_mode();
        self.node_actions(acts)
    }

    pub(super) fn peer_event(
        &mut self,
        from: ServerId,
        ev: PeerIn,
        now: Now,
    ) -> Result<(), String> {
        // A link between two learners is the chain's alone (CRAQ).
        if matches!(ev, PeerIn::Up | PeerIn::Down)
            && self.chain_link(from, matches!(ev, PeerIn::Up))?
        {
            return Ok(());
        }
        // Only a new link needs the durable history (discovery reports it).
        let own = matches!(ev, PeerIn::Up).then(|| self.history());
        let Some(r) = &mut self.repl else {
            return Ok(());
        };
        if !matches!(ev, PeerIn::Up | PeerIn::Down | PeerIn::Bad(_)) {
            r.node.heard(from); // anything the peer sent shows it alive
        }
        // Acks (the hot path) never change who is in sync; the rest may.
        let sync_may_change = match &ev {
            PeerIn::Zab(msg) => !matches!(msg.body, Body::Ack { .. }),
            PeerIn::Up | PeerIn::Down | PeerIn::Bad(_) => true,
            // A learner that carried out new members says so at once.
            PeerIn::Ping { config, .. } => r.carried_out.get(&from) != Some(config),
            _ => false,
        };
        let mut acts = Vec::new();
        match ev {
            PeerIn::Up => {
                let own = own.expect("computed for Up");
                r.node.link_up(from, own, &mut acts)
            }
            PeerIn::Down => {
                r.snap_in = None;
                r.snap_out.borrow_mut().remove(&from);
                r.node.link_down(from, &mut acts)
            }
            PeerIn::Zab(msg) => {
                if let Body::Ack { zxid } = msg.body {
                    r.link_stats.acked(from, zxid, std::time::Instant::now());
                }
                r.node.step(from, msg, &mut acts)
            }
            PeerIn::Bad(why) => {
                tracing::warn!(peer = from, "dropping the quorum link: {why}");
                r.net.close(from, why);
            }
            PeerIn::Snap { zxid, total_bytes } => {
                r.snap_in = None; // an unfinished one is dropped (its temp file too)
                if total_bytes > SNAP_RECEIVE_BYTES_MAX {
                    let why = format!("a snapshot of {total_bytes} bytes is over the limit");
                    r.net.close(from, why);
                } else {
                    // Straight to a file as it arrives: never whole in memory here.
                    match self.snapshots.writer(zxid as u64) {
                        Ok(writer) => {
                            r.snap_in = Some(SnapIn {
                                zxid,
                                total: total_bytes,
                                writer,
                            });
                            return self.maybe_snapshot_complete(from);
                        }
                        Err(e) => {
                            tracing::error!("cannot store the leader's snapshot: {e}");
                            r.net.close(from, format!("cannot store its snapshot: {e}"));
                        }
                    }
                }
            }
            PeerIn::SnapChunk { offset, bytes } => {
                let ok = match &mut r.snap_in {
                    Some(s) => {
                        let at = s.writer.len();
                        let fits = offset == at && at + bytes.len() as u64 <= s.total;
                        fits && s
                            .writer
                            .append(&bytes)
                            .map_err(|e| tracing::error!("cannot store the leader's snapshot: {e}"))
                            .is_ok()
                    }
                    None => false,
                };
                if !ok {
                    r.snap_in = None;
                    r.net
                        .close(from, "a snapshot chunk out of place or not stored".into());
                } else {
                    return self.maybe_snapshot_complete(from);
                }
            }
            PeerIn::UpToDate => r.node.up_to_date(from, &mut acts),
            PeerIn::Chain(m, frame) => return self.chain_in(from, m, frame),
            PeerIn::ChainConfig(cfg) => return self.chain_config_in(from, cfg),
            PeerIn::Ping {
                sessions, config, ..
            } => {
                if matches!(r.node.mode(), Mode::Leading { .. }) {
                    r.carried_out.insert(from, config);
                    let db = self.core.db_mut();
                    for (s, _) in sessions {
                        db.sessions.touch(s, now.mono_ms);
                    }
                }
            }
            PeerIn::Request {
                session,
                cxid,
                body,
            } => {
                return self.forwarded(from, session, cxid, &body, now);
            }
            PeerIn::Sync {
                session,
                cxid,
                zxid,
            } => {
                let chain_committed = r.chain.as_ref().map(|c| c.node.committed());
                if let Some(l) = r.node.leader_core() {
                    let zxid = chain_committed.unwrap_or(l.committed_zxid());
                    let msg = PeerMsg::Sync(peer::Sync {
                        session,
                        cxid,
                        zxid,
                    });
                    if let Some(frame) = encode(&msg) {
                        send_held(r, from, frame);
                    }
                } else if r.node.leader() == Some(from) {
                    self.core.synced(session, cxid, zxid, &mut self.actions);
                }
            }
        }
        let done = self.node_actions(acts);
        if sync_may_change {
            self.refresh_synced_voters();
        }
        done
    }

    /// Leader: a learner's client write.
    fn forwarded(
        &mut self,
        from: ServerId,
        session: i64,
        cxid: i32,
        body: &[u8],
        now: Now,
    ) -> Result<(), String> {
        let r = self.repl.as_ref().expect("replicated");
        let (auth, op) = match forward::decode(body) {
            Ok(x) => x,
            Err(e) => {
                r.net.close(from, e);
                return Ok(());
            }
        };
        let taken = self.leader_takes_write()
            && self.leading()
            && self
                .core
                .request_forwarded(session, cxid, &auth, &op, now, &mut self.actions);
        if !taken {
            // Its clients see their connections lost and retry elsewhere or later.
            r.net
                .close(from, "the leader cannot take a forwarded write now".into());
        }
        Ok(())
    }

    fn maybe_snapshot_complete(&mut self, from: ServerId) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let done = matches!(&r.snap_in, Some(s) if s.writer.len() == s.total);
        if !done {
            return Ok(());
        }
        let zxid = r.snap_in.as_ref().map_or(0, |s| s.zxid);
        let epoch = r.link_epochs.borrow().get(&from).copied().unwrap_or(0);
        let mut acts = Vec::new();
        r.node
            .step(from, Msg::new(epoch, Body::Snap { zxid }), &mut acts);
        self.node_actions(acts)
    }

    /// Carries out the node's actions, in order.
    pub(super) fn node_actions(&mut self, acts: Vec<NodeAction>) -> Result<(), String> {
        for a in acts {
            self.node_action(a)?;
        }
        Ok(())
    }

    fn node_action(&mut self, a: NodeAction) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        match a {
            NodeAction::Zab(z) => return self.zab_action(z),
            NodeAction::PersistAccepted(e) => r
                .epochs
                .store_accepted(e)
                .map_err(|e| format!("cannot write acceptedEpoch: {e}"))?,
            NodeAction::Policy(p) => {
                use crate::peer::links::Policy;
                let p = match p {
                    Policy::ToLeader(l) if r.replication.chained() => Policy::ToLeaderAndPeers(l),
                    p => p,
                };
                r.net.set_policy(p)
            }
            NodeAction::Establish { epoch } => return self.establish(epoch),
            NodeAction::Accepted { epoch } => {
                let (last, committed) = (self.core.logged_zxid(), self.core.db().last_zxid());
                let mut acts = Vec::new();
                r.node.start_follower(epoch, last, committed, &mut acts);
                return self.node_actions(acts);
            }
            NodeAction::UpToDate { to } => {
                if let Some(frame) = encode(&PeerMsg::UpToDate) {
                    send_held(r, to, frame);
                }
            }
            NodeAction::Serve { epoch } => {
                r.serve_epoch = Some(epoch);
                let leading = matches!(r.node.mode(), Mode::Leading { .. });
                if leading {
                    self.core.lead_from(make_zxid(epoch, 0));
                }
                tracing::info!(epoch, mode = ?self.repl.as_ref().map(|r| r.node.mode()), "serving clients");
                if leading && self.craq() {
                    self.chain_lead(epoch)?;
                } else if self.craq() {
                    self.chain_serve()?;
                }
                self.publish_mode();
            }
            NodeAction::Close { peer, reason } => {
                tracing::info!(peer, %reason, "closing a quorum link");
                r.net.close(peer, reason);
            }
            NodeAction::Look { reason } => return self.look(&reason),
        }
        Ok(())
    }

    fn zab_action(&mut self, z: ZabAction) -> Result<(), String> {
        if self.chain_takes_over(&z) {
            return Ok(());
        }
        let r = self.repl.as_mut().expect("replicated");
        match z {
            ZabAction::Persist { zxid, txn } => {
                let mut bytes = AlignedVec::with_capacity(txn.len());
                bytes.extend_from_slice(&txn);
                if self.leading() {
                    self.commit.persist(zxid, bytes, &mut self.run);
                } else if let Err(e) = self.core.learn(bytes, &mut self.actions) {
                    let mut acts = Vec::new();
                    let r = self.repl.as_mut().expect("replicated");
                    r.node
                        .look(format!("leader's txn {zxid:#x}: {e}"), &mut acts);
                    return self.node_actions(acts);
                }
            }
            ZabAction::Send { to, msg } => {
                if let Body::LeaderInfo = msg.body {
                    r.link_epochs.borrow_mut().insert(to, msg.epoch);
                }
                // A proposal or commit goes to every follower in turn: encoded once.
                let key = match msg.body {
                    Body::Proposal { zxid, .. } => Some((1u8, zxid)),
                    Body::Commit { zxid } => Some((2u8, zxid)),
                    _ => None,
                };
                if let (Some(k), Some((ck, frame))) = (key, &r.frame_cache)
                    && k == *ck
                {
                    send_held(r, to, frame.clone());
                    return Ok(());
                }
                let m = match crate::zab::wire::msg_to_peer(r.node.id(), &msg) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::error!(to, "cannot send {msg:?}: {e}");
                        return Ok(());
                    }
                };
                let Some(frame) = encode(&m) else {
                    return Ok(());
                };
                send_held(r, to, frame.clone());
                if let Some((1, zxid)) = key {
                    r.link_stats.proposed(zxid, std::time::Instant::now());
                }
                r.frame_cache = key.map(|k| (k, frame));
            }
            ZabAction::Commit { upto_zxid } => {
                self.core.durable(upto_zxid, &mut self.actions);
            }
            ZabAction::SendSnapshot { to, zxid } => return self.send_snapshot(to, zxid),
            ZabAction::Disconnect { to } => r.net.close(to, "lagging too far".into()),
            ZabAction::Truncate { after_zxid } => self.truncate(after_zxid)?,
            ZabAction::InstallSnapshot { zxid } => return self.install_snapshot(zxid),
            ZabAction::SetCurrentEpoch(e) => r
                .epochs
                .store_current(e)
                .map_err(|e| format!("cannot write currentEpoch: {e}"))?,
            // Only ever raised: a txn of an older rollover in a DIFF promises nothing new.
            ZabAction::SetAcceptedEpoch(e) if e > r.epochs.epochs().accepted => r
                .epochs
                .store_accepted(e)
                .map_err(|e| format!("cannot write acceptedEpoch: {e}"))?,
            ZabAction::SetAcceptedEpoch(_) => {}
        }
        Ok(())
    }

    /// Leader: discovery established `epoch`; the broadcast core starts over the
    /// durable log after the applied state.
    fn establish(&mut self, epoch: crate::zab::Epoch) -> Result<(), String> {
        let base = self.core.db().last_zxid();
        let mut history: Vec<(Zxid, TxnBytes)> = Vec::new();
        for rec in self.wal.read_from(base as u64 + 1) {
            let rec = rec.map_err(|e| format!("reading the WAL to lead: {e}"))?;
            history.push((rec.zxid as i64, Arc::from(rec.payload)));
        }
        tracing::info!(
            epoch,
            base = format_args!("{base:#x}"),
            uncommitted = history.len(),
            "leading: epoch established"
        );
        let mut acts = Vec::new();
        let r = self.repl.as_mut().expect("replicated");
        r.link_stats.reset_proposals();
        r.node.start_leader(epoch, base, base, history, &mut acts);
        self.node_actions(acts)
    }

    /// Leader SNAP: the applied state's copy-on-write image (microseconds here) is
    /// serialised on the blocking pool and streamed in chunks as the link drains
    /// ([`stream_snapshot`]), so neither the leader's writes nor its memory wait on
    /// the size of the tree; what the leader sends this learner meanwhile is held and
    /// follows the snapshot.
    fn send_snapshot(&mut self, to: ServerId, zxid: Zxid) -> Result<(), String> {
        if self.core.db().last_zxid() != zxid {
            // CRAQ: the chain applied past the Zab leader's history since the epoch
            // began; the next epoch synchronises this learner from one state.
            let r = self.repl.as_mut().expect("replicated");
            let mut acts = Vec::new();
            r.node.look(
                format!("learner {to} needs a snapshot at {zxid:#x}, the chain moved on"),
                &mut acts,
            );
            return self.node_actions(acts);
        }
        let image = self.core.db().snapshot_image();
        debug_assert_eq!(image.last_zxid(), zxid, "a SNAP sends the applied state");
        let r = self.repl.as_mut().expect("replicated");
        let Some(link) = r.net.link_to(to) else {
            return Ok(());
        };
        r.snap_tokens += 1;
        let token = r.snap_tokens;
        r.snap_out.borrow_mut().insert(
            to,
            SnapOut {
                token,
                ..SnapOut::default()
            },
        );
        let (net, outs) = (r.net.clone(), r.snap_out.clone());
        glommio::spawn_local(async move {
            let bytes = glommio::executor()
                .spawn_blocking(move || image.to_bytes())
                .await;
            stream_snapshot(net, outs, link, token, zxid, bytes).await;
        })
        .detach();
        Ok(())
    }

    /// Follower TRUNC: the log ends at `zxid` from now on.
    pub(super) fn truncate(&mut self, zxid: Zxid) -> Result<(), String> {
        self.commit.drain_held(&mut self.run);
        self.append_run()?;
        tracing::info!(
            after = format_args!("{zxid:#x}"),
            "truncating the log (TRUNC)"
        );
        self.wal
            .truncate_after(zxid as u64)
            .map_err(|e| format!("TRUNC failed: {e}"))?;
        let durable = (self.syncer.durable_zxid() as i64).min(zxid);
        self.commit.reset(zxid, durable);
        self.core.truncate_after(zxid);
        Ok(())
    }

    /// Follower SNAP: the received image is made durable, read back and loaded into a
    /// `Db` on the blocking pool (seconds for a large tree), so this core goes on
    /// meanwhile: it pings its leader (which would otherwise drop a silent learner),
    /// and what the leader sends after the snapshot waits in
    /// [`super::super::replica::Installing`] until [`Driver::installed`].
    fn install_snapshot(&mut self, zxid: Zxid) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let Some(snap) = r.snap_in.take() else {
            let mut acts = Vec::new();
            r.node
                .look("InstallSnapshot without an image".into(), &mut acts);
            return self.node_actions(acts);
        };
        debug_assert_eq!(snap.zxid, zxid, "the image is the one announced");
        debug_assert!(r.installing.is_none(), "one SNAP at a time");
        r.installing = Some(super::super::replica::Installing {
            zxid,
            queued: Default::default(),
        });
        let (store, inbox, config) = (
            self.snapshots.clone(),
            self.inbox.clone(),
            self.session_config,
        );
        glommio::spawn_local(async move {
            let result = glommio::executor()
                .spawn_blocking(move || load_snapshot(snap, &store, zxid, config))
                .await;
            inbox.push(ToShard::Installed { zxid, result });
        })
        .detach();
        Ok(())
    }

    /// The SNAP's `Db` is loaded (or failed): it replaces the state and the log, then
    /// what arrived meanwhile is handled in order.
    pub(super) fn installed(
        &mut self,
        zxid: Zxid,
        result: Result<Box<Db>, String>,
        now: Now,
    ) -> Result<(), String> {
        let r = self.repl.as_mut().expect("replicated");
        let Some(installing) = r.installing.take_if(|i| i.zxid == zxid) else {
            // Given up meanwhile (back to election): a later sync starts over.
            tracing::info!(
                zxid = format_args!("{zxid:#x}"),
                "a SNAP loaded too late, dropped"
            );
            return Ok(());
        };
        let db = result?;
        self.append_run()?;
        self.wal
            .reset_to(zxid as u64)
            .map_err(|e| format!("cannot reset the WAL to the snapshot: {e}"))?;
        self.commit.reset(zxid, zxid);
        let mut core = ShardCore::new(*db, self.prep_config.clone());
        core.set_role(ShardRole::Learner);
        let old = std::mem::replace(&mut self.core, core);
        self.snapshot_installed(zxid);
        // Freeing the old tree and trimming the heap took 1.3 s at 1M znodes, during
        // which this core answered nothing: the blocking pool does it.
        glommio::spawn_local(async move {
            let _ = glommio::executor()
                .spawn_blocking(move || {
                    drop(old);
                    super::super::driver::release_freed_heap();
                })
                .await;
        })
        .detach();
        self.stats.shard.publish_db(self.core.db());
        tracing::info!(
            zxid = format_args!("{zxid:#x}"),
            queued = installing.queued.len(),
            "installed the leader's snapshot (SNAP)"
        );
        let mut acts = Vec::new();
        let r = self.repl.as_mut().expect("replicated");
        r.node.persisted(zxid, &mut acts);
        self.node_actions(acts)?;
        let mut queued = installing.queued;
        while let Some((from, ev)) = queued.pop_front() {
            let r = self.repl.as_mut().expect("replicated");
            if let Some(next) = &mut r.installing {
                // Another SNAP started among them: the rest waits behind it, still
                // counted as pending.
                next.queued.push_back((from, ev));
                next.queued.append(&mut queued);
                break;
            }
            r.peer_pending.set(r.peer_pending.get().saturating_sub(1));
            self.peer_event(from, ev, now)?;
            self.execute()?;
        }
        Ok(())
    }

    /// Back to election (see the module docs).
    pub(super) fn look(&mut self, reason: &str) -> Result<(), String> {
        let mut out = Vec::new();
        // No reply for what was in flight (its outcome is unknown): every client
        // connection closes, those with queued requests included.
        let mut conns = self.core.leader_lost();
        conns.extend(self.clients.conns());
        conns.sort_unstable_by_key(|c| (c.core, c.id));
        conns.dedup();
        for conn in conns {
            out.push(ToConn::Close { conn });
        }
        self.route(out);
        self.core.set_role(ShardRole::Learner);
        self.commit.drain_held(&mut self.run);
        self.append_run()?;
        let (_, durable) = self
            .syncer
            .flush_tagged()
            .map_err(|e| format!("WAL flush failed, stopping: {e}"))?;
        let durable = durable as i64;
        self.commit.reset(durable, durable);
        self.core.truncate_after(durable);
        let own = self.history();
        let r = self.repl.as_mut().expect("replicated");
        r.snap_in = None;
        if let Some(i) = r.installing.take() {
            // Its events are dropped with the link they came on; the load finishes
            // unused.
            r.peer_pending
                .set(r.peer_pending.get().saturating_sub(i.queued.len()));
        }
        r.snap_out.borrow_mut().clear();
        r.touched.clear();
        r.chain = None;
        r.chain_pending = None;
        r.serve_epoch = None;
        r.link_epochs.borrow_mut().clear();
        tracing::info!(%reason, last_zxid = format_args!("{:#x}", own.last_zxid), "looking for a leader");
        r.election.look(own.last_zxid, own.current_epoch);
        self.publish_mode();
        Ok(())
    }
}

/// A ping (`peer::Ping`): the sender's last zxid, the sessions its clients touched
/// (a learner's) and the version of the members it carried out.
pub(super) fn ping(zxid: Zxid, sessions: Vec<peer::SessionTouch>, config: Zxid) -> PeerMsg {
    PeerMsg::Ping(peer::Ping {
        zxid,
        sessions,
        config,
    })
}

/// A frame for `to`: held behind a snapshot on its way to it, else queued.
fn send_held(r: &Replica, to: ServerId, frame: std::rc::Rc<AlignedVec<16>>) {
    let mut outs = r.snap_out.borrow_mut();
    if let Some(o) = outs.get_mut(&to) {
        o.held_bytes += frame.len();
        o.held.push(frame);
        if o.held_bytes > SNAP_HELD_BYTES_MAX {
            outs.remove(&to);
            drop(outs);
            r.net
                .close(to, "too much held behind a snapshot to it".into());
        }
        return;
    }
    drop(outs);
    let _ = r.net.send_frame(to, frame);
}

fn encode(msg: &PeerMsg) -> Option<std::rc::Rc<AlignedVec<16>>> {
    let mut frame = AlignedVec::<16>::new();
    match transport::peer::encode_frame(msg, &mut frame) {
        Ok(_) => Some(std::rc::Rc::new(frame)),
        Err(e) => {
            tracing::error!("cannot encode {}: {e}", msg.name());
            None
        }
    }
}

/// Sends snapshot `token` (`bytes`, at `zxid`) on `link`, a chunk at a time while the
/// link has less than [`SNAP_QUEUE_BYTES_MAX`] queued, then the frames held behind it;
/// gives up, dropping them, once the link or the snapshot's turn is gone (the learner
/// syncs again on its next link).
async fn stream_snapshot(
    net: std::rc::Rc<PeerNet>,
    outs: SnapsOut,
    link: LinkId,
    token: u64,
    zxid: Zxid,
    bytes: AlignedVec,
) {
    let to = link.peer;
    let ours = |outs: &SnapsOut| outs.borrow().get(&to).is_some_and(|o| o.token == token);
    let live = |net: &PeerNet| net.link_to(to) == Some(link);
    let give_up = |outs: &SnapsOut| {
        if ours(outs) {
            outs.borrow_mut().remove(&to);
        }
    };
    tracing::info!(
        to,
        zxid = format_args!("{zxid:#x}"),
        bytes = bytes.len(),
        "sending a snapshot"
    );
    if let Some(o) = outs.borrow_mut().get_mut(&to).filter(|o| o.token == token) {
        o.streaming = true; // pings queue behind the chunks from now on
    }
    let head = crate::zab::wire::snap_to_peer(zxid, bytes.len() as u64);
    if !ours(&outs) || !live(&net) || !net.send(to, &head) {
        return give_up(&outs);
    }
    for (i, chunk) in bytes.chunks(SNAP_CHUNK_BYTES_MAX).enumerate() {
        while live(&net) && net.queued_bytes(link) > SNAP_QUEUE_BYTES_MAX {
            glommio::timer::sleep(std::time::Duration::from_millis(SNAP_PACE_POLL_MS)).await;
        }
        let m = PeerMsg::SnapChunk(peer::SnapChunk {
            offset: (i * SNAP_CHUNK_BYTES_MAX) as u64,
            bytes: chunk.to_vec(),
        });
        if !ours(&outs) || !live(&net) || !net.send(to, &m) {
            return give_up(&outs);
        }
    }
    // Done: what was held goes out in order, and from now on frames go straight.
    let held = outs
        .borrow_mut()
        .remove(&to)
        .map(|o| o.held)
        .unwrap_or_default();
    for f in held {
        if !net.send_frame(to, f) {
            break;
        }
    }
}

/// On the blocking pool: the received snapshot durable under its name, read back and
/// loaded (one copy in memory while the tree is built, not the chunks as well). A
/// snapshot that does not load is removed and the server stops (as before).
fn load_snapshot(
    snap: super::super::replica::SnapIn,
    store: &wal::SnapshotStore,
    zxid: Zxid,
    config: crate::session::SessionConfig,
) -> Result<Box<Db>, String> {
    snap.writer
        .finish()
        .map_err(|e| format!("cannot store the leader's snapshot: {e}"))?;
    let file = store
        .read_file(zxid as u64)
        .map_err(|e| format!("cannot read back the leader's snapshot: {e}"))?;
    match Db::restore(file.payload(), config, super::super::clock::mono_ms()) {
        Ok(db) => Ok(Box::new(db)),
        Err(e) => {
            let _ = store.remove(zxid as u64);
            Err(format!(
                "the leader's snapshot {zxid:#x} does not load: {e}"
            ))
        }
    }
}
