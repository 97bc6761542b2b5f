//! Executing commands: a [`Session`] (one ZooKeeper session over [`Client`]) runs a
//! parsed [`Command`], writing zkCli's output to a `&mut dyn Write`; [`main`] is the
//! whole program (one command, or batch mode reading commands from a `BufRead`).
//!
//! Contract:
//! - every path sent is the client path with the chroot prepended; every path printed
//!   (created names, `ls -R`, events, errors) is a client path;
//! - a server error is a [`CliError::Keeper`] whose `Display` is zkCli's message; output
//!   goes to `out`, errors are returned (the binary prints them to stderr) and make the
//!   exit status 1 (2 for a bad command line);
//! - waiting is bounded: a reply is awaited at most the negotiated session timeout;
//!   waiting for watch events pings the server every third of it, so the session lives
//!   while ckctl waits, and a test can bound the wait with a deadline;
//! - watch events that arrive while a command waits for its reply are printed after
//!   that command's output, in arrival order (ZooKeeper sends an event before the
//!   reply to the write that caused it, so in batch mode `addWatch /a` then `set /a x`
//!   prints the event right after the `set`);
//! - in batch mode a session idle for a third of its timeout is pinged before the next
//!   command; if that fails, or the previous command lost the connection (reported as
//!   `KeeperErrorCode = ConnectionLoss`, never retried: it may have been applied), the
//!   session is reattached on the connect string's servers, in order (or, if it
//!   expired, a new one opened, which stderr notes); auth is added again and the
//!   watches set so far are set again (`setWatches2`, see [`crate::watches`]);
//! - events are read only while ckctl waits for a reply or for events: in batch mode an
//!   event that comes while ckctl waits on stdin is printed after the next command,
//!   and one still in flight when input ends is not printed.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use transport::client::{Client, Incoming};
use transport::jute::records::*;
use transport::jute::{Acl, AddWatchMode, CreateMode, ErrorCode, Request, Response, Stat};

use crate::cmd::{self, Command, UsageError};
use crate::connect::ConnectString;
use crate::format;
use crate::watches::Watches;

/// Requests `deleteall` and `setAcl -R` keep in flight at once. A window is written
/// before its replies are read, so the replies of a whole window (at most ~100 bytes
/// each) must fit in the socket buffers; 256 keeps them near 25 KiB, and below the
/// server's per-connection limit of outstanding requests.
pub const PIPELINE_DEPTH_MAX: usize = 256;
/// Nodes `deleteall`, `ls -R` and `setAcl -R` walk before giving up.
pub const SUBTREE_NODES_MAX: usize = 1_000_000;
/// Bytes of a four-letter word's answer ckctl reads.
pub const FOUR_LETTER_BYTES_MAX: usize = 16 << 20;
/// How long connecting to one server, or a four-letter word's answer, may take.
pub const NETWORK_WAIT_MS_MAX: u64 = 10_000;
/// Shortest ping interval while waiting for events.
pub const PING_INTERVAL_MS_MIN: u64 = 100;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// A bad command line.
    Usage(UsageError),
    /// The server answered `code` for client path `path`.
    Keeper { code: i32, path: String },
    /// The connection to the server failed during a request for `path` (may be empty).
    ConnectionLoss { path: String, error: io::Error },
    /// Writing the output failed.
    Output(io::Error),
    /// Anything else, as a message.
    Other(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(u) => write!(f, "{u}"),
            CliError::Keeper { code, path } => f.write_str(&format::keeper_error(*code, path)),
            CliError::ConnectionLoss { path, error } => {
                let code = format::keeper_error(ErrorCode::ConnectionLoss.code(), path);
                write!(f, "{code} ({error})")
            }
            CliError::Output(e) => write!(f, "writing output: {e}"),
            CliError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

impl CliError {
    /// Whether the connection is gone after this error: lost, or closed by the server
    /// after a failed auth.
    pub fn closes_connection(&self) -> bool {
        match self {
            CliError::ConnectionLoss { .. } => true,
            CliError::Keeper { code, .. } => *code == ErrorCode::AuthFailed.code(),
            _ => false,
        }
    }
}

impl From<UsageError> for CliError {
    fn from(u: UsageError) -> Self {
        CliError::Usage(u)
    }
}

fn out_err(error: io::Error) -> CliError {
    CliError::Output(error)
}

fn unexpected(op: &str, r: &Response) -> CliError {
    CliError::Other(format!("{op} answered with an unexpected body: {r:?}"))
}

/// A connected ZooKeeper session and the connect string it came from.
pub struct Session {
    client: Client,
    conn: ConnectString,
    timeout_ms: i32,
    auth: Vec<(String, Vec<u8>)>,
    /// Events received while waiting for replies, not yet printed.
    events: Vec<WatcherEvent>,
    /// One-shot mode: `addWatch` without `--events` then prints events until
    /// interrupted (otherwise it returns once the watch is set).
    follow: bool,
    last_activity: Instant,
    /// The connection failed (or the server closed it after a failed auth): the next
    /// [`Session::keep_alive`] reconnects.
    broken: bool,
    /// Watches set, re-set after a reconnect.
    watches: Watches,
}

/// Connects to the first of `conn`'s servers that accepts a session.
fn connect_any(conn: &ConnectString, timeout_ms: i32) -> Result<Client, CliError> {
    let mut errors = Vec::new();
    for server in &conn.servers {
        match reachable(server).and_then(|_| Client::connect(server.as_str(), timeout_ms)) {
            Ok(c) => return Ok(c),
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    Err(CliError::Other(format!(
        "could not connect to any server: {}",
        errors.join("; ")
    )))
}

/// Fails fast (bounded by [`NETWORK_WAIT_MS_MAX`]) when nothing listens at `server`.
fn reachable(server: &str) -> io::Result<()> {
    let wait = Duration::from_millis(NETWORK_WAIT_MS_MAX);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in server.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, wait) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Session {
    /// Opens a session on the first server of `conn` that accepts one, then adds `auth`.
    pub fn open(
        conn: &ConnectString,
        timeout_ms: i32,
        auth: &[(String, Vec<u8>)],
    ) -> Result<Session, CliError> {
        let client = connect_any(conn, timeout_ms)?;
        let mut s = Session {
            client,
            conn: conn.clone(),
            timeout_ms,
            auth: Vec::new(),
            events: Vec::new(),
            follow: false,
            last_activity: Instant::now(),
            broken: false,
            watches: Watches::default(),
        };
        s.reply_timeout()?;
        for (scheme, a) in auth {
            s.add_auth(scheme, a)?;
        }
        Ok(s)
    }

    /// Whether `addWatch` without `--events` then prints events until interrupted
    /// (ckctl's one-shot mode) or returns once the watch is set (batch mode, and the
    /// default).
    pub fn set_follow(&mut self, follow: bool) {
        self.follow = follow;
    }

    /// The session id the server gave.
    pub fn session_id(&self) -> i64 {
        self.client.session_id()
    }

    fn reply_timeout(&mut self) -> Result<(), CliError> {
        let ms = self.client.negotiated_timeout_ms().max(1000) as u64;
        self.client
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .map_err(|e| lost(e, ""))
    }

    /// Sends `req` for client path `path`; a non-zero error code becomes `Err`.
    fn call(&mut self, req: Request, path: &str) -> Result<Response, CliError> {
        let (h, r) = self.call_raw(req, path)?;
        if h != 0 {
            return Err(CliError::Keeper {
                code: h,
                path: path.to_string(),
            });
        }
        Ok(r)
    }

    /// Sends `req`, returning the error code and body.
    fn call_raw(&mut self, req: Request, path: &str) -> Result<(i32, Response), CliError> {
        self.last_activity = Instant::now();
        let (h, r) = self
            .client
            .send(&req)
            .and_then(|_| self.client.recv_reply(&mut self.events))
            .map_err(|e| lost(e, path))?;
        self.watches.register(&req, h.err);
        Ok((h.err, r))
    }

    fn add_auth(&mut self, scheme: &str, auth: &[u8]) -> Result<(), CliError> {
        let req = Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.to_string(),
            auth: Some(auth.to_vec()),
        });
        self.call(req, "")?;
        self.auth.push((scheme.to_string(), auth.to_vec()));
        Ok(())
    }

    /// Before a command in batch mode: pings a session idle for a third of its
    /// timeout; if the connection is gone (or was found broken earlier), reattaches the
    /// session or, if it expired, opens a new one (noting that on `err`).
    pub fn keep_alive(&mut self, err: &mut dyn Write) -> Result<(), CliError> {
        let idle_max = Duration::from_millis(self.client.negotiated_timeout_ms().max(3) as u64 / 3);
        if !self.broken && self.last_activity.elapsed() < idle_max {
            return Ok(());
        }
        if !self.broken && self.call(Request::Ping, "").is_ok() {
            return Ok(());
        }
        self.reconnect(err)?;
        self.broken = false;
        Ok(())
    }

    fn reconnect(&mut self, err: &mut dyn Write) -> Result<(), CliError> {
        let (sid, pw, zxid) = (
            self.client.session_id(),
            self.client.password(),
            self.client.last_zxid(),
        );
        for server in &self.conn.servers {
            if reachable(server).is_err() {
                continue;
            }
            if let Ok(c) = Client::reconnect(server.as_str(), sid, &pw, self.timeout_ms, zxid) {
                self.client = c;
                return self.restore(zxid);
            }
        }
        self.client = connect_any(&self.conn, self.timeout_ms)?;
        let _ = writeln!(
            err,
            "session 0x{sid:x} expired; new session 0x{:x} (ephemerals of the old one are gone)",
            self.client.session_id()
        );
        self.restore(zxid)
    }

    /// On a new connection: the reply timeout, the auth, then the watches (events for
    /// changes after `zxid` that they missed come at once).
    fn restore(&mut self, zxid: i64) -> Result<(), CliError> {
        self.reply_timeout()?;
        for (scheme, a) in std::mem::take(&mut self.auth) {
            self.add_auth(&scheme, &a)?;
        }
        match self.watches.set_watches(zxid) {
            Some(req) => self.call(req, "").map(|_| ()),
            None => Ok(()),
        }
    }

    /// Runs `cmd`, writing its output (and any events that came meanwhile) to `out`.
    pub fn execute(&mut self, cmd: &Command, out: &mut dyn Write) -> Result<(), CliError> {
        let result = self.dispatch(cmd, out);
        if result.as_ref().is_err_and(CliError::closes_connection) {
            self.broken = true;
        }
        self.print_events(out)?;
        out.flush().map_err(out_err)?;
        result
    }

    fn dispatch(&mut self, cmd: &Command, out: &mut dyn Write) -> Result<(), CliError> {
        match cmd {
            Command::Create {
                path,
                data,
                acl,
                mode,
                ttl,
            } => self.create(path, data.clone(), acl.clone(), *mode, *ttl, out),
            Command::Get { path, stat, watch } => self.get(path, *stat, *watch, out),
            Command::Set {
                path,
                data,
                version,
                stat,
            } => {
                let req = Request::SetData(SetDataRequest {
                    path: self.conn.prepend(path),
                    data: Some(data.clone()),
                    version: *version,
                });
                let s = self.stat_of(req, path, "setData")?;
                print_stat_if(out, *stat, &s)
            }
            Command::Delete { path, version } => {
                let req = Request::Delete(DeleteRequest {
                    path: self.conn.prepend(path),
                    version: *version,
                });
                self.call(req, path).map(|_| ())
            }
            Command::DeleteAll { path } => self.delete_all(path),
            Command::Ls {
                path,
                stat,
                watch,
                recursive,
            } => self.ls(path, *stat, *watch, *recursive, out),
            Command::Stat { path, watch } => {
                let req = Request::Exists(ExistsRequest {
                    path: self.conn.prepend(path),
                    watch: *watch,
                });
                let s = self.stat_of(req, path, "exists")?;
                out.write_all(format::stat(&s).as_bytes()).map_err(out_err)
            }
            Command::Sync { path } => self.sync(path, out),
            Command::GetAllChildrenNumber { path } => {
                let req = Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
                    path: self.conn.prepend(path),
                });
                match self.call(req, path)? {
                    Response::GetAllChildrenNumber(r) => {
                        writeln!(out, "{}", r.total_number).map_err(out_err)
                    }
                    other => Err(unexpected("getAllChildrenNumber", &other)),
                }
            }
            Command::GetEphemerals { path } => self.get_ephemerals(path, out),
            Command::AddWatch { path, mode, events } => self.add_watch(path, *mode, *events, out),
            Command::GetAcl { path, stat } => self.get_acl(path, *stat, out),
            Command::SetAcl {
                path,
                acl,
                version,
                stat,
                recursive,
            } => self.set_acl(path, acl, *version, *stat, *recursive, out),
            Command::AddAuth { scheme, auth } => self.add_auth(scheme, auth),
            Command::Config {
                client,
                watch,
                stat,
            } => self.config(*client, *watch, *stat, out),
            Command::Reconfig {
                joining,
                leaving,
                members,
                version,
                stat,
            } => {
                // zkCli's `ZooKeeperAdmin.reconfigure` names no path in its errors.
                let req = Request::Reconfig(ReconfigRequest {
                    joining_servers: joining.clone(),
                    leaving_servers: leaving.clone(),
                    new_members: members.clone(),
                    cur_config_id: *version,
                });
                let (data, s) = match self.call(req, "")? {
                    Response::GetData(r) => (r.data, r.stat),
                    other => return Err(unexpected("reconfig", &other)),
                };
                let text = String::from_utf8_lossy(data.as_deref().unwrap_or_default());
                writeln!(out, "Committed new configuration:\n{text}").map_err(out_err)?;
                print_stat_if(out, *stat, &s)
            }
            Command::FourLetter { word, addr } => {
                let text = four_letter_any(addr.as_deref(), &self.conn, word)?;
                out.write_all(text.as_bytes()).map_err(out_err)
            }
            Command::Top { addr, admin, .. } => {
                // The runner samples over time; a session shows one snapshot.
                let text = top_text(addr.as_deref(), admin.as_deref(), &self.conn)?;
                out.write_all(text.as_bytes()).map_err(out_err)
            }
            Command::Help => writeln!(out, "{}", cmd::USAGE).map_err(out_err),
            Command::Quit => Ok(()),
        }
    }

    fn add_watch(
        &mut self,
        path: &str,
        mode: AddWatchMode,
        events: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let req = Request::AddWatch(AddWatchRequest {
            path: self.conn.prepend(path),
            mode: mode.code(),
        });
        self.call(req, path)?;
        match (events, self.follow) {
            (Some(n), _) => self.wait_events(Some(n), out, None).map(|_| ()),
            (None, false) => Ok(()),
            (None, true) => self.wait_events(None, out, None).map(|_| ()),
        }
    }

    fn create(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        acl: Option<Vec<Acl>>,
        mode: CreateMode,
        ttl: Option<i64>,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let rec = CreateRequest {
            path: self.conn.prepend(path),
            data,
            acl: acl.unwrap_or_else(Acl::open_unsafe),
            flags: mode.code(),
        };
        let req = match ttl {
            Some(ttl) => Request::CreateTtl(CreateTtlRequest {
                path: rec.path,
                data: rec.data,
                acl: rec.acl,
                flags: rec.flags,
                ttl,
            }),
            None if mode.is_container() => Request::CreateContainer(rec),
            None => Request::Create(rec),
        };
        let created = match self.call(req, path)? {
            Response::Create(r) => r.path,
            Response::Create2(r) => r.path,
            other => return Err(unexpected("create", &other)),
        };
        writeln!(out, "Created {}", self.conn.strip(&created)).map_err(out_err)
    }

    fn get(
        &mut self,
        path: &str,
        stat: bool,
        watch: bool,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let req = Request::GetData(GetDataRequest {
            path: self.conn.prepend(path),
            watch,
        });
        let (data, s) = match self.call(req, path)? {
            Response::GetData(r) => (r.data, r.stat),
            other => return Err(unexpected("getData", &other)),
        };
        out.write_all(format::data(data.as_deref()).as_bytes())
            .map_err(out_err)?;
        print_stat_if(out, stat, &s)
    }

    /// zkCli's `config`: `/zookeeper/config` (never under the chroot), or with
    /// `client` its version and the members' client addresses.
    fn config(
        &mut self,
        client: bool,
        watch: bool,
        stat: bool,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        const CONFIG_NODE: &str = "/zookeeper/config";
        let req = Request::GetData(GetDataRequest {
            path: CONFIG_NODE.into(),
            watch,
        });
        let (data, s) = match self.call(req, CONFIG_NODE)? {
            Response::GetData(r) => (r.data, r.stat),
            other => return Err(unexpected("getConfig", &other)),
        };
        let text = data.map_or_else(
            || "null".to_string(),
            |d| String::from_utf8_lossy(&d).into_owned(),
        );
        let shown = if client {
            format::client_config(&text)
        } else {
            text
        };
        writeln!(out, "{shown}").map_err(out_err)?;
        print_stat_if(out, stat, &s)
    }

    /// Calls an op that answers a `Stat`.
    fn stat_of(&mut self, req: Request, path: &str, op: &str) -> Result<Stat, CliError> {
        match self.call(req, path)? {
            Response::Stat(r) => Ok(r.stat),
            other => Err(unexpected(op, &other)),
        }
    }

    fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, CliError> {
        let req = Request::GetChildren(GetChildrenRequest {
            path: self.conn.prepend(path),
            watch,
        });
        match self.call(req, path)? {
            Response::GetChildren(r) => Ok(r.children),
            other => Err(unexpected("getChildren", &other)),
        }
    }

    fn ls(
        &mut self,
        path: &str,
        stat: bool,
        watch: bool,
        recursive: bool,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        if recursive {
            for p in self.subtree_dfs(path, watch)? {
                writeln!(out, "{p}").map_err(out_err)?;
            }
            return Ok(());
        }
        if !stat {
            let names = self.children(path, watch)?;
            return out
                .write_all(format::children(&names).as_bytes())
                .map_err(out_err);
        }
        let req = Request::GetChildren2(GetChildren2Request {
            path: self.conn.prepend(path),
            watch,
        });
        match self.call(req, path)? {
            Response::GetChildren2(r) => {
                out.write_all(format::children(&r.children).as_bytes())
                    .map_err(out_err)?;
                print_stat_if(out, true, &r.stat)
            }
            other => Err(unexpected("getChildren2", &other)),
        }
    }

    /// `path` and its descendants, parents first, children sorted (ZKUtil's DFS).
    /// `path` must exist; descendants deleted meanwhile are skipped.
    fn subtree_dfs(&mut self, path: &str, watch: bool) -> Result<Vec<String>, CliError> {
        self.exists_or_fail(path)?;
        let mut found = Vec::new();
        let mut stack = vec![path.to_string()];
        while let Some(p) = stack.pop() {
            if found.len() == SUBTREE_NODES_MAX {
                return Err(CliError::Other(format!(
                    "more than {SUBTREE_NODES_MAX} nodes under {path}"
                )));
            }
            let mut kids = match self.children(&p, watch) {
                Ok(k) => k,
                Err(CliError::Keeper { code, .. })
                    if code == ErrorCode::NoNode.code() && p != path =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            kids.sort_unstable();
            stack.extend(kids.iter().rev().map(|k| child_path(&p, k)));
            found.push(p);
        }
        Ok(found)
    }

    fn exists_or_fail(&mut self, path: &str) -> Result<(), CliError> {
        let req = Request::Exists(ExistsRequest {
            path: self.conn.prepend(path),
            watch: false,
        });
        self.stat_of(req, path, "exists").map(|_| ())
    }

    fn delete_all(&mut self, path: &str) -> Result<(), CliError> {
        let nodes = self.subtree_dfs(path, false)?;
        // Reverse DFS pre-order puts every child before its parent; the server runs one
        // session's requests in order, so pipelining them is safe.
        let reqs = nodes.iter().rev().map(|p| {
            let req = Request::Delete(DeleteRequest {
                path: self.conn.prepend(p),
                version: -1,
            });
            (req, p.clone())
        });
        let reqs: Vec<_> = reqs.collect();
        self.pipeline(reqs, path)
    }

    /// Sends `reqs` with up to [`PIPELINE_DEPTH_MAX`] in flight. NoNode on a path other
    /// than `root` is ignored (deleted meanwhile); any other error is returned (the
    /// rest of the replies are still read, so the session stays in step).
    fn pipeline(&mut self, reqs: Vec<(Request, String)>, root: &str) -> Result<(), CliError> {
        let mut first_err = None;
        let mut in_flight = std::collections::VecDeque::new();
        let mut it = reqs.into_iter();
        loop {
            while in_flight.len() < PIPELINE_DEPTH_MAX {
                let Some((req, p)) = it.next() else { break };
                self.client.send(&req).map_err(|e| lost(e, &p))?;
                in_flight.push_back(p);
            }
            let Some(p) = in_flight.pop_front() else {
                break;
            };
            let (h, _) = self
                .client
                .recv_reply(&mut self.events)
                .map_err(|e| lost(e, &p))?;
            let tolerated = h.err == ErrorCode::NoNode.code() && p != root;
            if h.err != 0 && !tolerated && first_err.is_none() {
                first_err = Some(CliError::Keeper {
                    code: h.err,
                    path: p,
                });
            }
        }
        self.last_activity = Instant::now();
        first_err.map_or(Ok(()), Err)
    }

    fn get_ephemerals(&mut self, path: &str, out: &mut dyn Write) -> Result<(), CliError> {
        let req = Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: self.conn.prepend(path),
        });
        match self.call(req, path)? {
            Response::GetEphemerals(r) => {
                let paths: Vec<String> = r.ephemerals.iter().map(|p| self.conn.strip(p)).collect();
                out.write_all(format::list(&paths).as_bytes())
                    .map_err(out_err)
            }
            other => Err(unexpected("getEphemerals", &other)),
        }
    }

    fn sync(&mut self, path: &str, out: &mut dyn Write) -> Result<(), CliError> {
        let req = Request::Sync(SyncRequest {
            path: self.conn.prepend(path),
        });
        match self.call_raw(req, path)? {
            (0, _) => writeln!(out, "Sync is OK").map_err(out_err),
            (rc, _) => Err(CliError::Other(format!("Sync has failed. rc={rc}"))),
        }
    }

    fn get_acl(&mut self, path: &str, stat: bool, out: &mut dyn Write) -> Result<(), CliError> {
        let req = Request::GetAcl(GetAclRequest {
            path: self.conn.prepend(path),
        });
        let (acl, s) = match self.call(req, path)? {
            Response::GetAcl(r) => (r.acl, r.stat),
            other => return Err(unexpected("getACL", &other)),
        };
        for a in &acl {
            out.write_all(format::acl_entry(a).as_bytes())
                .map_err(out_err)?;
        }
        print_stat_if(out, stat, &s)
    }

    fn set_acl(
        &mut self,
        path: &str,
        acl: &[Acl],
        version: i32,
        stat: bool,
        recursive: bool,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let req = |conn: &ConnectString, p: &str| {
            Request::SetAcl(SetAclRequest {
                path: conn.prepend(p),
                acl: acl.to_vec(),
                version,
            })
        };
        if recursive {
            let nodes = self.subtree_dfs(path, false)?;
            let reqs = nodes
                .iter()
                .map(|p| (req(&self.conn, p), p.clone()))
                .collect();
            return self.pipeline(reqs, path);
        }
        let s = self.stat_of(req(&self.conn, path), path, "setACL")?;
        print_stat_if(out, stat, &s)
    }

    /// Prints events as they arrive until `n` have been printed (`None`: forever),
    /// pinging the server while idle. `give_up` bounds the wait (for tests); past it
    /// the result is an error. Returns the number of events printed.
    pub fn wait_events(
        &mut self,
        n: Option<u64>,
        out: &mut dyn Write,
        give_up: Option<Duration>,
    ) -> Result<u64, CliError> {
        let deadline = give_up.map(|d| Instant::now() + d);
        let ping_ms =
            (self.client.negotiated_timeout_ms().max(0) as u64 / 3).max(PING_INTERVAL_MS_MIN);
        let interval = match give_up {
            Some(d) => Duration::from_millis(ping_ms).min(d.max(Duration::from_millis(1))),
            None => Duration::from_millis(ping_ms),
        };
        let _ = self.client.set_read_timeout(Some(interval));
        let result = self.event_loop(n, out, deadline);
        // Leave no ping reply outstanding: the next call must read its own reply.
        let drained = self.drain_outstanding();
        self.reply_timeout()?;
        let count = result?;
        drained?;
        Ok(count)
    }

    fn event_loop(
        &mut self,
        n: Option<u64>,
        out: &mut dyn Write,
        deadline: Option<Instant>,
    ) -> Result<u64, CliError> {
        let mut count = 0;
        for ev in std::mem::take(&mut self.events) {
            self.print_event(&ev, out)?;
            count += 1;
        }
        while n.is_none_or(|n| count < n) {
            match self.client.recv() {
                Ok(Incoming::Event(ev)) => {
                    self.print_event(&ev, out)?;
                    out.flush().map_err(out_err)?;
                    count += 1;
                }
                Ok(Incoming::Reply { .. }) => {} // a ping's
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(CliError::Other(format!(
                            "gave up waiting for events: {count} of {} arrived",
                            n.map_or("?".into(), |n| n.to_string())
                        )));
                    }
                    if self.client.outstanding() == 0 {
                        self.client.send(&Request::Ping).map_err(|e| lost(e, ""))?;
                        self.client.flush().map_err(|e| lost(e, ""))?;
                    }
                }
                Err(e) => return Err(lost(e, "")),
            }
        }
        self.last_activity = Instant::now();
        Ok(count)
    }

    fn drain_outstanding(&mut self) -> Result<(), CliError> {
        let _ = self
            .client
            .set_read_timeout(Some(Duration::from_millis(NETWORK_WAIT_MS_MAX)));
        while self.client.outstanding() > 0 {
            self.client
                .recv_reply(&mut self.events)
                .map_err(|e| lost(e, ""))?;
        }
        Ok(())
    }

    fn print_event(&mut self, ev: &WatcherEvent, out: &mut dyn Write) -> Result<(), CliError> {
        self.watches.fired(ev);
        let path = self.conn.strip(&ev.path);
        out.write_all(format::event(ev, &path).as_bytes())
            .map_err(out_err)
    }

    /// Prints the events received while waiting for replies.
    pub fn print_events(&mut self, out: &mut dyn Write) -> Result<(), CliError> {
        for ev in std::mem::take(&mut self.events) {
            self.print_event(&ev, out)?;
        }
        Ok(())
    }

    /// Closes the session (its ephemerals go).
    pub fn close(self) {
        let _ = self.client.close();
    }
}

fn lost(error: io::Error, path: &str) -> CliError {
    CliError::ConnectionLoss {
        path: path.to_string(),
        error,
    }
}

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

fn print_stat_if(out: &mut dyn Write, stat: bool, s: &Stat) -> Result<(), CliError> {
    if stat {
        out.write_all(format::stat(s).as_bytes()).map_err(out_err)?;
    }
    Ok(())
}

/// Sends `request` to the first of `addr`'s addresses that accepts a connection and
/// returns what it answers before closing (at most `FOUR_LETTER_BYTES_MAX` bytes).
fn ask(addr: &str, request: &[u8]) -> io::Result<Vec<u8>> {
    let wait = Duration::from_millis(NETWORK_WAIT_MS_MAX);
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address for {addr}"));
    for sa in addr.to_socket_addrs()? {
        let mut stream = match TcpStream::connect_timeout(&sa, wait) {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        stream.set_read_timeout(Some(wait))?;
        stream.write_all(request)?;
        let mut bytes = Vec::new();
        stream
            .take(FOUR_LETTER_BYTES_MAX as u64)
            .read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    Err(last)
}

/// Sends four-letter `word` to `addr` and returns the answer (with a final newline).
pub fn four_letter(addr: &str, word: &str) -> io::Result<String> {
    debug_assert!(word.len() == 4, "four-letter words have four letters");
    let bytes = ask(addr, word.as_bytes())?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `four_letter` to `addr`, or to the first of `conn`'s servers that answers.
fn four_letter_any(
    addr: Option<&str>,
    conn: &ConnectString,
    word: &str,
) -> Result<String, CliError> {
    let targets: Vec<&str> = match addr {
        Some(a) => vec![a],
        None => conn.servers.iter().map(String::as_str).collect(),
    };
    let mut errors = Vec::new();
    for t in targets {
        match four_letter(t, word) {
            Ok(text) => return Ok(text),
            Err(e) => errors.push(format!("{t}: {e}")),
        }
    }
    Err(CliError::Other(format!(
        "{word} failed: {}",
        errors.join("; ")
    )))
}

/// The body of `GET /metrics` from the admin endpoint at `admin` (`host:port`).
pub fn metrics(admin: &str) -> io::Result<String> {
    let bytes = ask(admin, b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        let why = format!("GET /metrics from {admin} answered {status:?}");
        return Err(io::Error::other(why));
    }
    Ok(body.to_string())
}

/// `metrics` from `admin`: a port on the host of `addr` (else of the first of `conn`'s
/// servers that answers), or a `host:port` of its own.
fn metrics_any(addr: Option<&str>, admin: &str, conn: &ConnectString) -> Result<String, CliError> {
    let targets: Vec<String> = match admin.parse::<u16>() {
        Ok(port) => {
            let servers: Vec<&str> = match addr {
                Some(a) => vec![a],
                None => conn.servers.iter().map(String::as_str).collect(),
            };
            servers
                .iter()
                .map(|s| {
                    let host = s.rsplit_once(':').map_or(*s, |(h, _)| h);
                    format!("{host}:{port}")
                })
                .collect()
        }
        Err(_) => vec![admin.to_string()],
    };
    let mut errors = Vec::new();
    for t in &targets {
        match metrics(t) {
            Ok(text) => return Ok(text),
            Err(e) => errors.push(format!("{t}: {e}")),
        }
    }
    Err(CliError::Other(format!(
        "top: reading /metrics failed: {}",
        errors.join("; ")
    )))
}

/// What `top` samples, as the server says it: `mntr`'s answer or, with `admin`, the
/// admin port's `/metrics`. A server whose whitelist refuses `mntr` is an error that
/// says what to enable, not a sample of zeros.
fn top_text(
    addr: Option<&str>,
    admin: Option<&str>,
    conn: &ConnectString,
) -> Result<String, CliError> {
    if let Some(admin) = admin {
        return metrics_any(addr, admin, conn);
    }
    let text = four_letter_any(addr, conn, "mntr")?;
    if crate::top::mntr_refused(&text) {
        return Err(CliError::Other(crate::top::MNTR_REFUSED.into()));
    }
    Ok(text)
}

/// One `top` sample (see [`top_text`]).
fn top_sample(
    addr: Option<&str>,
    admin: Option<&str>,
    conn: &ConnectString,
) -> Result<crate::top::Sample, CliError> {
    let text = top_text(addr, admin, conn)?;
    Ok(match admin {
        Some(_) => crate::top::from_metrics(&text),
        None => crate::top::parse(&text),
    })
}

/// Exit status of a failed command.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of a bad command line.
pub const EXIT_USAGE: i32 = 2;

/// The whole program: `args` without the program name; `input` is read in batch
/// mode. Returns the exit status.
pub fn main(
    args: &[String],
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    if args.first().map(String::as_str) == Some("cluster") {
        return crate::cluster::main(&args[1..], out, err);
    }
    let inv = match cmd::parse_invocation(args) {
        Ok(inv) => inv,
        Err(u) => {
            let _ = writeln!(err, "{u}");
            return EXIT_USAGE;
        }
    };
    let mut runner = Runner {
        inv: &inv,
        session: None,
    };
    let status = match &inv.command {
        Some(c) => match runner.run(c, false, out, err) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                EXIT_FAILED
            }
        },
        None => runner.batch(input, out, err),
    };
    if let Some(s) = runner.session.take() {
        s.close();
    }
    status
}

/// Holds the session, opened on the first command that needs one.
struct Runner<'a> {
    inv: &'a cmd::Invocation,
    session: Option<Session>,
}

impl Runner<'_> {
    /// `ckctl top`: samples `mntr` (or `/metrics`) and prints the per-core profile of
    /// each interval, headed by the server as `host:port[,host:port...]`.
    fn top(
        &self,
        addr: Option<&str>,
        admin: Option<&str>,
        interval_ms: u64,
        count: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let conn = &self.inv.connect;
        let server = addr.map_or_else(|| conn.servers.join(","), str::to_string);
        let mut prev = top_sample(addr, admin, conn)?;
        let mut taken = std::time::Instant::now();
        let mut shown = 0;
        while count.is_none_or(|n| shown < n) {
            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
            let cur = top_sample(addr, admin, conn)?;
            let now = std::time::Instant::now();
            let text = crate::top::render(&server, &prev, &cur, (now - taken).as_secs_f64());
            writeln!(out, "{text}").map_err(out_err)?;
            out.flush().map_err(out_err)?;
            (prev, taken, shown) = (cur, now, shown + 1);
        }
        Ok(())
    }

    fn run(
        &mut self,
        c: &Command,
        batch: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<(), CliError> {
        match c {
            Command::FourLetter { word, addr } => {
                let text = four_letter_any(addr.as_deref(), &self.inv.connect, word)?;
                return out.write_all(text.as_bytes()).map_err(out_err);
            }
            Command::Help => return writeln!(out, "{}", cmd::USAGE).map_err(out_err),
            Command::Top {
                addr,
                admin,
                interval_ms,
                count,
            } => {
                return self.top(addr.as_deref(), admin.as_deref(), *interval_ms, *count, out);
            }
            _ => {}
        }
        let session = match &mut self.session {
            Some(s) => {
                s.keep_alive(err)?;
                s
            }
            None => self.session.insert(Session::open(
                &self.inv.connect,
                self.inv.timeout_ms,
                &self.inv.auth,
            )?),
        };
        session.set_follow(!batch);
        session.execute(c, out)
    }

    /// Runs one command per line of `input`; returns 0 if all succeeded, else 1.
    fn batch(&mut self, input: &mut dyn BufRead, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
        let mut status = 0;
        loop {
            let line = match read_line(input) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    let _ = writeln!(err, "reading commands: {e}");
                    status = EXIT_FAILED;
                    if e.kind() == io::ErrorKind::InvalidData {
                        continue; // that line was skipped; go on with the next
                    }
                    break;
                }
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let parsed = cmd::tokenize(trimmed).and_then(|a| cmd::parse(&a));
            let result = match parsed {
                Ok(Command::Quit) => break,
                Ok(c) => self.run(&c, true, out, err),
                Err(u) => Err(CliError::Usage(u)),
            };
            if let Err(e) = result {
                let _ = writeln!(err, "{e}");
                status = EXIT_FAILED;
            }
        }
        status
    }
}

/// Longest batch-mode line, in bytes (room for a node's largest data, 1 MiB, quoted).
pub const BATCH_LINE_BYTES_MAX: usize = (1 << 20) + 4096;

/// The next line of `input` (`None` at the end). A line longer than
/// [`BATCH_LINE_BYTES_MAX`] or not UTF-8 is consumed and refused as `InvalidData`.
fn read_line(input: &mut dyn BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = input
        .take(BATCH_LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > BATCH_LINE_BYTES_MAX && !buf.ends_with(b"\n") {
        skip_line(input)?;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line longer than {BATCH_LINE_BYTES_MAX} bytes skipped"),
        ));
    }
    let text = String::from_utf8(buf)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8; skipped"))?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// Consumes `input` up to and including the next newline, a buffer at a time.
fn skip_line(input: &mut dyn BufRead) -> io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                input.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines_are_bounded() {
        let long = "x".repeat(BATCH_LINE_BYTES_MAX + 10);
        let mut bytes = format!("a\r\n{long}\nb\n").into_bytes();
        bytes.extend_from_slice(b"\xff\nc"); // a line that is not UTF-8, then one unterminated
        let mut input = &bytes[..];
        assert_eq!(read_line(&mut input).unwrap().as_deref(), Some("a"));
        let e = read_line(&mut input).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("longer than"));
        assert_eq!(read_line(&mut input).unwrap().as_deref(), Some("b"));
        assert!(
            read_line(&mut input)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        assert_eq!(read_line(&mut input).unwrap().as_deref(), Some("c"));
        assert_eq!(read_line(&mut input).unwrap(), None);
        let exact = "y".repeat(BATCH_LINE_BYTES_MAX);
        let with_nl = format!("{exact}\n");
        assert_eq!(read_line(&mut with_nl.as_bytes()).unwrap(), Some(exact));
    }
}
