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
cargo bench --locked -p wattbench --features wattbench/tch --bench harness_overhead
# Written beside, then moved: a failed build or bench, or a Ctrl-C, keeps the recorded numbers.
tmp=$(mktemp results/sampler-overhead.txt.XXXXXX)
chmod 644 "$tmp"
trap 'rm -f "$tmp"' EXIT
cargo bench --locked -p wattbench-energy --bench sampler_overhead -- 20 | tee "$tmp"
mv "$tmp" results/sampler-overhead.txt
trap - EXIT
