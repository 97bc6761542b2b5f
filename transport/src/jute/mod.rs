//! ZooKeeper's client protocol (jute).
//!
//! [`codes`] holds the numeric constants clients depend on (opcodes, error codes,
//! permissions, create modes, watch event types); [`data`] holds the records shared by
//! the codec and the engine's tree (`Stat`, `Id`, `Acl`).

pub mod codes;
pub mod data;

pub use codes::{
    AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, WatcherType, perms,
};
pub use data::{Acl, Id, Stat};
