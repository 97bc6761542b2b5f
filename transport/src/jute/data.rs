//! Records shared by the wire codec and the engine's tree.
//!
//! They derive rkyv so the engine's txns (archived as-is into the WAL) can embed them.

use rkyv::{Archive, Deserialize, Serialize};

/// A znode's metadata, as `zookeeper.jute`'s `Stat` (wire order of fields is the
/// declaration order below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Archive, Serialize, Deserialize)]
pub struct Stat {
    /// zxid of the txn that created the node.
    pub czxid: i64,
    /// zxid of the txn that last changed the node's data.
    pub mzxid: i64,
    /// Creation time, ms since the epoch (the leader's clock at prep).
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Number of data changes.
    pub version: i32,
    /// Number of child list changes.
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owning session id for ephemerals, else 0 (also 0 for containers and TTL nodes).
    pub ephemeral_owner: i64,
    /// Length of the data (0 for empty or null data).
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// zxid of the txn that last changed the child list.
    pub pzxid: i64,
}

/// An identity: `scheme:id`, e.g. `world:anyone`, `digest:user:base64(sha1)`, `ip:10.0.0.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Archive, Serialize, Deserialize)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }
    /// `world:anyone`.
    pub fn anyone() -> Self {
        Id::new("world", "anyone")
    }
}

/// One ACL entry: permission bits (see [`super::perms`]) granted to an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Archive, Serialize, Deserialize)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    /// `OPEN_ACL_UNSAFE`: all permissions to `world:anyone`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: super::perms::ALL,
            id: Id::anyone(),
        }]
    }
    /// `READ_ACL_UNSAFE`: read to `world:anyone`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: super::perms::READ,
            id: Id::anyone(),
        }]
    }
}

// Wire order is the field order of `zookeeper.jute`'s `org.apache.zookeeper.data` module.
super::wire::impl_wire_record!(Stat {
    czxid: i64,
    mzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
    ephemeral_owner: i64,
    data_length: i32,
    num_children: i32,
    pzxid: i64,
});
/// `Id` reads a null scheme or id as empty: clients send the id of `CREATOR_ALL_ACL`
/// (`auth:` with no id) as a null string (kazoo does), and ZooKeeper accepts it.
impl super::wire::Wire for Id {
    const MIN_BYTES: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        self.scheme.encode(out);
        self.id.encode(out);
    }
    fn decode(r: &mut super::wire::Reader<'_>) -> Result<Self, super::wire::DecodeError> {
        let scheme = r.nullable_string()?.unwrap_or_default();
        let id = r.nullable_string()?.unwrap_or_default();
        Ok(Id { scheme, id })
    }
}
super::wire::impl_wire_record!(Acl { perms: i32, id: Id });

/// Encoded size of a [`Stat`]: 6 longs and 5 ints.
pub const STAT_BYTES: usize = 6 * 8 + 5 * 4;
const _: () = assert!(<Stat as super::wire::Wire>::MIN_BYTES == STAT_BYTES);

#[cfg(test)]
mod tests {
    use super::super::wire::{Reader, Wire, put_i32, put_string};
    use super::*;

    #[test]
    fn a_null_acl_id_reads_as_empty() {
        let mut b = Vec::new();
        put_i32(&mut b, super::super::perms::ALL);
        put_string(&mut b, "auth");
        put_i32(&mut b, -1);
        let acl = Acl::decode(&mut Reader::new(&b)).unwrap();
        assert_eq!(acl.id, Id::new("auth", ""));
    }
}
