//! `ckjepsen`: recorded histories and consistency checkers; see `tools::hist`.

// `ckjepsen serve` is the server the tests run: the server's allocator too.
engine::server_allocator!();

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Unlocked handles: `ckjepsen serve` runs the engine, whose threads log to stderr
    // (a lock held here for the whole run would block them forever).
    let status = tools::hist::runner::main(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(status);
}
