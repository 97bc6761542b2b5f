//! Fast leader election over the election port: the pure [`Election`] core driven by
//! real links ([`PeerNet`]) and a timer, on the executor that owns the port.
//!
//! The runner is IO only: notifications that arrive are converted
//! (`zab::wire::from_peer`) and stepped into the core in arrival order; the core's
//! `Send`s go out on the links (a peer without a link misses it, and the core's
//! re-broadcast makes up for it once the link is back); the core ticks every
//! [`ELECTION_TICK_MS`]. A decision is kept and reported to the `on_decided` callback;
//! [`ElectionRunner::look`] starts a new round (at start, and whenever Zab loses its
//! leader or quorum). A frame on the election port that is not a vote, or a vote
//! beyond [`ELECTION_INBOX_MAX`] waiting, is ignored and counted; a malformed one
//! drops its link (`PeerNet`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::{Task, spawn_local, timer};
use transport::peer::{
    ArchivedPeerMsg, HELLO_PORT_ELECTION, MEMBERS_TEXT_BYTES_MAX, Members, PeerMsg,
};

use super::net::{NetEvent, PeerNet, PortSpec};
use crate::runtime::mailbox::Mailbox;
use crate::zab::election::{Decision, Election, ElectionAction, ElectionConfig, Notification};
use crate::zab::wire::{Incoming, from_peer, vote_to_peer};
use crate::zab::{Epoch, Role, ServerId, Zxid};

/// Period of the election core's clock.
pub const ELECTION_TICK_MS: u64 = 10;
/// Notifications stepped per wake-up (the rest wait for the next).
pub const ELECTION_BATCH_MAX: usize = 256;
/// Notifications waiting to be stepped; beyond it a vote is dropped (and counted as
/// ignored): election makes up for lost votes by re-broadcasting, and a peer that
/// floods the port cannot grow this server's memory.
pub const ELECTION_INBOX_MAX: usize = 4 * ELECTION_BATCH_MAX;

/// ZooKeeper's finalizeWait: how long a majority's agreement must stand unchallenged
/// before the decision. corekeeper's default ([`FINALIZE_WAIT_MS_DEFAULT`],
/// `electionFinalizeWaitMs`) is shorter: votes between live peers arrive within
/// milliseconds, and a decision on an incomplete view is safe (discovery refuses to
/// establish a leader older than a follower, which sends everyone back to election);
/// this wait is most of a failover's time.
pub const FINALIZE_WAIT_MS_ZOOKEEPER: u64 = 200;
pub const FINALIZE_WAIT_MS_DEFAULT: u64 = 40;
/// The longest `electionFinalizeWaitMs`.
pub const FINALIZE_WAIT_MS_MAX: u64 = 10_000;

/// Ticks of [`ELECTION_TICK_MS`] for the core's timing, as ZooKeeper's defaults give
/// them but for the finalize wait ([`FINALIZE_WAIT_MS_DEFAULT`]): re-broadcast after
/// 50 ms idle, backing off to 2 s.
pub fn election_timing(id: ServerId, role: Role, voters: Vec<ServerId>) -> ElectionConfig {
    election_timing_with(id, role, voters, FINALIZE_WAIT_MS_DEFAULT)
}

/// [`election_timing`] with a finalize wait of `finalize_ms` (rounded up to ticks).
pub fn election_timing_with(
    id: ServerId,
    role: Role,
    voters: Vec<ServerId>,
    finalize_ms: u64,
) -> ElectionConfig {
    ElectionConfig {
        id,
        role,
        voters,
        finalize_ticks: finalize_ms.div_ceil(ELECTION_TICK_MS).max(1) as u32,
        resend_ticks_min: (50 / ELECTION_TICK_MS) as u32,
        resend_ticks_max: (2_000 / ELECTION_TICK_MS) as u32,
    }
}

type OnDecided = Box<dyn Fn(&Decision)>;

/// What the election port delivers to the election, in arrival order.
enum Inbound {
    Vote(ServerId, Notification),
    /// Members (version, text) another server sent (`ElectionAction::SendConfig`).
    Members(i64, String),
}
type OnMembers = Rc<RefCell<Option<Box<dyn Fn(i64, String)>>>>;

/// One server's election, running.
pub struct ElectionRunner {
    me: ServerId,
    election: RefCell<Election>,
    net: Rc<PeerNet>,
    decided: RefCell<Option<Decision>>,
    on_decided: OnDecided,
    /// Frames on the election port that were not votes.
    ignored: Rc<Cell<u64>>,
    task: RefCell<Option<Task<()>>>,
    /// The members this server carried out last (version, text), sent to a looking
    /// server that knows older ones ([`ElectionAction::SendConfig`]).
    members: RefCell<Option<(i64, String)>>,
    /// Where members that arrived go ([`ElectionRunner::on_members`]).
    on_members: OnMembers,
}

impl ElectionRunner {
    /// Binds the election port, starts looking with this server's history
    /// (`last_zxid`, `epoch`) and reports each decision to `on_decided`.
    pub fn start(
        spec: PortSpec,
        cfg: ElectionConfig,
        last_zxid: Zxid,
        epoch: Epoch,
        on_decided: impl Fn(&Decision) + 'static,
    ) -> Result<Rc<ElectionRunner>, String> {
        debug_assert_eq!(
            spec.port, HELLO_PORT_ELECTION,
            "votes travel on the election port"
        );
        let election = Election::new(cfg).map_err(|e| e.to_string())?;
        let inbox: Rc<Mailbox<Inbound>> = Rc::new(Mailbox::new());
        let ignored = Rc::new(Cell::new(0u64));
        let on_members: OnMembers = Rc::default();
        let net = {
            let (inbox, ignored) = (inbox.clone(), ignored.clone());
            PeerNet::start(spec.clone(), move |e| {
                if let NetEvent::Msg(link, m, _) = e {
                    let item = match m {
                        ArchivedPeerMsg::Members(c) if c.text.len() <= MEMBERS_TEXT_BYTES_MAX => {
                            Some(Inbound::Members(c.version.to_native(), c.text.to_string()))
                        }
                        _ => vote_of(link.peer, m).map(|n| Inbound::Vote(link.peer, n)),
                    };
                    match item {
                        Some(i) if inbox.len() < ELECTION_INBOX_MAX => inbox.push(i),
                        _ => ignored.set(ignored.get() + 1),
                    }
                }
            })
            .map_err(|e| format!("cannot listen on election address {}: {e}", spec.listen))?
        };
        let runner = Rc::new(ElectionRunner {
            me: spec.me,
            election: RefCell::new(election),
            net,
            decided: RefCell::new(None),
            on_decided: Box::new(on_decided),
            ignored,
            task: RefCell::new(None),
            members: RefCell::new(None),
            on_members,
        });
        runner.look(last_zxid, epoch);
        let task = spawn_local(run(Rc::downgrade(&runner), inbox));
        *runner.task.borrow_mut() = Some(task);
        Ok(runner)
    }

    /// Starts a new round from this history (Zab lost its leader or quorum).
    pub fn look(&self, last_zxid: Zxid, epoch: Epoch) {
        *self.decided.borrow_mut() = None;
        let mut out = Vec::new();
        self.election.borrow_mut().look(last_zxid, epoch, &mut out);
        self.carry_out(out);
    }

    /// The decision of the current round, once made.
    pub fn decided(&self) -> Option<Decision> {
        self.decided.borrow().clone()
    }

    /// Election-port frames that were not votes.
    pub fn ignored(&self) -> u64 {
        self.ignored.get()
    }

    /// A member joined or moved (dynamic reconfiguration): its election address.
    pub fn add_peer(&self, id: ServerId, addr: std::net::SocketAddr) {
        self.net.add_peer(id, addr);
    }

    /// Dynamic reconfiguration: this server's role and the voters from now on
    /// (`Election::set_voters`; the next round counts them), from the members of
    /// `version` whose text (`/zookeeper/config`'s) goes to servers that know older.
    pub fn set_voters(
        &self,
        role: Role,
        voters: Vec<ServerId>,
        version: i64,
        text: String,
    ) -> Result<(), String> {
        if self
            .members
            .borrow()
            .as_ref()
            .is_some_and(|m| m.0 > version)
        {
            // It took newer members already (`take_members`); the driver's catch
            // up to them comes next.
            return Ok(());
        }
        let mut out = Vec::new();
        let r = self
            .election
            .borrow_mut()
            .set_voters(role, voters, version, &mut out)
            .map_err(|e| e.to_string());
        if r.is_ok() {
            *self.members.borrow_mut() = Some((version, text));
        }
        self.carry_out(out);
        r
    }

    /// Newer members than this server's, from another server: the election counts
    /// them at once (before the votes that came after them; the driver carries
    /// them out when it gets to them), and they go to [`ElectionRunner::on_members`].
    fn take_members(
        &self,
        e: &mut Election,
        version: i64,
        text: String,
        out: &mut Vec<ElectionAction>,
    ) {
        let current = self.members.borrow().as_ref().map_or(0, |m| m.0);
        if version <= current {
            return;
        }
        let Some(c) = crate::config::dynamic::DynamicConfig::parse(&text)
            .filter(|c| c.version == version && c.voters().next().is_some())
        else {
            tracing::warn!("members of version {version:x} that do not parse: ignored");
            return;
        };
        if let Err(err) = e.set_voters(c.role_of(self.me), c.voters().collect(), version, out) {
            tracing::warn!("members of version {version:x}: {err}");
            return;
        }
        *self.members.borrow_mut() = Some((version, text.clone()));
        if let Some(f) = self.on_members.borrow().as_ref() {
            f(version, text);
        }
    }

    /// Members (version, text) other servers sent this one go to `f` (the driver
    /// carries them out), once the election took them.
    pub fn on_members(&self, f: impl Fn(i64, String) + 'static) {
        *self.on_members.borrow_mut() = Some(Box::new(f));
    }

    /// A member left.
    pub fn remove_peer(&self, id: ServerId) {
        self.net.remove_peer(id);
    }

    /// Stops the election and closes the port.
    pub fn stop(&self) {
        self.task.borrow_mut().take();
        self.net.stop();
    }

    fn carry_out(&self, out: Vec<ElectionAction>) {
        for a in out {
            match a {
                ElectionAction::Send { to, n } => {
                    // No link: the core re-broadcasts once idle.
                    let _ = self.net.send(to, &vote_to_peer(self.me, &n));
                }
                ElectionAction::SendConfig { to, n } => {
                    if let Some((version, text)) = self.members.borrow().clone() {
                        let m = PeerMsg::Members(Members { version, text });
                        let _ = self.net.send(to, &m);
                    }
                    let _ = self.net.send(to, &vote_to_peer(self.me, &n));
                }
                ElectionAction::Decided(d) => {
                    tracing::info!(leader = d.vote.leader, state = ?d.state, round = d.round, "election decided");
                    // Stored first: the callback may read it or start a new round.
                    *self.decided.borrow_mut() = Some(d.clone());
                    (self.on_decided)(&d);
                }
            }
        }
    }
}

impl Drop for ElectionRunner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The notification in `m` from `from`, if it is one.
fn vote_of(from: ServerId, m: &ArchivedPeerMsg) -> Option<Notification> {
    match from_peer(from, m, None) {
        Ok(Incoming::Vote { from: sender, n }) if sender == from => Some(n),
        Ok(Incoming::Vote { from: sender, .. }) => {
            tracing::warn!(
                link = from,
                sender,
                "a vote on one server's link names another sender; ignored"
            );
            None
        }
        _ => None,
    }
}

async fn run(runner: std::rc::Weak<ElectionRunner>, inbox: Rc<Mailbox<Inbound>>) {
    let period = Duration::from_millis(ELECTION_TICK_MS);
    let mut next_tick = Instant::now() + period;
    let mut batch = Vec::new();
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        futures_lite::future::or(
            async {
                inbox.recv_batch(&mut batch, ELECTION_BATCH_MAX).await;
            },
            timer::sleep(wait),
        )
        .await;
        let Some(r) = runner.upgrade() else { return };
        let mut out = Vec::new();
        {
            let mut e = r.election.borrow_mut();
            for item in batch.drain(..) {
                match item {
                    Inbound::Vote(from, n) => e.step(from, n, &mut out),
                    Inbound::Members(version, text) => {
                        r.take_members(&mut e, version, text, &mut out);
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                e.tick(&mut out);
                next_tick += period;
                if next_tick <= now {
                    // A stalled executor ticks once, not once per missed period.
                    next_tick = now + period;
                }
            }
        }
        r.carry_out(out);
    }
}
