#!/usr/bin/env bash
# The Hopper GEMM against the mma.sync kernel and cuBLAS, on an H100/H200, from the GPU bundle
# (`make gpu-bundle`; run after gpu-check.sh, which verifies every backend first), with bash
# (file modes can be lost in transit):
#
#   bash .gpu-bundle/profile-gemm.sh OUTDIR
#
# Everything is written to a work folder (WATTBENCH_WORK, default /tmp/wb-gpu, + /profile), and
# OUTDIR receives two files (the device returns at most 8; gpu-check.sh's two may be beside
# them): profile-gemm.tgz (the work folder, packed again after every step and on exit) and
# profile-gemm-summary.txt.
#
# Within a total budget (WATTBENCH_PROFILE_BUDGET, default 240 s), each step under its own
# limit; estimates for one H200 (none measured yet: steps.txt records what each took):
#   0. a quick generic check of each wgmma backend, each in its own process; 30 s each ~10 s
#   1. the hopper-gemm suite (benchmarks/hopper-gemm.toml: bf16 4096^3, 8192^3 and the
#      Llama-2-7B MLP GEMMs at T = 1, 16, 4096: 8 cases) on cuda-wgmma, cuda-wgmma-c2 (clusters
#      of two sharing B by multicast), cuda and cublas side by side in one run, every case
#      verified first, with NVML energy over windows of at least 3 s: 32 case x backend runs
#      of about 3.5 s each, plus start-up and idle power before and after: ~125 s (at most
#      160, and leaving 80 s for step 2 where the budget allows);
#      hopper-gemm.json and hopper-gemm.md (TFLOP/s, GFLOP/J, clocks and throttle reasons);
#      a wgmma backend that faults in its generic check runs alone after the others
#      (hopper-gemm.<backend>.json), so its fault cannot cost them their results;
#   2. Nsight Compute (`ncu --clock-control none`, which leaves the clocks alone) on one
#      8192^3 bf16 product of each backend, cuda-wgmma first, then cuBLAS (the baseline),
#      cuda-wgmma-c2 and cuda: speed of light, compute and memory workload, occupancy, warp
#      states, executed instruction mix (HGMMA = wgmma, HMMA = mma.sync), every section's
#      details where ncu knows --print-details: ncu.txt; 60 s
#      each, skipped when under 30 s are left                              ~4 x 20 = ~80 s
#   3. a summary: summary.txt (ours / cuBLAS per case, the profile's headline figures).
# Total of the estimates: about 215 s of the 240.
#
# Without a GPU it runs as a dry run and says why each step cannot measure. Exit status: 0
# when every step that could run succeeded, 1 when one failed, 2 for bad usage, 130 / 143 when
# stopped by SIGINT / SIGTERM (the results so far packed).
#
#   WATTBENCH_PROFILE_BUDGET  total seconds (default 240)
#   WATTBENCH_WORK            the work folder's parent (default /tmp/wb-gpu)
# shellcheck disable=SC2317 # on_exit runs from the trap
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] && [ -n "$1" ] || { echo "usage: profile-gemm.sh OUTDIR (the folder that gets the results)" >&2; exit 2; }
out=$1
mkdir -p "$out" || { echo "profile-gemm.sh: cannot make $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
budget=${WATTBENCH_PROFILE_BUDGET:-240}
start=$(date +%s)
status=0
bin=$here/wattbench
# Execute bits can be lost in transit.
chmod +x "$bin" 2>/dev/null
suite=$here/benchmarks/hopper-gemm.toml
[ -f "$suite" ] || suite=$here/../benchmarks/hopper-gemm.toml
work=${WATTBENCH_WORK:-/tmp/wb-gpu}/profile
# The work folder is emptied first: only one this script made (its marker inside).
if [ -d "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.wattbench-profile-gemm" ]; then
  echo "profile-gemm: $work exists and is not a folder of this script; set WATTBENCH_WORK" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work"
touch "$work/.wattbench-profile-gemm"
: >"$work/steps.txt"
scratch=$(mktemp -d /tmp/wattbench-profile.XXXXXX)
export WATTBENCH_CACHE=${WATTBENCH_CACHE:-/tmp/wattbench-cache}
export RUST_BACKTRACE=1
gpu=0
summarised=0

# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"
# The summary (step 3), written last, or by the exit trap when the run stops early.
cat >"$scratch/summary.py" <<'PY'
import json, os, re, sys
out, gpu, status, secs, incomplete = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], sys.argv[5]
verdict = ("OK" if status == 0 else "FAILED") if gpu else "DRY RUN, NOTHING MEASURED (no GPU on this machine)"
if incomplete:
    verdict = (f"INCOMPLETE, {incomplete}: "
               + ("no verdict (nothing had failed before the stop)" if status == 0 else "FAILED before the stop")
               + ("" if gpu else "; a dry run"))
print(f"wattbench Hopper GEMM profile: {verdict}, {secs} s")
steps = [l.split(",")[0] for l in open(os.path.join(out, "steps.txt")).read().splitlines()]
print("seconds per step (steps.txt): " + ", ".join(s.replace(": ", " ").replace(" s", "") for s in steps))
path = os.path.join(out, "hopper-gemm.json")
if os.path.exists(path):
    try:
        doc = json.load(open(path))
    except Exception as e:
        sys.exit(f"hopper-gemm.json unreadable ({e})")
    cases = doc.get("cases", [])
    for wb in ("cuda-wgmma", "cuda-wgmma-c2"):
        alone = os.path.join(out, f"hopper-gemm.{wb}.json")
        if os.path.exists(alone):
            print(f"{wb} faulted in its generic check and ran alone (hopper-gemm.{wb}.json):"
                  " its ratios below come from another process, not side by side")
            cases = cases + json.load(open(alone)).get("cases", [])
    ok = {(c["backend"], c.get("tag")): c for c in cases if c["status"] == "ok"}
    # Failures one by one; skips grouped by their reason.
    bad = [c for c in cases if c["status"] == "failed"]
    for c in bad[:12]:
        print(f"  {c['backend']:<13} {c.get('tag')}: FAILED: {(c.get('reason') or '')[:160]}")
    if len(bad) > 12:
        print(f"  ... and {len(bad) - 12} more failed (hopper-gemm.md lists them)")
    why = {}
    for c in cases:
        if c["status"] == "skipped":
            why.setdefault(c.get("reason") or "no reason given", []).append(f"{c['backend']} {c.get('tag')}")
    for r, ids in list(why.items())[:6]:
        print(f"  skipped {len(ids)} (e.g. {ids[0]}): {r[:160]}")
    tags = sorted({t for (_, t) in ok}, key=str)
    print(f"{'case':<18} {'backend':<13} {'TFLOP/s':>8} {'vs cublas':>9} {'GFLOP/J':>8}  (GFLOP/J: the GPU's energy counter)")
    for t in tags:
        base = ok.get(("cublas", t))
        for b in ("cuda-wgmma", "cuda-wgmma-c2", "cuda", "cublas"):
            c = ok.get((b, t))
            if not c:
                continue
            tf = c["throughput"]["gflops_per_s"] / 1e3
            rel = f"{tf / (base['throughput']['gflops_per_s'] / 1e3):.3f}" if base else "-"
            # The GPU's counter alone (the run's total adds the CPU estimate).
            js = [d.get("joules_per_iter") for d in (c.get("energy") or {}).get("domains") or []
                  if d["name"].startswith("gpu")]
            e = f"{c['throughput']['flops'] / sum(js) / 1e9:.1f}" if js and None not in js and sum(js) > 0 else "-"
            impl = c.get("implementation") or ""
            impl = impl if b.startswith("cuda-wgmma") else ""  # width, cluster, split K
            print(f"{t:<18} {b:<13} {tf:8.1f} {rel:>9} {e:>8}  {impl}")
else:
    print("suite: no result file")
try:
    ncu = open(os.path.join(out, "ncu.txt")).read().splitlines()
except OSError:
    ncu = ["SKIP ncu: not run (the profile stopped before it)"]
cur = None
for l in ncu:
    if l.startswith("####") or l.startswith("SKIP"):
        cur = l
        print(l)
    elif l.startswith("ncu on"):
        print("   " + l)
    elif re.search(r"^\s+(Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per Thread|Achieved Occupancy)\b", l):
        print("   " + " ".join(l.split()))
print("files (in profile-gemm.tgz): " + " ".join(sorted(f for f in os.listdir(out) if not f.startswith("."))))
PY
summary() { # [WHY INCOMPLETE]
  python3 "$scratch/summary.py" "$work" "$gpu" "$status" "$(elapsed)" "${1:-}" >"$work/summary.txt" 2>&1
}
on_exit() {
  local rc=$?
  [ "$summarised" = 1 ] || summary "stopped early (exit $rc)"
  wb_pack "$work" "$out" profile-gemm
  rm -rf "$scratch"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
step_done() { # NAME T0 NOTE: a line in steps.txt, and the work folder packed
  echo "$1: $(($(date +%s) - $2)) s, $3" >>"$work/steps.txt"
  # A summary at every step, so that a run killed from outside (no trap runs) still returns one.
  summary "in progress: the run was stopped from outside after step $1"
  wb_pack "$work" "$out" profile-gemm
}
wb_cuda_libs
if command -v nvidia-smi >/dev/null && limit 30 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu=1; fi
[ "$gpu" = 1 ] || echo "no NVIDIA GPU here: a dry run (each step says why it cannot measure)"

# ---- 1. the suite, side by side -------------------------------------------------------------
# A fault of a wgmma kernel (a watchdog `trap`, an illegal address) would poison the CUDA
# context of the process, and with it every later case of the other backends: each wgmma
# backend's generic check runs first in a process of its own, and one that faults runs the
# suite alone after the others (hopper-gemm.<backend>.json).
t0=$(date +%s)
backends=cuda,cublas
alone=""
for wb in cuda-wgmma cuda-wgmma-c2; do
  WB_KILL_AFTER=5 limit 30 "$bin" check --backend "$wb" --device cuda:0 --op gemm --model none \
    >"$scratch/check.txt" 2>&1
  rc=$?
  if [ "$gpu" = 1 ] && wb_faulted "$scratch/check.txt" $rc; then
    echo "$wb faulted in its generic check (exit $rc): it runs alone, after the others"
    grep -E '^FAIL|CUDA' "$scratch/check.txt" | head -n 3
    cp "$scratch/check.txt" "$work/check.$wb.txt"
    alone="$alone $wb"
  else
    backends=$wb,$backends
  fi
done
step_done wgmma-checks "$t0" "alone:${alone:- none}"
suite_run() { # BACKENDS OUTPUT SECONDS
  local rc t0 name
  name=$(basename "$2" .json)
  say "hopper-gemm suite on $1 (limit $3 s)"
  t0=$(date +%s)
  WB_KILL_AFTER=10 limit "$3" "$bin" run --suite "$suite" --backend "$1" --device cuda \
    --energy-window 3 --output "$2" >"$work/run.$name.txt" 2>&1
  rc=$?
  tail -n 4 "$work/run.$name.txt"
  case $rc in
    0) ;;
    3) if [ "$gpu" = 1 ]; then
         echo "every case was skipped (not a Hopper GPU?): see the reasons above"
         status=1
       else
         echo "SKIPPED: no GPU, nothing could run (exit 3)"
       fi ;;
    124 | 137 | 130 | 143)
      status=1
      if [ -f "$2" ]; then echo "hit its $3 s time limit: the completed cases are in $(basename "$2") (interrupted)"
      else echo "hit its $3 s time limit before any result file was written"; fi ;;
    *) status=1 ;;
  esac
  step_done "suite-$name" "$t0" "exit $rc"
}
# 32 runs of about 3.5 s (a 3 s energy window, verification, warm-up) and about 10 s of
# start-up and idle power: about 125 s.
# Nsight Compute's four profiles (step 2, the point of this script) keep about 20 s each: the
# suite gets what is left above that, at most 160 s, at least 60 (a short budget then leaves
# the profiles less, and the last ones are skipped).
ncu_reserve=80
suite_s=$(($(left) - ncu_reserve))
[ "$suite_s" -gt 160 ] && suite_s=160
[ "$suite_s" -lt 60 ] && suite_s=60
if [ -z "$alone" ]; then
  suite_run "$backends" "$work/hopper-gemm.json" "$suite_s"
else
  suite_run "$backends" "$work/hopper-gemm.json" $((suite_s * 2 / 3))
  for wb in $alone; do
    suite_run "$wb" "$work/hopper-gemm.$wb.json" 45
  done
fi
if [ -f "$work/hopper-gemm.json" ]; then
  limit 30 "$bin" report "$work/hopper-gemm.json" --output "$work/hopper-gemm.md" >/dev/null 2>"$work/report.err" ||
    { status=1; echo "report of hopper-gemm.json failed: $(head -c 300 "$work/report.err")"; }
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
t0=$(date +%s)
{
  if [ -z "$ncu" ]; then
    echo "SKIP ncu: not found (PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-compute)"
  elif [ "$gpu" != 1 ]; then
    echo "SKIP ncu: no GPU"
  else
    # Our Hopper kernel first (what this profile is for), then cuBLAS, the baseline: when the
    # budget runs short, the later ones are the ones left out. Our kernels by name; cuBLAS
    # launches nothing else in its case, so its first kernel after the verification call is the
    # GEMM. A wgmma backend that faulted in its generic check is not profiled (its fault would
    # end the profile too). Every section's body (instruction mix, warp stalls), where this
    # ncu knows --print-details.
    details=()
    ncu_help=$("$ncu" --help 2>&1)
    grep -q -- '--print-details' <<<"$ncu_help" && details=(--print-details all)
    for spec in "cuda-wgmma regex:gemm_wgmma" "cublas regex:." "cuda-wgmma-c2 regex:gemm_wgmma_c2" "cuda regex:gemm_tc"; do
      b=${spec%% *}
      k=${spec#* }
      echo "#### $b ($k)"
      case " $alone " in *" $b "*) echo "SKIP: $b faulted in its generic check"; continue ;; esac
      if [ "$(left)" -lt 30 ]; then echo "SKIP: the time budget is spent"; continue; fi
      WB_KILL_AFTER=10 limit 60 "$ncu" --clock-control none "${details[@]}" --kernel-name "$k" --launch-skip 1 --launch-count 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
        --section Occupancy --section LaunchStats --section WarpStateStats --section InstructionStats \
        "$bin" run --suite "$scratch/one.toml" --backend "$b" --device cuda:0 --no-nvml \
        --min-time 0 --min-samples 3 --max-time 2 --warmup 0 -o "$scratch/$b.json" >"$scratch/ncu.$b.txt" 2>&1
      rc=$?
      grep -vE '^(==PROF==|  [a-z0-9-]+ +cuda:0 +gemm)' "$scratch/ncu.$b.txt"
      [ $rc -eq 0 ] || { echo "ncu on $b: exit $rc"; status=1; }
    done
  fi
} >"$work/ncu.txt" 2>&1
grep -E '^(####|SKIP|ncu on)|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per Thread' "$work/ncu.txt" | head -n 24
step_done ncu "$t0" "$(grep -c '^####' "$work/ncu.txt") backends"

# ---- 3. summary ---------------------------------------------------------------------------------
summary
summarised=1
cat "$work/summary.txt"
exit $status
