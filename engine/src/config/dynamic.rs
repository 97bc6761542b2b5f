//! Dynamic reconfiguration's view of the ensemble: the text of `/zookeeper/config`
//! and what a `reconfig` request makes of it, as ZooKeeper 3.8 does (checked against
//! a running 3.8 ensemble with kazoo):
//! ```text
//! server.1=127.0.0.41:2888:3888:participant
//! server.100=0.0.0.0:40001:40002:observer;0.0.0.0:40003
//! version=100000005
//! ```
//! One `server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]` line per
//! member by id (the client part only where the line gave one; a bare client port
//! reads back as `0.0.0.0:port`), then `version=` and the zxid, in hex, of the
//! reconfig txn that wrote it (0 before any).
//!
//! A request is incremental (`joining` and/or `leaving`: comma-separated
//! `server.N=...` specs and ids; `leaving` applies first, so an id in both is
//! replaced) or whole (`new_members` alone). What ZooKeeper answers, and so this
//! module: an unparsable spec, a joiner without a client address or `new_members`
//! with anything else is BADARGUMENTS; an id in `leaving` that is not a number is
//! MARSHALLINGERROR; an id that is not a member leaves nothing; an empty request
//! rewrites the same members under a new version.
//!
//! Contract: pure and total. Invariant of every [`DynamicConfig`] it returns: ids
//! unique and ascending, at least one voter, the cross-line rules of `zoo.cfg`
//! (`ensemble::check_servers`).

use std::collections::BTreeMap;

use transport::jute::ErrorCode;

use super::ensemble::{QuorumSpec, ServerSpec, check_servers, parse_id, parse_server, role_name};
use crate::zab::Role;

/// The members and the zxid of the reconfig that made them (0: zoo.cfg's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicConfig {
    pub servers: Vec<ServerSpec>,
    pub version: i64,
}

/// One member's line, without `server.N=`.
fn spec_text(s: &ServerSpec) -> String {
    let mut t = format!(
        "{}:{}:{}:{}",
        s.quorum.host,
        s.quorum.port,
        s.election.port,
        role_name(s.role)
    );
    if let Some(c) = &s.client {
        t.push_str(&format!(";{c}"));
    }
    t
}

/// Parses one `server.N=...` entry of a request or of the config's text. Any
/// decimal id parses here, as in ZooKeeper; [`DynamicConfig::checked`] then applies
/// corekeeper's bound (`ensemble::SERVER_ID_MAX`), after the ACL check, so that a
/// request that is merely not allowed is answered NOAUTH as ZooKeeper answers it.
fn parse_entry(entry: &str) -> Option<ServerSpec> {
    let (key, value) = entry.trim().split_once('=')?;
    let (key, value) = (key.trim(), value.trim());
    let digits = key.strip_prefix("server.")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u64 = digits.parse().ok()?;
    parse_server(id, key, value).ok()
}

impl DynamicConfig {
    /// `/zookeeper/config`'s text.
    pub fn render(&self) -> String {
        let mut t = String::new();
        for s in &self.servers {
            t.push_str(&format!("server.{}={}\n", s.id, spec_text(s)));
        }
        t.push_str(&format!("version={:x}", self.version));
        t
    }

    /// Reads text that [`DynamicConfig::render`] wrote.
    pub fn parse(text: &str) -> Option<DynamicConfig> {
        let mut servers = Vec::new();
        let mut version = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("version=") {
                version = Some(i64::from_str_radix(v, 16).ok()?);
            } else {
                servers.push(parse_entry(line)?);
            }
        }
        let c = DynamicConfig {
            servers,
            version: version?,
        };
        c.checked().ok()
    }

    /// Members sorted by id, checked as zoo.cfg's are (ids at most
    /// `ensemble::SERVER_ID_MAX`, unique, addresses not shared, a voter at least).
    pub fn checked(mut self) -> Result<DynamicConfig, ErrorCode> {
        self.servers.sort_by_key(|s| s.id);
        if self.servers.iter().any(|s| parse_id(&s.key(), "").is_err()) {
            return Err(ErrorCode::BadArguments);
        }
        let spec = QuorumSpec {
            servers: self.servers.clone(),
            standalone_enabled: false,
            ..QuorumSpec::default()
        };
        let unique = self.servers.windows(2).all(|w| w[0].id != w[1].id);
        let voters = self.servers.iter().any(|s| s.role == Role::Participant);
        if !unique || !voters || check_servers(&spec).is_err() {
            return Err(ErrorCode::BadArguments);
        }
        Ok(self)
    }

    /// The members a `reconfig` asks for (module docs), to be written under `version`;
    /// the form only: [`DynamicConfig::checked`] is the caller's next step.
    pub fn next(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        version: i64,
    ) -> Result<DynamicConfig, ErrorCode> {
        let entries = |list: &str| -> Result<Vec<ServerSpec>, ErrorCode> {
            list.split(',')
                .filter(|e| !e.trim().is_empty())
                .map(|e| parse_entry(e).ok_or(ErrorCode::BadArguments))
                .collect()
        };
        let servers = if let Some(all) = new_members {
            if joining.is_some() || leaving.is_some() {
                return Err(ErrorCode::BadArguments);
            }
            entries(all)?
        } else {
            let mut by_id: BTreeMap<u64, ServerSpec> =
                self.servers.iter().map(|s| (s.id, s.clone())).collect();
            for id in leaving.unwrap_or("").split(',').map(str::trim) {
                if id.is_empty() {
                    continue;
                }
                let id: u64 = id.parse().map_err(|_| ErrorCode::MarshallingError)?;
                by_id.remove(&id);
            }
            for s in entries(joining.unwrap_or(""))? {
                if s.client.is_none() {
                    return Err(ErrorCode::BadArguments);
                }
                by_id.insert(s.id, s);
            }
            by_id.into_values().collect()
        };
        Ok(DynamicConfig { servers, version })
    }

    /// The voters' lines.
    pub fn voter_specs(&self) -> Vec<&ServerSpec> {
        self.servers
            .iter()
            .filter(|s| s.role == Role::Participant)
            .collect()
    }

    /// What server `id` is in these members (an observer when not among them: it
    /// takes no part in a vote).
    pub fn role_of(&self, id: u64) -> Role {
        self.servers
            .iter()
            .find(|s| s.id == id)
            .map_or(Role::Observer, |s| s.role)
    }

    /// The voters' ids.
    pub fn voters(&self) -> impl Iterator<Item = u64> + '_ {
        self.servers
            .iter()
            .filter(|s| s.role == Role::Participant)
            .map(|s| s.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = "server.1=127.0.0.41:2888:3888:participant\nserver.2=127.0.0.42:2888:3888:participant\nserver.3=127.0.0.43:2888:3888:participant\nversion=100000000";

    fn three() -> DynamicConfig {
        DynamicConfig::parse(THREE).unwrap()
    }

    #[test]
    fn renders_as_zookeeper_does() {
        assert_eq!(three().render(), THREE);
        let c = three()
            .next(
                Some("server.100=0.0.0.0:40001:40002:observer;0.0.0.0:40003"),
                None,
                None,
                0x1_0000_0005,
            )
            .unwrap();
        assert_eq!(
            c.render(),
            format!(
                "{}\nserver.100=0.0.0.0:40001:40002:observer;0.0.0.0:40003\nversion=100000005",
                THREE.rsplit_once('\n').unwrap().0
            )
        );
        // A bare client port reads back on 0.0.0.0.
        let c = three()
            .next(
                Some("server.103=127.0.0.1:40031:40032:observer;40033"),
                None,
                None,
                9,
            )
            .unwrap();
        assert!(
            c.render()
                .contains("server.103=127.0.0.1:40031:40032:observer;0.0.0.0:40033\n")
        );
    }

    #[test]
    fn requests_change_what_zookeeper_changes() {
        let c = three();
        // Leaving first, then joining: an id in both is replaced.
        let next = c
            .next(
                Some("server.3=127.0.0.43:2888:3888:observer;2181"),
                Some("3"),
                None,
                5,
            )
            .unwrap();
        assert_eq!(next.voters().collect::<Vec<_>>(), vec![1, 2]);
        // A non-member leaving and an empty request change nothing but the version.
        let same = c.next(None, Some("555"), None, 6).unwrap();
        assert_eq!((same.servers.clone(), same.version), (c.servers.clone(), 6));
        assert_eq!(c.next(None, None, None, 7).unwrap().servers, c.servers);
        let whole = c
            .next(
                None,
                None,
                Some("server.1=127.0.0.41:2888:3888:participant;2181"),
                8,
            )
            .unwrap();
        assert_eq!(whole.servers.len(), 1);
    }

    #[test]
    fn bad_requests_get_zookeepers_errors() {
        let c = three();
        let bad = |j: Option<&str>, l: Option<&str>, n: Option<&str>| {
            c.next(j, l, n, 9).and_then(DynamicConfig::checked).err()
        };
        assert_eq!(
            bad(Some("some thing"), None, None),
            Some(ErrorCode::BadArguments)
        );
        // A joiner needs a client address.
        assert_eq!(
            bad(
                Some("server.101=127.0.0.1:40011:40012:observer"),
                None,
                None
            ),
            Some(ErrorCode::BadArguments)
        );
        assert_eq!(
            bad(None, Some("abc"), None),
            Some(ErrorCode::MarshallingError)
        );
        assert_eq!(
            bad(
                Some("server.9=127.0.0.9:1:2;3"),
                None,
                Some("server.1=127.0.0.41:2888:3888;2181")
            ),
            Some(ErrorCode::BadArguments)
        );
        // An id above corekeeper's bound (the top byte of session ids) parses, then
        // fails the check; so do no voter left and two members on one address.
        assert!(
            c.next(Some("server.999=0.0.0.0:1:2:observer;3"), None, None, 9)
                .is_ok()
        );
        assert_eq!(
            bad(Some("server.999=0.0.0.0:1:2:observer;3"), None, None),
            Some(ErrorCode::BadArguments)
        );
        assert_eq!(
            bad(None, Some("1,2,3"), None),
            Some(ErrorCode::BadArguments)
        );
        assert_eq!(
            bad(
                Some("server.7=127.0.0.41:2888:3999:observer;2181"),
                None,
                None
            ),
            Some(ErrorCode::BadArguments)
        );
    }
}
