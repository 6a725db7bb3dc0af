#!/usr/bin/env bash
# Record the tool's own overheads (benchmarks, not tests) under results/:
#   results/harness-overhead.json  harness-reported per-call time vs a bare loop (target: within 5%)
#   results/sampler-overhead.txt   CPU cost of the energy/memory sampler at its default interval
# Run on a quiet machine; both compare side by side in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
# Assigned, then exported: `export X="$(...)"` would hide a failed fetch.
LIBTORCH=$(bash scripts/fetch-libtorch.sh)
export LIBTORCH
# The machine and commit the numbers belong to, from `wattbench info` (benches are no result
# files of their own: they would record neither).
info=$(cargo run -q --release --locked -p wattbench --features wattbench/tch,wattbench-candle/train,wattbench-tch/train -- info --json)
cargo bench --locked -p wattbench --features wattbench/tch --bench harness_overhead
# The bench's file, with the machine added (written beside, then moved).
tmp=$(mktemp results/harness-overhead.json.XXXXXX)
chmod 644 "$tmp"
trap 'rm -f "$tmp"' EXIT
INFO=$info python3 - results/harness-overhead.json "$tmp" <<'PY'
import json, os, sys
doc = json.load(open(sys.argv[1]))
info = json.loads(os.environ["INFO"])
doc["machine"] = {k: info.get(k) for k in ("hardware_fingerprint", "host", "git_commit")}
json.dump(doc, open(sys.argv[2], "w"), indent=2)
PY
mv "$tmp" results/harness-overhead.json
# Written beside, then moved: a failed build or bench, or a Ctrl-C, keeps the recorded numbers.
tmp=$(mktemp results/sampler-overhead.txt.XXXXXX)
chmod 644 "$tmp"
INFO=$info python3 -c 'import json, os; i = json.loads(os.environ["INFO"]); print("machine:", i["hardware_fingerprint"], "commit:", i.get("git_commit"))' >"$tmp"
cargo bench --locked -p wattbench-energy --bench sampler_overhead -- 20 | tee -a "$tmp"
mv "$tmp" results/sampler-overhead.txt
trap - EXIT
