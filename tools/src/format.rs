//! Output text exactly as zkCli (ZooKeeper 3.8) prints it.
//!
//! - [`stat`]: `StatPrinter`'s eleven `name = value` lines, zxids as `0x` + Java's
//!   `Long.toHexString` (two's complement for negatives), times as Java's
//!   `Date.toString()` in UTC (`Sat Nov 21 20:21:14 UTC 2026`);
//! - [`children`]: `ls`'s sorted `[a, b]`;
//! - [`acl_entry`]: `getAcl`'s `'scheme,'id` + newline + `: perms` (the jute CSV form of
//!   `Id.toString()`, which is why zkCli's output looks like that);
//! - [`event`]: the default watcher's `WATCHER::` block;
//! - [`keeper_error`]: `CliWrapperException`'s message for an error code and path.
//!
//! Pure: no IO, no clock (times come in as ms since the epoch).

use transport::jute::{Acl, ErrorCode, EventType, KeeperState, Stat, WatcherEvent};

use crate::acl::format_perms;

const DAY_NAMES: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MS_PER_DAY: i64 = 86_400_000;

/// `(year, month 1..=12, day 1..=31)` of day `days` since 1970-01-01 (proleptic
/// Gregorian), by Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    debug_assert!(
        (1..=12).contains(&month) && (1..=31).contains(&day),
        "civil date"
    );
    (year, month, day)
}

/// Java's `new Date(ms).toString()` in UTC: `EEE MMM dd HH:mm:ss zzz yyyy`.
pub fn java_date(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let secs_of_day = ms.rem_euclid(MS_PER_DAY) / 1000;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAY_NAMES[days.rem_euclid(7) as usize];
    format!(
        "{weekday} {} {day:02} {:02}:{:02}:{:02} UTC {year}",
        MONTH_NAMES[month as usize - 1],
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// `StatPrinter.print`'s lines, each ending in `\n`.
pub fn stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

/// `ls`'s `[a, b]` line (sorted, as zkCli sorts), ending in `\n`.
pub fn children(names: &[String]) -> String {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    format!("[{}]\n", sorted.join(", "))
}

/// A list as Java's `List.toString()` prints it (in the given order), then `\n`.
pub fn list(items: &[String]) -> String {
    format!("[{}]\n", items.join(", "))
}

/// A node's data as zkCli prints it: UTF-8 (lossy) or `null`, then `\n`.
pub fn data(d: Option<&[u8]>) -> String {
    match d {
        Some(bytes) => format!("{}\n", String::from_utf8_lossy(bytes)),
        None => "null\n".to_string(),
    }
}

/// jute's CSV escaping of a string field (`Utils.toCSVString`).
fn csv_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// One `getAcl` entry: `'world,'anyone\n: cdrwa\n`.
pub fn acl_entry(a: &Acl) -> String {
    format!(
        "{},{}\n: {}\n",
        csv_string(&a.id.scheme),
        csv_string(&a.id.id),
        format_perms(a.perms)
    )
}

/// The default watcher's output for one event (`path` already chroot-stripped).
pub fn event(ev: &WatcherEvent, path: &str) -> String {
    let state = KeeperState::from_code(ev.state)
        .map_or_else(|| format!("Unknown({})", ev.state), |s| format!("{s:?}"));
    let kind = EventType::from_code(ev.event_type).map_or_else(
        || format!("Unknown({})", ev.event_type),
        |t| format!("{t:?}"),
    );
    format!("\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{path}\n")
}

/// `KeeperException.getCodeMessage`.
pub fn code_message(code: i32) -> String {
    use ErrorCode::*;
    let Some(c) = ErrorCode::from_code(code) else {
        return format!("Unknown error {code}");
    };
    let text = match c {
        Ok => "ok",
        ApiError => "APIError",
        InvalidAcl => "InvalidACL",
        NotEmpty => "Directory not empty",
        SessionExpired => "Session expired",
        InvalidCallback => "Invalid callback",
        SessionMoved => "Session moved",
        NotReadOnly => "Not a read-only call",
        EphemeralOnLocalSession => "Ephemeral node on local session",
        NoWatcher => "No such watcher",
        ReconfigDisabled => "Reconfig is disabled",
        SessionClosedRequireSaslAuth => "Session closed because client failed to authenticate",
        QuotaExceeded => "Quota has exceeded",
        ThrottledOp => "Op throttled due to high load",
        RequestTimeout => "Request timeout",
        other => return format!("{other:?}"),
    };
    text.to_string()
}

/// zkCli's `config -c`: the members' version, a space, and their client addresses
/// (`host:port`, comma-separated, in the order of the lines; `;port` alone is
/// `0.0.0.0:port`).
pub fn client_config(config: &str) -> String {
    let mut version = "";
    let mut addrs = Vec::new();
    for line in config.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "version" {
            version = value.trim();
        }
        if !key.trim().starts_with("server.") {
            continue;
        }
        if let Some((_, client)) = value.trim().split_once(';') {
            let addr = match client.rsplit_once(':') {
                Some((host, port)) => format!("{host}:{port}"),
                None => format!("0.0.0.0:{client}"),
            };
            addrs.push(addr);
        }
    }
    format!("{version} {}", addrs.join(","))
}

/// zkCli's message for error `code` on client path `path`.
pub fn keeper_error(code: i32, path: &str) -> String {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::ReconfigInProgress) => {
            return "Another reconfiguration is in progress -- concurrent reconfigs not \
                    supported (yet)"
                .into();
        }
        Some(ErrorCode::NewConfigNoQuorum) => {
            return "No quorum of new config is connected and up-to-date with the leader of \
                    last commmitted config - try invoking reconfiguration after new servers \
                    are connected and synced"
                .into();
        }
        _ => {}
    }
    let prefix = match ErrorCode::from_code(code) {
        Some(ErrorCode::NoNode) => "Node does not exist: ",
        Some(ErrorCode::NoChildrenForEphemerals) => "Ephemerals cannot have children: ",
        Some(ErrorCode::NodeExists) => "Node already exists: ",
        Some(ErrorCode::NotEmpty) => "Node not empty: ",
        Some(ErrorCode::NotReadOnly) => "Not a read-only call: ",
        Some(ErrorCode::InvalidAcl) => "Acl is not valid : ",
        Some(ErrorCode::NoAuth) => "Insufficient permission : ",
        Some(ErrorCode::BadArguments) => "Arguments are not valid : ",
        Some(ErrorCode::BadVersion) => "version No is not valid : ",
        _ => {
            let suffix = if path.is_empty() {
                String::new()
            } else {
                format!(" for {path}")
            };
            return format!("KeeperErrorCode = {}{suffix}", code_message(code));
        }
    };
    format!("{prefix}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use transport::jute::Id;

    #[test]
    fn client_config_is_the_version_and_client_addresses() {
        let text = "server.1=127.0.0.41:2888:3888:participant;127.0.0.41:2181\n\
                    server.2=127.0.0.42:2888:3888:observer;2182\n\
                    server.3=127.0.0.43:2888:3888:participant\nversion=100000003";
        assert_eq!(
            client_config(text),
            "100000003 127.0.0.41:2181,0.0.0.0:2182"
        );
        assert_eq!(client_config(""), " ");
    }

    #[test]
    fn civil_dates_known_points() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn civil_dates_walk_days_in_order() {
        // Every day from 1900 to 2100 follows the previous one on the calendar.
        let mut prev = civil_from_days(-25_567 - 1);
        for d in -25_567..47_482 {
            let cur = civil_from_days(d);
            let month_len = match prev.1 {
                2 if prev.0 % 4 == 0 && (prev.0 % 100 != 0 || prev.0 % 400 == 0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expect = if prev.2 < month_len {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, expect, "day {d}");
            prev = cur;
        }
    }

    #[test]
    fn java_date_format() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_763_756_474_999), "Fri Nov 21 20:21:14 UTC 2025");
        assert_eq!(java_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn stat_lines_like_zkcli() {
        let s = Stat {
            czxid: 2,
            mzxid: 0x1f,
            ctime: 0,
            mtime: 1_000,
            version: 1,
            cversion: 2,
            aversion: 3,
            ephemeral_owner: -1,
            data_length: 5,
            num_children: 6,
            pzxid: 0x20,
        };
        assert_eq!(
            stat(&s),
            "cZxid = 0x2\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x1f\n\
             mtime = Thu Jan 01 00:00:01 UTC 1970\npZxid = 0x20\ncversion = 2\n\
             dataVersion = 1\naclVersion = 3\nephemeralOwner = 0xffffffffffffffff\n\
             dataLength = 5\nnumChildren = 6\n"
        );
    }

    #[test]
    fn children_sorted() {
        let names = vec!["b".to_string(), "a".to_string(), "c-1".to_string()];
        assert_eq!(children(&names), "[a, b, c-1]\n");
        assert_eq!(children(&[]), "[]\n");
        assert_eq!(list(&names), "[b, a, c-1]\n");
    }

    #[test]
    fn data_or_null() {
        assert_eq!(data(Some(b"hi")), "hi\n");
        assert_eq!(data(Some(b"")), "\n");
        assert_eq!(data(None), "null\n");
    }

    #[test]
    fn acl_entry_is_jute_csv() {
        let a = Acl {
            perms: 31,
            id: Id::anyone(),
        };
        assert_eq!(acl_entry(&a), "'world,'anyone\n: cdrwa\n");
        let d = Acl {
            perms: 1,
            id: Id::new("x", "a,b%"),
        };
        assert_eq!(acl_entry(&d), "'x,'a%2Cb%25\n: r\n");
    }

    #[test]
    fn event_text() {
        let ev = WatcherEvent {
            event_type: 3,
            state: 3,
            path: "/srv/a".into(),
        };
        assert_eq!(
            event(&ev, "/a"),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/a\n"
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(keeper_error(-101, "/x"), "Node does not exist: /x");
        assert_eq!(keeper_error(-110, "/x"), "Node already exists: /x");
        assert_eq!(keeper_error(-103, "/x"), "version No is not valid : /x");
        assert_eq!(keeper_error(-111, "/x"), "Node not empty: /x");
        assert_eq!(keeper_error(-102, "/x"), "Insufficient permission : /x");
        assert_eq!(
            keeper_error(-108, "/e/c"),
            "Ephemerals cannot have children: /e/c"
        );
        assert_eq!(
            keeper_error(-4, "/x"),
            "KeeperErrorCode = ConnectionLoss for /x"
        );
        assert_eq!(keeper_error(-115, ""), "KeeperErrorCode = AuthFailed");
        assert_eq!(
            keeper_error(-999, "/x"),
            "KeeperErrorCode = Unknown error -999 for /x"
        );
    }
}
