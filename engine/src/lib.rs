//! The corekeeper server.

pub mod op;
pub mod prep;
pub mod session;
pub mod tree;
pub mod txn;
