#!/usr/bin/env bash
# The Hopper GEMM against the mma.sync kernel and cuBLAS, on an H100/H200, from the GPU bundle
# (`make gpu-bundle`; run after gpu-check.sh, which verifies every backend first):
#
#   .gpu-bundle/profile-gemm.sh OUTDIR
#
# Within a total budget (WATTBENCH_PROFILE_BUDGET, default 240 s), each step under its own limit:
#   1. the hopper-gemm suite (benchmarks/hopper-gemm.toml: bf16 4096^3, 8192^3 and the
#      Llama-2-7B MLP GEMMs at T = 1, 16, 4096) on cuda-wgmma, cuda-wgmma-c2 (clusters of two
#      sharing B by multicast), cuda and cublas side by side in one run, every case verified first, with NVML energy over windows of at least 3 s:
#      hopper-gemm.json and hopper-gemm.md (TFLOP/s, GFLOP/J, clocks and throttle reasons);
#      a wgmma backend that faults in a quick generic check first runs alone after the
#      others (hopper-gemm.<backend>.json), so its fault cannot cost them their results;
#   2. Nsight Compute (`ncu --clock-control none`, which leaves the clocks alone) on one
#      8192^3 bf16 product of each backend: speed of light, compute and memory workload,
#      occupancy, warp states, executed instruction mix (HGMMA = wgmma, HMMA = mma.sync):
#      ncu.txt;
#   3. a summary: summary.txt (ours / cuBLAS per case, the profile's headline figures).
#
# Without a GPU it runs as a dry run and says why each step cannot measure. Exit status: 0
# when every step that could run succeeded.
#
#   WATTBENCH_PROFILE_BUDGET  total seconds (default 240)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: profile-gemm.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
budget=${WATTBENCH_PROFILE_BUDGET:-240}
start=$(date +%s)
status=0
bin=$here/wattbench
suite=$here/benchmarks/hopper-gemm.toml
[ -f "$suite" ] || suite=$here/../benchmarks/hopper-gemm.toml
scratch=$(mktemp -d /tmp/wattbench-profile.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export WATTBENCH_CACHE=${WATTBENCH_CACHE:-/tmp/wattbench-cache}
export RUST_BACKTRACE=1

# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"
wb_cuda_libs
gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu=1; fi
[ "$gpu" = 1 ] || echo "no NVIDIA GPU here: a dry run (each step says why it cannot measure)"

# ---- 1. the suite, side by side -------------------------------------------------------------
# A fault of a wgmma kernel (a watchdog `trap`, an illegal address) would poison the CUDA
# context of the process, and with it every later case of the other backends: each wgmma
# backend's generic check runs first in a process of its own, and one that faults runs the
# suite alone after the others (hopper-gemm.<backend>.json).
backends=cuda,cublas
alone=""
for wb in cuda-wgmma cuda-wgmma-c2; do
  limit 60 "$bin" check --backend "$wb" --device cuda:0 --op gemm --model none \
    >"$scratch/check.txt" 2>&1
  rc=$?
  if wb_faulted "$scratch/check.txt" $rc; then
    echo "$wb faulted in its generic check (exit $rc): it runs alone, after the others"
    grep -E '^FAIL' "$scratch/check.txt" | head -n 3
    alone="$alone $wb"
  else
    backends=$wb,$backends
  fi
done
suite_run() { # BACKENDS OUTPUT SECONDS
  say "hopper-gemm suite on $1"
  limit "$3" "$bin" run --suite "$suite" --backend "$1" --device cuda \
    --energy-window 3 --output "$2" >"$scratch/run.txt" 2>&1
  local rc=$?
  tail -n 4 "$scratch/run.txt"
  case $rc in
    0) ;;
    3) echo "every case was skipped (no GPU, or not a Hopper GPU): see the reasons above" ;;
    *) status=1 ;;
  esac
}
if [ -z "$alone" ]; then
  suite_run "$backends" "$out/hopper-gemm.json" 150
else
  suite_run "$backends" "$out/hopper-gemm.json" 90
  for wb in $alone; do
    suite_run "$wb" "$out/hopper-gemm.$wb.json" 45
  done
fi
if [ -f "$out/hopper-gemm.json" ]; then
  "$bin" report "$out/hopper-gemm.json" --output "$out/hopper-gemm.md" >/dev/null 2>&1 || status=1
fi

# ---- 2. Nsight Compute on one 8192^3 product each ---------------------------------------------
say "ncu"
ncu=$(wb_tool ncu) || ncu=""
cat >"$scratch/one.toml" <<'EOF'
name = "gemm8192-bf16"
description = "one 8192^3 bf16 GEMM, for the profiler"
dtypes = ["bf16"]
modes = ["infer"]
gemm = [{ tag = "gemm8192", m = 8192, n = 8192, k = 8192 }]
EOF
{
  if [ -z "$ncu" ]; then
    echo "SKIP ncu: not found (PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-compute)"
  elif [ "$gpu" != 1 ]; then
    echo "SKIP ncu: no GPU"
  else
    # Our kernels by name; cuBLAS launches nothing else in its case, so its first kernel after
    # the verification call is the GEMM.
    for spec in "cuda-wgmma regex:gemm_wgmma" "cuda-wgmma-c2 regex:gemm_wgmma_c2" "cuda regex:gemm_tc" "cublas regex:."; do
      b=${spec%% *}
      k=${spec#* }
      echo "#### $b ($k)"
      if [ "$(left)" -lt 30 ]; then echo "SKIP: the time budget is spent"; continue; fi
      limit 90 "$ncu" --clock-control none --kernel-name "$k" --launch-skip 1 --launch-count 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section Occupancy --section LaunchStats --section WarpStateStats --section InstructionStats \
        "$bin" run --suite "$scratch/one.toml" --backend "$b" --device cuda:0 --no-nvml \
        --min-time 0 --min-samples 3 --max-time 2 --warmup 0 -o "$scratch/$b.json" 2>&1 |
        grep -vE '^(==PROF==|  [a-z0-9-]+ +cuda:0 +gemm)' || status=1
    done
  fi
} >"$out/ncu.txt" 2>&1
grep -E '^(####|SKIP)|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per Thread' "$out/ncu.txt" | head -n 24

# ---- 3. summary ---------------------------------------------------------------------------------
python3 - "$out" "$gpu" "$status" "$(($(date +%s) - start))" >"$out/summary.txt" 2>&1 <<'PY'
import json, os, re, sys
out, gpu, status, secs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
print(f"wattbench Hopper GEMM profile: {'OK' if status == 0 else 'FAILED'}"
      f"{'' if gpu else ' (DRY RUN: no GPU on this machine)'}, {secs} s")
path = os.path.join(out, "hopper-gemm.json")
if os.path.exists(path):
    doc = json.load(open(path))
    cases = doc.get("cases", [])
    for wb in ("cuda-wgmma", "cuda-wgmma-c2"):
        alone = os.path.join(out, f"hopper-gemm.{wb}.json")
        if os.path.exists(alone):
            print(f"{wb} faulted in its generic check and ran alone (hopper-gemm.{wb}.json):"
                  " its ratios below come from another process, not side by side")
            cases = cases + json.load(open(alone)).get("cases", [])
    ok = {(c["backend"], c.get("tag")): c for c in cases if c["status"] == "ok"}
    bad = [c for c in cases if c["status"] != "ok"]
    for c in bad[:12]:
        print(f"  {c['backend']:<10} {c.get('tag')}: {c['status']}: {(c.get('reason') or '')[:160]}")
    if len(bad) > 12:
        print(f"  ... and {len(bad) - 12} more not ok (hopper-gemm.md lists them)")
    tags = sorted({t for (_, t) in ok}, key=str)
    print(f"{'case':<18} {'backend':<10} {'TFLOP/s':>8} {'vs cublas':>9} {'GFLOP/J':>8}")
    for t in tags:
        base = ok.get(("cublas", t))
        for b in ("cuda-wgmma", "cuda-wgmma-c2", "cuda", "cublas"):
            c = ok.get((b, t))
            if not c:
                continue
            tf = c["throughput"]["gflops_per_s"] / 1e3
            rel = f"{tf / (base['throughput']['gflops_per_s'] / 1e3):.3f}" if base else "-"
            e = (c.get("energy") or {}).get("gflops_per_joule")
            e = "-" if e is None else f"{e:.1f}"
            impl = c.get("implementation") or ""
            impl = impl if b.startswith("cuda-wgmma") else ""  # width, cluster, split K
            print(f"{t:<18} {b:<10} {tf:8.1f} {rel:>9} {e:>8}  {impl}")
else:
    print("suite: no result file")
ncu = open(os.path.join(out, "ncu.txt")).read().splitlines()
cur = None
for l in ncu:
    if l.startswith("####") or l.startswith("SKIP"):
        cur = l
        print(l)
    elif re.search(r"^\s+(Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per Thread|Achieved Occupancy)\b", l):
        print("   " + " ".join(l.split()))
print("files: " + " ".join(sorted(os.listdir(out))))
PY
cat "$out/summary.txt"
exit $status
