//! The workload: worker threads, one session each, making seeded random ops on a
//! standalone server and recording every one of them ([`Recorder`]).
//!
//! Contract:
//! - the schedule of ops is a function of the seed: worker `w` draws its op kinds,
//!   keys and values from its own [`Rng`] (seeded from the seed and `w`), so the same
//!   seed gives every worker the same sequence of ops (what the server answers, e.g.
//!   the version a compare-and-set expects, is the only input from outside);
//! - registers are `root/r/k<n>`, taken in windows of [`KEYS_PER_WINDOW`] keys: a
//!   worker makes exactly [`OPS_PER_KEY_PER_WORKER_MAX`] register ops on each key of
//!   its current window (in shuffled order) before it moves to the next, so no key
//!   ever sees more than `workers * OPS_PER_KEY_PER_WORKER_MAX` ops plus its final
//!   read; a window's keys are created together (one multi, value `0`) before use;
//! - written values are unique in the run: `(worker + 1) << 40 | counter`;
//! - each worker has one request outstanding at a time; an IO error or a reply that
//!   does not come within the reply timeout makes the op `unknown` and drops the
//!   connection; the worker then reattaches to its session ([`Call::Reconnect`], `ok`
//!   or `fail` when the server says it expired, in which case it opens a new one),
//!   polling every [`RECONNECT_POLL_MS`] while the server is down, until the stop;
//! - the workload stops when [`Shared::stop_at`] says (the runner sets it once the
//!   nemesis has healed the server, so every run ends with a healed stretch however
//!   long restarts took); each worker then closes its session; [`final_reads`] reads every
//!   key used (sync + getData), the ephemerals' parent and every sequential parent.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use transport::client::Client;
use transport::jute::records::*;
use transport::jute::{
    Acl, CreateMode, ErrorCode, MultiOp, MultiRequest, OpResult, Request, Response,
};

use super::history::{Call, Event, FINAL_PROCESS, FaultKind, Line, NemesisEvent, Reply};
use crate::diff::rng::Rng;

/// Keys a worker works on at a time.
pub const KEYS_PER_WINDOW: u32 = 8;
/// Register ops one worker makes on one key.
pub const OPS_PER_KEY_PER_WORKER_MAX: u32 = 6;
/// Parents of the sequential creates.
pub const SEQ_PARENTS: u32 = 4;
/// Ephemerals one session creates at most.
pub const EPHEMERALS_PER_SESSION_MAX: u32 = 8;
/// closeSession ops one worker makes at most (besides the one at the end).
pub const CLOSES_PER_WORKER_MAX: u32 = 20;
/// Workers at most.
pub const WORKERS_MAX: u32 = 64;
/// Session timeout asked for (default), and the range `--session-timeout-ms` takes
/// (ZooKeeper's default bounds: 2 and 20 ticks of 2 s).
pub const SESSION_TIMEOUT_MS: i32 = 10_000;
pub const SESSION_TIMEOUT_MS_MIN: i32 = 4_000;
pub const SESSION_TIMEOUT_MS_MAX: i32 = 40_000;
/// Longest wait for one reply before the op is unknown.
pub const REPLY_TIMEOUT_MS_MAX: u64 = 4_000;
/// Pause between connection attempts while the server is down.
pub const RECONNECT_POLL_MS: u64 = 50;
/// Tries at each final read (the server is healed by then; a try fails only if it
/// drops a connection).
pub const FINAL_TRIES_MAX: u32 = 5;
/// Longest the final phase waits to connect to the healed server.
pub const FINAL_CONNECT_WAIT_MS_MAX: u64 = 30_000;

/// Op kinds and their weights, in the order [`Worker::next_call`] draws them.
const WEIGHTS: [u32; 9] = [
    25, // read
    20, // sync read
    20, // write
    15, // compare-and-set
    5,  // multi
    7,  // sequential create
    4,  // ephemeral create
    3,  // list ephemerals
    1,  // close and reopen
];

/// What to run.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub seed: u64,
    pub workers: u32,
    pub duration: Duration,
    /// Ops per worker at most (the duration usually ends it first).
    pub ops_per_worker_max: u64,
    pub root: String,
    pub session_timeout_ms: i32,
    pub reply_timeout: Duration,
}

impl WorkloadConfig {
    pub fn new(seed: u64, workers: u32, duration: Duration) -> Self {
        WorkloadConfig {
            seed,
            workers: workers.clamp(1, WORKERS_MAX),
            duration,
            ops_per_worker_max: u64::MAX,
            root: format!("/ckjepsen-{seed}"),
            session_timeout_ms: SESSION_TIMEOUT_MS,
            reply_timeout: Duration::from_millis(REPLY_TIMEOUT_MS_MAX),
        }
    }
}

/// Writes history lines as they happen; times from one monotonic clock.
pub struct Recorder {
    start: Instant,
    next_op: AtomicU64,
    out: Mutex<Box<dyn Write + Send>>,
}

/// How an op ended, for [`Recorder::complete`].
pub enum Done {
    /// The reply and its header's zxid (None: no reply header, e.g. a handshake).
    Ok(Reply, Option<i64>),
    Fail(Reply, Option<i64>),
    Unknown(String),
}

impl Recorder {
    pub fn new(start: Instant, out: Box<dyn Write + Send>) -> Recorder {
        Recorder {
            start,
            next_op: AtomicU64::new(0),
            out: Mutex::new(out),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn write_line(&self, line: &Line) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A history that cannot be written is useless; say so loudly.
        writeln!(out, "{}", line.to_json()).expect("writing the history");
    }

    fn event(&self, op: u64, process: u32, session: i64, server: &str) -> Event {
        Event {
            op,
            process,
            t_ns: 0,
            session,
            server: server.to_string(),
            call: None,
            reply: None,
            zxid: None,
            error: None,
        }
    }

    /// Records an invoke (timed inside the lock, so lines are in time order).
    pub fn invoke(&self, process: u32, session: i64, server: &str, call: &Call) -> u64 {
        let op = self.next_op.fetch_add(1, Ordering::Relaxed);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let line = Line::Invoke(Event {
            t_ns: self.now_ns(),
            call: Some(call.clone()),
            ..self.event(op, process, session, server)
        });
        writeln!(out, "{}", line.to_json()).expect("writing the history");
        op
    }

    /// Records how op `op` ended.
    pub fn complete(&self, op: u64, process: u32, session: i64, server: &str, done: Done) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let ev = Event {
            t_ns: self.now_ns(),
            ..self.event(op, process, session, server)
        };
        let line = match done {
            Done::Ok(r, zxid) => Line::Ok(Event {
                reply: Some(r),
                zxid,
                ..ev
            }),
            Done::Fail(r, zxid) => Line::Fail(Event {
                reply: Some(r),
                zxid,
                ..ev
            }),
            Done::Unknown(e) => Line::Unknown(Event {
                error: Some(e),
                ..ev
            }),
        };
        writeln!(out, "{}", line.to_json()).expect("writing the history");
    }

    /// Records an op whose invoke time was `invoke_ns`, once its outcome is known
    /// (reconnects: failed connection attempts are not ops).
    pub fn record_whole(
        &self,
        process: u32,
        session: i64,
        server: &str,
        call: &Call,
        invoke_ns: u64,
        done: Done,
    ) {
        let op = self.next_op.fetch_add(1, Ordering::Relaxed);
        {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let line = Line::Invoke(Event {
                t_ns: invoke_ns,
                call: Some(call.clone()),
                ..self.event(op, process, session, server)
            });
            writeln!(out, "{}", line.to_json()).expect("writing the history");
        }
        self.complete(op, process, session, server, done);
    }

    pub fn nemesis(&self, kind: FaultKind, phase: &str, detail: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let line = Line::Nemesis(NemesisEvent {
            t_ns: self.now_ns(),
            kind,
            phase: phase.into(),
            detail: detail.into(),
        });
        writeln!(out, "{}", line.to_json()).expect("writing the history");
    }

    pub fn flush(&self) -> io::Result<()> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Paths of a run.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: String,
}

impl Paths {
    pub fn key(&self, key: u32) -> String {
        format!("{}/r/k{key}", self.root)
    }
    pub fn seq_parent(&self, parent: u32) -> String {
        format!("{}/seq/p{parent}", self.root)
    }
    pub fn eph_parent(&self) -> String {
        format!("{}/eph", self.root)
    }
    /// Every persistent node the run needs before it starts.
    pub fn skeleton(&self) -> Vec<String> {
        let mut v = vec![
            self.root.clone(),
            format!("{}/r", self.root),
            format!("{}/seq", self.root),
            self.eph_parent(),
        ];
        v.extend((0..SEQ_PARENTS).map(|p| self.seq_parent(p)));
        v
    }
}

fn create_req(path: String, data: &[u8], mode: CreateMode) -> CreateRequest {
    CreateRequest {
        path,
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags: mode.code(),
    }
}

/// Creates the run's persistent skeleton (before any fault).
pub fn setup(addr: &str, cfg: &WorkloadConfig) -> io::Result<()> {
    let paths = Paths {
        root: cfg.root.clone(),
    };
    let mut c = Client::connect(addr, cfg.session_timeout_ms)?;
    c.set_read_timeout(Some(cfg.reply_timeout))?;
    for p in paths.skeleton() {
        match c.create(&p, b"", CreateMode::Persistent) {
            Ok(_) => {}
            Err(e) if e.to_string().contains("NodeExists") => {}
            Err(e) => return Err(io::Error::other(format!("creating {p}: {e}"))),
        }
    }
    c.close()
}

fn proto(what: &str, r: &Response) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what} answered {r:?}"))
}

fn parse_value(data: &Option<Vec<u8>>) -> u64 {
    // Anything but a decimal number (values are written as such) is u64::MAX, which no
    // write wrote: the checkers then report the read.
    data.as_deref()
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Sends `call` on `c`: `Ok((zxid, Ok(reply)))`, `Ok((zxid, Err(code)))` for an error
/// reply, `Err` when the connection failed (the op is then unknown).
fn perform(c: &mut Client, paths: &Paths, call: &Call) -> io::Result<(i64, Result<Reply, i32>)> {
    let read = |c: &mut Client, key: u32| -> io::Result<(i64, Result<Reply, i32>)> {
        let (h, r) = c.call(&Request::GetData(GetDataRequest {
            path: paths.key(key),
            watch: false,
        }))?;
        if h.err != 0 {
            return Ok((h.zxid, Err(h.err)));
        }
        match r {
            Response::GetData(d) => Ok((
                h.zxid,
                Ok(Reply::Value {
                    value: parse_value(&d.data),
                    version: d.stat.version,
                    mzxid: d.stat.mzxid,
                }),
            )),
            other => Err(proto("getData", &other)),
        }
    };
    let set = |c: &mut Client, key: u32, value: u64, version: i32| {
        let (h, r) = c.call(&Request::SetData(SetDataRequest {
            path: paths.key(key),
            data: Some(value.to_string().into_bytes()),
            version,
        }))?;
        if h.err != 0 {
            return Ok((h.zxid, Err(h.err)));
        }
        match r {
            Response::Stat(s) => Ok((
                h.zxid,
                Ok(Reply::Written {
                    version: s.stat.version,
                    mzxid: s.stat.mzxid,
                }),
            )),
            other => Err(proto("setData", &other)),
        }
    };
    let children = |c: &mut Client, path: String| {
        let (h, r) = c.call(&Request::GetChildren(GetChildrenRequest {
            path,
            watch: false,
        }))?;
        if h.err != 0 {
            return Ok((h.zxid, Err(h.err)));
        }
        match r {
            Response::GetChildren(g) => {
                let mut names = g.children;
                names.sort();
                Ok((h.zxid, Ok(Reply::Children { names })))
            }
            other => Err(proto("getChildren", &other)),
        }
    };
    let create = |c: &mut Client, path: String, mode: CreateMode| {
        let (h, r) = c.call(&Request::Create(create_req(path, b"", mode)))?;
        if h.err != 0 {
            return Ok((h.zxid, Err(h.err)));
        }
        match r {
            Response::Create(cr) => {
                let name = cr.path.rsplit('/').next().unwrap_or_default().to_string();
                Ok((h.zxid, Ok(Reply::Created { name })))
            }
            other => Err(proto("create", &other)),
        }
    };
    match call {
        Call::Read { key } => read(c, *key),
        Call::SyncRead { key } => {
            let (h, _) = c.call(&Request::Sync(SyncRequest {
                path: paths.key(*key),
            }))?;
            if h.err != 0 {
                return Ok((h.zxid, Err(h.err)));
            }
            read(c, *key)
        }
        Call::Write { key, value } => set(c, *key, *value, -1),
        Call::Cas { key, expect, value } => set(c, *key, *value, *expect),
        Call::Multi { writes } => {
            let ops = writes
                .iter()
                .map(|(k, v)| {
                    MultiOp::SetData(SetDataRequest {
                        path: paths.key(*k),
                        data: Some(v.to_string().into_bytes()),
                        version: -1,
                    })
                })
                .collect();
            let (h, r) = c.call(&Request::Multi(MultiRequest { ops }))?;
            if h.err != 0 {
                return Ok((h.zxid, Err(h.err)));
            }
            match r {
                Response::Multi(m) => {
                    if let Some(code) = m.first_error() {
                        return Ok((h.zxid, Err(code)));
                    }
                    let mut versions = Vec::new();
                    let mut mzxid = 0;
                    for res in &m.results {
                        match res {
                            OpResult::SetData { stat } => {
                                versions.push(stat.version);
                                mzxid = stat.mzxid;
                            }
                            other => {
                                return Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    format!("multi result {other:?}"),
                                ));
                            }
                        }
                    }
                    Ok((h.zxid, Ok(Reply::MultiWritten { versions, mzxid })))
                }
                other => Err(proto("multi", &other)),
            }
        }
        Call::CreateSeq { parent } => create(
            c,
            format!("{}/s-", paths.seq_parent(*parent)),
            CreateMode::PersistentSequential,
        ),
        Call::CreateEph { name } => create(
            c,
            format!("{}/{name}", paths.eph_parent()),
            CreateMode::Ephemeral,
        ),
        Call::ListEph => children(c, paths.eph_parent()),
        Call::ListSeq { parent } => children(c, paths.seq_parent(*parent)),
        Call::Close => {
            let (h, _) = c.call(&Request::CloseSession)?;
            if h.err != 0 {
                return Ok((h.zxid, Err(h.err)));
            }
            Ok((h.zxid, Ok(Reply::Done)))
        }
        Call::Reconnect { .. } => Err(io::Error::other("reconnect is not a request")),
    }
}

/// Shared state of one workload run.
pub struct Shared<'a> {
    pub cfg: &'a WorkloadConfig,
    /// The servers (one, or an ensemble's members): worker `i` starts on server
    /// `i % n` and moves to the next when it cannot connect, as ZooKeeper clients do.
    pub servers: Vec<String>,
    pub rec: &'a Recorder,
    /// Highest key window any worker entered.
    pub max_window: AtomicU32,
    /// When the workload stops, in the recorder's ns (`u64::MAX`: not decided yet).
    pub stop_ns: AtomicU64,
    /// Per worker: silent (no connection, no requests) until this time, in the
    /// recorder's ns (a `Silence` fault).
    pub silent_until_ns: Vec<AtomicU64>,
}

impl Shared<'_> {
    pub fn new<'a>(cfg: &'a WorkloadConfig, servers: Vec<String>, rec: &'a Recorder) -> Shared<'a> {
        debug_assert!(!servers.is_empty(), "a workload needs a server");
        Shared {
            cfg,
            servers,
            rec,
            max_window: AtomicU32::new(0),
            stop_ns: AtomicU64::new(u64::MAX),
            silent_until_ns: (0..cfg.workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Fault `i` of the schedule silences worker `i % workers` for `d` from now.
    pub fn silence(&self, i: usize, d: Duration) {
        let n = self.silent_until_ns.len().max(1);
        if let Some(w) = self.silent_until_ns.get(i % n) {
            w.store(self.rec.now_ns() + d.as_nanos() as u64, Ordering::Release);
        }
    }

    /// Stops the workload at `ns` (recorder time).
    pub fn stop_at(&self, ns: u64) {
        self.stop_ns.store(ns, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.rec.now_ns() >= self.stop_ns.load(Ordering::Relaxed)
    }
}

/// One worker: a session and its seeded op stream.
pub struct Worker<'a> {
    id: u32,
    sh: &'a Shared<'a>,
    paths: Paths,
    rng: Rng,
    client: Option<Client>,
    session: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
    versions: HashMap<u32, i32>,
    window: u32,
    window_ready: bool,
    slots: Vec<u32>,
    next_value: u64,
    next_eph: u64,
    eph_in_session: u32,
    closes: u32,
    ops: u64,
    /// Index of the server it uses in `Shared::servers`.
    at: usize,
}

impl<'a> Worker<'a> {
    pub fn new(id: u32, sh: &'a Shared<'a>) -> Worker<'a> {
        let seed = sh.cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(id) << 32 | 0xC0DE);
        let mut w = Worker {
            id,
            sh,
            paths: Paths {
                root: sh.cfg.root.clone(),
            },
            rng: Rng::new(seed),
            client: None,
            session: 0,
            passwd: Vec::new(),
            last_zxid: 0,
            versions: HashMap::new(),
            window: 0,
            window_ready: false,
            slots: Vec::new(),
            next_value: 0,
            next_eph: 0,
            eph_in_session: 0,
            closes: 0,
            ops: 0,
            at: id as usize % sh.servers.len(),
        };
        w.fill_slots();
        w
    }

    fn fill_slots(&mut self) {
        let first = self.window * KEYS_PER_WINDOW;
        self.slots = (first..first + KEYS_PER_WINDOW)
            .flat_map(|k| std::iter::repeat_n(k, OPS_PER_KEY_PER_WORKER_MAX as usize))
            .collect();
        for i in (1..self.slots.len()).rev() {
            let j = self.rng.below(i + 1);
            self.slots.swap(i, j);
        }
        self.window_ready = false;
        self.sh.max_window.fetch_max(self.window, Ordering::Relaxed);
    }

    fn next_slot(&mut self) -> u32 {
        if self.slots.is_empty() {
            self.window += 1;
            self.fill_slots();
        }
        self.slots.pop().expect("a window has slots")
    }

    fn value(&mut self) -> u64 {
        self.next_value += 1;
        (u64::from(self.id) + 1) << 40 | self.next_value
    }

    /// The next op of this worker's seeded schedule.
    fn next_call(&mut self) -> Call {
        match self.rng.weighted(&WEIGHTS) {
            0 => Call::Read {
                key: self.next_slot(),
            },
            1 => Call::SyncRead {
                key: self.next_slot(),
            },
            2 => {
                let key = self.next_slot();
                Call::Write {
                    key,
                    value: self.value(),
                }
            }
            3 => {
                let key = self.next_slot();
                Call::Cas {
                    key,
                    expect: self.versions.get(&key).copied().unwrap_or(0),
                    value: self.value(),
                }
            }
            4 => {
                let a = self.next_slot();
                let (va, vb) = (self.value(), self.value());
                // Two distinct keys of the window, else a plain write.
                match self.slots.iter().position(|k| *k != a) {
                    Some(i) => {
                        let b = self.slots.remove(i);
                        Call::Multi {
                            writes: vec![(a, va), (b, vb)],
                        }
                    }
                    None => Call::Write { key: a, value: va },
                }
            }
            5 => Call::CreateSeq {
                parent: self.rng.below(SEQ_PARENTS as usize) as u32,
            },
            6 if self.eph_in_session < EPHEMERALS_PER_SESSION_MAX => {
                self.next_eph += 1;
                Call::CreateEph {
                    name: format!("w{}-{}", self.id, self.next_eph),
                }
            }
            8 if self.closes < CLOSES_PER_WORKER_MAX => {
                self.closes += 1;
                Call::Close
            }
            _ => Call::ListEph,
        }
    }

    fn server(&self) -> &str {
        &self.sh.servers[self.at]
    }

    /// The next server, after one refused or dropped this worker.
    fn move_on(&mut self) {
        self.at = (self.at + 1) % self.sh.servers.len();
    }

    fn adopt(&mut self, c: Client) -> io::Result<()> {
        c.set_read_timeout(Some(self.sh.cfg.reply_timeout))?;
        c.set_write_timeout(Some(self.sh.cfg.reply_timeout))?;
        if self.session != c.session_id() {
            self.eph_in_session = 0;
        }
        self.session = c.session_id();
        self.passwd = c.password();
        self.client = Some(c);
        Ok(())
    }

    /// Connects (reattaching to the session if there is one) unless connected; false
    /// when the workload stopped first.
    fn ensure_connected(&mut self) -> bool {
        while self.client.is_none() {
            if self.sh.stopped() {
                return false;
            }
            let t0 = self.sh.rec.now_ns();
            let timeout = self.sh.cfg.session_timeout_ms;
            if self.session != 0 {
                let call = Call::Reconnect {
                    session: self.session,
                };
                match Client::reconnect(
                    self.sh.servers[self.at].as_str(),
                    self.session,
                    &self.passwd,
                    timeout,
                    self.last_zxid,
                ) {
                    Ok(c) => {
                        let session = self.session;
                        if self.adopt(c).is_ok() {
                            self.sh.rec.record_whole(
                                self.id,
                                session,
                                self.server(),
                                &call,
                                t0,
                                Done::Ok(Reply::Done, None),
                            );
                        } else {
                            self.client = None;
                        }
                        continue;
                    }
                    // The handshake's refusal has no OS error; a refused TCP connect has.
                    Err(e)
                        if e.kind() == io::ErrorKind::ConnectionRefused
                            && e.raw_os_error().is_none() =>
                    {
                        let code = ErrorCode::SessionExpired.code();
                        self.sh.rec.record_whole(
                            self.id,
                            self.session,
                            self.server(),
                            &call,
                            t0,
                            Done::Fail(Reply::Error { code }, None),
                        );
                        self.session = 0;
                    }
                    Err(_) => {
                        self.move_on();
                        std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS));
                        continue;
                    }
                }
            }
            match Client::connect(self.sh.servers[self.at].as_str(), timeout) {
                Ok(c) => {
                    if self.adopt(c).is_err() {
                        self.client = None;
                    }
                }
                Err(_) => {
                    self.move_on();
                    std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS));
                }
            }
        }
        true
    }

    /// Creates the current window's keys (value 0) with one multi; NodeExists means
    /// another worker (or an earlier try) did. False when it has to be tried again.
    fn ensure_window(&mut self) -> bool {
        let Some(c) = self.client.as_mut() else {
            return false;
        };
        let first = self.window * KEYS_PER_WINDOW;
        let ops = (first..first + KEYS_PER_WINDOW)
            .map(|k| MultiOp::Create(create_req(self.paths.key(k), b"0", CreateMode::Persistent)))
            .collect();
        let created = match c.call(&Request::Multi(MultiRequest { ops })) {
            Ok((h, Response::Multi(m))) if h.err == 0 => {
                self.last_zxid = self.last_zxid.max(h.zxid);
                match m.first_error() {
                    None => true,
                    Some(code) => code == ErrorCode::NodeExists.code(),
                }
            }
            _ => false,
        };
        if created {
            self.window_ready = true;
        } else {
            // A dropped connection, or an error reply (the session moved or expired
            // under a fault): reconnect and try again, paced, until the stop.
            self.client = None;
            std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS));
        }
        created
    }

    /// Runs one op and records it.
    fn run_op(&mut self, call: Call) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let (process, session) = (self.id, self.session);
        let sh = self.sh;
        let server = sh.servers[self.at].as_str();
        let op = self.sh.rec.invoke(process, session, server, &call);
        let result = perform(c, &self.paths, &call);
        let done = match result {
            Ok((zxid, Ok(reply))) => {
                self.last_zxid = self.last_zxid.max(zxid);
                self.learn(&call, &reply);
                Done::Ok(reply, Some(zxid))
            }
            Ok((zxid, Err(code))) => {
                self.last_zxid = self.last_zxid.max(zxid);
                Done::Fail(Reply::Error { code }, Some(zxid))
            }
            Err(e) => {
                self.client = None;
                Done::Unknown(e.to_string())
            }
        };
        if matches!(call, Call::Close) {
            // Closed (or unknown): either way this session is done with.
            self.client = None;
            if matches!(done, Done::Ok(..)) {
                self.session = 0;
            }
        }
        self.sh.rec.complete(op, process, session, server, done);
        self.ops += 1;
    }

    fn learn(&mut self, call: &Call, reply: &Reply) {
        match (call, reply) {
            (
                Call::Read { key }
                | Call::SyncRead { key }
                | Call::Write { key, .. }
                | Call::Cas { key, .. },
                Reply::Value { version, .. } | Reply::Written { version, .. },
            ) => {
                self.versions.insert(*key, *version);
            }
            (Call::Multi { writes }, Reply::MultiWritten { versions, .. }) => {
                for ((k, _), v) in writes.iter().zip(versions) {
                    self.versions.insert(*k, *v);
                }
            }
            (Call::CreateEph { .. }, Reply::Created { .. }) => self.eph_in_session += 1,
            _ => {}
        }
    }

    /// A `Silence` fault: drop the connection without closing the session (the server
    /// must expire it) and send nothing until the silence ends or the workload stops.
    fn keep_silent(&mut self) {
        let until = self.sh.silent_until_ns[self.id as usize].load(Ordering::Acquire);
        if self.sh.rec.now_ns() >= until {
            return;
        }
        // The silence abandons a live session: one the worker had just closed (at a
        // window's end) would leave the server nothing to expire.
        if self.client.is_none() && !self.ensure_connected() {
            return;
        }
        drop(self.client.take());
        while self.sh.rec.now_ns() < until && !self.sh.stopped() {
            std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS));
        }
    }

    /// The worker's whole life: ops until the stop, then close its session.
    pub fn run(mut self) -> u64 {
        let mut pending: Option<Call> = None;
        while !self.sh.stopped() && self.ops < self.sh.cfg.ops_per_worker_max {
            self.keep_silent();
            if !self.ensure_connected() {
                break;
            }
            if !self.window_ready && !self.ensure_window() {
                continue;
            }
            // The next op is drawn once; it waits over a reconnect (and over a move to
            // the next window) so the schedule does not depend on faults.
            let call = match pending.take() {
                Some(c) => c,
                None => self.next_call(),
            };
            if !self.window_ready {
                pending = Some(call);
                continue;
            }
            self.run_op(call);
        }
        if self.client.is_some() {
            self.run_op(Call::Close);
        }
        self.ops
    }
}

/// Reads every key of windows `0..=max_window`, the ephemerals' parent and every
/// sequential parent from a fresh session at each of `addrs` in turn (process
/// [`FINAL_PROCESS`] + the server's index), so the checker can see that the servers
/// agree.
pub fn final_reads(
    addrs: &[String],
    cfg: &WorkloadConfig,
    rec: &Recorder,
    max_window: u32,
) -> Result<(), String> {
    for (i, addr) in addrs.iter().enumerate() {
        final_reads_at(addr, FINAL_PROCESS + i as u32, cfg, rec, max_window)?;
    }
    Ok(())
}

/// [`final_reads`] for plain chain replication, where only the chain's tail takes
/// clients: at the first of `addrs` that takes a session (the others close
/// connections, as a server without a quorum does), tried in turn until
/// `FINAL_CONNECT_WAIT_MS_MAX` passes.
pub fn final_reads_at_tail(
    addrs: &[String],
    cfg: &WorkloadConfig,
    rec: &Recorder,
    max_window: u32,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(FINAL_CONNECT_WAIT_MS_MAX);
    loop {
        for (i, addr) in addrs.iter().enumerate() {
            if Client::connect(addr.as_str(), cfg.session_timeout_ms).is_ok() {
                return final_reads_at(addr, FINAL_PROCESS + i as u32, cfg, rec, max_window);
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("final reads: no server of {addrs:?} takes clients"));
        }
        std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS));
    }
}

/// [`setup`] through the first of `addrs` that takes it (chain replication: the tail).
pub fn setup_anywhere(addrs: &[String], cfg: &WorkloadConfig) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(FINAL_CONNECT_WAIT_MS_MAX);
    loop {
        let mut err = String::new();
        for a in addrs {
            match setup(a, cfg) {
                Ok(()) => return Ok(()),
                Err(e) => err = format!("setting up on {a}: {e}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS));
    }
}

fn final_reads_at(
    addr: &str,
    process: u32,
    cfg: &WorkloadConfig,
    rec: &Recorder,
    max_window: u32,
) -> Result<(), String> {
    let paths = Paths {
        root: cfg.root.clone(),
    };
    let connect = || -> Result<Client, String> {
        let deadline = Instant::now() + Duration::from_millis(FINAL_CONNECT_WAIT_MS_MAX);
        loop {
            match Client::connect(addr, cfg.session_timeout_ms) {
                Ok(c) => {
                    c.set_read_timeout(Some(cfg.reply_timeout))
                        .map_err(|e| e.to_string())?;
                    return Ok(c);
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("final reads: connecting to {addr}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(RECONNECT_POLL_MS)),
            }
        }
    };
    let mut c = connect()?;
    let mut calls: Vec<Call> = (0..(max_window + 1) * KEYS_PER_WINDOW)
        .map(|key| Call::SyncRead { key })
        .collect();
    calls.push(Call::ListEph);
    calls.extend((0..SEQ_PARENTS).map(|parent| Call::ListSeq { parent }));
    for call in calls {
        let mut tries = 0;
        loop {
            tries += 1;
            let session = c.session_id();
            let op = rec.invoke(process, session, addr, &call);
            match perform(&mut c, &paths, &call) {
                Ok((zxid, Ok(reply))) => {
                    rec.complete(op, process, session, addr, Done::Ok(reply, Some(zxid)));
                    break;
                }
                Ok((zxid, Err(code))) => {
                    rec.complete(
                        op,
                        process,
                        session,
                        addr,
                        Done::Fail(Reply::Error { code }, Some(zxid)),
                    );
                    break;
                }
                Err(e) => {
                    rec.complete(op, process, session, addr, Done::Unknown(e.to_string()));
                    if tries >= FINAL_TRIES_MAX {
                        return Err(format!("final reads: {e} ({tries} tries)"));
                    }
                    c = connect()?;
                }
            }
        }
    }
    let _ = c.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared<'a>(cfg: &'a WorkloadConfig, rec: &'a Recorder) -> Shared<'a> {
        Shared::new(cfg, vec!["127.0.0.1:1".into()], rec)
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_keys_stay_bounded() {
        let cfg = WorkloadConfig::new(42, 3, Duration::from_secs(1));
        let rec = Recorder::new(Instant::now(), Box::new(io::sink()));
        let sh = shared(&cfg, &rec);
        let draw = |id| {
            let mut w = Worker::new(id, &sh);
            (0..500).map(|_| w.next_call()).collect::<Vec<Call>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let mut per_key: HashMap<u32, u32> = HashMap::new();
        let mut values = std::collections::HashSet::new();
        for call in draw(0) {
            for k in call.keys() {
                *per_key.entry(k).or_default() += 1;
            }
            match call {
                Call::Write { value, .. } | Call::Cas { value, .. } => {
                    assert!(values.insert(value))
                }
                Call::Multi { writes } => {
                    assert_ne!(writes[0].0, writes[1].0);
                    for (_, v) in writes {
                        assert!(values.insert(v));
                    }
                }
                _ => {}
            }
        }
        assert!(per_key.values().all(|n| *n <= OPS_PER_KEY_PER_WORKER_MAX));
        assert!(
            per_key.len() > KEYS_PER_WINDOW as usize,
            "moves through windows"
        );
    }
}
