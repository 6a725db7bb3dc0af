#!/usr/bin/env bash
# The evidence that `wattbench compare` and the interleaved A/B gate a change without false
# alarms on this noisy machine, and catch a real 10% slowdown, in time and in energy per call
# (where no counter exists, as on the CI VM, the CPU estimate, which the slowdown raises too):
#   A/A: the same build against itself, PAIRS pairs: every case called `slower` or `faster`
#        is a false alarm (the goal is none);
#   A/B: the normal build against one 10% slower by real work (`--features evidence-slowdown`:
#        each sample does 1.1 n real calls and counts n; nothing in a file is edited), PAIRS
#        pairs: a case called `slower` is a detection (the goal is at least 19 of 20).
# Each is done twice: plain (one run of each side, one after the other, then `compare`) and
# interleaved (`wattbench ab`: ROUNDS rounds A B / B A alternating in one job, pooled).
# Writes results/regression-evidence/<UTC date>-<host>/{summary.md,evidence.json} and keeps
# every compare JSON under raw/. Run on a quiet machine; about an hour on 2 cores (PAIRS=20).
#
#   PAIRS   pairs per experiment (default 20)
#   ROUNDS  rounds per A/B job (default 4: four runs of each side, A B then B A, ...)
#   BACKEND backend of the suite runs (default candle)
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${PAIRS:-20}
rounds=${ROUNDS:-4}
backend=${BACKEND:-candle}
out="results/regression-evidence/$(date -u +%Y%m%d)-$(hostname)"
raw=$out/raw
# The summary counts every raw file there: a second run into the same folder (the same day)
# would mix its pairs with the first's. Checked before the builds.
if [ -z "${SUMMARIZE_ONLY:-}" ] && [ -n "$(ls -A "$raw" 2>/dev/null)" ]; then
  echo "$raw already holds raw results (an earlier run today): move it away, or summarize it" \
    "with SUMMARIZE_ONLY=1" >&2
  exit 2
fi
# Assigned, then exported: `export X="$(...)"` would hide a failed fetch.
LIBTORCH=$(bash scripts/fetch-libtorch.sh)
export LIBTORCH
features=wattbench/tch,wattbench-candle/train,wattbench-tch/train
cargo build --release --locked -p wattbench --features "$features" >&2
CARGO_TARGET_DIR=target/evidence-slowdown cargo build --release --locked -p wattbench \
  --features "$features,wattbench/evidence-slowdown" >&2
a=$PWD/target/release/wattbench
b=$PWD/target/evidence-slowdown/release/wattbench
# Read whole, then searched: `grep -q` leaving early would cut the pipe under pipefail.
info=$("$b" info --json)
grep -q evidence-slowdown <<<"$info" || { echo "the slowed build does not say so" >&2; exit 1; }

mkdir -p "$raw"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run_args=(--suite benchmarks/evidence.toml --backend "$backend" --device cpu
  --min-time 0.5 --min-samples 20 --warmup 0.1)

# plain NAME BIN_NEW I: one run of A, then one of BIN_NEW, compared.
plain() {
  local name=$1 new=$2 i=$3
  "$a" run "${run_args[@]}" --output "$tmp/$name-$i-base.json" >/dev/null
  "$new" run "${run_args[@]}" --output "$tmp/$name-$i-new.json" >/dev/null
  "$a" compare "$tmp/$name-$i-base.json" "$tmp/$name-$i-new.json" --format json --no-fail \
    --output "$raw/plain-$name-$i.json" >/dev/null
}

# interleaved NAME BIN_NEW I: `wattbench ab` with ROUNDS rounds.
interleaved() {
  local name=$1 new=$2 i=$3
  "$a" ab --a "$a" --b "$new" --rounds "$rounds" --dir "$tmp/ab-$name-$i" --format json \
    --no-fail --output "$raw/ab-$name-$i.json" -- "${run_args[@]}" >/dev/null
}

# SUMMARIZE_ONLY=1: only (re)write the summary of the raw results already in $out.
if [ -n "${SUMMARIZE_ONLY:-}" ]; then
  compgen -G "$raw/plain-aa-*.json" >/dev/null || { echo "no raw results in $raw to summarize" >&2; exit 2; }
  pairs=$(find "$raw" -maxdepth 1 -name 'plain-aa-*.json' | wc -l)
fi
for i in $(seq 1 "$pairs"); do
  [ -n "${SUMMARIZE_ONLY:-}" ] && break
  echo "pair $i/$pairs" >&2
  plain aa "$a" "$i"
  plain ab "$b" "$i"
  interleaved aa "$a" "$i"
  interleaved ab "$b" "$i"
done

python3 - "$raw" "$out" "$pairs" "$rounds" "$backend" "$(hostname)" <<'PY'
import glob, json, os, sys
raw, out, pairs, rounds, backend, host = sys.argv[1:]
rows = {}
for metric in ("time", "energy"):
    for kind in ("plain", "ab"):
        for exp in ("aa", "ab"):
            files = sorted(glob.glob(f"{raw}/{kind}-{exp}-*.json"))
            cases = slower = faster = same = ambiguous = 0
            pairs_all_slower = pairs_any_slower = pairs_any_alarm = 0
            sources, methods = set(), set()
            for f in files:
                doc = json.load(open(f))
                t = [c for c in doc["cases"] if c["metric"] == metric]
                sources |= {c.get("source") or "" for c in t}
                methods |= {c["method"] for c in t}
                v = [c["verdict"] for c in t]
                cases += len(v)
                slower += v.count("slower"); faster += v.count("faster")
                same += v.count("same"); ambiguous += v.count("ambiguous")
                pairs_all_slower += bool(v) and all(x == "slower" for x in v)
                pairs_any_slower += "slower" in v
                pairs_any_alarm += "slower" in v or "faster" in v
            rows[f"{metric}-{kind}-{exp}"] = dict(
                metric=metric, source=", ".join(sorted(s for s in sources if s)) or None,
                methods=sorted(methods), pairs=len(files), case_comparisons=cases,
                slower=slower, faster=faster, same=same, ambiguous=ambiguous,
                pairs_every_case_slower=pairs_all_slower, pairs_any_case_slower=pairs_any_slower,
                pairs_any_alarm=pairs_any_alarm)
doc = {"what": "false alarms (A/A) and detections of a real 10% slowdown (A/B), time per call "
               "and energy per call (this machine has no counter: the CPU estimate, TDP x CPU "
               "time, which the slowdown raises by as much)",
       "host": host, "backend": backend, "pairs": int(pairs), "ab_rounds": int(rounds),
       "suite": "benchmarks/evidence.toml", "results": rows}
json.dump(doc, open(f"{out}/evidence.json", "w"), indent=2)
lines = [f"# Regression evidence on {host} ({backend}, benchmarks/evidence.toml)", "",
         "Verdicts of `wattbench compare` (default 5% threshold, BH-adjusted alpha 0.05, per "
         "metric). A/A: false alarms are `slower` + `faster`. A/B: the B build does 10% more "
         "real calls per sample, so time and (estimated, CPU-time based) energy per call rise "
         "by 10%. Plain: one run a side (energy from one window a side has no test and never "
         "gates); interleaved: `wattbench ab`.", "",
         "| metric | method | experiment | pairs | pairs with a case slower or faster | pairs with a case slower | case comparisons | slower | faster | same | ambiguous |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
for k, r in rows.items():
    metric, kind, exp = k.split("-")
    label = metric if not r["source"] else f"{metric} ({r['source']})"
    lines.append(f"| {label} | {'plain' if kind == 'plain' else f'interleaved A/B ({rounds} rounds)'} | "
                 f"{'A/A' if exp == 'aa' else 'A/B (10% slower)'} | {r['pairs']} | "
                 f"{r['pairs_any_alarm']} | {r['pairs_any_case_slower']} | "
                 f"{r['case_comparisons']} | {r['slower']} | {r['faster']} | {r['same']} | "
                 f"{r['ambiguous']} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "$out"
