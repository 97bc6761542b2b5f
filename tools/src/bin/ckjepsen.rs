//! `ckjepsen`: recorded histories and consistency checkers; see `tools::hist`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = tools::hist::runner::main(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(status);
}
