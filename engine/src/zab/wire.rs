//! The Zab cores' messages on the peer wire (`transport::peer`), both ways.
//!
//! # Epochs on a link
//! The cores stamp every message with an epoch and ignore other epochs. On the wire
//! only discovery says its epoch (`FollowerInfo.accepted_epoch`,
//! `LeaderInfo.new_epoch`); every later message on a link belongs to the epoch the
//! link accepted, so the receiver stamps it with its [`LinkEpoch`]: a learner's
//! link takes the epoch of the `LeaderInfo` it accepted, a leader's link to a
//! learner the epoch it offered. A message of a link that has no epoch yet is
//! refused ([`WireError::BeforeEpoch`]): the link is dropped.
//!
//! # What does not map
//! `Body::Snap` travels as a wire `Snap` with the image's size and then the image
//! in chunks: the driver builds it with [`snap_to_peer`] from `Action::SendSnapshot`,
//! never from a `Send`. Wire messages the cores do not take (UPTODATE, ping, forwarded requests, revalidation, sync, snapshot chunks) come back as
//! [`Incoming::Runtime`] for the runtime to handle.

use std::sync::Arc;

use thiserror::Error;
use transport::peer::{
    self, ArchivedLearnerRole, ArchivedPeerMsg, ArchivedServerState, LearnerRole, PeerMsg,
    ServerState,
};

use super::election::{Notification, PeerState, Vote};
use super::msg::{Body, Msg};
use super::{Epoch, Role, ServerId};

/// The epoch a link has accepted, if any (see the module docs).
pub type LinkEpoch = Option<Epoch>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("{what} on a link that has not accepted an epoch")]
    BeforeEpoch { what: &'static str },
    #[error("a snapshot is sent with snap_to_peer, not as a message")]
    SnapIsNotAMessage,
}

/// What arrived, in the cores' terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// For `Election::step`.
    Vote { from: ServerId, n: Notification },
    /// For the discovery or broadcast cores.
    Zab(Msg),
    /// A snapshot of the state at `zxid`, `total_bytes` long, follows in chunks.
    Snap { zxid: i64, total_bytes: u64 },
    /// Not the cores' business (chunks, pings, forwarded requests, ...).
    Runtime,
}

/// An election notification from `sender`.
pub fn vote_to_peer(sender: ServerId, n: &Notification) -> PeerMsg {
    PeerMsg::Vote(peer::Vote {
        sender,
        round: n.round,
        leader: n.vote.leader,
        zxid: n.vote.zxid,
        peer_epoch: n.vote.epoch,
        state: match n.state {
            PeerState::Looking => ServerState::Looking,
            PeerState::Following => ServerState::Following,
            PeerState::Leading => ServerState::Leading,
            PeerState::Observing => ServerState::Observing,
        },
        config: n.config,
    })
}

/// A core's message from server `me` on the wire.
pub fn msg_to_peer(me: ServerId, msg: &Msg) -> Result<PeerMsg, WireError> {
    Ok(match &msg.body {
        Body::FollowerInfo { last_zxid, role } => PeerMsg::FollowerInfo(peer::FollowerInfo {
            id: me,
            accepted_epoch: msg.epoch,
            last_zxid: *last_zxid,
            role: match role {
                Role::Participant => LearnerRole::Participant,
                Role::Observer => LearnerRole::Observer,
            },
        }),
        Body::LeaderInfo => PeerMsg::LeaderInfo(peer::LeaderInfo {
            new_epoch: msg.epoch,
        }),
        Body::AckEpoch {
            current_epoch,
            last_zxid,
            repeat,
        } => PeerMsg::AckEpoch(peer::AckEpoch {
            current_epoch: *current_epoch,
            last_zxid: *last_zxid,
            repeat: *repeat,
        }),
        Body::Ack { zxid } => PeerMsg::Ack(peer::Ack { zxid: *zxid }),
        Body::Diff { from } => PeerMsg::Diff(peer::Diff { last_zxid: *from }),
        Body::Trunc { to } => PeerMsg::Trunc(peer::Trunc { zxid: *to }),
        Body::Snap { .. } => return Err(WireError::SnapIsNotAMessage),
        Body::Proposal { zxid, txn } => PeerMsg::Proposal(peer::Proposal {
            zxid: *zxid,
            txn: txn.to_vec(),
        }),
        Body::Commit { zxid } => PeerMsg::Commit(peer::Commit { zxid: *zxid }),
        Body::NewLeader { zxid } => PeerMsg::NewLeader(peer::NewLeader { zxid: *zxid }),
        Body::AckNewLeader { zxid } => PeerMsg::AckNewLeader(peer::AckNewLeader { zxid: *zxid }),
        Body::Inform { zxid, txn } => PeerMsg::Inform(peer::Inform {
            zxid: *zxid,
            txn: txn.to_vec(),
        }),
    })
}

/// The header of a snapshot of the state at `zxid`, `total_bytes` long.
pub fn snap_to_peer(zxid: i64, total_bytes: u64) -> PeerMsg {
    PeerMsg::Snap(peer::Snap { zxid, total_bytes })
}

/// A wire message from `from`, whose link has accepted `link` (see module docs). A
/// learner's role is what it says in `FollowerInfo`; the leader decides what that
/// counts for (`Body::FollowerInfo`).
pub fn from_peer(
    from: ServerId,
    m: &ArchivedPeerMsg,
    link: LinkEpoch,
) -> Result<Incoming, WireError> {
    let on_link = |what: &'static str, body: Body| -> Result<Incoming, WireError> {
        let epoch = link.ok_or(WireError::BeforeEpoch { what })?;
        Ok(Incoming::Zab(Msg::new(epoch, body)))
    };
    match m {
        ArchivedPeerMsg::Vote(v) => Ok(Incoming::Vote {
            from,
            n: Notification {
                round: v.round.to_native(),
                vote: Vote {
                    leader: v.leader.to_native(),
                    zxid: v.zxid.to_native(),
                    epoch: v.peer_epoch.to_native(),
                },
                state: match v.state {
                    ArchivedServerState::Looking => PeerState::Looking,
                    ArchivedServerState::Following => PeerState::Following,
                    ArchivedServerState::Leading => PeerState::Leading,
                    ArchivedServerState::Observing => PeerState::Observing,
                },
                config: v.config.to_native(),
            },
        }),
        ArchivedPeerMsg::FollowerInfo(f) => {
            let role = match f.role {
                ArchivedLearnerRole::Participant => Role::Participant,
                ArchivedLearnerRole::Observer => Role::Observer,
            };
            Ok(Incoming::Zab(Msg::new(
                f.accepted_epoch.to_native(),
                Body::FollowerInfo {
                    last_zxid: f.last_zxid.to_native(),
                    role,
                },
            )))
        }
        ArchivedPeerMsg::LeaderInfo(l) => Ok(Incoming::Zab(Msg::new(
            l.new_epoch.to_native(),
            Body::LeaderInfo,
        ))),
        ArchivedPeerMsg::AckEpoch(a) => on_link(
            "AckEpoch",
            Body::AckEpoch {
                current_epoch: a.current_epoch.to_native(),
                last_zxid: a.last_zxid.to_native(),
                repeat: a.repeat,
            },
        ),
        ArchivedPeerMsg::Diff(d) => on_link(
            "Diff",
            Body::Diff {
                from: d.last_zxid.to_native(),
            },
        ),
        ArchivedPeerMsg::Trunc(t) => on_link(
            "Trunc",
            Body::Trunc {
                to: t.zxid.to_native(),
            },
        ),
        ArchivedPeerMsg::Snap(s) => {
            link.ok_or(WireError::BeforeEpoch { what: "Snap" })?;
            Ok(Incoming::Snap {
                zxid: s.zxid.to_native(),
                total_bytes: s.total_bytes.to_native(),
            })
        }
        ArchivedPeerMsg::Proposal(p) => on_link(
            "Proposal",
            Body::Proposal {
                zxid: p.zxid.to_native(),
                txn: Arc::from(&p.txn[..]),
            },
        ),
        ArchivedPeerMsg::Ack(a) => on_link(
            "Ack",
            Body::Ack {
                zxid: a.zxid.to_native(),
            },
        ),
        ArchivedPeerMsg::NewLeader(n) => on_link(
            "NewLeader",
            Body::NewLeader {
                zxid: n.zxid.to_native(),
            },
        ),
        ArchivedPeerMsg::AckNewLeader(a) => on_link(
            "AckNewLeader",
            Body::AckNewLeader {
                zxid: a.zxid.to_native(),
            },
        ),
        ArchivedPeerMsg::Commit(c) => on_link(
            "Commit",
            Body::Commit {
                zxid: c.zxid.to_native(),
            },
        ),
        ArchivedPeerMsg::Inform(i) => on_link(
            "Inform",
            Body::Inform {
                zxid: i.zxid.to_native(),
                txn: Arc::from(&i.txn[..]),
            },
        ),
        _ => Ok(Incoming::Runtime),
    }
}

#[cfg(test)]
mod tests {
    use rkyv::util::AlignedVec;
    use transport::peer::{PeerDecoder, encode_frame};

    use super::*;
    use crate::zab::make_zxid;

    /// Through a real frame and decoder, as a link carries it.
    fn over_the_wire(m: &PeerMsg, link: LinkEpoch) -> Result<Incoming, WireError> {
        let mut buf = AlignedVec::<16>::new();
        encode_frame(m, &mut buf).unwrap();
        let mut dec = PeerDecoder::new();
        let mut chunk = &buf[..];
        let archived = dec.decode(&mut chunk).unwrap().expect("a whole frame");
        from_peer(7, archived, link)
    }

    fn roundtrip(msg: Msg) {
        let wire = msg_to_peer(7, &msg).unwrap();
        assert_eq!(
            over_the_wire(&wire, Some(msg.epoch)),
            Ok(Incoming::Zab(msg.clone())),
            "{msg:?}"
        );
    }

    #[test]
    fn every_core_message_survives_the_wire() {
        let e = 5;
        let z = make_zxid(4, 17);
        let txn: crate::zab::TxnBytes = Arc::from(vec![1u8, 2, 3, 250]);
        for body in [
            Body::FollowerInfo {
                last_zxid: z,
                role: Role::Participant,
            },
            Body::FollowerInfo {
                last_zxid: 0,
                role: Role::Observer,
            },
            Body::LeaderInfo,
            Body::AckEpoch {
                current_epoch: 4,
                last_zxid: z,
                repeat: true,
            },
            Body::Ack { zxid: z },
            Body::Diff { from: z },
            Body::Trunc { to: z },
            Body::Proposal {
                zxid: z,
                txn: txn.clone(),
            },
            Body::Commit { zxid: z },
            Body::NewLeader { zxid: z },
            Body::AckNewLeader { zxid: z },
            Body::Inform {
                zxid: z,
                txn: txn.clone(),
            },
        ] {
            roundtrip(Msg::new(e, body));
        }
    }

    #[test]
    fn votes_survive_the_wire() {
        for state in [
            PeerState::Looking,
            PeerState::Following,
            PeerState::Leading,
            PeerState::Observing,
        ] {
            let n = Notification {
                round: 99,
                vote: Vote::of(3, make_zxid(2, 8), 2),
                state,
                config: make_zxid(2, 5),
            };
            let got = over_the_wire(&vote_to_peer(7, &n), None);
            assert_eq!(got, Ok(Incoming::Vote { from: 7, n }));
        }
    }

    #[test]
    fn discovery_names_its_epoch_and_the_rest_needs_the_links() {
        let info = msg_to_peer(7, &Msg::new(3, Body::LeaderInfo)).unwrap();
        assert_eq!(
            over_the_wire(&info, None),
            Ok(Incoming::Zab(Msg::new(3, Body::LeaderInfo)))
        );
        let ack = PeerMsg::Ack(peer::Ack { zxid: 1 });
        assert_eq!(
            over_the_wire(&ack, None),
            Err(WireError::BeforeEpoch { what: "Ack" })
        );
        let snap = snap_to_peer(make_zxid(2, 4), 1 << 20);
        assert_eq!(
            over_the_wire(&snap, Some(3)),
            Ok(Incoming::Snap {
                zxid: make_zxid(2, 4),
                total_bytes: 1 << 20
            })
        );
        assert_eq!(
            msg_to_peer(7, &Msg::new(3, Body::Snap { zxid: 1 })),
            Err(WireError::SnapIsNotAMessage)
        );
    }

    #[test]
    fn runtime_messages_pass_through() {
        assert_eq!(
            over_the_wire(&PeerMsg::UpToDate, Some(1)),
            Ok(Incoming::Runtime)
        );
    }
}
