//! The replication links between servers: which exist and who dials
//! ([`links::LinkBook`], pure), for the election port and the quorum port alike.
//! The glommio side that carries `transport::peer` frames over them lands with the
//! replicated runtime (issue 12).

pub mod links;

#[cfg(test)]
mod links_tests;
