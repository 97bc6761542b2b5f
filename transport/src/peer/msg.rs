//! The replication peer messages: one [`PeerMsg`] enum, one struct per message.
//!
//! The set follows ZooKeeper's quorum packets (`Leader.java`: FOLLOWERINFO, LEADERINFO,
//! ACKEPOCH, DIFF, TRUNC, SNAP, NEWLEADER, UPTODATE, PROPOSAL, ACK, COMMIT, INFORM,
//! PING, REQUEST, REVALIDATE, SYNC) plus the fast-leader-election notification
//! ([`Vote`]). Reconfiguration (COMMITANDACTIVATE, INFORMANDACTIVATE) is not modelled.
//!
//! Every type derives rkyv's `Archive` with bytecheck, so a received frame is validated
//! and then read in place as an [`ArchivedPeerMsg`]; opaque payloads ([`Proposal::txn`],
//! [`Request::body`], [`SnapChunk::bytes`]) are then plain `&[u8]` into the receive
//! buffer. The archived types implement `PartialEq` against their owned forms and
//! `Debug` (for logging a message that the state machine rejects).
//!
//! Ids and epochs: server ids are `u64` (ZooKeeper's `sid`); an epoch is the high 32
//! bits of a zxid, so epochs are `u32`; a zxid is an `i64` as in ZooKeeper (see
//! [`zxid`], [`epoch_of`], [`counter_of`]). The election round is a separate, unbounded
//! `u64` counter. Per-message size limits are in [`crate::peer`]; the frame limit
//! bounds all of them.

use rkyv::{Archive, Deserialize, Serialize};

/// Builds a zxid from an epoch and a counter: `epoch << 32 | counter`.
///
/// Like ZooKeeper's, a zxid with an epoch of `2^31` or more is negative as an `i64`;
/// compare zxids of one epoch-space only with [`epoch_of`] / [`counter_of`] in mind.
pub const fn zxid(epoch: u32, counter: u32) -> i64 {
    (((epoch as u64) << 32) | counter as u64) as i64
}

/// The epoch of a zxid (its high 32 bits).
pub const fn epoch_of(zxid: i64) -> u32 {
    ((zxid as u64) >> 32) as u32
}

/// The counter of a zxid within its epoch (its low 32 bits).
pub const fn counter_of(zxid: i64) -> u32 {
    zxid as u64 as u32
}

/// What a server is doing, as announced in its [`Vote`]s.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub enum ServerState {
    /// Electing a leader.
    Looking,
    /// Following an established leader.
    Following,
    /// Leading an established epoch.
    Leading,
    /// A non-voting observer of an established leader.
    Observing,
}

/// How a learner joins the leader: voting follower or non-voting observer
/// (ZooKeeper's FOLLOWERINFO vs OBSERVERINFO).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub enum LearnerRole {
    /// A voting follower: its acks count towards the quorum.
    Participant,
    /// An observer: receives [`Inform`]s, never acks.
    Observer,
}

/// Fast leader election notification (ZooKeeper's FLE `Notification`), sent by every
/// server to every other while looking, and in reply to a looking server once settled.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Vote {
    /// Id of the server that sent this vote.
    pub sender: u64,
    /// The sender's election round (ZooKeeper's `electionEpoch`, `logicalclock`).
    pub round: u64,
    /// Id of the server the sender proposes as leader.
    pub leader: u64,
    /// Last zxid of the proposed leader.
    pub zxid: i64,
    /// Current (accepted) epoch of the proposed leader (ZooKeeper's `peerEpoch`).
    pub peer_epoch: u32,
    /// What the sender is doing.
    pub state: ServerState,
    /// The version (zxid) of the members the sender carried out last, 0 for its
    /// zoo.cfg's; a server that knows newer ones answers with [`Members`].
    pub config: i64,
}

/// Discovery, learner → prospective leader: first message on a new link.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct FollowerInfo {
    /// The learner's server id.
    pub id: u64,
    /// The highest epoch the learner has accepted (promised not to go below).
    pub accepted_epoch: u32,
    /// The learner's last logged zxid.
    pub last_zxid: i64,
    /// Follower (votes) or observer.
    pub role: LearnerRole,
}

/// Discovery, leader → learner: the epoch the leader proposes for its reign, above
/// every accepted epoch of a quorum.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct LeaderInfo {
    /// The new epoch.
    pub new_epoch: u32,
}

/// Discovery, learner → leader: the learner accepted [`LeaderInfo::new_epoch`]; it
/// reports its current epoch and history so the leader picks DIFF / TRUNC / SNAP.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct AckEpoch {
    /// The last epoch the learner acknowledged a NEWLEADER of (ZooKeeper's currentEpoch).
    pub current_epoch: u32,
    /// The learner's last logged zxid.
    pub last_zxid: i64,
    /// The learner had accepted this epoch before this link (it may have acked it to
    /// another leader): the leader must not count this ack towards its majority
    /// (ZooKeeper sends current epoch -1 for this).
    pub repeat: bool,
}

/// Sync, leader → learner: the learner's log up to `last_zxid` is a prefix of the
/// leader's; the missing proposals (and their commits) follow.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Diff {
    /// The learner's last zxid (as it reported it) that the stream continues from.
    pub last_zxid: i64,
}

/// Sync, leader → learner: drop every logged txn after `zxid` (uncommitted leftovers of
/// an old epoch), then proceed as for a [`Diff`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Trunc {
    /// The last zxid the learner keeps.
    pub zxid: i64,
}

/// Sync, leader → learner: a full snapshot of the state at `zxid` follows as
/// [`SnapChunk`]s of `total_bytes` in all, then the proposals after it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Snap {
    /// The last txn the image contains.
    pub zxid: i64,
    /// Size of the whole snapshot image.
    pub total_bytes: u64,
}

/// Sync, leader → learner: one piece of the snapshot announced by [`Snap`]; chunks
/// arrive in order and hold at most [`crate::peer::SNAP_CHUNK_BYTES_MAX`] bytes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct SnapChunk {
    /// Where `bytes` start in the snapshot image.
    pub offset: u64,
    /// The image bytes (opaque here).
    pub bytes: Vec<u8>,
}

/// Sync, leader → learner: everything up to `zxid` has been sent; the learner makes
/// it durable, adopts the new epoch and answers [`AckNewLeader`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct NewLeader {
    /// The leader's last zxid at the start of its epoch.
    pub zxid: i64,
}

/// Sync, learner → leader: the synced history up to `zxid` is durable and the new
/// epoch adopted. A quorum of these establishes the leader.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct AckNewLeader {
    /// The zxid of the [`NewLeader`] being acknowledged.
    pub zxid: i64,
}

/// Broadcast, leader → follower: log this txn (not yet visible).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Proposal {
    /// The txn's zxid; proposals arrive in zxid order.
    pub zxid: i64,
    /// The engine's archived txn, opaque here. The follower writes exactly these bytes
    /// to its WAL; in a frame they start 16-byte aligned (they are serialized first).
    pub txn: Vec<u8>,
}

/// Broadcast, follower → leader: every proposal up to and including `zxid` is durable
/// here (cumulative, so one ack covers a whole group commit).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Ack {
    /// The highest durable zxid.
    pub zxid: i64,
}

/// Broadcast, leader → follower: every proposal up to and including `zxid` is
/// committed; apply them in order.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Commit {
    /// The highest committed zxid.
    pub zxid: i64,
}

/// Broadcast, leader → observer: a committed txn (proposal and commit in one), to log
/// and apply.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Inform {
    /// The txn's zxid.
    pub zxid: i64,
    /// The engine's archived txn, as in [`Proposal::txn`].
    pub txn: Vec<u8>,
}

/// A session a learner has seen activity on, and its negotiated timeout.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct SessionTouch {
    /// The session id.
    pub session: i64,
    /// Its timeout in milliseconds.
    pub timeout_ms: i32,
}

/// Liveness, both ways: the leader pings each learner every tick; the learner answers
/// with the sessions its clients touched since its last ping, so the leader (which
/// owns expiry) keeps them alive. At most [`crate::peer::PING_SESSIONS_MAX`] per ping
/// (a learner with more sends several).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Ping {
    /// The sender's last zxid (committed on the leader, logged on a learner).
    pub zxid: i64,
    /// Sessions touched since the last ping (empty from the leader).
    pub sessions: Vec<SessionTouch>,
    /// The version of the members the sender carried out and stored (learner →
    /// leader; a reconfig waits for a majority of the voters to report the current
    /// one).
    pub config: i64,
}

/// Learner → leader: a client's write (or session create/close), forwarded for the
/// leader to turn into a txn and propose.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Request {
    /// The client's session.
    pub session: i64,
    /// The client's xid for this request.
    pub cxid: i32,
    /// The ZooKeeper opcode.
    pub op: i32,
    /// The jute request record (opaque here); 16-byte aligned in a frame.
    pub body: Vec<u8>,
}

/// Learner → leader: a client reconnected to this learner with an existing session;
/// is it still alive (and if so, touch it)?
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Revalidate {
    /// The session id.
    pub session: i64,
    /// The timeout the client asked for, in milliseconds.
    pub timeout_ms: i32,
}

/// Leader → learner: the answer to [`Revalidate`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct RevalidateReply {
    /// The session id.
    pub session: i64,
    /// Whether the session is alive.
    pub valid: bool,
}

/// A client's `sync`: learner → leader asks to flush the pipe for `session`; leader →
/// learner answers after every earlier commit was sent, so the learner can reply to
/// the client once it has applied them.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Sync {
    /// The session that asked.
    pub session: i64,
    /// The client's xid of its `sync` request.
    pub cxid: i32,
    /// Leader → learner: the zxid the leader had committed when the sync reached it
    /// (0 from the learner).
    pub zxid: i64,
}

/// The first frame on every link, from the server that dialled: who it is and which
/// of its ports it dialled, so the acceptor can refuse a stranger, a server that
/// should be dialled instead, or a link to the wrong port (ZooKeeper's
/// QuorumCnxManager initial message: protocol version, sid, address).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Hello {
    /// Must be [`HELLO_PROTOCOL`].
    pub protocol: u32,
    pub server_id: u64,
    /// Which port: [`HELLO_PORT_ELECTION`] or [`HELLO_PORT_QUORUM`].
    pub port: u8,
}

/// CRAQ chain replication (`engine::craq`): one frame shape for every chain message,
/// told apart by `kind` (the engine's `craq::wire` maps them and checks the fields a
/// kind uses). `txn` comes first so its bytes start 16-byte aligned in a frame, as a
/// [`Proposal`]'s do: a member writes them to its WAL and forwards them as they are.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Chain {
    pub txn: Vec<u8>,
    /// The chain configuration the sender is in.
    pub version: u64,
    pub kind: u8,
    pub zxid: i64,
    /// Propagate: the entry before; Need: what the sender knows committed; Resend:
    /// what follows up to.
    pub other: i64,
    /// Query / QueryReply: the query's id.
    pub qid: u64,
    /// Propagate: the keys the txn touches (hashed paths); `keys_all` when it may touch
    /// anything.
    pub keys: Vec<u64>,
    pub keys_all: bool,
}

/// The chain's membership from its manager: version, members head first, and the
/// read lease granted with it (milliseconds from receipt).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct ChainConfig {
    pub version: u64,
    pub chain: Vec<u64>,
    pub lease_ms: u64,
}

/// Election port: the members a server carried out last (the text of
/// `/zookeeper/config`, ending in `version=`), sent to a looking server whose vote
/// named an older version (ZooKeeper's notifications carry the config).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub struct Members {
    pub version: i64,
    pub text: String,
}

/// The longest [`Members::text`] (members of a few hundred bytes each).
pub const MEMBERS_TEXT_BYTES_MAX: usize = 64 * 1024;

/// Most keys one chain entry names (a multi's paths and parents); beyond, an entry is
/// sent as touching everything.
pub const CHAIN_KEYS_MAX: usize = 1_024;
/// Most members a chain configuration names.
pub const CHAIN_CONFIG_MEMBERS_MAX: usize = 64;

/// The peer protocol's version, in [`Hello::protocol`].
pub const HELLO_PROTOCOL: u32 = 4;
/// [`Hello::port`]: the election port.
pub const HELLO_PORT_ELECTION: u8 = 1;
/// [`Hello::port`]: the quorum port.
pub const HELLO_PORT_QUORUM: u8 = 2;

/// Every message two replicas exchange, one frame each.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug), compare(PartialEq))]
pub enum PeerMsg {
    /// See [`Vote`].
    Vote(Vote),
    /// See [`FollowerInfo`].
    FollowerInfo(FollowerInfo),
    /// See [`LeaderInfo`].
    LeaderInfo(LeaderInfo),
    /// See [`AckEpoch`].
    AckEpoch(AckEpoch),
    /// See [`Diff`].
    Diff(Diff),
    /// See [`Trunc`].
    Trunc(Trunc),
    /// See [`Snap`].
    Snap(Snap),
    /// See [`SnapChunk`].
    SnapChunk(SnapChunk),
    /// See [`NewLeader`].
    NewLeader(NewLeader),
    /// See [`AckNewLeader`].
    AckNewLeader(AckNewLeader),
    /// Sync, leader → learner: the learner is in sync and may serve clients.
    UpToDate,
    /// See [`Proposal`].
    Proposal(Proposal),
    /// See [`Ack`].
    Ack(Ack),
    /// See [`Commit`].
    Commit(Commit),
    /// See [`Inform`].
    Inform(Inform),
    /// See [`Ping`].
    Ping(Ping),
    /// See [`Request`].
    Request(Request),
    /// See [`Revalidate`].
    Revalidate(Revalidate),
    /// See [`RevalidateReply`].
    RevalidateReply(RevalidateReply),
    /// See [`Sync`].
    Sync(Sync),
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Chain`].
    Chain(Chain),
    /// See [`ChainConfig`].
    ChainConfig(ChainConfig),
    /// See [`Members`].
    Members(Members),
}

impl PeerMsg {
    /// Bytes of variable-length content (payloads, session lists): what makes a message
    /// large. The encoder refuses a message whose payload alone exceeds the frame limit
    /// before serializing it.
    pub fn payload_bytes(&self) -> usize {
        match self {
            PeerMsg::SnapChunk(m) => m.bytes.len(),
            PeerMsg::Proposal(m) => m.txn.len(),
            PeerMsg::Inform(m) => m.txn.len(),
            PeerMsg::Request(m) => m.body.len(),
            PeerMsg::Ping(m) => m.sessions.len() * size_of::<ArchivedSessionTouch>(),
            PeerMsg::Chain(m) => m.txn.len() + m.keys.len() * 8,
            PeerMsg::ChainConfig(m) => m.chain.len() * 8,
            PeerMsg::Members(m) => m.text.len(),
            _ => 0,
        }
    }

    /// The message's name, as ZooKeeper's packet type (for logs).
    pub fn name(&self) -> &'static str {
        ArchivedPeerMsg::name_of(self.kind())
    }

    fn kind(&self) -> usize {
        // Same order as the enum; `ArchivedPeerMsg::kind` mirrors it.
        match self {
            PeerMsg::Vote(_) => 0,
            PeerMsg::FollowerInfo(_) => 1,
            PeerMsg::LeaderInfo(_) => 2,
            PeerMsg::AckEpoch(_) => 3,
            PeerMsg::Diff(_) => 4,
            PeerMsg::Trunc(_) => 5,
            PeerMsg::Snap(_) => 6,
            PeerMsg::SnapChunk(_) => 7,
            PeerMsg::NewLeader(_) => 8,
            PeerMsg::AckNewLeader(_) => 9,
            PeerMsg::UpToDate => 10,
            PeerMsg::Proposal(_) => 11,
            PeerMsg::Ack(_) => 12,
            PeerMsg::Commit(_) => 13,
            PeerMsg::Inform(_) => 14,
            PeerMsg::Ping(_) => 15,
            PeerMsg::Request(_) => 16,
            PeerMsg::Revalidate(_) => 17,
            PeerMsg::RevalidateReply(_) => 18,
            PeerMsg::Sync(_) => 19,
            PeerMsg::Hello(_) => 20,
            PeerMsg::Chain(_) => 21,
            PeerMsg::ChainConfig(_) => 22,
            PeerMsg::Members(_) => 23,
        }
    }
}

/// Names of the messages, in enum order.
const NAMES: [&str; 24] = [
    "VOTE",
    "FOLLOWERINFO",
    "LEADERINFO",
    "ACKEPOCH",
    "DIFF",
    "TRUNC",
    "SNAP",
    "SNAPCHUNK",
    "NEWLEADER",
    "ACKNEWLEADER",
    "UPTODATE",
    "PROPOSAL",
    "ACK",
    "COMMIT",
    "INFORM",
    "PING",
    "REQUEST",
    "REVALIDATE",
    "REVALIDATEREPLY",
    "SYNC",
    "HELLO",
    "CHAIN",
    "CHAINCONFIG",
    "MEMBERS",
];

impl ArchivedPeerMsg {
    /// The message's name, as ZooKeeper's packet type (for logs).
    pub fn name(&self) -> &'static str {
        Self::name_of(self.kind())
    }

    fn name_of(kind: usize) -> &'static str {
        NAMES.get(kind).copied().unwrap_or("?")
    }

    fn kind(&self) -> usize {
        match self {
            ArchivedPeerMsg::Vote(_) => 0,
            ArchivedPeerMsg::FollowerInfo(_) => 1,
            ArchivedPeerMsg::LeaderInfo(_) => 2,
            ArchivedPeerMsg::AckEpoch(_) => 3,
            ArchivedPeerMsg::Diff(_) => 4,
            ArchivedPeerMsg::Trunc(_) => 5,
            ArchivedPeerMsg::Snap(_) => 6,
            ArchivedPeerMsg::SnapChunk(_) => 7,
            ArchivedPeerMsg::NewLeader(_) => 8,
            ArchivedPeerMsg::AckNewLeader(_) => 9,
            ArchivedPeerMsg::UpToDate => 10,
            ArchivedPeerMsg::Proposal(_) => 11,
            ArchivedPeerMsg::Ack(_) => 12,
            ArchivedPeerMsg::Commit(_) => 13,
            ArchivedPeerMsg::Inform(_) => 14,
            ArchivedPeerMsg::Ping(_) => 15,
            ArchivedPeerMsg::Request(_) => 16,
            ArchivedPeerMsg::Revalidate(_) => 17,
            ArchivedPeerMsg::RevalidateReply(_) => 18,
            ArchivedPeerMsg::Sync(_) => 19,
            ArchivedPeerMsg::Hello(_) => 20,
            ArchivedPeerMsg::Chain(_) => 21,
            ArchivedPeerMsg::ChainConfig(_) => 22,
            ArchivedPeerMsg::Members(_) => 23,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_packs_epoch_high_and_counter_low() {
        assert_eq!(zxid(0, 0), 0);
        assert_eq!(zxid(1, 0), 0x1_0000_0000);
        assert_eq!(zxid(1, 5), 0x1_0000_0005);
        assert_eq!(zxid(0x7fff_ffff, u32::MAX), i64::MAX);
        assert_eq!(zxid(u32::MAX, u32::MAX), -1);
    }

    #[test]
    fn zxid_parts_round_trip() {
        for (e, c) in [
            (0, 0),
            (1, 1),
            (7, u32::MAX),
            (u32::MAX, 0),
            (0x8000_0000, 3),
        ] {
            let z = zxid(e, c);
            assert_eq!((epoch_of(z), counter_of(z)), (e, c), "zxid {z:#x}");
        }
    }

    #[test]
    fn zxids_of_one_epoch_order_by_counter() {
        assert!(zxid(3, 1) < zxid(3, 2));
        assert!(zxid(3, u32::MAX) < zxid(4, 0));
    }

    #[test]
    fn names_follow_the_enum() {
        assert_eq!(PeerMsg::UpToDate.name(), "UPTODATE");
        assert_eq!(
            PeerMsg::Sync(Sync {
                session: 1,
                cxid: 2,
                zxid: 3
            })
            .name(),
            "SYNC"
        );
        assert_eq!(PeerMsg::Ack(Ack { zxid: 1 }).name(), "ACK");
        assert_eq!(PeerMsg::Vote(vote()).name(), "VOTE");
    }

    fn vote() -> Vote {
        Vote {
            sender: 1,
            round: 2,
            leader: 3,
            zxid: 4,
            peer_epoch: 5,
            state: ServerState::Looking,
            config: 6,
        }
    }
}
