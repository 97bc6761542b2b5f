//! The corekeeper server: configuration, the thread-per-core runtime, the client server
//! built on it, and the pure state machines it drives. The module map is in
//! `../shared/DESIGN.md`.

pub mod config;
pub mod craq;
pub mod logging;
pub mod op;
pub mod peer;
pub mod prep;
pub mod runtime;
pub mod server;
pub mod session;
pub mod shard;
pub mod tree;
pub mod txn;
pub mod zab;

#[doc(hidden)]
pub use tikv_jemallocator;

/// Makes the calling binary allocate as the server does: jemalloc, not glibc's
/// malloc. With 1M znodes loaded glibc held 1.76 GB of RSS for 0.55 GB in use (pages
/// freed by snapshots' copies and the load's buffers stay in its per-thread arenas
/// until `malloc_trim`); jemalloc as configured here held 0.52 GB (README "Large
/// trees"). Its options (`malloc_conf`; `_RJEM_MALLOC_CONF` in the environment
/// overrides them): a background thread returns freed pages to the kernel about a
/// second after they were freed (`dirty_decay_ms`), also while the server is idle (by
/// default jemalloc purges only as a side effect of later allocations, so an idle
/// server kept what its last burst freed); `muzzy_decay_ms:0` skips the lazy-free
/// stage. `corekeeper` and `ckjepsen` (whose `serve` runs the servers the tests use)
/// both invoke it, so the tests run the production allocator. The library itself
/// does not pick one: an embedder keeps its own.
#[macro_export]
macro_rules! server_allocator {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::tikv_jemallocator::Jemalloc = $crate::tikv_jemallocator::Jemalloc;

        #[unsafe(export_name = "_rjem_malloc_conf")]
        #[allow(non_upper_case_globals)]
        pub static malloc_conf: &u8 =
            &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];
    };
}
