//! Znode paths: validation by ZooKeeper's rules (`PathUtils.validatePath`) and helpers.
//!
//! A valid path is absolute, has no trailing slash (except the root `/`), no empty
//! segment, no `.` or `..` segment, and none of the characters ZooKeeper forbids: NUL,
//! the C0 (U+0001..U+001F) and C1 (U+007F..U+009F) controls, U+D800..U+F8FF, U+FFF0..U+FFFF,
//! and (as Java sees them as surrogate pairs) every character above U+FFFF.
//! Helpers ([`parent`], [`name`], [`join`]) assume an already validated path.

use std::fmt;

/// Why a path is not a valid znode path (the server answers `BadArguments`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The offending path.
    pub path: String,
    /// ZooKeeper's reason text.
    pub reason: &'static str,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid path {:?}: {}", self.path, self.reason)
    }
}

impl std::error::Error for PathError {}

/// Validates `path`; for a sequential create the server appends a counter, so (as the
/// ZooKeeper client does) `path + "1"` is what gets validated.
pub fn validate(path: &str, sequential: bool) -> Result<(), PathError> {
    if sequential {
        let mut p = String::with_capacity(path.len() + 1);
        p.push_str(path);
        p.push('1');
        return validate_exact(&p).map_err(|e| PathError {
            path: path.to_string(),
            reason: e.reason,
        });
    }
    validate_exact(path)
}

fn err(path: &str, reason: &'static str) -> Result<(), PathError> {
    Err(PathError {
        path: path.to_string(),
        reason,
    })
}

fn forbidden(c: char) -> bool {
    let c = c as u32;
    (0x01..=0x1f).contains(&c)
        || (0x7f..=0x9f).contains(&c)
        || (0xd800..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c)
        || c > 0xffff
}

fn validate_exact(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return err(path, "Path length must be > 0");
    }
    if !path.starts_with('/') {
        return err(path, "Path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return err(path, "Path must not end with / character");
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return err(path, "empty node name specified");
        }
        if segment == "." || segment == ".." {
            return err(path, "relative paths not allowed");
        }
        for c in segment.chars() {
            if c == '\0' {
                return err(path, "null character not allowed");
            }
            if forbidden(c) {
                return err(path, "invalid character");
            }
        }
    }
    Ok(())
}

/// The parent of a valid non-root path (`/a/b` → `/a`, `/a` → `/`); `None` for `/`.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// The last segment of a valid non-root path (`/a/b` → `b`); `""` for `/`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent` + `/` + `child`, handling the root.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `path` is `prefix` or lies below it (`/a/b` is under `/a`, `/ab` is not).
pub fn is_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The name a sequential create gets: `path` followed by the parent's counter as
/// ZooKeeper formats it (`%010d`).
pub fn sequential_name(path: &str, counter: i32) -> String {
    format!("{path}{counter:010}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_valid_examples() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/this is / a valid/path",
            "/name with space",
            "/a.b",
            "/..a",
            "/a..",
            "/.a.",
            "/zookeeper/quota",
            "/é",
        ] {
            assert!(validate(p, false).is_ok(), "{p} should be valid");
        }
    }

    #[test]
    fn zookeeper_invalid_examples() {
        let bad = [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/./a",
            "/../a",
            "/a/./b",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{f8ff}",
            "/a\u{fff0}",
            "/a\u{1f600}",
        ];
        for p in bad {
            assert!(validate(p, false).is_err(), "{p:?} should be invalid");
        }
    }

    #[test]
    fn sequential_validates_with_suffix() {
        // "/a/" is invalid as a plain path but fine as a sequential prefix ("/a/1").
        assert!(validate("/a/", false).is_err());
        assert!(validate("/a/", true).is_ok());
        assert!(validate("/", true).is_ok());
        assert!(validate("/a/.", true).is_ok());
        assert!(validate("/a//", true).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/ab", "/"));
        assert_eq!(sequential_name("/q-", 7), "/q-0000000007");
    }
}
