//! `corekeeper`: the server. See `corekeeper --help` and README.md.

use engine::config::{Config, USAGE};

// The server's allocator: jemalloc with pages freed handed back (`engine::server_allocator`).
engine::server_allocator!();

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
