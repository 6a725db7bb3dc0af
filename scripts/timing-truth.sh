#!/usr/bin/env bash
# Why wattbench's cuBLAS bf16 medians read slower than PyTorch's CUDA-event timing of the same
# product (gpu-check.sh's timing truth: 1.15x at 8192^3 on the H200 of 2026-11-30), from the GPU
# bundle, with bash:
#
#   bash scripts/timing-truth.sh OUTDIR   (from the repository root, .gpu-bundle/ built and carried)
#
# Both tools time the same bf16 GEMMs (4096^3, 8192^3) twice: as a short burst on a cool GPU
# (torch: 5 warm-up calls and 30 timed, as gpu-check.sh does; wattbench: 10 ms of warm-up and
# about 50 ms of samples) and as a sustained load (torch: 10 s of back-to-back calls, each
# timed; wattbench: its defaults, 1 s of warm-up then a >= 2 s energy window), while
# nvidia-smi logs SM clock, power and the clock-event (throttle) reasons every 100 ms. If the
# burst figures agree and the sustained ones agree, the gap is the power cap's clock drop over a
# sustained load, not the library call or the timing. OUTDIR gets smi.csv, torch-burst.json,
# torch-sustained.json, wb-burst.json, wb-sustained.json and log.txt (6 files).
#
# Its run of 2026-11-30 is in results/gpu/2026-11-30-h200/timing-truth/ (explained in that
# folder's README). There the wattbench "burst" was not one: `run` samples at least NVML's 2 s
# energy window whatever --energy-window asks, so both wattbench runs are sustained; torch's
# per-call trace carries the comparison (its first 0.1 s against seconds 1-3).
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: timing-truth.sh OUTDIR" >&2; exit 2; }
out=$1
mkdir -p "$out" || exit 2
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=$root/.gpu-bundle
start=$(date +%s)
# shellcheck source=scripts/gpu-env.sh
. "$bundle/gpu-env.sh"
wb_cuda_libs
exec > >(tee "$out/log.txt") 2>&1
stamp() { echo "== $* (t=$(date +%s.%N | cut -c1-14))"; }

fields=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active
nvidia-smi --query-gpu=$fields --format=csv,noheader >/dev/null 2>&1 ||
  fields=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active
echo "# $fields" >"$out/smi.csv"
nvidia-smi --query-gpu=$fields --format=csv,noheader,nounits -lms 100 >>"$out/smi.csv" 2>&1 &
smi=$!

suite=$(mktemp /tmp/timing-truth.XXXXXX.toml)
cat >"$suite" <<'TOML'
name = "timing-truth"
description = "bf16 4096^3 and 8192^3 GEMMs, the gpu-check suite's, for the timing cross-check"
dtypes = ["bf16"]
modes = ["infer"]
gemm = [
  { tag = "gemm4096", m = 4096, n = 4096, k = 4096 },
  { tag = "gemm8192", m = 8192, n = 8192, k = 8192 },
]
TOML

torch_time() { # MODE (burst | sustained) > JSON
  NVIDIA_TF32_OVERRIDE=0 timeout 60 "$wb_py" - "$1" <<'PY'
import json, statistics, sys, time
import torch
mode = sys.argv[1]
mm = torch.backends.cuda.matmul
mm.allow_bf16_reduced_precision_reduction = False
out = {"torch": torch.__version__, "mode": mode, "gemm": []}
for n in (4096, 8192):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    calls = []  # (seconds since this size's first call, seconds of the call)
    t0 = time.time()
    if mode == "burst":
        for _ in range(5):
            torch.mm(a, b)
        reps = 30
    while True:
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); torch.mm(a, b); e.record(); e.synchronize()
        calls.append((time.time() - t0, s.elapsed_time(e) / 1e3))
        if mode == "burst" and len(calls) == reps:
            break
        if mode == "sustained" and calls[-1][0] > 10.0:
            break
    def summary(sel):
        ts = [c for _, c in sel]
        med = statistics.median(ts)
        return {"calls": len(ts), "median_s": med, "tflops": 2 * n**3 / med / 1e12}
    row = {"n": n, "unix_start": t0, "all": summary(calls)}
    if mode == "sustained":
        row["first_0.1s"] = summary([c for c in calls if c[0] < 0.1])
        row["1s_to_3s"] = summary([c for c in calls if 1.0 <= c[0] < 3.0])
        row["8s_to_10s"] = summary([c for c in calls if 8.0 <= c[0] < 10.0])
        row["per_call"] = [[round(t, 4), round(c * 1e6, 1)] for t, c in calls[::10]]
    out["gemm"].append(row)
    del a, b
    if mode == "sustained":
        time.sleep(8)  # cool down before the next size
print(json.dumps(out))
PY
}

sleep 4
stamp "torch burst"
torch_time burst >"$out/torch-burst.json"
sleep 6
stamp "wattbench burst"
timeout 90 bash "$bundle/wb" run --suite "$suite" --backend cublas --device cuda \
  --warmup 0.01 --min-time 0.05 --min-samples 20 --max-time 0.2 --energy-window 0.05 \
  -o "$out/wb-burst.json"
sleep 6
stamp "torch sustained"
torch_time sustained >"$out/torch-sustained.json"
sleep 8
stamp "wattbench sustained (defaults)"
timeout 90 bash "$bundle/wb" run --suite "$suite" --backend cublas --device cuda \
  -o "$out/wb-sustained.json"
sleep 2
kill "$smi" 2>/dev/null
stamp "done in $(($(date +%s) - start)) s"
python3 - "$out" <<'PY'
import json, os, sys
o = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(o, n)))
    except Exception as e:
        return {"error": str(e)}
tb, ts = load("torch-burst.json"), load("torch-sustained.json")
for name in ("wb-burst.json", "wb-sustained.json"):
    d = load(name)
    for c in d.get("cases", []):
        t = c.get("time") or {}
        print(name, c.get("id"), c.get("status"), json.dumps({k: t.get(k) for k in ("median_s", "ci95_median_s", "iters_per_sample")}), len(t.get("samples_s") or []), "samples")
for r in tb.get("gemm", []):
    print("torch burst", r["n"], r["all"])
for r in ts.get("gemm", []):
    print("torch sustained", r["n"], {k: r[k] for k in ("all", "first_0.1s", "1s_to_3s", "8s_to_10s")})
PY
sleep 1 # let tee finish log.txt
