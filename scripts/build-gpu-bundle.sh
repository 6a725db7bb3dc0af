#!/usr/bin/env bash
# Build, here (no GPU needed), what the GPU check runs there: a release `wattbench` with the GPU
# backends (cudarc loads CUDA at run time, so no CUDA toolkit is needed to build), the
# wattbench-cuda GPU correctness tests as a prebuilt test binary, and the scripts and suite
# files, into the ignored folder .gpu-bundle/ (carried to the GPU machine; must stay < 64 MiB).
#
#   WATTBENCH_GPU_FEATURES  cargo features of the `wattbench` crate (default: cuda)
#   CARGO_TARGET_DIR        build directory (default: target)
set -euo pipefail
cd "$(dirname "$0")/.."
features=${WATTBENCH_GPU_FEATURES:-cuda}
target=${CARGO_TARGET_DIR:-target}
bundle=.gpu-bundle

cargo build --release --locked -p wattbench --features "$features"
# The GPU tests of wattbench-cuda (ignored here; run with --ignored there).
tests_exe=$(cargo test --release --locked -p wattbench-cuda --test gpu --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "gpu" and m.get("executable"):
        print(m["executable"])')
[ -n "$tests_exe" ] || { echo "build-gpu-bundle: GPU test binary not found" >&2; exit 1; }

rm -rf "$bundle"
mkdir -p "$bundle"
cp "$target/release/wattbench" "$bundle/wattbench"
cp "$tests_exe" "$bundle/wattbench-cuda-gpu-tests"
strip "$bundle/wattbench" "$bundle/wattbench-cuda-gpu-tests" 2>/dev/null || true
cp scripts/gpu-check.sh "$bundle/"
cp -r benchmarks "$bundle/benchmarks"
cp -r kernels "$bundle/kernels"  # embedded in the binaries already; here for reading
git rev-parse HEAD >"$bundle/COMMIT" 2>/dev/null || echo unknown >"$bundle/COMMIT"
echo "$features" >"$bundle/FEATURES"
size=$(du -sm "$bundle" | cut -f1)
echo "build-gpu-bundle: $bundle is ${size} MiB (limit 64)" >&2
[ "$size" -lt 64 ] || { echo "build-gpu-bundle: bundle too large to carry" >&2; exit 1; }
