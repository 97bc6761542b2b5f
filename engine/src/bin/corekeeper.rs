//! `corekeeper`: the server. See `corekeeper --help` and README.md.

use engine::config::{Config, USAGE};

/// jemalloc, not glibc's malloc: with 1M znodes loaded, glibc held 1.76 GB of RSS
/// for 0.55 GB in use (pages freed by snapshots' copies and the load's buffers stay in
/// its per-thread arenas until `malloc_trim`); jemalloc held 0.52 GB. README "Large
/// trees" has the measurements.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf`; `_RJEM_MALLOC_CONF` in the environment
/// overrides them): a background thread returns freed pages to the kernel about a
/// second after they were freed (`dirty_decay_ms`), also while the server is idle (the
/// default purges only as a side effect of later allocations, so an idle server kept
/// what its last burst freed); `muzzy_decay_ms:0` skips the lazy-free middle stage.
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

fn main() {
    engine::logging::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let cfg = match Config::from_args(args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("corekeeper: {e}");
            std::process::exit(2);
        }
    };
    for key in &cfg.unknown_keys {
        tracing::warn!(key, "unknown configuration key ignored");
    }
    for warning in &cfg.warnings {
        tracing::warn!("{warning}");
    }
    if let Err(e) = engine::server::run(cfg) {
        eprintln!("corekeeper: {e}");
        std::process::exit(1);
    }
}
