#!/usr/bin/env bash
# Replay scaling, one command: `--workers 1` and `--workers 2` in alternating runs on the same
# input, each under /usr/bin/time, outputs compared byte for byte.
#
#   benchmarks/bench_scaling.sh [IN] [PAIRS]
#   IN     an RBA-layout CSV (default /work/var5/def/logins_rba.csv, 378,764 rows)
#   PAIRS  how many 1-then-2 pairs (default 2)
#
# Environment: PYTHON (default: python on PATH), OUT (scratch directory, default a temporary
# one), EXTRA (more replay flags, e.g. "--config budget.toml").
#
# Per run it prints wall clock, CPU (user + sys, all processes), the coordinator's own CPU
# (reading, pre-pass, merge, budget post-pass: `coordinator_cpu_s` of `replay --json`) and the
# workers' (`workers_cpu_s`; 0 for one worker: everything runs in the coordinator), the load
# average before the run, and per pair the speed-up (wall 1 / wall 2). On a machine shared
# with other jobs the wall clock says little: say so next to any figure taken there.
set -euo pipefail

IN=${1:-/work/var5/def/logins_rba.csv}
PAIRS=${2:-2}
PY=${PYTHON:-python}
OUT=${OUT:-$(mktemp -d)}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"

run() {  # run WORKERS TAG -> prints "wall cpu coordinator workers"
    local w=$1 tag=$2
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %U %S" -o "$OUT/time-$tag" \
        "$PY" -m riskengine replay "$IN" --format rba --out "$OUT/$tag.parquet" --workers "$w" \
        --no-progress --json $EXTRA > "$OUT/$tag.json"
    "$PY" - "$OUT/time-$tag" "$OUT/$tag.json" <<'PY'
import json, sys
wall, user, sys_ = (float(x) for x in open(sys.argv[1]).read().split()[-3:])
stats = json.load(open(sys.argv[2]))
split = [f"{stats[k]:.2f}" if k in stats else "-" for k in ("coordinator_cpu_s", "workers_cpu_s")]
print(f"{wall:.2f} {user + sys_:.2f} {split[0]} {split[1]}")  # "-": a replay without the CPU split
PY
}

printf '%-6s %-8s %-6s %9s %9s %12s %10s %s\n' pair workers load wall_s cpu_s coordinator workers same
for pair in $(seq 1 "$PAIRS"); do
    declare -A wall=()
    for w in 1 2; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        read -r wl cpu coord work < <(run "$w" "p$pair-w$w")
        wall[$w]=$wl
        same=-
        if [ "$w" = 2 ]; then
            cmp -s "$OUT/p$pair-w1.parquet" "$OUT/p$pair-w2.parquet" && same=identical || same=DIFFERENT
        fi
        printf '%-6s %-8s %-6s %9s %9s %12s %10s %s\n' "$pair" "$w" "$load" "$wl" "$cpu" "$coord" "$work" "$same"
    done
    "$PY" -c "print(f'pair $pair: speed-up {${wall[1]} / ${wall[2]}:.2f}x')"
done
