//! `ckdiff`: differential testing of two ZooKeeper-protocol servers (issue 11).
//!
//! One seed is one random sequence of client steps ([`steps`]) over the client
//! opcodes (creates in every mode, delete and setData with right and wrong versions,
//! reads with and without watches, multi and multiRead with failing and check ops,
//! ACLs and digest auth, whoAmI, getEphemerals, getAllChildrenNumber, sync,
//! persistent and recursive watches, removeWatches and checkWatches, ephemerals of
//! several sessions, closeSession; not setWatches, reconfig, SASL, nor a check
//! outside a multi, which ZooKeeper 3.8 never answers). Each
//! step goes to both servers ("side a" and "side b") and is followed by a barrier: an
//! `exists` of the seed's root on every open session, so that every event the step
//! caused has arrived (a server must deliver a watch event before a later read's
//! reply on the same session) and no wait guesses. Everything each session received
//! during the step (replies and events, in arrival order per session) is normalised
//! ([`norm`]) and compared field by field; the first difference ends the seed and is
//! printed with both transcripts and the command that replays it.
//!
//! Each seed works under a fresh root (`<prefix>/d<seed>`, removed first if a previous
//! run left it, and removed afterwards) with fresh sessions, so seeds are independent
//! and one seed replays alone. A seed's own session (`admin`) creates the root and
//! watches it recursively, so every change shows as an event there too; a
//! NodeDeleted for a container that no op of the step deleted is the server's
//! container reaper (ZooKeeper checks every 60 s, corekeeper too) racing the seed, and
//! a read reporting a zxid that no write of the seed took is another client writing
//! (a session expiring): such a seed is run again (at most [`RERUNS_MAX`] times)
//! rather than reported.
//!
//! What ZooKeeper 3.8 does differently on purpose or by accident is not generated
//! (see [`steps`]): mixed watch kinds on one session and path (3.8's watch manager
//! keeps one mode; corekeeper follows 3.9). Malformed creates are (unknown flags,
//! modes an opcode cannot carry, standalone and inside multis): corekeeper answers
//! them as ZooKeeper 3.8 does.
//!
//! Known differences can be masked ([`Known`]); a seed that differs only in a masked
//! way passes and is counted as showing that difference, so the flag can go once a
//! fix lands.

pub mod norm;
pub mod rng;
pub mod steps;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use transport::client::{Client, Incoming};
use transport::jute::records::*;
use transport::jute::{
    AddWatchMode, CreateMode, ErrorCode, EventType, MultiOp, MultiRequest, ReplyHeader, Request,
    Response, WatcherType,
};

use norm::{Context, Item, Mask, Raw, Who, compare, data_text};
use steps::{Action, CREDENTIALS, Generator, Step, relative};

/// Tries at a seed's setup when the connection fails (not when the server answers
/// with an error), and the pause between them.
pub const SETUP_TRIES_MAX: u32 = 3;
pub const SETUP_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Session timeout asked for (both servers negotiate within their bounds).
pub const SESSION_TIMEOUT_MS: i32 = 30_000;
/// Longest wait for one reply.
pub const REPLY_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Times a seed is run again when something outside it raced it (a container
/// reaping, a zxid taken by another client).
pub const RERUNS_MAX: u32 = 2;

/// One connection to a server, as the differential engine uses it.
pub trait Link: Send {
    /// Sends a request (pings and auth with their special xids).
    fn send(&mut self, req: &Request) -> io::Result<()>;
    /// The next reply or event (bounded by a read timeout).
    fn recv(&mut self) -> io::Result<Incoming>;
    fn session_id(&self) -> i64;
    /// `(negotiated timeout, password length)` from the handshake.
    fn handshake(&self) -> (i32, usize);
}

/// Opens sessions on one server.
pub trait Connector: Send + Sync {
    fn connect(&self) -> io::Result<Box<dyn Link>>;
    /// For messages and the replay command: `host:port`.
    fn name(&self) -> String;
}

/// A [`Link`] over the blocking client.
struct ClientLink(Client);

impl Link for ClientLink {
    fn send(&mut self, req: &Request) -> io::Result<()> {
        self.0.send(req)?;
        self.0.flush()
    }
    fn recv(&mut self) -> io::Result<Incoming> {
        self.0.recv()
    }
    fn session_id(&self) -> i64 {
        self.0.session_id()
    }
    fn handshake(&self) -> (i32, usize) {
        (self.0.negotiated_timeout_ms(), self.0.password().len())
    }
}

/// Connects over TCP to `host:port`.
pub struct TcpConnector {
    pub addr: String,
    pub reply_timeout: Duration,
}

impl Connector for TcpConnector {
    fn connect(&self) -> io::Result<Box<dyn Link>> {
        let c = Client::connect(self.addr.as_str(), SESSION_TIMEOUT_MS)?;
        c.set_read_timeout(Some(self.reply_timeout))?;
        Ok(Box::new(ClientLink(c)))
    }
    fn name(&self) -> String {
        self.addr.clone()
    }
}

/// Known differences that may be masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Known {
    /// corekeeper did not bump the parent's cversion when a child was deleted (so
    /// sequential suffixes, taken from the cversion, differed too). Fixed; the mask
    /// stays for comparing older builds.
    pub cversion_on_delete: bool,
}

impl Known {
    /// The `--ignore` names of what is masked.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.cversion_on_delete {
            v.push("cversion-on-delete");
        }
        v
    }

    fn mask(self) -> Option<Mask> {
        self.cversion_on_delete.then_some(Mask {
            cversion: true,
            sequence: true,
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub first_seed: u64,
    pub seeds: u64,
    pub ops: usize,
    pub known: Known,
    /// Parent of the seed roots on side a / b ("" = top level).
    pub prefix_a: String,
    pub prefix_b: String,
    /// Print one line per seed.
    pub verbose: bool,
    /// Print every step and both sides' normalised transcripts.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            first_seed: 1,
            seeds: 1,
            ops: 200,
            known: Known::default(),
            prefix_a: String::new(),
            prefix_b: String::new(),
            verbose: false,
            trace: false,
        }
    }
}

/// Totals of a run (counts are seeds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: u64,
    pub failed: u64,
    /// Seeds that passed only because a known difference was masked.
    pub known_seen: u64,
    /// Seeds run again because a container reaping or a zxid taken outside the seed
    /// raced them.
    pub reruns: u64,
    /// The seeds that failed.
    pub failed_seeds: Vec<u64>,
}

/// How one run of one seed ended.
enum Outcome {
    Passed {
        known_seen: bool,
    },
    Diverged(String),
    /// Something outside the seed changed a server during it (a container reaping,
    /// a zxid taken by another client).
    Raced(String),
    Broken(String),
}

/// One server's state during a seed.
struct Side<'c> {
    name: &'static str,
    connector: &'c dyn Connector,
    ctx: Context,
    admin: Option<Box<dyn Link>>,
    users: Vec<Option<Box<dyn Link>>>,
}

/// Sends `req` and waits for its reply, setting aside events.
fn call(
    link: &mut dyn Link,
    req: &Request,
    events: &mut Vec<transport::jute::WatcherEvent>,
) -> io::Result<(ReplyHeader, Response)> {
    link.send(req)?;
    loop {
        match link.recv()? {
            Incoming::Reply { header, response } => return Ok((header, response)),
            Incoming::Event(e) => events.push(e),
        }
    }
}

fn call_ok(link: &mut dyn Link, req: &Request) -> io::Result<Response> {
    let (h, r) = call(link, req, &mut Vec::new())?;
    if h.err != 0 {
        return Err(transport::client::keeper_error(h.err));
    }
    Ok(r)
}

/// Deletes `path` and everything below it; a node already gone is fine.
fn delete_tree(link: &mut dyn Link, path: &str) -> io::Result<()> {
    let req = Request::GetChildren(GetChildrenRequest {
        path: path.into(),
        watch: false,
    });
    let (h, r) = call(link, &req, &mut Vec::new())?;
    if h.err == ErrorCode::NoNode.code() {
        return Ok(());
    }
    if h.err != 0 {
        return Err(io::Error::other(format!(
            "listing {path} for removal: {}",
            norm::err_name(h.err)
        )));
    }
    if let Response::GetChildren(c) = r {
        for child in c.children {
            delete_tree(link, &format!("{path}/{child}"))?;
        }
    }
    let del = Request::Delete(DeleteRequest {
        path: path.into(),
        version: -1,
    });
    let (h, _) = call(link, &del, &mut Vec::new())?;
    if h.err != 0 && h.err != ErrorCode::NoNode.code() {
        return Err(io::Error::other(format!(
            "removing {path}: {}",
            norm::err_name(h.err)
        )));
    }
    Ok(())
}

/// Rewrites every path of a request with `f`.
pub fn map_paths(req: &Request, f: &dyn Fn(&str) -> String) -> Request {
    let mut r = req.clone();
    let op = |op: &mut MultiOp| match op {
        MultiOp::Create(c) | MultiOp::Create2(c) | MultiOp::CreateContainer(c) => {
            c.path = f(&c.path)
        }
        MultiOp::CreateTtl(c) => c.path = f(&c.path),
        MultiOp::Delete(c) => c.path = f(&c.path),
        MultiOp::SetData(c) => c.path = f(&c.path),
        MultiOp::Check(c) => c.path = f(&c.path),
        MultiOp::GetChildren(c) => c.path = f(&c.path),
        MultiOp::GetData(c) => c.path = f(&c.path),
    };
    match &mut r {
        Request::Create(c) | Request::Create2(c) | Request::CreateContainer(c) => {
            c.path = f(&c.path)
        }
        Request::CreateTtl(c) => c.path = f(&c.path),
        Request::Delete(c) => c.path = f(&c.path),
        Request::Exists(c) => c.path = f(&c.path),
        Request::GetData(c) => c.path = f(&c.path),
        Request::SetData(c) => c.path = f(&c.path),
        Request::GetAcl(c) => c.path = f(&c.path),
        Request::SetAcl(c) => c.path = f(&c.path),
        Request::GetChildren(c) => c.path = f(&c.path),
        Request::GetChildren2(c) => c.path = f(&c.path),
        Request::GetAllChildrenNumber(c) => c.path = f(&c.path),
        Request::GetEphemerals(c) => c.prefix_path = f(&c.prefix_path),
        Request::Sync(c) => c.path = f(&c.path),
        Request::Check(c) => c.path = f(&c.path),
        Request::Multi(m) | Request::MultiRead(m) => m.ops.iter_mut().for_each(op),
        Request::CheckWatches(c) => c.path = f(&c.path),
        Request::RemoveWatches(c) => c.path = f(&c.path),
        Request::AddWatch(c) => c.path = f(&c.path),
        _ => {}
    }
    r
}

impl<'c> Side<'c> {
    fn new(name: &'static str, connector: &'c dyn Connector, root: &str) -> Side<'c> {
        Side {
            name,
            connector,
            ctx: Context::new(root),
            admin: None,
            users: Vec::new(),
        }
    }

    fn root(&self) -> String {
        self.ctx.root().to_string()
    }

    /// Opens the admin session, removes a root left by an earlier run, creates the
    /// root (write W0) and watches it recursively.
    fn setup(&mut self) -> io::Result<()> {
        let mut admin = self.connector.connect()?;
        self.ctx.session(admin.session_id(), "admin".into());
        for cred in CREDENTIALS {
            call_ok(
                admin.as_mut(),
                &Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: Some(cred.as_bytes().to_vec()),
                }),
            )?;
        }
        let root = self.root();
        delete_tree(admin.as_mut(), &root)?;
        let create = Request::Create(CreateRequest {
            path: root.clone(),
            data: None,
            acl: transport::jute::Acl::open_unsafe(),
            flags: CreateMode::Persistent.code(),
        });
        let (h, _) = call(admin.as_mut(), &create, &mut Vec::new())?;
        if h.err != 0 {
            return Err(io::Error::other(format!(
                "creating {root}: {}",
                norm::err_name(h.err)
            )));
        }
        self.ctx.wrote(h.zxid);
        call_ok(
            admin.as_mut(),
            &Request::AddWatch(AddWatchRequest {
                path: root,
                mode: AddWatchMode::PersistentRecursive.code(),
            }),
        )?;
        self.admin = Some(admin);
        Ok(())
    }

    /// Closes the sessions and removes the root.
    fn teardown(&mut self) -> io::Result<()> {
        for link in self.users.iter_mut().filter_map(Option::take) {
            let mut link = link;
            let _ = call(link.as_mut(), &Request::CloseSession, &mut Vec::new());
        }
        let Some(mut admin) = self.admin.take() else {
            return Ok(());
        };
        let root = self.root();
        let r = delete_tree(admin.as_mut(), &root);
        let _ = call(admin.as_mut(), &Request::CloseSession, &mut Vec::new());
        r
    }

    /// This side's full path for a root-relative path in side a's terms.
    fn full(&self, rel: &str) -> String {
        format!("{}{}", self.ctx.root(), self.ctx.from_a(rel))
    }

    /// Runs one step and the barrier; returns what arrived, per session in order.
    fn exec(&mut self, step: &Step) -> Vec<Raw> {
        let mut out = Vec::new();
        let who = Who::User(step.session);
        match &step.action {
            Action::Open => match self.connector.connect() {
                Ok(link) => {
                    let (time_out, passwd_len) = link.handshake();
                    self.ctx
                        .session(link.session_id(), format!("s{}", step.session));
                    out.push(Raw::Connected {
                        who,
                        time_out,
                        passwd_len,
                    });
                    self.set_user(step.session, Some(link));
                }
                Err(e) => out.push(Raw::Failed {
                    who,
                    error: e.to_string(),
                }),
            },
            Action::Request(req) => {
                let req = map_paths(req, &|rel| self.full(rel));
                let slot = self.users.get_mut(step.session).and_then(Option::take);
                match slot {
                    None => out.push(Raw::Failed {
                        who,
                        error: "session not open".into(),
                    }),
                    Some(mut link) => match self.one(link.as_mut(), who, &req, &mut out) {
                        Ok(header) => {
                            if req.is_write() {
                                self.ctx.wrote(header.zxid);
                            }
                            if req != Request::CloseSession {
                                self.set_user(step.session, Some(link));
                            }
                        }
                        Err(e) => out.push(Raw::Failed {
                            who,
                            error: e.to_string(),
                        }),
                    },
                }
            }
        }
        self.barrier(&mut out);
        out
    }

    fn set_user(&mut self, k: usize, link: Option<Box<dyn Link>>) {
        if self.users.len() <= k {
            self.users.resize_with(k + 1, || None);
        }
        self.users[k] = link;
    }

    /// Sends `req` on `link`; pushes the events before its reply, then the reply.
    fn one(
        &mut self,
        link: &mut dyn Link,
        who: Who,
        req: &Request,
        out: &mut Vec<Raw>,
    ) -> io::Result<ReplyHeader> {
        link.send(req)?;
        self.until_reply(link, who, req, out)
    }

    fn until_reply(
        &mut self,
        link: &mut dyn Link,
        who: Who,
        req: &Request,
        out: &mut Vec<Raw>,
    ) -> io::Result<ReplyHeader> {
        loop {
            match link.recv()? {
                Incoming::Event(event) => out.push(Raw::Event { who, event }),
                Incoming::Reply { header, response } => {
                    out.push(Raw::Reply {
                        who,
                        request: Box::new(req.clone()),
                        header,
                        response: Box::new(response),
                    });
                    return Ok(header);
                }
            }
        }
    }

    /// `exists(root)` on every open session (users in order, then admin): its reply
    /// comes after every event the server queued for that session before it.
    fn barrier(&mut self, out: &mut Vec<Raw>) {
        let req = Request::Exists(ExistsRequest {
            path: self.root(),
            watch: false,
        });
        let mut links: Vec<(Who, Box<dyn Link>)> = Vec::new();
        for k in 0..self.users.len() {
            if let Some(l) = self.users[k].take() {
                links.push((Who::User(k), l));
            }
        }
        if let Some(l) = self.admin.take() {
            links.push((Who::Admin, l));
        }
        let mut sent = Vec::new();
        for (who, mut link) in links {
            let ok = link.send(&req);
            sent.push((who, link, ok));
        }
        for (who, mut link, ok) in sent {
            let r = ok.and_then(|_| self.until_reply(link.as_mut(), who, &req, out));
            match r {
                Ok(_) => match who {
                    Who::User(k) => self.users[k] = Some(link),
                    Who::Admin => self.admin = Some(link),
                },
                Err(e) => out.push(Raw::Failed {
                    who,
                    error: e.to_string(),
                }),
            }
        }
    }
}

/// Root-relative paths a step deletes explicitly (delete, and deletes in a multi).
fn deletes(step: &Step) -> Vec<String> {
    match &step.action {
        Action::Request(Request::Delete(d)) => vec![d.path.clone()],
        Action::Request(Request::Multi(m)) => m
            .ops
            .iter()
            .filter_map(|op| match op {
                MultiOp::Delete(d) => Some(d.path.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A container that was deleted during the step by no op of the step (a reaping).
fn reaped(generator: &Generator, step: &Step, side: &Side<'_>, raws: &[Raw]) -> Option<String> {
    let explicit = deletes(step);
    raws.iter().find_map(|r| match r {
        Raw::Event {
            who: Who::Admin,
            event,
        } if event.event_type() == Some(EventType::NodeDeleted) => {
            let rel = side.ctx.to_a(relative(side.ctx.root(), &event.path)?);
            (generator.is_container(&rel) && !explicit.contains(&rel)).then_some(rel)
        }
        _ => None,
    })
}

/// Pairs the nodes the step's creates made on both sides, so that sequential names
/// can be compared by creation order under [`Mask::sequence`].
fn pair_creates(step: &Step, a: &Side<'_>, ra: &[Raw], b: &mut Side<'_>, rb: &[Raw]) {
    let created = |side: &Side<'_>, raws: &[Raw]| -> Vec<String> {
        let Some(Raw::Reply { response, .. }) = raws
            .iter()
            .find(|r| matches!(r, Raw::Reply { who: Who::User(k), .. } if *k == step.session))
        else {
            return Vec::new();
        };
        let paths: Vec<&str> = match &**response {
            Response::Create(c) => vec![&c.path],
            Response::Create2(c) => vec![&c.path],
            Response::Multi(m) => m
                .results
                .iter()
                .filter_map(|r| match r {
                    transport::jute::OpResult::Create { path }
                    | transport::jute::OpResult::Create2 { path, .. } => Some(path.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        paths
            .into_iter()
            .filter_map(|p| relative(side.ctx.root(), p).map(str::to_string))
            .collect()
    };
    let (pa, pb) = (created(a, ra), created(b, rb));
    if pa.len() == pb.len() {
        for (x, y) in pa.iter().zip(&pb) {
            if same_but_suffix(x, y) {
                b.ctx.rename(y, x);
            }
        }
    }
}

/// Whether `x` and `y` are sequential names that differ at most in their 10-digit
/// suffix (anything else is a real difference and must stay visible).
fn same_but_suffix(x: &str, y: &str) -> bool {
    let digits = |s: &str| s.len() >= 10 && s[s.len() - 10..].bytes().all(|c| c.is_ascii_digit());
    x.len() == y.len() && digits(x) && digits(y) && x[..x.len() - 10] == y[..y.len() - 10]
}

/// Puts what may legitimately come in either order into one order: the events of a
/// closeSession (ZooKeeper deletes a session's ephemerals in hash-set order), per
/// session and between two replies.
fn canonical(step: &Step, items: &mut [Item]) {
    if step.action != Action::Request(Request::CloseSession) {
        return;
    }
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j < items.len() && items[j].kind == "event" && items[j].who == items[i].who {
            j += 1;
        }
        if j > i {
            items[i..j].sort_by_key(|it| it.to_string());
            i = j;
        } else {
            i += 1;
        }
    }
}

/// Whether a difference is only a reply header's zxid, one side having seen a zxid
/// that no write of the seed took (`W<k>+`): something outside the seed wrote on that
/// server, e.g. another client's session expired. Seeds are rerun for it; a server
/// that takes zxids of its own accord fails again.
fn outside_zxid(diff: &norm::Difference) -> bool {
    !diff.fields.is_empty()
        && diff
            .fields
            .iter()
            .all(|(f, a, b)| f == "zxid" && (a.ends_with('+') != b.ends_with('+')))
}

/// A step as text, paths root-relative (`~/a/b`).
pub fn describe(step: &Step) -> String {
    let p = |rel: &str| format!("~{rel}");
    let acl = |a: &[transport::jute::Acl]| {
        let v: Vec<String> = a
            .iter()
            .map(|e| {
                format!(
                    "{}:{}:{}",
                    e.id.scheme,
                    e.id.id,
                    crate::acl::format_perms(e.perms)
                )
            })
            .collect();
        format!("[{}]", v.join(","))
    };
    let mode = |f: i32| {
        CreateMode::from_code(f).map_or_else(|| format!("flags={f}"), |m| format!("{m:?}"))
    };
    let wt = |t: i32| {
        WatcherType::from_code(t).map_or_else(|| format!("type={t}"), |w| format!("{w:?}"))
    };
    let create = |op: &str, r: &CreateRequest| {
        format!(
            "{op} {} {} data={} acl={}",
            p(&r.path),
            mode(r.flags),
            data_text(r.data.as_deref()),
            acl(&r.acl)
        )
    };
    let ttl = |r: &CreateTtlRequest| {
        format!(
            "createTTL {} {} ttl={} data={} acl={}",
            p(&r.path),
            mode(r.flags),
            r.ttl,
            data_text(r.data.as_deref()),
            acl(&r.acl)
        )
    };
    let multi_op = |op: &MultiOp| match op {
        MultiOp::Create(r) => create("create", r),
        MultiOp::Create2(r) => create("create2", r),
        MultiOp::CreateContainer(r) => create("createContainer", r),
        MultiOp::CreateTtl(r) => ttl(r),
        MultiOp::Delete(r) => format!("delete {} version={}", p(&r.path), r.version),
        MultiOp::SetData(r) => format!(
            "setData {} data={} version={}",
            p(&r.path),
            data_text(r.data.as_deref()),
            r.version
        ),
        MultiOp::Check(r) => format!("check {} version={}", p(&r.path), r.version),
        MultiOp::GetData(r) => format!("getData {}", p(&r.path)),
        MultiOp::GetChildren(r) => format!("getChildren {}", p(&r.path)),
    };
    let multi = |name: &str, m: &MultiRequest| {
        let v: Vec<String> = m.ops.iter().map(multi_op).collect();
        format!("{name} [{}]", v.join("; "))
    };
    let what = match &step.action {
        Action::Open => "open session".to_string(),
        Action::Request(r) => match r {
            Request::Create(r) => create("create", r),
            Request::Create2(r) => create("create2", r),
            Request::CreateContainer(r) => create("createContainer", r),
            Request::CreateTtl(r) => ttl(r),
            Request::Delete(_) | Request::SetData(_) | Request::Check(_) => {
                let op = match r {
                    Request::Delete(d) => MultiOp::Delete(d.clone()),
                    Request::SetData(d) => MultiOp::SetData(d.clone()),
                    Request::Check(d) => MultiOp::Check(d.clone()),
                    _ => unreachable!(),
                };
                multi_op(&op)
            }
            Request::GetData(r) => format!("getData {} watch={}", p(&r.path), r.watch),
            Request::Exists(r) => format!("exists {} watch={}", p(&r.path), r.watch),
            Request::GetChildren(r) => format!("getChildren {} watch={}", p(&r.path), r.watch),
            Request::GetChildren2(r) => {
                format!("getChildren2 {} watch={}", p(&r.path), r.watch)
            }
            Request::GetAcl(r) => format!("getACL {}", p(&r.path)),
            Request::SetAcl(r) => format!(
                "setACL {} acl={} version={}",
                p(&r.path),
                acl(&r.acl),
                r.version
            ),
            Request::Multi(m) => multi("multi", m),
            Request::MultiRead(m) => multi("multiRead", m),
            Request::Auth(a) => format!("addAuth {} {}", a.scheme, data_text(a.auth.as_deref())),
            Request::Sync(r) => format!("sync {}", p(&r.path)),
            Request::AddWatch(r) => format!(
                "addWatch {} {}",
                p(&r.path),
                AddWatchMode::from_code(r.mode)
                    .map_or_else(|| r.mode.to_string(), |m| format!("{m:?}"))
            ),
            Request::RemoveWatches(r) => {
                format!("removeWatches {} {}", p(&r.path), wt(r.watcher_type))
            }
            Request::CheckWatches(r) => {
                format!("checkWatches {} {}", p(&r.path), wt(r.watcher_type))
            }
            Request::GetAllChildrenNumber(r) => format!("getAllChildrenNumber {}", p(&r.path)),
            Request::GetEphemerals(r) => format!("getEphemerals {}", p(&r.prefix_path)),
            Request::WhoAmI => "whoAmI".into(),
            Request::CloseSession => "closeSession".into(),
            other => format!("{other:?}"),
        },
    };
    format!("s{}: {what}", step.session)
}

/// The runner: both servers, the options, where to print.
pub struct Runner<'c> {
    pub a: &'c dyn Connector,
    pub b: &'c dyn Connector,
    pub opts: Options,
}

fn transcript(out: &mut String, name: &str, items: &[Item], mark_at: usize) {
    let _ = writeln!(out, "  {name}:");
    for (i, it) in items.iter().enumerate() {
        let m = if i == mark_at { '!' } else { ' ' };
        let _ = writeln!(out, "   {m} {it}");
    }
}

impl Runner<'_> {
    /// The command that replays `seed`.
    pub fn replay(&self, seed: u64) -> String {
        let mut s = format!(
            "ckdiff --a {} --b {} --seed {seed} --ops {}",
            self.a.name(),
            self.b.name(),
            self.opts.ops
        );
        let known = self.opts.known.names();
        if !known.is_empty() {
            let _ = write!(s, " --ignore {}", known.join(","));
        }
        if !self.opts.prefix_a.is_empty() {
            let _ = write!(s, " --prefix-a {}", self.opts.prefix_a);
        }
        if !self.opts.prefix_b.is_empty() {
            let _ = write!(s, " --prefix-b {}", self.opts.prefix_b);
        }
        s
    }

    fn run_once(&self, seed: u64, trace: &mut dyn Write) -> Outcome {
        let mut a = Side::new("a", self.a, &format!("{}/d{seed}", self.opts.prefix_a));
        let mut b = Side::new("b", self.b, &format!("{}/d{seed}", self.opts.prefix_b));
        let outcome = self.steps(seed, &mut a, &mut b, trace);
        for side in [&mut a, &mut b] {
            if let Err(e) = side.teardown() {
                let msg = format!(
                    "seed {seed}: cleanup on {} ({}) failed: {e}",
                    side.name,
                    side.connector.name()
                );
                if matches!(outcome, Outcome::Passed { .. }) {
                    return Outcome::Broken(msg);
                }
            }
        }
        outcome
    }

    fn steps<'s>(
        &self,
        seed: u64,
        a: &mut Side<'s>,
        b: &mut Side<'s>,
        trace: &mut dyn Write,
    ) -> Outcome {
        for side in [&mut *a, &mut *b] {
            // A server that has just started may refuse its first sessions: a few
            // tries, a bounded pause apart.
            let mut tries = 0;
            let setup = loop {
                match side.setup() {
                    Err(e) if tries < SETUP_TRIES_MAX && e.kind() != io::ErrorKind::Other => {
                        tries += 1;
                        side.admin = None;
                        std::thread::sleep(SETUP_RETRY_PAUSE);
                    }
                    other => break other,
                }
            };
            if let Err(e) = setup {
                return Outcome::Broken(format!(
                    "seed {seed}: setup on {} ({}) failed: {e}",
                    side.name,
                    side.connector.name()
                ));
            }
        }
        let mut generator = Generator::new(seed);
        let mut known_seen = false;
        for i in 0..self.opts.ops {
            let step = generator.next_step();
            let (ra, rb) = std::thread::scope(|s| {
                let h = s.spawn(|| a.exec(&step));
                let rb = b.exec(&step);
                (h.join().expect("side a's thread"), rb)
            });
            pair_creates(&step, a, &ra, b, &rb);
            let norm = |side: &mut Side<'_>, raws: &[Raw], mask: Mask| {
                let mut items: Vec<Item> =
                    raws.iter().map(|r| side.ctx.normalize(r, mask)).collect();
                canonical(&step, &mut items);
                items
            };
            let strict = Mask::default();
            let ia = norm(a, &ra, strict);
            let ib = norm(b, &rb, strict);
            if self.opts.trace {
                let _ = writeln!(trace, "op {i}: {}", describe(&step));
                for (name, items) in [("a", &ia), ("b", &ib)] {
                    for it in items.iter() {
                        let _ = writeln!(trace, "  {name}: {it}");
                    }
                }
            }
            if let Some(diff) = compare(&ia, &ib) {
                let masked = self.opts.known.mask().map(|m| {
                    let ma = norm(a, &ra, m);
                    let mb = norm(b, &rb, m);
                    (compare(&ma, &mb), ma, mb)
                });
                let (diff, ia, ib) = match masked {
                    Some((None, _, _)) => {
                        known_seen = true;
                        (None, ia, ib)
                    }
                    Some((Some(d), ma, mb)) => (Some(d), ma, mb),
                    None => (Some(diff), ia, ib),
                };
                if let Some(diff) = diff {
                    if outside_zxid(&diff) {
                        return Outcome::Raced(format!(
                            "seed {seed}: a server's zxid moved during op {i} without a \
                             write of the seed (another client, a session expiring)"
                        ));
                    }
                    for (side, raws) in [(&*a, &ra), (&*b, &rb)] {
                        if let Some(p) = reaped(&generator, &step, side, raws) {
                            return Outcome::Raced(format!(
                                "seed {seed}: container ~{p} reaped by {} ({}) during op {i}",
                                side.name,
                                side.connector.name()
                            ));
                        }
                    }
                    return Outcome::Diverged(self.report(seed, i, &step, &diff, &ia, &ib));
                }
            }
            let reply = ra.iter().find_map(|r| match r {
                Raw::Reply {
                    who: Who::User(k),
                    header,
                    response,
                    ..
                } if *k == step.session => Some((header.err, &**response)),
                _ => None,
            });
            let events: Vec<&transport::jute::WatcherEvent> = ra
                .iter()
                .filter_map(|r| match r {
                    Raw::Event { event, .. } => Some(event),
                    _ => None,
                })
                .collect();
            let reply = match step.action {
                Action::Request(_) => reply,
                Action::Open => None,
            };
            generator.learn(&step, a.ctx.root(), reply, &events);
        }
        Outcome::Passed { known_seen }
    }

    fn report(
        &self,
        seed: u64,
        op: usize,
        step: &Step,
        diff: &norm::Difference,
        ia: &[Item],
        ib: &[Item],
    ) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "divergence: seed {seed} op {op}: {}", describe(step));
        match (&diff.a, &diff.b) {
            (Some(x), Some(y)) => {
                let _ = writeln!(s, "  first difference, item {}:", diff.index);
                let _ = writeln!(s, "    a: {x}");
                let _ = writeln!(s, "    b: {y}");
                for (f, va, vb) in &diff.fields {
                    let _ = writeln!(s, "    {f}: a={va} b={vb}");
                }
            }
            (Some(x), None) => {
                let _ = writeln!(s, "  only a received item {}: {x}", diff.index);
            }
            (None, Some(y)) => {
                let _ = writeln!(s, "  only b received item {}: {y}", diff.index);
            }
            (None, None) => {}
        }
        transcript(&mut s, &format!("a ({})", self.a.name()), ia, diff.index);
        transcript(&mut s, &format!("b ({})", self.b.name()), ib, diff.index);
        let _ = writeln!(s, "  replay: {}", self.replay(seed));
        s
    }

    /// Runs every seed; prints divergences and the final `differential:` line.
    pub fn run(&self, out: &mut dyn Write) -> Summary {
        let mut sum = Summary::default();
        let started = Instant::now();
        for seed in self.opts.first_seed..self.opts.first_seed.saturating_add(self.opts.seeds) {
            let mut tries = 0;
            let outcome = loop {
                match self.run_once(seed, out) {
                    Outcome::Raced(why) if tries < RERUNS_MAX => {
                        tries += 1;
                        sum.reruns += 1;
                        let _ = writeln!(out, "{why}: running the seed again");
                    }
                    other => break other,
                }
            };
            match outcome {
                Outcome::Passed { known_seen } => {
                    sum.passed += 1;
                    sum.known_seen += u64::from(known_seen);
                    if self.opts.verbose {
                        let note = if known_seen {
                            " (differed only in masked known differences)"
                        } else {
                            ""
                        };
                        let _ = writeln!(out, "seed {seed}: passed{note}");
                    }
                }
                Outcome::Diverged(report) => {
                    sum.failed += 1;
                    sum.failed_seeds.push(seed);
                    let _ = write!(out, "{report}");
                }
                Outcome::Raced(why) | Outcome::Broken(why) => {
                    sum.failed += 1;
                    sum.failed_seeds.push(seed);
                    let _ = writeln!(out, "{why}\n  replay: {}", self.replay(seed));
                }
            }
            let _ = out.flush();
        }
        if self.opts.known.cversion_on_delete {
            let _ = writeln!(
                out,
                "known difference cversion-on-delete masked in {} of {} seeds{}",
                sum.known_seen,
                sum.passed + sum.failed,
                if sum.known_seen == 0 {
                    " (it may be fixed: try without --ignore)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            out,
            "ckdiff: seeds {}..{}, {} ops each, {:.1} s, {} reruns (raced by reaping or outside writes)",
            self.opts.first_seed,
            self.opts.first_seed.saturating_add(self.opts.seeds),
            self.opts.ops,
            started.elapsed().as_secs_f64(),
            sum.reruns
        );
        let _ = writeln!(
            out,
            "differential: {} passed, {} failed",
            sum.passed, sum.failed
        );
        sum
    }
}

/// Usage text.
pub const USAGE: &str = "usage: ckdiff --a HOST:PORT --b HOST:PORT [--seed S] [--seeds N] [--ops M]
              [--ignore cversion-on-delete] [--prefix-a PATH] [--prefix-b PATH]
              [--reply-timeout-ms MS] [--verbose] [--trace]
Sends the same seeded random client ops to both servers (seeds S..S+N, M ops each,
under /d<seed>) and reports every difference in replies and watch events.
Last line: `differential: N passed, M failed` (counting seeds); exit status 1 if M > 0.";

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub a: String,
    pub b: String,
    pub opts: Options,
    pub reply_timeout: Duration,
}

/// Parses ckdiff's arguments.
pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = None;
    let mut b = None;
    let mut opts = Options::default();
    let mut reply_timeout = Duration::from_millis(REPLY_TIMEOUT_MS_DEFAULT);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--verbose" || flag == "--trace" {
            opts.verbose = true;
            opts.trace |= flag == "--trace";
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--a" => a = Some(value),
            "--b" => b = Some(value),
            "--seed" => opts.first_seed = num(&value)?,
            "--seeds" => opts.seeds = num(&value)?,
            "--ops" => opts.ops = num(&value)? as usize,
            "--prefix-a" => opts.prefix_a = value,
            "--prefix-b" => opts.prefix_b = value,
            "--reply-timeout-ms" => reply_timeout = Duration::from_millis(num(&value)?.max(1)),
            "--ignore" => {
                for what in value.split(',') {
                    match what {
                        "cversion-on-delete" => opts.known.cversion_on_delete = true,
                        other => return Err(format!("--ignore: unknown difference {other}")),
                    }
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    for p in [&opts.prefix_a, &opts.prefix_b] {
        if !p.is_empty() && (!p.starts_with('/') || p.ends_with('/')) {
            return Err(format!("prefix {p}: must start with / and not end with /"));
        }
    }
    Ok(Args {
        a: a.ok_or("--a HOST:PORT is required")?,
        b: b.ok_or("--b HOST:PORT is required")?,
        opts,
        reply_timeout,
    })
}

/// The whole program: returns the exit status.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "ckdiff: {e}\n{USAGE}");
            return 2;
        }
    };
    let a = TcpConnector {
        addr: args.a,
        reply_timeout: args.reply_timeout,
    };
    let b = TcpConnector {
        addr: args.b,
        reply_timeout: args.reply_timeout,
    };
    let runner = Runner {
        a: &a,
        b: &b,
        opts: args.opts,
    };
    let sum = runner.run(out);
    i32::from(sum.failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn arguments() {
        let a = parse_args(&args(
            "--a h:1 --b h:2 --seed 5 --seeds 3 --ops 10 --ignore cversion-on-delete",
        ))
        .unwrap();
        assert_eq!((a.a.as_str(), a.b.as_str()), ("h:1", "h:2"));
        assert_eq!((a.opts.first_seed, a.opts.seeds, a.opts.ops), (5, 3, 10));
        assert!(a.opts.known.cversion_on_delete);
        assert!(parse_args(&args("--a h:1")).is_err());
        assert!(parse_args(&args("--a h:1 --b h:2 --ignore other")).is_err());
        assert!(parse_args(&args("--a h:1 --b h:2 --prefix-a x")).is_err());
    }

    #[test]
    fn paths_are_mapped_in_every_op_of_a_multi() {
        let req = Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::Delete(DeleteRequest {
                    path: "/a".into(),
                    version: -1,
                }),
                MultiOp::Check(CheckVersionRequest {
                    path: "".into(),
                    version: 1,
                }),
            ],
        });
        let mapped = map_paths(&req, &|p| format!("/r{p}"));
        let Request::Multi(m) = mapped else { panic!() };
        assert_eq!(m.ops[0].path(), "/r/a");
        assert_eq!(m.ops[1].path(), "/r");
    }

    #[test]
    fn a_seed_is_the_same_sequence_every_time() {
        let mut g1 = Generator::new(42);
        let mut g2 = Generator::new(42);
        for _ in 0..200 {
            assert_eq!(g1.next_step(), g2.next_step());
        }
    }

    #[test]
    fn the_generator_covers_every_op() {
        let mut g = Generator::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3000 {
            let step = g.next_step();
            match &step.action {
                Action::Open => {
                    seen.insert("open".to_string());
                }
                Action::Request(r) => {
                    seen.insert(format!("{:?}", r.op_code()));
                    if let Request::Multi(m) = r {
                        for op in &m.ops {
                            seen.insert(format!("multi {:?}", op.op_code()));
                        }
                    }
                }
            }
        }
        for op in [
            "open",
            "Create",
            "Create2",
            "CreateContainer",
            "CreateTtl",
            "Delete",
            "SetData",
            "GetData",
            "Exists",
            "GetChildren",
            "GetChildren2",
            "Multi",
            "MultiRead",
            "GetAcl",
            "SetAcl",
            "Auth",
            "Sync",
            "AddWatch",
            "RemoveWatches",
            "CheckWatches",
            "GetAllChildrenNumber",
            "GetEphemerals",
            "WhoAmI",
            "CloseSession",
            "multi Check",
            "multi Delete",
            "multi SetData",
            "multi CreateTtl",
        ] {
            assert!(seen.contains(op), "{op} never generated: {seen:?}");
        }
    }
}
