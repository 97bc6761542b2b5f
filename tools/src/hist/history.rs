//! The recorded history of one run: what each client process asked, when, and what
//! came back, as JSON lines (one file per run).
//!
//! Contract of the file:
//! - the first line is a [`Header`] (`"type":"header"`): the seed, the system and
//!   server, the workload's shape and the fault schedule;
//! - then, in the order the recorder received them, one line per event: `invoke`
//!   (with the [`Call`]) before the request is sent, and exactly one of `ok` / `fail`
//!   / `unknown` for it (same `op` number) once it is known, or none if the run was
//!   cut short; `nemesis` lines say when a fault began and ended;
//! - times (`t_ns`) are nanoseconds of one monotonic clock since the run started;
//! - `ok`: the server answered with success; `fail`: it answered with an error, so the
//!   op did not take effect (for a versioned setData, `BadVersion` says the version
//!   differed); `unknown`: the connection dropped or timed out after the request may
//!   have been sent, so it may or may not take effect, at any time after its invoke.
//!
//! [`History::parse`] pairs the lines back into [`Op`]s for the checkers.

use serde::{Deserialize, Serialize};

/// Bumped when the meaning of a line changes.
pub const HISTORY_FORMAT: u32 = 1;
/// The process number of the final reads, made after the faults are healed, at the
/// first server; the final reads at server `i` of an ensemble are `FINAL_PROCESS + i`.
pub const FINAL_PROCESS: u32 = 1_000_000;

/// Whether `process` made final reads (at any server).
pub fn is_final(process: u32) -> bool {
    process >= FINAL_PROCESS
}

/// A fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9`, then a restart on the same port and data after `for_ms`.
    Kill,
    /// SIGSTOP, then SIGCONT after `for_ms`.
    Pause,
    /// A client goes silent: one worker drops its connection without closing its
    /// session and sends nothing for `for_ms` (longer than the session timeout), so
    /// the server expires the session and must remove its ephemerals.
    Silence,
    /// The links between ensemble members on different sides are cut (the shape, from
    /// the seed: the leader alone, a minority and a majority, or two sides joined by
    /// one bridging member); clients still reach every server. Healed after `for_ms`.
    Partition,
    /// Every link of one member is slowed: a one-way delay and lost segments (held as
    /// long as a TCP retransmission takes). Healed after `for_ms`.
    Slow,
    /// The wall clock of one server (corekeeper's fault hook; ZooKeeper has none, so
    /// nothing happens to it) steps forward or back by up to an hour, and back after
    /// `for_ms`. Sessions must not expire for it, nothing may be lost.
    Clock,
    /// One member's data directory (a FUSE pass-through, `bench::faultfs`) stalls
    /// every fsync, or fails them with EIO (the member then stops, as both systems do
    /// rather than acknowledge what may not be durable), for `for_ms`; healed, a
    /// member that stopped is restarted on the same data.
    Fsync,
}

/// One entry of the fault schedule (milliseconds from the start of the workload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub at_ms: u64,
    pub kind: FaultKind,
    pub for_ms: u64,
}

/// The first line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub seed: u64,
    /// `corekeeper` or `zookeeper`.
    pub system: String,
    pub server: String,
    /// Root of the run's nodes.
    pub root: String,
    pub workers: u32,
    pub duration_ms: u64,
    pub keys_per_window: u32,
    /// Most ops one worker makes on one key.
    pub ops_per_key_per_worker: u32,
    pub session_timeout_ms: i32,
    pub schedule: Vec<Fault>,
}

/// What a client asked. Keys are registers `root/r/k<key>`, created with value 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Call {
    /// getData.
    Read { key: u32 },
    /// sync, then getData on the same session.
    SyncRead { key: u32 },
    /// setData with version -1.
    Write { key: u32, value: u64 },
    /// setData with the version this process last saw.
    Cas { key: u32, expect: i32, value: u64 },
    /// One multi of setData -1 on distinct keys.
    Multi { writes: Vec<(u32, u64)> },
    /// A persistent sequential create under `root/seq/p<parent>`.
    CreateSeq { parent: u32 },
    /// An ephemeral create of `root/eph/<name>`.
    CreateEph { name: String },
    /// getChildren of `root/eph`.
    ListEph,
    /// getChildren of `root/seq/p<parent>` (final reads).
    ListSeq { parent: u32 },
    /// closeSession (the process then opens a new session).
    Close,
    /// Reattach to `session` after a lost connection; `fail` = expired.
    Reconnect { session: i64 },
}

impl Call {
    /// The register keys the call touches.
    pub fn keys(&self) -> Vec<u32> {
        match self {
            Call::Read { key }
            | Call::SyncRead { key }
            | Call::Write { key, .. }
            | Call::Cas { key, .. } => vec![*key],
            Call::Multi { writes } => writes.iter().map(|(k, _)| *k).collect(),
            _ => Vec::new(),
        }
    }
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "kebab-case")]
pub enum Reply {
    /// A read's value and stat.
    Value {
        value: u64,
        version: i32,
        mzxid: i64,
    },
    /// A setData's new stat.
    Written {
        version: i32,
        mzxid: i64,
    },
    /// The multi's new versions, one per write, in order.
    MultiWritten {
        versions: Vec<i32>,
        mzxid: i64,
    },
    /// The created node's name (last path component).
    Created {
        name: String,
    },
    Children {
        names: Vec<String>,
    },
    Done,
    /// A ZooKeeper error code.
    Error {
        code: i32,
    },
}

/// The body of an event line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub op: u64,
    pub process: u32,
    pub t_ns: u64,
    /// The session the op was sent on (0: none yet).
    pub session: i64,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// The reply header's zxid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zxid: Option<i64>,
    /// Why an op is unknown (the IO error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A nemesis event: a fault began (`start`) or was healed (`end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    pub t_ns: u64,
    pub kind: FaultKind,
    pub phase: String,
    /// What exactly was done (`{1} | {2,3}`, `node2: 80 ms, 10% loss`), when not
    /// implied by the kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One line of a history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Header(Header),
    Invoke(Event),
    Ok(Event),
    Fail(Event),
    Unknown(Event),
    Nemesis(NemesisEvent),
}

impl Line {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("history lines always serialise")
    }
}

/// How an op ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Reply),
    Fail(Reply),
    /// May or may not have taken effect; open until +inf.
    Unknown,
}

/// An invoke paired with its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub id: u64,
    pub process: u32,
    pub session: i64,
    pub server: String,
    pub call: Call,
    pub invoke_ns: u64,
    /// None: unknown (never completed as far as the client knows).
    pub complete_ns: Option<u64>,
    pub outcome: Outcome,
    pub zxid: Option<i64>,
}

impl Op {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
    /// Completion time, +inf for unknown ops.
    pub fn end_ns(&self) -> u64 {
        self.complete_ns.unwrap_or(u64::MAX)
    }

    /// One line for violation reports.
    pub fn describe(&self) -> String {
        let end = match self.complete_ns {
            Some(t) => format!("{:.3}ms", t as f64 / 1e6),
            None => "+inf".into(),
        };
        let outcome = match &self.outcome {
            Outcome::Ok(r) => format!("ok {}", reply_text(r)),
            Outcome::Fail(r) => format!("fail {}", reply_text(r)),
            Outcome::Unknown => "unknown".into(),
        };
        let zxid = self.zxid.map_or(String::new(), |z| format!(" zxid {z:#x}"));
        format!(
            "op {} p{} s{:#x} [{:.3}ms, {end}] {} -> {outcome}{zxid}",
            self.id,
            self.process,
            self.session,
            self.invoke_ns as f64 / 1e6,
            call_text(&self.call),
        )
    }
}

fn call_text(c: &Call) -> String {
    match c {
        Call::Read { key } => format!("read k{key}"),
        Call::SyncRead { key } => format!("sync-read k{key}"),
        Call::Write { key, value } => format!("write k{key} {value}"),
        Call::Cas { key, expect, value } => format!("cas k{key} v{expect} {value}"),
        Call::Multi { writes } => {
            let w: Vec<String> = writes.iter().map(|(k, v)| format!("k{k}={v}")).collect();
            format!("multi {}", w.join(" "))
        }
        Call::CreateSeq { parent } => format!("create-seq p{parent}"),
        Call::CreateEph { name } => format!("create-eph {name}"),
        Call::ListEph => "list-eph".into(),
        Call::ListSeq { parent } => format!("list-seq p{parent}"),
        Call::Close => "close".into(),
        Call::Reconnect { session } => format!("reconnect {session:#x}"),
    }
}

fn reply_text(r: &Reply) -> String {
    match r {
        Reply::Value {
            value,
            version,
            mzxid,
        } => format!("{value} v{version} mzxid {mzxid:#x}"),
        Reply::Written { version, mzxid } => format!("v{version} mzxid {mzxid:#x}"),
        Reply::MultiWritten { versions, mzxid } => format!("{versions:?} mzxid {mzxid:#x}"),
        Reply::Created { name } => name.clone(),
        Reply::Children { names } => format!("{} children {names:?}", names.len()),
        Reply::Done => "done".into(),
        Reply::Error { code } => {
            let name = transport::jute::ErrorCode::from_code(*code)
                .map_or_else(|| code.to_string(), |c| format!("{c:?}"));
            format!("error {name}")
        }
    }
}

/// A history read back: its header, ops (in invoke order) and nemesis events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub header: Header,
    pub ops: Vec<Op>,
    pub nemesis: Vec<NemesisEvent>,
}

impl History {
    /// Pairs the lines of a history file. Completions without an invoke, or a second
    /// completion, are errors naming the line.
    pub fn parse(text: &str) -> Result<History, String> {
        let mut header = None;
        let mut ops: Vec<Op> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut nemesis = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let parsed: Line =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            let (ev, outcome) = match parsed {
                Line::Header(h) => {
                    header = Some(h);
                    continue;
                }
                Line::Nemesis(e) => {
                    nemesis.push(e);
                    continue;
                }
                Line::Invoke(e) => {
                    let call = e
                        .call
                        .clone()
                        .ok_or_else(|| format!("line {}: invoke without a call", n + 1))?;
                    if index.insert(e.op, ops.len()).is_some() {
                        return Err(format!("line {}: op {} invoked twice", n + 1, e.op));
                    }
                    ops.push(Op {
                        id: e.op,
                        process: e.process,
                        session: e.session,
                        server: e.server,
                        call,
                        invoke_ns: e.t_ns,
                        complete_ns: None,
                        outcome: Outcome::Unknown,
                        zxid: None,
                    });
                    continue;
                }
                Line::Ok(e) => {
                    let r = e.reply.clone().unwrap_or(Reply::Done);
                    (e, Some(Outcome::Ok(r)))
                }
                Line::Fail(e) => {
                    let r = e.reply.clone().unwrap_or(Reply::Done);
                    (e, Some(Outcome::Fail(r)))
                }
                Line::Unknown(e) => (e, None),
            };
            let i = *index
                .get(&ev.op)
                .ok_or_else(|| format!("line {}: op {} completed, never invoked", n + 1, ev.op))?;
            let op = &mut ops[i];
            if op.complete_ns.is_some() {
                return Err(format!("line {}: op {} completed twice", n + 1, ev.op));
            }
            if let Some(o) = outcome {
                op.outcome = o;
                op.complete_ns = Some(ev.t_ns);
                op.zxid = ev.zxid;
            }
        }
        let header = header.ok_or("no header line")?;
        ops.sort_by_key(|o| (o.invoke_ns, o.id));
        Ok(History {
            header,
            ops,
            nemesis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: u64, t_ns: u64) -> Event {
        Event {
            op,
            process: 1,
            t_ns,
            session: 7,
            server: "127.0.0.1:1".into(),
            call: None,
            reply: None,
            zxid: None,
            error: None,
        }
    }

    #[test]
    fn lines_round_trip_and_pair_up() {
        let header = Header {
            format: HISTORY_FORMAT,
            seed: 3,
            system: "corekeeper".into(),
            server: "127.0.0.1:1".into(),
            root: "/ckj".into(),
            workers: 2,
            duration_ms: 10,
            keys_per_window: 4,
            ops_per_key_per_worker: 3,
            session_timeout_ms: 10_000,
            schedule: vec![Fault {
                at_ms: 5,
                kind: FaultKind::Kill,
                for_ms: 100,
            }],
        };
        let lines = [
            Line::Header(header.clone()),
            Line::Invoke(Event {
                call: Some(Call::Write { key: 1, value: 9 }),
                ..ev(0, 10)
            }),
            Line::Invoke(Event {
                call: Some(Call::Multi {
                    writes: vec![(1, 10), (2, 11)],
                }),
                ..ev(1, 11)
            }),
            Line::Ok(Event {
                reply: Some(Reply::Written {
                    version: 1,
                    mzxid: 5,
                }),
                zxid: Some(5),
                ..ev(0, 20)
            }),
            Line::Unknown(Event {
                error: Some("reset".into()),
                ..ev(1, 30)
            }),
            Line::Nemesis(NemesisEvent {
                t_ns: 31,
                kind: FaultKind::Kill,
                phase: "start".into(),
                detail: String::new(),
            }),
            Line::Nemesis(NemesisEvent {
                t_ns: 32,
                kind: FaultKind::Partition,
                phase: "start".into(),
                detail: "{1} | {2,3}".into(),
            }),
        ];
        let text: String = lines.iter().map(|l| l.to_json() + "\n").collect();
        assert!(text.contains(r#""type":"invoke""#), "{text}");
        assert!(text.contains(r#""f":"write""#), "{text}");
        let h = History::parse(&text).unwrap();
        assert_eq!(h.header, header);
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[0].complete_ns, Some(20));
        assert_eq!(h.ops[0].zxid, Some(5));
        assert!(h.ops[0].is_ok());
        assert_eq!(h.ops[1].outcome, Outcome::Unknown);
        assert_eq!(h.ops[1].end_ns(), u64::MAX);
        assert_eq!(h.nemesis.len(), 2);
        assert_eq!(h.nemesis[1].detail, "{1} | {2,3}");
        assert!(
            !text.contains(r#""detail":"""#),
            "empty details are left out: {text}"
        );
        assert!(h.ops[0].describe().contains("write k1 9 -> ok v1"));
    }

    #[test]
    fn a_completion_without_invoke_is_an_error() {
        let h = Line::Header(Header {
            format: 1,
            seed: 0,
            system: String::new(),
            server: String::new(),
            root: String::new(),
            workers: 0,
            duration_ms: 0,
            keys_per_window: 0,
            ops_per_key_per_worker: 0,
            session_timeout_ms: 0,
            schedule: vec![],
        });
        let text = format!("{}\n{}\n", h.to_json(), Line::Ok(ev(4, 1)).to_json());
        assert!(History::parse(&text).unwrap_err().contains("never invoked"));
    }
}
