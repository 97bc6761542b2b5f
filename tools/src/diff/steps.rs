//! The op generator: one seed gives one sequence of [`Step`]s.
//!
//! Paths are relative to the seed's root (`""` is the root itself, `/a/b` a node two
//! levels under it), so that each server can be given its own root and the same
//! sequence. The namespace is small on purpose (three names, depth at most
//! [`DEPTH_MAX`]) so that conflicts (NodeExists, NotEmpty, BadVersion, NoNode,
//! NoChildrenForEphemerals, NoAuth) are frequent.
//!
//! The generator learns from side a's replies ([`Generator::learn`]): which nodes exist,
//! the names sequential creates got, and the versions last seen, so that it can aim
//! conditional ops at right versions as well as wrong ones. A replay against fresh
//! servers therefore reproduces the sequence: a's replies are a function of the ops.
//! Nothing here depends on zxids, times or session ids.

use std::collections::{BTreeMap, BTreeSet};

use transport::jute::records::*;
use transport::jute::{
    Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, MultiOp, MultiRequest, OpResult,
    Request, Response, Stat, WatcherType, perms,
};

use super::rng::Rng;

/// Child names at every level.
pub const NAMES: [&str; 3] = ["a", "b", "c"];
/// Deepest node below the root (`/a/b/c`).
pub const DEPTH_MAX: usize = 3;
/// User sessions open at once, at most.
pub const SESSIONS_MAX: usize = 3;
/// User sessions a seed starts with.
pub const SESSIONS_START: usize = 2;
/// The digest credentials sessions add (`u1:bad` is u1 with a wrong password: a
/// different identity).
pub const CREDENTIALS: [&str; 3] = ["u1:p1", "u2:p2", "u1:bad"];
/// TTL of TTL nodes: long enough that none expires during a run.
pub const TTL_MS: i64 = 3_600_000;
/// Ops in one multi, at most.
pub const MULTI_OPS_MAX: usize = 4;

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new session (its number is the step's `session`).
    Open,
    /// Send this request on the step's session; paths are root-relative.
    Request(Request),
}

/// One step: an action on one user session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub session: usize,
    pub action: Action,
}

/// What the generator believes about a node (from side a's replies).
#[derive(Debug, Clone, Default)]
struct Known {
    stat: Option<Stat>,
}

/// Kinds of step, with their weights (an index into [`WEIGHTS`]).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Create,
    Delete,
    SetData,
    GetData,
    Exists,
    GetChildren,
    GetChildren2,
    Multi,
    MultiRead,
    GetAcl,
    SetAcl,
    AddAuth,
    Sync,
    AddWatch,
    RemoveWatches,
    CheckWatches,
    GetAllChildrenNumber,
    GetEphemerals,
    WhoAmI,
    Close,
    Open,
}

/// A check outside a multi is not generated: ZooKeeper 3.8 never answers one (the
/// request is dropped, and the client waits for its reply until it gives up).
const KINDS: [(Kind, u32); 21] = [
    (Kind::Create, 20),
    (Kind::Delete, 10),
    (Kind::SetData, 9),
    (Kind::GetData, 6),
    (Kind::Exists, 6),
    (Kind::GetChildren, 4),
    (Kind::GetChildren2, 4),
    (Kind::Multi, 9),
    (Kind::MultiRead, 2),
    (Kind::GetAcl, 3),
    (Kind::SetAcl, 4),
    (Kind::AddAuth, 2),
    (Kind::Sync, 2),
    (Kind::AddWatch, 4),
    (Kind::RemoveWatches, 3),
    (Kind::CheckWatches, 1),
    (Kind::GetAllChildrenNumber, 1),
    (Kind::GetEphemerals, 2),
    (Kind::WhoAmI, 1),
    (Kind::Close, 2),
    (Kind::Open, 2),
];

/// The sequence of one seed.
pub struct Generator {
    rng: Rng,
    nodes: BTreeMap<String, Known>,
    /// Paths created as containers (their reaping is the servers' own timing).
    containers: BTreeSet<String>,
    open: Vec<bool>,
    steps: usize,
    /// The kind of watch each (session, path) was first given.
    styles: BTreeMap<(usize, String), Style>,
    /// Sessions that ever set a watch on a path ([`ADMIN`] holds the root's).
    watched_by: BTreeMap<String, BTreeSet<usize>>,
}

/// The session number standing for the seed's admin session in `watched_by`.
pub const ADMIN: usize = usize::MAX;

/// What kind of watch a session keeps on a path for the whole seed (see
/// [`Generator::add_watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Standard,
    Persistent,
    Recursive,
}

/// `p` relative to `root`, if it is `root` or below it.
pub fn relative<'a>(root: &str, p: &'a str) -> Option<&'a str> {
    let rest = p.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn depth(rel: &str) -> usize {
    rel.matches('/').count()
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            nodes: BTreeMap::new(),
            containers: BTreeSet::new(),
            open: Vec::new(),
            steps: 0,
            styles: BTreeMap::new(),
            watched_by: BTreeMap::from([(String::new(), BTreeSet::from([ADMIN]))]),
        }
    }

    /// Whether `rel` was ever created as a container (by a create side a answered).
    pub fn is_container(&self, rel: &str) -> bool {
        self.containers.contains(rel)
    }

    fn open_sessions(&self) -> Vec<usize> {
        (0..self.open.len()).filter(|&s| self.open[s]).collect()
    }

    /// The next step.
    pub fn next_step(&mut self) -> Step {
        self.steps += 1;
        let open = self.open_sessions();
        if open.len() < SESSIONS_START && self.open.len() < SESSIONS_START {
            return self.open_new();
        }
        loop {
            let weights: Vec<u32> = KINDS.iter().map(|k| k.1).collect();
            let kind = KINDS[self.rng.weighted(&weights)].0;
            let session = *self.rng.pick(&open);
            let req = match kind {
                Kind::Open if open.len() < SESSIONS_MAX => return self.open_new(),
                Kind::Close if open.len() > 1 => {
                    self.open[session] = false;
                    Request::CloseSession
                }
                Kind::Open | Kind::Close => continue,
                Kind::Create => self.create(),
                Kind::Delete => {
                    let path = self.path();
                    let version = self.version(&path, |s| s.version);
                    Request::Delete(DeleteRequest { path, version })
                }
                Kind::SetData => {
                    let path = self.path();
                    let version = self.version(&path, |s| s.version);
                    let data = self.data();
                    Request::SetData(SetDataRequest {
                        path,
                        data,
                        version,
                    })
                }
                Kind::GetData => {
                    let path = self.path();
                    let watch = self.watch_flag(session, &path);
                    Request::GetData(GetDataRequest { path, watch })
                }
                Kind::Exists => {
                    let path = self.path();
                    let watch = self.watch_flag(session, &path);
                    Request::Exists(ExistsRequest { path, watch })
                }
                Kind::GetChildren => {
                    let path = self.path();
                    let watch = self.watch_flag(session, &path);
                    Request::GetChildren(GetChildrenRequest { path, watch })
                }
                Kind::GetChildren2 => {
                    let path = self.path();
                    let watch = self.watch_flag(session, &path);
                    Request::GetChildren2(GetChildren2Request { path, watch })
                }
                Kind::Multi => self.multi(),
                Kind::MultiRead => {
                    let n = 1 + self.rng.below(3);
                    let ops = (0..n)
                        .map(|_| {
                            let path = self.path();
                            if self.rng.percent(50) {
                                MultiOp::GetData(GetDataRequest { path, watch: false })
                            } else {
                                MultiOp::GetChildren(GetChildrenRequest { path, watch: false })
                            }
                        })
                        .collect();
                    Request::MultiRead(MultiRequest { ops })
                }
                Kind::GetAcl => Request::GetAcl(GetAclRequest { path: self.path() }),
                Kind::SetAcl => {
                    let path = self.path();
                    let version = self.version(&path, |s| s.aversion);
                    Request::SetAcl(SetAclRequest {
                        path,
                        acl: self.acl(),
                        version,
                    })
                }
                Kind::AddAuth => Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: Some(self.rng.pick(&CREDENTIALS).as_bytes().to_vec()),
                }),
                Kind::Sync => Request::Sync(SyncRequest { path: self.path() }),
                Kind::AddWatch => self.add_watch(session),
                Kind::RemoveWatches => {
                    let path = self.path();
                    let watcher_type = self.watcher_type(session, &path);
                    Request::RemoveWatches(RemoveWatchesRequest { path, watcher_type })
                }
                Kind::CheckWatches => {
                    let path = self.path();
                    let watcher_type = self.watcher_type(session, &path);
                    let others = self
                        .watched_by
                        .get(&path)
                        .is_some_and(|w| w.iter().any(|&s| s != session));
                    if others {
                        // ZooKeeper 3.8 answers checkWatches for any session's watch
                        // on the path (fixed in 3.9, whose semantics corekeeper has).
                        Request::RemoveWatches(RemoveWatchesRequest { path, watcher_type })
                    } else {
                        Request::CheckWatches(CheckWatchesRequest { path, watcher_type })
                    }
                }
                Kind::GetAllChildrenNumber => {
                    Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: self.path() })
                }
                Kind::GetEphemerals => {
                    let prefix_path = if self.rng.percent(50) {
                        String::new()
                    } else {
                        self.path()
                    };
                    Request::GetEphemerals(GetEphemeralsRequest { prefix_path })
                }
                Kind::WhoAmI => Request::WhoAmI,
            };
            return Step {
                session,
                action: Action::Request(req),
            };
        }
    }

    fn open_new(&mut self) -> Step {
        self.open.push(true);
        Step {
            session: self.open.len() - 1,
            action: Action::Open,
        }
    }

    /// A watcher type for removeWatches / checkWatches. Only `Any` for a recursive
    /// watch: ZooKeeper 3.8 registers those in its child table too (3.9 and
    /// corekeeper do not), so removing `Data` leaves it firing there.
    fn watcher_type(&mut self, session: usize, path: &str) -> i32 {
        let recursive = self.styles.get(&(session, path.to_string())) == Some(&Style::Recursive);
        let types: &[WatcherType] = if recursive {
            &[WatcherType::Any]
        } else {
            &[WatcherType::Children, WatcherType::Data, WatcherType::Any]
        };
        self.rng.pick(types).code()
    }

    /// Whether a read sets a watch: never on a path where the session holds a
    /// persistent watch (ZooKeeper 3.8 lets the one-shot watch replace it; 3.9 and
    /// corekeeper keep both).
    fn watch_flag(&mut self, session: usize, path: &str) -> bool {
        let key = (session, path.to_string());
        match self.styles.get(&key) {
            Some(Style::Persistent | Style::Recursive) => false,
            _ => {
                let watch = self.rng.percent(50);
                if watch {
                    self.styles.insert(key, Style::Standard);
                    self.watched_by
                        .entry(path.to_string())
                        .or_default()
                        .insert(session);
                }
                watch
            }
        }
    }

    /// addWatch, in the mode this session's path was first given: ZooKeeper 3.8 keeps
    /// one mode per session and path (the last one set), 3.9 and corekeeper may keep a
    /// one-shot watch beside a persistent one. Where the session holds one-shot watches
    /// it is an exists without a watch instead.
    fn add_watch(&mut self, session: usize) -> Request {
        let path = self.path();
        let key = (session, path.clone());
        let mode = match self.styles.get(&key) {
            Some(Style::Standard) => {
                return Request::Exists(ExistsRequest { path, watch: false });
            }
            Some(Style::Persistent) => AddWatchMode::Persistent,
            Some(Style::Recursive) => AddWatchMode::PersistentRecursive,
            None => {
                let (mode, style) = if self.rng.percent(50) {
                    (AddWatchMode::Persistent, Style::Persistent)
                } else {
                    (AddWatchMode::PersistentRecursive, Style::Recursive)
                };
                self.styles.insert(key, style);
                self.watched_by
                    .entry(path.clone())
                    .or_default()
                    .insert(session);
                mode
            }
        };
        Request::AddWatch(AddWatchRequest {
            path,
            mode: mode.code(),
        })
    }

    /// A path to act on: mostly a node side a has shown, else a child of one, else any
    /// path of the namespace; rarely the root or an invalid path.
    fn path(&mut self) -> String {
        let r = self.rng.below(100);
        let known: Vec<&String> = self.nodes.keys().collect();
        if r < 50 && !known.is_empty() {
            return known[self.rng.below(known.len())].clone();
        }
        if r < 70 {
            let mut parents: Vec<String> = known
                .into_iter()
                .filter(|p| depth(p) < DEPTH_MAX)
                .cloned()
                .collect();
            parents.push(String::new());
            let p = parents[self.rng.below(parents.len())].clone();
            return format!("{p}/{}", self.rng.pick(&NAMES));
        }
        if r < 97 {
            let d = 1 + self.rng.below(DEPTH_MAX);
            return (0..d)
                .map(|_| format!("/{}", self.rng.pick(&NAMES)))
                .collect();
        }
        if r < 99 {
            return String::new();
        }
        // Invalid: a trailing slash (BadArguments on both, we expect).
        format!("/{}/", self.rng.pick(&NAMES))
    }

    /// A path to create at (a sequential create appends to it).
    fn create_path(&mut self) -> String {
        let known: Vec<&String> = self.nodes.keys().filter(|p| depth(p) < DEPTH_MAX).collect();
        if !known.is_empty() && self.rng.percent(60) {
            let p = known[self.rng.below(known.len())].clone();
            return format!("{p}/{}", self.rng.pick(&NAMES));
        }
        self.path()
    }

    /// A version for a conditional op: any (-1), the last one side a showed, or a
    /// wrong one.
    fn version(&mut self, path: &str, field: fn(&Stat) -> i32) -> i32 {
        let known = self
            .nodes
            .get(path)
            .and_then(|k| k.stat.as_ref())
            .map(field);
        match self.rng.below(100) {
            0..35 => -1,
            35..75 => known.unwrap_or(0),
            _ => *self
                .rng
                .pick(&[0, 1, 2, known.unwrap_or(0).wrapping_add(1), -2]),
        }
    }

    fn data(&mut self) -> Option<Vec<u8>> {
        match self.rng.below(10) {
            0 => None,
            1 => Some(Vec::new()),
            2 => Some(b"x".to_vec()),
            _ => Some(format!("v{}", self.steps).into_bytes()),
        }
    }

    /// An ACL. Every valid one grants READ and DELETE to identities the cleanup
    /// session holds (world, or one of [`CREDENTIALS`]), so a seed's tree can always be
    /// removed afterwards (a setACL may restrict a node that has children). Some grant
    /// world no READ, so that watchers who may not read a node are not told of its
    /// changes (ZooKeeper's fix of CVE-2024-23944).
    fn acl(&mut self) -> Vec<Acl> {
        let digest = |cred: &str, p: i32| Acl {
            perms: p,
            id: Id::new("digest", engine::tree::acl::digest(cred)),
        };
        let world = |p: i32| Acl {
            perms: p,
            id: Id::anyone(),
        };
        use perms::*;
        match self.rng.below(12) {
            0..=2 => Acl::open_unsafe(),
            3 => vec![world(READ), digest("u1:p1", ALL)],
            4 => vec![digest("u1:p1", ALL)],
            5 => vec![digest("u2:p2", READ | DELETE | ADMIN), world(READ)],
            6 => vec![world(CREATE | DELETE | READ | WRITE)],
            // Read-only for world; DELETE for u2 lets the cleanup remove children
            // that were created before a setACL made the node read-only.
            7 => vec![world(READ), digest("u2:p2", DELETE)],
            8 => vec![Acl {
                perms: ALL,
                id: Id::new("auth", ""),
            }],
            9 => vec![world(ALL), world(ALL), digest("u2:p2", ALL)],
            10 => Vec::new(),
            _ => vec![
                Acl {
                    perms: ALL,
                    id: Id::new("digest", "no-colon"),
                },
                Acl {
                    perms: ALL,
                    id: Id::new("nosuchscheme", "x"),
                },
            ][self.rng.below(2)..]
                .to_vec(),
        }
    }

    /// A create of any kind, 12% of them requests no client sends (modes an opcode
    /// cannot carry, bad TTLs, unknown flags), standalone and in multis alike.
    fn create_request(&mut self) -> MultiOp {
        let path = self.create_path();
        let data = self.data();
        let acl = self.acl();
        let plain = |flags: i32| CreateRequest {
            path: path.clone(),
            data: data.clone(),
            acl: acl.clone(),
            flags,
        };
        let ttl = |flags: i32, ttl: i64| CreateTtlRequest {
            path: path.clone(),
            data: data.clone(),
            acl: acl.clone(),
            flags,
            ttl,
        };
        let modes = [
            CreateMode::Persistent,
            CreateMode::Ephemeral,
            CreateMode::PersistentSequential,
            CreateMode::EphemeralSequential,
        ];
        let r = self.rng.below(100);
        match r {
            0..30 => MultiOp::Create(plain(self.rng.pick(&modes).code())),
            30..58 => MultiOp::Create2(plain(self.rng.pick(&modes).code())),
            58..72 => MultiOp::CreateContainer(plain(CreateMode::Container.code())),
            72..88 => {
                let mode = *self.rng.pick(&[
                    CreateMode::PersistentWithTtl,
                    CreateMode::PersistentSequentialWithTtl,
                ]);
                MultiOp::CreateTtl(ttl(mode.code(), TTL_MS))
            }
            // What real clients do not send: modes an opcode cannot carry (inside a
            // multi, ZooKeeper 3.8 re-derives a step's type from them), bad TTLs,
            // flag values no mode has.
            88..91 => MultiOp::Create2(plain(*self.rng.pick(&[4, 5, 6]))),
            91..93 => MultiOp::Create(plain(*self.rng.pick(&[4, 5, 6]))),
            93..95 => MultiOp::CreateContainer(plain(*self.rng.pick(&[0, 1, 2, 3, 5, 6]))),
            95..97 => MultiOp::CreateTtl(ttl(
                CreateMode::PersistentWithTtl.code(),
                *self.rng.pick(&[0, -1, 1 << 40, i64::MAX]),
            )),
            97 => MultiOp::CreateTtl(ttl(*self.rng.pick(&[0, 1, 2, 3, 4]), TTL_MS)),
            _ => {
                let flags = *self.rng.pick(&[7, -1, 8, 1 << 20]);
                match self.rng.below(4) {
                    0 => MultiOp::Create(plain(flags)),
                    1 => MultiOp::Create2(plain(flags)),
                    2 => MultiOp::CreateContainer(plain(flags)),
                    _ => MultiOp::CreateTtl(ttl(flags, TTL_MS)),
                }
            }
        }
    }

    fn create(&mut self) -> Request {
        match self.create_request() {
            MultiOp::Create(r) => Request::Create(r),
            MultiOp::Create2(r) => Request::Create2(r),
            MultiOp::CreateContainer(r) => Request::CreateContainer(r),
            MultiOp::CreateTtl(r) => Request::CreateTtl(r),
            other => unreachable!("create_request gave {other:?}"),
        }
    }

    fn multi(&mut self) -> Request {
        let n = if self.rng.percent(3) {
            0
        } else {
            1 + self.rng.below(MULTI_OPS_MAX)
        };
        let ops = (0..n)
            .map(|_| match self.rng.below(100) {
                // Malformed creates too: ZooKeeper 3.8 re-derives a multi step's type
                // from its flags (see `engine::server::convert`).
                0..35 => self.create_request(),
                35..60 => {
                    let path = self.path();
                    let version = self.version(&path, |s| s.version);
                    MultiOp::Delete(DeleteRequest { path, version })
                }
                60..85 => {
                    let path = self.path();
                    let version = self.version(&path, |s| s.version);
                    MultiOp::SetData(SetDataRequest {
                        path,
                        data: self.data(),
                        version,
                    })
                }
                _ => {
                    let path = self.path();
                    let version = self.version(&path, |s| s.version);
                    MultiOp::Check(CheckVersionRequest { path, version })
                }
            })
            .collect();
        Request::Multi(MultiRequest { ops })
    }

    fn saw(&mut self, rel: &str, stat: Option<Stat>) {
        let k = self.nodes.entry(rel.to_string()).or_default();
        if stat.is_some() {
            k.stat = stat;
        }
    }

    fn gone(&mut self, rel: &str) {
        let below = format!("{rel}/");
        self.nodes.retain(|p, _| p != rel && !p.starts_with(&below));
    }

    fn created(&mut self, op: &MultiOp, rel: &str, stat: Option<Stat>) {
        if matches!(op, MultiOp::CreateContainer(_)) {
            self.containers.insert(rel.to_string());
        }
        self.saw(rel, stat);
    }

    /// Takes in side a's answer to `step` (paths as the server sent them, under `root`)
    /// and the events side a's sessions received during the step.
    pub fn learn(
        &mut self,
        step: &Step,
        root: &str,
        reply: Option<(i32, &Response)>,
        events: &[&WatcherEvent],
    ) {
        let rel = |p: &str| relative(root, p).map(str::to_string);
        for ev in events {
            let Some(p) = rel(&ev.path) else { continue };
            match ev.event_type() {
                Some(EventType::NodeDeleted) => self.gone(&p),
                Some(EventType::NodeCreated) => self.saw(&p, None),
                _ => {}
            }
        }
        let (Action::Request(req), Some((err, rsp))) = (&step.action, reply) else {
            return;
        };
        let no_node = err == ErrorCode::NoNode.code();
        let target = req.path().map(str::to_string);
        match (req, rsp) {
            (Request::Create(r) | Request::Create2(r), _) if err == 0 => {
                let op = MultiOp::Create(r.clone());
                self.learn_create(&op, created(rsp), &rel)
            }
            (Request::CreateContainer(r), _) if err == 0 => {
                let op = MultiOp::CreateContainer(r.clone());
                self.learn_create(&op, created(rsp), &rel)
            }
            (Request::CreateTtl(r), _) if err == 0 => {
                let op = MultiOp::CreateTtl(r.clone());
                self.learn_create(&op, created(rsp), &rel)
            }
            (Request::Create(_) | Request::Create2(_) | Request::CreateContainer(_), _)
            | (Request::CreateTtl(_), _)
                if err == ErrorCode::NodeExists.code() =>
            {
                if let Some(p) = target {
                    self.saw(&p, None)
                }
            }
            (Request::Delete(r), _) if err == 0 || no_node => self.gone(&r.path),
            (_, Response::Stat(s)) if err == 0 => {
                if let Some(p) = target {
                    self.saw(&p, Some(s.stat))
                }
            }
            (_, Response::GetData(d)) => {
                if let Some(p) = target {
                    self.saw(&p, Some(d.stat))
                }
            }
            (_, Response::GetAcl(d)) => {
                if let Some(p) = target {
                    self.saw(&p, Some(d.stat))
                }
            }
            (Request::GetChildren(r), Response::GetChildren(c)) => {
                self.saw(&r.path, None);
                for child in &c.children {
                    if depth(&r.path) < DEPTH_MAX + 1 {
                        self.saw(&format!("{}/{child}", r.path), None);
                    }
                }
            }
            (Request::GetChildren2(r), Response::GetChildren2(c)) => {
                self.saw(&r.path, Some(c.stat));
                for child in &c.children {
                    self.saw(&format!("{}/{child}", r.path), None);
                }
            }
            (Request::Multi(m), Response::Multi(res)) => {
                for (op, result) in m.ops.iter().zip(&res.results) {
                    match result {
                        OpResult::Create { path } => {
                            self.learn_create(op, Some((path, None)), &rel)
                        }
                        OpResult::Create2 { path, stat } => {
                            self.learn_create(op, Some((path, Some(*stat))), &rel)
                        }
                        OpResult::Delete => self.gone(op.path()),
                        OpResult::SetData { stat } => self.saw(op.path(), Some(*stat)),
                        _ => {}
                    }
                }
            }
            _ if no_node => {
                if let Some(p) = target
                    && !p.is_empty()
                {
                    self.gone(&p)
                }
            }
            _ => {}
        }
        // Nodes deeper than the namespace allows are never aimed at.
        self.nodes.retain(|p, _| depth(p) <= DEPTH_MAX);
    }

    fn learn_create(
        &mut self,
        op: &MultiOp,
        created: Option<(&str, Option<Stat>)>,
        rel: &dyn Fn(&str) -> Option<String>,
    ) {
        if let Some((path, stat)) = created
            && let Some(p) = rel(path)
        {
            self.created(op, &p, stat);
        }
    }
}

/// The path and stat a create's reply names.
fn created(rsp: &Response) -> Option<(&str, Option<Stat>)> {
    match rsp {
        Response::Create(c) => Some((&c.path, None)),
        Response::Create2(c) => Some((&c.path, Some(c.stat))),
        _ => None,
    }
}
