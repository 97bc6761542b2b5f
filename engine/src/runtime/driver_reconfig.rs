//! Dynamic reconfiguration in the runtime: the members a server runs with, and
//! carrying out a committed change of `/zookeeper/config` (`config::dynamic`).
//!
//! The members live in the replicated tree: a reconfig is a setData of
//! `/zookeeper/config` that commits through Zab like any txn, so every server applies
//! it at the same point of the log, and the WAL and snapshots keep it across
//! restarts. At start-up a config some reconfig wrote (version > 0) wins over
//! zoo.cfg's `server.N` lines; until then zoo.cfg's members are written there with
//! version 0, alike on every server (`DataTree::set_system_data`).
//!
//! What changes at run time today: observers join and leave (quorum and election
//! links, the Zab node's members, the leader's learners). Prep refuses a change of
//! the voters (UNIMPLEMENTED), so quorums never change under a running leader.

use std::collections::BTreeMap;

use super::{Driver, Outlet};
use crate::config::dynamic::DynamicConfig;
use crate::config::ensemble::{Ensemble, ServerSpec};
use crate::tree::CONFIG_PATH;
use crate::zab::Role;

impl<O: Outlet> Driver<O> {
    /// The config in `/zookeeper/config`, if one is there (not standalone).
    fn tree_config(&self) -> Option<(DynamicConfig, i64)> {
        let node = self.core.db().tree.get(CONFIG_PATH)?;
        let text = String::from_utf8_lossy(node.data.as_deref()?).into_owned();
        Some((DynamicConfig::parse(&text)?, node.stat.mzxid))
    }

    /// Start-up: the members this server runs with (module docs). A server that a
    /// reconfig removed does not start.
    pub fn adopt_config(&mut self, ens: &Ensemble) -> Result<Ensemble, String> {
        if let Some((c, _)) = self.tree_config().filter(|(c, _)| c.version > 0) {
            if !c.servers.iter().any(|s| s.id == ens.my_id) {
                return Err(format!(
                    "server {} is not a member of the ensemble since reconfig version {:x} \
                     (/zookeeper/config); remove its dataDir to join anew",
                    ens.my_id, c.version
                ));
            }
            tracing::info!(
                version = format_args!("{:x}", c.version),
                members = c.servers.len(),
                "members from the last reconfig (/zookeeper/config), not zoo.cfg"
            );
            return Ok(Ensemble {
                servers: c.servers,
                ..ens.clone()
            });
        }
        let text = DynamicConfig {
            servers: ens.servers.clone(),
            version: 0,
        }
        .render();
        self.core
            .db_mut()
            .tree
            .set_system_data(CONFIG_PATH, text.into_bytes());
        Ok(ens.clone())
    }

    /// After each batch: a reconfig that committed here since is carried out.
    pub(super) fn maybe_reconfigure(&mut self) {
        let Some(r) = &self.repl else { return };
        let changed = self
            .core
            .db()
            .tree
            .get(CONFIG_PATH)
            .is_some_and(|n| n.stat.mzxid != r.config_zxid);
        if !changed {
            return;
        }
        let Some((c, zxid)) = self.tree_config() else {
            return;
        };
        let r = self.repl.as_mut().expect("checked above");
        r.config_zxid = zxid;
        let old: BTreeMap<u64, ServerSpec> = r.servers.iter().map(|s| (s.id, s.clone())).collect();
        let new: BTreeMap<u64, ServerSpec> = c.servers.iter().map(|s| (s.id, s.clone())).collect();
        let mut acts = Vec::new();
        for id in old.keys().filter(|id| !new.contains_key(id)) {
            tracing::info!(id, "reconfig: a member leaves");
            r.node.set_member(*id, None, &mut acts);
            r.net.remove_peer(*id);
            r.election.remove_peer(*id);
        }
        for (id, s) in new.iter().filter(|(id, s)| old.get(id) != Some(s)) {
            debug_assert!(
                s.role == Role::Observer,
                "prep refuses reconfigs that change voters"
            );
            tracing::info!(id, "reconfig: an observer joins");
            r.node.set_member(*id, Some(Role::Observer), &mut acts);
            match (s.quorum.resolve(), s.election.resolve()) {
                (Ok(q), Ok(e)) => {
                    r.net.add_peer(*id, q);
                    r.election.add_peer(*id, e);
                }
                (Err(e), _) | (_, Err(e)) => tracing::warn!(id, "reconfig: {e}"),
            }
        }
        r.servers = c.servers;
        tracing::info!(
            version = format_args!("{:x}", c.version),
            "reconfig carried out"
        );
        if let Err(e) = self.node_actions(acts) {
            tracing::error!("after a reconfig: {e}");
        }
    }
}
