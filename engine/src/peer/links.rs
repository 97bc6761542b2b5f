//! `LinkBook`: which peer links of one port (election or quorum) should exist, who
//! dials whom, when to retry, and when a link must be dropped, as a pure state machine.
//!
//! The runtime (`peer::net`) does the TCP work and reports what happened; the book
//! answers with [`LinkAction`]s. Rules:
//! - **Who dials** is the book's [`Policy`]. The election port links every pair, dialled
//!   by the higher id (ZooKeeper's QuorumCnxManager rule): a server dials every peer
//!   with a smaller id and accepts only peers with a larger one; a smaller id that
//!   dials anyway is refused, and the book dials it back at once (it may have come back
//!   after a restart; waiting for the backoff would delay an election). So a server
//!   with no link to a peer of a higher id **knocks** ([`LinkAction::Knock`]: connect,
//!   hello, close) at once and then with the retry backoff, as ZooKeeper's lower id
//!   connects only to be called back: a restarted server 1 otherwise waited for its
//!   peers' backoff, up to [`LINK_RETRY_MS_MAX`] (its election took 1.6 s). The quorum
//!   port links learners to their leader only: a learner dials the leader it follows,
//!   the leader accepts every member, and a server that is looking has no quorum
//!   links (changing the policy closes the links that no longer fit, as ZooKeeper
//!   drops its learner connections when it goes back to election).
//! - **Generations.** Every link that comes up gets a new generation; messages and
//!   closes of an older generation are ignored, so a late report about a dead link
//!   never takes down its replacement. A peer that connects again while its link is
//!   up replaces it (the old one is half-dead: the peer restarted).
//! - **Retries** back off from [`LINK_RETRY_MS_MIN`], doubling to
//!   [`LINK_RETRY_MS_MAX`]; a link that came up resets the backoff.
//! - **Bounded output.** Bytes queued for a peer and not yet written are counted; past
//!   `queue_bytes_max` the link is closed (a peer that does not read is dropped, not
//!   buffered without bound). Nothing is queued for a peer without a link: the
//!   protocol cores resend what matters after a reconnect (election notifications on
//!   their timer, Zab through discovery on every new link).
//! - **Bad input drops the link, never the process**: the runtime reports a malformed,
//!   oversized or unexpected frame with [`LinkBook::failed`], which closes that link
//!   (logged with the peer's id) like any other loss.

use crate::zab::ServerId;

/// First retry delay after a failed dial or a lost link.
pub const LINK_RETRY_MS_MIN: u64 = 50;
/// Longest retry delay.
pub const LINK_RETRY_MS_MAX: u64 = 2_000;
/// Default bound on bytes queued for one peer and not yet written: a few snapshot
/// chunks' worth.
pub const LINK_QUEUE_BYTES_MAX: usize = 8 << 20;
/// Most peers a book manages (the Zab cores' member limit).
pub const LINK_PEERS_MAX: usize = 128;

const _: () = assert!(LINK_RETRY_MS_MIN > 0 && LINK_RETRY_MS_MIN <= LINK_RETRY_MS_MAX);

/// A link's identity: the peer and the generation it came up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId {
    pub peer: ServerId,
    pub generation: u64,
}

/// What the runtime must do, or learn, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAction {
    /// Open a TCP connection to `peer` (then report [`LinkBook::dialed`]).
    Dial { peer: ServerId, attempt: u64 },
    /// Connect to `peer`, send the hello and close, reporting nothing: `peer` dials
    /// this server for the link, and on a hello from it dials back at once (module
    /// docs, "knocks").
    Knock { peer: ServerId },
    /// The link is up: hand it to its reader and writer tasks, tell the protocol.
    Up(LinkId),
    /// Close this link's socket (a replaced, failed or overfull link); `Down` follows
    /// if it was up.
    Close { link: LinkId, reason: String },
    /// The protocol lost the link to this peer.
    Down(LinkId),
}

/// Why an incoming connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a member of this book.
    Unknown(ServerId),
    /// This server dials that peer (it has the higher id); it does so now.
    WeDial(ServerId),
    /// This server does not lead (quorum port): learners dial their leader.
    NotLeading(ServerId),
    /// A connection claiming to be this server.
    Myself,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unknown(id) => write!(f, "server {id} is not a member"),
            Refusal::WeDial(id) => {
                write!(f, "server {id} has the lower id: this server dials it")
            }
            Refusal::Myself => write!(f, "a connection claims this server's own id"),
            Refusal::NotLeading(id) => {
                write!(f, "server {id} dialled a server that does not lead")
            }
        }
    }
}

/// Which links a port has and who dials them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Every pair, dialled by the higher id (the election port).
    HigherDials,
    /// Learners dial this leader, which accepts them; `None`: no links (looking).
    ToLeader(Option<ServerId>),
    /// As `ToLeader`, and learners link among themselves too, dialled by the higher
    /// id (CRAQ: chain neighbours talk directly, not through the leader).
    ToLeaderAndPeers(Option<ServerId>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No link; for a peer this server dials, the next dial is due at `retry_at_ms`.
    Idle,
    /// A dial is in flight (attempt number).
    Dialing(u64),
    /// Up with this generation; `queued` bytes not yet written.
    Up { generation: u64, queued: usize },
}

#[derive(Debug)]
struct Peer {
    id: ServerId,
    state: State,
    retry_at_ms: u64,
    backoff_ms: u64,
    attempts: u64,
}

/// The links of one port to every other member.
#[derive(Debug)]
pub struct LinkBook {
    me: ServerId,
    policy: Policy,
    peers: Vec<Peer>,
    next_generation: u64,
    queue_bytes_max: usize,
}

impl LinkBook {
    /// Links from `me` to every other id in `members` (`me` itself is skipped), every
    /// pair dialled by the higher id (the election port; see [`LinkBook::set_policy`]).
    pub fn new(me: ServerId, members: &[ServerId], queue_bytes_max: usize) -> Self {
        let peers: Vec<Peer> = members
            .iter()
            .filter(|&&id| id != me)
            .map(|&id| Peer {
                id,
                state: State::Idle,
                retry_at_ms: 0,
                backoff_ms: LINK_RETRY_MS_MIN,
                attempts: 0,
            })
            .collect();
        debug_assert!(peers.len() <= LINK_PEERS_MAX, "the config bounds members");
        LinkBook {
            me,
            policy: Policy::HigherDials,
            peers,
            next_generation: 1,
            queue_bytes_max: queue_bytes_max.max(1),
        }
    }

    /// Whether this server dials `peer` under the current policy.
    pub fn dials(&self, peer: ServerId) -> bool {
        dials(self.policy, self.me, peer)
    }

    /// Whether this server accepts a connection from `peer` under the current policy.
    fn accepts(&self, peer: ServerId) -> Result<(), Refusal> {
        match self.policy {
            Policy::HigherDials if self.me > peer => Err(Refusal::WeDial(peer)),
            Policy::HigherDials => Ok(()),
            Policy::ToLeader(Some(l)) if l == self.me => Ok(()),
            Policy::ToLeader(_) => Err(Refusal::NotLeading(peer)),
            Policy::ToLeaderAndPeers(Some(l)) if l == self.me => Ok(()),
            Policy::ToLeaderAndPeers(Some(l)) if peer != l && peer > self.me => Ok(()),
            Policy::ToLeaderAndPeers(Some(l)) if peer != l => Err(Refusal::WeDial(peer)),
            Policy::ToLeaderAndPeers(_) => Err(Refusal::NotLeading(peer)),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// From now on `policy` decides which links exist. Every link closes (`Close` and
    /// `Down`): a link belongs to the role it was made for, and Zab starts every link
    /// of a new role with discovery. Dials that are now due start at the next tick,
    /// without backoff.
    pub fn set_policy(&mut self, policy: Policy, now_ms: u64, out: &mut Vec<LinkAction>) {
        if policy == self.policy {
            return;
        }
        self.policy = policy;
        for p in self.peers.iter_mut() {
            Self::lose(p, now_ms, "the server's role changed".into(), out);
            if matches!(p.state, State::Dialing(_)) {
                // A dial made for the old role: its result is ignored (`dialed`
                // answers None and the runtime closes what it connected).
                p.state = State::Idle;
            }
            if p.state == State::Idle {
                p.retry_at_ms = now_ms;
                p.backoff_ms = LINK_RETRY_MS_MIN;
            }
        }
    }

    /// The link to `peer` if it is up.
    pub fn link(&self, peer: ServerId) -> Option<LinkId> {
        match self.peer(peer)?.state {
            State::Up { generation, .. } => Some(LinkId { peer, generation }),
            _ => None,
        }
    }

    /// Peers with a link up now.
    pub fn up(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.peers.iter().filter_map(|p| match p.state {
            State::Up { generation, .. } => Some(LinkId {
                peer: p.id,
                generation,
            }),
            _ => None,
        })
    }

    /// Dials and knocks that are due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<LinkAction>) {
        let (me, policy) = (self.me, self.policy);
        for p in self.peers.iter_mut() {
            if p.state != State::Idle || now_ms < p.retry_at_ms {
                continue;
            }
            if dials(policy, me, p.id) {
                p.attempts += 1;
                p.state = State::Dialing(p.attempts);
                out.push(LinkAction::Dial {
                    peer: p.id,
                    attempt: p.attempts,
                });
            } else if knocks(policy, me, p.id) {
                // Stays idle: the peer's dial brings the link (`accepted`).
                Self::idle(p, now_ms);
                out.push(LinkAction::Knock { peer: p.id });
            }
        }
    }

    /// A dial of `peer` ended: connected (and the peer took our hello) or failed.
    /// Returns the new link, or `None`: then a connection the dial made must be
    /// closed (a dial the book no longer waits for, e.g. of a removed member).
    pub fn dialed(
        &mut self,
        peer: ServerId,
        attempt: u64,
        ok: bool,
        now_ms: u64,
        out: &mut Vec<LinkAction>,
    ) -> Option<LinkId> {
        let generation = self.next_generation;
        let p = self.peer_mut(peer)?;
        if p.state != State::Dialing(attempt) {
            return None;
        }
        if !ok {
            Self::idle(p, now_ms);
            return None;
        }
        p.state = State::Up {
            generation,
            queued: 0,
        };
        // The backoff resets once the link carries a frame (`heard`): a peer that
        // takes the connection and then refuses it must not be redialled at once.
        self.next_generation += 1;
        let link = LinkId { peer, generation };
        out.push(LinkAction::Up(link));
        Some(link)
    }

    /// `from` connected to this server and said who it is. Returns the new link (and
    /// pushes `Up`, after closing a link it replaces), or why it is refused.
    pub fn accepted(
        &mut self,
        from: ServerId,
        now_ms: u64,
        out: &mut Vec<LinkAction>,
    ) -> Result<LinkId, Refusal> {
        if from == self.me {
            return Err(Refusal::Myself);
        }
        let generation = self.next_generation;
        let allowed = self.accepts(from);
        let Some(p) = self.peer_mut(from) else {
            return Err(Refusal::Unknown(from));
        };
        if let Err(refusal) = allowed {
            if matches!(refusal, Refusal::WeDial(_)) && p.state == State::Idle {
                // We dial it: do so now if no dial or link is under way.
                p.retry_at_ms = now_ms;
            }
            return Err(refusal);
        }
        if let State::Up {
            generation: old, ..
        } = p.state
        {
            out.push(LinkAction::Close {
                link: LinkId {
                    peer: from,
                    generation: old,
                },
                reason: "replaced by a new connection from the peer".into(),
            });
            out.push(LinkAction::Down(LinkId {
                peer: from,
                generation: old,
            }));
        }
        p.state = State::Up {
            generation,
            queued: 0,
        };
        self.next_generation += 1;
        let link = LinkId {
            peer: from,
            generation,
        };
        out.push(LinkAction::Up(link));
        Ok(link)
    }

    /// `n` more bytes queued for `link`; closes it past the limit. False when the
    /// bytes must not be queued (no such link, or it was just closed).
    pub fn queued(
        &mut self,
        link: LinkId,
        n: usize,
        now_ms: u64,
        out: &mut Vec<LinkAction>,
    ) -> bool {
        let max = self.queue_bytes_max;
        let Some(p) = self.current(link) else {
            return false;
        };
        let State::Up { generation, queued } = p.state else {
            return false;
        };
        if queued + n > max {
            let reason = format!(
                "peer reads too slowly: {} bytes unwritten (max {max})",
                queued + n
            );
            Self::lose(p, now_ms, reason, out);
            return false;
        }
        p.state = State::Up {
            generation,
            queued: queued + n,
        };
        true
    }

    /// `n` queued bytes of `link` were written to its socket.
    pub fn written(&mut self, link: LinkId, n: usize) {
        if let Some(p) = self.current(link)
            && let State::Up { generation, queued } = p.state
        {
            debug_assert!(n <= queued, "only queued bytes are written");
            p.state = State::Up {
                generation,
                queued: queued.saturating_sub(n),
            };
        }
    }

    /// A frame arrived on `link`: it works, so the next loss retries from the minimum.
    pub fn heard(&mut self, link: LinkId) {
        if let Some(p) = self.current(link) {
            p.backoff_ms = LINK_RETRY_MS_MIN;
        }
    }

    /// Bytes queued for `link` and not yet written.
    pub fn queued_bytes(&self, link: LinkId) -> usize {
        match self.peer(link.peer).map(|p| p.state) {
            Some(State::Up { generation, queued }) if generation == link.generation => queued,
            _ => 0,
        }
    }

    /// A member joined (dynamic reconfiguration): links to it are dialled or
    /// accepted from now on. False when it is known already or the book is full.
    pub fn add_peer(&mut self, id: ServerId) -> bool {
        if id == self.me || self.peer(id).is_some() || self.peers.len() >= LINK_PEERS_MAX {
            return false;
        }
        self.peers.push(Peer {
            id,
            state: State::Idle,
            retry_at_ms: 0,
            backoff_ms: LINK_RETRY_MS_MIN,
            attempts: 0,
        });
        true
    }

    /// A member left: its link closes and it is neither dialled nor accepted again.
    pub fn remove_peer(&mut self, id: ServerId, out: &mut Vec<LinkAction>) {
        if let Some(p) = self.peer_mut(id) {
            Self::lose(p, 0, "the server left the ensemble (reconfig)".into(), out);
        }
        self.peers.retain(|p| p.id != id);
    }

    /// The link's socket closed or failed (EOF, reset, a malformed frame).
    pub fn failed(&mut self, link: LinkId, reason: String, now_ms: u64, out: &mut Vec<LinkAction>) {
        if let Some(p) = self.current(link) {
            Self::lose(p, now_ms, reason, out);
        }
    }

    fn lose(p: &mut Peer, now_ms: u64, reason: String, out: &mut Vec<LinkAction>) {
        let State::Up { generation, .. } = p.state else {
            return;
        };
        let link = LinkId {
            peer: p.id,
            generation,
        };
        out.push(LinkAction::Close { link, reason });
        out.push(LinkAction::Down(link));
        Self::idle(p, now_ms);
    }

    fn idle(p: &mut Peer, now_ms: u64) {
        p.state = State::Idle;
        p.retry_at_ms = now_ms + p.backoff_ms;
        p.backoff_ms = (p.backoff_ms * 2).min(LINK_RETRY_MS_MAX);
    }

    fn current(&mut self, link: LinkId) -> Option<&mut Peer> {
        self.peer_mut(link.peer).filter(
            |p| matches!(p.state, State::Up { generation, .. } if generation == link.generation),
        )
    }

    fn peer(&self, id: ServerId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }

    fn peer_mut(&mut self, id: ServerId) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.id == id)
    }
}

/// Whether `me` knocks on `peer` under `policy` while it has no link to it: on the
/// election port, where `peer` has the higher id and dials (module docs). Not on the
/// quorum port: there servers' views of who leads differ during a change, and a
/// leader accepts every member, so a knock would come up as a link (and a late one
/// replace a learner's fresh one); chain neighbours are linked after the election.
fn knocks(policy: Policy, me: ServerId, peer: ServerId) -> bool {
    policy == Policy::HigherDials && peer > me
}

/// Whether `me` dials `peer` under `policy`.
fn dials(policy: Policy, me: ServerId, peer: ServerId) -> bool {
    match policy {
        Policy::HigherDials => me > peer,
        Policy::ToLeader(Some(l)) => l == peer && l != me,
        Policy::ToLeader(None) => false,
        Policy::ToLeaderAndPeers(Some(l)) => l != me && (l == peer || me > peer),
        Policy::ToLeaderAndPeers(None) => false,
    }
}
