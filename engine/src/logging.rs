//! Structured logs through `tracing`; glommio's `log` records are bridged in, so its
//! warnings (locked memory, ring setup) are seen. `RUST_LOG` overrides the level.
//!
//! Logs go to stdout, coloured only when stdout is a terminal: written to a file, a
//! pipe or a journal they carry no ANSI escape codes.

use std::io::IsTerminal;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}
