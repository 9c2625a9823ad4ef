#!/usr/bin/env bash
# Instructions per 20 ms of call for each media workload, counted by callgrind.
#
# Instruction counts barely move with machine load, unlike wall time, so they are the figures to
# compare between commits on a shared or virtual machine. Only `measured_steps` in
# benches/src/bin/instructions.rs is counted (fixture building and warm-up are not).
#
# Usage: benches/callgrind.sh [--annotate] [WORKLOAD...]   (default: every workload)
#   --annotate   also print the 25 functions with the most instructions (self cost) per workload;
#                libopus's own functions are named only with a libopus that has symbols:
#                LD_LIBRARY_PATH=$(benches/libopus-symbols.sh) benches/callgrind.sh --annotate ...
#   STEPS=N      steps counted per workload (default 500: one lap of the 10 s fixtures; 20
#                sessions for webrtc_setup, whose figure is per session, not per 20 ms)
# Browser-leg workloads (webrtc_*, call_full_duplex_webrtc, udp_send) count only the gateway's
# calls, each run inside `measured_section`; the str0m client's work between them is not counted.
#   CALLGRIND_OUT=DIR  keep callgrind.out.<workload> files there for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."

annotate=0
if [[ "${1:-}" == "--annotate" ]]; then
    annotate=1
    shift
fi
steps="${STEPS:-}"
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed: apt-get install --no-install-recommends valgrind" >&2
    exit 1
fi

cargo build --quiet --release -p landline-benches --bin instructions
bin="${CARGO_TARGET_DIR:-target}/release/instructions"
out="${CALLGRIND_OUT:-$(mktemp -d)}"
mkdir -p "$out"

if [[ $# -gt 0 ]]; then workloads=("$@"); else mapfile -t workloads < <("$bin" --list); fi
"$bin" --describe

printf '\n| workload | instructions per 20 ms |\n|---|---:|\n'
for workload in "${workloads[@]}"; do
    file="$out/callgrind.out.$workload"
    # shellcheck disable=SC2086 # $steps is empty (the binary's default) or one number
    ran=$(valgrind --tool=callgrind --callgrind-out-file="$file" --collect-atstart=no \
        --toggle-collect='*measured_steps*' --toggle-collect='*measured_section*' \
        "$bin" "$workload" $steps 2>"$file.log") || {
        echo "valgrind failed on $workload; see $file.log" >&2
        exit 1
    }
    n=${ran##* }
    total=$(awk '/^(summary|totals):/ { print $2; exit }' "$file")
    printf '| %s | %d |\n' "$workload" $((total / n))
done

if [[ $annotate == 1 ]]; then
    for workload in "${workloads[@]}"; do
        printf '\n## %s: top functions (self instructions, all steps)\n\n' "$workload"
        callgrind_annotate --threshold=99 "$out/callgrind.out.$workload" 2>/dev/null |
            sed -n '/file:function/,$p' | sed -n '3,27p' |
            sed -E -e 's#[^ ]*/(opus|codecs|benches)/#\1/#' -e 's# \[[^]]*\]$##'
    done
fi
[[ -n "${CALLGRIND_OUT:-}" ]] || rm -rf "$out"
