//! Turning one server's replies and events into [`Item`]s that compare field by field
//! with the other server's.
//!
//! Values that legitimately differ between two servers are mapped, never dropped:
//! - **zxids** become `W<k>`, "the k-th write of this seed" (the header zxid of the
//!   k-th write reply this side received, the seed's root create being `W0`); a zxid
//!   that no write reply carried becomes `W<k>+` (after the k-th write: a session
//!   create, a container reaping) or `pre` (before the seed);
//! - **times** (ctime, mtime) become `T[W<k>]`, "the time of write k", after a check
//!   that every time this side reported for that zxid was the same one (so ctime ==
//!   mtime after a create, a node's mtime equals the time of its last set, and the ops
//!   of one multi share one time) and that it is within an hour of this machine's clock;
//! - **session ids** (ephemeralOwner) become `s<k>` (the k-th session the seed opened)
//!   or `admin`;
//! - **paths** under the seed's root become `~/...`; children lists and getEphemerals
//!   lists are sorted (ZooKeeper sends them in hash order);
//! - `ip` ids in whoAmI answers become `ip:*` (the address depends on the route), and
//!   the ids are sorted (ZooKeeper keeps a connection's ids in a hash set), as are ACL
//!   entries (ZooKeeper expands `auth` entries from that set).
//!
//! A [`Mask`] hides what a known difference changes: cversion, and sequential
//! suffixes (which ZooKeeper takes from the parent's cversion), then compared by
//! creation order instead ([`Context::rename`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use transport::jute::{
    Acl, ErrorCode, EventType, KeeperState, MultiOp, OpCode, OpResult, ReplyHeader, Request,
    Response, Stat, WatcherEvent,
};

/// How far a server's time may be from this machine's clock.
pub const CLOCK_SKEW_MS_MAX: i64 = 3_600_000;

/// Which session an item arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The seed's own session: it creates the root and holds a persistent recursive
    /// watch on it, so it sees every change.
    Admin,
    /// The k-th user session of the seed.
    User(usize),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Admin => write!(f, "admin"),
            Who::User(k) => write!(f, "s{k}"),
        }
    }
}

/// Something one side received, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    Reply {
        who: Who,
        /// The request it answers (paths as sent to this side).
        request: Box<Request>,
        header: ReplyHeader,
        response: Box<Response>,
    },
    Event {
        who: Who,
        event: WatcherEvent,
    },
    Connected {
        who: Who,
        time_out: i32,
        passwd_len: usize,
    },
    /// The connection failed (closed, timed out, refused).
    Failed {
        who: Who,
        error: String,
    },
}

impl Raw {
    pub fn who(&self) -> Who {
        match self {
            Raw::Reply { who, .. }
            | Raw::Event { who, .. }
            | Raw::Connected { who, .. }
            | Raw::Failed { who, .. } => *who,
        }
    }
}

/// What to hide, for known differences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mask {
    /// Stat.cversion is not compared.
    pub cversion: bool,
    /// Sequential nodes are compared by creation order, not by their suffix.
    pub sequence: bool,
}

/// A normalised reply or event: what gets compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub who: String,
    pub kind: String,
    pub fields: Vec<(String, String)>,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.who, self.kind)?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Where two transcripts first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Index of the first differing item.
    pub index: usize,
    pub a: Option<Item>,
    pub b: Option<Item>,
    /// `(field, a's value, b's value)` for each field that differs (the kind and
    /// session count as fields).
    pub fields: Vec<(String, String, String)>,
}

/// The first difference between two normalised transcripts, if any.
pub fn compare(a: &[Item], b: &[Item]) -> Option<Difference> {
    let n = a.len().max(b.len());
    for index in 0..n {
        let (x, y) = (a.get(index), b.get(index));
        if x == y {
            continue;
        }
        let mut fields = Vec::new();
        if let (Some(x), Some(y)) = (x, y) {
            if x.who != y.who {
                fields.push(("session".into(), x.who.clone(), y.who.clone()));
            }
            if x.kind != y.kind {
                fields.push(("kind".into(), x.kind.clone(), y.kind.clone()));
            }
            let mut names: Vec<&String> = x.fields.iter().map(|f| &f.0).collect();
            for (k, _) in &y.fields {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
            let get = |it: &Item, k: &str| {
                it.fields
                    .iter()
                    .find(|f| f.0 == k)
                    .map_or_else(|| "(absent)".to_string(), |f| f.1.clone())
            };
            for k in names {
                let (va, vb) = (get(x, k), get(y, k));
                if va != vb {
                    fields.push((k.clone(), va, vb));
                }
            }
        }
        return Some(Difference {
            index,
            a: x.cloned(),
            b: y.cloned(),
            fields,
        });
    }
    None
}

/// One side's mapping state for one seed.
#[derive(Debug, Clone)]
pub struct Context {
    root: String,
    /// Header zxids of the write replies, in order.
    writes: Vec<i64>,
    sessions: Vec<(i64, String)>,
    /// The time each zxid was first reported with.
    times: BTreeMap<i64, i64>,
    /// This side's root-relative sequential paths -> side a's, for [`Mask::sequence`].
    renames: BTreeMap<String, String>,
    clock_ms: i64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A name for an error code: `NoNode(-101)`.
pub fn err_name(code: i32) -> String {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::Ok) => "0".into(),
        Some(c) => format!("{c:?}({code})"),
        None => format!("{code}"),
    }
}

/// Data as text: `null`, or a quoted string with non-printables escaped.
pub fn data_text(d: Option<&[u8]>) -> String {
    match d {
        None => "null".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

/// An ACL list, sorted: ZooKeeper expands `auth` entries from a hash set, so their
/// order is not meaningful.
fn acl_text(acl: &[Acl]) -> String {
    let mut entries: Vec<String> = acl
        .iter()
        .map(|a| {
            format!(
                "{}:{}:{}",
                crate::acl::format_perms(a.perms),
                a.id.scheme,
                a.id.id
            )
        })
        .collect();
    entries.sort();
    format!("[{}]", entries.join(","))
}

fn event_name(code: i32) -> String {
    EventType::from_code(code).map_or_else(|| code.to_string(), |e| format!("{e:?}"))
}

impl Context {
    pub fn new(root: &str) -> Context {
        Context {
            root: root.to_string(),
            writes: Vec::new(),
            sessions: Vec::new(),
            times: BTreeMap::new(),
            renames: BTreeMap::new(),
            clock_ms: wall_ms(),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Notes the header zxid of a write reply (in the order the replies came).
    pub fn wrote(&mut self, zxid: i64) {
        self.writes.push(zxid);
    }

    /// Names a session id.
    pub fn session(&mut self, id: i64, label: String) {
        self.sessions.push((id, label));
    }

    /// Notes that this side's sequential node `mine` (root-relative) is side a's
    /// `theirs`.
    pub fn rename(&mut self, mine: &str, theirs: &str) {
        if mine != theirs {
            self.renames.insert(mine.to_string(), theirs.to_string());
        }
    }

    /// Side a's root-relative path for this side's `rel` (longest renamed prefix).
    pub fn to_a(&self, rel: &str) -> String {
        map_prefix(&self.renames, rel)
    }

    /// This side's root-relative path for side a's `rel`.
    pub fn from_a(&self, rel: &str) -> String {
        let back: BTreeMap<String, String> = self
            .renames
            .iter()
            .map(|(m, t)| (t.clone(), m.clone()))
            .collect();
        map_prefix(&back, rel)
    }

    /// The token for a zxid (see the module docs).
    pub fn zxid(&self, z: i64) -> String {
        if z == 0 || z == -1 {
            return z.to_string();
        }
        if let Some(i) = self.writes.iter().position(|&w| w == z) {
            return format!("W{i}");
        }
        match self.writes.iter().filter(|&&w| w < z).count() {
            0 => "pre".into(),
            k => format!("W{}+", k - 1),
        }
    }

    /// The token for time `t` reported as the time of `zxid`.
    fn time(&mut self, zxid: i64, t: i64) -> String {
        let z = self.zxid(zxid);
        if (t - self.clock_ms).abs() > CLOCK_SKEW_MS_MAX {
            return format!("T[{z}]=implausible({t})");
        }
        match self.times.get(&zxid) {
            Some(&first) if first != t => {
                format!("T[{z}]=inconsistent({t}, first seen as {first})")
            }
            Some(_) => format!("T[{z}]"),
            None => {
                self.times.insert(zxid, t);
                format!("T[{z}]")
            }
        }
    }

    fn owner(&self, id: i64) -> String {
        if id == 0 {
            return "0".into();
        }
        self.sessions
            .iter()
            .find(|s| s.0 == id)
            .map_or_else(|| format!("unknown-session(0x{id:x})"), |s| s.1.clone())
    }

    /// A path: `~/...` under the root (renamed under [`Mask::sequence`]), else as is.
    pub fn path(&self, p: &str, mask: Mask) -> String {
        match super::steps::relative(&self.root, p) {
            Some(rel) if mask.sequence => format!("~{}", self.to_a(rel)),
            Some(rel) => format!("~{rel}"),
            None => p.to_string(),
        }
    }

    fn children(&self, parent: &str, names: &[String], mask: Mask) -> String {
        let mut v: Vec<String> = names
            .iter()
            .map(|c| {
                let full = if parent == "/" {
                    format!("/{c}")
                } else {
                    format!("{parent}/{c}")
                };
                let p = self.path(&full, mask);
                p.rsplit('/').next().unwrap_or("").to_string()
            })
            .collect();
        v.sort();
        format!("[{}]", v.join(","))
    }

    fn stat(&mut self, prefix: &str, s: &Stat, mask: Mask, out: &mut Vec<(String, String)>) {
        let mut f = |k: &str, v: String| out.push((format!("{prefix}{k}"), v));
        f("czxid", self.zxid(s.czxid));
        f("mzxid", self.zxid(s.mzxid));
        f("ctime", self.time(s.czxid, s.ctime));
        f("mtime", self.time(s.mzxid, s.mtime));
        f("version", s.version.to_string());
        if !mask.cversion {
            f("cversion", s.cversion.to_string());
        }
        f("aversion", s.aversion.to_string());
        f("ephemeralOwner", self.owner(s.ephemeral_owner));
        f("dataLength", s.data_length.to_string());
        f("numChildren", s.num_children.to_string());
        f("pzxid", self.zxid(s.pzxid));
    }

    /// Normalises one received thing.
    pub fn normalize(&mut self, raw: &Raw, mask: Mask) -> Item {
        let who = raw.who().to_string();
        let mut fields = Vec::new();
        let kind = match raw {
            Raw::Connected {
                time_out,
                passwd_len,
                ..
            } => {
                fields.push(("timeOut".into(), time_out.to_string()));
                fields.push(("passwdLen".into(), passwd_len.to_string()));
                "connected".to_string()
            }
            Raw::Failed { error, .. } => {
                fields.push(("error".into(), error.clone()));
                "connection failed".to_string()
            }
            Raw::Event { event, .. } => {
                fields.push(("type".into(), event_name(event.event_type)));
                fields.push((
                    "state".into(),
                    KeeperState::from_code(event.state)
                        .map_or_else(|| event.state.to_string(), |s| format!("{s:?}")),
                ));
                fields.push(("path".into(), self.path(&event.path, mask)));
                "event".to_string()
            }
            Raw::Reply {
                request,
                header,
                response,
                ..
            } => {
                fields.push(("err".into(), err_name(header.err)));
                fields.push(("zxid".into(), self.zxid(header.zxid)));
                self.response(request, response, mask, &mut fields);
                format!("reply {:?}", request.op_code())
            }
        };
        Item { who, kind, fields }
    }

    fn response(
        &mut self,
        request: &Request,
        response: &Response,
        mask: Mask,
        out: &mut Vec<(String, String)>,
    ) {
        let req_path = request.path().unwrap_or("/");
        match response {
            Response::Empty => {}
            Response::Notification(ev) => {
                out.push(("notification".into(), format!("{ev:?}")));
            }
            Response::Create(c) => out.push(("path".into(), self.path(&c.path, mask))),
            Response::Create2(c) => {
                out.push(("path".into(), self.path(&c.path, mask)));
                self.stat("stat.", &c.stat, mask, out);
            }
            Response::Stat(s) => self.stat("stat.", &s.stat, mask, out),
            Response::GetData(d) => {
                out.push(("data".into(), data_text(d.data.as_deref())));
                self.stat("stat.", &d.stat, mask, out);
            }
            Response::GetAcl(a) => {
                out.push(("acl".into(), acl_text(&a.acl)));
                self.stat("stat.", &a.stat, mask, out);
            }
            Response::GetChildren(c) => {
                out.push((
                    "children".into(),
                    self.children(req_path, &c.children, mask),
                ));
            }
            Response::GetChildren2(c) => {
                out.push((
                    "children".into(),
                    self.children(req_path, &c.children, mask),
                ));
                self.stat("stat.", &c.stat, mask, out);
            }
            Response::GetAllChildrenNumber(n) => {
                out.push(("totalNumber".into(), n.total_number.to_string()));
            }
            Response::GetEphemerals(e) => {
                let mut v: Vec<String> = e.ephemerals.iter().map(|p| self.path(p, mask)).collect();
                v.sort();
                out.push(("ephemerals".into(), format!("[{}]", v.join(","))));
            }
            Response::Sync(s) => out.push(("path".into(), self.path(&s.path, mask))),
            Response::Multi(m) => {
                let ops: Vec<Option<&MultiOp>> = match request {
                    Request::Multi(r) | Request::MultiRead(r) => r.ops.iter().map(Some).collect(),
                    _ => Vec::new(),
                };
                out.push(("results".into(), m.results.len().to_string()));
                for (i, r) in m.results.iter().enumerate() {
                    let p = format!("results[{i}].");
                    let op_path = ops.get(i).copied().flatten().map(MultiOp::path);
                    self.op_result(&p, r, op_path, mask, out);
                }
            }
            Response::AddWatch(e) => out.push(("body.err".into(), err_name(e.err))),
            Response::WhoAmI(w) => {
                // Sorted: ZooKeeper keeps a connection's ids in a hash set.
                let mut v: Vec<String> = w
                    .client_info
                    .iter()
                    .map(|c| {
                        if c.auth_scheme == "ip" {
                            "ip:*".to_string()
                        } else {
                            format!("{}:{}", c.auth_scheme, c.user)
                        }
                    })
                    .collect();
                v.sort();
                out.push(("clientInfo".into(), format!("[{}]", v.join(","))));
            }
            Response::Sasl(s) => out.push(("token".into(), data_text(s.token.as_deref()))),
        }
    }

    fn op_result(
        &mut self,
        p: &str,
        r: &OpResult,
        op_path: Option<&str>,
        mask: Mask,
        out: &mut Vec<(String, String)>,
    ) {
        let ty = OpCode::from_code(r.type_code())
            .map_or_else(|| r.type_code().to_string(), |o| format!("{o:?}"));
        out.push((format!("{p}type"), ty));
        match r {
            OpResult::Create { path } => out.push((format!("{p}path"), self.path(path, mask))),
            OpResult::Create2 { path, stat } => {
                out.push((format!("{p}path"), self.path(path, mask)));
                self.stat(&format!("{p}stat."), stat, mask, out);
            }
            OpResult::Delete | OpResult::Check => {}
            OpResult::SetData { stat } => self.stat(&format!("{p}stat."), stat, mask, out),
            OpResult::GetChildren { children } => out.push((
                format!("{p}children"),
                self.children(op_path.unwrap_or("/"), children, mask),
            )),
            OpResult::GetData { data, stat } => {
                out.push((format!("{p}data"), data_text(data.as_deref())));
                self.stat(&format!("{p}stat."), stat, mask, out);
            }
            OpResult::Error { err } => out.push((format!("{p}err"), err_name(*err))),
        }
    }
}

fn map_prefix(map: &BTreeMap<String, String>, rel: &str) -> String {
    let mut cut = rel.len();
    loop {
        if let Some(to) = map.get(&rel[..cut]) {
            return format!("{to}{}", &rel[cut..]);
        }
        match rel[..cut].rfind('/') {
            Some(i) if i > 0 => cut = i,
            _ => return rel.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::records::*;

    fn get_data(root: &str, stat: Stat) -> Raw {
        Raw::Reply {
            who: Who::User(1),
            request: Box::new(Request::GetData(GetDataRequest {
                path: format!("{root}/a"),
                watch: false,
            })),
            header: ReplyHeader {
                xid: 3,
                zxid: stat.mzxid,
                err: 0,
            },
            response: Box::new(Response::GetData(GetDataResponse {
                data: Some(b"x".to_vec()),
                stat,
            })),
        }
    }

    fn stat(base: i64, now: i64) -> Stat {
        Stat {
            czxid: base + 1,
            mzxid: base + 2,
            ctime: now,
            mtime: now + 5,
            version: 1,
            cversion: 2,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 1,
            num_children: 0,
            pzxid: base + 1,
        }
    }

    fn contexts(now: i64) -> (Context, Context) {
        let (mut a, mut b) = (Context::new("/d1"), Context::new("/x/d1"));
        for z in [100, 101, 102] {
            a.wrote(z);
        }
        for z in [7, 8, 9] {
            b.wrote(z);
        }
        let _ = now;
        (a, b)
    }

    #[test]
    fn zxids_and_times_are_mapped_not_compared_by_value() {
        let now = wall_ms();
        let (mut a, mut b) = contexts(now);
        let ia = a.normalize(&get_data("/d1", stat(100, now)), Mask::default());
        let ib = b.normalize(&get_data("/x/d1", stat(7, now + 1234)), Mask::default());
        assert_eq!(compare(std::slice::from_ref(&ia), &[ib]), None);
        assert!(ia.to_string().contains("stat.czxid=W1"), "{ia}");
        assert!(ia.to_string().contains("stat.mtime=T[W2]"), "{ia}");
    }

    #[test]
    fn a_planted_cversion_difference_is_reported() {
        let now = wall_ms();
        let (mut a, mut b) = contexts(now);
        let mut planted = stat(7, now);
        planted.cversion += 1;
        let ia = a.normalize(&get_data("/d1", stat(100, now)), Mask::default());
        let ib = b.normalize(&get_data("/x/d1", planted), Mask::default());
        let d = compare(&[ia], &[ib]).expect("a difference");
        assert_eq!(
            d.fields,
            vec![(
                "stat.cversion".to_string(),
                "2".to_string(),
                "3".to_string()
            )]
        );
        // Masked, as for a known difference, it compares equal.
        let mask = Mask {
            cversion: true,
            sequence: true,
        };
        let ia = a.normalize(&get_data("/d1", stat(100, now)), mask);
        let mut planted = stat(7, now);
        planted.cversion += 1;
        let ib = b.normalize(&get_data("/x/d1", planted), mask);
        assert_eq!(compare(&[ia], &[ib]), None);
    }

    #[test]
    fn inconsistent_times_are_reported() {
        let now = wall_ms();
        let (mut a, mut b) = contexts(now);
        // Same mzxid reported with two different mtimes on side b only.
        let first_a = a.normalize(&get_data("/d1", stat(100, now)), Mask::default());
        let first_b = b.normalize(&get_data("/x/d1", stat(7, now)), Mask::default());
        assert_eq!(compare(&[first_a], &[first_b]), None);
        let mut later = stat(7, now);
        later.mtime += 1;
        let ia = a.normalize(&get_data("/d1", stat(100, now)), Mask::default());
        let ib = b.normalize(&get_data("/x/d1", later), Mask::default());
        let d = compare(&[ia], &[ib]).expect("a difference");
        assert_eq!(d.fields.len(), 1, "{d:?}");
        assert_eq!(d.fields[0].0, "stat.mtime");
        assert!(d.fields[0].2.contains("inconsistent"), "{d:?}");
    }

    #[test]
    fn zxid_tokens() {
        let mut c = Context::new("/r");
        assert_eq!(c.zxid(5), "pre");
        c.wrote(10);
        c.wrote(12);
        assert_eq!(c.zxid(5), "pre");
        assert_eq!(c.zxid(10), "W0");
        assert_eq!(c.zxid(11), "W0+");
        assert_eq!(c.zxid(12), "W1");
        assert_eq!(c.zxid(13), "W1+");
        assert_eq!(c.zxid(0), "0");
    }

    #[test]
    fn renames_map_sequential_paths_both_ways() {
        let mut c = Context::new("/r");
        c.rename("/a0000000001", "/a0000000002");
        assert_eq!(c.to_a("/a0000000001/b"), "/a0000000002/b");
        assert_eq!(c.from_a("/a0000000002/b"), "/a0000000001/b");
        assert_eq!(c.to_a("/b"), "/b");
        let strict = c.path("/r/a0000000001", Mask::default());
        let masked = c.path(
            "/r/a0000000001",
            Mask {
                cversion: true,
                sequence: true,
            },
        );
        assert_eq!(
            (strict.as_str(), masked.as_str()),
            ("~/a0000000001", "~/a0000000002")
        );
    }

    #[test]
    fn children_are_sorted_and_extra_items_reported() {
        let c = Context::new("/r");
        assert_eq!(
            c.children("/r", &["b".into(), "a".into()], Mask::default()),
            "[a,b]"
        );
        let it = Item {
            who: "s0".into(),
            kind: "event".into(),
            fields: vec![],
        };
        let d = compare(std::slice::from_ref(&it), &[it.clone(), it.clone()]).unwrap();
        assert_eq!((d.index, d.a.is_none(), d.b.is_some()), (1, true, true));
    }
}
