#!/usr/bin/env bash
# Runs every media bench and prints the README's results table: CPU and wall time (criterion),
# instructions (callgrind), the pipeline's overhead above bare libopus, calls per core, and the
# state one call keeps. About five minutes on two cores.
#
# Usage: benches/report.sh            (SKIP_CRITERION=1 reuses the last criterion run's results)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

if [[ -z "${SKIP_CRITERION:-}" ]]; then
    cargo bench --quiet -p landline-benches --bench media >&2
fi
instructions=$(benches/callgrind.sh)
state=$(cargo run --quiet --release -p landline-benches --bin state)

# Criterion's median per iteration, in µs, of group $1 (cpu|wall), bench $2.
median_us() {
    local file="$target/criterion/$1/$2/new/estimates.json"
    [[ -f $file ]] || { echo "-"; return; }
    sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' \
        "$file" | awk '{ printf "%.2f", $1 / 1000 }'
}
instr() { awk -v w="$1" -F'|' '$2 ~ " "w" " { gsub(/ /, "", $3); print $3 }' <<<"$instructions"; }

echo "$instructions" | head -n 1
echo
echo "| workload (per 20 ms) | CPU µs (median) | wall µs (median) | instructions |"
echo "|---|---:|---:|---:|"
for w in $("$target/release/instructions" --list); do
    printf '| %s | %s | %s | %s |\n' "$w" "$(median_us cpu "$w")" "$(median_us wall "$w")" "$(instr "$w")"
done
echo
for suffix in "" _nb; do
    call="call_full_duplex$suffix"
    bare="libopus_decode_encode$suffix"
    awk -v name="$call" -v ci="$(instr "$call")" -v bi="$(instr "$bare")" \
        -v ct="$(median_us cpu "$call")" -v bt="$(median_us cpu "$bare")" 'BEGIN {
        printf "%s: overhead above bare libopus %+.2f %% in instructions, %+.1f %% in CPU time; ", \
            name, 100 * (ci - bi) / bi, 100 * (ct - bt) / bt
        printf "%.1f µs CPU per 20 ms -> %d calls per core\n", ct, 20000 / ct
    }'
done
echo
echo "$state"
echo
lscpu | grep -E '^(Model name|CPU\(s\)|CPU max MHz|Hypervisor vendor):' | tr -s ' '
