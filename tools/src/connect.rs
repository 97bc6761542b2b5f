//! ZooKeeper connect strings: `host:port,host:port/chroot`.
//!
//! Contract (as ZooKeeper's `ConnectStringParser` and `ClientCnxn`):
//! - everything from the first `/` is the chroot; a chroot of just `/` means none;
//!   a chroot must be a valid absolute path ([`validate_path`]);
//! - hosts are separated by `,`; a host without a port gets [`DEFAULT_PORT`];
//!   IPv6 literals are written in brackets (`[::1]:2181`);
//! - servers are kept in the order given (ckctl tries them in that order);
//! - [`ConnectString::prepend`] maps a client path to the server path,
//!   [`ConnectString::strip`] maps a server path back. For every valid client path `p`,
//!   `strip(prepend(p)) == p`.
//!
//! Pure: no IO.

use std::fmt;

/// ZooKeeper's client port, used when a host names none.
pub const DEFAULT_PORT: u16 = 2181;
/// Most servers one connect string may list.
pub const SERVERS_MAX: usize = 256;
/// Longest connect string accepted, in bytes.
pub const CONNECT_STRING_BYTES_MAX: usize = 64 * 1024;

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port` entries, in the order given.
    pub servers: Vec<String>,
    /// The chroot (`/app`), never `/` and never with a trailing `/`.
    pub chroot: Option<String>,
}

/// Why a connect string or path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError(pub String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

fn err(msg: impl Into<String>) -> ConnectError {
    ConnectError(msg.into())
}

impl ConnectString {
    /// Parses `host[:port][,host[:port]...][/chroot]`.
    pub fn parse(text: &str) -> Result<ConnectString, ConnectError> {
        if text.len() > CONNECT_STRING_BYTES_MAX {
            return Err(err(format!(
                "connect string is {} bytes; at most {CONNECT_STRING_BYTES_MAX} allowed",
                text.len()
            )));
        }
        let (hosts, chroot) = match text.find('/') {
            Some(i) => (&text[..i], Some(&text[i..])),
            None => (text, None),
        };
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) => {
                validate_path(c, false).map_err(|e| err(format!("invalid chroot {c:?}: {e}")))?;
                Some(c.to_string())
            }
        };
        let mut servers = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if servers.len() == SERVERS_MAX {
                return Err(err(format!("more than {SERVERS_MAX} servers listed")));
            }
            servers.push(parse_host(host)?);
        }
        if servers.is_empty() {
            return Err(err(format!("no server in connect string {text:?}")));
        }
        Ok(ConnectString { servers, chroot })
    }

    /// The server-side path of client path `path`.
    pub fn prepend(&self, path: &str) -> String {
        match &self.chroot {
            None => path.to_string(),
            Some(c) if path == "/" => c.clone(),
            Some(c) => format!("{c}{path}"),
        }
    }

    /// The client-side path of server path `path` (unchanged if outside the chroot).
    pub fn strip(&self, path: &str) -> String {
        let Some(c) = &self.chroot else {
            return path.to_string();
        };
        match path.strip_prefix(c.as_str()) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => path.to_string(),
        }
    }
}

/// `host` or `host:port` or `[v6]` or `[v6]:port`, as `host:port`.
fn parse_host(host: &str) -> Result<String, ConnectError> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| err(format!("unterminated '[' in host {host:?}")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| err(format!("junk after ']' in host {host:?}")))?,
            ),
        };
        (format!("[{v6}]"), port)
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n.to_string(), Some(p)),
            None => (host.to_string(), None),
        }
    };
    if name.is_empty() || name == "[]" {
        return Err(err(format!("empty host name in {host:?}")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| err(format!("invalid port {p:?} in host {host:?}")))?,
    };
    Ok(format!("{name}:{port}"))
}

/// Checks a client path as ZooKeeper's `PathUtils.validatePath` does, with its
/// messages. `sequential` allows a trailing `/` (the server appends the counter).
pub fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') && !sequential {
        return Err("Path must not end with / character".into());
    }
    let chars: Vec<char> = path.chars().collect();
    for (i, &c) in chars.iter().enumerate().skip(1) {
        let prev = chars[i - 1];
        let next = chars.get(i + 1).copied();
        let segment_end = next.is_none_or(|n| n == '/');
        if c == '\0' {
            return Err(format!("null character not allowed @{i}"));
        } else if c == '/' && prev == '/' {
            return Err(format!("empty node name specified @{i}"));
        } else if c == '.' && prev == '.' {
            let before = if i >= 2 { chars[i - 2] } else { '/' };
            if before == '/' && segment_end {
                return Err(format!("relative paths not allowed @{i}"));
            }
        } else if c == '.' && prev == '/' && segment_end {
            return Err(format!("relative paths not allowed @{i}"));
        } else if is_invalid_char(c) {
            return Err(format!("invalid character @{i}"));
        }
    }
    Ok(())
}

/// Characters ZooKeeper refuses in node names (it also refuses surrogates, U+D800..U+DFFF,
/// which a Rust `str` cannot hold).
fn is_invalid_char(c: char) -> bool {
    matches!(c, '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_in_order_with_default_port() {
        let c = ConnectString::parse("a:1,b,[::1]:3,[fe80::1]").unwrap();
        assert_eq!(
            c.servers,
            vec!["a:1", "b:2181", "[::1]:3", "[fe80::1]:2181"]
        );
        assert_eq!(c.chroot, None);
    }

    #[test]
    fn chroot_from_first_slash() {
        let c = ConnectString::parse("127.0.0.1:2181,h:2/app/x").unwrap();
        assert_eq!(c.servers, vec!["127.0.0.1:2181", "h:2"]);
        assert_eq!(c.chroot.as_deref(), Some("/app/x"));
        assert_eq!(ConnectString::parse("h:1/").unwrap().chroot, None);
    }

    #[test]
    fn bad_strings_are_refused() {
        for bad in [
            "", ",", "h:x", "h:0", "h:70000", "[::1", "[::1]x", "h/a/", "h//a", ":5",
        ] {
            assert!(ConnectString::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prepend_and_strip_round_trip() {
        let c = ConnectString::parse("h/app").unwrap();
        assert_eq!(c.prepend("/"), "/app");
        assert_eq!(c.prepend("/a/b"), "/app/a/b");
        assert_eq!(c.strip("/app"), "/");
        assert_eq!(c.strip("/app/a/b"), "/a/b");
        assert_eq!(
            c.strip("/apple"),
            "/apple",
            "a sibling is not inside the chroot"
        );
        for p in ["/", "/a", "/a/b-0000000001"] {
            assert_eq!(c.strip(&c.prepend(p)), p);
        }
        let plain = ConnectString::parse("h").unwrap();
        assert_eq!(plain.prepend("/a"), "/a");
        assert_eq!(plain.strip("/a"), "/a");
    }

    #[test]
    fn paths_checked_like_zookeeper() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/..b", "/zookeeper"] {
            assert_eq!(validate_path(ok, false), Ok(()), "{ok}");
        }
        let cases = [
            ("", "Path length must be > 0"),
            ("a", "Path must start with / character"),
            ("/a/", "Path must not end with / character"),
            ("/a//b", "empty node name specified @3"),
            ("/a/./b", "relative paths not allowed @3"),
            ("/a/..", "relative paths not allowed @4"),
            ("/.", "relative paths not allowed @1"),
            ("/a\u{1}", "invalid character @2"),
            ("/a\0", "null character not allowed @2"),
        ];
        for (path, msg) in cases {
            assert_eq!(validate_path(path, false), Err(msg.to_string()), "{path:?}");
        }
        assert_eq!(validate_path("/a/", true), Ok(()));
    }
}
