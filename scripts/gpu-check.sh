#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no Rust or network: run from the bundle
# that scripts/build-gpu-bundle.sh made (.gpu-bundle/), from the repository root:
#
#   .gpu-bundle/gpu-check.sh OUTDIR
#
# Writes into OUTDIR: inventory.txt (nvidia-smi), tests.txt (every kernel and vendor backend
# against the f64 reference, odd sizes, poisoned outputs: the ignored GPU tests), list.txt
# (which backends are available and why not), gpu-check.json (the gpu-check suite verified and
# timed on every GPU backend) and summary.txt. Aims at under 5 minutes.
#
#   WATTBENCH_GPU_BACKENDS  backends to run (default: cuda,cuda-naive,cublas,cudnn)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: gpu-check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
backends=${WATTBENCH_GPU_BACKENDS:-cuda,cuda-naive,cublas,cudnn}
start=$(date +%s)
status=0

# CUDA libraries: the driver's libcuda is on the default path; NVRTC, cuBLAS and cuDNN come
# from the Python wheels next to PyTorch (nvidia-cuda-nvrtc, nvidia-cublas, nvidia-cudnn-cu13),
# or a CUDA toolkit. cudarc dlopens them by name, so they go on LD_LIBRARY_PATH.
libdirs=""
if command -v python3 >/dev/null; then
  libdirs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = []
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += glob.glob(os.path.join(sp, "nvidia", "*", "lib"))
    dirs += glob.glob(os.path.join(sp, "torch", "lib"))
print(":".join(d for d in dirs if os.path.isdir(d)))
PY
)
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libdirs="$libdirs:$d"
done
export LD_LIBRARY_PATH="${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Kernel PTX cache outside OUTDIR (which should hold only the results).
export WATTBENCH_CACHE=${WATTBENCH_CACHE:-/tmp/wattbench-cache}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >"$out/env.txt"

{
  echo "# $(date -u +%FT%TZ) $(hostname)"
  echo "# bundle commit: $(cat "$here/COMMIT" 2>/dev/null) features: $(cat "$here/FEATURES" 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
  nvidia-smi
} >"$out/inventory.txt" 2>&1 || status=1
cat "$out/inventory.txt"

echo "== GPU correctness tests (kernels and vendor backends vs the f64 reference)"
if [ -x "$here/wattbench-cuda-gpu-tests" ]; then
  timeout 120 "$here/wattbench-cuda-gpu-tests" --ignored --test-threads 1 >"$out/tests.txt" 2>&1 || status=1
  grep -E "^test |test result" "$out/tests.txt"
else
  echo "no test binary in the bundle" | tee "$out/tests.txt"
fi

echo "== backends"
timeout 60 "$here/wattbench" list >"$out/list.txt" 2>&1 || status=1
cat "$out/list.txt"

echo "== gpu-check suite on $backends"
# The suite file travels in the bundle; the CLI also knows `gpu-check` by name.
suite=gpu-check
if [ -f "$here/benchmarks/gpu-check.toml" ]; then suite="$here/benchmarks/gpu-check.toml"; fi
timeout 180 "$here/wattbench" run --suite "$suite" --backend "$backends" --output "$out/gpu-check.json" \
  >"$out/run.txt" 2>&1 || status=1
tail -n 60 "$out/run.txt"
if [ -f "$out/gpu-check.json" ]; then
  timeout 30 "$here/wattbench" report "$out/gpu-check.json" >"$out/summary.txt" 2>&1 || status=1
  cat "$out/summary.txt"
fi
echo "gpu-check: finished in $(( $(date +%s) - start )) s, status $status (suite: $suite)"
exit $status
