#!/usr/bin/env bash
# Gateway load run: N concurrent Opus⇄PCMU transcoded calls over loopback against the release
# `landline` binary (see `src/bin/loadgen.rs` and the README's "Gateway load run").
#
#   benches/loadgen.sh [N,N,...] [-- more loadgen options]     e.g. benches/loadgen.sh 50,100,200
#
# Each N gets a fresh gateway, a 5 s warm-up and a 20 s window (--warmup, --window to change).
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-50,100}"
shift || true
[ "${1:-}" = "--" ] && shift
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p landline --bin landline
cargo build --release --quiet -p landline-benches --bin loadgen
exec "$CARGO_TARGET_DIR/release/loadgen" --landline "$CARGO_TARGET_DIR/release/landline" \
  --calls "$calls" --clk-tck "$(getconf CLK_TCK)" "$@"
