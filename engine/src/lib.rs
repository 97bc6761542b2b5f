//! The corekeeper server.
