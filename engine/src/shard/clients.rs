//! `Clients`: which connection serves each session, as a pure state machine.
//!
//! The shard driver hands it handshakes, requests, auth packets and closed sockets; it
//! decides, with the [`ShardCore`], what each connection is told ([`ToConn`]):
//! - A handshake whose `lastZxidSeen` is ahead of this server is refused (the client
//!   has seen a future this server lacks; ZooKeeper refuses too). A new session is a
//!   `CreateSession` txn answered, once durable, as the handshake's reply. A reconnect
//!   with the right password moves the session here and closes its old connection.
//! - A request that arrives on a connection its session has left is answered
//!   `SessionMoved` and never runs (ZooKeeper's answer).
//! - A session's closing reply is followed by closing its connection; so is expiry.
//! - Watches belong to the connection, as in ZooKeeper: when it closes while still
//!   serving its session, the session's watches go (the client re-registers them with
//!   `setWatches` when it reconnects).
//! - A watch event reaches a session only if the event's ACL grants READ to the ids
//!   its connection holds at that moment ([`Clients::event_conn`]; ZooKeeper's fix of
//!   CVE-2024-23944): a session never hears of changes to a node it may not read. The
//!   superuser and world-readable nodes pass, as in every ACL check.
//!
//! Invariant: `session_conn` maps a session to a connection that `conns` knows and that
//! serves that session.

use std::collections::HashMap;

use transport::jute::connect::{CONNECT_PASSWD_BYTES, ConnectRequest, ConnectResponse};
use transport::jute::{ErrorCode, Id, perms};

use super::core::{ClientRef, ConnId, Now, Reply, ShardCore};
use crate::op::{Op, SESSION_PASSWORD_LEN};
use crate::runtime::msg::ToConn;
use crate::session::SessionIdGen;
use crate::shard::Action;
use crate::tree::acl;
use crate::tree::read::ReadResult;
use crate::tree::watch::WatchEvent;
use crate::txn::TxnResult;

/// The xid a connection's `CreateSession` gets, so its reply becomes the handshake's
/// answer. Clients never use it: their xids count up from 1.
pub const CONNECT_XID: i32 = i32::MIN;

/// What the table knows about a connection.
#[derive(Debug, Clone)]
struct ConnInfo {
    session: i64,
    auth: Vec<Id>,
    req: ConnectRequest,
}

/// The connections and sessions of one shard.
#[derive(Debug)]
pub struct Clients {
    conns: HashMap<ConnId, ConnInfo>,
    session_conn: HashMap<i64, ConnId>,
    ids: SessionIdGen,
}

impl Clients {
    pub fn new(ids: SessionIdGen) -> Self {
        Clients {
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            ids,
        }
    }

    /// The connection serving `session`, if any.
    pub fn conn_of(&self, session: i64) -> Option<ConnId> {
        self.session_conn.get(&session).copied()
    }

    /// The connection to deliver `event` to: its session's, when that connection's ids
    /// may read the node the event is about; `None` drops the event (no connection, or
    /// no READ permission).
    pub fn event_conn(&self, event: &WatchEvent) -> Option<ConnId> {
        let conn = self.conn_of(event.session)?;
        let info = self.conns.get(&conn);
        debug_assert!(info.is_some(), "a session's connection is known");
        let auth = info.map_or(&[][..], |c| c.auth.as_slice());
        if acl::check(&event.acl, perms::READ, auth) {
            Some(conn)
        } else {
            tracing::trace!(
                session = format_args!("0x{:x}", event.session),
                path = event.path,
                "watch event not delivered: no READ permission"
            );
            None
        }
    }

    /// Connections known.
    /// Every connection with a handshake.
    pub fn conns(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// A handshake on `conn` from a peer whose address identity is `ip`. `password`
    /// is fresh randomness for a new session. Replies go to `out`; a new session's
    /// txn goes to `actions`.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        &mut self,
        core: &mut ShardCore,
        conn: ConnId,
        req: ConnectRequest,
        ip: Id,
        password: [u8; SESSION_PASSWORD_LEN],
        now: Now,
        out: &mut Vec<ToConn>,
        actions: &mut Vec<Action>,
    ) {
        let last = core.db().last_zxid();
        if req.last_zxid_seen > last {
            tracing::warn!(
                seen = req.last_zxid_seen,
                last,
                "refusing a client that has seen a newer zxid"
            );
            return refuse(conn, &req, out);
        }
        if req.session_id == 0 {
            let session = self.ids.next_id();
            let op = Op::CreateSession {
                session_id: session,
                timeout_ms: req.time_out,
                password,
            };
            self.attach(conn, session, req, ip);
            let client = ClientRef {
                conn,
                session,
                xid: CONNECT_XID,
            };
            return core.request(client, &[], op, now, actions);
        }
        let session = req.session_id;
        let passwd = req.passwd.as_deref().unwrap_or(&[]);
        match core
            .db_mut()
            .sessions
            .reconnect(session, passwd, now.mono_ms)
        {
            Ok(timeout) => {
                if let Some(old) = self.session_conn.get(&session).copied() {
                    // The session moved: its old connection is closed, as ZooKeeper does.
                    out.push(ToConn::Close { conn: old });
                }
                let resp = connect_response(core, &req, session, timeout);
                self.attach(conn, session, req, ip);
                out.push(ToConn::Connected {
                    conn,
                    resp,
                    accepted: true,
                });
            }
            Err(_) => refuse(conn, &req, out),
        }
    }

    fn attach(&mut self, conn: ConnId, session: i64, req: ConnectRequest, ip: Id) {
        let auth = vec![ip];
        self.conns.insert(conn, ConnInfo { session, auth, req });
        self.session_conn.insert(session, conn);
    }

    /// A request: handed to the core, or answered `SessionMoved` when the session now
    /// lives on another connection.
    pub fn request(
        &mut self,
        core: &mut ShardCore,
        client: ClientRef,
        op: Op,
        now: Now,
        actions: &mut Vec<Action>,
    ) {
        let moved = self
            .session_conn
            .get(&client.session)
            .is_some_and(|c| *c != client.conn);
        if moved {
            actions.push(Action::Reply {
                to: client,
                zxid: core.db().last_zxid(),
                reply: Reply::Read(Err(ErrorCode::SessionMoved)),
            });
            return;
        }
        let auth = self
            .conns
            .get(&client.conn)
            .map(|c| c.auth.as_slice())
            .unwrap_or(&[]);
        core.request(client, auth, op, now, actions);
    }

    /// An auth packet's ids (added to the connection's, as ZooKeeper does); answered
    /// with zxid 0, as ZooKeeper answers auth.
    pub fn auth(&mut self, client: ClientRef, ids: Vec<Id>, out: &mut Vec<ToConn>) {
        if let Some(c) = self.conns.get_mut(&client.conn) {
            for id in ids {
                if !c.auth.contains(&id) {
                    c.auth.push(id);
                }
            }
        }
        out.push(ToConn::Reply {
            conn: client.conn,
            xid: client.xid,
            zxid: 0,
            reply: Reply::Read(Ok(ReadResult::Empty)),
        });
    }

    /// The socket of `conn` is gone: returns the session whose watches go with it
    /// (when the connection still served its session).
    pub fn closed(&mut self, conn: ConnId) -> Option<i64> {
        let c = self.conns.remove(&conn)?;
        if self.session_conn.get(&c.session) == Some(&conn) {
            self.session_conn.remove(&c.session);
            return Some(c.session);
        }
        None
    }

    /// `session` expired: its connection, if any, is closed.
    pub fn expired(&mut self, session: i64, out: &mut Vec<ToConn>) {
        if let Some(conn) = self.session_conn.remove(&session) {
            out.push(ToConn::Close { conn });
        }
    }

    /// The core's reply to `to`, as messages for connections.
    pub fn reply(
        &mut self,
        core: &ShardCore,
        to: ClientRef,
        zxid: i64,
        reply: Reply,
        out: &mut Vec<ToConn>,
    ) {
        if to.xid != CONNECT_XID {
            let closing = matches!(reply, Reply::Write(TxnResult::CloseSession));
            out.push(ToConn::Reply {
                conn: to.conn,
                xid: to.xid,
                zxid,
                reply,
            });
            if closing {
                self.session_conn.remove(&to.session);
                out.push(ToConn::Close { conn: to.conn });
            }
            return;
        }
        let Some(info) = self.conns.get(&to.conn) else {
            return;
        };
        match reply {
            Reply::Write(TxnResult::CreateSession { timeout_ms }) => {
                let resp = connect_response(core, &info.req, to.session, timeout_ms);
                out.push(ToConn::Connected {
                    conn: to.conn,
                    resp,
                    accepted: true,
                });
            }
            other => {
                tracing::warn!(error = ?other.error(), "session creation failed");
                refuse(to.conn, &info.req.clone(), out);
            }
        }
    }
}

fn refuse(conn: ConnId, req: &ConnectRequest, out: &mut Vec<ToConn>) {
    out.push(ToConn::Connected {
        conn,
        resp: ConnectResponse::rejected(req),
        accepted: false,
    });
}

fn connect_response(
    core: &ShardCore,
    req: &ConnectRequest,
    session: i64,
    timeout: i32,
) -> ConnectResponse {
    let mut passwd = [0u8; CONNECT_PASSWD_BYTES];
    if let Some(s) = core.db().sessions.get(session) {
        passwd.copy_from_slice(&s.password[..CONNECT_PASSWD_BYTES]);
    }
    ConnectResponse::for_request(req, timeout, session, passwd, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prep::PrepConfig;
    use crate::session::SessionConfig;
    use crate::shard::core::Now;
    use crate::tree::AclList;
    use crate::tree::acl::{AclConfig, auth_ids};
    use crate::txn::Db;
    use transport::jute::{Acl, EventType};

    const CONN: ConnId = ConnId { core: 0, id: 1 };

    /// A table with one connection that has just opened a new session (its id).
    fn connected() -> (Clients, ShardCore, i64) {
        let mut core = ShardCore::new(
            Db::new(SessionConfig::from_tick(2000)),
            PrepConfig::default(),
        );
        let mut clients = Clients::new(SessionIdGen::new(0, 1_700_000_000_000));
        let req = ConnectRequest {
            time_out: 10_000,
            ..Default::default()
        };
        let (mut out, mut actions) = (Vec::new(), Vec::new());
        let ip = Id::new("ip", "127.0.0.1");
        clients.connect(
            &mut core,
            CONN,
            req,
            ip,
            [7; SESSION_PASSWORD_LEN],
            Now::at(0),
            &mut out,
            &mut actions,
        );
        let session = clients.conns[&CONN].session;
        assert_eq!(clients.conn_of(session), Some(CONN));
        (clients, core, session)
    }

    fn event(session: i64, acl: Vec<Acl>) -> WatchEvent {
        WatchEvent {
            session,
            kind: EventType::NodeDataChanged,
            path: "/n".into(),
            acl: AclList::from(acl),
        }
    }

    fn add_auth(clients: &mut Clients, session: i64, user_password: &str, cfg: &AclConfig) {
        let ids = auth_ids("digest", user_password.as_bytes(), cfg).unwrap();
        let client = ClientRef {
            conn: CONN,
            session,
            xid: -4,
        };
        clients.auth(client, ids, &mut Vec::new());
    }

    fn digest_acl(user_password: &str, perms: i32) -> Acl {
        Acl {
            perms,
            id: Id::new("digest", acl::digest(user_password)),
        }
    }

    /// CVE-2024-23944: an event about a node the session may not read is dropped; it
    /// is delivered once the connection holds an id that may (or the superuser's).
    #[test]
    fn events_reach_only_sessions_that_may_read_the_node() {
        let cfg = AclConfig::with_super_password("super:test");
        let (mut clients, _core, s) = connected();
        let u1_only = vec![digest_acl("u1:p1", perms::ALL)];
        let u1_write = vec![
            digest_acl("u1:p1", perms::WRITE | perms::DELETE),
            Acl {
                perms: perms::CREATE,
                id: Id::anyone(),
            },
        ];
        assert_eq!(clients.event_conn(&event(s, u1_only.clone())), None);
        assert_eq!(
            clients.event_conn(&event(s, u1_write.clone())),
            None,
            "permissions other than READ do not count"
        );
        let world_read = vec![
            digest_acl("u1:p1", perms::ALL),
            Acl {
                perms: perms::READ,
                id: Id::anyone(),
            },
        ];
        assert_eq!(clients.event_conn(&event(s, world_read)), Some(CONN));
        assert_eq!(clients.event_conn(&event(s, Vec::new())), Some(CONN));
        let ip_read = vec![Acl {
            perms: perms::READ,
            id: Id::new("ip", "127.0.0.0/8"),
        }];
        assert_eq!(clients.event_conn(&event(s, ip_read)), Some(CONN));

        add_auth(&mut clients, s, "u2:p2", &cfg);
        assert_eq!(clients.event_conn(&event(s, u1_only.clone())), None);
        add_auth(&mut clients, s, "u1:p1", &cfg);
        assert_eq!(clients.event_conn(&event(s, u1_only.clone())), Some(CONN));
        assert_eq!(clients.event_conn(&event(s, u1_write.clone())), None);

        let (mut clients, _core, s) = connected();
        add_auth(&mut clients, s, "super:test", &cfg);
        assert_eq!(clients.event_conn(&event(s, u1_write)), Some(CONN));

        assert_eq!(clients.closed(CONN), Some(s));
        assert_eq!(clients.event_conn(&event(s, Vec::new())), None);
    }
}
