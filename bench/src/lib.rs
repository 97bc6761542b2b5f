//! ckbench: corekeeper's load generator and ZooKeeper comparison harness.
//!
//! It speaks the ZooKeeper client protocol, so one binary and one workload drive
//! corekeeper and Apache ZooKeeper alike. Module map (one concept each):
//!
//! - [`config`]: the command line (`ckbench run`, `ckbench compare`) and its limits;
//! - [`workload`]: workload kinds, the seeded op generator, key distributions (Zipf);
//! - [`driver`]: the pluggable protocol driver trait (submit / poll on a clock);
//! - [`mock`]: an in-process mock server on a virtual clock (`--target mock`, tests);
//! - [`zk`]: the ZooKeeper-protocol driver (TCP, jute codec from `transport`);
//! - [`runner`]: workers, setup / load / cleanup phases, closed and open loop, recipes;
//! - [`stats`]: hdrhistograms per op kind and per second, errors by code, merging,
//!   coordinated-omission correction;
//! - [`progress`]: the live per-second line;
//! - [`report`]: text, JSON, hdrhistogram interval log, comparison table;
//! - [`plot`]: SVG latency spectrum and throughput over time;
//! - [`output`]: the files a run or comparison writes;
//! - [`server_stats`]: `mntr` before and after a run, deltas, the per-core table;
//! - [`servers`]: starting ZooKeeper 3.8 and corekeeper (process guards, readiness,
//!   CPU time from `/proc`);
//! - [`ensemble`]: a 3-node ZooKeeper ensemble (`compare --shape 3node`);
//! - [`mesh`]: a TCP proxy on every peer link of an ensemble (cut, delay, loss);
//! - [`faultfs`]: a pass-through FUSE filesystem under a server's data directory whose
//!   fsyncs can stall or fail with EIO;
//! - [`matrix`]: `ckbench compare --systems ...`: a workload matrix run against each
//!   system, interleaved, summarised as medians, spread and ratios.
//!
//! Usage (both servers on this machine, same workload, then side by side):
//!
//! ```text
//! ckbench run --target zookeeper  --connect 127.0.0.1:2181 --workload mix:90/10 \
//!     --sessions 8 --inflight 4 --warmup-s 2 --duration-s 10 --seed 42 --out runs
//! ckbench run --target corekeeper --connect 127.0.0.1:2182 --workload mix:90/10 \
//!     --sessions 8 --inflight 4 --warmup-s 2 --duration-s 10 --seed 42 --out runs
//! ckbench compare runs/zookeeper.json runs/corekeeper.json --out runs/cmp
//! # or let ckbench start both servers and run a matrix, interleaved:
//! ckbench compare --systems zookeeper,corekeeper --matrix get:1x1,set:8x16 \
//!     --rounds 3 --duration-s 5 --out cmp
//! ```
//!
//! Use `--rate OPS` instead of `--inflight` for user-facing latency at a fixed load
//! (coordinated-omission corrected: latency counts from each request's intended send
//! time, which includes the generator's own scheduling lag; the "from actual send" line
//! shows how much that is). Numbers from one machine shared with the server under test
//! compare systems on *that* machine; they are not absolute capacities.
//!
//! Data flow: `config` → `runner::run` (drivers from a `Connector`, ops from `workload`,
//! samples into `stats`, lines to `progress`) → `report::RunReport` → `output`.

pub mod config;
pub mod driver;
pub mod ensemble;
pub mod failover;
pub mod faultfs;
pub mod matrix;
pub mod mesh;
pub mod mock;
pub mod modes;
pub mod netns;
pub mod output;
pub mod plot;
pub mod progress;
pub mod report;
pub mod runner;
pub mod server_stats;
pub mod servers;
pub mod stats;
pub mod workload;
pub mod zk;
