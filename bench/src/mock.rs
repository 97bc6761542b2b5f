//! An in-process mock server with a virtual clock: the `--target mock` driver.
//!
//! Contract: a tiny ZooKeeper (persistent / ephemeral / sequential znodes, NoNode /
//! NodeExists / NotEmpty errors, one-shot data and child watches) whose replies come
//! after deterministic latencies on a **virtual** clock: `poll` jumps the clock to the
//! next reply instead of sleeping. The same seed gives the same run, in microseconds, on
//! any machine, so the runners, statistics and reports can be tested end to end without
//! wall time or a server.
//!
//! Latency model: a request's reply is due `base + jitter` after it was sent (`base` by
//! op kind, `jitter` uniform in `[0, jitter_ns)` from the seeded rng), never before the
//! session's previous reply (per-session FIFO). A watch event reaches the `i`th watcher
//! `event_ns + i * fanout_step_ns` after the triggering reply. A **stall** `[s, e)`
//! models a sender blocked by a paused server (full socket buffers): a request submitted
//! inside it is sent, and the clock jumps, at `e` — the case coordinated-omission
//! correction exists for.
//!
//! The tree is shared by every driver one [`MockConnector`] makes (so setup by one
//! worker is seen by all); watches are per driver, which is enough because the recipes
//! run in one worker.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use transport::jute::{ErrorCode, EventType};

use crate::driver::{Completion, Connector, Driver, DriverError, Event, Nanos, Reply, SessionPlan};
use crate::workload::{Op, OpKind, worker_seed};

/// Most sessions one mock driver serves.
pub const MOCK_SESSIONS_MAX: usize = 100_000;

/// The mock's latency model.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Base latency of get, exists, children.
    pub read_ns: Nanos,
    /// Base latency of set, create, delete.
    pub write_ns: Nanos,
    /// Uniform extra latency in `[0, jitter_ns)`.
    pub jitter_ns: Nanos,
    /// Delay from a triggering reply to the first watcher's event.
    pub event_ns: Nanos,
    /// Extra delay per further watcher (events go out one after another).
    pub fanout_step_ns: Nanos,
    /// `[start, end)` windows in which the sender is blocked until `end`.
    pub stalls: Vec<(Nanos, Nanos)>,
    /// `(n, code)`: every `n`th get, exists, children or set fails with `code` (creates
    /// and deletes never do, so setup and cleanup are unaffected).
    pub inject_error: Option<(u64, ErrorCode)>,
    pub seed: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            read_ns: 100_000,
            write_ns: 400_000,
            jitter_ns: 50_000,
            event_ns: 50_000,
            fanout_step_ns: 2_000,
            stalls: Vec::new(),
            inject_error: None,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Owning session (global index) for ephemerals.
    owner: Option<usize>,
    /// Next sequence number for sequential children.
    next_seq: u64,
}

/// The mock's znode tree (shared by one connector's drivers).
#[derive(Debug, Default)]
pub struct MockTree {
    nodes: BTreeMap<String, Node>,
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl MockTree {
    fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Node::default());
        MockTree { nodes }
    }

    fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| &k[prefix.len()..])
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }

    fn create(&mut self, op: &Op, owner: usize) -> Result<String, ErrorCode> {
        let parent = parent_of(&op.path).to_string();
        let p = self.nodes.get_mut(&parent).ok_or(ErrorCode::NoNode)?;
        if p.owner.is_some() {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let path = if op.mode.is_sequential() {
            p.next_seq += 1;
            format!("{}{:010}", op.path, p.next_seq - 1)
        } else {
            op.path.clone()
        };
        if self.nodes.contains_key(&path) {
            return Err(ErrorCode::NodeExists);
        }
        let owner = op.mode.is_ephemeral().then_some(owner);
        self.nodes.insert(path.clone(), Node { owner, next_seq: 0 });
        Ok(path)
    }

    fn delete(&mut self, path: &str) -> Result<(), ErrorCode> {
        if !self.nodes.contains_key(path) {
            return Err(ErrorCode::NoNode);
        }
        if !self.children(path).is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.nodes.remove(path);
        Ok(())
    }

    /// Removes every ephemeral of `owner`; returns their paths.
    fn expire(&mut self, owner: usize) -> Vec<String> {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.owner == Some(owner))
            .map(|(k, _)| k.clone())
            .collect();
        for p in &gone {
            self.nodes.remove(p);
        }
        gone
    }
}

/// Makes [`MockDriver`]s sharing one tree.
#[derive(Debug, Clone)]
pub struct MockConnector {
    pub config: MockConfig,
    tree: Arc<Mutex<MockTree>>,
}

impl MockConnector {
    pub fn new(config: MockConfig) -> Self {
        MockConnector {
            config,
            tree: Arc::new(Mutex::new(MockTree::new())),
        }
    }

    /// Paths currently in the tree (for tests: did cleanup clean up?).
    pub fn paths(&self) -> Vec<String> {
        let tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        tree.nodes.keys().cloned().collect()
    }
}

impl Connector for MockConnector {
    type Driver = MockDriver;

    fn connect(&self, worker: usize, sessions: &[SessionPlan]) -> Result<MockDriver, DriverError> {
        if sessions.len() > MOCK_SESSIONS_MAX {
            return Err(DriverError(format!(
                "mock: {} sessions in one driver; at most {MOCK_SESSIONS_MAX}",
                sessions.len()
            )));
        }
        Ok(MockDriver {
            config: self.config.clone(),
            tree: self.tree.clone(),
            rng: SmallRng::seed_from_u64(worker_seed(self.config.seed, worker)),
            now: 0,
            seq: 0,
            reads: 0,
            globals: sessions.iter().map(|s| s.global).collect(),
            last_done: vec![0; sessions.len()],
            due: BinaryHeap::new(),
            data_watches: HashMap::new(),
            child_watches: HashMap::new(),
        })
    }
}

/// A completion waiting for its time (ordered by time, then submission order).
#[derive(Debug, PartialEq, Eq)]
struct Due {
    at: Nanos,
    seq: u64,
    event: Event,
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One worker's mock sessions on a virtual clock.
#[derive(Debug)]
pub struct MockDriver {
    config: MockConfig,
    tree: Arc<Mutex<MockTree>>,
    rng: SmallRng,
    now: Nanos,
    seq: u64,
    /// Gets, exists, children and sets so far (for `inject_error`).
    reads: u64,
    globals: Vec<usize>,
    last_done: Vec<Nanos>,
    due: BinaryHeap<Reverse<Due>>,
    data_watches: HashMap<String, Vec<usize>>,
    child_watches: HashMap<String, Vec<usize>>,
}

impl MockDriver {
    fn latency(&mut self, kind: OpKind) -> Nanos {
        let base = match kind {
            OpKind::Set | OpKind::Create | OpKind::Delete => self.config.write_ns,
            _ => self.config.read_ns,
        };
        let jitter = match self.config.jitter_ns {
            0 => 0,
            j => self.rng.random_range(0..j),
        };
        base + jitter
    }

    fn push(&mut self, session: usize, at: Nanos, event: Event) {
        // Per-session FIFO: never before the session's previous completion.
        let at = at.max(self.last_done[session]);
        self.last_done[session] = at;
        self.seq += 1;
        self.due.push(Reverse(Due {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// Queues the events of one-shot watches on `path` in `map`.
    fn fire(&mut self, children: bool, path: &str, kind: EventType, after: Nanos) {
        let map = if children {
            &mut self.child_watches
        } else {
            &mut self.data_watches
        };
        let Some(watchers) = map.remove(path) else {
            return;
        };
        for (i, session) in watchers.into_iter().enumerate() {
            let at = after + self.config.event_ns + i as Nanos * self.config.fanout_step_ns;
            let path = path.to_string();
            self.push(
                session,
                at,
                Event::Watch {
                    session,
                    path,
                    kind,
                },
            );
        }
    }

    fn watch(&mut self, children: bool, path: &str, session: usize) {
        let map = if children {
            &mut self.child_watches
        } else {
            &mut self.data_watches
        };
        let w = map.entry(path.to_string()).or_default();
        if !w.contains(&session) {
            w.push(session);
        }
    }

    /// Applies `op` to the tree; returns the reply and the watch events it triggers.
    fn apply(&mut self, session: usize, op: &Op) -> (Result<Reply, ErrorCode>, Vec<Trigger>) {
        let owner = self.globals[session];
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        let exists = tree.nodes.contains_key(&op.path);
        let parent = parent_of(&op.path).to_string();
        match op.kind {
            OpKind::Get | OpKind::Exists => (
                if exists {
                    Ok(Reply::Done)
                } else {
                    Err(ErrorCode::NoNode)
                },
                // exists leaves a watch on a missing node too; getData does not.
                if op.watch && (exists || op.kind == OpKind::Exists) {
                    vec![Trigger::WatchData(op.path.clone())]
                } else {
                    vec![]
                },
            ),
            OpKind::Children => match exists {
                false => (Err(ErrorCode::NoNode), vec![]),
                true => (
                    Ok(Reply::Children(tree.children(&op.path))),
                    if op.watch {
                        vec![Trigger::WatchChildren(op.path.clone())]
                    } else {
                        vec![]
                    },
                ),
            },
            OpKind::Set => match exists {
                false => (Err(ErrorCode::NoNode), vec![]),
                true => (
                    Ok(Reply::Done),
                    vec![Trigger::Fire(
                        false,
                        op.path.clone(),
                        EventType::NodeDataChanged,
                    )],
                ),
            },
            OpKind::Create => match tree.create(op, owner) {
                Err(e) => (Err(e), vec![]),
                Ok(path) => (
                    Ok(Reply::Created(path.clone())),
                    vec![
                        Trigger::Fire(false, path, EventType::NodeCreated),
                        Trigger::Fire(true, parent, EventType::NodeChildrenChanged),
                    ],
                ),
            },
            OpKind::Delete => match tree.delete(&op.path) {
                Err(e) => (Err(e), vec![]),
                Ok(()) => (
                    Ok(Reply::Done),
                    vec![
                        Trigger::Fire(false, op.path.clone(), EventType::NodeDeleted),
                        Trigger::Fire(true, parent, EventType::NodeChildrenChanged),
                    ],
                ),
            },
            OpKind::WatchEvent | OpKind::LockAcquire => (Err(ErrorCode::Unimplemented), vec![]),
        }
    }
}

/// A side effect of applying an op.
enum Trigger {
    WatchData(String),
    WatchChildren(String),
    /// (child watch?, path, event)
    Fire(bool, String, EventType),
}

impl Driver for MockDriver {
    fn sessions(&self) -> usize {
        self.globals.len()
    }

    fn now(&self) -> Nanos {
        self.now
    }

    fn submit(&mut self, session: usize, tag: u64, op: &Op) -> Result<(), DriverError> {
        if session >= self.globals.len() {
            return Err(DriverError(format!("mock: no session {session}")));
        }
        if let Some(&(_, end)) = self
            .config
            .stalls
            .iter()
            .find(|(s, e)| (*s..*e).contains(&self.now))
        {
            self.now = end; // the sender was blocked until the stall ended
        }
        let (mut result, mut triggers) = self.apply(session, op);
        if let (Some((n, code)), false) = (
            self.config.inject_error,
            matches!(op.kind, OpKind::Create | OpKind::Delete),
        ) {
            self.reads += 1;
            if n > 0 && self.reads.is_multiple_of(n) {
                (result, triggers) = (Err(code), Vec::new());
            }
        }
        let done = self.now + self.latency(op.kind);
        for t in triggers {
            match t {
                Trigger::WatchData(p) => self.watch(false, &p, session),
                Trigger::WatchChildren(p) => self.watch(true, &p, session),
                Trigger::Fire(children, p, kind) => self.fire(children, &p, kind, done),
            }
        }
        self.push(
            session,
            done,
            Event::Reply {
                session,
                tag,
                result,
            },
        );
        Ok(())
    }

    fn poll(&mut self, deadline: Nanos, out: &mut Vec<Completion>) -> Result<(), DriverError> {
        let next = match self.due.peek() {
            Some(Reverse(d)) if d.at <= deadline => d.at,
            _ => {
                self.now = self.now.max(deadline);
                return Ok(());
            }
        };
        self.now = self.now.max(next);
        while let Some(Reverse(d)) = self.due.peek() {
            if d.at > next {
                break;
            }
            let Reverse(d) = self.due.pop().expect("peeked");
            out.push(Completion {
                at: d.at,
                event: d.event,
            });
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), DriverError> {
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        for g in &self.globals {
            tree.expire(*g);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::CreateMode;

    fn driver(config: MockConfig, sessions: usize) -> MockDriver {
        let plans: Vec<_> = (0..sessions)
            .map(|g| SessionPlan {
                global: g,
                server: "mock:1".into(),
            })
            .collect();
        MockConnector::new(config).connect(0, &plans).unwrap()
    }

    fn fixed() -> MockConfig {
        MockConfig {
            read_ns: 100,
            write_ns: 400,
            jitter_ns: 0,
            event_ns: 10,
            fanout_step_ns: 1,
            ..Default::default()
        }
    }

    fn drain(d: &mut MockDriver) -> Vec<Completion> {
        let mut out = Vec::new();
        while !d.due.is_empty() {
            d.poll(Nanos::MAX, &mut out).unwrap();
        }
        out
    }

    fn result(c: &Completion) -> Result<Reply, ErrorCode> {
        match &c.event {
            Event::Reply { result, .. } => result.clone(),
            e => panic!("not a reply: {e:?}"),
        }
    }

    #[test]
    fn tree_semantics_and_virtual_time() {
        let mut d = driver(fixed(), 1);
        d.submit(0, 1, &Op::new(OpKind::Create, "/a")).unwrap();
        d.submit(0, 2, &Op::new(OpKind::Create, "/a")).unwrap();
        d.submit(0, 3, &Op::new(OpKind::Get, "/b")).unwrap();
        d.submit(0, 4, &Op::new(OpKind::Create, "/a/b")).unwrap();
        d.submit(0, 5, &Op::new(OpKind::Delete, "/a")).unwrap();
        d.submit(0, 6, &Op::new(OpKind::Children, "/a")).unwrap();
        let out = drain(&mut d);
        let got: Vec<_> = out.iter().map(result).collect();
        assert_eq!(got[0], Ok(Reply::Created("/a".into())));
        assert_eq!(got[1], Err(ErrorCode::NodeExists));
        assert_eq!(got[2], Err(ErrorCode::NoNode));
        assert_eq!(got[4], Err(ErrorCode::NotEmpty));
        assert_eq!(got[5], Ok(Reply::Children(vec!["b".into()])));
        // FIFO: the read (100 ns) queued behind the writes (400 ns) of the same session.
        let times: Vec<_> = out.iter().map(|c| c.at).collect();
        assert_eq!(times, [400, 400, 400, 400, 400, 400]);
        assert_eq!(d.now(), 400);
    }

    #[test]
    fn poll_without_work_jumps_to_deadline() {
        let mut d = driver(fixed(), 1);
        let mut out = Vec::new();
        d.poll(5_000, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(d.now(), 5_000);
    }

    #[test]
    fn sequential_ephemerals_watches_and_close() {
        let mut d = driver(fixed(), 3);
        d.submit(0, 0, &Op::new(OpKind::Create, "/l")).unwrap();
        let mut c = Op::new(OpKind::Create, "/l/lock-");
        c.mode = CreateMode::EphemeralSequential;
        d.submit(1, 1, &c).unwrap();
        d.submit(2, 2, &c).unwrap();
        let out = drain(&mut d);
        assert_eq!(
            result(&out[1]),
            Ok(Reply::Created("/l/lock-0000000000".into()))
        );
        assert_eq!(
            result(&out[2]),
            Ok(Reply::Created("/l/lock-0000000001".into()))
        );
        let mut w = Op::new(OpKind::Exists, "/l/lock-0000000000");
        w.watch = true;
        d.submit(2, 3, &w).unwrap();
        d.submit(1, 4, &Op::new(OpKind::Delete, "/l/lock-0000000000"))
            .unwrap();
        let out = drain(&mut d);
        let ev = out
            .iter()
            .find(|c| matches!(c.event, Event::Watch { .. }))
            .expect("event");
        assert_eq!(
            ev.event,
            Event::Watch {
                session: 2,
                path: "/l/lock-0000000000".into(),
                kind: EventType::NodeDeleted
            }
        );
        d.close().unwrap();
        assert!(MockTree::children(&d.tree.lock().unwrap(), "/l").is_empty());
    }

    #[test]
    fn stall_blocks_the_sender() {
        let mut cfg = fixed();
        cfg.stalls = vec![(1_000, 9_000)];
        let mut d = driver(cfg, 1);
        let mut out = Vec::new();
        d.poll(2_000, &mut out).unwrap();
        d.submit(0, 0, &Op::new(OpKind::Get, "/")).unwrap();
        assert_eq!(d.now(), 9_000);
        assert_eq!(drain(&mut d)[0].at, 9_100);
    }
}
