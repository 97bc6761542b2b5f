//! `ckctl`: corekeeper's command-line client, speaking zkCli's verbs and output.
//!
//! Modules, from pure to effectful:
//! - [`connect`]: connect strings (`host:port,host:port/chroot`), chroot mapping, path checks;
//! - [`acl`]: zkCli's ACL syntax (`world:anyone:cdrwa,digest:user:hash:r`);
//! - [`cmd`]: the command line and each verb's arguments, as a [`cmd::Command`];
//! - [`format`]: zkCli's output text (stat lines, `ls` lists, ACL entries, events, errors);
//! - [`watches`]: the watches a session set, to set them again after a reconnect;
//! - [`run`]: a [`run::Session`] executes commands over `transport::client::Client`, and
//!   [`run::main`] is the whole program (the binary only wires stdin/stdout/stderr).
//!
//! `ckctl cluster` is [`cluster`]: a local ensemble (up, status, kill, restart, pause,
//! resume, down).
//!
//! `ckdiff` (issue 11) is [`diff`]: the same seeded random ops sent to two servers,
//! every reply and watch event compared field by field.
//!
//! `ckjepsen` (issue 13) is [`hist`]: a seeded workload recorded as a history while a
//! nemesis kills and pauses the server, then linearizability and session checkers.
//!
//! Everything but `run` and `diff` is pure and unit-tested; `run` is tested against a real
//! corekeeper in `tests/`.

pub mod acl;
pub mod cluster;
pub mod cmd;
pub mod connect;
pub mod diff;
pub mod format;
pub mod hist;
pub mod run;
pub mod top;
pub mod watches;
