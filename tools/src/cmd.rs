//! Argument parsing: the invocation (`-server`, `-timeout`, `--auth`) and zkCli's verbs.
//!
//! Contract:
//! - flags may come before, between or after the positional arguments (as zkCli's
//!   commons-cli parser allows); boolean flags may be bundled (`-es`); `--` ends flags,
//!   so data starting with `-` can be given (`set /a -- -1`);
//! - every path is checked with [`validate_path`] before anything is sent;
//! - a bad invocation is a [`UsageError`] naming the verb's usage line, never a panic;
//! - [`tokenize`] splits a batch-mode line like zkCli does: on whitespace, with `"..."`
//!   and `'...'` quoting (quotes removed).
//!
//! Pure: no IO.

use std::fmt;

use transport::jute::{Acl, AddWatchMode, CreateMode};

use crate::acl;
use crate::connect::{ConnectString, validate_path};

/// Default session timeout asked of the server, as zkCli's.
pub const SESSION_TIMEOUT_MS_DEFAULT: i32 = 30_000;
/// Largest session timeout accepted on the command line.
pub const SESSION_TIMEOUT_MS_MAX: i32 = 3_600_000;
/// Most arguments one command may have.
pub const ARGS_MAX: usize = 4096;

/// The four-letter words ckctl sends as verbs (`stat` stays zkCli's node verb).
pub const FOUR_LETTER_VERBS: &[&str] = &[
    "srvr", "mntr", "ruok", "cons", "conf", "envi", "wchs", "dirs", "isro",
];

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Option<Vec<Acl>>,
        mode: CreateMode,
        ttl: Option<i64>,
    },
    Get {
        path: String,
        stat: bool,
        watch: bool,
    },
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
        stat: bool,
    },
    Delete {
        path: String,
        version: i32,
    },
    DeleteAll {
        path: String,
    },
    Ls {
        path: String,
        stat: bool,
        watch: bool,
        recursive: bool,
    },
    Stat {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    /// The number of descendants of `path`.
    GetAllChildrenNumber {
        path: String,
    },
    /// The session's ephemerals under `path`.
    GetEphemerals {
        path: String,
    },
    /// `events`: wait for this many events before returning (`None`: in one-shot mode
    /// until interrupted; in batch mode return at once and print events as they come).
    AddWatch {
        path: String,
        mode: AddWatchMode,
        events: Option<u64>,
    },
    GetAcl {
        path: String,
        stat: bool,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
        stat: bool,
        recursive: bool,
    },
    AddAuth {
        scheme: String,
        auth: Vec<u8>,
    },
    /// The ensemble's members (`/zookeeper/config`); `client`: only the version and
    /// the client addresses (zkCli's `config -c`).
    Config {
        client: bool,
        watch: bool,
        stat: bool,
    },
    /// Dynamic reconfiguration (zkCli's `reconfig`): incremental (`joining`,
    /// `leaving`) or whole (`members`), from config `version` (-1: any).
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        members: Option<String>,
        version: i64,
        stat: bool,
    },
    /// A four-letter word to `addr`, or to the connect string's servers.
    FourLetter {
        word: &'static str,
        addr: Option<String>,
    },
    /// corekeeper's per-core profile, live: `mntr` every `interval_ms`, `count` times
    /// (until interrupted when `None`); with `admin` (a port on the server's host, or
    /// `host:port`) the admin port's `/metrics` instead.
    Top {
        addr: Option<String>,
        admin: Option<String>,
        interval_ms: u64,
        count: Option<u64>,
    },
    /// Prints [`USAGE`].
    Help,
    /// Ends batch mode.
    Quit,
}

impl Command {
    /// Whether the command needs a session (four-letter words and quit do not).
    pub fn needs_session(&self) -> bool {
        !matches!(
            self,
            Command::FourLetter { .. } | Command::Top { .. } | Command::Help | Command::Quit
        )
    }
}

/// A bad command line: the message, and the usage text to show with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub usage: &'static str,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.usage.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}\n{}", self.message, self.usage)
        }
    }
}

impl std::error::Error for UsageError {}

/// Every verb's usage line, as `help` prints them.
pub const USAGE: &str = "\
ckctl [-server host:port,host:port/chroot] [-timeout ms] [--auth scheme:auth] [command [args]]
  with no command, reads commands from stdin, one a line
	addauth scheme auth
	addWatch [-m mode] [--events N] path # mode is PERSISTENT or PERSISTENT_RECURSIVE (default)
	config [-c] [-w] [-s]
	create [-s] [-e] [-c] [-t ttl] path [data] [acl]
	delete [-v version] path
	deleteall path
	get [-s] [-w] path
	getAcl [-s] path
	getAllChildrenNumber path
	getEphemerals [path]
	ls [-s] [-w] [-R] path
	set [-s] [-v version] path data
	setAcl [-s] [-v version] [-R] path acl
	stat [-w] path
	sync path
	srvr|mntr|ruok|cons|conf|envi|wchs|dirs|isro [host:port]
	top [-i interval_ms] [-n count] [-a admin_port|host:port] [host:port] # corekeeper's per-core profile, live (mntr, or /metrics with -a)
	help
	reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]
	quit";

fn usage_of(verb: &str) -> &'static str {
    USAGE
        .lines()
        .map(str::trim)
        .find(|l| l.split([' ', '|']).next() == Some(verb))
        .unwrap_or(USAGE)
}

/// Flags and positional arguments of one verb, after splitting.
struct Parsed {
    flags: Vec<(char, Option<String>)>,
    positional: Vec<String>,
}

impl Parsed {
    fn has(&self, f: char) -> bool {
        self.flags.iter().any(|(c, _)| *c == f)
    }
    fn value(&self, f: char) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(c, _)| *c == f)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Splits `args` into flags and positionals. `booleans` are flag letters without a
/// value, `valued` letters take the next argument; `--events` is spelled out and
/// stored as `E`.
fn split(args: &[String], booleans: &str, valued: &str, verb: &str) -> Result<Parsed, UsageError> {
    let bad = |m: String| UsageError {
        message: m,
        usage: usage_of(verb),
    };
    let mut out = Parsed {
        flags: Vec::new(),
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.positional.extend(it.by_ref().cloned());
            break;
        }
        if a == "--events" && valued.contains('E') {
            let v = it
                .next()
                .ok_or_else(|| bad("--events needs a value".into()))?;
            out.flags.push(('E', Some(v.clone())));
            continue;
        }
        let Some(letters) = a.strip_prefix('-').filter(|l| !l.is_empty()) else {
            out.positional.push(a.clone());
            continue;
        };
        let mut chars = letters.chars();
        while let Some(c) = chars.next() {
            if booleans.contains(c) {
                out.flags.push((c, None));
            } else if valued.contains(c) {
                let rest: String = chars.by_ref().collect();
                let v = if rest.is_empty() {
                    it.next()
                        .cloned()
                        .ok_or_else(|| bad(format!("-{c} needs a value")))?
                } else {
                    rest
                };
                out.flags.push((c, Some(v)));
            } else {
                return Err(bad(format!("Unrecognized option: -{c}")));
            }
        }
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(v: &str, what: &str, verb: &str) -> Result<T, UsageError> {
    v.parse().map_err(|_| UsageError {
        message: format!("{what} must be a number, not {v:?}"),
        usage: usage_of(verb),
    })
}

/// What the first positional argument is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum First {
    /// A znode path (checked).
    Path,
    /// A path a sequential create may end in `/`.
    SequentialPath,
    /// Anything else.
    Other,
}

/// Takes `min..=max` positionals, checking the first per `first`.
fn positionals(
    p: &Parsed,
    min: usize,
    max: usize,
    verb: &str,
    first: First,
) -> Result<Vec<String>, UsageError> {
    let n = p.positional.len();
    if n < min || n > max {
        return Err(UsageError {
            message: match (min, max) {
                (1, 1) => format!("{verb}: expected 1 argument, got {n}"),
                (a, b) if a == b => format!("{verb}: expected {a} arguments, got {n}"),
                (a, b) => format!("{verb}: expected {a} to {b} arguments, got {n}"),
            },
            usage: usage_of(verb),
        });
    }
    if let Some(path) = p.positional.first()
        && first != First::Other
    {
        validate_path(path, first == First::SequentialPath).map_err(|m| UsageError {
            message: m,
            usage: "",
        })?;
    }
    Ok(p.positional.clone())
}

/// Parses one command (verb first).
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((verb, rest)) = args.split_first() else {
        return Err(UsageError {
            message: "no command given".into(),
            usage: USAGE,
        });
    };
    if args.len() > ARGS_MAX {
        return Err(UsageError {
            message: format!("more than {ARGS_MAX} arguments"),
            usage: "",
        });
    }
    let v = verb.as_str();
    match v {
        "create" => parse_create(rest),
        "get" => {
            let p = split(rest, "sw", "", v)?;
            let pos = positionals(&p, 1, 1, v, First::Path)?;
            Ok(Command::Get {
                path: pos[0].clone(),
                stat: p.has('s'),
                watch: p.has('w'),
            })
        }
        "set" => {
            let p = split(rest, "s", "v", v)?;
            let pos = positionals(&p, 2, 2, v, First::Path)?;
            Ok(Command::Set {
                path: pos[0].clone(),
                data: pos[1].clone().into_bytes(),
                version: version(&p, v)?,
                stat: p.has('s'),
            })
        }
        "delete" => {
            let p = split(rest, "", "v", v)?;
            let pos = positionals(&p, 1, 1, v, First::Path)?;
            Ok(Command::Delete {
                path: pos[0].clone(),
                version: version(&p, v)?,
            })
        }
        "deleteall" | "rmr" => {
            let p = split(rest, "", "b", "deleteall")?;
            let pos = positionals(&p, 1, 1, "deleteall", First::Path)?;
            Ok(Command::DeleteAll {
                path: pos[0].clone(),
            })
        }
        "ls" | "ls2" => {
            let p = split(rest, "swR", "", "ls")?;
            let pos = positionals(&p, 1, 1, "ls", First::Path)?;
            Ok(Command::Ls {
                path: pos[0].clone(),
                stat: p.has('s') || v == "ls2",
                watch: p.has('w'),
                recursive: p.has('R'),
            })
        }
        "stat" => {
            let p = split(rest, "w", "", v)?;
            let pos = positionals(&p, 1, 1, v, First::Path)?;
            Ok(Command::Stat {
                path: pos[0].clone(),
                watch: p.has('w'),
            })
        }
        "sync" => {
            let p = split(rest, "", "", v)?;
            let pos = positionals(&p, 1, 1, v, First::Path)?;
            Ok(Command::Sync {
                path: pos[0].clone(),
            })
        }
        "addWatch" => parse_add_watch(rest),
        "getAllChildrenNumber" => {
            let p = split(rest, "", "", v)?;
            let pos = positionals(&p, 1, 1, v, First::Path)?;
            Ok(Command::GetAllChildrenNumber {
                path: pos[0].clone(),
            })
        }
        "getEphemerals" => {
            let p = split(rest, "", "", v)?;
            let pos = positionals(&p, 0, 1, v, First::Path)?;
            Ok(Command::GetEphemerals {
                path: pos.first().cloned().unwrap_or_else(|| "/".into()),
            })
        }
        "getAcl" => {
            let p = split(rest, "s", "", v)?;
            let pos = positionals(&p, 1, 1, v, First::Path)?;
            Ok(Command::GetAcl {
                path: pos[0].clone(),
                stat: p.has('s'),
            })
        }
        "setAcl" => {
            let p = split(rest, "sR", "v", v)?;
            let pos = positionals(&p, 2, 2, v, First::Path)?;
            Ok(Command::SetAcl {
                path: pos[0].clone(),
                acl: acl_arg(&pos[1], v)?,
                version: version(&p, v)?,
                stat: p.has('s'),
                recursive: p.has('R'),
            })
        }
        "addauth" => {
            let p = split(rest, "", "", v)?;
            let pos = positionals(&p, 1, 2, v, First::Other)?;
            Ok(Command::AddAuth {
                scheme: pos[0].clone(),
                auth: pos.get(1).cloned().unwrap_or_default().into_bytes(),
            })
        }
        "top" => {
            let p = split(rest, "", "ina", "top")?;
            let pos = positionals(&p, 0, 1, "top", First::Other)?;
            let interval_ms: u64 = p
                .value('i')
                .map_or(Ok(1000), |v| num(v, "interval", "top"))?;
            if !(crate::top::TOP_INTERVAL_MS_MIN..=crate::top::TOP_INTERVAL_MS_MAX)
                .contains(&interval_ms)
            {
                return Err(UsageError {
                    message: format!(
                        "top: interval must be within {}..={} ms",
                        crate::top::TOP_INTERVAL_MS_MIN,
                        crate::top::TOP_INTERVAL_MS_MAX
                    ),
                    usage: usage_of("top"),
                });
            }
            let count = p.value('n').map(|v| num(v, "count", "top")).transpose()?;
            Ok(Command::Top {
                addr: pos.first().cloned(),
                admin: p.value('a').map(str::to_string),
                interval_ms,
                count,
            })
        }
        "config" => {
            let p = split(rest, "cws", "", v)?;
            positionals(&p, 0, 0, v, First::Other)?;
            Ok(Command::Config {
                client: p.has('c'),
                watch: p.has('w'),
                stat: p.has('s'),
            })
        }
        "reconfig" => parse_reconfig(rest),
        "quit" | "exit" => Ok(Command::Quit),
        "help" => Ok(Command::Help),
        w => match FOUR_LETTER_VERBS.iter().find(|x| **x == w) {
            Some(word) => {
                let p = split(rest, "", "", word)?;
                let pos = positionals(&p, 0, 1, word, First::Other)?;
                Ok(Command::FourLetter {
                    word,
                    addr: pos.first().cloned(),
                })
            }
            None => Err(UsageError {
                message: format!("unknown command {w:?}"),
                usage: USAGE,
            }),
        },
    }
}

fn version(p: &Parsed, verb: &str) -> Result<i32, UsageError> {
    p.value('v').map_or(Ok(-1), |v| num(v, "version", verb))
}

fn acl_arg(text: &str, verb: &str) -> Result<Vec<Acl>, UsageError> {
    acl::parse(text).map_err(|m| UsageError {
        message: m,
        usage: usage_of(verb),
    })
}

fn parse_create(rest: &[String]) -> Result<Command, UsageError> {
    let v = "create";
    let p = split(rest, "sec", "t", v)?;
    let (s, e, c) = (p.has('s'), p.has('e'), p.has('c'));
    let ttl: Option<i64> = p.value('t').map(|t| num(t, "ttl", v)).transpose()?;
    let refuse = |m: &str| {
        Err(UsageError {
            message: m.to_string(),
            usage: usage_of(v),
        })
    };
    if ttl.is_some() && e {
        return refuse("TTLs cannot be used with Ephemeral znodes");
    }
    if ttl.is_some() && c {
        return refuse("TTLs cannot be used with Container znodes");
    }
    if c && (s || e) {
        return refuse(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        );
    }
    if ttl.is_some_and(|t| t <= 0) {
        return refuse("ttl must be positive");
    }
    let mode = match (s, e, c, ttl.is_some()) {
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (false, true, _, _) => CreateMode::Ephemeral,
        (true, false, _, true) => CreateMode::PersistentSequentialWithTtl,
        (true, false, _, false) => CreateMode::PersistentSequential,
        (false, false, true, _) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, false, false, false) => CreateMode::Persistent,
    };
    let pos = positionals(
        &p,
        1,
        3,
        v,
        if s {
            First::SequentialPath
        } else {
            First::Path
        },
    )?;
    Ok(Command::Create {
        path: pos[0].clone(),
        data: pos.get(1).map(|d| d.clone().into_bytes()),
        acl: pos.get(2).map(|a| acl_arg(a, v)).transpose()?,
        mode,
        ttl,
    })
}

/// zkCli's `reconfig` options (whole words: `-add`, `-remove`, `-members`, `-file`,
/// `-v` in hex, `-s`) and its checks, in its order and words. `-file` takes the
/// file's `server.N=` lines as the new members.
fn parse_reconfig(rest: &[String]) -> Result<Command, UsageError> {
    let usage = usage_of("reconfig");
    let bad = |message: String| UsageError { message, usage };
    let (mut joining, mut leaving, mut members, mut file) = (None, None, None, None);
    let (mut version, mut stat) = (None, false);
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| bad(format!("Missing argument for option: {name}")))
        };
        match a.as_str() {
            "-s" => stat = true,
            "-v" => version = Some(value("v")?),
            "-add" => joining = Some(value("add")?.to_lowercase()),
            "-remove" => leaving = Some(value("remove")?.to_lowercase()),
            "-members" => members = Some(value("members")?.to_lowercase()),
            "-file" => file = Some(value("file")?),
            other if other.starts_with('-') => {
                return Err(bad(format!("Unrecognized option: {other}")));
            }
            _ => {}
        }
    }
    if file.is_none() && members.is_none() && joining.is_none() && leaving.is_none() {
        // zkCli prints just the usage line.
        return Err(UsageError {
            message: usage.to_string(),
            usage: "",
        });
    }
    let version = match version {
        Some(v) => i64::from_str_radix(&v, 16).map_err(|_| UsageError {
            message: "-v must be followed by a long (configuration version)".into(),
            usage: "",
        })?,
        None => -1,
    };
    let whole = file.is_some() || members.is_some();
    if whole && (joining.is_some() || leaving.is_some()) {
        return Err(UsageError {
            message: "Can't use -file or -members together with -add or -remove (mixing \
                      incremental and non-incremental modes is not allowed)"
                .into(),
            usage: "",
        });
    }
    if file.is_some() && members.is_some() {
        return Err(UsageError {
            message: "Can't use -file and -members together (conflicting non-incremental modes)"
                .into(),
            usage: "",
        });
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| UsageError {
            message: format!("Error processing {path}{e}"),
            usage: "",
        })?;
        let lines: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("server."))
            .map(|l| l.replace(' ', "").to_lowercase())
            .collect();
        members = Some(lines.join(","));
    }
    Ok(Command::Reconfig {
        joining,
        leaving,
        members,
        version,
        stat,
    })
}

fn parse_add_watch(rest: &[String]) -> Result<Command, UsageError> {
    let v = "addWatch";
    let p = split(rest, "", "mE", v)?;
    let mode = match p.value('m').map(str::to_ascii_lowercase).as_deref() {
        None | Some("persistent_recursive") | Some("persistentrecursive") => {
            AddWatchMode::PersistentRecursive
        }
        Some("persistent") => AddWatchMode::Persistent,
        Some(other) => {
            return Err(UsageError {
                message: format!(
                    "mode must be one of: [PERSISTENT, PERSISTENT_RECURSIVE], not {other:?}"
                ),
                usage: usage_of(v),
            });
        }
    };
    let events = p.value('E').map(|n| num(n, "--events", v)).transpose()?;
    let pos = positionals(&p, 1, 1, v, First::Path)?;
    Ok(Command::AddWatch {
        path: pos[0].clone(),
        mode,
        events,
    })
}

/// Splits a batch-mode line into arguments (zkCli's quoting rules).
pub fn tokenize(line: &str) -> Result<Vec<String>, UsageError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut arg = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                match chars.next() {
                    Some(c) if c == first => break,
                    Some(c) => arg.push(c),
                    None => {
                        return Err(UsageError {
                            message: format!("unterminated {first} quote in: {line}"),
                            usage: "",
                        });
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        out.push(arg);
    }
}

/// The whole command line: connection options, then an optional command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub connect: ConnectString,
    pub timeout_ms: i32,
    /// `(scheme, auth)` pairs added right after connecting.
    pub auth: Vec<(String, Vec<u8>)>,
    /// `None`: batch mode (commands from stdin).
    pub command: Option<Command>,
}

/// Parses `ckctl`'s arguments (without the program name).
pub fn parse_invocation(args: &[String]) -> Result<Invocation, UsageError> {
    let bad = |m: String| UsageError {
        message: m,
        usage: USAGE,
    };
    let mut connect = "localhost:2181".to_string();
    let mut timeout_ms = SESSION_TIMEOUT_MS_DEFAULT;
    let mut auth = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if !matches!(flag, "-server" | "-timeout" | "--auth") {
            break;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        match flag {
            "-server" => connect = value.clone(),
            "-timeout" => {
                timeout_ms = value
                    .parse()
                    .ok()
                    .filter(|t| (1..=SESSION_TIMEOUT_MS_MAX).contains(t))
                    .ok_or_else(|| {
                        bad(format!("-timeout must be 1..={SESSION_TIMEOUT_MS_MAX} ms"))
                    })?
            }
            _ => {
                let (scheme, a) = value
                    .split_once(':')
                    .ok_or_else(|| bad("--auth takes scheme:auth".into()))?;
                auth.push((scheme.to_string(), a.as_bytes().to_vec()));
            }
        }
        i += 2;
    }
    let connect = ConnectString::parse(&connect).map_err(|e| bad(e.0))?;
    let command = match &args[i..] {
        [] => None,
        rest => Some(parse(rest)?),
    };
    Ok(Invocation {
        connect,
        timeout_ms,
        auth,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::perms;

    fn p(line: &str) -> Result<Command, UsageError> {
        parse(&tokenize(line).unwrap())
    }

    #[test]
    fn create_modes() {
        let c = |l: &str| match p(l).unwrap() {
            Command::Create { mode, ttl, .. } => (mode, ttl),
            other => panic!("{other:?}"),
        };
        assert_eq!(c("create /a"), (CreateMode::Persistent, None));
        assert_eq!(c("create -s /a"), (CreateMode::PersistentSequential, None));
        assert_eq!(c("create -e /a"), (CreateMode::Ephemeral, None));
        assert_eq!(c("create -es /a"), (CreateMode::EphemeralSequential, None));
        assert_eq!(
            c("create /a -s -e"),
            (CreateMode::EphemeralSequential, None)
        );
        assert_eq!(c("create -c /a"), (CreateMode::Container, None));
        assert_eq!(
            c("create -t 500 /a"),
            (CreateMode::PersistentWithTtl, Some(500))
        );
        assert_eq!(
            c("create -s -t 9 /a/"),
            (CreateMode::PersistentSequentialWithTtl, Some(9))
        );
    }

    #[test]
    fn create_data_and_acl() {
        assert_eq!(
            p("create /a 'hello world' world:anyone:r").unwrap(),
            Command::Create {
                path: "/a".into(),
                data: Some(b"hello world".to_vec()),
                acl: Some(vec![Acl {
                    perms: perms::READ,
                    id: transport::jute::Id::anyone()
                }]),
                mode: CreateMode::Persistent,
                ttl: None,
            }
        );
        match p("create /a").unwrap() {
            Command::Create { data, acl, .. } => assert_eq!((data, acl), (None, None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_refusals() {
        let msg = |l: &str| p(l).unwrap_err().message;
        assert_eq!(
            msg("create -e -t 5 /a"),
            "TTLs cannot be used with Ephemeral znodes"
        );
        assert_eq!(
            msg("create -c -t 5 /a"),
            "TTLs cannot be used with Container znodes"
        );
        assert!(msg("create -c -s /a").starts_with("-c cannot be combined"));
        assert_eq!(msg("create -t x /a"), "ttl must be a number, not \"x\"");
        assert_eq!(msg("create a"), "Path must start with / character");
        assert_eq!(msg("create /a/"), "Path must not end with / character");
        assert_eq!(msg("create -x /a"), "Unrecognized option: -x");
        assert!(msg("create /a d world:anyone").contains("scheme:id:perm"));
        assert_eq!(msg("create"), "create: expected 1 to 3 arguments, got 0");
        assert_eq!(msg("get"), "get: expected 1 argument, got 0");
        assert_eq!(msg("set /a"), "set: expected 2 arguments, got 1");
    }

    #[test]
    fn get_set_delete() {
        assert_eq!(
            p("get -s -w /a").unwrap(),
            Command::Get {
                path: "/a".into(),
                stat: true,
                watch: true
            }
        );
        assert_eq!(
            p("set -v 3 /a x").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: b"x".to_vec(),
                version: 3,
                stat: false
            }
        );
        assert_eq!(
            p("set -s /a -- -1").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: b"-1".to_vec(),
                version: -1,
                stat: true
            }
        );
        assert_eq!(
            p("delete /a -v7").unwrap(),
            Command::Delete {
                path: "/a".into(),
                version: 7
            }
        );
        assert!(p("delete -v x /a").is_err());
        assert!(
            p("delete -v")
                .unwrap_err()
                .message
                .contains("needs a value")
        );
        assert!(p("set /a").is_err());
    }

    #[test]
    fn ls_stat_sync_deleteall() {
        assert_eq!(
            p("ls -R -s /").unwrap(),
            Command::Ls {
                path: "/".into(),
                stat: true,
                watch: false,
                recursive: true
            }
        );
        assert_eq!(
            p("stat -w /a").unwrap(),
            Command::Stat {
                path: "/a".into(),
                watch: true
            }
        );
        assert_eq!(p("sync /a").unwrap(), Command::Sync { path: "/a".into() });
        assert_eq!(
            p("getAllChildrenNumber /a").unwrap(),
            Command::GetAllChildrenNumber { path: "/a".into() }
        );
        assert_eq!(
            p("getEphemerals").unwrap(),
            Command::GetEphemerals { path: "/".into() }
        );
        assert!(p("getEphemerals a").is_err());
        assert_eq!(
            p("deleteall /a").unwrap(),
            Command::DeleteAll { path: "/a".into() }
        );
    }

    #[test]
    fn add_watch_modes() {
        let m = |l: &str| match p(l).unwrap() {
            Command::AddWatch { mode, events, .. } => (mode, events),
            other => panic!("{other:?}"),
        };
        assert_eq!(m("addWatch /a"), (AddWatchMode::PersistentRecursive, None));
        assert_eq!(
            m("addWatch -m PERSISTENT /a"),
            (AddWatchMode::Persistent, None)
        );
        assert_eq!(
            m("addWatch -m persistentRecursive --events 2 /a"),
            (AddWatchMode::PersistentRecursive, Some(2))
        );
        assert!(
            p("addWatch -m other /a")
                .unwrap_err()
                .message
                .contains("mode must be")
        );
    }

    #[test]
    fn acl_verbs_and_auth() {
        assert_eq!(
            p("setAcl -v 2 /a digest:u:h:cdrwa").unwrap(),
            Command::SetAcl {
                path: "/a".into(),
                acl: vec![Acl {
                    perms: perms::ALL,
                    id: transport::jute::Id::new("digest", "u:h")
                }],
                version: 2,
                stat: false,
                recursive: false
            }
        );
        assert_eq!(
            p("getAcl -s /a").unwrap(),
            Command::GetAcl {
                path: "/a".into(),
                stat: true
            }
        );
        assert_eq!(
            p("addauth digest u:p").unwrap(),
            Command::AddAuth {
                scheme: "digest".into(),
                auth: b"u:p".to_vec()
            }
        );
    }

    #[test]
    fn four_letter_verbs() {
        assert_eq!(
            p("srvr 127.0.0.1:1").unwrap(),
            Command::FourLetter {
                word: "srvr",
                addr: Some("127.0.0.1:1".into())
            }
        );
        assert_eq!(
            p("mntr").unwrap(),
            Command::FourLetter {
                word: "mntr",
                addr: None
            }
        );
        assert!(!p("mntr").unwrap().needs_session());
        assert!(
            p("frob /a")
                .unwrap_err()
                .message
                .contains("unknown command")
        );
    }

    #[test]
    fn config_and_reconfig() {
        assert_eq!(
            p("config -c -s").unwrap(),
            Command::Config {
                client: true,
                watch: false,
                stat: true
            }
        );
        assert_eq!(
            p("reconfig -s -v 1000000a -add SERVER.4=h:1:2;3 -remove 2,3").unwrap(),
            Command::Reconfig {
                joining: Some("server.4=h:1:2;3".into()),
                leaving: Some("2,3".into()),
                members: None,
                version: 0x1000000a,
                stat: true
            }
        );
        let dir = std::env::temp_dir().join(format!("ckctl-members-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# members\nserver.1 = h:1:2;3\nversion=5\nserver.2=h:4:5;6\n",
        )
        .unwrap();
        let file = p(&format!("reconfig -file {}", dir.display())).unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(
            matches!(&file, Command::Reconfig { members: Some(m), version: -1, .. }
                if m == "server.1=h:1:2;3,server.2=h:4:5;6"),
            "{file:?}"
        );
        assert!(p("reconfig -file /no/such/file").is_err());
        assert!(p("reconfig -add").is_err());
        assert!(p("reconfig -x 1").is_err());
    }

    #[test]
    fn tokenizer_quotes() {
        assert_eq!(
            tokenize("  create /a \"x y\" 'z  w' ").unwrap(),
            vec!["create", "/a", "x y", "z  w"]
        );
        assert_eq!(tokenize("set /a ''").unwrap(), vec!["set", "/a", ""]);
        assert!(tokenize("set /a 'x").is_err());
        assert!(tokenize("   ").unwrap().is_empty());
    }

    #[test]
    fn invocation() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let inv = parse_invocation(&args("-server a:1,b:2/r -timeout 5000 get /x")).unwrap();
        assert_eq!(inv.connect.servers, vec!["a:1", "b:2"]);
        assert_eq!(inv.connect.chroot.as_deref(), Some("/r"));
        assert_eq!(inv.timeout_ms, 5000);
        assert!(matches!(inv.command, Some(Command::Get { .. })));
        let batch = parse_invocation(&args("--auth digest:u:p")).unwrap();
        assert_eq!(batch.command, None);
        assert_eq!(batch.connect.servers, vec!["localhost:2181"]);
        assert_eq!(batch.auth, vec![("digest".to_string(), b"u:p".to_vec())]);
        assert!(parse_invocation(&args("-server")).is_err());
        assert!(parse_invocation(&args("-timeout 0 ls /")).is_err());
        assert!(parse_invocation(&args("-server h/a/ ls /")).is_err());
    }
}
