//! `ckdiff`: differential testing of two ZooKeeper-protocol servers; see `tools::diff`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = tools::diff::main(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(status);
}
