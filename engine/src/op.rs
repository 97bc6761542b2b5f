//! `Op`: the engine's request type, one variant per client operation.
//!
//! Semantic, not wire: the server layer turns decoded jute requests (create, create2,
//! createContainer and createTTL all become [`Op::Create`]) into `Op`s. Writes
//! ([`Op::is_write`]) go through `crate::prep` to become txns; everything else is
//! answered from the tree by `crate::tree::read::read`.

use transport::jute::{Acl, AddWatchMode, CreateMode, ErrorCode, WatcherType};

/// Length of a session password (the C client reads exactly 16 bytes).
pub const SESSION_PASSWORD_LEN: usize = 16;

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    // ---- writes ----
    /// Create a node. `data: None` is null data (reads back with length -1).
    /// `ttl_ms` is required for TTL modes and must be `None` otherwise. `container`
    /// is ZooKeeper's createContainer txn type: a container whatever `mode` says,
    /// named as `mode` says (sequential flags give a sequential container, as in
    /// ZooKeeper); `mode: Container` alone makes a container too.
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl_ms: Option<i64>,
        container: bool,
    },
    /// A write ZooKeeper refuses while preparing it, so that the refusal takes a zxid:
    /// prep answers `error`. Only the server layer makes these, from requests no
    /// client sends (see `server::convert`): create flags no mode has
    /// (BADARGUMENTS), and, inside a multi, a create step with TTL flags that is not
    /// a createTTL record (`whole_multi`: once prep reaches it, the whole multi fails
    /// with MARSHALLINGERROR in the reply header, as ZooKeeper 3.8's cast of the
    /// record fails; a step failing before it fails the multi as usual).
    Malformed {
        path: String,
        error: ErrorCode,
        whole_multi: bool,
    },
    /// Delete a childless node; `version` -1 matches any.
    Delete {
        path: String,
        version: i32,
    },
    /// The reaper's delete of an empty container or expired TTL node (`deleteContainer`):
    /// refused unless the node is still a childless container/TTL node.
    DeleteContainer {
        path: String,
    },
    /// Replace data; `version` -1 matches any.
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    /// Replace the ACL; `version` (the aversion) -1 matches any.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Assert a node's data version (meaningful inside a multi).
    Check {
        path: String,
        version: i32,
    },
    /// All-or-nothing: Create, Delete, SetData and Check only.
    Multi(Vec<Op>),
    /// Open a session: its id and password are chosen by the server layer; the timeout
    /// is the client's request (prep clamps it).
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; SESSION_PASSWORD_LEN],
    },
    /// Close the requesting session, deleting its ephemerals.
    CloseSession,
    /// Dynamic reconfiguration: prep makes it a setData of `/zookeeper/config` with
    /// the new members (`config::dynamic`); comma-separated lists, `None` = not given,
    /// `from_config` -1 = any version.
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        new_members: Option<String>,
        from_config: i64,
    },

    // ---- reads (answered from the tree, never replicated) ----
    /// Answered with the path once preceding writes are applied (the server orders it).
    Sync {
        path: String,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    /// getChildren with the node's stat.
    GetChildren2 {
        path: String,
        watch: bool,
    },
    GetAcl {
        path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    /// The requesting session's ephemerals whose path starts with `prefix` (`/` = all).
    GetEphemerals {
        prefix: String,
    },
    AddWatch {
        path: String,
        mode: AddWatchMode,
    },
    RemoveWatches {
        path: String,
        kind: WatcherType,
    },
    CheckWatches {
        path: String,
        kind: WatcherType,
    },
    /// Re-register watches after a reconnect, catching up on what was missed since
    /// `relative_zxid`.
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        persistent_recursive: Vec<String>,
    },
    /// Several reads answered together, each with its own result (GetData and
    /// GetChildren only).
    MultiRead(Vec<Op>),
    /// The identities the requesting connection has authenticated as (zkCli `whoami`).
    WhoAmI,
    /// A client's heartbeat (xid -2): touches the session and is answered in its turn,
    /// behind the session's own writes, as ZooKeeper's request pipeline answers it.
    Ping,
}

impl Op {
    /// Whether the op changes replicated state (goes through prep and the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Malformed { .. }
                | Op::Delete { .. }
                | Op::DeleteContainer { .. }
                | Op::SetData { .. }
                | Op::SetAcl { .. }
                | Op::Check { .. }
                | Op::Multi(_)
                | Op::CreateSession { .. }
                | Op::CloseSession
                | Op::Reconfig { .. }
        )
    }

    /// Whether the op may appear inside a `Multi`.
    pub fn allowed_in_multi(&self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Malformed { .. }
                | Op::Delete { .. }
                | Op::SetData { .. }
                | Op::Check { .. }
        )
    }

    /// The path the op names, if it names one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Op::Create { path, .. }
            | Op::Malformed { path, .. }
            | Op::Delete { path, .. }
            | Op::DeleteContainer { path }
            | Op::SetData { path, .. }
            | Op::SetAcl { path, .. }
            | Op::Check { path, .. }
            | Op::Sync { path }
            | Op::Exists { path, .. }
            | Op::GetData { path, .. }
            | Op::GetChildren { path, .. }
            | Op::GetChildren2 { path, .. }
            | Op::GetAcl { path }
            | Op::GetAllChildrenNumber { path }
            | Op::AddWatch { path, .. }
            | Op::RemoveWatches { path, .. }
            | Op::CheckWatches { path, .. } => Some(path),
            Op::GetEphemerals { prefix } => Some(prefix),
            _ => None,
        }
    }
}
