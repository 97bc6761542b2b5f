//! Runs a benchmark: sessions over worker threads, setup, the load loop, cleanup.
//!
//! Phases (every worker passes each barrier exactly once, even after an error, so one
//! failing worker cannot hang the others):
//! 1. connect: the orchestrator connects one [`Driver`] per worker (sessions dealt out
//!    `g % workers`, each bound to a server by the spread policy);
//! 2. setup: worker 0 creates the parents, then every worker creates its share of keys
//!    (`NodeExists` is fine: a previous `--no-cleanup` run);
//! 3. load: each worker runs its loop from its own `t0`: warm-up, then the measured
//!    window, stopping at `--duration-s` or its share of `--max-ops`, then drains;
//! 4. cleanup: each worker deletes what it made; worker 0 removes the parents last.
//!
//! Load loops (see `stats` for the coordinated-omission method):
//! - closed: every session keeps `inflight` requests outstanding; a completion frees a
//!   slot, which is refilled at once (intended = sent = now);
//! - open: worker `w` of `W` sends at `rate / W` on a fixed schedule offset by `w / rate`
//!   (so the merged schedule is evenly spaced), round-robin over its sessions; a request's
//!   latency counts from its intended time even if the driver sent it late;
//! - watch fan-out: session 0 writes, the others watch; each round every watcher arms a
//!   data watch (getData+watch), then the writer sets the node; the latency of each
//!   event is from the set being sent to the event arriving. With `--rate` the writes
//!   are due on a schedule; a write that must wait for the watchers to re-arm counts
//!   that wait (the schedule was not met), as coordinated-omission correction demands;
//! - lock: every session loops acquire (create ephemeral-sequential, getChildren, wait
//!   for the predecessor's deletion via exists+watch) and release (delete); the latency
//!   is from the create being sent to holding the lock.
//!
//! Measured window: ops *intended* in `[warm_end, end)` are measured. Its length is
//! `measured ops × period` in open loop (exact schedule time) and "last measured
//! completion − warm_end" in closed loop and the recipes.

use std::collections::HashMap;
use std::sync::Barrier;
use std::sync::mpsc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use transport::jute::{CreateMode, ErrorCode, EventType};

use crate::config::{Load, RunConfig, Spread};
use crate::driver::{
    Completion, Connector, Driver, DriverError, Event, NANOS_PER_S, Nanos, Reply, SessionPlan,
};
use crate::progress::{ProgressLine, ProgressSink};
use crate::stats::{
    INTERVAL_NS, IntervalSample, KindStats, Percentiles, Recorder, RunStats, Sample, new_hist,
};
use crate::workload::{
    LOCK_PARENT, Op, OpGen, OpKind, WATCH_NODE, WorkloadKind, WorkloadSpec, cleanup_ops,
    parent_paths, setup_ops,
};

/// Most requests one worker keeps outstanding in open loop; beyond it, due requests
/// wait (their latency still counts from their intended time).
pub const OPEN_OUTSTANDING_MAX: usize = 100_000;
/// Longest wait for outstanding replies after the end; what is left counts as errors.
pub const DRAIN_NS_MAX: Nanos = 30 * NANOS_PER_S;
/// Longest wait for any reply during setup or cleanup.
pub const BATCH_STALL_NS_MAX: Nanos = 30 * NANOS_PER_S;
/// Requests in flight per worker during setup and cleanup.
pub const BATCH_WINDOW_MAX: usize = 256;
/// Requests in flight per session during setup and cleanup (pipelined, so creating
/// 100k keys takes seconds, not minutes).
pub const BATCH_INFLIGHT_PER_SESSION: usize = 32;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("worker {worker}: {error}")]
    Driver { worker: usize, error: DriverError },
    #[error("{0}")]
    Setup(String),
}

/// One worker's share of the run.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub worker: usize,
    pub workers: usize,
    pub spec: WorkloadSpec,
    pub seed: u64,
    pub load: Load,
    /// Total rate over all workers (open loop).
    pub warmup_ns: Nanos,
    pub duration_ns: Nanos,
    /// This worker's share of `--max-ops`.
    pub max_ops: Option<u64>,
    pub cleanup: bool,
}

/// What a worker hands back at the end.
#[derive(Debug)]
pub struct WorkerResult {
    pub kinds: std::collections::BTreeMap<OpKind, KindStats>,
    pub measured_ns: Nanos,
    /// Cleanup problems (the numbers stand; the server may keep some znodes).
    pub warnings: Vec<String>,
}

/// Messages from workers to the orchestrator.
#[derive(Debug)]
enum WorkerMsg {
    Interval(usize, IntervalSample),
    Done(usize, Result<WorkerResult, DriverError>),
}

/// The whole run's outcome.
#[derive(Debug)]
pub struct RunOutcome {
    pub stats: RunStats,
    pub warnings: Vec<String>,
}

/// Binds each of `sessions` global sessions to a server.
pub fn spread_sessions(
    servers: &[String],
    sessions: usize,
    spread: Spread,
    seed: u64,
) -> Vec<SessionPlan> {
    debug_assert!(
        !servers.is_empty(),
        "connect string parsing requires a server"
    );
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_5e55);
    (0..sessions)
        .map(|g| {
            let i = match spread {
                Spread::RoundRobin => g % servers.len(),
                Spread::Random => rng.random_range(0..servers.len()),
            };
            SessionPlan {
                global: g,
                server: servers[i].clone(),
            }
        })
        .collect()
}

/// Runs `cfg` against the systems `connector` reaches; progress goes to `progress`.
pub fn run<C>(
    cfg: &RunConfig,
    connector: &C,
    progress: &mut dyn ProgressSink,
) -> Result<RunOutcome, RunError>
where
    C: Connector,
    C::Driver: Send,
{
    let workers = cfg.workers();
    let plans = spread_sessions(&cfg.connect.servers, cfg.sessions, cfg.spread, cfg.seed);
    let mut drivers = Vec::with_capacity(workers);
    for w in 0..workers {
        let mine: Vec<SessionPlan> = plans
            .iter()
            .filter(|p| p.global % workers == w)
            .cloned()
            .collect();
        drivers.push(
            connector
                .connect(w, &mine)
                .map_err(|error| RunError::Driver { worker: w, error })?,
        );
    }
    // Parents first, by one driver, before any worker creates keys below them.
    let parents: Vec<Op> = parent_paths()
        .iter()
        .map(|p| Op::new(OpKind::Create, *p))
        .collect();
    run_batch(&mut drivers[0], parents, 1, ErrorCode::NodeExists)
        .map_err(|e| RunError::Setup(format!("creating {}: {e}", parent_paths()[0])))?;

    let barrier = Barrier::new(workers);
    let (tx, rx) = mpsc::channel();
    let warmup_intervals = cfg.warmup_s * NANOS_PER_S / INTERVAL_NS;
    let mut agg = Aggregator::new(workers, warmup_intervals);
    let mut results: Vec<Option<Result<WorkerResult, DriverError>>> =
        (0..workers).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (w, driver) in drivers.into_iter().enumerate() {
            let plan = worker_plan(cfg, w, workers);
            let tx = tx.clone();
            let barrier = &barrier;
            scope.spawn(move || {
                let r = worker(driver, &plan, barrier, &tx);
                // The orchestrator may be gone only if it panicked; nothing to do then.
                let _ = tx.send(WorkerMsg::Done(w, r));
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                WorkerMsg::Interval(w, s) => agg.add(w, s, progress),
                WorkerMsg::Done(w, r) => {
                    agg.done(w, progress);
                    results[w] = Some(r);
                }
            }
        }
    });
    let mut stats = agg.into_stats();
    let mut warnings = Vec::new();
    for (w, r) in results.into_iter().enumerate() {
        let r = r
            .unwrap_or_else(|| Err(DriverError("worker ended without a result".into())))
            .map_err(|error| RunError::Driver { worker: w, error })?;
        stats.merge_kinds(&r.kinds);
        stats.measured_ns = stats.measured_ns.max(r.measured_ns);
        warnings.extend(r.warnings);
    }
    Ok(RunOutcome { stats, warnings })
}

fn worker_plan(cfg: &RunConfig, w: usize, workers: usize) -> WorkerPlan {
    let share = |n: u64| n / workers as u64 + u64::from((w as u64) < n % workers as u64);
    WorkerPlan {
        worker: w,
        workers,
        spec: cfg.workload.clone(),
        seed: cfg.seed,
        load: cfg.load,
        warmup_ns: cfg.warmup_s * NANOS_PER_S,
        duration_ns: cfg.duration_s * NANOS_PER_S,
        max_ops: cfg.max_ops.map(share),
        cleanup: cfg.cleanup,
    }
}

/// Merges workers' intervals and emits each second once every worker has closed it.
struct Aggregator {
    stats: RunStats,
    /// Per worker: intervals `< upto[w]` are in.
    upto: Vec<u64>,
    emitted: u64,
    so_far: hdrhistogram::Histogram<u64>,
}

impl Aggregator {
    fn new(workers: usize, warmup_intervals: u64) -> Self {
        Aggregator {
            stats: RunStats::new(warmup_intervals),
            upto: vec![0; workers],
            emitted: 0,
            so_far: new_hist(),
        }
    }

    fn add(&mut self, w: usize, s: IntervalSample, progress: &mut dyn ProgressSink) {
        self.upto[w] = self.upto[w].max(s.index + 1);
        self.stats.merge_interval(&s);
        self.emit(progress);
    }

    fn done(&mut self, w: usize, progress: &mut dyn ProgressSink) {
        self.upto[w] = u64::MAX;
        self.emit(progress);
    }

    fn emit(&mut self, progress: &mut dyn ProgressSink) {
        let ready = self
            .upto
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
            .min(self.stats.intervals.len() as u64);
        while self.emitted < ready {
            let s = &self.stats.intervals[self.emitted as usize];
            let warmup = s.index < self.stats.first_measured_interval;
            if !warmup {
                self.so_far
                    .add(&s.hist)
                    .expect("auto-resizing histograms add");
            }
            progress.interval(&ProgressLine {
                second: s.index + 1,
                warmup,
                ops: s.ops,
                errors: s.errors,
                p99_us_so_far: Percentiles::of(&self.so_far).p99_us,
            });
            self.emitted += 1;
        }
    }

    fn into_stats(self) -> RunStats {
        self.stats
    }
}

/// One worker: its setup share, the barrier, the load loop, cleanup, close.
fn worker<D: Driver>(
    mut d: D,
    plan: &WorkerPlan,
    barrier: &Barrier,
    tx: &mpsc::Sender<WorkerMsg>,
) -> Result<WorkerResult, DriverError> {
    let ops_gen = OpGen::new(&plan.spec, plan.seed, plan.worker, plan.workers);
    let window = (d.sessions() * BATCH_INFLIGHT_PER_SESSION).clamp(1, BATCH_WINDOW_MAX);
    let setup = run_batch(
        &mut d,
        setup_ops(&plan.spec, ops_gen.value(), plan.worker, plan.workers),
        window,
        ErrorCode::NodeExists,
    )
    .map_err(|e| DriverError(format!("setup: {e}")));
    barrier.wait(); // everyone's keys exist (or someone failed) before anyone measures
    let mut send = |s: IntervalSample| {
        // Only fails when the orchestrator is gone; the run result still comes back.
        let _ = tx.send(WorkerMsg::Interval(plan.worker, s));
    };
    let load = setup.and_then(|()| load(&mut d, plan, ops_gen, &mut send));
    barrier.wait(); // nobody deletes keys another worker may still be reading
    let mut warnings = Vec::new();
    if plan.cleanup {
        let created = load.as_ref().map_or(0, |l| l.created);
        let ops = cleanup_ops(&plan.spec, created, plan.worker, plan.workers);
        if let Err(e) = run_batch(&mut d, ops, window, ErrorCode::NoNode) {
            warnings.push(format!("worker {}: cleanup: {e}", plan.worker));
        }
    }
    barrier.wait(); // every worker's nodes are gone before the parents go
    if plan.cleanup && plan.worker == 0 {
        let parents = parent_paths()
            .iter()
            .rev()
            .map(|p| Op::new(OpKind::Delete, *p))
            .collect::<Vec<_>>();
        if let Err(e) = run_batch(&mut d, parents, 1, ErrorCode::NoNode) {
            warnings.push(format!("cleanup of {}: {e}", parent_paths()[0]));
        }
    }
    let closed = d.close();
    let mut load = load?;
    closed?;
    load.result.warnings.extend(warnings);
    Ok(load.result)
}

/// The load phase's outcome.
struct Loaded {
    result: WorkerResult,
    /// Nodes the `create` workload made (cleanup removes them).
    created: u64,
}

/// The load phase of one worker: the workload's loop, then its last intervals.
fn load<D: Driver>(
    d: &mut D,
    plan: &WorkerPlan,
    mut ops_gen: OpGen,
    send: &mut dyn FnMut(IntervalSample),
) -> Result<Loaded, DriverError> {
    let (mut recorder, measured_ns, warnings) = match plan.spec.kind {
        WorkloadKind::WatchFanout => {
            let (r, m) = run_watch_fanout(d, plan, send)?;
            (r, m, Vec::new())
        }
        WorkloadKind::Lock => run_lock(d, plan, send)?,
        _ => {
            let (r, m) = run_basic(d, plan, &mut ops_gen, send)?;
            (r, m, Vec::new())
        }
    };
    recorder.advance(d.now());
    let (kinds, last) = recorder.finish();
    last.into_iter().for_each(send);
    Ok(Loaded {
        result: WorkerResult {
            kinds,
            measured_ns,
            warnings,
        },
        created: ops_gen.created(),
    })
}

/// Submits `ops` with at most `window` in flight over the driver's sessions and waits for
/// all; replies with `ok_error` count as success (NodeExists in setup, NoNode in cleanup).
pub fn run_batch<D: Driver>(
    d: &mut D,
    ops: impl IntoIterator<Item = Op>,
    window: usize,
    ok_error: ErrorCode,
) -> Result<(), DriverError> {
    debug_assert!(
        window >= 1 && d.sessions() >= 1,
        "a batch needs a session and a slot"
    );
    let mut ops = ops.into_iter();
    let (mut outstanding, mut tag, mut failed, mut first) = (0usize, 0u64, 0u64, None);
    let mut out = Vec::new();
    loop {
        while outstanding < window {
            let Some(op) = ops.next() else { break };
            d.submit(tag as usize % d.sessions(), tag, &op)?;
            tag += 1;
            outstanding += 1;
        }
        if outstanding == 0 {
            break;
        }
        let deadline = d.now() + BATCH_STALL_NS_MAX;
        d.poll(deadline, &mut out)?;
        if out.is_empty() && d.now() >= deadline {
            return Err(DriverError(format!(
                "no reply for {}s",
                BATCH_STALL_NS_MAX / NANOS_PER_S
            )));
        }
        for c in out.drain(..) {
            if let Event::Reply { result, .. } = c.event {
                outstanding -= 1;
                match result {
                    Ok(_) => {}
                    Err(e) if e == ok_error => {}
                    Err(e) => {
                        failed += 1;
                        first.get_or_insert(e);
                    }
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(DriverError(format!(
            "{failed} requests failed, first with {e:?}"
        ))),
    }
}

/// The next interval boundary after `now` for a worker that started at `t0`.
fn next_boundary(t0: Nanos, now: Nanos) -> Nanos {
    t0 + ((now.saturating_sub(t0)) / INTERVAL_NS + 1) * INTERVAL_NS
}

/// State shared by the load loops.
struct Window {
    t0: Nanos,
    warm_end: Nanos,
    end: Nanos,
    max_ops: Option<u64>,
    issued_measured: u64,
    stopped: bool,
    drain_deadline: Nanos,
    last_measured_done: Nanos,
}

impl Window {
    fn new(t0: Nanos, plan: &WorkerPlan) -> Self {
        let warm_end = t0 + plan.warmup_ns;
        Window {
            t0,
            warm_end,
            end: warm_end + plan.duration_ns,
            max_ops: plan.max_ops,
            issued_measured: 0,
            stopped: false,
            drain_deadline: Nanos::MAX,
            last_measured_done: warm_end,
        }
    }

    /// Whether an op intended at `t` may be issued, and whether it is measured.
    fn admit(&mut self, t: Nanos) -> Option<bool> {
        if self.stopped || t >= self.end {
            self.stop(t);
            return None;
        }
        let measured = t >= self.warm_end;
        if measured {
            if self.max_ops.is_some_and(|m| self.issued_measured >= m) {
                self.stop(t);
                return None;
            }
            self.issued_measured += 1;
        }
        Some(measured)
    }

    fn stop(&mut self, now: Nanos) {
        if !self.stopped {
            self.stopped = true;
            self.drain_deadline = now.saturating_add(DRAIN_NS_MAX);
        }
    }

    fn completed(&mut self, measured: bool, at: Nanos) {
        if measured {
            self.last_measured_done = self.last_measured_done.max(at);
        }
    }

    fn closed_loop_ns(&self) -> Nanos {
        self.last_measured_done - self.warm_end
    }

    /// Poll deadline: the next interval boundary, and the end while still issuing.
    fn deadline(&self, now: Nanos) -> Nanos {
        let b = next_boundary(self.t0, now);
        if self.stopped {
            b.min(self.drain_deadline)
        } else {
            b.min(self.end.max(now + 1))
        }
    }
}

/// A request the runner waits on.
#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: OpKind,
    intended: Nanos,
    sent: Nanos,
    measured: bool,
}

/// Records every still-outstanding measured request as timed out (they were never
/// answered within the drain; dropping them would hide the worst latencies).
fn time_out(rec: &mut Recorder, pending: HashMap<u64, Pending>, now: Nanos) {
    for p in pending.into_values() {
        rec.record(Sample {
            kind: p.kind,
            intended: p.intended,
            sent: p.sent,
            done: now.max(p.sent),
            result: Err(ErrorCode::OperationTimeout.code()),
            measured: p.measured,
        });
    }
}

/// The open-loop schedule of one worker.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    period: Nanos,
    next: Nanos,
    /// Round-robin session counter.
    rr: usize,
}

/// One worker's basic (closed- or open-loop) load: the requests it waits on and how it
/// issues the next.
struct Basic<'a> {
    ops_gen: &'a mut OpGen,
    win: Window,
    rec: Recorder,
    pending: HashMap<u64, Pending>,
    tag: u64,
    /// `Some` in open loop.
    schedule: Option<Schedule>,
}

impl Basic<'_> {
    /// Issues the next op on `session`, due at `intended`, if the window admits it.
    fn issue<D: Driver>(
        &mut self,
        d: &mut D,
        session: usize,
        intended: Nanos,
    ) -> Result<(), DriverError> {
        let Some(measured) = self.win.admit(intended) else {
            return Ok(());
        };
        let Some(op) = self.ops_gen.next_op() else {
            self.win.issued_measured -= u64::from(measured);
            self.win.stop(intended);
            return Ok(());
        };
        d.submit(session, self.tag, &op)?;
        let p = Pending {
            kind: op.kind,
            intended,
            sent: d.now(),
            measured,
        };
        self.pending.insert(self.tag, p);
        self.tag += 1;
        Ok(())
    }

    /// Open loop: issues every request due by now (up to the outstanding cap).
    fn issue_due<D: Driver>(&mut self, d: &mut D) -> Result<(), DriverError> {
        let Some(mut sch) = self.schedule else {
            return Ok(());
        };
        if !self.win.stopped && sch.next >= self.win.end {
            self.win.stop(sch.next); // the schedule is done, even if sends were held back
        }
        let now = d.now();
        while !self.win.stopped && sch.next <= now && self.pending.len() < OPEN_OUTSTANDING_MAX {
            self.issue(d, sch.rr % d.sessions(), sch.next)?;
            sch.rr += 1;
            sch.next += sch.period;
        }
        self.schedule = Some(sch);
        Ok(())
    }

    /// The poll deadline: interval boundary, end, and the next scheduled send.
    fn deadline(&self, now: Nanos) -> Nanos {
        let d = self.win.deadline(now);
        match self.schedule {
            Some(sch) if !self.win.stopped && self.pending.len() < OPEN_OUTSTANDING_MAX => {
                d.min(sch.next.max(now))
            }
            _ => d,
        }
    }

    /// Records a completion; in closed loop, refills the freed slot.
    fn complete<D: Driver>(&mut self, d: &mut D, c: Completion) -> Result<(), DriverError> {
        let Event::Reply {
            session,
            tag,
            result,
        } = c.event
        else {
            return Ok(());
        };
        let Some(p) = self.pending.remove(&tag) else {
            return Ok(());
        };
        self.win.completed(p.measured, c.at);
        self.rec.record(Sample {
            kind: p.kind,
            intended: p.intended,
            sent: p.sent,
            done: c.at.max(p.sent),
            result: result.map(|_| ()).map_err(ErrorCode::code),
            measured: p.measured,
        });
        if self.schedule.is_none() {
            let now = d.now();
            self.issue(d, session, now)?;
        }
        Ok(())
    }

    /// Length of the measured window (see the module docs).
    fn measured_ns(&self) -> Nanos {
        match self.schedule {
            Some(sch) => self.win.issued_measured * sch.period,
            None => self.win.closed_loop_ns(),
        }
    }
}

/// Closed- and open-loop load of the basic workloads.
fn run_basic<D: Driver>(
    d: &mut D,
    plan: &WorkerPlan,
    ops_gen: &mut OpGen,
    send: &mut dyn FnMut(IntervalSample),
) -> Result<(Recorder, Nanos), DriverError> {
    let t0 = d.now();
    // Open loop: this worker's period, and its phase in the merged schedule.
    let schedule = match plan.load {
        Load::Open { rate } => Some(Schedule {
            period: (plan.workers as f64 * NANOS_PER_S as f64 / rate).max(1.0) as Nanos,
            next: t0 + (plan.worker as f64 * NANOS_PER_S as f64 / rate) as Nanos,
            rr: 0,
        }),
        Load::Closed { .. } => None,
    };
    let mut b = Basic {
        ops_gen,
        win: Window::new(t0, plan),
        rec: Recorder::new(t0),
        pending: HashMap::new(),
        tag: 0,
        schedule,
    };
    if let Load::Closed { inflight } = plan.load {
        for _ in 0..inflight {
            for s in 0..d.sessions() {
                b.issue(d, s, t0)?;
            }
        }
    }
    let mut out = Vec::new();
    loop {
        b.issue_due(d)?;
        let now = d.now();
        if b.win.stopped && (b.pending.is_empty() || now >= b.win.drain_deadline) {
            time_out(&mut b.rec, std::mem::take(&mut b.pending), now);
            break;
        }
        d.poll(b.deadline(now), &mut out)?;
        for c in out.drain(..) {
            b.complete(d, c)?;
        }
        let now = d.now();
        if b.schedule.is_none() && now >= b.win.end {
            b.win.stop(now);
        }
        b.rec.advance(now);
        b.rec.take_closed().into_iter().for_each(&mut *send);
    }
    let measured_ns = b.measured_ns();
    Ok((b.rec, measured_ns))
}

/// The write of a fan-out round: when it was due and sent, whether it is measured.
#[derive(Debug, Clone, Copy)]
struct RoundWrite {
    intended: Nanos,
    sent: Nanos,
    measured: bool,
}

/// One fan-out run: session 0 writes, sessions `1..=watchers` watch.
struct Fanout {
    win: Window,
    rec: Recorder,
    watchers: usize,
    /// Open-loop period between writes (0: closed loop).
    period: Nanos,
    next_write: Nanos,
    /// Watchers still to arm / still to hear the round's event.
    to_arm: usize,
    to_hear: usize,
    write: Option<RoundWrite>,
    tag: u64,
    arm_op: Op,
    write_op: Op,
}

impl Fanout {
    /// Every watcher arms a data watch (getData + watch).
    fn arm<D: Driver>(&mut self, d: &mut D) -> Result<(), DriverError> {
        for s in 1..=self.watchers {
            d.submit(s, self.tag, &self.arm_op)?;
            self.tag += 1;
        }
        self.to_arm = self.watchers;
        Ok(())
    }

    /// The writer sets the node once every watcher is armed and the write is due.
    fn maybe_write<D: Driver>(&mut self, d: &mut D) -> Result<(), DriverError> {
        let now = d.now();
        let idle = self.to_arm == 0 && self.to_hear == 0 && self.write.is_none();
        if !idle || self.win.stopped || now < self.next_write {
            return Ok(());
        }
        let intended = if self.period > 0 {
            self.next_write
        } else {
            now
        };
        let Some(measured) = self.win.admit(intended) else {
            return Ok(());
        };
        d.submit(0, self.tag, &self.write_op)?;
        self.tag += 1;
        self.write = Some(RoundWrite {
            intended,
            sent: d.now(),
            measured,
        });
        self.to_hear = self.watchers;
        self.next_write = self.next_write.max(intended) + self.period;
        Ok(())
    }

    fn record(&mut self, w: RoundWrite, at: Nanos, result: Result<(), i32>) {
        self.win.completed(w.measured, at);
        let (intended, sent, measured) = (w.intended, w.sent, w.measured);
        let kind = OpKind::WatchEvent;
        self.rec.record(Sample {
            kind,
            intended,
            sent,
            done: at.max(sent),
            result,
            measured,
        });
    }

    /// Ends the round: the next one re-arms (unless the run is over).
    fn end_round<D: Driver>(&mut self, d: &mut D, rearm: bool) -> Result<(), DriverError> {
        self.write = None;
        self.to_hear = 0;
        if rearm && !self.win.stopped {
            self.arm(d)?;
        }
        Ok(())
    }

    fn on_event<D: Driver>(&mut self, d: &mut D, c: Completion) -> Result<(), DriverError> {
        match c.event {
            Event::Reply {
                session: 0,
                result: Err(e),
                ..
            } => {
                // The write failed: no event will come; the watches are still armed.
                if let Some(w) = self.write {
                    self.record(w, c.at, Err(e.code()));
                }
                self.end_round(d, false)?;
            }
            Event::Reply { session: 0, .. } => {}
            Event::Reply { result, .. } => {
                self.to_arm = self.to_arm.saturating_sub(1);
                if let Err(e) = result {
                    return Err(DriverError(format!(
                        "arming a watch on {WATCH_NODE}: {e:?}"
                    )));
                }
            }
            Event::Watch {
                kind: EventType::NodeDataChanged,
                ..
            } => {
                let Some(w) = self.write else {
                    return Ok(());
                };
                self.record(w, c.at, Ok(()));
                self.to_hear = self.to_hear.saturating_sub(1);
                if self.to_hear == 0 {
                    self.end_round(d, true)?;
                }
            }
            Event::Watch { .. } => {}
        }
        Ok(())
    }

    /// After the drain: events that never came count as timed out.
    fn time_out_missing(&mut self, now: Nanos) {
        if let Some(w) = self.write.take() {
            for _ in 0..self.to_hear {
                self.record(w, now, Err(ErrorCode::OperationTimeout.code()));
            }
        }
    }
}

/// Watch fan-out: session 0 writes `WATCH_NODE`, sessions `1..` watch it.
fn run_watch_fanout<D: Driver>(
    d: &mut D,
    plan: &WorkerPlan,
    send: &mut dyn FnMut(IntervalSample),
) -> Result<(Recorder, Nanos), DriverError> {
    let watchers = d.sessions().saturating_sub(1);
    if watchers == 0 {
        return Err(DriverError(
            "watch-fanout needs --sessions >= 2 (1 writer + watchers)".into(),
        ));
    }
    let t0 = d.now();
    let mut arm_op = Op::new(OpKind::Get, WATCH_NODE);
    arm_op.watch = true;
    let value: std::sync::Arc<[u8]> = vec![b'w'; plan.spec.value_bytes].into();
    let mut f = Fanout {
        win: Window::new(t0, plan),
        rec: Recorder::new(t0),
        watchers,
        period: match plan.load {
            Load::Open { rate } => (NANOS_PER_S as f64 / rate).max(1.0) as Nanos,
            Load::Closed { .. } => 0,
        },
        next_write: t0,
        to_arm: 0,
        to_hear: 0,
        write: None,
        tag: 0,
        arm_op,
        write_op: Op::new(OpKind::Set, WATCH_NODE).with_data(value),
    };
    f.arm(d)?;
    let mut out = Vec::new();
    loop {
        f.maybe_write(d)?;
        let now = d.now();
        if f.win.stopped && f.to_arm == 0 && f.write.is_none() {
            break;
        }
        if f.win.stopped && now >= f.win.drain_deadline {
            f.time_out_missing(now);
            break;
        }
        let mut deadline = f.win.deadline(now);
        if f.period > 0 && !f.win.stopped {
            deadline = deadline.min(f.next_write.max(now));
        }
        d.poll(deadline, &mut out)?;
        for c in out.drain(..) {
            f.on_event(d, c)?;
        }
        let now = d.now();
        if f.period == 0 && now >= f.win.end {
            f.win.stop(now);
        }
        f.rec.advance(now);
        f.rec.take_closed().into_iter().for_each(&mut *send);
    }
    Ok((f.rec, f.win.closed_loop_ns()))
}

/// Where one lock contender is.
#[derive(Debug, Clone, PartialEq)]
enum Contender {
    /// Ready to start an acquisition.
    Idle,
    /// Waiting for a reply (create, getChildren, exists or delete).
    Busy,
    /// Waiting for the deletion of this predecessor.
    Waiting(String),
}

/// One worker's lock contenders.
struct Lock {
    win: Window,
    rec: Recorder,
    state: Vec<Contender>,
    /// Per session: its node's name, once created.
    node: Vec<Option<String>>,
    /// Per session: when its acquisition started, and whether it is measured.
    started: Vec<(Nanos, bool)>,
    tag: u64,
}

impl Lock {
    fn submit<D: Driver>(&mut self, d: &mut D, s: usize, op: &Op) -> Result<(), DriverError> {
        d.submit(s, self.tag, op)?;
        self.tag += 1;
        Ok(())
    }

    /// Starts an acquisition on every idle contender the window admits.
    fn start_idle<D: Driver>(&mut self, d: &mut D) -> Result<(), DriverError> {
        let mut create = Op::new(OpKind::Create, format!("{LOCK_PARENT}/lock-"));
        create.mode = CreateMode::EphemeralSequential;
        for s in 0..self.state.len() {
            if self.state[s] != Contender::Idle || self.win.stopped {
                continue;
            }
            let now = d.now();
            if let Some(measured) = self.win.admit(now) {
                self.started[s] = (now, measured);
                self.state[s] = Contender::Busy;
                self.submit(d, s, &create)?;
            }
        }
        Ok(())
    }

    fn on_event<D: Driver>(&mut self, d: &mut D, c: Completion) -> Result<(), DriverError> {
        let children = Op::new(OpKind::Children, LOCK_PARENT);
        match c.event {
            Event::Reply {
                session: s, result, ..
            } => {
                let step = lock_step(&mut self.node[s], result)
                    .map_err(|e| DriverError(format!("lock recipe: {e}")))?;
                match step {
                    LockStep::List => self.submit(d, s, &children)?,
                    LockStep::Acquired => {
                        let (at, measured) = self.started[s];
                        self.win.completed(measured, c.at);
                        let done = c.at.max(at);
                        let result = Ok(());
                        let kind = OpKind::LockAcquire;
                        self.rec.record(Sample {
                            kind,
                            intended: at,
                            sent: at,
                            done,
                            result,
                            measured,
                        });
                        let mine = self.node[s].take().expect("acquired implies a node");
                        self.submit(
                            d,
                            s,
                            &Op::new(OpKind::Delete, format!("{LOCK_PARENT}/{mine}")),
                        )?;
                    }
                    LockStep::Watch(pred) => {
                        let mut ex = Op::new(OpKind::Exists, format!("{LOCK_PARENT}/{pred}"));
                        ex.watch = true;
                        self.state[s] = Contender::Waiting(pred);
                        self.submit(d, s, &ex)?;
                    }
                    LockStep::Released => self.state[s] = Contender::Idle,
                    LockStep::StillWaiting => {}
                }
            }
            Event::Watch {
                session: s, path, ..
            } => {
                if let Contender::Waiting(pred) = &self.state[s]
                    && path.ends_with(&format!("/{pred}"))
                {
                    self.state[s] = Contender::Busy;
                    self.submit(d, s, &children)?;
                }
            }
        }
        Ok(())
    }
}

/// Lock contention: every session loops acquire/release on `LOCK_PARENT`.
fn run_lock<D: Driver>(
    d: &mut D,
    plan: &WorkerPlan,
    send: &mut dyn FnMut(IntervalSample),
) -> Result<(Recorder, Nanos, Vec<String>), DriverError> {
    let n = d.sessions();
    let t0 = d.now();
    let mut l = Lock {
        win: Window::new(t0, plan),
        rec: Recorder::new(t0),
        state: vec![Contender::Idle; n],
        node: vec![None; n],
        started: vec![(0, false); n],
        tag: 0,
    };
    let mut out = Vec::new();
    loop {
        l.start_idle(d)?;
        let now = d.now();
        // After the end, admitted acquisitions (waiting ones too) finish and release.
        let active = l.state.iter().any(|c| *c != Contender::Idle);
        if l.win.stopped && (!active || now >= l.win.drain_deadline) {
            break;
        }
        d.poll(l.win.deadline(now), &mut out)?;
        for c in out.drain(..) {
            l.on_event(d, c)?;
        }
        let now = d.now();
        if now >= l.win.end {
            l.win.stop(now);
        }
        l.rec.advance(now);
        l.rec.take_closed().into_iter().for_each(&mut *send);
    }
    // Contenders still queued keep their nodes; remove them so cleanup can go on.
    let left: Vec<Op> = l
        .node
        .iter()
        .flatten()
        .map(|m| Op::new(OpKind::Delete, format!("{LOCK_PARENT}/{m}")))
        .collect();
    let mut warnings = Vec::new();
    if let Err(e) = run_batch(d, left, n.max(1), ErrorCode::NoNode) {
        warnings.push(format!("lock: removing queued contenders: {e}"));
    }
    Ok((l.rec, l.win.closed_loop_ns(), warnings))
}

/// What a lock contender does after a reply.
#[derive(Debug, Clone, PartialEq)]
enum LockStep {
    /// (After create, or a vanished predecessor) list the contenders.
    List,
    Acquired,
    /// Watch this predecessor.
    Watch(String),
    /// The release (delete) came back.
    Released,
    /// exists+watch came back with the predecessor present: wait for its event.
    StillWaiting,
}

/// The lock recipe's decision on one reply. `node` is the contender's own node name.
fn lock_step(
    node: &mut Option<String>,
    result: Result<Reply, ErrorCode>,
) -> Result<LockStep, String> {
    match result {
        Ok(Reply::Created(path)) => {
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            *node = Some(name);
            Ok(LockStep::List)
        }
        Ok(Reply::Children(mut kids)) => {
            let mine = node.as_deref().ok_or("children reply before create")?;
            kids.retain(|k| k.starts_with("lock-"));
            kids.sort_by_key(|k| seq_of(k));
            let pos = kids
                .iter()
                .position(|k| k == mine)
                .ok_or("own node missing from the children")?;
            Ok(if pos == 0 {
                LockStep::Acquired
            } else {
                LockStep::Watch(kids[pos - 1].clone())
            })
        }
        // exists on the predecessor found it: its deletion event will come.
        Ok(Reply::Done) if node.is_some() => Ok(LockStep::StillWaiting),
        Ok(Reply::Done) => Ok(LockStep::Released),
        // the predecessor went before our exists: look again.
        Err(ErrorCode::NoNode) if node.is_some() => Ok(LockStep::List),
        Err(e) => Err(format!("unexpected {e:?}")),
    }
}

/// The sequence number suffix of a sequential node's name (10 digits).
fn seq_of(name: &str) -> u64 {
    name.get(name.len().saturating_sub(10)..)
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;
    use crate::mock::{MockConfig, MockConnector};
    use crate::progress::CollectProgress;
    use crate::workload::KeyDist;

    const MS: Nanos = 1_000_000;

    fn cfg(workload: WorkloadKind, sessions: usize, load: Load) -> RunConfig {
        let mut c = RunConfig::defaults(1);
        c.target = Target::Mock;
        c.workload = WorkloadSpec {
            kind: workload,
            key_count: 50,
            dist: KeyDist::Uniform,
            value_bytes: 8,
        };
        c.sessions = sessions;
        c.load = load;
        c.warmup_s = 0;
        c.threads = 1;
        c
    }

    fn constant(latency: Nanos) -> MockConfig {
        MockConfig {
            read_ns: latency,
            write_ns: latency,
            jitter_ns: 0,
            ..MockConfig::default()
        }
    }

    fn go(c: &RunConfig, m: &MockConnector) -> (RunOutcome, CollectProgress) {
        let mut p = CollectProgress::default();
        let o = run(c, m, &mut p).expect("mock run");
        (o, p)
    }

    #[test]
    fn closed_loop_throughput_is_concurrency_over_latency() {
        let mut c = cfg(WorkloadKind::Get, 2, Load::Closed { inflight: 4 });
        c.max_ops = Some(8000);
        let m = MockConnector::new(constant(MS));
        let (o, p) = go(&c, &m);
        assert_eq!(o.stats.ops(), 8000);
        assert_eq!(o.stats.measured_ns, 1000 * MS);
        assert_eq!(o.stats.ops_per_s(), 8000.0);
        let pc = Percentiles::of(&o.stats.all());
        assert_eq!((pc.p50_us, pc.max_us), (1000, 1000));
        assert_eq!(p.lines.iter().map(|l| l.ops).sum::<u64>(), 8000);
        assert_eq!(m.paths(), ["/"], "cleanup removed keys and parents");
    }

    #[test]
    fn open_loop_keeps_the_rate() {
        let mut c = cfg(WorkloadKind::Get, 3, Load::Open { rate: 2000.0 });
        c.duration_s = 2;
        c.threads = 2;
        let m = MockConnector::new(constant(300_000));
        let (o, p) = go(&c, &m);
        assert_eq!(o.stats.ops(), 4000);
        assert_eq!(o.stats.ops_per_s(), 2000.0);
        let per_second: Vec<_> = p.lines.iter().map(|l| l.ops).collect();
        assert_eq!(per_second, [2000, 2000]);
    }

    /// The coordinated-omission check: at 1000 ops/s with 1 ms replies, the sender is
    /// blocked from 2 s to 3 s. The 1000 requests due in that second are sent at 3 s and
    /// answered at 3.001 s, so their corrected latencies are 1001 ms, 1000 ms, ... 2 ms;
    /// the other 4000 take 1 ms. Of 5000, p99 is the 4950th value: the 950th stalled one,
    /// 951 ms; max 1001 ms. Measured from the actual send, every op took 1 ms.
    #[test]
    fn stall_gives_the_expected_corrected_tail() {
        let mut c = cfg(WorkloadKind::Get, 1, Load::Open { rate: 1000.0 });
        c.duration_s = 5;
        let mut mock = constant(MS);
        mock.stalls = vec![(2_000 * MS, 3_000 * MS)];
        let (o, _) = go(&c, &MockConnector::new(mock));
        let h = o.stats.all();
        assert_eq!(h.len(), 5000);
        let p = Percentiles::of(&h);
        assert_eq!(p.p50_us, 1000);
        assert!(h.equivalent(p.p99_us, 951_000), "p99 {}", p.p99_us);
        assert!(
            h.equivalent(p.p90_us, 501_000),
            "p90 {}: the 500th stalled op",
            p.p90_us
        );
        assert!(h.equivalent(p.max_us, 1_001_000), "max {}", p.max_us);
        assert_eq!(
            h.count_between(1_001, 1_001_000),
            1000,
            "every op due in the stall is slow"
        );
        let naive = Percentiles::of(&o.stats.all_from_send());
        assert_eq!(
            (naive.p99_us, naive.max_us),
            (1000, 1000),
            "uncorrected hides the stall"
        );

        // Closed loop, same stall: one op sees it, the tail vanishes (the omission).
        let mut c = cfg(WorkloadKind::Get, 1, Load::Closed { inflight: 1 });
        c.max_ops = Some(5000);
        let mut mock = constant(MS);
        mock.stalls = vec![(2_000 * MS, 3_000 * MS)];
        let (o, _) = go(&c, &MockConnector::new(mock));
        let p = Percentiles::of(&o.stats.all());
        assert_eq!(p.p99_us, 1000);
    }

    #[test]
    fn create_and_delete_clean_up_after_themselves() {
        for w in [
            WorkloadKind::Create,
            WorkloadKind::Delete,
            WorkloadKind::Mix { read: 3, write: 1 },
        ] {
            let mut c = cfg(w, 4, Load::Closed { inflight: 2 });
            c.max_ops = Some(40);
            c.threads = 2;
            let m = MockConnector::new(MockConfig::default());
            let (o, _) = go(&c, &m);
            assert!(o.stats.errors().is_empty(), "{w}: {:?}", o.stats.errors());
            assert_eq!(o.stats.ops(), 40, "{w}");
            assert_eq!(m.paths(), ["/"], "{w}");
        }
    }

    #[test]
    fn delete_stops_when_keys_run_out() {
        let mut c = cfg(WorkloadKind::Delete, 2, Load::Closed { inflight: 3 });
        c.workload.key_count = 25;
        let (o, _) = go(&c, &MockConnector::new(MockConfig::default()));
        assert_eq!(o.stats.ops(), 25);
    }

    #[test]
    fn errors_are_counted_by_code() {
        let mut c = cfg(
            WorkloadKind::Mix { read: 1, write: 1 },
            2,
            Load::Closed { inflight: 2 },
        );
        c.max_ops = Some(100);
        let mut mock = constant(MS);
        mock.inject_error = Some((10, ErrorCode::ConnectionLoss));
        let (o, _) = go(&c, &MockConnector::new(mock));
        let e = o.stats.errors();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[&ErrorCode::ConnectionLoss.code()],
            10,
            "every 10th of 100 ops"
        );
        assert_eq!(o.stats.ops(), 90);
    }

    #[test]
    fn cleanup_problems_are_warnings() {
        let mut c = cfg(WorkloadKind::Get, 1, Load::Closed { inflight: 1 });
        c.max_ops = Some(10);
        let m = MockConnector::new(constant(MS));
        // Someone else's child under a key: setup's create meets NodeExists (fine), and
        // cleanup's delete meets NotEmpty (a warning; the numbers stand).
        let mut d = m
            .connect(
                0,
                &[SessionPlan {
                    global: 99,
                    server: "x:1".into(),
                }],
            )
            .unwrap();
        let ops = ["/ckbench", "/ckbench/k00000003", "/ckbench/k00000003/x"]
            .map(|p| Op::new(OpKind::Create, p));
        run_batch(&mut d, ops, 1, ErrorCode::NodeExists).unwrap();
        let (o, _) = go(&c, &m);
        assert_eq!(o.stats.ops(), 10);
        assert!(o.stats.errors().is_empty());
        assert!(
            o.warnings.iter().any(|w| w.contains("NotEmpty")),
            "{:?}",
            o.warnings
        );
    }

    #[test]
    fn watch_fanout_measures_each_event() {
        let mut c = cfg(WorkloadKind::WatchFanout, 5, Load::Closed { inflight: 1 });
        c.max_ops = Some(10); // 10 writes x 4 watchers
        let mock = MockConfig {
            read_ns: 100_000,
            write_ns: 400_000,
            jitter_ns: 0,
            event_ns: 50_000,
            fanout_step_ns: 2_000,
            ..MockConfig::default()
        };
        let m = MockConnector::new(mock);
        let (o, _) = go(&c, &m);
        let h = &o.stats.kinds[&OpKind::WatchEvent].hist;
        assert_eq!(h.len(), 40);
        // write reply at 400 us, events 50 us later, 2 us apart per watcher
        assert_eq!((h.min(), h.max()), (450, 456));
        assert_eq!(m.paths(), ["/"]);
    }

    #[test]
    fn watch_fanout_needs_a_watcher() {
        let mut c = cfg(WorkloadKind::WatchFanout, 1, Load::Closed { inflight: 1 });
        c.max_ops = Some(1);
        let m = MockConnector::new(MockConfig::default());
        let e = run(&c, &m, &mut CollectProgress::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--sessions >= 2"), "{e}");
        assert_eq!(m.paths(), ["/"], "cleanup still ran");
    }

    #[test]
    fn lock_contenders_take_turns() {
        let mut c = cfg(WorkloadKind::Lock, 4, Load::Closed { inflight: 1 });
        c.max_ops = Some(20);
        let m = MockConnector::new(constant(100_000));
        let (o, _) = go(&c, &m);
        let h = &o.stats.kinds[&OpKind::LockAcquire].hist;
        assert_eq!(h.len(), 20);
        // uncontended: create + children = 2 round trips; contended waits longer
        assert_eq!(h.min(), 200);
        assert!(h.max() > 200);
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        assert_eq!(m.paths(), ["/"]);
    }

    #[test]
    fn lock_step_decisions() {
        let mut node = None;
        assert_eq!(
            lock_step(
                &mut node,
                Ok(Reply::Created("/ckbench/lock/lock-0000000002".into()))
            ),
            Ok(LockStep::List)
        );
        let kids = vec![
            "lock-0000000003".to_string(),
            "lock-0000000002".into(),
            "lock-0000000001".into(),
        ];
        assert_eq!(
            lock_step(&mut node, Ok(Reply::Children(kids))),
            Ok(LockStep::Watch("lock-0000000001".into()))
        );
        assert_eq!(
            lock_step(&mut node, Err(ErrorCode::NoNode)),
            Ok(LockStep::List)
        );
        let kids = vec!["lock-0000000003".to_string(), "lock-0000000002".into()];
        assert_eq!(
            lock_step(&mut node, Ok(Reply::Children(kids))),
            Ok(LockStep::Acquired)
        );
        assert!(lock_step(&mut None, Ok(Reply::Children(vec![]))).is_err());
    }

    #[test]
    fn spread_round_robin_and_random_are_deterministic() {
        let servers = vec!["a:1".to_string(), "b:2".into(), "c:3".into()];
        let rr: Vec<_> = spread_sessions(&servers, 4, Spread::RoundRobin, 0)
            .into_iter()
            .map(|p| p.server)
            .collect();
        assert_eq!(rr, ["a:1", "b:2", "c:3", "a:1"]);
        let r1 = spread_sessions(&servers, 30, Spread::Random, 9);
        assert_eq!(r1, spread_sessions(&servers, 30, Spread::Random, 9));
        assert!(servers.iter().all(|s| r1.iter().any(|p| &p.server == s)));
    }
}
