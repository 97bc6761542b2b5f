//! Prep: turning a client write into a txn (ZooKeeper's `PrepRequestProcessor`).
//!
//! A write is validated against the applied tree *plus* the changes of writes already
//! prepped but not yet applied (ZooKeeper's `outstandingChanges`), so pipelined writes
//! see each other: `create /a` then `create /a/b` both succeed before either applies,
//! and a second `create /a` gets NODEEXISTS. Prep assigns the zxid and time, picks
//! sequential names (`%010d` of the parent's cversion), fixes up ACLs and checks
//! permissions before versions (NOAUTH before BADVERSION) in ZooKeeper's order.
//!
//! Every write yields exactly one txn: a refused write becomes an error txn that still
//! consumes a zxid; a refused multi becomes a multi of error steps (`Ok` before the
//! failing step, its error, `RuntimeInconsistency` after) and changes nothing.
//!
//! State: the outstanding changes, dropped by [`Prep::applied`] once the tree holds
//! them. It is rebuildable: after a restart or leader change, [`Prep::new`] over the
//! applied `Db` starts empty and is correct again.

use std::collections::{BTreeSet, HashMap, VecDeque};

use transport::jute::{Acl, CreateMode, ErrorCode, Id, Stat, perms};

use crate::op::Op;
use crate::tree::acl::{self, AclConfig};
use crate::tree::{AclList, NodeKind, TTL_MS_MAX, is_special_path, path};
use crate::txn::{CreateTxn, Db, Txn, TxnBody, TxnHeader, TxnOp};

#[cfg(test)]
mod tests;

/// What prep needs to know beyond the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepConfig {
    pub acl: AclConfig,
    /// ZooKeeper's `extendedTypesEnabled`: TTL creates answer UNIMPLEMENTED without it.
    pub ttl_enabled: bool,
    /// An epoch's last zxid counter: the txn after it starts the next epoch at counter
    /// 1 (`zab::zxid_after`), as the Zab leader expects (`zab::leader`, "Counter
    /// rollover"). The same value as `zab::Limits::zxid_counter_max`.
    pub zxid_counter_max: u32,
    /// `reconfigEnabled`: `reconfig` answers RECONFIGDISABLED without it.
    pub reconfig_enabled: bool,
    /// Whether a reconfig may change the voters (Zab: yes, one per reconfig; the
    /// chain modes: no, their chain is the synced members, and a change of the
    /// voters answers UNIMPLEMENTED).
    pub voter_reconfig: bool,
}

impl Default for PrepConfig {
    fn default() -> Self {
        PrepConfig {
            acl: AclConfig::default(),
            ttl_enabled: false,
            zxid_counter_max: crate::zab::ZXID_COUNTER_MAX,
            reconfig_enabled: false,
            voter_reconfig: true,
        }
    }
}

/// Who sends the write.
#[derive(Debug, Clone, Copy)]
pub struct RequestCtx<'a> {
    /// The session (0 for the server's own requests, e.g. the container reaper).
    pub session: i64,
    pub cxid: i32,
    /// The connection's authenticated ids (`ip:…`, `digest:…`, `super:`).
    pub auth: &'a [Id],
}

/// A node as prep sees it (ZooKeeper's `ChangeRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeRecord {
    stat: Stat,
    kind: NodeKind,
    child_count: i32,
    acl: AclList,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Node(String),
    Session(i64),
}

/// The prep stage of one shard's leader.
#[derive(Debug, Clone)]
pub struct Prep {
    last_zxid: i64,
    config: PrepConfig,
    /// (zxid, what it changed), in zxid order.
    queue: VecDeque<(i64, Key)>,
    /// Latest outstanding state per path (`None`: deleted), with its zxid.
    nodes: HashMap<String, (i64, Option<NodeRecord>)>,
    /// Latest outstanding session state (`true`: open), with its zxid.
    sessions: HashMap<i64, (i64, bool)>,
    /// See [`Prep::set_check_sessions`].
    check_sessions: bool,
    /// See [`Prep::set_synced_voters`].
    synced_voters: BTreeSet<u64>,
    /// See [`Prep::set_carried_out`].
    carried_out: std::collections::BTreeMap<u64, i64>,
}

/// The view one request validates against: its own staged changes, then the
/// outstanding ones, then the tree.
struct Stage<'a> {
    db: &'a Db,
    prep: &'a Prep,
    staged: HashMap<String, Option<NodeRecord>>,
    order: Vec<String>,
}

impl<'a> Stage<'a> {
    fn new(db: &'a Db, prep: &'a Prep) -> Self {
        Stage {
            db,
            prep,
            staged: HashMap::new(),
            order: Vec::new(),
        }
    }

    fn get(&self, p: &str) -> Option<NodeRecord> {
        if let Some(r) = self.staged.get(p) {
            return r.clone();
        }
        if let Some((_, r)) = self.prep.nodes.get(p) {
            return r.clone();
        }
        self.db.tree.get(p).map(|n| NodeRecord {
            stat: n.stat,
            kind: n.kind,
            child_count: n.children.len() as i32,
            acl: n.acl.clone(),
        })
    }

    fn put(&mut self, p: &str, r: Option<NodeRecord>) {
        if self.staged.insert(p.to_string(), r).is_none() {
            self.order.push(p.to_string());
        }
    }

    fn into_changes(mut self) -> Vec<(String, Option<NodeRecord>)> {
        let staged = &mut self.staged;
        self.order
            .into_iter()
            .map(|p| {
                let r = staged.remove(&p).flatten();
                (p, r)
            })
            .collect()
    }
}

/// The parent of a create/delete path the way ZooKeeper cuts it (up to the last `/`),
/// after the checks of `validatePathForCreate`/`getParentPathAndValidate`.
fn cut_parent(p: &str) -> Result<&str, ErrorCode> {
    if p.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    match p.rfind('/') {
        Some(0) => Ok("/"),
        Some(i) => Ok(&p[..i]),
        None => Err(ErrorCode::BadArguments),
    }
}

fn valid(p: &str) -> Result<(), ErrorCode> {
    path::validate(p, false).map_err(|_| ErrorCode::BadArguments)
}

fn check_version(expected: i32, current: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

struct Ctx<'c> {
    req: &'c RequestCtx<'c>,
    cfg: &'c PrepConfig,
    synced: &'c BTreeSet<u64>,
    carried: &'c std::collections::BTreeMap<u64, i64>,
    zxid: i64,
    now_ms: i64,
}

impl Prep {
    /// A prep stage over a `Db` whose last applied zxid (or the new epoch's base) is
    /// `last_zxid`; the next txn gets `last_zxid + 1`.
    pub fn new(last_zxid: i64, config: PrepConfig) -> Self {
        Prep {
            last_zxid,
            config,
            queue: VecDeque::new(),
            nodes: HashMap::new(),
            sessions: HashMap::new(),
            check_sessions: true,
            synced_voters: BTreeSet::new(),
            carried_out: std::collections::BTreeMap::new(),
        }
    }

    /// Whether writes of sessions this `Db` does not know as open are refused with
    /// SessionExpired (default: yes). Shard 0 (and a single-shard setup) holds the
    /// session table and keeps ZooKeeper's check; a data shard, whose sessions live in
    /// shard 0, turns it off and relies on the router to admit live sessions only.
    pub fn set_check_sessions(&mut self, on: bool) {
        self.check_sessions = on;
    }

    /// The voters in sync with this leader, itself included (the runtime keeps it
    /// current): a `reconfig` whose new voters lack a majority among them is refused
    /// with NEWCONFIGNOQUORUM, as ZooKeeper's leader refuses it.
    pub fn set_synced_voters(&mut self, voters: BTreeSet<u64>) {
        self.synced_voters = voters;
    }

    /// The version of the members each server has carried out and stored, as it
    /// last reported (`Ping::config`; this leader's own included): a reconfig that
    /// changes the voters waits (NEWCONFIGNOQUORUM) until a majority of the current
    /// voters carried out the current members. Then every majority of the voters before
    /// them holds a server that knows them, so a server that missed a reconfig can
    /// never be elected by voters two reconfigs old (`zab::election` counts no vote
    /// of newer members until it has them).
    pub fn set_carried_out(&mut self, versions: std::collections::BTreeMap<u64, i64>) {
        self.carried_out = versions;
    }

    /// The zxid of the last prepped txn.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The zxid the next prepped txn gets.
    pub fn next_zxid(&self) -> i64 {
        crate::zab::zxid_after(self.last_zxid, self.config.zxid_counter_max)
    }

    /// See [`Prep::set_check_sessions`].
    pub fn check_sessions(&self) -> bool {
        self.check_sessions
    }

    pub fn config(&self) -> &PrepConfig {
        &self.config
    }

    /// Number of outstanding change records (bounded by the writes in flight).
    pub fn outstanding(&self) -> usize {
        self.queue.len()
    }

    /// The tree now holds every txn up to `zxid`: drop their change records.
    pub fn applied(&mut self, zxid: i64) {
        while let Some((z, _)) = self.queue.front() {
            if *z > zxid {
                break;
            }
            let Some((z, key)) = self.queue.pop_front() else {
                break;
            };
            match key {
                Key::Node(p) => {
                    if self.nodes.get(&p).is_some_and(|(latest, _)| *latest == z) {
                        self.nodes.remove(&p);
                    }
                }
                Key::Session(s) => {
                    if self
                        .sessions
                        .get(&s)
                        .is_some_and(|(latest, _)| *latest == z)
                    {
                        self.sessions.remove(&s);
                    }
                }
            }
        }
    }

    fn session_active(&self, db: &Db, id: i64) -> bool {
        match self.sessions.get(&id) {
            Some((_, open)) => *open,
            None => db.sessions.is_active(id),
        }
    }

    fn set_session(&mut self, id: i64, open: bool) {
        self.sessions.insert(id, (self.last_zxid, open));
        self.queue.push_back((self.last_zxid, Key::Session(id)));
    }

    fn commit(&mut self, changes: Vec<(String, Option<NodeRecord>)>) {
        let z = self.last_zxid;
        for (p, r) in changes {
            self.nodes.insert(p.clone(), (z, r));
            self.queue.push_back((z, Key::Node(p)));
        }
    }

    /// Turns the write `op` from `req` into the next txn, at time `now_ms`.
    pub fn prep(&mut self, db: &Db, req: &RequestCtx<'_>, op: &Op, now_ms: i64) -> Txn {
        debug_assert!(op.is_write(), "reads are answered by tree::read::read");
        self.last_zxid = self.next_zxid();
        let zxid = self.last_zxid;
        let header = TxnHeader {
            session: match op {
                Op::CreateSession { session_id, .. } => *session_id,
                _ => req.session,
            },
            cxid: req.cxid,
            zxid,
            time_ms: now_ms,
        };
        let body = self.prep_body(db, req, op, zxid, now_ms);
        Txn { header, body }
    }

    fn prep_body(
        &mut self,
        db: &Db,
        req: &RequestCtx<'_>,
        op: &Op,
        zxid: i64,
        now_ms: i64,
    ) -> TxnBody {
        let error = |e: ErrorCode| TxnBody::Op(TxnOp::error(e));
        match op {
            Op::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                self.set_session(*session_id, true);
                TxnBody::CreateSession {
                    timeout_ms: db.sessions.config.negotiate(*timeout_ms),
                    password: *password,
                }
            }
            Op::CloseSession => {
                self.close_session(db, req.session, zxid);
                TxnBody::CloseSession
            }
            _ if !op.is_write() => error(ErrorCode::BadArguments),
            Op::DeleteContainer { .. } => self.single(db, req, op, zxid, now_ms),
            _ if self.check_sessions && !self.session_active(db, req.session) => {
                error(ErrorCode::SessionExpired)
            }
            Op::Multi(ops) => self.multi(db, req, ops, zxid, now_ms),
            _ => self.single(db, req, op, zxid, now_ms),
        }
    }

    fn single(
        &mut self,
        db: &Db,
        req: &RequestCtx<'_>,
        op: &Op,
        zxid: i64,
        now_ms: i64,
    ) -> TxnBody {
        let ctx = Ctx {
            req,
            cfg: &self.config,
            synced: &self.synced_voters,
            carried: &self.carried_out,
            zxid,
            now_ms,
        };
        let mut st = Stage::new(db, self);
        match prep_op(&mut st, &ctx, op) {
            Ok(t) => {
                let changes = st.into_changes();
                self.commit(changes);
                TxnBody::Op(t)
            }
            Err(e) => TxnBody::Op(TxnOp::error(e)),
        }
    }

    fn multi(
        &mut self,
        db: &Db,
        req: &RequestCtx<'_>,
        ops: &[Op],
        zxid: i64,
        now_ms: i64,
    ) -> TxnBody {
        let ctx = Ctx {
            req,
            cfg: &self.config,
            synced: &self.synced_voters,
            carried: &self.carried_out,
            zxid,
            now_ms,
        };
        let mut st = Stage::new(db, self);
        let mut steps = Vec::with_capacity(ops.len());
        let mut failed = None;
        for (i, op) in ops.iter().enumerate() {
            if let Op::Malformed {
                error,
                whole_multi: true,
                ..
            } = op
            {
                // ZooKeeper 3.8 fails the whole request here (see `Op::Malformed`);
                // what the steps before it staged is dropped.
                return TxnBody::Op(TxnOp::error(*error));
            }
            let r = if op.allowed_in_multi() {
                prep_op(&mut st, &ctx, op)
            } else {
                Err(ErrorCode::BadArguments)
            };
            match r {
                Ok(t) => steps.push(t),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let Some((at, e)) = failed else {
            let changes = st.into_changes();
            self.commit(changes);
            return TxnBody::Multi(steps);
        };
        // Nothing of a failed multi stays outstanding (ZooKeeper's rollback).
        let steps = (0..ops.len())
            .map(|i| {
                TxnOp::error(match i.cmp(&at) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => e,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                })
            })
            .collect();
        TxnBody::Multi(steps)
    }

    /// Records the deletion of every ephemeral the session owns or will own once the
    /// outstanding txns apply; the session stops accepting writes.
    fn close_session(&mut self, db: &Db, session: i64, zxid: i64) {
        let mut owned: BTreeSet<String> = db.tree.ephemerals(session).map(str::to_string).collect();
        for (p, (_, r)) in &self.nodes {
            match r {
                Some(r) if r.kind == NodeKind::Ephemeral(session) => {
                    owned.insert(p.clone());
                }
                None => {
                    owned.remove(p);
                }
                Some(_) => {}
            }
        }
        let mut st = Stage::new(db, self);
        for p in owned {
            if st
                .get(&p)
                .is_none_or(|r| r.kind != NodeKind::Ephemeral(session))
            {
                continue;
            }
            if let Some(parent_path) = path::parent(&p)
                && let Some(mut parent) = st.get(parent_path)
            {
                parent.child_count -= 1;
                parent.stat.pzxid = zxid;
                st.put(parent_path, Some(parent));
            }
            st.put(&p, None);
        }
        let changes = st.into_changes();
        self.commit(changes);
        self.set_session(session, false);
    }
}

/// Validates one create/delete/setData/setACL/check against the stage and records its
/// effect there; the error is what ZooKeeper would answer, in its order of checks.
fn prep_op(st: &mut Stage<'_>, ctx: &Ctx<'_>, op: &Op) -> Result<TxnOp, ErrorCode> {
    match op {
        Op::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
            container,
        } => {
            let want = Want {
                mode: *mode,
                ttl_ms: *ttl_ms,
                container: *container,
            };
            create(st, ctx, path, data, acl, want)
        }
        Op::Malformed { error, .. } => Err(*error),
        Op::Delete { path, version } => delete(st, ctx, path, Some(*version)),
        Op::DeleteContainer { path } => delete(st, ctx, path, None),
        Op::SetData {
            path,
            data,
            version,
        } => {
            valid(path)?;
            let mut node = st.get(path).ok_or(ErrorCode::NoNode)?;
            acl::require(&node.acl, perms::WRITE, ctx.req.auth)?;
            let version = check_version(*version, node.stat.version)?;
            node.stat.version = version;
            node.stat.mtime = ctx.now_ms;
            node.stat.mzxid = ctx.zxid;
            st.put(path, Some(node));
            Ok(TxnOp::SetData {
                path: path.clone(),
                data: data.clone(),
                version,
            })
        }
        Op::SetAcl {
            path,
            acl: a,
            version,
        } => {
            valid(path)?;
            let fixed = acl::fixup(a, ctx.req.auth)?;
            let mut node = st.get(path).ok_or(ErrorCode::NoNode)?;
            acl::require(&node.acl, perms::ADMIN, ctx.req.auth)?;
            let aversion = check_version(*version, node.stat.aversion)?;
            node.stat.aversion = aversion;
            node.acl = fixed.clone().into();
            st.put(path, Some(node));
            Ok(TxnOp::SetAcl {
                path: path.clone(),
                acl: fixed,
                aversion,
            })
        }
        Op::Check { path, version } => {
            valid(path)?;
            let node = st.get(path).ok_or(ErrorCode::NoNode)?;
            acl::require(&node.acl, perms::READ, ctx.req.auth)?;
            check_version(*version, node.stat.version)?;
            Ok(TxnOp::Check {
                path: path.clone(),
                version: node.stat.version,
            })
        }
        Op::Reconfig {
            joining,
            leaving,
            new_members,
            from_config,
        } => {
            let want = (
                joining.as_deref(),
                leaving.as_deref(),
                new_members.as_deref(),
            );
            reconfig(st, ctx, want, *from_config)
        }
        _ => Err(ErrorCode::BadArguments),
    }
}

/// `reconfig` as a setData of `/zookeeper/config` (`config::dynamic`), with ZooKeeper
/// 3.8's errors in its order: disabled, then the request's form, the version, the
/// ACL (only a superuser writes the node), the new members' rules (corekeeper's
/// stricter id bound among them), a reconfig already in flight, and a
/// majority of the new voters in sync. One voter may join, leave or change
/// (its role or addresses) per reconfig, with any number of observers: more
/// answers UNIMPLEMENTED, as does any voter change in the chain modes
/// (`zab::leader`'s `set_member` says why one at a time keeps commits safe).
fn reconfig(
    st: &mut Stage<'_>,
    ctx: &Ctx<'_>,
    (joining, leaving, new_members): (Option<&str>, Option<&str>, Option<&str>),
    from_config: i64,
) -> Result<TxnOp, ErrorCode> {
    use crate::config::dynamic::DynamicConfig;
    use crate::tree::CONFIG_PATH;
    if !ctx.cfg.reconfig_enabled {
        return Err(ErrorCode::ReconfigDisabled);
    }
    let text = st.db.tree.get(CONFIG_PATH).and_then(|n| {
        n.data
            .as_deref()
            .map(|d| String::from_utf8_lossy(d).into_owned())
    });
    // Standalone (no members in the node) reconfigures nothing: ZooKeeper 3.8's
    // standalone server answers UNIMPLEMENTED (checked with zkCli side by side).
    let current = text
        .as_deref()
        .and_then(DynamicConfig::parse)
        .ok_or(ErrorCode::Unimplemented)?;
    let next = current.next(joining, leaving, new_members, ctx.zxid)?;
    if from_config != -1 && from_config != current.version {
        return Err(ErrorCode::BadVersion);
    }
    let mut node = st.get(CONFIG_PATH).ok_or(ErrorCode::NoNode)?;
    acl::require(&node.acl, perms::WRITE, ctx.req.auth)?;
    let next = next.checked()?;
    if st.prep.nodes.contains_key(CONFIG_PATH) {
        return Err(ErrorCode::ReconfigInProgress);
    }
    let voter_changes = voter_changes(&current, &next);
    if voter_changes > usize::from(ctx.cfg.voter_reconfig) {
        tracing::info!(
            voter_changes,
            "reconfig refused: corekeeper changes at most one voter per reconfig (none in the chain modes)"
        );
        return Err(ErrorCode::Unimplemented);
    }
    let voters: Vec<u64> = next.voters().collect();
    let synced = voters.iter().filter(|v| ctx.synced.contains(v)).count();
    if synced < crate::zab::quorum::majority(voters.len()) {
        return Err(ErrorCode::NewConfigNoQuorum);
    }
    // A change of the voters waits until a majority of the voters carried out the
    // current members (`Prep::set_carried_out`); observers alone change the
    // voters of no election, so they need not wait (kazoo's TestReconfig adds and
    // removes an observer back to back, as ZooKeeper allows).
    let now: Vec<u64> = current.voters().collect();
    let carried = now
        .iter()
        .filter(|v| ctx.carried.get(v).is_some_and(|&c| c >= current.version))
        .count();
    if voter_changes > 0 && carried < crate::zab::quorum::majority(now.len()) {
        return Err(ErrorCode::NewConfigNoQuorum);
    }
    node.stat.version = -1;
    node.stat.mtime = ctx.now_ms;
    node.stat.mzxid = ctx.zxid;
    st.put(CONFIG_PATH, Some(node));
    Ok(TxnOp::SetData {
        path: CONFIG_PATH.to_string(),
        data: Some(next.render().into_bytes()),
        version: -1,
    })
}

/// How many servers are voters in one of `a` and `b` and not alike in both (joined,
/// left, or changed role or addresses).
fn voter_changes(
    a: &crate::config::dynamic::DynamicConfig,
    b: &crate::config::dynamic::DynamicConfig,
) -> usize {
    let (va, vb) = (a.voter_specs(), b.voter_specs());
    let gone = va.iter().filter(|s| !vb.contains(s)).count();
    let came = vb
        .iter()
        .filter(|s| !va.iter().any(|x| x.id == s.id))
        .count();
    // A voter whose spec changed is counted once (in `gone`).
    gone + came
}

/// What a create asks for (see [`Op::Create`]).
#[derive(Debug, Clone, Copy)]
struct Want {
    mode: CreateMode,
    ttl_ms: Option<i64>,
    container: bool,
}

fn create_kind(ctx: &Ctx<'_>, want: &Want) -> Result<NodeKind, ErrorCode> {
    let Want {
        mode,
        ttl_ms,
        container,
    } = *want;
    if mode.is_ttl() {
        if !ctx.cfg.ttl_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        return match ttl_ms {
            Some(t) if t > 0 && t <= TTL_MS_MAX => Ok(NodeKind::Ttl(t)),
            _ => Err(ErrorCode::BadArguments),
        };
    }
    if ttl_ms.is_some_and(|t| t >= 0) {
        return Err(ErrorCode::BadArguments);
    }
    Ok(if container || mode.is_container() {
        NodeKind::Container
    } else if mode.is_ephemeral() {
        NodeKind::Ephemeral(ctx.req.session)
    } else {
        NodeKind::Persistent
    })
}

fn create(
    st: &mut Stage<'_>,
    ctx: &Ctx<'_>,
    p: &str,
    data: &Option<Vec<u8>>,
    a: &[Acl],
    want: Want,
) -> Result<TxnOp, ErrorCode> {
    let kind = create_kind(ctx, &want)?;
    let mode = want.mode;
    let parent_path = cut_parent(p)?;
    let fixed = acl::fixup(a, ctx.req.auth)?;
    let mut parent = st.get(parent_path).ok_or(ErrorCode::NoNode)?;
    acl::require(&parent.acl, perms::CREATE, ctx.req.auth)?;
    let final_path = if mode.is_sequential() {
        path::sequential_name(p, parent.stat.cversion)
    } else {
        p.to_string()
    };
    valid(&final_path)?;
    if final_path == "/" || st.get(&final_path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if matches!(parent.kind, NodeKind::Ephemeral(_)) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let parent_cversion = parent.stat.cversion.wrapping_add(1);
    parent.child_count += 1;
    parent.stat.cversion = parent_cversion;
    parent.stat.pzxid = ctx.zxid;
    st.put(parent_path, Some(parent));
    let stat = Stat {
        czxid: ctx.zxid,
        mzxid: ctx.zxid,
        pzxid: ctx.zxid,
        ctime: ctx.now_ms,
        mtime: ctx.now_ms,
        ephemeral_owner: kind.ephemeral_owner(),
        ..Stat::default()
    };
    let node = NodeRecord {
        stat,
        kind,
        child_count: 0,
        acl: fixed.clone().into(),
    };
    st.put(&final_path, Some(node));
    Ok(TxnOp::Create(CreateTxn {
        path: final_path,
        data: data.clone(),
        acl: fixed,
        kind,
        parent_cversion,
    }))
}

/// `version: None` is the reaper's deleteContainer (no ACL or version check, only
/// childless containers and TTL nodes).
fn delete(
    st: &mut Stage<'_>,
    ctx: &Ctx<'_>,
    p: &str,
    version: Option<i32>,
) -> Result<TxnOp, ErrorCode> {
    if is_special_path(p) {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = cut_parent(p)?;
    let mut parent = st.get(parent_path).ok_or(ErrorCode::NoNode)?;
    if version.is_some() {
        // Before the node is looked up, as ZooKeeper does: deleting a missing child of
        // a node the caller may not delete from is NOAUTH, not NONODE.
        acl::require(&parent.acl, perms::DELETE, ctx.req.auth)?;
    }
    let node = st.get(p).ok_or(ErrorCode::NoNode)?;
    match version {
        Some(v) => {
            check_version(v, node.stat.version)?;
            if node.child_count > 0 {
                return Err(ErrorCode::NotEmpty);
            }
        }
        None => {
            if node.child_count > 0 {
                return Err(ErrorCode::NotEmpty);
            }
            if matches!(node.kind, NodeKind::Persistent | NodeKind::Ephemeral(_)) {
                return Err(ErrorCode::BadVersion);
            }
        }
    }
    parent.child_count -= 1;
    parent.stat.pzxid = ctx.zxid;
    st.put(parent_path, Some(parent));
    st.put(p, None);
    Ok(TxnOp::Delete {
        path: p.to_string(),
    })
}
