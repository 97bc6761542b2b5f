//! The per-op records of `zookeeper.jute`'s `org.apache.zookeeper.proto` module.
//!
//! Each struct's fields are encoded in declaration order, which is the field order of
//! the jute definition of the same name. Fields with a closed set of values (create
//! flags, watch modes, watcher types, event types) stay raw `i32` so every frame a
//! client can send decodes and re-encodes unchanged; accessors map them to the enums
//! of [`super::codes`], and validating them is the engine's job (ZooKeeper answers
//! a bad value with an error reply, not a dropped connection).

use super::codes::{AddWatchMode, CreateMode, EventType, KeeperState, WatcherType};
use super::data::{Acl, Stat};
use super::wire::{Buffer, NullableString, wire_record};

wire_record! {
    /// `CreateRequest`: create, create2 and createContainer (and their multi ops).
    pub struct CreateRequest {
        pub path: String,
        pub data: Buffer,
        pub acl: Vec<Acl>,
        /// Raw [`CreateMode`] code.
        pub flags: i32,
    }
}

impl CreateRequest {
    pub fn create_mode(&self) -> Option<CreateMode> {
        CreateMode::from_code(self.flags)
    }
}

wire_record! {
    /// `CreateTTLRequest`: createTTL.
    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Buffer,
        pub acl: Vec<Acl>,
        /// Raw [`CreateMode`] code.
        pub flags: i32,
        /// Time to live, ms.
        pub ttl: i64,
    }
}

impl CreateTtlRequest {
    pub fn create_mode(&self) -> Option<CreateMode> {
        CreateMode::from_code(self.flags)
    }
}

wire_record! {
    /// `DeleteRequest`; version -1 matches any.
    pub struct DeleteRequest {
        pub path: String,
        pub version: i32,
    }
}

wire_record! {
    /// `ExistsRequest`.
    pub struct ExistsRequest {
        pub path: String,
        pub watch: bool,
    }
}

wire_record! {
    /// `GetDataRequest`.
    pub struct GetDataRequest {
        pub path: String,
        pub watch: bool,
    }
}

wire_record! {
    /// `SetDataRequest`; version -1 matches any.
    pub struct SetDataRequest {
        pub path: String,
        pub data: Buffer,
        pub version: i32,
    }
}

wire_record! {
    /// `GetACLRequest`.
    pub struct GetAclRequest {
        pub path: String,
    }
}

wire_record! {
    /// `SetACLRequest`; version is the ACL version (aversion), -1 matches any.
    pub struct SetAclRequest {
        pub path: String,
        pub acl: Vec<Acl>,
        pub version: i32,
    }
}

wire_record! {
    /// `GetChildrenRequest`.
    pub struct GetChildrenRequest {
        pub path: String,
        pub watch: bool,
    }
}

wire_record! {
    /// `GetChildren2Request` (children plus the parent's stat).
    pub struct GetChildren2Request {
        pub path: String,
        pub watch: bool,
    }
}

wire_record! {
    /// `GetAllChildrenNumberRequest`.
    pub struct GetAllChildrenNumberRequest {
        pub path: String,
    }
}

wire_record! {
    /// `GetEphemeralsRequest`: the session's ephemerals under a path prefix.
    pub struct GetEphemeralsRequest {
        pub prefix_path: String,
    }
}

wire_record! {
    /// `SyncRequest`.
    pub struct SyncRequest {
        pub path: String,
    }
}

wire_record! {
    /// `CheckVersionRequest`: the check op (in a multi; ZooKeeper 3.8 also accepts it
    /// standalone and replies with a `SetDataResponse`).
    pub struct CheckVersionRequest {
        pub path: String,
        pub version: i32,
    }
}

wire_record! {
    /// `ReconfigRequest` (dynamic reconfiguration). Null strings mean "not given".
    pub struct ReconfigRequest {
        pub joining_servers: NullableString,
        pub leaving_servers: NullableString,
        pub new_members: NullableString,
        pub cur_config_id: i64,
    }
}

wire_record! {
    /// `CheckWatchesRequest`: does this session hold such a watch on the path?
    pub struct CheckWatchesRequest {
        pub path: String,
        /// Raw [`WatcherType`] code.
        pub watcher_type: i32,
    }
}

wire_record! {
    /// `RemoveWatchesRequest`.
    pub struct RemoveWatchesRequest {
        pub path: String,
        /// Raw [`WatcherType`] code.
        pub watcher_type: i32,
    }
}

impl CheckWatchesRequest {
    pub fn watcher_type(&self) -> Option<WatcherType> {
        WatcherType::from_code(self.watcher_type)
    }
}

impl RemoveWatchesRequest {
    pub fn watcher_type(&self) -> Option<WatcherType> {
        WatcherType::from_code(self.watcher_type)
    }
}

wire_record! {
    /// `AddWatchRequest`: a persistent (optionally recursive) watch.
    pub struct AddWatchRequest {
        pub path: String,
        /// Raw [`AddWatchMode`] code.
        pub mode: i32,
    }
}

impl AddWatchRequest {
    pub fn mode(&self) -> Option<AddWatchMode> {
        AddWatchMode::from_code(self.mode)
    }
}

wire_record! {
    /// `AuthPacket` (sent with xid -4): add an identity to the session.
    pub struct AuthPacket {
        /// Always 0 in practice.
        pub auth_type: i32,
        pub scheme: String,
        /// Scheme-specific credentials, e.g. `user:password` for digest.
        pub auth: Buffer,
    }
}

wire_record! {
    /// `SetWatches` (sent with xid -8 on reconnect): re-register one-shot watches,
    /// firing those whose nodes changed after `relative_zxid`.
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }
}

wire_record! {
    /// `SetWatches2` (opcode setWatches2, xid -8): [`SetWatches`] plus persistent and
    /// persistent-recursive watches.
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }
}

wire_record! {
    /// `GetSASLRequest`: a SASL token from the client.
    pub struct GetSaslRequest {
        pub token: Buffer,
    }
}

// ---------------------------------------------------------------- responses

wire_record! {
    /// `CreateResponse`: the created path (with the sequence suffix, if any).
    pub struct CreateResponse {
        pub path: String,
    }
}

wire_record! {
    /// `Create2Response`: reply to create2, createTTL and createContainer.
    pub struct Create2Response {
        pub path: String,
        pub stat: Stat,
    }
}

wire_record! {
    /// A reply that is just a [`Stat`]: `ExistsResponse`, `SetDataResponse`,
    /// `SetACLResponse` (and a standalone check's reply) share this shape.
    pub struct StatResponse {
        pub stat: Stat,
    }
}

/// `ExistsResponse`.
pub type ExistsResponse = StatResponse;
/// `SetDataResponse`.
pub type SetDataResponse = StatResponse;
/// `SetACLResponse`.
pub type SetAclResponse = StatResponse;

wire_record! {
    /// `GetDataResponse` (also the reply to reconfig). Null data reads back as
    /// `None` (length -1), empty data as `Some(vec![])`.
    pub struct GetDataResponse {
        pub data: Buffer,
        pub stat: Stat,
    }
}

wire_record! {
    /// `GetACLResponse`.
    pub struct GetAclResponse {
        pub acl: Vec<Acl>,
        pub stat: Stat,
    }
}

wire_record! {
    /// `GetChildrenResponse` (ZooKeeper sends children unsorted).
    pub struct GetChildrenResponse {
        pub children: Vec<String>,
    }
}

wire_record! {
    /// `GetChildren2Response`.
    pub struct GetChildren2Response {
        pub children: Vec<String>,
        pub stat: Stat,
    }
}

wire_record! {
    /// `GetAllChildrenNumberResponse`: number of descendants.
    pub struct GetAllChildrenNumberResponse {
        pub total_number: i32,
    }
}

wire_record! {
    /// `GetEphemeralsResponse`.
    pub struct GetEphemeralsResponse {
        pub ephemerals: Vec<String>,
    }
}

wire_record! {
    /// `SyncResponse`: echoes the path.
    pub struct SyncResponse {
        pub path: String,
    }
}

wire_record! {
    /// `ErrorResponse`: an error code as a record (addWatch's reply body, always 0;
    /// the body of a failed op inside a multi).
    pub struct ErrorResponse {
        pub err: i32,
    }
}

wire_record! {
    /// `ClientInfo`: one of the session's identities, as whoAmI reports it.
    pub struct ClientInfo {
        pub auth_scheme: String,
        pub user: String,
    }
}

wire_record! {
    /// `WhoAmIResponse`.
    pub struct WhoAmIResponse {
        pub client_info: Vec<ClientInfo>,
    }
}

wire_record! {
    /// `SetSASLResponse`: a SASL token from the server.
    pub struct SetSaslResponse {
        pub token: Buffer,
    }
}

wire_record! {
    /// `WatcherEvent`: body of a notification (reply xid -1).
    pub struct WatcherEvent {
        /// Raw [`EventType`] code.
        pub event_type: i32,
        /// Raw [`KeeperState`] code (3 = SyncConnected for node events).
        pub state: i32,
        pub path: String,
    }
}

impl WatcherEvent {
    /// A node event as ZooKeeper sends it (state SyncConnected).
    pub fn node(event_type: EventType, path: impl Into<String>) -> Self {
        WatcherEvent {
            event_type: event_type.code(),
            state: KeeperState::SyncConnected.code(),
            path: path.into(),
        }
    }

    pub fn event_type(&self) -> Option<EventType> {
        EventType::from_code(self.event_type)
    }

    pub fn state(&self) -> Option<KeeperState> {
        KeeperState::from_code(self.state)
    }
}
