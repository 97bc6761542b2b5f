//! Seeded simulation of the engine core: several sessions pipelining writes through
//! prep, random crashes (prep rebuilt, leader state recovered from snapshot + log),
//! session expiries, the container/TTL reaper. Snapshots are taken as the driver
//! takes them: an image between two applies, serialised on another thread only some
//! steps later while writes go on (and lost if the leader crashes first); the bytes
//! must restore to the digest the state had when the image was taken. Every applied
//! txn goes (as bytes) to a follower; at the end a third replica restored from a
//! snapshot replays the log suffix. All three must have the same digest, and every result must match a small
//! reference model of ZooKeeper's semantics for the basic ops.
//!
//! Replay one seed: `SIM_SEED=S cargo test -p engine --test sim_tree`.
//! More seeds: `SIM_SEEDS=N` (default 200), steps per seed: `SIM_STEPS` (default 400).

mod sim_common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use engine::op::Op;
use engine::prep::{Prep, PrepConfig, RequestCtx};
use engine::session::SessionConfig;
use engine::tree::read::{ReadResult, read};
use engine::tree::watch::WatchEvent;
use engine::tree::{NodeKind, is_special_path, path};
use engine::txn::{Db, OpResult, SnapshotImage, Txn, TxnResult};
use sim_common::Rng;
use transport::jute::{Acl, CreateMode, ErrorCode, EventType, Id, perms};

/// Sessions with an odd id authenticate as bob (digest); the others have no ids.
fn auth_of(session: i64) -> Vec<Id> {
    if session % 2 == 1 {
        vec![Id::new("digest", engine::tree::acl::digest("bob:pw"))]
    } else {
        Vec::new()
    }
}

fn bob_acl() -> Vec<Acl> {
    vec![
        Acl {
            perms: perms::READ | perms::CREATE,
            id: Id::anyone(),
        },
        Acl {
            perms: perms::ALL,
            id: auth_of(1).remove(0),
        },
    ]
}

/// The model's own ACL rules (independent of `engine::tree::acl`).
fn model_allows(acl: &[Acl], perm: i32, auth: &[Id]) -> bool {
    acl.iter().any(|a| {
        a.perms & perm != 0
            && ((a.id.scheme == "world" && a.id.id == "anyone") || auth.contains(&a.id))
    })
}

fn model_fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut out = Vec::new();
    for a in acl {
        if a.id.scheme == "auth" {
            if auth.is_empty() {
                return Err(ErrorCode::InvalidAcl);
            }
            out.extend(auth.iter().map(|id| Acl {
                perms: a.perms,
                id: id.clone(),
            }));
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Writes prepped but not yet applied, at most.
const PIPELINE_DEPTH_MAX: usize = 8;
const TICK_MS: i32 = 100;
const SESSION_TIMEOUT_MS: i32 = 4000;

// ---------------------------------------------------------------- reference model

#[derive(Debug, Clone, PartialEq)]
struct MNode {
    data: Option<Vec<u8>>,
    version: i32,
    aversion: i32,
    /// What clients read: changes to the children, creates and deletes.
    cversion: i32,
    /// Children created: what sequential names number (deletes do not count).
    creates: i32,
    kind: NodeKind,
    children: BTreeSet<String>,
    acl: Vec<Acl>,
}

type MResult = Result<Option<String>, ErrorCode>;

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Op(MResult),
    Multi(Vec<MResult>),
    Session,
    Close,
}

#[derive(Debug, Clone)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    alive: BTreeSet<i64>,
    closing: BTreeSet<i64>,
    /// What the last step changed, in order (what data watches see).
    changes: Vec<(EventType, String)>,
}

impl Model {
    fn new(db: &Db) -> Self {
        let mut nodes = BTreeMap::new();
        for (p, n) in db.tree.sorted_nodes() {
            nodes.insert(
                p.to_string(),
                MNode {
                    data: n.data.as_deref().map(<[u8]>::to_vec),
                    version: n.stat.version,
                    aversion: n.stat.aversion,
                    cversion: n.client_stat().cversion,
                    creates: n.stat.cversion,
                    kind: n.kind,
                    children: n
                        .children
                        .iter()
                        .map(|c| path::name(c).to_string())
                        .collect(),
                    acl: n.acl.to_vec(),
                },
            );
        }
        Model {
            nodes,
            alive: BTreeSet::new(),
            closing: BTreeSet::new(),
            changes: Vec::new(),
        }
    }

    fn step(&mut self, session: i64, op: &Op) -> Expect {
        self.changes.clear();
        match op {
            Op::CreateSession { session_id, .. } => {
                self.alive.insert(*session_id);
                Expect::Session
            }
            Op::CloseSession => {
                let owned: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.kind == NodeKind::Ephemeral(session))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in owned {
                    self.remove(&p);
                }
                self.alive.remove(&session);
                Expect::Close
            }
            Op::DeleteContainer { .. } => Expect::Op(self.apply(session, op)),
            _ if !self.alive.contains(&session) || self.closing.contains(&session) => {
                Expect::Op(Err(ErrorCode::SessionExpired))
            }
            Op::Multi(ops) => {
                let mut trial = self.clone();
                let mut out = Vec::new();
                for (i, o) in ops.iter().enumerate() {
                    match trial.apply(session, o) {
                        Ok(r) => out.push(Ok(r)),
                        Err(e) => {
                            let mut v = vec![Err(ErrorCode::Ok); i];
                            v.push(Err(e));
                            v.resize(ops.len(), Err(ErrorCode::RuntimeInconsistency));
                            return Expect::Multi(v);
                        }
                    }
                }
                *self = trial;
                Expect::Multi(out)
            }
            _ => Expect::Op(self.apply(session, op)),
        }
    }

    fn remove(&mut self, p: &str) {
        self.changes.push((EventType::NodeDeleted, p.to_string()));
        self.nodes.remove(p);
        if let Some(parent) = path::parent(p).and_then(|pp| self.nodes.get_mut(pp)) {
            parent.children.remove(path::name(p));
            parent.cversion += 1;
        }
    }

    fn apply(&mut self, session: i64, op: &Op) -> MResult {
        use ErrorCode::{
            BadArguments, BadVersion, NoAuth, NoChildrenForEphemerals, NoNode, NodeExists, NotEmpty,
        };
        let auth = auth_of(session);
        match op {
            Op::Create {
                path: p,
                data,
                mode,
                ttl_ms,
                acl,
                container: _,
            } => {
                let parent_path = path::parent(p).ok_or(BadArguments)?;
                let acl = model_fixup(acl, &auth)?;
                let parent = self.nodes.get(parent_path).ok_or(NoNode)?;
                if !model_allows(&parent.acl, perms::CREATE, &auth) {
                    return Err(NoAuth);
                }
                let fin = if mode.is_sequential() {
                    path::sequential_name(p, parent.creates)
                } else {
                    p.clone()
                };
                if self.nodes.contains_key(&fin) {
                    return Err(NodeExists);
                }
                if matches!(parent.kind, NodeKind::Ephemeral(_)) {
                    return Err(NoChildrenForEphemerals);
                }
                let kind = match mode {
                    CreateMode::Container => NodeKind::Container,
                    m if m.is_ttl() => NodeKind::Ttl(ttl_ms.unwrap_or(0)),
                    m if m.is_ephemeral() => NodeKind::Ephemeral(session),
                    _ => NodeKind::Persistent,
                };
                let parent = self.nodes.get_mut(parent_path).ok_or(NoNode)?;
                parent.cversion += 1;
                parent.creates += 1;
                parent.children.insert(path::name(&fin).to_string());
                self.nodes.insert(
                    fin.clone(),
                    MNode {
                        data: data.clone(),
                        version: 0,
                        aversion: 0,
                        cversion: 0,
                        creates: 0,
                        kind,
                        children: BTreeSet::new(),
                        acl,
                    },
                );
                self.changes.push((EventType::NodeCreated, fin.clone()));
                Ok(Some(fin))
            }
            Op::Delete { path: p, .. } | Op::DeleteContainer { path: p } => {
                if is_special_path(p) {
                    return Err(BadArguments);
                }
                let parent_path = path::parent(p).ok_or(BadArguments)?;
                let parent = self.nodes.get(parent_path).ok_or(NoNode)?;
                // ZooKeeper checks the parent's DELETE permission before the node.
                if matches!(op, Op::Delete { .. })
                    && !model_allows(&parent.acl, perms::DELETE, &auth)
                {
                    return Err(NoAuth);
                }
                let n = self.nodes.get(p).ok_or(NoNode)?;
                if let Op::Delete { version, .. } = op {
                    if *version != -1 && *version != n.version {
                        return Err(BadVersion);
                    }
                    if !n.children.is_empty() {
                        return Err(NotEmpty);
                    }
                } else {
                    if !n.children.is_empty() {
                        return Err(NotEmpty);
                    }
                    if matches!(n.kind, NodeKind::Persistent | NodeKind::Ephemeral(_)) {
                        return Err(BadVersion);
                    }
                }
                self.remove(p);
                Ok(None)
            }
            Op::SetData {
                path: p,
                data,
                version,
            } => {
                let n = self.nodes.get_mut(p).ok_or(NoNode)?;
                if !model_allows(&n.acl, perms::WRITE, &auth) {
                    return Err(NoAuth);
                }
                if *version != -1 && *version != n.version {
                    return Err(BadVersion);
                }
                n.version += 1;
                n.data = data.clone();
                self.changes.push((EventType::NodeDataChanged, p.clone()));
                Ok(None)
            }
            Op::SetAcl {
                path: p,
                version,
                acl,
            } => {
                let acl = model_fixup(acl, &auth)?;
                let n = self.nodes.get_mut(p).ok_or(NoNode)?;
                if !model_allows(&n.acl, perms::ADMIN, &auth) {
                    return Err(NoAuth);
                }
                if *version != -1 && *version != n.aversion {
                    return Err(BadVersion);
                }
                n.aversion += 1;
                n.acl = acl;
                Ok(None)
            }
            Op::Check { path: p, version } => {
                let n = self.nodes.get(p).ok_or(NoNode)?;
                if !model_allows(&n.acl, perms::READ, &auth) {
                    return Err(NoAuth);
                }
                if *version != -1 && *version != n.version {
                    return Err(BadVersion);
                }
                Ok(None)
            }
            _ => Err(BadArguments),
        }
    }
}

fn matches_op(expect: &MResult, got: &OpResult) -> bool {
    match (expect, got) {
        (Err(e), OpResult::Error(g)) => e == g,
        (Ok(Some(p)), OpResult::Create { path, .. }) => p == path,
        (Ok(None), r) => !matches!(r, OpResult::Error(_) | OpResult::Create { .. }),
        _ => false,
    }
}

fn matches_result(expect: &Expect, got: &TxnResult) -> bool {
    match (expect, got) {
        (Expect::Op(e), TxnResult::Op(g)) => matches_op(e, g),
        (Expect::Multi(e), TxnResult::Multi(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(e, g)| matches_op(e, g))
        }
        (Expect::Session, TxnResult::CreateSession { .. }) => true,
        (Expect::Close, TxnResult::CloseSession) => true,
        _ => false,
    }
}

// ---------------------------------------------------------------- the simulation

struct Pending {
    txn: Txn,
    expect: Expect,
    model_after: Model,
    what: String,
    /// Who closes (their watches go once their ephemerals are gone) and what the txn
    /// changes.
    closes: Option<i64>,
    changes: Vec<(EventType, String)>,
}

/// A snapshot image in flight, with what the state was when it was taken.
struct Taking {
    image: SnapshotImage,
    digest: u64,
    log_len: usize,
}

struct Sim {
    rng: Rng,
    now: i64,
    leader: Db,
    follower: Db,
    prep: Prep,
    pending: VecDeque<Pending>,
    /// Every applied txn, as the WAL would hold it.
    log: Vec<Vec<u8>>,
    /// Latest snapshot and how many log entries it covers.
    snap: (Vec<u8>, usize),
    /// A snapshot taken but not yet serialised (the driver's blocking-pool write).
    taking: Option<Taking>,
    model_applied: Model,
    model_prepped: Model,
    next_session: i64,
    /// Session ids the clients believe they hold.
    clients: Vec<i64>,
    cxid: i32,
    stats: BTreeMap<&'static str, u64>,
    /// One-shot data watches registered by reads on the leader: path -> sessions.
    watches: BTreeMap<String, BTreeSet<i64>>,
}

fn config() -> SessionConfig {
    SessionConfig::from_tick(TICK_MS)
}

fn prep_config() -> PrepConfig {
    PrepConfig {
        ttl_enabled: true,
        ..PrepConfig::default()
    }
}

const NAMES: [&str; 3] = ["a", "b", "c"];

impl Sim {
    fn new(seed: u64) -> Self {
        let leader = Db::new(config());
        let model = Model::new(&leader);
        let snap = (leader.snapshot().to_vec(), 0);
        Sim {
            rng: Rng(seed),
            now: 1_000_000,
            follower: Db::new(config()),
            leader,
            prep: Prep::new(0, prep_config()),
            pending: VecDeque::new(),
            log: Vec::new(),
            snap,
            taking: None,
            model_applied: model.clone(),
            model_prepped: model,
            next_session: 0x100,
            clients: Vec::new(),
            cxid: 0,
            stats: BTreeMap::new(),
            watches: BTreeMap::new(),
        }
    }

    fn count(&mut self, what: &'static str) {
        self.count_n(what, 1);
    }

    fn count_n(&mut self, what: &'static str, n: u64) {
        *self.stats.entry(what).or_default() += n;
    }

    /// The events the registered one-shot data watches owe for `changes` (ZooKeeper:
    /// each fires once, sessions ascending per change; a closing session hears of its
    /// own ephemerals' deletion, then loses its other watches).
    fn expected_events(
        &mut self,
        closes: Option<i64>,
        changes: &[(EventType, String)],
    ) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        for (kind, p) in changes {
            for session in self.watches.remove(p).unwrap_or_default() {
                out.push(WatchEvent::unchecked(session, *kind, p));
            }
        }
        if let Some(s) = closes {
            for sessions in self.watches.values_mut() {
                sessions.remove(&s);
            }
        }
        out
    }

    fn random_path(&mut self) -> String {
        let depth = 1 + self.rng.below(3);
        let mut p = String::new();
        for _ in 0..depth {
            p.push('/');
            let name = *self.rng.pick(&NAMES);
            p.push_str(name);
        }
        p
    }

    fn random_acl(&mut self) -> Vec<Acl> {
        match self.rng.below(10) {
            0 => engine::tree::acl::creator_all(),
            1 | 2 => bob_acl(),
            _ => Acl::open_unsafe(),
        }
    }

    fn random_version(&mut self) -> i32 {
        if self.rng.chance(60) {
            -1
        } else {
            self.rng.below(3) as i32
        }
    }

    fn random_write(&mut self) -> Op {
        let p = self.random_path();
        match self.rng.below(10) {
            0..=3 => {
                let mode = *self.rng.pick(&[
                    CreateMode::Persistent,
                    CreateMode::Persistent,
                    CreateMode::Ephemeral,
                    CreateMode::PersistentSequential,
                    CreateMode::EphemeralSequential,
                    CreateMode::Container,
                    CreateMode::PersistentWithTtl,
                ]);
                let data = if self.rng.chance(20) {
                    None
                } else {
                    Some(vec![self.rng.below(256) as u8; self.rng.below(4) as usize])
                };
                let p = if mode.is_sequential() {
                    format!("{p}-")
                } else {
                    p
                };
                let acl = self.random_acl();
                Op::Create {
                    path: p,
                    data,
                    acl,
                    mode,
                    ttl_ms: mode.is_ttl().then_some(300),
                    container: false,
                }
            }
            4..=5 => Op::Delete {
                path: p,
                version: self.random_version(),
            },
            6..=7 => Op::SetData {
                path: p,
                data: Some(vec![self.rng.below(256) as u8]),
                version: self.random_version(),
            },
            8 => Op::SetAcl {
                path: p,
                acl: self.random_acl(),
                version: self.random_version(),
            },
            _ => {
                let n = 1 + self.rng.below(3);
                let ops = (0..n)
                    .map(|_| {
                        let p = self.random_path();
                        match self.rng.below(4) {
                            0 => Op::Check {
                                path: p,
                                version: self.random_version(),
                            },
                            1 => Op::Delete {
                                path: p,
                                version: self.random_version(),
                            },
                            2 => Op::SetData {
                                path: p,
                                data: None,
                                version: self.random_version(),
                            },
                            _ => Op::Create {
                                path: p,
                                data: Some(vec![1]),
                                acl: Acl::open_unsafe(),
                                mode: CreateMode::Persistent,
                                ttl_ms: None,
                                container: false,
                            },
                        }
                    })
                    .collect();
                Op::Multi(ops)
            }
        }
    }

    fn submit(&mut self, session: i64, op: Op) {
        self.cxid += 1;
        self.leader.sessions.touch(session, self.now);
        let auth = auth_of(session);
        let req = RequestCtx {
            session,
            cxid: self.cxid,
            auth: &auth,
        };
        let txn = self.prep.prep(&self.leader, &req, &op, self.now);
        let expect = self.model_prepped.step(session, &op);
        self.pending.push_back(Pending {
            txn,
            expect,
            model_after: self.model_prepped.clone(),
            what: format!("session {session:#x}: {op:?}"),
            closes: matches!(op, Op::CloseSession).then_some(session),
            changes: std::mem::take(&mut self.model_prepped.changes),
        });
    }

    fn apply_one(&mut self) -> Result<(), String> {
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        let bytes = p.txn.to_bytes().to_vec();
        let txn = Txn::from_bytes(&bytes).map_err(|e| format!("txn decode: {e}"))?;
        let got = self.leader.apply(&txn);
        self.prep.applied(got.zxid);
        let f = self.follower.apply(&txn);
        if f.result != got.result {
            return Err(format!("follower result differs at zxid {}", got.zxid));
        }
        if !matches_result(&p.expect, &got.result) {
            return Err(format!(
                "zxid {} {}:\n  model expects {:?}\n  engine gave  {:?}",
                got.zxid, p.what, p.expect, got.result
            ));
        }
        let want = self.expected_events(p.closes, &p.changes);
        // The model has no ACLs; which ACL each event carries is unit-tested.
        let sent: Vec<_> = got
            .events
            .iter()
            .map(|e| WatchEvent::unchecked(e.session, e.kind, &e.path))
            .collect();
        if sent != want {
            return Err(format!(
                "zxid {} {}:\n  watch model expects {want:?}\n  engine sent {:?}",
                got.zxid, p.what, got.events
            ));
        }
        self.count_n("events", want.len() as u64);
        self.log.push(bytes);
        self.model_applied = p.model_after;
        self.count("applied");
        let kind = match &p.expect {
            Expect::Op(Ok(Some(_))) => "created",
            Expect::Op(Ok(None)) => "other ok",
            Expect::Op(Err(ErrorCode::SessionExpired)) => "refused: session expired",
            Expect::Op(Err(ErrorCode::NoAuth)) => "refused: no auth",
            Expect::Op(Err(ErrorCode::InvalidAcl)) => "refused: invalid acl",
            Expect::Op(Err(_)) => "refused",
            Expect::Multi(v) if v.iter().all(|r| r.is_ok()) => "multi ok",
            Expect::Multi(_) => "multi failed",
            Expect::Session | Expect::Close => "session",
        };
        self.count(kind);
        Ok(())
    }

    /// The leader crashes: unapplied txns are lost, prep restarts empty, and the state
    /// is recovered from the last snapshot plus the log.
    fn crash(&mut self) -> Result<(), String> {
        self.count("crash");
        if self.taking.take().is_some() {
            self.count("snapshot lost in a crash");
        }
        let before = self.leader.digest();
        self.pending.clear();
        let mut db = Db::restore(&self.snap.0, config(), self.now).map_err(|e| e.to_string())?;
        for b in &self.log {
            let t = Txn::from_bytes(b).map_err(|e| e.to_string())?;
            db.apply_if_new(&t);
        }
        if db.digest() != before {
            return Err("recovered leader differs from the pre-crash state".into());
        }
        db.sessions.restart_timers(self.now);
        self.leader = db;
        self.watches.clear();
        // Clients whose session create was lost reconnect and find it expired.
        let leader = &self.leader;
        self.clients.retain(|c| leader.sessions.is_active(*c));
        self.prep = Prep::new(self.leader.last_zxid(), prep_config());
        self.model_applied.closing.clear();
        self.model_prepped = self.model_applied.clone();
        Ok(())
    }

    fn check_read(&mut self) -> Result<(), String> {
        let p = self.random_path();
        let session = if self.clients.is_empty() {
            0
        } else {
            *self.rng.pick(&self.clients)
        };
        let watch = self.rng.chance(50);
        let op = if self.rng.chance(50) {
            Op::GetData {
                path: p.clone(),
                watch,
            }
        } else {
            Op::Exists {
                path: p.clone(),
                watch,
            }
        };
        let auth = auth_of(session);
        let got = read(&mut self.leader.tree, session, &auth, &op);
        // getData leaves a watch only on a node it may read, exists always.
        let readable = self
            .model_applied
            .nodes
            .get(&p)
            .is_some_and(|n| model_allows(&n.acl, perms::READ, &auth));
        if watch && (readable || matches!(op, Op::Exists { .. })) {
            self.watches.entry(p.clone()).or_default().insert(session);
        }
        let want = self.model_applied.nodes.get(&p);
        let ok = match (&got, want) {
            (Err(ErrorCode::NoNode), None) => true,
            (Err(ErrorCode::NoAuth), Some(n)) => !model_allows(&n.acl, perms::READ, &auth),
            (Ok(ReadResult::Exists { stat }), Some(n)) => {
                stat.version == n.version && stat.cversion == n.cversion
            }
            (Ok(ReadResult::GetData { data, stat }), Some(n)) => {
                *data == n.data
                    && stat.version == n.version
                    && stat.cversion == n.cversion
                    && readable
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("read {p}: engine {got:?}, model {want:?}"))
        }
    }

    fn step(&mut self) -> Result<(), String> {
        self.now += self.rng.below(60) as i64;
        let roll = self.rng.below(100);
        if roll < 5 || self.clients.is_empty() {
            let id = self.next_session;
            self.next_session += 1;
            self.clients.push(id);
            let op = Op::CreateSession {
                session_id: id,
                timeout_ms: SESSION_TIMEOUT_MS,
                password: [7; 16],
            };
            self.submit(0, op);
        } else if roll < 7 {
            let i = self.rng.below(self.clients.len() as u64) as usize;
            let id = self.clients.remove(i);
            self.submit(id, Op::CloseSession);
            self.count("client close");
        } else if roll < 9 {
            self.crash()?;
        } else if roll < 11 {
            self.snapshot_step()?;
        } else if roll < 24 {
            self.check_read()?;
        } else if roll < 26 {
            let mut reap = self.leader.tree.empty_containers();
            reap.extend(self.leader.tree.expired_ttls(self.now));
            for p in reap {
                self.submit(0, Op::DeleteContainer { path: p });
                self.count("reap");
            }
        } else if roll < 50 || self.pending.len() >= PIPELINE_DEPTH_MAX {
            self.apply_one()?;
        } else {
            let session = *self.rng.pick(&self.clients);
            let op = self.random_write();
            self.submit(session, op);
        }
        for id in self.leader.sessions.expired(self.now) {
            self.model_prepped.closing.insert(id);
            // Some clients learn late that their session is gone and keep writing.
            if self.rng.chance(50) {
                self.clients.retain(|c| *c != id);
            }
            self.submit(id, Op::CloseSession);
            self.count("expiry");
        }
        Ok(())
    }

    /// Takes a snapshot image or, when one is in flight, serialises it on another
    /// thread (the writes since it was taken must not show) and makes it the latest.
    fn snapshot_step(&mut self) -> Result<(), String> {
        let Some(t) = self.taking.take() else {
            self.taking = Some(Taking {
                image: self.leader.snapshot_image(),
                digest: self.leader.digest(),
                log_len: self.log.len(),
            });
            self.count("snapshot taken");
            return Ok(());
        };
        let writes_since = (self.log.len() - t.log_len) as u64;
        let image = t.image;
        let (bytes, image_digest) = std::thread::spawn(move || (image.to_bytes(), image.digest()))
            .join()
            .map_err(|_| "serialising a snapshot image panicked".to_string())?;
        let restored = Db::restore(&bytes, config(), self.now).map_err(|e| e.to_string())?;
        if image_digest != t.digest || restored.digest() != t.digest {
            return Err(format!(
                "snapshot after {writes_since} more writes: image {image_digest:#x}, \
                 restored {:#x}, state when taken {:#x}",
                restored.digest(),
                t.digest
            ));
        }
        self.snap = (bytes.to_vec(), t.log_len);
        self.count("snapshot written");
        self.count_n("writes during snapshots", writes_since);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        while !self.pending.is_empty() {
            self.apply_one()?;
        }
        if self.taking.is_some() {
            self.snapshot_step()?;
        }
        let (l, f) = (self.leader.digest(), self.follower.digest());
        if l != f {
            return Err(format!("leader {l:#x} != follower {f:#x}"));
        }
        let mut r = Db::restore(&self.snap.0, config(), self.now).map_err(|e| e.to_string())?;
        for b in &self.log[self.snap.1..] {
            let t = Txn::from_bytes(b).map_err(|e| e.to_string())?;
            if r.apply_if_new(&t).is_none() {
                return Err(format!("txn {} after the snapshot was skipped", t.zxid()));
            }
        }
        if r.digest() != l {
            return Err(format!(
                "restored replica {:#x} != leader {l:#x}",
                r.digest()
            ));
        }
        for db in [&self.leader, &self.follower, &r] {
            db.tree.check_invariants()?;
        }
        self.compare_model()
    }

    fn compare_model(&self) -> Result<(), String> {
        let tree = &self.leader.tree;
        if tree.len() != self.model_applied.nodes.len() {
            return Err(format!(
                "{} nodes, model has {}",
                tree.len(),
                self.model_applied.nodes.len()
            ));
        }
        for (p, m) in &self.model_applied.nodes {
            let n = tree.get(p).ok_or_else(|| format!("{p} missing"))?;
            let same = n.data.as_deref() == m.data.as_deref()
                && n.stat.version == m.version
                && n.stat.aversion == m.aversion
                && n.stat.cversion == m.creates
                && n.client_stat().cversion == m.cversion
                && n.kind == m.kind
                && n.children
                    .iter()
                    .map(|c| path::name(c))
                    .eq(m.children.iter().map(|c| c.as_str()))
                && *n.acl == *m.acl;
            if !same {
                return Err(format!("{p}: engine {n:?}\nmodel {m:?}"));
            }
        }
        Ok(())
    }
}

fn run_seed(seed: u64, steps: usize) -> Result<BTreeMap<&'static str, u64>, String> {
    let mut sim = Sim::new(seed);
    for i in 0..steps {
        sim.step().map_err(|e| format!("step {i}: {e}"))?;
    }
    sim.finish()?;
    Ok(sim.stats)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sim_tree() {
    let steps = env_u64("SIM_STEPS").unwrap_or(400) as usize;
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(200)).collect(),
    };
    let mut total: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seed in seeds {
        match run_seed(seed, steps) {
            Ok(stats) => {
                for (k, v) in stats {
                    *total.entry(k).or_default() += v;
                }
            }
            Err(e) => panic!(
                "{e}\nfailing seed {seed}: replay with SIM_SEED={seed} cargo test -p engine --test sim_tree"
            ),
        }
    }
    println!("sim totals: {total:?}");
}

/// Prep's outstanding changes are exactly the tree after the earlier txns: prepping a
/// whole batch before applying any of it yields the same txns as prepping each write
/// only after its predecessor applied.
fn pipelined_equals_sequential(seed: u64, writes: usize) -> Result<(), String> {
    let mut sim = Sim::new(seed);
    let sessions = [0x101_i64, 0x102, 0x103];
    let mut ops = Vec::new();
    for &s in &sessions {
        let op = Op::CreateSession {
            session_id: s,
            timeout_ms: SESSION_TIMEOUT_MS,
            password: [1; 16],
        };
        ops.push((0, op));
    }
    for _ in 0..writes {
        let s = *sim.rng.pick(&sessions);
        let op = if sim.rng.chance(3) {
            Op::CloseSession
        } else {
            sim.random_write()
        };
        ops.push((s, op));
    }
    let run = |pipelined: bool| -> Vec<Txn> {
        let mut db = Db::new(config());
        let mut prep = Prep::new(0, prep_config());
        let mut txns = Vec::new();
        for (i, (s, op)) in ops.iter().enumerate() {
            let auth = auth_of(*s);
            let req = RequestCtx {
                session: *s,
                cxid: i as i32,
                auth: &auth,
            };
            let t = prep.prep(&db, &req, op, 1_000 + i as i64);
            if !pipelined {
                db.apply(&t);
                prep.applied(t.zxid());
            }
            txns.push(t);
        }
        txns
    };
    let (a, b) = (run(true), run(false));
    for (x, y) in a.iter().zip(&b) {
        if x != y {
            return Err(format!("pipelined {x:?}\nsequential {y:?}"));
        }
    }
    Ok(())
}

#[test]
fn sim_pipelined_prep_equals_sequential_prep() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(200)).collect(),
    };
    for seed in seeds {
        if let Err(e) = pipelined_equals_sequential(seed, 300) {
            panic!(
                "{e}\nfailing seed {seed}: replay with SIM_SEED={seed} cargo test -p engine --test sim_tree"
            );
        }
    }
}
