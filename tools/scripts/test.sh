#!/usr/bin/env bash
# corekeeper's whole test suite: the command README.md names and .ci/run calls.
# It installs what it needs itself, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n=== %s ===\n' "$*"; }

# glommio wants locked memory; 8 MiB is the most this machine allows, which suffices
# because every executor sets io_memory explicitly.
ulimit -l unlimited 2>/dev/null || true

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

step "apt packages the build and the tests use"
# make: the jemalloc allocator's build (tikv-jemalloc-sys runs its configure and make).
# nftables: ckjepsen's partitions between network namespaces (tools/tests/histories.rs).
missing=""
command -v make >/dev/null || missing+=" make"
command -v nft >/dev/null || missing+=" nftables"
if [ -n "$missing" ]; then
  apt-get update -q </dev/null
  apt-get install -y -q $missing </dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "acceptance: zkCli and kazoo against corekeeper and ZooKeeper"
bash tools/scripts/acceptance/run.sh
