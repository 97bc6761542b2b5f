//! The IO side of one server's Zab group, on the shard's core: the quorum port's
//! links ([`PeerNet`]), the election runner, the epoch files, and the conversion of
//! what arrives into [`ToShard::Peer`] / [`ToShard::Decided`] messages for the shard
//! driver, which owns the pure [`Node`] and carries out its actions (`driver.rs`).
//!
//! Frames are validated by the links; here each is read in place and turned into a
//! [`PeerIn`] with the epoch its link accepted (`zab::wire`): a learner's link takes
//! the epoch of the `LeaderInfo` it received, a leader's link the epoch it offered
//! (recorded when the driver sends `LeaderInfo`). A message the link may not carry
//! (before an epoch) becomes [`PeerIn::Bad`] and the
//! driver drops that link.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use transport::peer::{
    ArchivedPeerMsg, HELLO_PORT_ELECTION, HELLO_PORT_QUORUM, PING_SESSIONS_MAX,
    SNAP_CHUNK_BYTES_MAX,
};

use super::epochs::EpochFiles;
use super::mailbox::Mailbox;
use super::msg::{PeerIn, ToShard};
use crate::config::Config;
use crate::config::ensemble::Ensemble;
use crate::craq::ChainMsg;
use crate::craq::wire::ChainIn;
use crate::peer::elect::{ElectionRunner, election_timing_with};
use crate::peer::links::LINK_QUEUE_BYTES_MAX;
use crate::peer::net::{NetEvent, PeerNet, PortSpec};
use crate::peer::node::{Node, NodeConfig};
use crate::zab::wire::{Incoming, from_peer};
use crate::zab::{Epoch, Limits, Member, ServerId, Zxid};

/// Bytes queued on one quorum link: proposals to a learner that is behind pile up
/// here (the election port allows less).
pub const QUORUM_QUEUE_BYTES_MAX: usize = 256 << 20;
/// The largest snapshot a learner accepts from its leader.
pub const SNAP_RECEIVE_BYTES_MAX: u64 = 4 << 30;
/// Snapshot chunk bytes a leader keeps queued on one link at once (it sends the next
/// chunk as the link drains, so a snapshot of any size costs the link this much).
pub const SNAP_QUEUE_BYTES_MAX: usize = 8 << 20;
/// Frames held behind a snapshot for one learner at most (past it the link drops).
pub const SNAP_HELD_BYTES_MAX: usize = QUORUM_QUEUE_BYTES_MAX;
/// Quorum-link messages waiting in the shard's inbox at most: past it the links stop
/// reading their sockets until the driver catches up (TCP pushes back on the peers).
pub const PEER_INBOX_MAX: usize = 4_096;
/// How often a leader streaming a snapshot looks whether the link drained.
pub const SNAP_PACE_POLL_MS: u64 = 1;

const _: () = assert!(SNAP_QUEUE_BYTES_MAX + SNAP_CHUNK_BYTES_MAX < QUORUM_QUEUE_BYTES_MAX);
/// Sessions per learner ping (the wire's limit).
pub const PING_TOUCHES_MAX: usize = PING_SESSIONS_MAX;

const _: () = assert!(QUORUM_QUEUE_BYTES_MAX >= LINK_QUEUE_BYTES_MAX);
const _: () = assert!(SNAP_CHUNK_BYTES_MAX < QUORUM_QUEUE_BYTES_MAX);

/// Link epochs, shared by the quorum port's handler and the driver.
pub type LinkEpochs = Rc<RefCell<HashMap<ServerId, Epoch>>>;

/// Frames for a learner held while its snapshot is serialised and streamed (what the
/// leader sends it after `SendSnapshot` must follow the snapshot).
#[derive(Default)]
pub struct SnapOut {
    /// Which snapshot this is (a later one to the same learner replaces it).
    pub token: u64,
    pub held: Vec<Rc<rkyv::util::AlignedVec<16>>>,
    pub held_bytes: usize,
    /// The head has gone out; before, the image is still being serialised and
    /// pings go straight to the learner (`Driver::repl_tick`).
    pub streaming: bool,
}

/// Leader: the snapshots on their way out, by learner.
pub type SnapsOut = Rc<RefCell<HashMap<ServerId, SnapOut>>>;

/// A learner's snapshot on its way in.
pub struct SnapIn {
    pub zxid: Zxid,
    /// Payload bytes announced.
    pub total: u64,
    pub writer: wal::SnapshotWriter,
}

/// The running replication IO of one group.
pub struct Replica {
    pub node: Node,
    pub net: Rc<PeerNet>,
    pub election: Rc<ElectionRunner>,
    pub epochs: EpochFiles,
    pub link_epochs: LinkEpochs,
    /// A snapshot being received, written to its file as it arrives.
    pub snap_in: Option<SnapIn>,
    /// Leader: snapshots being serialised or streamed, and the frames held behind them.
    pub snap_out: SnapsOut,
    pub snap_tokens: u64,
    /// Sessions this learner's clients touched since its last ping.
    pub touched: HashMap<i64, i32>,
    /// The last proposal or commit frame encoded (kind, zxid): the leader sends the
    /// same one to every follower.
    pub frame_cache: Option<((u8, Zxid), Rc<rkyv::util::AlignedVec<16>>)>,
    /// Quorum-link messages in the shard's inbox not handled yet (bounded by
    /// [`PEER_INBOX_MAX`]).
    pub peer_pending: Rc<std::cell::Cell<usize>>,
    /// Per-link figures for `mntr` (ack latency, traffic).
    pub link_stats: super::linkstats::LinkStats,
    /// How this group replicates (`craq` and `chain`: writes go down a chain once the
    /// leader serves; `chain`: only its tail takes clients).
    pub replication: crate::config::Replication,
    /// CRAQ: this server's chain in the current epoch.
    pub chain: Option<super::driver::chain::ChainRun>,
    /// CRAQ: a configuration that arrived before this learner served, with its sender.
    pub chain_pending: Option<(ServerId, crate::craq::ChainConfig)>,
    /// The epoch this server serves in (set when it starts serving).
    pub serve_epoch: Option<crate::zab::Epoch>,
    /// The members now (zoo.cfg's, then what reconfigs committed), and the mzxid of
    /// the `/zookeeper/config` they come from.
    pub servers: Vec<crate::config::ensemble::ServerSpec>,
    pub config_zxid: Zxid,
    /// The version of the members carried out and stored durably (what pings
    /// report; it lags `config_zxid` only while a store failed).
    pub config_stored: Zxid,
    /// The applied zxid `maybe_reconfigure` last looked at the members for.
    pub config_checked_at: Zxid,
    /// Leader: the members' version each learner last reported (`Ping::config`).
    pub carried_out: std::collections::BTreeMap<ServerId, Zxid>,
    /// Where [`super::driver_reconfig::CONFIG_FILE`] lives.
    pub data_dir: std::path::PathBuf,
    /// A SNAP being made durable and loaded off the core, and the quorum-link events
    /// that arrived meanwhile (handled once it is installed).
    pub installing: Option<Installing>,
}

/// See [`Replica::installing`].
pub struct Installing {
    pub zxid: Zxid,
    pub queued: std::collections::VecDeque<(ServerId, PeerIn)>,
}

fn port_spec(ens: &Ensemble, port: u8, queue: usize) -> Result<PortSpec, String> {
    let pick = |s: &crate::config::ensemble::ServerSpec| {
        if port == HELLO_PORT_ELECTION {
            s.election.resolve()
        } else {
            s.quorum.resolve()
        }
    };
    let mut peers = Vec::new();
    for s in &ens.servers {
        if s.id != ens.my_id {
            peers.push((s.id, pick(s)?));
        }
    }
    Ok(PortSpec {
        me: ens.my_id,
        port,
        listen: pick(ens.me())?,
        peers,
        queue_bytes_max: queue,
    })
}

/// What arrived on a quorum link, for the driver.
fn convert(
    from: ServerId,
    m: &ArchivedPeerMsg,
    epochs: &RefCell<HashMap<ServerId, Epoch>>,
) -> PeerIn {
    let link = epochs.borrow().get(&from).copied();
    match from_peer(from, m, link) {
        Ok(Incoming::Zab(msg)) => {
            if let crate::zab::Body::LeaderInfo = msg.body {
                // Everything after it on this link belongs to the offered epoch.
                epochs.borrow_mut().insert(from, msg.epoch);
            }
            PeerIn::Zab(msg)
        }
        Ok(Incoming::Snap { zxid, total_bytes }) => PeerIn::Snap { zxid, total_bytes },
        Ok(Incoming::Vote { .. }) => PeerIn::Bad("a vote on the quorum port".into()),
        Ok(Incoming::Runtime) => runtime_msg(m),
        Err(e) => PeerIn::Bad(e.to_string()),
    }
}

fn runtime_msg(m: &ArchivedPeerMsg) -> PeerIn {
    match m {
        ArchivedPeerMsg::SnapChunk(c) => PeerIn::SnapChunk {
            offset: c.offset.to_native(),
            bytes: c.bytes.to_vec(),
        },
        ArchivedPeerMsg::UpToDate => PeerIn::UpToDate,
        ArchivedPeerMsg::Ping(p) => PeerIn::Ping {
            zxid: p.zxid.to_native(),
            config: p.config.to_native(),
            sessions: p
                .sessions
                .iter()
                .map(|s| (s.session.to_native(), s.timeout_ms.to_native()))
                .collect(),
        },
        ArchivedPeerMsg::Request(r) => PeerIn::Request {
            session: r.session.to_native(),
            cxid: r.cxid.to_native(),
            body: r.body.to_vec(),
        },
        ArchivedPeerMsg::Sync(s) => PeerIn::Sync {
            session: s.session.to_native(),
            cxid: s.cxid.to_native(),
            zxid: s.zxid.to_native(),
        },
        ArchivedPeerMsg::Chain(c) => match crate::craq::wire::decode(c) {
            Ok(m) => PeerIn::Chain(m, None),
            Err(e) => PeerIn::Bad(e),
        },
        ArchivedPeerMsg::ChainConfig(c) => match crate::craq::wire::config_from_peer(c) {
            Ok(cfg) => PeerIn::ChainConfig(cfg),
            Err(e) => PeerIn::Bad(e),
        },
        other => PeerIn::Bad(format!("unexpected {} on the quorum port", name(other))),
    }
}

fn name(m: &ArchivedPeerMsg) -> &'static str {
    match m {
        ArchivedPeerMsg::Hello(_) => "HELLO",
        ArchivedPeerMsg::Revalidate(_) => "REVALIDATE",
        ArchivedPeerMsg::RevalidateReply(_) => "REVALIDATE_REPLY",
        _ => "message",
    }
}

/// The Zab limits with `commitLogCount` committed proposals kept for DIFF and epochs
/// that end at `zxidCounterMax`.
pub fn limits(commit_log_count: usize, zxid_counter_max: u32) -> Limits {
    let l = Limits {
        committed_log_max: commit_log_count,
        zxid_counter_max,
        follower_lag_proposals_max: crate::zab::FOLLOWER_LAG_PROPOSALS_MAX
            .min(commit_log_count + crate::zab::PROPOSALS_INFLIGHT_MAX),
        ..Limits::DEFAULT
    };
    debug_assert!(l.validate().is_ok(), "config bounds commitLogCount");
    l
}

/// The members of `ens`, as the cores see them.
pub fn members(ens: &Ensemble) -> Vec<Member> {
    ens.servers
        .iter()
        .map(|s| Member {
            id: s.id,
            role: s.role,
        })
        .collect()
}

/// Starts the group's IO on this executor: the quorum port (no links until a
/// decision), the election (looking from `last_zxid`), and the node.
pub fn start(
    cfg: &Config,
    ens: &Ensemble,
    config_zxid: Zxid,
    last_zxid: Zxid,
    inbox: Rc<Mailbox<ToShard>>,
) -> Result<Replica, String> {
    let storage = Arc::new(wal::io::OsStorage);
    let epochs = EpochFiles::open(storage, &cfg.data_dir).map_err(|e| e.to_string())?;
    let members = members(ens);
    let link_epochs: LinkEpochs = Rc::new(RefCell::new(HashMap::new()));
    let qspec = port_spec(ens, HELLO_PORT_QUORUM, QUORUM_QUEUE_BYTES_MAX)?;
    let peer_pending: Rc<std::cell::Cell<usize>> = Rc::default();
    let net = {
        let (inbox, link_epochs) = (inbox.clone(), link_epochs.clone());
        let pending = peer_pending.clone();
        PeerNet::start(qspec.clone(), move |e| {
            let (from, ev) = match e {
                NetEvent::Up(link) => (link.peer, PeerIn::Up),
                NetEvent::Down(link) => {
                    link_epochs.borrow_mut().remove(&link.peer);
                    (link.peer, PeerIn::Down)
                }
                NetEvent::Msg(link, m, frame) => {
                    let mut ev = convert(link.peer, m, &link_epochs);
                    if let PeerIn::Chain(ChainIn::Core(ChainMsg::Propagate { .. }), raw) = &mut ev {
                        // Kept to be sent on as it came (no re-encoding down the chain).
                        let mut f = rkyv::util::AlignedVec::<16>::with_capacity(frame.len());
                        f.extend_from_slice(frame);
                        *raw = Some(f);
                    }
                    (link.peer, ev)
                }
            };
            pending.set(pending.get() + 1);
            inbox.push(ToShard::Peer { from, ev });
        })
        .map_err(|e| format!("cannot listen on quorum address {}: {e}", qspec.listen))?
    };
    {
        let pending = peer_pending.clone();
        net.set_pause(move || pending.get() >= PEER_INBOX_MAX);
    }
    net.set_policy(crate::peer::links::Policy::ToLeader(None));
    let espec = port_spec(ens, HELLO_PORT_ELECTION, LINK_QUEUE_BYTES_MAX)?;
    let voters: Vec<ServerId> = ens.voters().map(|s| s.id).collect();
    let timing = election_timing_with(
        ens.my_id,
        ens.my_role(),
        voters,
        cfg.election_finalize_wait_ms,
    );
    let current = epochs.epochs().current;
    let election = {
        let inbox = inbox.clone();
        ElectionRunner::start(espec, timing, last_zxid, current, move |d| {
            inbox.push(ToShard::Decided(d.clone()))
        })?
    };
    {
        let inbox = inbox.clone();
        election.on_members(move |version, text| inbox.push(ToShard::Members { version, text }));
        let text = crate::config::dynamic::DynamicConfig {
            servers: ens.servers.clone(),
            version: config_zxid,
        }
        .render();
        let voters: Vec<ServerId> = ens.voters().map(|s| s.id).collect();
        election.set_voters(ens.my_role(), voters, config_zxid, text)?;
    }
    let node = Node::new(NodeConfig {
        id: ens.my_id,
        role: ens.my_role(),
        members,
        limits: limits(cfg.commit_log_count, cfg.zxid_counter_max),
        init_ticks: u64::from(ens.init_limit_ticks),
        sync_ticks: u64::from(ens.sync_limit_ticks),
    });
    tracing::info!(
        id = ens.my_id,
        role = ?ens.my_role(),
        members = ens.servers.len(),
        last_zxid = format_args!("{last_zxid:#x}"),
        current_epoch = current,
        "replica started: looking for a leader"
    );
    Ok(Replica {
        node,
        net,
        election,
        epochs,
        link_epochs,
        snap_in: None,
        snap_out: Default::default(),
        snap_tokens: 0,
        touched: HashMap::new(),
        frame_cache: None,
        link_stats: Default::default(),
        peer_pending,
        replication: cfg.replication,
        chain: None,
        chain_pending: None,
        serve_epoch: None,
        servers: ens.servers.clone(),
        config_zxid,
        config_stored: config_zxid,
        config_checked_at: -1,
        carried_out: Default::default(),
        data_dir: cfg.data_dir.clone(),
        installing: None,
    })
}
