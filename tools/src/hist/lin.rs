//! Linearizability of one register (one key): Wing & Gong's search with Lowe's
//! memoisation, as porcupine does it, over the ops of one key (the history is
//! partitioned by key first: a register history is linearizable iff each key's is).
//!
//! Contract:
//! - the register is a ZooKeeper znode's (data, version): a read returns both, a write
//!   (`setData` -1) sets the value and bumps the version, a compare-and-set (`setData`
//!   with a version) succeeds only at that version (else `BadVersion`, a read that says
//!   "not that version");
//! - an op is an interval [call, ret]; ops whose intervals touch are concurrent (a
//!   return at the same nanosecond as a call does not order them); an unknown op has
//!   `ret = u64::MAX`: it may take effect at any point after its call or never (it is
//!   then linearized last, where nothing sees it); unknown reads carry no information
//!   and are left out by the caller;
//! - [`check`] explores at most [`LIN_STEPS_MAX`] search steps and then says
//!   [`Verdict::Inconclusive`] rather than run on;
//! - [`brute_force`] tries every order the real-time order allows (for up to
//!   [`BRUTE_OPS_MAX`] ops): the unit tests check the two agree on random histories;
//! - [`shrink`] turns a non-linearizable history into a smaller one that is still not
//!   linearizable and that any linearizable history would not produce: it only drops
//!   reads (and failed compare-and-sets) and weakens writes to unknown ones, both of
//!   which keep a linearizable history linearizable, so the witness is genuine.

use std::collections::HashSet;

/// Search steps one key's check may take before it gives up (inconclusive).
pub const LIN_STEPS_MAX: u64 = 5_000_000;
/// Most ops [`brute_force`] accepts (it tries up to n! orders).
pub const BRUTE_OPS_MAX: usize = 8;
/// Most re-checks [`shrink`] makes.
pub const SHRINK_CHECKS_MAX: usize = 400;

/// The register's state: value and znode version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    pub value: u64,
    pub version: i32,
}

/// Every key is created with value 0 at version 0 before the workload.
pub const INITIAL: State = State {
    value: 0,
    version: 0,
};

/// How a compare-and-set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasResult {
    /// Succeeded; the new version.
    Ok(i32),
    BadVersion,
    Unknown,
}

/// One register op and what it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegOp {
    Read {
        value: u64,
        version: i32,
    },
    /// `version`: the new version the server reported (None: unknown).
    Write {
        value: u64,
        version: Option<i32>,
    },
    Cas {
        expect: i32,
        value: u64,
        result: CasResult,
    },
}

/// One op of a key's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The history's op id (for reports).
    pub id: u64,
    pub call: u64,
    /// `u64::MAX`: unknown, open to +inf.
    pub ret: u64,
    pub op: RegOp,
}

impl Entry {
    fn is_open(&self) -> bool {
        self.ret == u64::MAX
    }
}

/// The register's sequential specification: the state after `op`, or None when `op`
/// could not have returned what it did in state `s`.
pub fn step(s: State, op: &RegOp) -> Option<State> {
    match *op {
        RegOp::Read { value, version } => (s.value == value && s.version == version).then_some(s),
        RegOp::Write { value, version } => {
            let next = State {
                value,
                version: s.version + 1,
            };
            match version {
                Some(v) if v != next.version => None,
                _ => Some(next),
            }
        }
        RegOp::Cas {
            expect,
            value,
            result,
        } => {
            let hit = s.version == expect;
            let next = State {
                value,
                version: expect + 1,
            };
            match (result, hit) {
                (CasResult::Ok(v), true) => (v == next.version).then_some(next),
                (CasResult::Ok(_), false) | (CasResult::BadVersion, true) => None,
                (CasResult::BadVersion, false) | (CasResult::Unknown, false) => Some(s),
                (CasResult::Unknown, true) => Some(next),
            }
        }
    }
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The search hit [`LIN_STEPS_MAX`].
    Inconclusive,
}

const NONE: usize = usize::MAX;

struct Node {
    op: usize,
    is_call: bool,
    /// The call's return node (NONE for open ops and for return nodes).
    ret: usize,
    prev: usize,
    next: usize,
}

/// Wing & Gong with Lowe's cache of (linearized set, state) pairs already explored.
pub fn check(entries: &[Entry], init: State) -> Verdict {
    check_bounded(entries, init, LIN_STEPS_MAX)
}

/// [`check`] with an explicit step bound.
pub fn check_bounded(entries: &[Entry], init: State, steps_max: u64) -> Verdict {
    // Events: (time, is_return, op). Calls sort before returns at the same time.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(entries.len() * 2);
    for (i, e) in entries.iter().enumerate() {
        events.push((e.call, false, i));
        if !e.is_open() {
            events.push((e.ret.max(e.call), true, i));
        }
    }
    events.sort();
    // Node 0 is the head sentinel.
    let mut nodes = vec![Node {
        op: NONE,
        is_call: false,
        ret: NONE,
        prev: NONE,
        next: NONE,
    }];
    let mut call_node = vec![NONE; entries.len()];
    for (_, is_ret, op) in &events {
        let idx = nodes.len();
        let prev = idx - 1;
        nodes[prev].next = idx;
        nodes.push(Node {
            op: *op,
            is_call: !is_ret,
            ret: NONE,
            prev,
            next: NONE,
        });
        if *is_ret {
            nodes[call_node[*op]].ret = idx;
        } else {
            call_node[*op] = idx;
        }
    }
    let unlink = |nodes: &mut Vec<Node>, i: usize| {
        let (p, n) = (nodes[i].prev, nodes[i].next);
        nodes[p].next = n;
        if n != NONE {
            nodes[n].prev = p;
        }
    };
    let relink = |nodes: &mut Vec<Node>, i: usize| {
        let (p, n) = (nodes[i].prev, nodes[i].next);
        nodes[p].next = i;
        if n != NONE {
            nodes[n].prev = i;
        }
    };

    let words = entries.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = init;
    let mut remaining = entries.iter().filter(|e| !e.is_open()).count();
    let mut cursor = nodes[0].next;
    let mut steps = 0u64;
    loop {
        if remaining == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > steps_max {
            return Verdict::Inconclusive;
        }
        if cursor != NONE && nodes[cursor].is_call {
            let op = nodes[cursor].op;
            if let Some(next) = step(state, &entries[op].op) {
                let mut bits = linearized.clone();
                bits[op / 64] |= 1 << (op % 64);
                if cache.insert((bits.clone(), next)) {
                    stack.push((cursor, state));
                    state = next;
                    linearized = bits;
                    unlink(&mut nodes, cursor);
                    let r = nodes[cursor].ret;
                    if r != NONE {
                        unlink(&mut nodes, r);
                        remaining -= 1;
                    }
                    cursor = nodes[0].next;
                    continue;
                }
            }
            cursor = nodes[cursor].next;
        } else {
            // A return (or the end) before every op is linearized: undo the last choice.
            let Some((node, prev_state)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let op = nodes[node].op;
            state = prev_state;
            linearized[op / 64] &= !(1 << (op % 64));
            let r = nodes[node].ret;
            if r != NONE {
                relink(&mut nodes, r);
                remaining += 1;
            }
            relink(&mut nodes, node);
            cursor = nodes[node].next;
        }
    }
}

/// Tries every order of `entries` the real-time order allows (ops left unplaced at the
/// end are unknown ones that never took effect). For cross-checking [`check`].
pub fn brute_force(entries: &[Entry], init: State) -> bool {
    assert!(
        entries.len() <= BRUTE_OPS_MAX,
        "brute force is for small histories"
    );
    fn go(entries: &[Entry], placed: &mut Vec<bool>, s: State) -> bool {
        let finite_left = entries
            .iter()
            .zip(placed.iter())
            .any(|(e, p)| !p && !e.is_open());
        if !finite_left {
            return true;
        }
        for i in 0..entries.len() {
            if placed[i] {
                continue;
            }
            // i may go next only if no unplaced op returned strictly before i's call.
            let blocked = (0..entries.len())
                .any(|j| j != i && !placed[j] && entries[j].ret < entries[i].call);
            if blocked {
                continue;
            }
            if let Some(next) = step(s, &entries[i].op) {
                placed[i] = true;
                let ok = go(entries, placed, next);
                placed[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    go(entries, &mut vec![false; entries.len()], init)
}

/// A smaller history that still fails [`check`] (see the module contract); `entries`
/// must fail it. Dropped: reads and failed compare-and-sets that are not needed;
/// weakened to unknown: writes whose reply is not needed.
pub fn shrink(entries: &[Entry], init: State) -> Vec<Entry> {
    let mut cur = entries.to_vec();
    let mut checks = 0;
    // First drop what only observes (reads, failed compare-and-sets), then weaken
    // writes: a witness with few reads and writes whose replies matter reads best.
    for weaken in [false, true] {
        // Writes are weakened latest first: those after the contradiction then go
        // unknown and the trim below drops them.
        if weaken {
            cur.sort_by_key(|e| std::cmp::Reverse((e.call, e.id)));
        }
        let mut i = 0;
        while i < cur.len() && checks < SHRINK_CHECKS_MAX {
            let e = cur[i];
            let mut candidate = cur.clone();
            let removed = match (weaken, e.op) {
                (
                    false,
                    RegOp::Read { .. }
                    | RegOp::Cas {
                        result: CasResult::BadVersion,
                        ..
                    },
                ) => {
                    candidate.remove(i);
                    true
                }
                (true, RegOp::Write { value, version }) if version.is_some() || !e.is_open() => {
                    candidate[i] = Entry {
                        ret: u64::MAX,
                        op: RegOp::Write {
                            value,
                            version: None,
                        },
                        ..e
                    };
                    false
                }
                (
                    true,
                    RegOp::Cas {
                        expect,
                        value,
                        result: CasResult::Ok(_),
                    },
                ) => {
                    candidate[i] = Entry {
                        ret: u64::MAX,
                        op: RegOp::Cas {
                            expect,
                            value,
                            result: CasResult::Unknown,
                        },
                        ..e
                    };
                    false
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            checks += 1;
            if check(&candidate, init) == Verdict::NotLinearizable {
                cur = candidate;
                if removed {
                    continue;
                }
            }
            i += 1;
        }
    }
    // Unknown ops called after every remaining known op returned can always go last:
    // dropping them keeps the witness genuine and shorter.
    let last_ret = cur
        .iter()
        .filter(|e| !e.is_open())
        .map(|e| e.ret)
        .max()
        .unwrap_or(0);
    cur.retain(|e| !e.is_open() || e.call <= last_ret);
    cur.sort_by_key(|e| (e.call, e.id));
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::rng::Rng;

    fn e(id: u64, call: u64, ret: u64, op: RegOp) -> Entry {
        Entry { id, call, ret, op }
    }
    fn w(value: u64, version: i32) -> RegOp {
        RegOp::Write {
            value,
            version: Some(version),
        }
    }
    fn r(value: u64, version: i32) -> RegOp {
        RegOp::Read { value, version }
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let h = [e(0, 0, 10, w(1, 1)), e(1, 20, 30, r(0, 0))];
        assert_eq!(check(&h, INITIAL), Verdict::NotLinearizable);
        assert!(!brute_force(&h, INITIAL));
        // Concurrent with the write, the old value is fine.
        let h = [e(0, 0, 25, w(1, 1)), e(1, 20, 30, r(0, 0))];
        assert_eq!(check(&h, INITIAL), Verdict::Linearizable);
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect() {
        let open = RegOp::Write {
            value: 1,
            version: None,
        };
        let took = [e(0, 0, u64::MAX, open), e(1, 50, 60, r(1, 1))];
        let never = [e(0, 0, u64::MAX, open), e(1, 50, 60, r(0, 0))];
        assert_eq!(check(&took, INITIAL), Verdict::Linearizable);
        assert_eq!(check(&never, INITIAL), Verdict::Linearizable);
        // But not both, in this order.
        let flicker = [
            e(0, 0, u64::MAX, open),
            e(1, 50, 60, r(1, 1)),
            e(2, 70, 80, r(0, 0)),
        ];
        assert_eq!(check(&flicker, INITIAL), Verdict::NotLinearizable);
    }

    #[test]
    fn compare_and_set_follows_versions() {
        let cas = |expect, result| RegOp::Cas {
            expect,
            value: 7,
            result,
        };
        let ok = [
            e(0, 0, 10, w(1, 1)),
            e(1, 20, 30, cas(1, CasResult::Ok(2))),
            e(2, 40, 50, r(7, 2)),
            e(3, 60, 70, cas(1, CasResult::BadVersion)),
        ];
        assert_eq!(check(&ok, INITIAL), Verdict::Linearizable);
        let wrong = [
            e(0, 0, 10, w(1, 1)),
            e(1, 20, 30, cas(1, CasResult::BadVersion)),
        ];
        assert_eq!(check(&wrong, INITIAL), Verdict::NotLinearizable);
        // Two writes may not both report version 1 (one was lost).
        let lost = [e(0, 0, 10, w(1, 1)), e(1, 20, 30, w(2, 1))];
        assert_eq!(check(&lost, INITIAL), Verdict::NotLinearizable);
    }

    #[test]
    fn shrinking_keeps_only_what_shows_the_violation() {
        let mut h: Vec<Entry> = (0..10)
            .map(|i| e(i, i * 100, i * 100 + 10, w(i + 1, i as i32 + 1)))
            .collect();
        h.push(e(10, 995, 998, r(10, 10)));
        h.push(e(11, 1000, 1010, r(3, 3)));
        h.push(e(12, 1020, 1030, r(10, 10)));
        h.push(e(13, 1100, 1110, w(11, 11)));
        h.push(e(14, 1200, 1210, w(12, 12)));
        assert_eq!(check(&h, INITIAL), Verdict::NotLinearizable);
        let s = shrink(&h, INITIAL);
        assert_eq!(check(&s, INITIAL), Verdict::NotLinearizable);
        let reads: Vec<u64> = s
            .iter()
            .filter(|x| matches!(x.op, RegOp::Read { .. }))
            .map(|x| x.id)
            .collect();
        assert_eq!(reads, [11], "only the stale read is needed: {s:?}");
        // Only the write that read 3 came from and one after it keep their replies.
        let known: Vec<u64> = s
            .iter()
            .filter(|x| x.ret != u64::MAX)
            .map(|x| x.id)
            .collect();
        assert!(known.len() <= 3, "{s:?}");
        assert!(
            s.iter().all(|x| x.call <= 1000),
            "nothing after the stale read: {s:?}"
        );
    }

    /// A random small history: ops executed in the order of a random linearization
    /// point inside each interval (so linearizable), then sometimes one result
    /// corrupted, and some writes turned unknown (taking effect or not).
    fn random_history(r: &mut Rng) -> Vec<Entry> {
        let n = 1 + r.below(BRUTE_OPS_MAX - 1);
        let mut ops: Vec<(u64, u64, u64, usize)> = (0..n)
            .map(|i| {
                let call = r.below(30) as u64;
                let ret = call + 1 + r.below(12) as u64;
                let point = call + r.below((ret - call) as usize + 1) as u64;
                (point, call, ret, i)
            })
            .collect();
        ops.sort();
        let mut s = INITIAL;
        let mut out = Vec::new();
        for (_, call, ret, i) in ops {
            let value = 100 + i as u64;
            let unknown = r.percent(20);
            let op = match r.below(3) {
                0 => r_(s.value, s.version),
                1 => {
                    let applied = !unknown || r.percent(50);
                    if applied {
                        s = State {
                            value,
                            version: s.version + 1,
                        };
                    }
                    RegOp::Write {
                        value,
                        version: (!unknown).then_some(s.version),
                    }
                }
                _ => {
                    let expect = (s.version + r.below(3) as i32 - 1).max(0);
                    let hit = expect == s.version;
                    let applied = !unknown || r.percent(50);
                    let result = if unknown {
                        CasResult::Unknown
                    } else if hit {
                        CasResult::Ok(expect + 1)
                    } else {
                        CasResult::BadVersion
                    };
                    if hit && applied {
                        s = State {
                            value,
                            version: expect + 1,
                        };
                    }
                    RegOp::Cas {
                        expect,
                        value,
                        result,
                    }
                }
            };
            let is_read = matches!(op, RegOp::Read { .. });
            let ret = if unknown && !is_read { u64::MAX } else { ret };
            out.push(e(i as u64, call, ret, op));
        }
        if r.percent(40) {
            let k = r.below(out.len());
            out[k].op = match out[k].op {
                RegOp::Read { value, version } => {
                    if r.percent(50) {
                        r_(100 + r.below(n) as u64, version)
                    } else {
                        r_(value, version + 1 - 2 * r.below(2) as i32)
                    }
                }
                RegOp::Write { value, version } => RegOp::Write {
                    value,
                    version: version.map(|v| v + 1),
                },
                RegOp::Cas {
                    expect,
                    value,
                    result,
                } => RegOp::Cas {
                    expect,
                    value,
                    result: match result {
                        CasResult::Ok(_) => CasResult::BadVersion,
                        CasResult::BadVersion => CasResult::Ok(expect + 1),
                        CasResult::Unknown => CasResult::Unknown,
                    },
                },
            };
        }
        // Shuffle so nothing depends on input order.
        for i in (1..out.len()).rev() {
            out.swap(i, r.below(i + 1));
        }
        out
    }

    fn r_(value: u64, version: i32) -> RegOp {
        RegOp::Read { value, version }
    }

    #[test]
    fn wing_gong_agrees_with_brute_force_on_random_small_histories() {
        let (mut yes, mut no) = (0, 0);
        for seed in 0..4000 {
            let mut rng = Rng::new(seed);
            let h = random_history(&mut rng);
            let brute = brute_force(&h, INITIAL);
            let wg = check(&h, INITIAL);
            assert_eq!(
                wg == Verdict::Linearizable,
                brute,
                "seed {seed}: Wing-Gong {wg:?}, brute force {brute}: {h:#?}"
            );
            if brute {
                yes += 1;
            } else {
                no += 1;
                let s = shrink(&h, INITIAL);
                assert!(!brute_force(&s, INITIAL), "seed {seed}: shrunk {s:?}");
            }
        }
        // Both kinds must be well represented for the comparison to mean anything.
        assert!(yes > 1000 && no > 500, "linearizable {yes}, not {no}");
    }

    #[test]
    fn a_long_history_of_many_concurrent_ops_is_checked_within_bounds() {
        // 5 processes, 40 ops each, all overlapping a little: memoisation keeps it fast.
        let mut h = Vec::new();
        let mut s = INITIAL;
        for i in 0..200u64 {
            let call = i * 10;
            let ret = call + 45;
            let op = if i % 3 == 0 {
                s = State {
                    value: i + 1,
                    version: s.version + 1,
                };
                w(s.value, s.version)
            } else {
                r(s.value, s.version)
            };
            h.push(e(i, call, ret, op));
        }
        assert_eq!(check(&h, INITIAL), Verdict::Linearizable);
    }
}
