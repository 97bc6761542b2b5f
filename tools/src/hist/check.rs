//! The checkers over a whole [`History`]: per-key linearizability (through [`lin`]) in
//! two read modes, ZooKeeper's session guarantees, and lost acknowledged writes.
//!
//! Contract:
//! - [`check_history`] never fails: every problem is a [`Violation`] naming its check,
//!   saying what is wrong and listing the smallest sub-history that shows it (for
//!   linearizability, the ops of that key [`lin::shrink`] kept; for the others, the
//!   two or three ops that contradict each other);
//! - linearizability is checked twice: over writes, compare-and-sets, multis
//!   (projected on each key they write) and *sync* reads ([`ReadMode::Sync`], which
//!   ZooKeeper promises is linearizable), and over every read ([`ReadMode::All`], which
//!   ZooKeeper does not promise across servers); the final reads, made after healing,
//!   are sync reads;
//! - session checks: reply zxids never go backwards within a session, across
//!   reconnects too; a session reads its own writes (a read's version is at least that
//!   of the session's last acknowledged write of the key, and never below an earlier
//!   read's) and sees its own ephemerals; sequential names are unique per parent and
//!   increase in real-time order (a create that completed before another began has
//!   the smaller number); an ephemeral is absent from every listing invoked after its
//!   session's closeSession was acknowledged, and after its session expired, once a
//!   listing has shown it gone it never reappears, and none is left at the end;
//! - an acknowledged write is *lost* when the final read of its key shows an older
//!   version, or anything (a read, another write's reply) shows its version holding a
//!   different value; an acknowledged sequential create is lost when the final listing
//!   of its parent lacks it. Each lost write is counted once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::history::{Call, History, Op, Outcome, Reply, is_final};
use super::lin::{self, CasResult, Entry, RegOp, Verdict};
use transport::jute::ErrorCode;

/// Most ops printed for one violation.
pub const VIOLATION_OPS_PRINTED_MAX: usize = 40;

/// Which reads take part in the linearizability check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Writes + reads made right after a `sync`.
    Sync,
    /// Writes + every read.
    All,
}

impl ReadMode {
    pub fn name(self) -> &'static str {
        match self {
            ReadMode::Sync => "writes + sync reads",
            ReadMode::All => "writes + all reads",
        }
    }
}

/// One broken promise and the ops that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: String,
    pub message: String,
    /// The sub-history, one described op a line.
    pub ops: Vec<String>,
}

impl Violation {
    fn new(check: &str, message: String, ops: &[&Op]) -> Self {
        Violation {
            check: check.into(),
            message,
            ops: ops.iter().map(|o| o.describe()).collect(),
        }
    }

    pub fn render(&self) -> String {
        let mut s = format!("VIOLATION [{}] {}\n", self.check, self.message);
        for line in self.ops.iter().take(VIOLATION_OPS_PRINTED_MAX) {
            let _ = writeln!(s, "    {line}");
        }
        if self.ops.len() > VIOLATION_OPS_PRINTED_MAX {
            let _ = writeln!(
                s,
                "    ... {} more",
                self.ops.len() - VIOLATION_OPS_PRINTED_MAX
            );
        }
        s
    }
}

/// What one linearizability pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinSummary {
    pub keys: usize,
    pub violations: usize,
    pub inconclusive: usize,
}

/// Everything the checkers found in one history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub ops: usize,
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
    pub lin_sync: LinSummary,
    pub lin_all: LinSummary,
    /// Session-guarantee violations (zxids, own writes, sequential, ephemerals).
    pub session_violations: usize,
    /// Acknowledged writes lost.
    pub lost: usize,
    pub violations: Vec<Violation>,
}

impl Report {
    /// Violations that break a promise ZooKeeper makes (not the all-reads pass).
    pub fn promise_violations(&self) -> usize {
        self.lin_sync.violations + self.session_violations + self.lost
    }
}

/// Runs every check.
pub fn check_history(h: &History) -> Report {
    let mut r = Report {
        ops: h.ops.len(),
        ..Report::default()
    };
    for op in &h.ops {
        match op.outcome {
            Outcome::Ok(_) => r.ok += 1,
            Outcome::Fail(_) => r.fail += 1,
            Outcome::Unknown => r.unknown += 1,
        }
    }
    let by_id: HashMap<u64, &Op> = h.ops.iter().map(|o| (o.id, o)).collect();
    for mode in [ReadMode::Sync, ReadMode::All] {
        let (summary, mut v) = linearizability(h, mode, &by_id);
        match mode {
            ReadMode::Sync => r.lin_sync = summary,
            ReadMode::All => r.lin_all = summary,
        }
        r.violations.append(&mut v);
    }
    let mut session = Vec::new();
    session.extend(zxid_order(h));
    session.extend(own_writes(h));
    session.extend(sequential(h));
    session.extend(ephemerals(h));
    session.extend(final_agreement(h));
    r.session_violations = session.len();
    r.violations.append(&mut session);
    let mut lost = lost_writes(h);
    r.lost = lost.len();
    r.violations.append(&mut lost);
    r
}

fn bad_version(reply: &Reply) -> bool {
    matches!(reply, Reply::Error { code } if *code == ErrorCode::BadVersion.code())
}

/// Each key's register ops for `mode`.
pub fn key_entries(h: &History, mode: ReadMode) -> BTreeMap<u32, Vec<Entry>> {
    let mut keys: BTreeMap<u32, Vec<Entry>> = BTreeMap::new();
    for op in &h.ops {
        let mut push = |key: u32, ret: u64, rop: RegOp| {
            keys.entry(key).or_default().push(Entry {
                id: op.id,
                call: op.invoke_ns,
                ret,
                op: rop,
            });
        };
        let end = op.end_ns();
        match (&op.call, &op.outcome) {
            (Call::SyncRead { key }, Outcome::Ok(Reply::Value { value, version, .. })) => push(
                *key,
                end,
                RegOp::Read {
                    value: *value,
                    version: *version,
                },
            ),
            (Call::Read { key }, Outcome::Ok(Reply::Value { value, version, .. }))
                if mode == ReadMode::All =>
            {
                push(
                    *key,
                    end,
                    RegOp::Read {
                        value: *value,
                        version: *version,
                    },
                )
            }
            (Call::Write { key, value }, Outcome::Ok(Reply::Written { version, .. })) => push(
                *key,
                end,
                RegOp::Write {
                    value: *value,
                    version: Some(*version),
                },
            ),
            (Call::Write { key, value }, Outcome::Unknown) => push(
                *key,
                end,
                RegOp::Write {
                    value: *value,
                    version: None,
                },
            ),
            (Call::Cas { key, expect, value }, outcome) => {
                let result = match outcome {
                    Outcome::Ok(Reply::Written { version, .. }) => CasResult::Ok(*version),
                    Outcome::Fail(reply) if bad_version(reply) => CasResult::BadVersion,
                    Outcome::Unknown => CasResult::Unknown,
                    _ => continue,
                };
                push(
                    *key,
                    end,
                    RegOp::Cas {
                        expect: *expect,
                        value: *value,
                        result,
                    },
                )
            }
            (Call::Multi { writes }, Outcome::Ok(Reply::MultiWritten { versions, .. })) => {
                for ((key, value), version) in writes.iter().zip(versions) {
                    push(
                        *key,
                        end,
                        RegOp::Write {
                            value: *value,
                            version: Some(*version),
                        },
                    );
                }
            }
            (Call::Multi { writes }, Outcome::Unknown) => {
                for (key, value) in writes {
                    push(
                        *key,
                        end,
                        RegOp::Write {
                            value: *value,
                            version: None,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    keys
}

fn linearizability(
    h: &History,
    mode: ReadMode,
    by_id: &HashMap<u64, &Op>,
) -> (LinSummary, Vec<Violation>) {
    let mut summary = LinSummary::default();
    let mut out = Vec::new();
    for (key, entries) in key_entries(h, mode) {
        summary.keys += 1;
        match lin::check(&entries, lin::INITIAL) {
            Verdict::Linearizable => {}
            Verdict::Inconclusive => summary.inconclusive += 1,
            Verdict::NotLinearizable => {
                summary.violations += 1;
                let small = lin::shrink(&entries, lin::INITIAL);
                let ops = small
                    .iter()
                    .map(|e| {
                        let d = by_id
                            .get(&e.id)
                            .map_or(format!("op {}", e.id), |o| o.describe());
                        let weakened = e.ret == u64::MAX
                            && by_id.get(&e.id).is_some_and(|o| o.complete_ns.is_some());
                        if weakened {
                            format!("{d}   (its reply is not needed: treated as unknown)")
                        } else {
                            d
                        }
                    })
                    .collect();
                out.push(Violation {
                    check: format!("linearizability, {}", mode.name()),
                    message: format!(
                        "key k{key}: no linearization of its {} ops; a smallest sub-history \
                         that has none ({} ops):",
                        entries.len(),
                        small.len()
                    ),
                    ops,
                });
            }
        }
    }
    (summary, out)
}

/// Ops of each session, in invoke order.
fn sessions(h: &History) -> BTreeMap<i64, Vec<&Op>> {
    let mut s: BTreeMap<i64, Vec<&Op>> = BTreeMap::new();
    for op in h.ops.iter().filter(|o| o.session != 0) {
        s.entry(op.session).or_default().push(op);
    }
    s
}

fn zxid_order(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    for (session, ops) in sessions(h) {
        // A zxid of 0 or less says nothing (ZooKeeper's client ignores it too).
        let mut answered: Vec<&Op> = ops
            .into_iter()
            .filter(|o| o.zxid.is_some_and(|z| z > 0))
            .collect();
        answered.sort_by_key(|o| (o.end_ns(), o.id));
        let mut highest: Option<&Op> = None;
        for op in answered {
            match highest {
                Some(hi) if op.zxid < hi.zxid => out.push(Violation::new(
                    "zxid order",
                    format!(
                        "session {session:#x}: reply zxid {:#x} after {:#x}",
                        op.zxid.unwrap_or(0),
                        hi.zxid.unwrap_or(0)
                    ),
                    &[hi, op],
                )),
                Some(hi) if op.zxid == hi.zxid => {}
                _ => highest = Some(op),
            }
        }
    }
    out
}

fn own_writes(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    for (session, ops) in sessions(h) {
        let mut wrote: HashMap<u32, (i32, &Op)> = HashMap::new();
        let mut read: HashMap<u32, (i32, &Op)> = HashMap::new();
        let mut ephemerals: Vec<(&str, &Op)> = Vec::new();
        for op in ops {
            match (&op.call, &op.outcome) {
                (Call::Write { key, .. } | Call::Cas { key, .. }, Outcome::Ok(r)) => {
                    if let Reply::Written { version, .. } = r {
                        wrote.insert(*key, (*version, op));
                    }
                }
                (Call::Multi { writes }, Outcome::Ok(Reply::MultiWritten { versions, .. })) => {
                    for ((key, _), v) in writes.iter().zip(versions) {
                        wrote.insert(*key, (*v, op));
                    }
                }
                (
                    Call::Read { key } | Call::SyncRead { key },
                    Outcome::Ok(Reply::Value { version, .. }),
                ) => {
                    if let Some((w, wop)) = wrote.get(key).filter(|(w, _)| version < w) {
                        out.push(Violation::new(
                            "read your writes",
                            format!(
                                "session {session:#x} read k{key} at version {version} after \
                                 its own write made version {w}"
                            ),
                            &[wop, op],
                        ));
                    }
                    if let Some((r, rop)) = read.get(key).filter(|(r, _)| version < r) {
                        out.push(Violation::new(
                            "monotonic reads",
                            format!(
                                "session {session:#x} read k{key} at version {version} after \
                                 reading version {r}"
                            ),
                            &[rop, op],
                        ));
                    }
                    let e = read.entry(*key).or_insert((*version, op));
                    if *version > e.0 {
                        *e = (*version, op);
                    }
                }
                (Call::CreateEph { name }, Outcome::Ok(_)) => ephemerals.push((name, op)),
                (Call::ListEph, Outcome::Ok(Reply::Children { names })) => {
                    let present: HashSet<&str> = names.iter().map(String::as_str).collect();
                    for (name, cop) in &ephemerals {
                        if !present.contains(name) {
                            out.push(Violation::new(
                                "read your writes",
                                format!(
                                    "session {session:#x} does not see its own ephemeral {name}"
                                ),
                                &[cop, op],
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The sequence number a sequential create appended (the trailing digits).
pub fn sequence_number(name: &str) -> Option<u64> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    name[name.len() - digits..].parse().ok()
}

fn sequential(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut parents: BTreeMap<u32, Vec<(&Op, u64)>> = BTreeMap::new();
    for op in &h.ops {
        if let (Call::CreateSeq { parent }, Outcome::Ok(Reply::Created { name })) =
            (&op.call, &op.outcome)
        {
            match sequence_number(name) {
                Some(n) => parents.entry(*parent).or_default().push((op, n)),
                None => out.push(Violation::new(
                    "sequential names",
                    format!("p{parent}: created name {name:?} has no sequence number"),
                    &[op],
                )),
            }
        }
    }
    for (parent, creates) in parents {
        let mut seen: HashMap<u64, &Op> = HashMap::new();
        for (op, n) in &creates {
            if let Some(other) = seen.insert(*n, op) {
                out.push(Violation::new(
                    "sequential names",
                    format!("p{parent}: sequence number {n} given twice"),
                    &[other, op],
                ));
            }
        }
        // Real-time order: walk by invoke; everything completed before the invoke must
        // have a smaller number.
        let mut by_end: Vec<&(&Op, u64)> = creates.iter().collect();
        by_end.sort_by_key(|(o, _)| o.end_ns());
        let mut by_start: Vec<&(&Op, u64)> = creates.iter().collect();
        by_start.sort_by_key(|(o, _)| o.invoke_ns);
        let mut done = 0;
        let mut highest: Option<&(&Op, u64)> = None;
        for cur in by_start {
            while done < by_end.len() && by_end[done].0.end_ns() < cur.0.invoke_ns {
                if highest.is_none_or(|h| by_end[done].1 > h.1) {
                    highest = Some(by_end[done]);
                }
                done += 1;
            }
            if let Some(hi) = highest.filter(|hi| hi.1 >= cur.1) {
                out.push(Violation::new(
                    "sequential names",
                    format!(
                        "p{parent}: sequence number {} was created after {} completed",
                        cur.1, hi.1
                    ),
                    &[hi.0, cur.0],
                ));
            }
        }
    }
    out
}

fn ephemerals(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    // Which session created each ephemeral (names are unique per run).
    let mut owner: HashMap<&str, &Op> = HashMap::new();
    let mut closed: HashMap<i64, &Op> = HashMap::new();
    let mut expired: HashMap<i64, &Op> = HashMap::new();
    for op in &h.ops {
        match (&op.call, &op.outcome) {
            (Call::CreateEph { name }, o) if !matches!(o, Outcome::Fail(_)) => {
                owner.insert(name, op);
            }
            (Call::Close, Outcome::Ok(_)) => {
                closed.insert(op.session, op);
            }
            (Call::Reconnect { session }, Outcome::Fail(_)) => {
                expired.entry(*session).or_insert(op);
            }
            _ => {}
        }
    }
    let mut lists: Vec<(&Op, HashSet<&str>)> = h
        .ops
        .iter()
        .filter_map(|op| match (&op.call, &op.outcome) {
            (Call::ListEph, Outcome::Ok(Reply::Children { names })) => {
                Some((op, names.iter().map(String::as_str).collect()))
            }
            _ => None,
        })
        .collect();
    lists.sort_by_key(|(o, _)| o.invoke_ns);
    let final_list = lists
        .iter()
        .filter(|(o, _)| is_final(o.process))
        .max_by_key(|(o, _)| o.invoke_ns);
    let mut reported: HashSet<&str> = HashSet::new();
    for (name, create) in &owner {
        let session = create.session;
        if let Some(close) = closed.get(&session) {
            let end = close.end_ns();
            // A list reflects the state at its reply zxid: one at or after the close's
            // that still shows the node is a violation. (On one server that is every
            // list invoked after the close ended; in an ensemble a plain read at a
            // lagging member may be older, which ZooKeeper's sequentially consistent
            // reads allow.)
            let after_close = |l: &Op| match (l.zxid, close.zxid) {
                (Some(lz), Some(cz)) if lz > 0 && cz > 0 => lz >= cz,
                _ => l.invoke_ns > end,
            };
            if let Some((list, _)) = lists
                .iter()
                .find(|(l, names)| l.invoke_ns > end && after_close(l) && names.contains(name))
            {
                reported.insert(name);
                out.push(Violation::new(
                    "ephemerals",
                    format!("{name} listed after its session {session:#x} was closed"),
                    &[create, close, list],
                ));
            }
        }
        if let Some(exp) = expired.get(&session) {
            let after: Vec<&(&Op, HashSet<&str>)> = lists
                .iter()
                .filter(|(l, _)| l.invoke_ns > exp.end_ns())
                .collect();
            let gone = after.iter().find(|(_, names)| !names.contains(name));
            // Back means a list of a state at or after the one that showed it gone.
            let not_older = |l: &Op, g: &Op| match (l.zxid, g.zxid) {
                (Some(lz), Some(gz)) if lz > 0 && gz > 0 => lz >= gz,
                _ => true,
            };
            let back = gone.and_then(|(g, _)| {
                after.iter().find(|(l, names)| {
                    l.invoke_ns > g.end_ns() && not_older(l, g) && names.contains(name)
                })
            });
            if let (Some((gone, _)), Some((back, _))) = (gone, back) {
                reported.insert(name);
                out.push(Violation::new(
                    "ephemerals",
                    format!("{name} of expired session {session:#x} reappeared"),
                    &[create, exp, gone, back],
                ));
            }
        }
        let ended = closed.get(&session).or(expired.get(&session));
        if let (Some(end), Some((fin, names))) = (ended, final_list)
            && names.contains(name)
            && !reported.contains(name)
        {
            out.push(Violation::new(
                "ephemerals",
                format!("{name} still present at the end; its session {session:#x} ended"),
                &[create, end, fin],
            ));
        }
    }
    out.sort_by(|a, b| a.message.cmp(&b.message));
    out
}

/// The servers' final reads (made after healing, each after a `sync`) must agree:
/// every key's value and version, every listing. A server that differs lost or
/// invented a write.
fn final_agreement(h: &History) -> Vec<Violation> {
    #[derive(PartialEq, Eq, Hash, PartialOrd, Ord, Clone, Copy)]
    enum What {
        Key(u32),
        Eph,
        Seq(u32),
    }
    let mut seen: BTreeMap<What, Vec<(&Op, String)>> = BTreeMap::new();
    for op in h.ops.iter().filter(|o| is_final(o.process)) {
        let Outcome::Ok(reply) = &op.outcome else {
            continue;
        };
        let what = match &op.call {
            Call::SyncRead { key } | Call::Read { key } => What::Key(*key),
            Call::ListEph => What::Eph,
            Call::ListSeq { parent } => What::Seq(*parent),
            _ => continue,
        };
        let shown = match reply {
            Reply::Value { value, version, .. } => format!("{value} v{version}"),
            Reply::Children { names } => {
                let mut n = names.clone();
                n.sort();
                n.join(",")
            }
            other => format!("{other:?}"),
        };
        let at = seen.entry(what).or_default();
        // One answer per server: the last try counts.
        at.retain(|(o, _)| o.process != op.process);
        at.push((op, shown));
    }
    let mut out = Vec::new();
    for (what, answers) in &seen {
        let Some((first, shown)) = answers.first() else {
            continue;
        };
        if let Some((other, _)) = answers.iter().find(|(_, s)| s != shown) {
            let name = match what {
                What::Key(k) => format!("k{k}"),
                What::Eph => "the ephemerals".into(),
                What::Seq(p) => format!("p{p}"),
            };
            out.push(Violation::new(
                "final state",
                format!(
                    "servers disagree on {name} after healing ({} vs {})",
                    first.server, other.server
                ),
                &[first, other],
            ));
        }
    }
    out
}

fn lost_writes(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    // Final sync reads and listings, made after healing.
    let mut final_read: HashMap<u32, (&Op, u64, i32)> = HashMap::new();
    let mut final_seq: HashMap<u32, (&Op, HashSet<&str>)> = HashMap::new();
    // (key, version) -> first (value, op) shown by any reply.
    let mut shown: HashMap<(u32, i32), (u64, &Op)> = HashMap::new();
    let mut acked: Vec<(u32, u64, i32, &Op)> = Vec::new();
    for op in &h.ops {
        let Outcome::Ok(reply) = &op.outcome else {
            continue;
        };
        match (&op.call, reply) {
            (Call::SyncRead { key } | Call::Read { key }, Reply::Value { value, version, .. }) => {
                if is_final(op.process) {
                    final_read.insert(*key, (op, *value, *version));
                }
                shown.entry((*key, *version)).or_insert((*value, op));
            }
            (Call::Write { key, value }, Reply::Written { version, .. })
            | (Call::Cas { key, value, .. }, Reply::Written { version, .. }) => {
                acked.push((*key, *value, *version, op));
            }
            (Call::Multi { writes }, Reply::MultiWritten { versions, .. }) => {
                for ((key, value), version) in writes.iter().zip(versions) {
                    acked.push((*key, *value, *version, op));
                }
            }
            (Call::ListSeq { parent }, Reply::Children { names }) => {
                final_seq.insert(*parent, (op, names.iter().map(String::as_str).collect()));
            }
            _ => {}
        }
    }
    // Acknowledged writes show their own version too (first come first kept).
    let mut by_time: Vec<&(u32, u64, i32, &Op)> = acked.iter().collect();
    by_time.sort_by_key(|(_, _, _, o)| o.end_ns());
    for (key, value, version, op) in &by_time {
        shown.entry((*key, *version)).or_insert((*value, op));
    }
    for (key, value, version, op) in by_time {
        if let Some((other, oop)) = shown.get(&(*key, *version)).filter(|(v, _)| v != value) {
            out.push(Violation::new(
                "lost write",
                format!(
                    "k{key}: write of {value} was acknowledged at version {version}, \
                     which also held {other}"
                ),
                &[op, oop],
            ));
        } else if let Some((fop, fv, fver)) = final_read.get(key).filter(|f| f.2 < *version) {
            out.push(Violation::new(
                "lost write",
                format!(
                    "k{key}: write of {value} was acknowledged at version {version}; \
                     the final read shows {fv} at version {fver}"
                ),
                &[op, fop],
            ));
        }
    }
    for op in &h.ops {
        if let (Call::CreateSeq { parent }, Outcome::Ok(Reply::Created { name })) =
            (&op.call, &op.outcome)
            && let Some((fop, names)) = final_seq.get(parent)
            && !names.contains(name.as_str())
        {
            out.push(Violation::new(
                "lost write",
                format!("p{parent}: acknowledged create of {name} missing at the end"),
                &[op, fop],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::history::{FINAL_PROCESS, HISTORY_FORMAT, Header};
    use super::*;

    /// Builds histories op by op; times in microseconds.
    struct B {
        ops: Vec<Op>,
    }

    impl B {
        fn new() -> B {
            B { ops: Vec::new() }
        }
        #[allow(clippy::too_many_arguments)]
        fn op(
            &mut self,
            process: u32,
            session: i64,
            t: (u64, Option<u64>),
            call: Call,
            outcome: Outcome,
            zxid: Option<i64>,
        ) -> &mut B {
            let id = self.ops.len() as u64;
            self.ops.push(Op {
                id,
                process,
                session,
                server: "s".into(),
                call,
                invoke_ns: t.0 * 1000,
                complete_ns: t.1.map(|x| x * 1000),
                outcome,
                zxid,
            });
            self
        }
        fn write(&mut self, p: u32, t: (u64, u64), key: u32, value: u64, version: i32) -> &mut B {
            let z = Some(100 + t.1 as i64);
            self.op(
                p,
                p as i64 + 1,
                (t.0, Some(t.1)),
                Call::Write { key, value },
                Outcome::Ok(Reply::Written { version, mzxid: 0 }),
                z,
            )
        }
        fn read(&mut self, p: u32, t: (u64, u64), key: u32, value: u64, version: i32) -> &mut B {
            let z = Some(100 + t.1 as i64);
            self.op(
                p,
                if p == FINAL_PROCESS { 99 } else { p as i64 + 1 },
                (t.0, Some(t.1)),
                Call::SyncRead { key },
                Outcome::Ok(Reply::Value {
                    value,
                    version,
                    mzxid: 0,
                }),
                z,
            )
        }
        fn history(&self) -> History {
            History {
                header: Header {
                    format: HISTORY_FORMAT,
                    seed: 1,
                    system: "test".into(),
                    server: "s".into(),
                    root: "/t".into(),
                    workers: 2,
                    duration_ms: 1,
                    keys_per_window: 1,
                    ops_per_key_per_worker: 1,
                    session_timeout_ms: 1,
                    schedule: vec![],
                },
                ops: self.ops.clone(),
                nemesis: vec![],
            }
        }
    }

    /// A clean history touching every check.
    fn good() -> B {
        let mut b = B::new();
        b.write(0, (0, 10), 1, 11, 1)
            .read(1, (5, 8), 1, 0, 0)
            .read(1, (12, 14), 1, 11, 1)
            .op(
                0,
                1,
                (15, Some(20)),
                Call::Cas {
                    key: 1,
                    expect: 1,
                    value: 12,
                },
                Outcome::Ok(Reply::Written {
                    version: 2,
                    mzxid: 0,
                }),
                Some(120),
            )
            .op(
                1,
                2,
                (21, Some(22)),
                Call::Cas {
                    key: 1,
                    expect: 1,
                    value: 13,
                },
                Outcome::Fail(Reply::Error { code: -103 }),
                Some(122),
            )
            .op(
                0,
                1,
                (23, None),
                Call::Write { key: 2, value: 21 },
                Outcome::Unknown,
                None,
            )
            .op(
                0,
                1,
                (30, Some(31)),
                Call::CreateSeq { parent: 0 },
                Outcome::Ok(Reply::Created {
                    name: "s-0000000000".into(),
                }),
                Some(131),
            )
            .op(
                1,
                2,
                (32, Some(33)),
                Call::CreateSeq { parent: 0 },
                Outcome::Ok(Reply::Created {
                    name: "s-0000000001".into(),
                }),
                Some(133),
            )
            .op(
                1,
                2,
                (34, Some(35)),
                Call::CreateEph { name: "e1".into() },
                Outcome::Ok(Reply::Created { name: "e1".into() }),
                Some(135),
            )
            .op(
                1,
                2,
                (36, Some(37)),
                Call::ListEph,
                Outcome::Ok(Reply::Children {
                    names: vec!["e1".into()],
                }),
                Some(137),
            )
            .op(
                1,
                2,
                (38, Some(39)),
                Call::Close,
                Outcome::Ok(Reply::Done),
                Some(139),
            )
            .read(FINAL_PROCESS, (50, 51), 1, 12, 2)
            .read(FINAL_PROCESS, (52, 53), 2, 21, 1)
            .op(
                FINAL_PROCESS,
                99,
                (54, Some(55)),
                Call::ListEph,
                Outcome::Ok(Reply::Children { names: vec![] }),
                Some(155),
            )
            .op(
                FINAL_PROCESS,
                99,
                (56, Some(57)),
                Call::ListSeq { parent: 0 },
                Outcome::Ok(Reply::Children {
                    names: vec!["s-0000000001".into(), "s-0000000000".into()],
                }),
                Some(157),
            );
        b
    }

    fn only(r: &Report, check: &str) -> Vec<Violation> {
        r.violations
            .iter()
            .filter(|v| v.check.starts_with(check))
            .cloned()
            .collect()
    }

    #[test]
    fn a_good_history_passes_every_check() {
        let r = check_history(&good().history());
        assert_eq!(r.violations, vec![], "{:#?}", r.violations);
        assert_eq!((r.lin_sync.keys, r.lin_all.keys), (2, 2));
        assert_eq!((r.ok, r.fail, r.unknown), (13, 1, 1));
    }

    #[test]
    fn a_stale_sync_read_after_a_completed_write_is_caught_and_shown() {
        let mut b = good();
        b.read(1, (40, 41), 1, 11, 1); // k1 is at version 2 since t=20
        let r = check_history(&b.history());
        assert_eq!(r.lin_sync.violations, 1, "{:#?}", r.violations);
        let v = &only(&r, "linearizability, writes + sync")[0];
        let text = v.render();
        assert!(text.contains("key k1"), "{text}");
        assert!(text.contains("sync-read k1 -> ok 11 v1"), "{text}");
        assert!(v.ops.len() <= 4, "{text}");
    }

    #[test]
    fn a_stale_plain_read_fails_only_the_all_reads_pass() {
        let mut b = good();
        let id = b.ops.len();
        b.read(0, (40, 41), 1, 11, 1);
        b.ops[id].call = Call::Read { key: 1 };
        b.ops[id].session = 77; // another session: not a monotonic-reads violation
        let r = check_history(&b.history());
        assert_eq!(r.lin_sync.violations, 0);
        assert_eq!(r.lin_all.violations, 1, "{:#?}", r.violations);
    }

    #[test]
    fn servers_that_disagree_after_healing_are_caught() {
        // A second server's final reads: the same state passes...
        let mut b = good();
        b.read(FINAL_PROCESS + 1, (60, 61), 1, 12, 2)
            .read(FINAL_PROCESS + 1, (62, 63), 2, 21, 1);
        let r = check_history(&b.history());
        assert_eq!(r.violations, vec![], "{:#?}", r.violations);
        // ...one missing the last write to k2 does not (the replica lost it, though
        // the first server's read showed it).
        let mut b = good();
        b.read(FINAL_PROCESS + 1, (60, 61), 1, 12, 2)
            .read(FINAL_PROCESS + 1, (62, 63), 2, 0, 0);
        let r = check_history(&b.history());
        let v = only(&r, "final state");
        assert_eq!(v.len(), 1, "{:#?}", r.violations);
        assert!(v[0].message.contains("k2"), "{}", v[0].render());
        assert!(r.promise_violations() > 0);
    }

    #[test]
    fn a_lost_acknowledged_write_is_counted() {
        let mut b = good();
        // The final read of k1 shows version 1: the acknowledged CAS (version 2) is gone.
        b.ops[11].outcome = Outcome::Ok(Reply::Value {
            value: 11,
            version: 1,
            mzxid: 0,
        });
        let r = check_history(&b.history());
        assert_eq!(r.lost, 1, "{:#?}", r.violations);
        assert!(only(&r, "lost write")[0].message.contains("write of 12"));
        // The same loss also breaks linearizability.
        assert_eq!(r.lin_sync.violations, 1);

        // A version reused after a crash: both acknowledged at version 3.
        let mut b = good();
        b.write(0, (60, 61), 1, 14, 3).write(1, (62, 63), 1, 15, 3);
        let r = check_history(&b.history());
        assert!(r.lost >= 1, "{:#?}", r.violations);

        // A lost sequential create.
        let mut b = good();
        b.ops[14].outcome = Outcome::Ok(Reply::Children {
            names: vec!["s-0000000001".into()],
        });
        let r = check_history(&b.history());
        assert_eq!(r.lost, 1, "{:#?}", r.violations);
    }

    #[test]
    fn a_zxid_going_backwards_in_a_session_is_caught() {
        let mut b = good();
        b.op(
            0,
            1,
            (40, Some(41)),
            Call::ListEph,
            Outcome::Ok(Reply::Children { names: vec![] }),
            Some(5),
        );
        let r = check_history(&b.history());
        let v = only(&r, "zxid order");
        assert_eq!(v.len(), 1, "{:#?}", r.violations);
        assert_eq!(v[0].ops.len(), 2);
        assert_eq!(r.session_violations, 1);
    }

    #[test]
    fn reading_older_than_your_own_write_is_caught() {
        let mut b = good();
        // Session 1 (process 0) wrote k1 at version 2 (the CAS), then reads version 1.
        b.read(0, (40, 41), 1, 11, 1);
        let r = check_history(&b.history());
        assert_eq!(only(&r, "read your writes").len(), 1, "{:#?}", r.violations);
    }

    #[test]
    fn sequential_names_out_of_order_or_twice_are_caught() {
        let mut b = good();
        b.ops[7].outcome = Outcome::Ok(Reply::Created {
            name: "s-0000000000".into(),
        });
        let r = check_history(&b.history());
        assert!(
            !only(&r, "sequential names").is_empty(),
            "{:#?}",
            r.violations
        );
        let mut b = good();
        b.ops[6].outcome = Outcome::Ok(Reply::Created {
            name: "s-0000000005".into(),
        });
        let r = check_history(&b.history());
        assert_eq!(only(&r, "sequential names").len(), 1, "{:#?}", r.violations);
    }

    #[test]
    fn an_ephemeral_that_outlives_its_session_is_caught() {
        let mut b = good();
        b.op(
            0,
            1,
            (45, Some(46)),
            Call::ListEph,
            Outcome::Ok(Reply::Children {
                names: vec!["e1".into()],
            }),
            Some(146),
        );
        let r = check_history(&b.history());
        assert_eq!(only(&r, "ephemerals").len(), 1, "{:#?}", r.violations);

        // An expired session's ephemeral that comes back after a listing without it.
        let mut b = good();
        b.ops[10].call = Call::Reconnect { session: 2 };
        b.ops[10].outcome = Outcome::Fail(Reply::Error { code: -112 });
        b.op(
            0,
            1,
            (40, Some(41)),
            Call::ListEph,
            Outcome::Ok(Reply::Children { names: vec![] }),
            Some(141),
        )
        .op(
            0,
            1,
            (42, Some(43)),
            Call::ListEph,
            Outcome::Ok(Reply::Children {
                names: vec!["e1".into()],
            }),
            Some(143),
        );
        let r = check_history(&b.history());
        let v = only(&r, "ephemerals");
        assert_eq!(v.len(), 1, "{:#?}", r.violations);
        assert!(v[0].message.contains("reappeared"), "{:?}", v[0]);
    }

    #[test]
    fn sequence_numbers_are_the_trailing_digits() {
        assert_eq!(sequence_number("s-0000000042"), Some(42));
        assert_eq!(sequence_number("lock"), None);
    }
}
