//! Reads: answering non-write `Op`s from the tree, registering the watches they ask for.
//!
//! Reads never change replicated state; they may add or remove watches of the calling
//! session (watches are local to a server). Rules follow ZooKeeper 3.8's
//! `FinalRequestProcessor`: getData/getChildren need READ (checked after existence, and
//! no watch is left when refused); exists needs no permission and leaves its watch
//! even when the node is missing (it then fires `NodeCreated`); getACL needs READ or
//! ADMIN and hides digest hashes from callers without ADMIN.

use transport::jute::{Acl, ErrorCode, EventType, Id, Stat, perms};

use super::watch::{WatchEvent, WatchMode, WatchTable};
use super::{DataTree, acl, path};
use crate::op::Op;

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Sync {
        path: String,
    },
    Exists {
        stat: Stat,
    },
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    /// Children names, sorted.
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetAllChildrenNumber {
        count: i32,
    },
    GetEphemerals {
        paths: Vec<String>,
    },
    AddWatch,
    RemoveWatches,
    CheckWatches,
    /// Events owed to the session for changes it missed, to send before the reply.
    SetWatches {
        events: Vec<WatchEvent>,
    },
    MultiRead(Vec<Result<ReadResult, ErrorCode>>),
    /// The caller's authenticated ids, in the order they were added.
    WhoAmI {
        ids: Vec<Id>,
    },
    /// An answer with no body: a ping's, an auth packet's.
    Empty,
}

fn valid(p: &str) -> Result<(), ErrorCode> {
    path::validate(p, false).map_err(|_| ErrorCode::BadArguments)
}

/// Answers `op` (not a write) for `session` holding `auth` ids.
pub fn read(
    tree: &mut DataTree,
    session: i64,
    auth: &[Id],
    op: &Op,
) -> Result<ReadResult, ErrorCode> {
    // No path validation: ZooKeeper checks paths on writes only, so a read of an
    // invalid path (`/a/`) finds no node (NONODE), and exists and addWatch register a
    // watch on it (which can never fire), as ZooKeeper does. Clients validate paths
    // themselves.
    match op {
        Op::Sync { path } => Ok(ReadResult::Sync { path: path.clone() }),
        Op::Exists { path, watch } => exists(tree, session, path, *watch),
        Op::GetData { path, watch } => get_data(tree, session, auth, path, *watch),
        Op::GetChildren { path, watch } => {
            let (children, _) = get_children(tree, session, auth, path, *watch)?;
            Ok(ReadResult::GetChildren { children })
        }
        Op::GetChildren2 { path, watch } => {
            let (children, stat) = get_children(tree, session, auth, path, *watch)?;
            Ok(ReadResult::GetChildren2 { children, stat })
        }
        Op::GetAcl { path } => get_acl(tree, auth, path),
        Op::GetAllChildrenNumber { path } => {
            let node = tree.get(path).ok_or(ErrorCode::NoNode)?;
            acl::require(&node.acl, perms::READ, auth)?;
            let count = tree.descendants(path).min(i32::MAX as usize) as i32;
            Ok(ReadResult::GetAllChildrenNumber { count })
        }
        Op::GetEphemerals { prefix } => {
            let all = prefix.is_empty() || prefix == "/";
            let paths = tree
                .ephemerals(session)
                .filter(|p| all || p.starts_with(prefix.as_str()))
                .map(str::to_string)
                .collect();
            Ok(ReadResult::GetEphemerals { paths })
        }
        Op::AddWatch { path, mode } => {
            tree.watches.add_persistent(path, session, *mode)?;
            Ok(ReadResult::AddWatch)
        }
        Op::CheckWatches { path, kind } => {
            if tree.watches.contains(path, *kind, session) {
                Ok(ReadResult::CheckWatches)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Op::RemoveWatches { path, kind } => {
            if tree.watches.remove(path, *kind, session) {
                Ok(ReadResult::RemoveWatches)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        Op::SetWatches { .. } => set_watches(tree, session, op),
        Op::WhoAmI => Ok(ReadResult::WhoAmI { ids: auth.to_vec() }),
        Op::Ping => Ok(ReadResult::Empty),
        Op::MultiRead(ops) => Ok(ReadResult::MultiRead(
            ops.iter()
                .map(|o| match o {
                    Op::GetData { .. } | Op::GetChildren { .. } => read(tree, session, auth, o),
                    _ => Err(ErrorCode::BadArguments),
                })
                .collect(),
        )),
        _ => Err(ErrorCode::BadArguments),
    }
}

fn exists(
    tree: &mut DataTree,
    session: i64,
    p: &str,
    watch: bool,
) -> Result<ReadResult, ErrorCode> {
    if watch {
        tree.watches
            .add(WatchTable::Data, p, session, WatchMode::Standard)?;
    }
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    Ok(ReadResult::Exists {
        stat: node.client_stat(),
    })
}

fn get_data(
    tree: &mut DataTree,
    session: i64,
    auth: &[Id],
    p: &str,
    watch: bool,
) -> Result<ReadResult, ErrorCode> {
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    acl::require(&node.acl, perms::READ, auth)?;
    let (data, stat) = (node.data.as_deref().map(<[u8]>::to_vec), node.client_stat());
    if watch {
        tree.watches
            .add(WatchTable::Data, p, session, WatchMode::Standard)?;
    }
    Ok(ReadResult::GetData { data, stat })
}

fn get_children(
    tree: &mut DataTree,
    session: i64,
    auth: &[Id],
    p: &str,
    watch: bool,
) -> Result<(Vec<String>, Stat), ErrorCode> {
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    acl::require(&node.acl, perms::READ, auth)?;
    let names = node.children.iter().map(|c| path::name(c).to_string());
    let out = (names.collect(), node.client_stat());
    if watch {
        tree.watches
            .add(WatchTable::Child, p, session, WatchMode::Standard)?;
    }
    Ok(out)
}

fn get_acl(tree: &DataTree, auth: &[Id], p: &str) -> Result<ReadResult, ErrorCode> {
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    acl::require(&node.acl, perms::READ | perms::ADMIN, auth)?;
    let shown = if acl::check(&node.acl, perms::ADMIN, auth) {
        node.acl.to_vec()
    } else {
        acl::redact(&node.acl)
    };
    Ok(ReadResult::GetAcl {
        acl: shown,
        stat: node.client_stat(),
    })
}

/// ZooKeeper's `DataTree.setWatches`: per watched path, either an event for what the
/// session missed since `relative_zxid`, or a re-registered watch.
fn set_watches(tree: &mut DataTree, session: i64, op: &Op) -> Result<ReadResult, ErrorCode> {
    let Op::SetWatches {
        relative_zxid,
        data,
        exist,
        child,
        persistent,
        persistent_recursive,
    } = op
    else {
        return Err(ErrorCode::BadArguments);
    };
    for p in data
        .iter()
        .chain(exist)
        .chain(child)
        .chain(persistent)
        .chain(persistent_recursive)
    {
        valid(p)?;
    }
    let upper =
        data.len() + exist.len() + child.len() + 2 * persistent.len() + persistent_recursive.len();
    if !tree.watches.has_room(session, upper) {
        return Err(super::watch::WATCH_LIMIT_ERROR);
    }
    let rel = *relative_zxid;
    let mut events = Vec::new();
    // What a reconnecting client missed, sent without an ACL check, as ZooKeeper's
    // `DataTree.setWatches` does (its CVE-2024-23944 fix checks triggered watches only).
    let mut owe = |kind: EventType, p: &str| events.push(WatchEvent::unchecked(session, kind, p));
    let mut register = Vec::new();
    for p in data {
        match tree.get(p) {
            None => owe(EventType::NodeDeleted, p),
            Some(n) if n.stat.mzxid > rel => owe(EventType::NodeDataChanged, p),
            Some(_) => register.push((WatchTable::Data, p, WatchMode::Standard)),
        }
    }
    for p in exist {
        match tree.get(p) {
            Some(_) => owe(EventType::NodeCreated, p),
            None => register.push((WatchTable::Data, p, WatchMode::Standard)),
        }
    }
    for p in child {
        match tree.get(p) {
            None => owe(EventType::NodeDeleted, p),
            Some(n) if n.stat.pzxid > rel => owe(EventType::NodeChildrenChanged, p),
            Some(_) => register.push((WatchTable::Child, p, WatchMode::Standard)),
        }
    }
    for p in persistent {
        register.push((WatchTable::Child, p, WatchMode::Persistent));
        register.push((WatchTable::Data, p, WatchMode::Persistent));
    }
    for p in persistent_recursive {
        register.push((WatchTable::Data, p, WatchMode::PersistentRecursive));
    }
    for (table, p, mode) in register {
        tree.watches.add(table, p, session, mode)?;
    }
    Ok(ReadResult::SetWatches { events })
}
