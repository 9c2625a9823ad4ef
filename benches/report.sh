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
# The 10th percentile of criterion's per-sample means, in µs, over samples of at least one lap of
# the fixture (500 steps): the least-disturbed samples, which a loaded machine inflates least.
# Session setup (milliseconds per step) has no such samples: all of its samples count.
p10_us() {
    local file="$target/criterion/$1/$2/new/sample.json"
    [[ -f $file ]] || { echo "-"; return; }
    local min=500
    [[ $2 == webrtc_setup ]] && min=1
    sed -E 's/.*"iters":\[([^]]*)\].*"times":\[([^]]*)\].*/\1;\2/' "$file" |
        awk -F';' -v min="$min" '{ n = split($1, it, ","); split($2, tm, ",")
                     for (i = 1; i <= n; i++) if (it[i] >= min) print tm[i] / it[i] / 1000 }' |
        sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int(NR / 10) + 1] }'
}
instr() { awk -v w="$1" -F'|' '$2 ~ " "w" " { gsub(/ /, "", $3); print $3 }' <<<"$instructions"; }

echo "$instructions" | head -n 1
echo
echo "| workload (per 20 ms; webrtc_setup per session) | CPU µs (p10) | CPU µs (median) | wall µs (median) | instructions |"
echo "|---|---:|---:|---:|---:|"
for w in $("$target/release/instructions" --list); do
    printf '| %s | %s | %s | %s | %s |\n' "$w" "$(p10_us cpu "$w")" "$(median_us cpu "$w")" \
        "$(median_us wall "$w")" "$(instr "$w")"
done
echo
for suffix in "" _nb; do
    call="call_full_duplex$suffix"
    bare="libopus_decode_encode$suffix"
    awk -v name="$call" -v ci="$(instr "$call")" -v bi="$(instr "$bare")" \
        -v cp="$(p10_us cpu "$call")" -v bp="$(p10_us cpu "$bare")" \
        -v cm="$(median_us cpu "$call")" -v bm="$(median_us cpu "$bare")" 'BEGIN {
        printf "%s: above bare libopus %+.2f %% in instructions, %+.1f %% (p10) / %+.1f %% ", \
            name, 100 * (ci - bi) / bi, 100 * (cp - bp) / bp, 100 * (cm - bm) / bm
        printf "(median) in CPU time; %.1f (p10) / %.1f (median) µs CPU per 20 ms ", cp, cm
        printf "-> %d / %d calls per core\n", 20000 / cp, 20000 / cm
    }'
done
echo
echo "$state"
echo
lscpu | grep -E '^(Model name|CPU\(s\)|CPU max MHz|Hypervisor vendor):' | tr -s ' '
