//! The ensemble part of `zoo.cfg`: `server.N` lines, `peerType`, `initLimit`,
//! `syncLimit`, `standaloneEnabled`, `reconfigEnabled`, and the `myid` file in dataDir.
//!
//! Accepted forms, as ZooKeeper 3.8 parses them (`QuorumPeerConfig`,
//! `QuorumPeer.QuorumServer`, `ConfigUtils.getHostAndPort`):
//! ```text
//! server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]
//! ```
//! `host` is an IPv4 address, a bracketed IPv6 address (`[::1]`) or a host name; the
//! role is case-insensitive; a client part of just a port means `0.0.0.0:port`.
//! `N` is a decimal id (`server.01` is server 1, as `Long.parseLong` reads it).
//!
//! One participant (with `standaloneEnabled`, the default) means standalone, as in
//! ZooKeeper: the line is checked and then ignored, and the server id is 0. Two or more
//! participants (or any with `standaloneEnabled=false`) make an [`Ensemble`], which
//! needs `dataDir/myid`, `initLimit` and `syncLimit`.
//!
//! Contract: [`take_spec`] and [`Ensemble::new`] are pure and total: every refusal is
//! a [`ConfigError`] naming the line or file. Only [`read_myid`] does IO (one small
//! file). A returned [`Ensemble`] satisfies, without further checks: ids are unique and
//! at most [`SERVER_ID_MAX`]; `my_id` is one of them; at least two voters (or one, with
//! `standaloneEnabled=false`), at most [`VOTERS_MAX`] voters and [`MEMBERS_MAX`]
//! members; no two endpoints (host, port) of the ensemble are equal, and one server's
//! own ports are distinct.
//!
//! Where corekeeper is stricter than ZooKeeper 3.8 (each refused with a message where
//! ZooKeeper would warn, ignore or fail later at run time): repeated `server.N` ids,
//! ids above 255 (the id is the top byte of a session id; ZooKeeper lets such ids
//! collide), two servers on one address and port, a `peerType` that contradicts this
//! server's `server.N` line (ZooKeeper warns and follows the line), a myid missing from
//! the server list, port 0, multiple addresses (`|`, ZooKeeper's off-by-default
//! `multiAddress.enabled`), and hierarchical quorums (`group.`/`weight.`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{ConfigError, bad};
use crate::zab::{MEMBERS_MAX, Role, ServerId, VOTERS_MAX};

/// The highest server id: a session id carries its server's id in its top byte
/// (ZooKeeper's `SessionTrackerImpl.initializeNextSessionId`), so larger ids would
/// make two servers' session ids collide.
pub const SERVER_ID_MAX: ServerId = 255;
/// The highest server id with `extendedTypesEnabled`: a TTL node's `ephemeralOwner`
/// has 0xFF in its top byte, so a session of server 255 would read as a TTL
/// (ZooKeeper's `EphemeralType.MAX_EXTENDED_SERVER_ID`).
pub const SERVER_ID_MAX_EXTENDED: ServerId = 254;
/// Upper bound on `initLimit` and `syncLimit` (ticks).
pub const LIMIT_TICKS_MAX: u32 = 100_000;
/// The name of the file in dataDir that holds this server's id.
pub const MYID_FILE: &str = "myid";
/// The most bytes of `myid` read: ZooKeeper reads its first line only.
pub const MYID_FILE_BYTES_MAX: usize = 4096;
/// The longest host name accepted (DNS's limit).
pub const HOST_NAME_LEN_MAX: usize = 253;

const _: () = assert!(SERVER_ID_MAX_EXTENDED < SERVER_ID_MAX);
// Every id fits the session id's top byte.
const _: () = assert!(SERVER_ID_MAX <= u8::MAX as ServerId);
const _: () = assert!(VOTERS_MAX <= MEMBERS_MAX);

/// Where a peer listens: an IP address or a host name resolved when connecting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// Lowercased (DNS names are case-insensitive).
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A host and a port, as a `server.N` line names them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddr {
    pub host: Host,
    pub port: u16,
}

impl PeerAddr {
    /// The socket address, when the host is an IP address (names are resolved by the
    /// caller, at connect or bind time).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }

    /// The socket address; a host name is looked up and its first answer taken, as
    /// Java's `InetSocketAddress` does (at start-up: ports are probed, links bound).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        use std::net::ToSocketAddrs;
        match &self.host {
            Host::Ip(ip) => Ok(SocketAddr::new(*ip, self.port)),
            Host::Name(name) => (name.as_str(), self.port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {name}: {e}"))?
                .next()
                .ok_or_else(|| format!("{name} resolves to no address")),
        }
    }

    fn is_wildcard(&self) -> bool {
        matches!(self.host, Host::Ip(ip) if ip.is_unspecified())
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: ServerId,
    /// Where followers and observers reach this server when it leads (ZooKeeper's
    /// "quorum port", 2888 in its examples).
    pub quorum: PeerAddr,
    /// Leader election (3888 in ZooKeeper's examples).
    pub election: PeerAddr,
    pub role: Role,
    /// The client address after `;`, if given (`;2181` means `0.0.0.0:2181`).
    pub client: Option<PeerAddr>,
}

impl ServerSpec {
    /// The line's key, `server.N`.
    pub fn key(&self) -> String {
        format!("server.{}", self.id)
    }

    /// Every address the line names, with what each is for.
    fn endpoints(&self) -> impl Iterator<Item = (&'static str, &PeerAddr)> {
        [("quorum", &self.quorum), ("election", &self.election)]
            .into_iter()
            .chain(self.client.iter().map(|c| ("client", c)))
    }
}

/// What zoo.cfg says about the ensemble, before this server's `myid` is known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumSpec {
    /// By id, ascending; ids unique.
    pub servers: Vec<ServerSpec>,
    /// `peerType`, if set.
    pub peer_type: Option<Role>,
    /// `initLimit` in ticks; 0 = not set.
    pub init_limit: u32,
    /// `syncLimit` in ticks; 0 = not set.
    pub sync_limit: u32,
    /// `standaloneEnabled` (default true).
    pub standalone_enabled: bool,
    /// `reconfigEnabled` (default false).
    pub reconfig_enabled: bool,
}

impl QuorumSpec {
    /// Participants (voters).
    pub fn voters(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.role == Role::Participant)
            .count()
    }

    /// Whether this describes a replicated ensemble (ZooKeeper's `isDistributed`): two
    /// or more voters, or any with `standaloneEnabled=false`.
    pub fn is_distributed(&self) -> bool {
        let voters = self.voters();
        voters > 1 || (voters == 1 && !self.standalone_enabled)
    }

    /// What ZooKeeper logs about the server list (it starts anyway).
    pub fn warnings(&self) -> Vec<String> {
        let voters = self.voters();
        if voters == 1 && !self.is_distributed() {
            return vec![format!(
                "only one server specified ({}): running standalone, the line is ignored",
                self.servers
                    .iter()
                    .find(|s| s.role == Role::Participant)
                    .map_or_else(String::new, ServerSpec::key)
            )];
        }
        if !self.is_distributed() {
            return Vec::new();
        }
        if voters <= 2 {
            vec![format!(
                "{voters} voting servers: no server failure will be tolerated; you need at \
                 least 3 servers"
            )]
        } else if voters.is_multiple_of(2) {
            vec![format!(
                "{voters} voting servers: non-optimal configuration, consider an odd number \
                 of servers (a majority of {voters} tolerates no more failures than of {})",
                voters - 1
            )]
        } else {
            Vec::new()
        }
    }
}

/// A validated ensemble and this server's place in it (invariants in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensemble {
    /// This server's id (from `dataDir/myid`).
    pub my_id: ServerId,
    /// Every member by id, ascending.
    pub servers: Vec<ServerSpec>,
    /// Ticks a follower may take to connect and sync to a leader (`initLimit`).
    pub init_limit_ticks: u32,
    /// Ticks a follower may lag before it is dropped (`syncLimit`).
    pub sync_limit_ticks: u32,
    /// `reconfigEnabled`: whether `reconfig` is allowed (not implemented yet).
    pub reconfig_enabled: bool,
}

impl Ensemble {
    /// Checks `spec` (which must be distributed) against this server's `myid` file
    /// text (`None`: no such file at `myid_path`).
    pub fn new(
        spec: QuorumSpec,
        myid: Option<&str>,
        myid_path: &Path,
        extended_types_enabled: bool,
    ) -> Result<Ensemble, ConfigError> {
        debug_assert!(
            spec.is_distributed(),
            "callers build an Ensemble only for a distributed spec; standalone has id 0"
        );
        let Some(text) = myid else {
            return Err(myid_err(
                myid_path,
                &format!(
                    "missing: a member of an ensemble finds its id there (write the N of \
                     its server.N line, e.g. `echo {} > {}`)",
                    spec.servers.first().map_or(1, |s| s.id),
                    myid_path.display()
                ),
            ));
        };
        // ZooKeeper reads the first line and parses it as a long.
        let line = text.lines().next().unwrap_or("").trim();
        let my_id: ServerId = line.parse().map_err(|_| {
            myid_err(
                myid_path,
                &format!("{line:?} is not a server id (a decimal number)"),
            )
        })?;
        let ids: Vec<String> = spec.servers.iter().map(|s| s.id.to_string()).collect();
        let Some(me) = spec.servers.iter().find(|s| s.id == my_id) else {
            return Err(myid_err(
                myid_path,
                &format!(
                    "id {my_id} is not among the server.N lines (ids {})",
                    ids.join(", ")
                ),
            ));
        };
        if extended_types_enabled && my_id > SERVER_ID_MAX_EXTENDED {
            return Err(myid_err(
                myid_path,
                &format!(
                    "id {my_id}: with extendedTypesEnabled a server id must be at most \
                     {SERVER_ID_MAX_EXTENDED} (session ids of server 255 look like TTL owners)"
                ),
            ));
        }
        if let Some(peer_type) = spec.peer_type
            && peer_type != me.role
        {
            return Err(bad(
                "peerType",
                role_name(peer_type),
                &format!(
                    "this server (myid {my_id}) is {} in its line {}={}; make them agree",
                    role_name(me.role),
                    me.key(),
                    display_line(me)
                ),
            ));
        }
        for (key, value) in [
            ("initLimit", spec.init_limit),
            ("syncLimit", spec.sync_limit),
        ] {
            if value == 0 {
                return Err(ConfigError::Missing { key });
            }
        }
        Ok(Ensemble {
            my_id,
            servers: spec.servers,
            init_limit_ticks: spec.init_limit,
            sync_limit_ticks: spec.sync_limit,
            reconfig_enabled: spec.reconfig_enabled,
        })
    }

    /// This server's line.
    pub fn me(&self) -> &ServerSpec {
        let me = self.servers.iter().find(|s| s.id == self.my_id);
        debug_assert!(me.is_some(), "Ensemble::new checked my_id is listed");
        me.unwrap_or(&self.servers[0])
    }

    /// This server's role.
    pub fn my_role(&self) -> Role {
        self.me().role
    }

    /// The voting members.
    pub fn voters(&self) -> impl Iterator<Item = &ServerSpec> {
        self.servers.iter().filter(|s| s.role == Role::Participant)
    }

    /// The observers.
    pub fn observers(&self) -> impl Iterator<Item = &ServerSpec> {
        self.servers.iter().filter(|s| s.role == Role::Observer)
    }

    /// This server's id as the top byte of its session ids.
    pub fn session_id_byte(&self) -> u8 {
        debug_assert!(self.my_id <= SERVER_ID_MAX, "take_spec bounds every id");
        self.my_id as u8
    }
}

/// Reads `dataDir/myid`: `Ok(None)` when there is no such file (as ZooKeeper, a
/// directory or other non-file counts as absent).
pub fn read_myid(data_dir: &Path) -> Result<Option<String>, ConfigError> {
    use std::io::Read;
    let path = myid_path(data_dir);
    if !path.is_file() {
        return Ok(None);
    }
    let file = std::fs::File::open(&path).map_err(|e| myid_err(&path, &e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MYID_FILE_BYTES_MAX as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| myid_err(&path, &e.to_string()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| myid_err(&path, "not text"))
}

/// Where `myid` lives for `data_dir`.
pub fn myid_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MYID_FILE)
}

fn myid_err(path: &Path, reason: &str) -> ConfigError {
    ConfigError::MyId {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Participant => "participant",
        Role::Observer => "observer",
    }
}

fn display_line(s: &ServerSpec) -> String {
    let mut line = format!("{}:{}:{}", s.quorum.host, s.quorum.port, s.election.port);
    if s.role == Role::Observer {
        line.push_str(":observer");
    }
    if let Some(c) = &s.client {
        line.push_str(&format!(";{c}"));
    }
    line
}

const WRONG_FORMAT: &str = "expected host:quorumPort:electionPort[:participant|:observer]\
                            [;[clientHost:]clientPort]";

/// Takes the ensemble keys out of `kv` and checks them (pure). With no `server.N`
/// line the result has no servers.
pub fn take_spec(kv: &mut BTreeMap<String, String>) -> Result<QuorumSpec, ConfigError> {
    let mut spec = QuorumSpec {
        standalone_enabled: take_bool(kv, "standaloneEnabled", true)?,
        reconfig_enabled: take_bool(kv, "reconfigEnabled", false)?,
        ..QuorumSpec::default()
    };
    spec.init_limit = take_ticks(kv, "initLimit")?;
    spec.sync_limit = take_ticks(kv, "syncLimit")?;
    spec.peer_type = match kv.remove("peerType") {
        None => None,
        Some(v) => Some(
            parse_role(&v)
                .ok_or_else(|| bad("peerType", &v, "expected observer or participant"))?,
        ),
    };
    let keys: Vec<String> = kv
        .keys()
        .filter(|k| k.starts_with("server."))
        .cloned()
        .collect();
    let mut by_id: BTreeMap<ServerId, ServerSpec> = BTreeMap::new();
    for key in keys {
        let value = kv.remove(&key).unwrap_or_default();
        let id = parse_id(&key, &value)?;
        let server = parse_server(id, &key, &value)?;
        if let Some(prev) = by_id.get(&id) {
            return Err(bad(
                &key,
                &value,
                &format!("server id {id} is given twice ({} and {key})", prev.key()),
            ));
        }
        by_id.insert(id, server);
    }
    spec.servers = by_id.into_values().collect();
    check_servers(&spec)?;
    if spec.is_distributed()
        && let Some(k) = kv
            .keys()
            .find(|k| k.starts_with("group.") || k.starts_with("weight."))
    {
        return Err(bad(
            k,
            &kv[k],
            "hierarchical quorums (group./weight.) are not supported: every voter counts once",
        ));
    }
    Ok(spec)
}

fn take_bool(
    kv: &mut BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, ConfigError> {
    // ZooKeeper's parseBoolean: true or false, any case.
    match kv.remove(key) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(bad(key, &v, "expected true or false")),
    }
}

fn take_ticks(kv: &mut BTreeMap<String, String>, key: &str) -> Result<u32, ConfigError> {
    match kv.remove(key) {
        None => Ok(0),
        // 0 is ZooKeeper's "not set": fine standalone, refused for an ensemble.
        Some(v) => super::parse_num(key, &v, 0, LIMIT_TICKS_MAX),
    }
}

fn parse_role(s: &str) -> Option<Role> {
    match s.trim().to_ascii_lowercase().as_str() {
        "participant" => Some(Role::Participant),
        "observer" => Some(Role::Observer),
        _ => None,
    }
}

pub(super) fn parse_id(key: &str, value: &str) -> Result<ServerId, ConfigError> {
    let digits = &key["server.".len()..];
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let id = ok.then(|| digits.parse::<ServerId>().ok()).flatten();
    match id {
        Some(id) if id <= SERVER_ID_MAX => Ok(id),
        Some(_) => Err(bad(
            key,
            value,
            &format!(
                "server id must be at most {SERVER_ID_MAX} (it is the top byte of the \
                 session ids that server hands out)"
            ),
        )),
        None => Err(bad(key, value, "N in server.N must be a decimal server id")),
    }
}

/// `host:port[:...]` split as ZooKeeper's `ConfigUtils.getHostAndPort` does, with a
/// bracketed IPv6 host kept whole.
fn split_host_and_ports(s: &str) -> Option<Vec<&str>> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let tail = tail.strip_prefix(':')?;
        let mut parts = vec![host];
        parts.extend(tail.split(':'));
        Some(parts)
    } else {
        Some(s.split(':').collect())
    }
}

fn parse_host(s: &str, bracketed: bool) -> Option<Host> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        // An IPv6 address must be bracketed (its colons would split the ports).
        return (bracketed == ip.is_ipv6()).then_some(Host::Ip(ip));
    }
    let name_ok = !bracketed
        && !s.is_empty()
        && s.len() <= HOST_NAME_LEN_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    name_ok.then(|| Host::Name(s.to_ascii_lowercase()))
}

fn parse_port(key: &str, value: &str, what: &str, s: &str) -> Result<u16, ConfigError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad(
            key,
            value,
            &format!("{what} port {s:?} is not a port number (1-65535)"),
        )),
    }
}

pub(super) fn parse_server(
    id: ServerId,
    key: &str,
    value: &str,
) -> Result<ServerSpec, ConfigError> {
    let wrong = |why: &str| bad(key, value, &format!("{why}; {WRONG_FORMAT}"));
    let mut halves = value.split(';');
    let server_part = halves.next().unwrap_or("").trim();
    let client_part = halves.next().map(str::trim);
    if halves.next().is_some() {
        return Err(wrong("more than one ';'"));
    }
    if server_part.contains('|') {
        return Err(bad(
            key,
            value,
            "several addresses per server (|) are not supported",
        ));
    }
    let parts = split_host_and_ports(server_part).ok_or_else(|| wrong("unclosed '['"))?;
    if parts.len() < 3 || parts.len() > 4 {
        return Err(wrong("wrong number of ':'-separated fields"));
    }
    let host = parse_host(parts[0], server_part.starts_with('['))
        .ok_or_else(|| wrong(&format!("{:?} is not a host", parts[0])))?;
    let quorum = parse_port(key, value, "quorum", parts[1])?;
    let election = parse_port(key, value, "election", parts[2])?;
    if quorum == election {
        return Err(bad(
            key,
            value,
            "quorum and election ports must be different",
        ));
    }
    let role = match parts.get(3) {
        None => Role::Participant,
        Some(r) => parse_role(r).ok_or_else(|| {
            bad(
                key,
                value,
                &format!("unknown role {r:?}: expected participant or observer"),
            )
        })?,
    };
    // Java's split drops a trailing empty part: `host:1:2;` has no client address.
    let client = match client_part.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let fields = split_host_and_ports(c).ok_or_else(|| wrong("unclosed '['"))?;
            let (host, port) = match fields.as_slice() {
                [port] => (Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), *port),
                [h, port] => (
                    parse_host(h, c.starts_with('['))
                        .ok_or_else(|| wrong(&format!("{h:?} is not a client host")))?,
                    *port,
                ),
                _ => return Err(wrong("client address is not [host:]port")),
            };
            Some(PeerAddr {
                host,
                port: parse_port(key, value, "client", port)?,
            })
        }
    };
    Ok(ServerSpec {
        id,
        quorum: PeerAddr {
            host: host.clone(),
            port: quorum,
        },
        election: PeerAddr {
            host,
            port: election,
        },
        role,
        client,
    })
}

/// Cross-line rules: counts, shared addresses, ports used twice.
pub(super) fn check_servers(spec: &QuorumSpec) -> Result<(), ConfigError> {
    let voters = spec.voters();
    let observers = spec.servers.len() - voters;
    let first_key = |role: Role| {
        spec.servers
            .iter()
            .find(|s| s.role == role)
            .map(|s| (s.key(), display_line(s)))
            .unwrap_or_default()
    };
    if voters == 0 && observers > 0 {
        let (k, v) = first_key(Role::Observer);
        return Err(bad(&k, &v, "observers without any participant"));
    }
    if voters == 0 && !spec.standalone_enabled {
        return Err(ConfigError::Ensemble(
            "standaloneEnabled=false needs at least one server.N participant".into(),
        ));
    }
    if voters == 1 && spec.standalone_enabled && observers > 0 {
        let (k, v) = first_key(Role::Observer);
        return Err(bad(
            &k,
            &v,
            "observers without a quorum: one participant runs standalone",
        ));
    }
    if voters > VOTERS_MAX || spec.servers.len() > MEMBERS_MAX {
        return Err(ConfigError::Ensemble(format!(
            "{voters} participants and {observers} observers: at most {VOTERS_MAX} \
             participants and {MEMBERS_MAX} servers in all"
        )));
    }
    let mut seen: BTreeMap<&PeerAddr, (String, &str)> = BTreeMap::new();
    for s in &spec.servers {
        let mut ports = BTreeSet::new();
        for (what, addr) in s.endpoints() {
            if !ports.insert(addr.port) {
                return Err(bad(
                    &s.key(),
                    &display_line(s),
                    &format!("port {} is used twice by this server", addr.port),
                ));
            }
            if addr.is_wildcard() {
                continue; // a client port on 0.0.0.0: its own host only, checked above
            }
            if let Some((other, other_what)) = seen.get(addr) {
                return Err(ConfigError::Ensemble(format!(
                    "{other} and {} both use {addr} ({other_what} and {what} address)",
                    s.key()
                )));
            }
            seen.insert(addr, (s.key(), what));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    fn spec(text: &str) -> Result<QuorumSpec, ConfigError> {
        take_spec(&mut kv(text))
    }

    fn addr(host: &str, port: u16) -> PeerAddr {
        PeerAddr {
            host: parse_host(host, host.contains(':')).unwrap(),
            port,
        }
    }

    const THREE: &str = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
                         server.3=127.0.0.3:2888:3888\ninitLimit=10\nsyncLimit=5\n";

    fn ensemble(text: &str, myid: Option<&str>) -> Result<Ensemble, ConfigError> {
        Ensemble::new(spec(text)?, myid, Path::new("/d/myid"), false)
    }

    #[test]
    fn every_accepted_server_form() {
        let s = spec(
            "server.1=10.0.0.1:2888:3888\n\
             server.2=zk2.Example.com:2889:3889:participant\n\
             server.3=[::1]:2890:3890:OBSERVER\n\
             server.4=10.0.0.4:2888:3888;2181\n\
             server.5=10.0.0.5:2888:3888:observer;10.0.0.5:2182\n\
             server.06=[fe80::1]:2888:3888;[::1]:2183\n\
             server.7=10.0.0.7:2888:3888:participant;0.0.0.0:2184\n\
             server.8=10.0.0.8:2888:3888;\n",
        )
        .unwrap();
        let ids: Vec<ServerId> = s.servers.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let one = &s.servers[0];
        assert_eq!(
            (
                one.quorum.clone(),
                one.election.clone(),
                one.role,
                one.client.clone()
            ),
            (
                addr("10.0.0.1", 2888),
                addr("10.0.0.1", 3888),
                Role::Participant,
                None
            )
        );
        assert_eq!(
            s.servers[1].quorum.host,
            Host::Name("zk2.example.com".into())
        );
        assert_eq!(s.servers[1].role, Role::Participant);
        assert_eq!(s.servers[2].quorum, addr("::1", 2890));
        assert_eq!(s.servers[2].quorum.to_string(), "[::1]:2890");
        assert_eq!(s.servers[2].role, Role::Observer);
        assert_eq!(s.servers[3].client, Some(addr("0.0.0.0", 2181)));
        assert_eq!(s.servers[4].role, Role::Observer);
        assert_eq!(s.servers[4].client, Some(addr("10.0.0.5", 2182)));
        assert_eq!(s.servers[5].client, Some(addr("::1", 2183)));
        assert_eq!(s.servers[6].client, Some(addr("0.0.0.0", 2184)));
        assert_eq!(s.servers[7].client, None, "a trailing ';' names no client");
        assert_eq!(s.voters(), 6);
        assert!(s.is_distributed());
    }

    #[test]
    fn other_keys_and_defaults() {
        let s = spec("").unwrap();
        assert!(s.servers.is_empty() && !s.is_distributed());
        assert!(s.standalone_enabled && !s.reconfig_enabled && s.peer_type.is_none());
        assert!(s.warnings().is_empty());
        let s = spec(&format!(
            "{THREE}peerType=Observer\nreconfigEnabled=TRUE\nstandaloneEnabled=true\n"
        ))
        .unwrap();
        assert_eq!(s.peer_type, Some(Role::Observer));
        assert!(s.reconfig_enabled);
        assert_eq!((s.init_limit, s.sync_limit), (10, 5));
        let mut rest = kv("server.1=127.0.0.1:2888:3888\nclientPort=2181\n");
        take_spec(&mut rest).unwrap();
        assert_eq!(rest.keys().collect::<Vec<_>>(), vec!["clientPort"]);
    }

    #[test]
    fn one_participant_is_standalone_and_warned_about() {
        let s = spec("server.1=127.0.0.1:2888:3888\n").unwrap();
        assert!(!s.is_distributed());
        assert!(s.warnings()[0].contains("standalone"), "{:?}", s.warnings());
        // ZooKeeper: standaloneEnabled=false makes a lone participant an ensemble.
        let s = spec("server.1=127.0.0.1:2888:3888\nstandaloneEnabled=false\n").unwrap();
        assert!(s.is_distributed());
    }

    #[test]
    fn voter_count_warnings_as_zookeeper_logs_them() {
        let two = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n";
        assert!(spec(two).unwrap().warnings()[0].contains("no server failure"));
        assert!(spec(THREE).unwrap().warnings().is_empty());
        let four = format!("{THREE}server.4=127.0.0.4:2888:3888\n");
        assert!(spec(&four).unwrap().warnings()[0].contains("odd number"));
        let observers_dont_count = format!("{THREE}server.4=127.0.0.4:2888:3888:observer\n");
        assert!(spec(&observers_dont_count).unwrap().warnings().is_empty());
    }

    #[test]
    fn malformed_server_lines_are_refused_naming_the_line() {
        let cases = [
            ("server.1=127.0.0.1:2888", "server.1"),
            ("server.1=127.0.0.1", "server.1"),
            ("server.1=127.0.0.1:2888:3888:observer:x", "server.1"),
            ("server.1=127.0.0.1:2888:3888:leader", "unknown role"),
            ("server.1=127.0.0.1:port:3888", "quorum port"),
            ("server.1=127.0.0.1:2888:70000", "election port"),
            ("server.1=127.0.0.1:0:3888", "quorum port"),
            ("server.1=127.0.0.1:2888:2888", "must be different"),
            ("server.1=127.0.0.1:2888:3888;a;b", "more than one ';'"),
            ("server.1=127.0.0.1:2888:3888;h:1:2", "client address"),
            ("server.1=127.0.0.1:2888:3888;x", "client port"),
            ("server.1=127.0.0.1:2888:3888;bad host!:2181", "client host"),
            ("server.1=::1:2888:3888", "server.1"),
            ("server.1=[::1:2888:3888", "unclosed"),
            ("server.1=[nohost]:2888:3888", "not a host"),
            ("server.1=:2888:3888", "not a host"),
            ("server.1=a|b:2888:3888", "several addresses"),
            ("server.x=127.0.0.1:2888:3888", "decimal server id"),
            ("server.=127.0.0.1:2888:3888", "decimal server id"),
            ("server.-1=127.0.0.1:2888:3888", "decimal server id"),
            ("server.256=127.0.0.1:2888:3888", "at most 255"),
            ("peerType=leader", "peerType"),
            ("initLimit=-1", "initLimit"),
            ("syncLimit=x", "syncLimit"),
            ("initLimit=100001", "initLimit"),
            ("reconfigEnabled=yes", "reconfigEnabled"),
            ("standaloneEnabled=1", "standaloneEnabled"),
        ];
        for (text, needle) in cases {
            let err = spec(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
    }

    #[test]
    fn inconsistent_server_lists_are_refused() {
        let cases = [
            (
                "server.1=127.0.0.1:2888:3888\nserver.01=127.0.0.2:2888:3888\n",
                "given twice",
            ),
            (
                "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2888:3888\n",
                "both use 127.0.0.1:2888",
            ),
            (
                "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:3888:4888\n",
                "both use 127.0.0.1:3888 (election and quorum address)",
            ),
            (
                "server.1=h:2888:3888\nserver.2=H:2888:3889\n",
                "both use h:2888",
            ),
            (
                "server.1=127.0.0.1:2888:3888;127.0.0.2:2889\nserver.2=127.0.0.2:2889:3889\n",
                "both use 127.0.0.2:2889 (client and quorum address)",
            ),
            (
                "server.1=127.0.0.1:2888:3888;2888\nserver.2=127.0.0.2:2888:3888\n",
                "port 2888 is used twice",
            ),
            (
                "server.1=127.0.0.1:2888:3888:observer\n",
                "observers without any participant",
            ),
            (
                "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888:observer\n",
                "observers without a quorum",
            ),
            ("standaloneEnabled=false\n", "at least one"),
            (
                "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\ngroup.1=1:2\n",
                "hierarchical",
            ),
        ];
        for (text, needle) in cases {
            let err = spec(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
        let many: String = (1..=VOTERS_MAX as u32 + 1)
            .map(|i| format!("server.{i}=10.0.{}.{}:2888:3888\n", i / 200, i % 200))
            .collect();
        assert!(spec(&many).unwrap_err().to_string().contains("at most"));
        // A standalone config may carry group lines (ZooKeeper ignores them there).
        assert!(spec("server.1=127.0.0.1:2888:3888\ngroup.1=1\n").is_ok());
    }

    #[test]
    fn the_ensemble_takes_its_id_from_myid() {
        let e = ensemble(THREE, Some("2\n")).unwrap();
        assert_eq!(e.my_id, 2);
        assert_eq!(e.session_id_byte(), 2);
        assert_eq!(e.me().quorum, addr("127.0.0.2", 2888));
        assert_eq!(e.my_role(), Role::Participant);
        assert_eq!(e.voters().count(), 3);
        assert_eq!(e.observers().count(), 0);
        assert_eq!((e.init_limit_ticks, e.sync_limit_ticks), (10, 5));
        // ZooKeeper's format: the first line; a newline (or CRLF) after it is fine.
        for text in ["3", "3\n", "3\r\n", " 3 \n", "3\nignored\n"] {
            assert_eq!(ensemble(THREE, Some(text)).unwrap().my_id, 3, "{text:?}");
        }
        let observer = format!("{THREE}server.9=127.0.0.9:2888:3888:observer\npeerType=observer\n");
        let e = ensemble(&observer, Some("9")).unwrap();
        assert_eq!(e.my_role(), Role::Observer);
        assert_eq!(e.observers().count(), 1);
    }

    #[test]
    fn myid_and_role_errors() {
        let missing = ensemble(THREE, None).unwrap_err().to_string();
        assert!(
            missing.contains("/d/myid") && missing.contains("missing"),
            "{missing}"
        );
        for text in ["", "\n", "one", "-1", "2 3"] {
            let err = ensemble(THREE, Some(text)).unwrap_err().to_string();
            assert!(
                err.contains("/d/myid") && err.contains("not a server id"),
                "{text:?}: {err}"
            );
        }
        let err = ensemble(THREE, Some("4")).unwrap_err().to_string();
        assert!(
            err.contains("id 4 is not among") && err.contains("1, 2, 3"),
            "{err}"
        );
        let err = ensemble(&format!("{THREE}peerType=observer\n"), Some("1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("peerType") && err.contains("participant"),
            "{err}"
        );
        let observer = format!("{THREE}server.4=127.0.0.4:2888:3888:observer\n");
        let err = ensemble(&format!("{observer}peerType=participant\n"), Some("4"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("peerType") && err.contains("observer"),
            "{err}"
        );
        let no_init = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\nsyncLimit=5\n";
        assert_eq!(
            ensemble(no_init, Some("1")).unwrap_err(),
            ConfigError::Missing { key: "initLimit" }
        );
        let no_sync = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\ninitLimit=5\n\
                       syncLimit=0\n";
        assert_eq!(
            ensemble(no_sync, Some("1")).unwrap_err(),
            ConfigError::Missing { key: "syncLimit" }
        );
        let id255 = "server.1=127.0.0.1:2888:3888\nserver.255=127.0.0.2:2888:3888\n\
                     initLimit=5\nsyncLimit=2\n";
        assert!(ensemble(id255, Some("255")).is_ok());
        let err = Ensemble::new(
            spec(id255).unwrap(),
            Some("255"),
            Path::new("/d/myid"),
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("extendedTypesEnabled"), "{err}");
    }

    #[test]
    fn read_myid_reads_the_file_or_reports_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_myid(dir.path()).unwrap(), None);
        std::fs::write(myid_path(dir.path()), "7\n").unwrap();
        assert_eq!(read_myid(dir.path()).unwrap().as_deref(), Some("7\n"));
        std::fs::write(myid_path(dir.path()), [0xff, 0xfe]).unwrap();
        let err = read_myid(dir.path()).unwrap_err().to_string();
        assert!(err.contains("myid") && err.contains("not text"), "{err}");
        // A directory named myid is no myid file (ZooKeeper's isFile).
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(myid_path(other.path())).unwrap();
        assert_eq!(read_myid(other.path()).unwrap(), None);
    }
}
