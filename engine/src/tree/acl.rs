//! ACLs: identities, permission checks and the normalisation ZooKeeper applies on writes.
//!
//! Schemes: `world:anyone`, `auth` (expanded at write time to the caller's authenticated
//! ids), `digest` (`user:base64(sha1("user:password"))`) and `ip` (an address or a
//! CIDR block). A caller holding the `super` id passes every check; it is granted when
//! a digest auth matches the configured superuser digest (kazoo's tests use
//! `super:test`). Checks follow `ZooKeeperServer.checkACL`: an empty ACL allows
//! everything, an entry grants when its permission bits overlap the asked ones and its
//! id matches one of the caller's.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use transport::jute::{Acl, ErrorCode, Id, perms};

/// Scheme of the id a superuser holds.
pub const SUPER_SCHEME: &str = "super";
/// Length limit of an auth payload (`user:password`) we accept.
pub const AUTH_BYTES_MAX: usize = 1024;

/// `user:base64(sha1("user:password"))` for `"user:password"`, the digest id ZooKeeper
/// stores in ACLs and grants on `addAuth digest user:password`.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Who is the superuser: the digest id (`super:<base64 sha1>`) a digest auth must
/// produce to be granted the `super` id; `None` disables the superuser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub super_digest: Option<String>,
}

impl AclConfig {
    /// A config whose superuser authenticates with `user:password` (e.g. `super:test`).
    pub fn with_super_password(user_password: &str) -> Self {
        AclConfig {
            super_digest: Some(digest(user_password)),
        }
    }
}

/// The ids an `addAuth(scheme, auth)` grants, or `AuthFailed`. Only `digest` is
/// accepted from clients (`ip` ids come from the connection's address).
pub fn auth_ids(scheme: &str, auth: &[u8], cfg: &AclConfig) -> Result<Vec<Id>, ErrorCode> {
    if scheme != "digest" || auth.len() > AUTH_BYTES_MAX {
        return Err(ErrorCode::AuthFailed);
    }
    let text = std::str::from_utf8(auth).map_err(|_| ErrorCode::AuthFailed)?;
    if !text.contains(':') {
        return Err(ErrorCode::AuthFailed);
    }
    let id = digest(text);
    let mut ids = Vec::with_capacity(2);
    if cfg.super_digest.as_deref() == Some(id.as_str()) {
        ids.push(Id::new(SUPER_SCHEME, ""));
    }
    ids.push(Id::new("digest", id));
    Ok(ids)
}

/// The id of a connection from `addr` (`ip:<addr>`), which every connection holds.
pub fn ip_id(addr: IpAddr) -> Id {
    Id::new("ip", addr.to_string())
}

/// Whether `ids` may do `perm` on a node with `acl` (see the module docs).
pub fn check(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == SUPER_SCHEME) {
        return true;
    }
    acl.iter()
        .filter(|a| a.perms & perm != 0)
        .any(|a| grants(&a.id, ids))
}

fn grants(entry: &Id, ids: &[Id]) -> bool {
    match entry.scheme.as_str() {
        "world" => entry.id == "anyone",
        "digest" => ids.iter().any(|i| i.scheme == "digest" && i.id == entry.id),
        "ip" => ids
            .iter()
            .any(|i| i.scheme == "ip" && ip_matches(&i.id, &entry.id)),
        _ => false,
    }
}

/// `check` as a result: `NoAuth` when denied.
pub fn require(acl: &[Acl], perm: i32, ids: &[Id]) -> Result<(), ErrorCode> {
    if check(acl, perm, ids) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn parse_cidr(expr: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.parse::<u32>().ok().filter(|b| *b <= width)?,
        None => width,
    };
    Some((addr, bits))
}

fn ip_bits(addr: IpAddr) -> (u128, u32) {
    match addr {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// Whether the connection address `id` lies in the ACL's `expr` (`addr` or `addr/bits`).
pub fn ip_matches(id: &str, expr: &str) -> bool {
    let (Some((client, _)), Some((net, bits))) = (parse_cidr(id), parse_cidr(expr)) else {
        return false;
    };
    let ((c, cw), (n, nw)) = (ip_bits(client), ip_bits(net));
    if cw != nw {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let shift = nw - bits;
    (c >> shift) == (n >> shift)
}

fn digest_id_valid(id: &str) -> bool {
    // Java's `id.split(":").length == 2`: trailing empty parts are dropped.
    let parts: Vec<&str> = id.split(':').collect();
    let mut n = parts.len();
    while n > 0 && parts[n - 1].is_empty() {
        n -= 1;
    }
    n == 2
}

/// `acl` without repeated entries, first occurrence kept (ZooKeeper's `removeDuplicates`).
pub fn remove_duplicates(acl: &[Acl]) -> Vec<Acl> {
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

/// The ACL to store for a create or setACL (`PrepRequestProcessor.fixupACL`):
/// duplicates removed, `auth` entries replaced by the caller's authenticated (digest)
/// ids, every id validated. `InvalidAcl` for an empty list, an `auth` entry without an
/// authenticated id, or an id a scheme rejects.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let unique = remove_duplicates(acl);
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => out.push(a),
            "auth" => {
                let mut any = false;
                for id in ids.iter().filter(|i| i.scheme == "digest") {
                    any = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: id.clone(),
                    });
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "digest" if digest_id_valid(&a.id.id) => out.push(a),
            "ip" if parse_cidr(&a.id.id).is_some() => out.push(a),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(remove_duplicates(&out))
}

/// The ACL `getACL` shows a caller without ADMIN on the node: digest hashes hidden as
/// `user:x` (ZooKeeper 3.8's `FinalRequestProcessor`).
pub fn redact(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme != "digest" {
                return a.clone();
            }
            let user = a.id.id.split(':').next().unwrap_or("");
            Acl {
                perms: a.perms,
                id: Id::new("digest", format!("{user}:x")),
            }
        })
        .collect()
}

/// `CREATOR_ALL_ACL`: all permissions to the creator's authenticated ids.
pub fn creator_all() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id::new("auth", ""),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_matches_zookeeper() {
        // Known value: DigestAuthenticationProvider.generateDigest("super:test").
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    #[test]
    fn auth_grants_digest_and_super() {
        let cfg = AclConfig::with_super_password("super:test");
        let ids = auth_ids("digest", b"super:test", &cfg).unwrap();
        assert!(ids.iter().any(|i| i.scheme == SUPER_SCHEME));
        let ids = auth_ids("digest", b"bob:pw", &cfg).unwrap();
        assert_eq!(ids, vec![Id::new("digest", digest("bob:pw"))]);
        assert_eq!(
            auth_ids("digest", b"nocolon", &cfg),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(auth_ids("sasl", b"a:b", &cfg), Err(ErrorCode::AuthFailed));
    }

    #[test]
    fn checks() {
        let bob = vec![Id::new("digest", digest("bob:pw"))];
        let node = vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", &digest("bob:pw")),
        ];
        assert!(check(&node, perms::READ, &[]));
        assert!(!check(&node, perms::WRITE, &[]));
        assert!(check(&node, perms::WRITE, &bob));
        assert!(check(&node, perms::WRITE, &[Id::new(SUPER_SCHEME, "")]));
        assert!(check(&[], perms::ADMIN, &[]));
        let ipacl = vec![acl(perms::ALL, "ip", "10.0.0.0/8")];
        assert!(check(&ipacl, perms::READ, &[Id::new("ip", "10.1.2.3")]));
        assert!(!check(&ipacl, perms::READ, &[Id::new("ip", "11.1.2.3")]));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("::1", "::1/128"));
        assert!(!ip_matches("::1", "127.0.0.1"));
    }

    #[test]
    fn fixup_rules() {
        let bob = vec![
            Id::new("ip", "1.2.3.4"),
            Id::new("digest", digest("bob:pw")),
        ];
        assert_eq!(fixup(&[], &bob), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup(&creator_all(), &[Id::new("ip", "1.2.3.4")]),
            Err(ErrorCode::InvalidAcl)
        );
        let fixed = fixup(&creator_all(), &bob).unwrap();
        assert_eq!(fixed, vec![acl(perms::ALL, "digest", &digest("bob:pw"))]);
        let dup = vec![acl(1, "world", "anyone"), acl(1, "world", "anyone")];
        assert_eq!(fixup(&dup, &[]).unwrap().len(), 1);
        assert_eq!(
            fixup(&[acl(1, "world", "someone")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(1, "digest", "nohash")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(1, "ip", "1.2.3.4/40")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[acl(1, "nope", "x")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn redaction() {
        let r = redact(&[acl(1, "digest", "bob:abc="), acl(1, "world", "anyone")]);
        assert_eq!(r[0].id.id, "bob:x");
        assert_eq!(r[1].id.id, "anyone");
    }
}
