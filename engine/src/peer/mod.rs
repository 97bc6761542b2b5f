//! The replication links between servers, for the election port and the quorum port
//! alike: which exist and who dials ([`links::LinkBook`], pure) and the glommio side
//! that carries `transport::peer` frames over them ([`net::PeerNet`]), and fast
//! leader election run over them ([`elect::ElectionRunner`]).

pub mod elect;
pub mod links;
pub mod net;

#[cfg(test)]
mod links_tests;
