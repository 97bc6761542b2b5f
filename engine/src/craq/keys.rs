//! Which state a txn changes and a read depends on, as the chain's [`Keys`]: hashed
//! znode paths. The head computes a txn's keys once and they travel with the entry;
//! every member computes a read's keys itself, so the hash is a fixed function of the
//! path's bytes (FNV-1a, never a per-process random seed).
//!
//! Contract: if applying a txn can change what a read returns, the txn's keys and the
//! read's keys share a key (or one of them is [`Keys::All`]). A create or delete
//! changes the node and its parent (children, cversion, pzxid); a data or ACL change
//! only the node; closing a session deletes ephemerals nobody can list beforehand,
//! so it touches everything. A read of a node's data, Stat, ACL or existence depends
//! on its path; a children list on the parent's path (which every create and delete
//! under it names).

use super::Keys;
use crate::op::Op;
use crate::txn::{Txn, TxnBody, TxnOp};

/// The key of a path: 64-bit FNV-1a of its bytes.
pub fn path_key(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn step_keys(op: &TxnOp, out: &mut Vec<u64>) {
    match op {
        TxnOp::Create(c) => {
            out.push(path_key(&c.path));
            out.push(path_key(parent(&c.path)));
        }
        TxnOp::Delete { path } => {
            out.push(path_key(path));
            out.push(path_key(parent(path)));
        }
        TxnOp::SetData { path, .. } | TxnOp::SetAcl { path, .. } => out.push(path_key(path)),
        TxnOp::Check { .. } | TxnOp::Error { .. } => {}
    }
}

/// The keys a txn touches.
pub fn txn_keys(txn: &Txn) -> Keys {
    let mut keys = Vec::new();
    match &txn.body {
        TxnBody::Op(op) => step_keys(op, &mut keys),
        TxnBody::Multi(ops) => ops.iter().for_each(|op| step_keys(op, &mut keys)),
        TxnBody::CreateSession { .. } => {}
        TxnBody::CloseSession => return Keys::All,
    }
    keys.sort_unstable();
    keys.dedup();
    Keys::Some(keys)
}

/// The keys a read depends on (no keys: it reads no znode state).
pub fn read_keys(op: &Op) -> Keys {
    match op {
        Op::Exists { path, .. }
        | Op::GetData { path, .. }
        | Op::GetChildren { path, .. }
        | Op::GetChildren2 { path, .. }
        | Op::GetAcl { path }
        | Op::GetAllChildrenNumber { path } => Keys::Some(vec![path_key(path)]),
        Op::MultiRead(ops) => {
            let mut keys = Vec::new();
            for op in ops {
                match read_keys(op) {
                    Keys::All => return Keys::All,
                    Keys::Some(k) => keys.extend(k),
                }
            }
            Keys::Some(keys)
        }
        // Ephemerals of the session and watches re-set against zxids: state of any
        // node.
        Op::GetEphemerals { .. } | Op::SetWatches { .. } => Keys::All,
        _ => Keys::Some(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::NodeKind;
    use crate::txn::{CreateTxn, TxnHeader};

    fn txn(body: TxnBody) -> Txn {
        Txn {
            header: TxnHeader {
                session: 1,
                cxid: 1,
                zxid: 5,
                time_ms: 0,
            },
            body,
        }
    }

    fn create(path: &str) -> TxnOp {
        TxnOp::Create(CreateTxn {
            path: path.into(),
            data: None,
            acl: Vec::new(),
            kind: NodeKind::Persistent,
            parent_cversion: 1,
        })
    }

    fn shares(a: &Keys, b: &Keys) -> bool {
        match (a, b) {
            (Keys::All, _) | (_, Keys::All) => true,
            (Keys::Some(x), Keys::Some(y)) => x.iter().any(|k| y.contains(k)),
        }
    }

    #[test]
    fn a_create_is_seen_by_reads_of_the_node_and_of_its_parents_children() {
        let t = txn(TxnBody::Op(create("/a/b")));
        let k = txn_keys(&t);
        let get = |path: &str| Op::GetData {
            path: path.into(),
            watch: false,
        };
        let children = |path: &str| Op::GetChildren {
            path: path.into(),
            watch: false,
        };
        assert!(shares(&k, &read_keys(&get("/a/b"))));
        assert!(shares(&k, &read_keys(&children("/a"))));
        assert!(!shares(&k, &read_keys(&get("/c"))));
        let top = txn_keys(&txn(TxnBody::Op(create("/x"))));
        assert!(shares(&top, &read_keys(&children("/"))));
    }

    #[test]
    fn a_multi_touches_each_step_and_a_session_close_everything() {
        let t = txn(TxnBody::Multi(vec![
            create("/m1"),
            TxnOp::SetData {
                path: "/m2".into(),
                data: None,
                version: 1,
            },
        ]));
        let k = txn_keys(&t);
        assert!(shares(&k, &Keys::Some(vec![path_key("/m1")])));
        assert!(shares(&k, &Keys::Some(vec![path_key("/m2")])));
        assert_eq!(txn_keys(&txn(TxnBody::CloseSession)), Keys::All);
        assert_eq!(
            txn_keys(&txn(TxnBody::CreateSession {
                timeout_ms: 1,
                password: [0; crate::op::SESSION_PASSWORD_LEN]
            })),
            Keys::Some(Vec::new())
        );
    }

    #[test]
    fn the_hash_is_fixed_across_processes() {
        // FNV-1a's published test vector: members compute the same keys.
        assert_eq!(path_key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(path_key("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
