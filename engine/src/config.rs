//! Server configuration: ZooKeeper's `zoo.cfg` keys plus corekeeper's own.
//!
//! Two ways in, one result ([`Config`]):
//! - `corekeeper --config zoo.cfg`: a Java-properties style file (`key=value`, `#`
//!   comments) with ZooKeeper's keys (`tickTime`, `dataDir`, `clientPort`, `server.N`,
//!   ...) and corekeeper's (`cores`, `adminPort`, `sync`, ...);
//! - the quick form `corekeeper --data-dir DIR --client-addr 127.0.0.1:2181 [--cores N]`.
//!
//! Contract: validation is total: every bad value is a [`ConfigError`] naming the key
//! and the value (or the file), returned before any socket or directory is touched.
//! Parsing reads no file but the named one, its `dynamicConfigFile` if it names one
//! ([`Config::load`]), and, for an ensemble only, `dataDir/myid` ([`ensemble`]).
//! Unknown keys are collected in [`Config::unknown_keys`] and what ZooKeeper would log
//! as a warning in [`Config::warnings`], so the caller can log them (ZooKeeper ignores
//! unknown keys too, so a shared zoo.cfg keeps working). Keys ZooKeeper has that
//! corekeeper does not use (`forceSync`, `electionAlg`, ...) are accepted and kept in
//! [`Config::passthrough`].
//!
//! An ensemble's settings (`server.N`, `myid`, `initLimit`, ...) are parsed and checked
//! here into [`Config::ensemble`]; a single `server.N` line means standalone, as in
//! ZooKeeper. The server itself still refuses to run an ensemble (replication is not
//! in the runtime yet): `server::run` says so after every check has passed.

pub mod dynamic;
pub mod ensemble;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ensemble::{Ensemble, QuorumSpec};

/// The largest frame a client may send, as ZooKeeper's `jute.maxbuffer` default.
pub const JUTE_MAXBUFFER_DEFAULT: usize = 1 << 20;
/// Upper bound on `jute.maxbuffer`: a frame is held in memory whole.
pub const JUTE_MAXBUFFER_MAX: usize = 64 << 20;
/// Default of `preAllocSize`, KiB: ZooKeeper's 64 MiB. corekeeper pre-writes its WAL
/// segments whole (an overwrite is cheaper than an append on ext4), so this is the size
/// of one segment file.
pub const PREALLOC_KIB_DEFAULT: u64 = 64 << 10;
/// Smallest `preAllocSize`, KiB: a segment must hold the WAL's largest record (1 MiB)
/// with its headers.
pub const PREALLOC_KIB_MIN: u64 = 2 << 10;
/// Largest `preAllocSize`, KiB: the WAL's largest segment.
pub const PREALLOC_KIB_MAX: u64 = wal::options::SEGMENT_BYTES_MAX >> 10;
const _: () = assert!(PREALLOC_KIB_MIN <= PREALLOC_KIB_DEFAULT);
const _: () = assert!(PREALLOC_KIB_DEFAULT <= PREALLOC_KIB_MAX);
const _: () = assert!(PREALLOC_KIB_MIN << 10 >= wal::options::SEGMENT_BYTES_MIN);
const _: () = assert!(
    PREALLOC_KIB_MIN << 10 >= 2 * wal::options::RECORD_BYTES_MAX_DEFAULT as u64,
    "the smallest segment holds the largest record with room for its headers"
);
/// Upper bound on `cores`: one executor per core, and a shard map sized to match.
pub const CORES_MAX: usize = 256;
/// Open client connections a server accepts at most (`maxCnxns` = 0 means this). It
/// bounds the shard inbox: each connection has at most `CONN_PENDING_MAX` requests
/// outstanding, so the shard never holds more than this many times that.
pub const CONNECTIONS_MAX: u32 = 60_000;
/// Upper bound on `tickTime`: sessions expire in whole ticks.
pub const TICK_TIME_MS_MAX: u32 = 60_000;

const _: () = assert!(JUTE_MAXBUFFER_DEFAULT <= JUTE_MAXBUFFER_MAX);

/// When the WAL makes appended records durable (the `sync` key; ZooKeeper's `forceSync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Flush every record before it is acknowledged alone (slowest, no batching).
    Always,
    /// Group commit: one flush covers a batch; every reply still waits for its flush.
    /// The default.
    Batch,
    /// Never flush: for benchmarks only (ZooKeeper's `forceSync=no`). Acknowledged
    /// writes can be lost on a machine crash.
    Never,
}

/// A fully validated server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Length of one tick in ms; session timeouts and expiry are counted in ticks.
    pub tick_time_ms: u32,
    /// Snapshots (and, without `data_log_dir`, the WAL) live here.
    pub data_dir: PathBuf,
    /// The WAL directory, if separate from `data_dir` (ZooKeeper's `dataLogDir`).
    pub data_log_dir: Option<PathBuf>,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Connections allowed from one IP address; 0 = unlimited (ZooKeeper's default is 60).
    pub max_client_cnxns: u32,
    /// Connections allowed in all (ZooKeeper's `maxCnxns`); 0 = the hard limit
    /// [`CONNECTIONS_MAX`], which bounds what the shard inbox can hold
    /// (connections x `CONN_PENDING_MAX` requests).
    pub max_cnxns: u32,
    /// Lower bound of a negotiated session timeout (default 2 x tickTime).
    pub min_session_timeout_ms: u32,
    /// Upper bound of a negotiated session timeout (default 20 x tickTime).
    pub max_session_timeout_ms: u32,
    /// Requests read from clients and not yet answered by the shard, in all
    /// (ZooKeeper's `globalOutstandingLimit`, default 1000): past it the server stops
    /// reading client sockets. Each core gets an equal share (at least 1).
    pub global_outstanding_limit: u32,
    /// Txns between snapshots.
    pub snap_count: u64,
    /// Snapshots (with their WAL suffix) kept by autopurge; at least 3.
    pub autopurge_snap_retain_count: u32,
    /// Hours between purges; 0 disables autopurge.
    pub autopurge_purge_interval_h: u32,
    /// Largest client frame accepted, bytes.
    pub jute_maxbuffer: usize,
    /// Size of one WAL segment file, bytes (`preAllocSize` in KiB, rounded up to 4 KiB).
    pub wal_segment_bytes: u64,
    /// Four-letter words answered on the client port (`*` = all).
    pub four_letter_words: Vec<String>,
    /// Executors (cores) to run; `None` = half the usable CPUs (`server::default_cores`).
    pub cores: Option<usize>,
    /// Port of the admin/metrics HTTP endpoint on the client address' IP; `None` = off.
    pub admin_port: Option<u16>,
    /// WAL flush policy.
    pub sync: SyncPolicy,
    /// Flushes that may run at once with `sync=batch` (`flushesInflightMax`).
    pub flushes_inflight_max: usize,
    /// How long an idle executor spins before it parks (`spinBeforeParkUs`,
    /// corekeeper's own); `None` = [`crate::runtime::exec::spin_before_park_us_default`].
    pub spin_before_park_us: Option<u64>,
    /// How long an election's majority must stand before it decides
    /// (`electionFinalizeWaitMs`; ZooKeeper's fixed finalizeWait is 200 ms).
    pub election_finalize_wait_ms: u64,
    /// Committed proposals a Zab leader keeps to synchronise learners by DIFF
    /// (`commitLogCount`, ZooKeeper's `zookeeper.commitLogCount`); a learner further
    /// behind gets a SNAP.
    pub commit_log_count: usize,
    /// The last zxid counter of an epoch (`zxidCounterMax`, corekeeper's own; default
    /// 2^32 - 1 as in ZooKeeper). The txn after it starts the next epoch without an
    /// election (`zab::leader`, "Counter rollover"); tests lower it to roll over often.
    /// Every server of an ensemble must have the same value.
    pub zxid_counter_max: u32,
    /// ZooKeeper's `extendedTypesEnabled`: TTL nodes are refused unless set.
    pub extended_types_enabled: bool,
    /// `user:base64(sha1(user:password))` of the digest superuser, if any
    /// (ZooKeeper's `zookeeper.DigestAuthenticationProvider.superDigest`).
    pub super_digest: Option<String>,
    /// The replicated ensemble this server belongs to; `None` = standalone (no
    /// `server.N` line, or only one participant).
    pub ensemble: Option<Ensemble>,
    /// How an ensemble replicates (`replication=zab|craq`, corekeeper's own key).
    pub replication: Replication,
    /// What ZooKeeper would log as a warning about this configuration (an even number
    /// of voters, a lone `server.N` line); the caller logs each.
    pub warnings: Vec<String>,
    /// Keys of ZooKeeper's that corekeeper accepts but does not use yet.
    pub passthrough: BTreeMap<String, String>,
    /// Keys nobody knows; the caller warns about each.
    pub unknown_keys: Vec<String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The config file could not be read.
    Read { path: PathBuf, reason: String },
    /// A line is not `key=value`.
    Syntax { line: usize, text: String },
    /// A key has a value that cannot be used.
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A required key is absent.
    Missing { key: &'static str },
    /// `dataDir/myid` is missing or unusable for an ensemble member.
    MyId { path: PathBuf, reason: String },
    /// The `server.N` lines contradict each other.
    Ensemble(String),
    /// The `dynamicConfigFile` holds something it may not.
    DynamicFile { path: PathBuf, reason: String },
    /// Command-line usage error.
    Usage(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, reason } => {
                write!(f, "cannot read config file {}: {reason}", path.display())
            }
            ConfigError::Syntax { line, text } => {
                write!(f, "config line {line}: expected key=value, got {text:?}")
            }
            ConfigError::BadValue { key, value, reason } => {
                write!(f, "config key {key}={value:?}: {reason}")
            }
            ConfigError::Missing { key } => write!(f, "config key {key} is required"),
            ConfigError::MyId { path, reason } => {
                write!(f, "server id file {}: {reason}", path.display())
            }
            ConfigError::Ensemble(reason) => write!(f, "ensemble (server.N lines): {reason}"),
            ConfigError::DynamicFile { path, reason } => {
                write!(f, "dynamic config file {}: {reason}", path.display())
            }
            ConfigError::Usage(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// ZooKeeper's default `globalOutstandingLimit`.
pub const GLOBAL_OUTSTANDING_DEFAULT: u32 = 1000;
/// The largest `globalOutstandingLimit`: the shard answers everything below it without
/// refusing (its in-flight limit is larger still).
pub const GLOBAL_OUTSTANDING_MAX: u32 = (crate::shard::core::INFLIGHT_TXNS_MAX / 2) as u32;

const _: () = assert!(GLOBAL_OUTSTANDING_DEFAULT <= GLOBAL_OUTSTANDING_MAX);

impl Config {
    /// This server's id: its `myid` in an ensemble, 0 standalone (as ZooKeeper's
    /// standalone server). It is the top byte of every session id it hands out.
    pub fn server_id(&self) -> u8 {
        self.ensemble.as_ref().map_or(0, Ensemble::session_id_byte)
    }

    /// Each of `cores` executors' share of `globalOutstandingLimit` (at least 1).
    pub fn outstanding_per_core(&self, cores: usize) -> usize {
        (self.global_outstanding_limit as usize / cores.max(1)).max(1)
    }
}

/// Keys ZooKeeper defines that corekeeper accepts without using.
const PASSTHROUGH_KEYS: &[&str] = &[
    "admin.enableServer",
    "admin.serverAddress",
    "admin.serverPort",
    "forceSync",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "secureClientPort",
    "secureClientPortAddress",
    "electionAlg",
    "syncEnabled",
    "quorumListenOnAllIPs",
    "skipACL",
    "maxResponseCacheSize",
    "metricsProvider.className",
    "metricsProvider.httpPort",
    "metricsProvider.exportJvmInfo",
    "audit.enable",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "commitLogCount",
    "connectToLearnerMasterLimit",
    "serverCnxnFactory",
];

/// ZooKeeper's full list of four-letter words; `4lw.commands.whitelist=*` means these.
pub const FOUR_LETTER_WORDS_ALL: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "crst",
    "srst", "dirs", "isro", "gtmk", "stmk",
];

impl Config {
    /// Parses the text of a zoo.cfg (a `dynamicConfigFile` is read only by
    /// [`Config::load`]).
    pub fn parse_zoo_cfg(text: &str) -> Result<Config, ConfigError> {
        Self::from_map(parse_kv(text)?)
    }

    /// Reads and parses a zoo.cfg file, and the `dynamicConfigFile` it names, if any
    /// (ZooKeeper 3.5+'s split of the server list into its own file; the path is taken
    /// as given, relative to the working directory as ZooKeeper does).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut kv = parse_kv(&read_file(path)?)?;
        if let Some(dynamic) = kv.remove("dynamicConfigFile") {
            merge_dynamic_file(&mut kv, Path::new(&dynamic))?;
        }
        Self::from_map(kv)
    }

    /// Builds a config from `key -> value` pairs (zoo.cfg semantics).
    pub fn from_map(mut kv: BTreeMap<String, String>) -> Result<Config, ConfigError> {
        if let Some(v) = kv.get("dynamicConfigFile") {
            return Err(bad(
                "dynamicConfigFile",
                v,
                "is read only from a config file given with --config",
            ));
        }
        // ZooKeeper checks a client address in zoo.cfg against the one in this
        // server's `server.N` line only when zoo.cfg names one.
        let client_addr_given =
            kv.contains_key("clientPort") || kv.contains_key("clientPortAddress");
        let quorum = ensemble::take_spec(&mut kv)?;
        let tick_time_ms = take_num(&mut kv, "tickTime", 2000u32, 1, TICK_TIME_MS_MAX)?;
        let data_dir = PathBuf::from(
            kv.remove("dataDir")
                .ok_or(ConfigError::Missing { key: "dataDir" })?,
        );
        let data_log_dir = kv.remove("dataLogDir").map(PathBuf::from);
        let client_port = take_num(&mut kv, "clientPort", 2181u16, 0, u16::MAX)?;
        let ip = match kv.remove("clientPortAddress") {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(v) => v
                .parse()
                .map_err(|_| bad("clientPortAddress", &v, "not an IP address"))?,
        };
        let min_default = tick_time_ms.saturating_mul(2);
        let max_default = tick_time_ms.saturating_mul(20);
        let min_session_timeout_ms = take_num_or(&mut kv, "minSessionTimeout", min_default)?;
        let max_session_timeout_ms = take_num_or(&mut kv, "maxSessionTimeout", max_default)?;
        // corekeeper's own key. `chain` is refused rather than ignored as an unknown
        // key, so nobody runs CRAQ believing it is plain chain replication.
        let replication = take_replication(&mut kv)?;
        let cfg = Config {
            tick_time_ms,
            data_dir,
            data_log_dir,
            client_addr: SocketAddr::new(ip, client_port),
            max_client_cnxns: take_num(&mut kv, "maxClientCnxns", 60u32, 0, u32::MAX)?,
            max_cnxns: take_num(&mut kv, "maxCnxns", 0u32, 0, CONNECTIONS_MAX)?,
            min_session_timeout_ms,
            max_session_timeout_ms,
            global_outstanding_limit: take_num(
                &mut kv,
                "globalOutstandingLimit",
                GLOBAL_OUTSTANDING_DEFAULT,
                1,
                GLOBAL_OUTSTANDING_MAX,
            )?,
            snap_count: take_num(&mut kv, "snapCount", 100_000u64, 1, u64::MAX)?,
            autopurge_snap_retain_count: take_num(
                &mut kv,
                "autopurge.snapRetainCount",
                3u32,
                3,
                1_000,
            )?,
            autopurge_purge_interval_h: take_num(
                &mut kv,
                "autopurge.purgeInterval",
                0u32,
                0,
                24 * 365,
            )?,
            jute_maxbuffer: take_num(
                &mut kv,
                "jute.maxbuffer",
                JUTE_MAXBUFFER_DEFAULT,
                1024,
                JUTE_MAXBUFFER_MAX,
            )?,
            wal_segment_bytes: (take_num(
                &mut kv,
                "preAllocSize",
                PREALLOC_KIB_DEFAULT,
                PREALLOC_KIB_MIN,
                PREALLOC_KIB_MAX,
            )? << 10)
                .next_multiple_of(4096),
            four_letter_words: take_4lw(&mut kv)?,
            cores: match kv.remove("cores") {
                None => None,
                Some(v) => Some(parse_num("cores", &v, 1, CORES_MAX)?),
            },
            admin_port: match kv.remove("adminPort") {
                None => None,
                Some(v) => Some(parse_num("adminPort", &v, 0u16, u16::MAX)?),
            },
            sync: take_sync(&mut kv)?,
            flushes_inflight_max: take_num(
                &mut kv,
                "flushesInflightMax",
                crate::shard::commit::FLUSHES_INFLIGHT_DEFAULT,
                1,
                crate::shard::commit::FLUSHES_INFLIGHT_MAX,
            )?,
            spin_before_park_us: match kv.remove("spinBeforeParkUs") {
                None => None,
                Some(v) => Some(parse_num(
                    "spinBeforeParkUs",
                    &v,
                    0,
                    crate::runtime::exec::SPIN_BEFORE_PARK_US_MAX,
                )?),
            },
            election_finalize_wait_ms: take_num(
                &mut kv,
                "electionFinalizeWaitMs",
                crate::peer::elect::FINALIZE_WAIT_MS_DEFAULT,
                1,
                crate::peer::elect::FINALIZE_WAIT_MS_MAX,
            )?,
            commit_log_count: take_num(
                &mut kv,
                "commitLogCount",
                crate::zab::COMMITTED_LOG_MAX,
                0,
                crate::zab::COMMITTED_LOG_MAX,
            )?,
            zxid_counter_max: take_num(
                &mut kv,
                "zxidCounterMax",
                crate::zab::ZXID_COUNTER_MAX,
                crate::zab::ZXID_COUNTER_MAX_MIN,
                crate::zab::ZXID_COUNTER_MAX,
            )?,
            extended_types_enabled: take_bool(&mut kv, "extendedTypesEnabled", false)?,
            super_digest: kv.remove("superDigest"),
            ensemble: None,
            replication,
            warnings: quorum.warnings(),
            passthrough: BTreeMap::new(),
            unknown_keys: Vec::new(),
        };
        cfg.finish(kv, quorum, client_addr_given)
    }

    /// Sorts leftover keys into passthrough and unknown, then checks cross-key rules.
    fn finish(
        mut self,
        rest: BTreeMap<String, String>,
        quorum: QuorumSpec,
        client_addr_given: bool,
    ) -> Result<Config, ConfigError> {
        for (k, v) in rest {
            let known = PASSTHROUGH_KEYS.contains(&k.as_str())
                || k.starts_with("server.")
                || k.starts_with("group.")
                || k.starts_with("weight.")
                || k.starts_with("ssl.")
                || k.starts_with("authProvider.");
            if known {
                self.passthrough.insert(k, v);
            } else {
                self.unknown_keys.push(k);
            }
        }
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(bad(
                "minSessionTimeout",
                &self.min_session_timeout_ms.to_string(),
                &format!(
                    "greater than maxSessionTimeout ({})",
                    self.max_session_timeout_ms
                ),
            ));
        }
        if quorum.is_distributed() {
            self.join_ensemble(quorum, client_addr_given)?;
        }
        Ok(self)
    }

    /// Reads `dataDir/myid` and checks this server's place in the ensemble: its
    /// client address (ZooKeeper's `setupClientPort`: the `;client` part of its line
    /// wins, and must agree with a `clientPort`/`clientPortAddress` given in zoo.cfg) and
    /// distinct ports for everything it listens on.
    fn join_ensemble(
        &mut self,
        quorum: QuorumSpec,
        client_addr_given: bool,
    ) -> Result<(), ConfigError> {
        let myid = ensemble::read_myid(&self.data_dir)?;
        let path = ensemble::myid_path(&self.data_dir);
        let ens = Ensemble::new(quorum, myid.as_deref(), &path, self.extended_types_enabled)?;
        let me = ens.me();
        if let Some(client) = &me.client {
            let Some(addr) = client.socket_addr() else {
                return Err(bad(
                    &me.key(),
                    &client.to_string(),
                    "this server's own client address must be an IP address",
                ));
            };
            let ours = self.client_addr;
            let agree = if ours.ip().is_unspecified() {
                ours.port() == addr.port()
            } else {
                ours == addr
            };
            if client_addr_given && !agree {
                return Err(bad(
                    "clientPort",
                    &ours.to_string(),
                    &format!(
                        "differs from the client address {addr} in this server's line {}",
                        me.key()
                    ),
                ));
            }
            self.client_addr = addr;
        }
        let mut ports = vec![
            ("client", self.client_addr.port()),
            ("quorum", me.quorum.port),
            ("election", me.election.port),
        ];
        ports.extend(self.admin_port.map(|p| ("admin", p)));
        for (i, (what, port)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                return Err(ConfigError::Ensemble(format!(
                    "this server ({}) would listen on port {port} as both its {other} and \
                     its {what} port",
                    me.key()
                )));
            }
        }
        self.ensemble = Some(ens);
        Ok(())
    }

    /// The quick form: `--data-dir DIR --client-addr IP:PORT [--cores N] [--sync MODE]
    /// [--tick-time-ms MS] [--admin-port P]`, or `--config FILE`.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Config, ConfigError> {
        let mut args = args.into_iter();
        let mut kv = BTreeMap::new();
        let mut file = None;
        while let Some(flag) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| ConfigError::Usage(format!("{name} needs a value")))
            };
            match flag.as_str() {
                "--config" => file = Some(PathBuf::from(value("--config")?)),
                "--data-dir" => _ = kv.insert("dataDir".into(), value("--data-dir")?),
                "--data-log-dir" => _ = kv.insert("dataLogDir".into(), value("--data-log-dir")?),
                "--client-addr" => {
                    let v = value("--client-addr")?;
                    let addr: SocketAddr = v
                        .parse()
                        .map_err(|_| bad("--client-addr", &v, "expected IP:PORT"))?;
                    kv.insert("clientPortAddress".into(), addr.ip().to_string());
                    kv.insert("clientPort".into(), addr.port().to_string());
                }
                "--cores" => _ = kv.insert("cores".into(), value("--cores")?),
                "--sync" => _ = kv.insert("sync".into(), value("--sync")?),
                "--tick-time-ms" => _ = kv.insert("tickTime".into(), value("--tick-time-ms")?),
                "--admin-port" => _ = kv.insert("adminPort".into(), value("--admin-port")?),
                other => {
                    return Err(ConfigError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        match file {
            Some(path) if kv.is_empty() => Config::load(&path),
            Some(_) => Err(ConfigError::Usage(format!(
                "--config cannot be combined with other flags\n{USAGE}"
            ))),
            None if kv.is_empty() => Err(ConfigError::Usage(USAGE.to_string())),
            None => Config::from_map(kv),
        }
    }

    /// The WAL directory: `dataLogDir` if set, else `dataDir`.
    pub fn wal_dir(&self) -> &Path {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// Whether a four-letter word may be answered.
    pub fn four_letter_word_allowed(&self, word: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == word)
    }
}

/// Command-line usage of `corekeeper`.
pub const USAGE: &str = "usage: corekeeper --config zoo.cfg\n       corekeeper --data-dir DIR --client-addr IP:PORT [--data-log-dir DIR] [--cores N] [--sync always|batch|never] [--tick-time-ms MS] [--admin-port PORT]";

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// `key=value` lines (`#` and `!` comments). Later keys win, as in Java's Properties,
/// except that a repeated `server.N` line is refused: one of two addresses for the
/// same server would be silently dropped.
fn parse_kv(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut kv = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                line: i + 1,
                text: raw.to_string(),
            });
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if k.starts_with("server.") && kv.contains_key(&k) {
            return Err(bad(
                &k,
                &v,
                &format!("line {}: this server.N line is given twice", i + 1),
            ));
        }
        kv.insert(k, v);
    }
    Ok(kv)
}

/// Adds the server list of a dynamic config file to `kv`. As ZooKeeper: the static
/// file must then hold no server list, and the dynamic file only `server.N` lines (its
/// version comes from the file name; corekeeper has no reconfig yet and ignores it).
fn merge_dynamic_file(kv: &mut BTreeMap<String, String>, path: &Path) -> Result<(), ConfigError> {
    let in_static = kv
        .keys()
        .find(|k| k.starts_with("server.") || k.starts_with("group") || k.starts_with("weight"));
    if let Some(k) = in_static {
        return Err(bad(
            k,
            &kv[k],
            &format!(
                "must be in the dynamic config file {} (dynamicConfigFile is set)",
                path.display()
            ),
        ));
    }
    let dynamic = parse_kv(&read_file(path)?).map_err(|e| ConfigError::DynamicFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for (k, v) in dynamic {
        let reason = if k == "version" {
            "holds a version key: a dynamic file's version is in its name"
        } else if k.starts_with("group") || k.starts_with("weight") {
            "hierarchical quorums (group/weight) are not supported"
        } else if !k.starts_with("server.") {
            "may hold only server.N lines"
        } else {
            kv.insert(k, v);
            continue;
        };
        return Err(ConfigError::DynamicFile {
            path: path.to_path_buf(),
            reason: format!("{k}={v}: {reason}"),
        });
    }
    Ok(())
}

fn bad(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_num<T>(key: &str, v: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let n: T = v.parse().map_err(|_| bad(key, v, "not a number"))?;
    if n < min || n > max {
        return Err(bad(key, v, &format!("must be within [{min}, {max}]")));
    }
    Ok(n)
}

fn take_num<T>(
    kv: &mut BTreeMap<String, String>,
    key: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match kv.remove(key) {
        None => Ok(default),
        Some(v) => parse_num(key, &v, min, max),
    }
}

/// Session timeouts: ZooKeeper treats -1 as "use the default".
fn take_num_or(
    kv: &mut BTreeMap<String, String>,
    key: &str,
    default: u32,
) -> Result<u32, ConfigError> {
    match kv.remove(key) {
        Some(v) if v == "-1" => Ok(default),
        Some(v) => parse_num(key, &v, 1, u32::MAX),
        None => Ok(default),
    }
}

fn take_bool(
    kv: &mut BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, ConfigError> {
    match kv.remove(key).as_deref() {
        None => Ok(default),
        Some("true") | Some("yes") => Ok(true),
        Some("false") | Some("no") => Ok(false),
        Some(v) => Err(bad(key, v, "expected true or false")),
    }
}

/// How an ensemble replicates writes and answers reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replication {
    /// ZooKeeper's: a quorum commits; reads are local (sequentially consistent).
    #[default]
    Zab,
    /// Chain replication with apportioned queries (`engine::craq`): the Zab leader
    /// heads a chain of every synced member; reads are linearizable at every member.
    Craq,
    /// Plain chain replication, the baseline the CRAQ paper compares with: the same
    /// chain, but only its tail takes clients (and so every read); the other members
    /// close client connections as a server without a quorum does, so clients move
    /// on until they reach the tail.
    Chain,
}

impl Replication {
    /// Its name in zoo.cfg (`replication=`).
    pub fn name(self) -> &'static str {
        match self {
            Replication::Zab => "zab",
            Replication::Craq => "craq",
            Replication::Chain => "chain",
        }
    }

    /// Whether writes go down a chain (CRAQ or plain chain replication).
    pub fn chained(self) -> bool {
        matches!(self, Replication::Craq | Replication::Chain)
    }
}

fn take_replication(kv: &mut BTreeMap<String, String>) -> Result<Replication, ConfigError> {
    match kv.remove("replication").as_deref() {
        None | Some("zab") => Ok(Replication::Zab),
        Some("craq") => Ok(Replication::Craq),
        Some("chain") => Ok(Replication::Chain),
        Some(v) => Err(bad("replication", v, "expected zab, craq or chain")),
    }
}

fn take_sync(kv: &mut BTreeMap<String, String>) -> Result<SyncPolicy, ConfigError> {
    match kv.remove("sync").as_deref() {
        None | Some("batch") => Ok(SyncPolicy::Batch),
        Some("always") => Ok(SyncPolicy::Always),
        Some("never") => Ok(SyncPolicy::Never),
        Some(v) => Err(bad("sync", v, "expected always, batch or never")),
    }
}

fn take_4lw(kv: &mut BTreeMap<String, String>) -> Result<Vec<String>, ConfigError> {
    // ZooKeeper 3.5+ answers only `srvr` unless whitelisted; corekeeper keeps that default.
    let Some(v) = kv.remove("4lw.commands.whitelist") else {
        return Ok(vec!["srvr".to_string()]);
    };
    let mut words = Vec::new();
    for w in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if w == "*" {
            return Ok(FOUR_LETTER_WORDS_ALL
                .iter()
                .map(|s| s.to_string())
                .collect());
        }
        if !FOUR_LETTER_WORDS_ALL.contains(&w) {
            return Err(bad("4lw.commands.whitelist", w, "not a four-letter word"));
        }
        words.push(w.to_string());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<Config, ConfigError> {
        Config::parse_zoo_cfg(text)
    }

    #[test]
    fn zookeeper_sample_config_parses_with_defaults() {
        let c = cfg("# sample\ntickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/zk\nclientPort=2181\n").unwrap();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.client_addr, "0.0.0.0:2181".parse::<SocketAddr>().unwrap());
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (4000, 40000)
        );
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.max_cnxns, 0);
        assert_eq!(c.jute_maxbuffer, JUTE_MAXBUFFER_DEFAULT);
        assert_eq!(c.wal_segment_bytes, 64 << 20);
        assert_eq!(c.sync, SyncPolicy::Batch);
        assert_eq!(c.four_letter_words, vec!["srvr"]);
        assert!(c.unknown_keys.is_empty() && c.passthrough.is_empty());
        assert_eq!((c.ensemble.as_ref(), c.server_id()), (None, 0));
        assert_eq!(c.wal_dir(), Path::new("/tmp/zk"));
    }

    #[test]
    fn replication_is_zab_or_craq_and_nothing_else_is_ignored() {
        let base = "tickTime=2000\ndataDir=/tmp/zk\n";
        let mode = |v: &str| {
            cfg(&format!("{base}replication={v}\n"))
                .unwrap()
                .replication
        };
        assert_eq!(mode("zab"), Replication::Zab);
        assert_eq!(mode("craq"), Replication::Craq);
        assert_eq!(mode("chain"), Replication::Chain);
        assert_eq!(cfg(base).unwrap().replication, Replication::Zab);
        for v in ["CRAQ", "paxos"] {
            let e = cfg(&format!("{base}replication={v}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("replication"), "{e}");
        }
    }

    #[test]
    fn every_key_is_read() {
        let c = cfg("tickTime=500\ndataDir=/d\ndataLogDir=/l\nclientPort=3000\nclientPortAddress=127.0.0.5\nmaxClientCnxns=0\nmaxCnxns=500\nminSessionTimeout=1000\nmaxSessionTimeout=9000\nsnapCount=10\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=1\njute.maxbuffer=4096\n4lw.commands.whitelist=ruok, srvr,mntr\ncores=2\nadminPort=8080\nsync=never\nextendedTypesEnabled=true\nsuperDigest=super:abc\npreAllocSize=4097\nzxidCounterMax=16\nspinBeforeParkUs=20\nserver.1=127.0.0.1:2888:3888\n").unwrap();
        // KiB, rounded up to whole 4 KiB pages.
        assert_eq!(c.wal_segment_bytes, 4100 << 10);
        assert_eq!(c.zxid_counter_max, 16);
        assert_eq!(c.spin_before_park_us, Some(20));
        assert_eq!(
            c.client_addr,
            "127.0.0.5:3000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.wal_dir(), Path::new("/l"));
        assert_eq!((c.max_client_cnxns, c.max_cnxns), (0, 500));
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 9000)
        );
        assert_eq!(c.four_letter_words, vec!["ruok", "srvr", "mntr"]);
        assert!(c.four_letter_word_allowed("mntr") && !c.four_letter_word_allowed("envi"));
        assert_eq!(
            (c.cores, c.admin_port, c.sync),
            (Some(2), Some(8080), SyncPolicy::Never)
        );
        assert_eq!(
            (
                c.snap_count,
                c.autopurge_snap_retain_count,
                c.jute_maxbuffer
            ),
            (10, 5, 4096)
        );
        assert!(c.extended_types_enabled);
        assert_eq!(c.super_digest.as_deref(), Some("super:abc"));
        // One server.N line: standalone, as ZooKeeper; the line is checked, then ignored.
        assert_eq!((c.ensemble.as_ref(), c.server_id()), (None, 0));
        assert!(c.warnings[0].contains("standalone"), "{:?}", c.warnings);
    }

    #[test]
    fn whitelist_star_means_all() {
        let c = cfg("dataDir=/d\n4lw.commands.whitelist=*\n").unwrap();
        assert_eq!(c.four_letter_words.len(), FOUR_LETTER_WORDS_ALL.len());
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        let c = cfg("dataDir=/d\nfooBar=1\n").unwrap();
        assert_eq!(c.unknown_keys, vec!["fooBar"]);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("dataDir=/d\ntickTime=abc\n", "tickTime"),
            ("dataDir=/d\nclientPort=70000\n", "clientPort"),
            (
                "dataDir=/d\nclientPortAddress=nowhere\n",
                "clientPortAddress",
            ),
            ("dataDir=/d\njute.maxbuffer=10\n", "jute.maxbuffer"),
            ("dataDir=/d\npreAllocSize=1024\n", "preAllocSize"),
            ("dataDir=/d\npreAllocSize=4194305\n", "preAllocSize"),
            ("dataDir=/d\nzxidCounterMax=1\n", "zxidCounterMax"),
            ("dataDir=/d\nzxidCounterMax=4294967296\n", "zxidCounterMax"),
            ("dataDir=/d\nsync=sometimes\n", "sync"),
            ("dataDir=/d\nspinBeforeParkUs=10001\n", "spinBeforeParkUs"),
            ("dataDir=/d\nspinBeforeParkUs=-1\n", "spinBeforeParkUs"),
            (
                "dataDir=/d\n4lw.commands.whitelist=ruok,oops\n",
                "4lw.commands.whitelist",
            ),
            (
                "dataDir=/d\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n",
                "minSessionTimeout",
            ),
            ("dataDir=/d\ncores=0\n", "cores"),
            (
                "dataDir=/d\nautopurge.snapRetainCount=1\n",
                "autopurge.snapRetainCount",
            ),
        ];
        for (text, key) in cases {
            let err = cfg(text).unwrap_err();
            assert!(err.to_string().contains(key), "{text:?} gave {err}");
        }
        assert_eq!(
            cfg("tickTime=2000\n").unwrap_err(),
            ConfigError::Missing { key: "dataDir" }
        );
        assert!(matches!(
            cfg("dataDir=/d\nnonsense\n").unwrap_err(),
            ConfigError::Syntax { line: 2, .. }
        ));
    }

    #[test]
    fn minus_one_session_timeouts_mean_default() {
        let c =
            cfg("dataDir=/d\ntickTime=1000\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (2000, 20000)
        );
    }

    fn args(a: &str) -> Result<Config, ConfigError> {
        Config::from_args(a.split_whitespace().map(String::from))
    }

    #[test]
    fn quick_form() {
        let c =
            args("--data-dir ./data --client-addr 127.0.0.1:2181 --cores 2 --sync always").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(
            c.client_addr,
            "127.0.0.1:2181".parse::<SocketAddr>().unwrap()
        );
        assert_eq!((c.cores, c.sync), (Some(2), SyncPolicy::Always));
        assert!(matches!(args("").unwrap_err(), ConfigError::Usage(_)));
        assert!(matches!(
            args("--bogus").unwrap_err(),
            ConfigError::Usage(_)
        ));
        assert!(matches!(
            args("--data-dir").unwrap_err(),
            ConfigError::Usage(_)
        ));
        assert!(
            args("--data-dir d --client-addr localhost")
                .unwrap_err()
                .to_string()
                .contains("--client-addr")
        );
        assert!(matches!(
            args("--config x --cores 2").unwrap_err(),
            ConfigError::Usage(_)
        ));
        assert!(matches!(
            args("--config /nonexistent/zoo.cfg").unwrap_err(),
            ConfigError::Read { .. }
        ));
    }

    /// A data dir holding `myid` = `id`, and a zoo.cfg text for it.
    fn member(id: &str, rest: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), id).unwrap();
        let text = format!(
            "dataDir={}\ninitLimit=10\nsyncLimit=5\n{rest}",
            dir.path().display()
        );
        (dir, text)
    }

    const THREE: &str = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
                         server.3=127.0.0.3:2888:3888:observer;127.0.0.3:2183\n";

    #[test]
    fn an_ensemble_config_parses_into_the_ensemble_and_its_server_id() {
        let (_dir, text) = member("2\n", &format!("clientPort=2182\n{THREE}"));
        let c = cfg(&text).unwrap();
        let e = c
            .ensemble
            .as_ref()
            .expect("two participants make an ensemble");
        assert_eq!((e.my_id, c.server_id()), (2, 2));
        assert_eq!(e.servers.len(), 3);
        assert_eq!(c.client_addr, "0.0.0.0:2182".parse::<SocketAddr>().unwrap());
        assert!(
            c.warnings[0].contains("no server failure"),
            "{:?}",
            c.warnings
        );
        assert!(c.passthrough.is_empty() && c.unknown_keys.is_empty());
        // The observer's own line names its client address: it wins.
        let (_dir, text) = member("3", &format!("peerType=observer\n{THREE}"));
        let c = cfg(&text).unwrap();
        assert_eq!(
            c.client_addr,
            "127.0.0.3:2183".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.ensemble.unwrap().my_role(), crate::zab::Role::Observer);
        // ... and must agree with a clientPort in zoo.cfg (ZooKeeper's rule).
        let (_dir, text) = member("3", &format!("clientPort=2183\n{THREE}"));
        assert!(cfg(&text).is_ok());
        let (_dir, text) = member("3", &format!("clientPort=2181\n{THREE}"));
        let err = cfg(&text).unwrap_err().to_string();
        assert!(
            err.contains("clientPort") && err.contains("server.3"),
            "{err}"
        );
    }

    #[test]
    fn ensemble_start_up_errors_name_the_cause() {
        let no_myid = format!("dataDir=/nonexistent/d\ninitLimit=5\nsyncLimit=2\n{THREE}");
        let err = cfg(&no_myid).unwrap_err();
        assert!(matches!(err, ConfigError::MyId { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/d/myid"), "{err}");
        let (_dir, text) = member("9", THREE);
        assert!(
            cfg(&text)
                .unwrap_err()
                .to_string()
                .contains("id 9 is not among")
        );
        let (_dir, text) = member("1", &format!("clientPort=2888\n{THREE}"));
        let err = cfg(&text).unwrap_err().to_string();
        assert!(err.contains("port 2888") && err.contains("client"), "{err}");
        let (_dir, text) = member("1", &format!("adminPort=3888\n{THREE}"));
        let err = cfg(&text).unwrap_err().to_string();
        assert!(err.contains("port 3888") && err.contains("admin"), "{err}");
        let (_dir, text) = member("1", &format!("server.1=127.0.0.9:1:2\n{THREE}"));
        let err = cfg(&text).unwrap_err().to_string();
        assert!(err.contains("server.1") && err.contains("twice"), "{err}");
        let (_dir, text) = member(
            "1",
            "server.1=127.0.0.1:2888:3888;h.example:2181\nserver.2=127.0.0.2:2888:3888\n",
        );
        let err = cfg(&text).unwrap_err().to_string();
        assert!(err.contains("must be an IP address"), "{err}");
        let err = cfg("dataDir=/d\ndynamicConfigFile=/d/zoo.cfg.dynamic\n").unwrap_err();
        assert!(err.to_string().contains("dynamicConfigFile"), "{err}");
    }

    #[test]
    fn a_dynamic_config_file_holds_the_server_list() {
        let (dir, text) = member("1", "");
        let dynamic = dir.path().join("zoo.cfg.dynamic.100000000");
        let main = dir.path().join("zoo.cfg");
        let write = |main_extra: &str, dynamic_text: &str| {
            std::fs::write(
                &main,
                format!(
                    "{text}dynamicConfigFile={}\n{main_extra}",
                    dynamic.display()
                ),
            )
            .unwrap();
            std::fs::write(&dynamic, dynamic_text).unwrap();
            Config::load(&main)
        };
        let c = write("", THREE).unwrap();
        assert_eq!(c.ensemble.as_ref().unwrap().servers.len(), 3);
        assert_eq!(c.server_id(), 1);
        let err = write("server.4=127.0.0.4:2888:3888\n", THREE).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be in the dynamic config file"),
            "{err}"
        );
        for (bad_line, needle) in [
            ("version=100000000\n", "version"),
            ("tickTime=2000\n", "only server.N"),
            ("group.1=1:2\n", "hierarchical"),
            ("nonsense\n", "expected key=value"),
        ] {
            let err = write("", &format!("{THREE}{bad_line}")).unwrap_err();
            assert!(matches!(err, ConfigError::DynamicFile { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{bad_line}: {err}");
        }
        std::fs::remove_file(&dynamic).unwrap();
        std::fs::write(
            &main,
            format!("{text}dynamicConfigFile={}\n", dynamic.display()),
        )
        .unwrap();
        assert!(matches!(
            Config::load(&main).unwrap_err(),
            ConfigError::Read { .. }
        ));
    }
}
