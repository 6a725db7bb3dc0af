#!/usr/bin/env bash
# The CI comparison's baseline and check (see .ci/run):
#   scripts/baseline.sh record   run the CI suite RUNS times (default 3) on this machine and
#                                store them under results/baselines/<hardware>/ (commit them)
#   scripts/baseline.sh check    run it once and compare with the stored baseline of the same
#                                hardware; prints the comparison (Markdown) and never fails on
#                                it: one run against a baseline from another day is a report,
#                                not a gate (gate changes with `wattbench ab`). Exit 0 unless
#                                the run itself could not be made.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
make build >&2
bin=./target/release/wattbench
suite_args=(--suite quick --mode infer --backend reference,candle,tch --min-time 0.3)
slug=$("$bin" info --json | python3 -c '
import json, re, sys
e = json.load(sys.stdin)
h = e["host"]
s = (h.get("cpu_model") or "unknown") + "-" + str(h["logical_cores"]) + "cpu"
s += "".join("-" + (g.get("name") or "gpu") for g in e["gpus"])
print(re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower())')
dir=results/baselines/$slug
case $mode in
  record)
    mkdir -p "$dir"
    for i in $(seq 1 "${RUNS:-3}"); do
      "$bin" run "${suite_args[@]}" --output "$dir/run-$i.json" >/dev/null
    done
    echo "$dir"
    ;;
  check)
    if [ ! -d "$dir" ]; then
      echo "no committed baseline for this hardware ($slug): nothing to compare with;" \
        "record one with scripts/baseline.sh record" >&2
      exit 0
    fi
    new=$(mktemp -d)
    trap 'rm -rf "$new"' EXIT
    "$bin" run "${suite_args[@]}" --output "$new/run.json" >/dev/null
    echo "## This commit against the baseline in $dir (report only, not a gate)"
    "$bin" compare "$dir" "$new/run.json" --format markdown --no-fail || {
      echo "the comparison could not be made (message above)" >&2
    }
    ;;
  *) echo "usage: scripts/baseline.sh record|check" >&2; exit 2 ;;
esac
