//! Network namespaces for an ensemble's members, so a partition is made by the kernel
//! (nftables drops packets) rather than by a proxy: established connections go silent
//! without a reset, as when a switch or a cable fails, and both systems' own TCP
//! sockets see it.
//!
//! Layout of lab `k` (one per ensemble; `k` is taken atomically by creating its
//! bridge, so labs of concurrent tests and processes never share names):
//! - a bridge `ckj<k>br` in the caller's namespace with `10.77.<k>.254/24`: clients
//!   (ckjepsen's workers, ready checks, 4lw) reach every member through it and are
//!   never partitioned;
//! - member `id` (1-based) in namespace `ckj<k>n<id>`, reached by a veth pair
//!   (`ckj<k>v<id>` on the bridge, `eth0` inside) at `10.77.<k>.<id>`, its own port
//!   space (so every member uses ZooKeeper's conventional ports) and loopback;
//! - a partition ([`Lab::partition`]) loads, in each member's namespace, one nftables
//!   table `inet ckj` whose input chain drops what comes from the members on other
//!   sides ([`drop_sets`]); [`Lab::heal`] removes the tables. Members on no side (a
//!   bridge) keep every link.
//!
//! Contract: everything is undone on drop (namespaces, veths and the bridge; processes
//! must be stopped first: [`crate::servers::Deployment`] drops its members before its
//! lab). Needs root, iproute2 and nftables (`apt-get install nftables`); without them
//! [`Lab::create`] says which is missing. The pure parts (names, addresses, drop sets,
//! nftables text) are unit tested.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::ensemble::{CLIENT_PORT, ELECTION_PORT, NodePlan, QUORUM_PORT};

/// Labs that may exist at once on a machine (`k` is below this).
pub const LABS_MAX: u32 = 200;
/// Members of one lab at most (their addresses are `.1` ..).
pub const LAB_NODES_MAX: usize = 9;
/// The caller's (clients') address on the lab's bridge: `10.77.<k>.254`.
pub const CLIENT_OCTET: u8 = 254;
/// The first two octets of every lab's subnet.
pub const SUBNET_PREFIX: &str = "10.77";

const _: () = assert!(LABS_MAX <= 255 && LAB_NODES_MAX < CLIENT_OCTET as usize);

/// Member `id`'s address in lab `k`.
pub fn host(k: u32, id: u32) -> String {
    debug_assert!(k < LABS_MAX && (1..=LAB_NODES_MAX as u32).contains(&id));
    format!("{SUBNET_PREFIX}.{k}.{id}")
}

/// Member `id`'s namespace in lab `k`.
pub fn netns_name(k: u32, id: u32) -> String {
    format!("ckj{k}n{id}")
}

fn bridge_name(k: u32) -> String {
    format!("ckj{k}br")
}

fn veth_name(k: u32, id: u32) -> String {
    format!("ckj{k}v{id}")
}

/// For members `1..=nodes` (index `id - 1`), the members whose packets each drops
/// under a partition into `sides`: those on every other side. A member on no side
/// drops nothing, nor does anyone drop it.
pub fn drop_sets(sides: &[Vec<u32>], nodes: usize) -> Vec<Vec<u32>> {
    (1..=nodes as u32)
        .map(|id| {
            let Some(mine) = sides.iter().position(|s| s.contains(&id)) else {
                return Vec::new();
            };
            let mut others: Vec<u32> = sides
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != mine)
                .flat_map(|(_, s)| s.iter().copied())
                .collect();
            others.sort_unstable();
            others.dedup();
            others
        })
        .collect()
}

/// The nftables script that makes a member of lab `k` drop what comes from `from`
/// (replacing any earlier table of ours; `from` empty: just removes it).
pub fn nft_script(k: u32, from: &[u32]) -> String {
    // `add` then `delete` makes the removal succeed whether or not the table exists;
    // the whole file is one atomic transaction.
    let mut s = String::from("add table inet ckj\ndelete table inet ckj\n");
    if !from.is_empty() {
        let addrs: Vec<String> = from.iter().map(|&id| host(k, id)).collect();
        s.push_str(&format!(
            "table inet ckj {{\n  chain input {{\n    type filter hook input priority 0; \
             policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
            addrs.join(", ")
        ));
    }
    s
}

/// One lab: a bridge and a namespace per member (see the module docs).
#[derive(Debug)]
pub struct Lab {
    k: u32,
    nodes: usize,
}

impl Lab {
    /// Makes a lab for `nodes` members.
    pub fn create(nodes: usize) -> Result<Lab, String> {
        if nodes == 0 || nodes > LAB_NODES_MAX {
            return Err(format!(
                "a lab holds 1 to {LAB_NODES_MAX} members, not {nodes}"
            ));
        }
        if Command::new("nft").arg("--version").output().is_err() {
            return Err("network partitions need nftables: apt-get install nftables".into());
        }
        let first = std::process::id() % LABS_MAX;
        for i in 0..LABS_MAX {
            let k = (first + i) % LABS_MAX;
            let made = Command::new("ip")
                .args(["link", "add", &bridge_name(k), "type", "bridge"])
                .output()
                .map_err(|e| format!("network namespaces need iproute2 (`ip`): {e}"))?;
            if made.status.success() {
                let lab = Lab { k, nodes };
                lab.build()?; // on error, drop undoes what was made
                return Ok(lab);
            }
            let why = String::from_utf8_lossy(&made.stderr);
            if !why.contains("exists") {
                return Err(format!(
                    "cannot make a bridge for network namespaces (root needed): {}",
                    why.trim()
                ));
            }
        }
        Err(format!(
            "all {LABS_MAX} labs are in use (left over? `ip link` shows ckj*br)"
        ))
    }

    fn build(&self) -> Result<(), String> {
        let (k, br) = (self.k, bridge_name(self.k));
        let client = format!("{SUBNET_PREFIX}.{k}.{CLIENT_OCTET}/24");
        ip(&["addr", "add", &client, "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for id in 1..=self.nodes as u32 {
            let (ns, veth) = (netns_name(k, id), veth_name(k, id));
            let addr = format!("{}/24", host(k, id));
            let _ = ip(&["netns", "del", &ns]); // a leftover of a killed run
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &br, "up"])?;
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The members' addresses and ports: each in its own namespace, so all on
    /// ZooKeeper's conventional ports.
    pub fn plan(&self) -> Vec<NodePlan> {
        (1..=self.nodes as u32)
            .map(|id| NodePlan {
                id,
                host: host(self.k, id),
                client_port: CLIENT_PORT,
                quorum_port: QUORUM_PORT,
                election_port: ELECTION_PORT,
            })
            .collect()
    }

    /// `cmd` run inside member `id`'s namespace (`ip netns exec` execs it: the pid
    /// stays the server's, so signals and `PR_SET_PDEATHSIG` reach it).
    pub fn wrap(&self, id: u32, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &netns_name(self.k, id)])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(key, v),
                None => c.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        c
    }

    /// Cuts the links between members on different `sides`.
    pub fn partition(&self, sides: &[Vec<u32>]) -> Result<(), String> {
        for (i, from) in drop_sets(sides, self.nodes).iter().enumerate() {
            self.nft(i as u32 + 1, &nft_script(self.k, from))?;
        }
        Ok(())
    }

    /// Restores every link.
    pub fn heal(&self) -> Result<(), String> {
        for id in 1..=self.nodes as u32 {
            self.nft(id, &nft_script(self.k, &[]))?;
        }
        Ok(())
    }

    fn nft(&self, id: u32, script: &str) -> Result<(), String> {
        let ns = netns_name(self.k, id);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft in {ns}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| format!("nft in {ns}: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("nft in {ns}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "nft in {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for id in 1..=self.nodes as u32 {
            // Deleting a namespace deletes its end of the veth, and so both ends.
            let _ = ip(&["netns", "del", &netns_name(self.k, id)]);
        }
        let _ = ip(&["link", "del", &bridge_name(self.k)]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_per_lab_and_member() {
        assert_eq!(host(7, 3), "10.77.7.3");
        assert_eq!(netns_name(7, 3), "ckj7n3");
        // Interface names must fit IFNAMSIZ (15 characters).
        assert!(veth_name(LABS_MAX - 1, LAB_NODES_MAX as u32).len() <= 15);
        assert!(bridge_name(LABS_MAX - 1).len() <= 15);
    }

    #[test]
    fn each_side_drops_the_other_sides_and_a_bridge_drops_nothing() {
        // The leader (2) alone.
        assert_eq!(
            drop_sets(&[vec![2], vec![1, 3]], 3),
            vec![vec![2], vec![1, 3], vec![2]]
        );
        // 3 bridges {1} and {2}: it keeps both links, 1 and 2 lose theirs.
        assert_eq!(
            drop_sets(&[vec![1], vec![2]], 3),
            vec![vec![2], vec![1], vec![]]
        );
        // Minority and majority of five.
        let d = drop_sets(&[vec![1, 4], vec![2, 3, 5]], 5);
        assert_eq!(d[0], vec![2, 3, 5]);
        assert_eq!(d[1], vec![1, 4]);
        // Symmetric: a drops b exactly when b drops a.
        for a in 1..=5u32 {
            for b in 1..=5u32 {
                assert_eq!(
                    d[a as usize - 1].contains(&b),
                    d[b as usize - 1].contains(&a)
                );
            }
        }
    }

    #[test]
    fn the_nft_script_replaces_our_table_atomically() {
        let heal = nft_script(4, &[]);
        assert_eq!(heal, "add table inet ckj\ndelete table inet ckj\n");
        let cut = nft_script(4, &[1, 3]);
        assert!(cut.starts_with(&heal), "{cut}");
        assert!(
            cut.contains("ip saddr { 10.77.4.1, 10.77.4.3 } drop"),
            "{cut}"
        );
        assert!(cut.contains("hook input"), "{cut}");
    }
}
