//! Dynamic reconfiguration in the runtime: the members a server runs with, and
//! carrying out a committed change of `/zookeeper/config` (`config::dynamic`).
//!
//! The members live in the replicated tree: a reconfig is a setData of
//! `/zookeeper/config` that commits through Zab like any txn, so every server applies
//! it at the same point of the log, and the WAL and snapshots keep it across
//! restarts. A member replays its log's tail only once a leader says what of it is
//! committed, so the config it had carried out is also kept in a file of its own,
//! [`CONFIG_FILE`] in dataDir, written durably each time (ZooKeeper keeps
//! `zoo.cfg.dynamic.<version>` for the same reason). At start-up the newest config
//! some reconfig wrote (version > 0), from that file or the snapshot's tree, wins
//! over zoo.cfg's `server.N` lines; until then zoo.cfg's members are written there
//! with version 0, alike on every server (`DataTree::set_system_data`). A config
//! is only ever replaced by a newer one (versions are zxids).
//!
//! What changes at run time: members join, leave and change roles (quorum and
//! election links, the election's voters, the Zab node's members, the leader's
//! learners and quorum). Voters change one per reconfig (prep refuses more), which
//! with the leader's rules keeps every committed txn on a majority of whatever
//! voters come next (`zab::leader`, `Leader::set_member`). A server whose own role
//! changes, or that is removed, goes back to election; a removed leader hands over
//! through an election (ZooKeeper's designated successor avoids it).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Driver, Outlet};
use crate::config::dynamic::DynamicConfig;
use crate::config::ensemble::{Ensemble, ServerSpec};
use crate::tree::CONFIG_PATH;

/// What a removed server is told about joining again.
const REJOIN_HINT: &str = "it may join again under a new id, with a new dataDir (under its \
     old id, a wiped dataDir would forget the members it carried out)";

/// The members this server last carried out, in dataDir (module docs).
pub const CONFIG_FILE: &str = "zoo.cfg.dynamic";
/// The largest [`CONFIG_FILE`] read (`MEMBERS_MAX` lines of a few hundred bytes).
pub const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Writes `c` to [`CONFIG_FILE`] durably: a temporary file, fdatasync, rename, fsync
/// of the directory (a crash leaves the old or the new file, whole).
pub fn store_config(dir: &Path, c: &DynamicConfig) -> Result<(), String> {
    let text = c.render();
    wal::io::replace_durably(
        &wal::io::OsStorage,
        dir,
        CONFIG_FILE,
        ".tmp",
        text.as_bytes(),
    )
    .map_err(|e| format!("cannot {} {}: {}", e.op, e.path.display(), e.source))
}

/// [`CONFIG_FILE`] in `dir`, if there is one; a file that is too large or does not
/// parse is an error naming it (it cannot be guessed).
pub fn load_config(dir: &Path) -> Result<Option<DynamicConfig>, String> {
    let path = dir.join(CONFIG_FILE);
    let bad = |why: String| format!("{}: {why}; remove it to start from zoo.cfg", path.display());
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
        Ok(m) if m.len() > CONFIG_FILE_BYTES_MAX => {
            return Err(bad(format!("larger than {CONFIG_FILE_BYTES_MAX} bytes")));
        }
        Ok(_) => {}
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    DynamicConfig::parse(&text)
        .map(Some)
        .ok_or_else(|| bad("not a config of server.N lines and a version".into()))
}

impl<O: Outlet> Driver<O> {
    /// The config in `/zookeeper/config`, if one is there (not standalone).
    fn tree_config(&self) -> Option<(DynamicConfig, i64)> {
        let node = self.core.db().tree.get(CONFIG_PATH)?;
        let text = String::from_utf8_lossy(node.data.as_deref()?).into_owned();
        Some((DynamicConfig::parse(&text)?, node.stat.mzxid))
    }

    /// Start-up: the members this server runs with (module docs), and the version
    /// they come from. A server that a reconfig removed does not start.
    pub fn adopt_config(&mut self, ens: &Ensemble, dir: &Path) -> Result<(Ensemble, i64), String> {
        let tree = self.tree_config().map(|(c, _)| c).filter(|c| c.version > 0);
        let file = load_config(dir)?;
        let newest = [tree, file].into_iter().flatten().max_by_key(|c| c.version);
        if let Some(c) = newest {
            if !c.servers.iter().any(|s| s.id == ens.my_id) {
                return Err(format!(
                    "server {} is not a member of the ensemble since reconfig version {:x} \
                     (/zookeeper/config); {REJOIN_HINT}",
                    ens.my_id, c.version
                ));
            }
            tracing::info!(
                version = format_args!("{:x}", c.version),
                members = c.servers.len(),
                "members from the last reconfig carried out here, not zoo.cfg"
            );
            let version = c.version;
            return Ok((
                Ensemble {
                    servers: c.servers,
                    ..ens.clone()
                },
                version,
            ));
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
        Ok((ens.clone(), 0))
    }

    /// After each message: a reconfig applied while handling it is carried out
    /// before the next message is handled. The leader decides commits on acks,
    /// which come in later messages, so every commit after the one that applied a
    /// reconfig counts its voters (`Leader::set_member`'s safety rules); a next
    /// reconfig prepped in that same message (a queued request released by the
    /// apply) is proposed then, but it too commits under the new voters.
    pub(super) fn maybe_reconfigure(&mut self) {
        let applied = self.core.db().last_zxid();
        let Some(r) = self.repl.as_mut() else { return };
        // Only a message that applied something can have changed the members.
        if applied == r.config_checked_at {
            return;
        }
        r.config_checked_at = applied;
        let changed = self
            .core
            .db()
            .tree
            .get(CONFIG_PATH)
            .is_some_and(|n| n.stat.mzxid > r.config_zxid);
        if !changed {
            return;
        }
        let Some((c, zxid)) = self.tree_config() else {
            return;
        };
        if c.version != zxid {
            // Not a reconfig's (a superuser's setData of the node): members whose
            // version is not their zxid would be refused by every peer.
            tracing::warn!(
                version = format_args!("{:x}", c.version),
                "/zookeeper/config written other than by reconfig: not carried out"
            );
            if let Some(r) = self.repl.as_mut() {
                r.config_zxid = zxid;
            }
            return;
        }
        self.carry_out_config(c, zxid);
    }

    /// Members another server sent through the election (`ElectionRunner::
    /// on_members`): it carried them out, so they are committed; taken when newer
    /// than this server's. A learner that missed the reconfig making it a voter
    /// learns it this way, or the voters could lack a majority without it.
    pub(super) fn members_arrived(&mut self, version: i64, text: &str) {
        let Some(r) = &self.repl else { return };
        if version <= r.config_zxid {
            return;
        }
        match DynamicConfig::parse(text).filter(|c| c.version == version) {
            Some(c) => {
                tracing::info!(
                    version = format_args!("{version:x}"),
                    "members from another server's election message (a reconfig missed here)"
                );
                self.carry_out_config(c, version);
            }
            None => tracing::warn!("members of version {version:x} that do not parse: ignored"),
        }
    }

    /// Carries out the members `c` of version `zxid` (module docs).
    fn carry_out_config(&mut self, c: DynamicConfig, zxid: i64) {
        let Some(r) = self.repl.as_mut() else { return };
        debug_assert!(
            zxid > r.config_zxid,
            "members are only replaced by newer ones"
        );
        r.config_zxid = zxid;
        let me = r.node.id();
        let old: BTreeMap<u64, ServerSpec> = r.servers.iter().map(|s| (s.id, s.clone())).collect();
        let new: BTreeMap<u64, ServerSpec> = c.servers.iter().map(|s| (s.id, s.clone())).collect();
        // The election first: a role change of this server sends it there.
        let voters: Vec<u64> = c.voters().collect();
        if !voters.is_empty()
            && let Err(e) = r
                .election
                .set_voters(c.role_of(me), voters, zxid, c.render())
        {
            tracing::warn!("reconfig: the election keeps its voters: {e}");
        }
        let mut acts = Vec::new();
        for id in old.keys().filter(|id| !new.contains_key(id)) {
            tracing::info!(id, "reconfig: a member leaves");
            r.node.set_member(*id, None, &mut acts);
            r.net.remove_peer(*id);
            r.election.remove_peer(*id);
        }
        for (id, s) in new.iter().filter(|(id, s)| old.get(id) != Some(s)) {
            tracing::info!(id, role = ?s.role, "reconfig: a member joins or changes");
            match (s.quorum.resolve(), s.election.resolve()) {
                (Ok(q), Ok(e)) => {
                    r.net.add_peer(*id, q);
                    r.election.add_peer(*id, e);
                }
                (Err(e), _) | (_, Err(e)) => tracing::warn!(id, "reconfig: {e}"),
            }
            r.node.set_member(*id, Some(s.role), &mut acts);
        }
        r.servers = c.servers.clone();
        match store_config(&r.data_dir, &c) {
            Ok(()) => {
                r.config_stored = zxid;
                // Reported at once, not at the next tick: the leader's next change
                // of the voters waits for a majority to have carried this out.
                if let Some(leader) = r.node.leader().filter(|&l| l != me) {
                    let ping = super::repl::ping(self.core.logged_zxid(), Vec::new(), zxid);
                    let _ = r.net.send(leader, &ping);
                }
            }
            // The members carried out stand, but are not reported as carried out
            // (pings), so the next reconfig waits; a restart starts from the older
            // file and catches up when it syncs.
            Err(e) => {
                tracing::error!(dir = %r.data_dir.display(), "cannot store the members: {e}")
            }
        }
        tracing::info!(
            version = format_args!("{:x}", c.version),
            "reconfig carried out"
        );
        if let Err(e) = self.node_actions(acts) {
            tracing::error!("after a reconfig: {e}");
        }
        if new.contains_key(&me) && !old.contains_key(&me) {
            // Back in after a removal: its election had decided to follow no one.
            if let Err(e) = self.look("this server rejoined the ensemble (reconfig)") {
                tracing::error!("after a reconfig: {e}");
            }
        }
        if !new.contains_key(&me) {
            // Its election keeps answering (as an observer: it never proposes), so
            // that servers which missed this reconfig learn it from here, since it
            // may be the only one that has carried it out.
            tracing::warn!(
                id = me,
                "this server was removed from the ensemble by reconfig: it takes no \
                 clients and follows no leader; {REJOIN_HINT}"
            );
        }
    }
}
