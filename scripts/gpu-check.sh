#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no Rust or network. Run it from the
# bundle that `make gpu-bundle` built (.gpu-bundle/, carried to the GPU machine):
#
#   .gpu-bundle/gpu-check.sh OUTDIR
#
# It runs, each step under its own time limit, within a total budget (WATTBENCH_CHECK_BUDGET,
# default 330 s, so that one rerun fits in a 15-minute device lease):
#   1. inventory: nvidia-smi, the CUDA library set chosen (pip wheels or the toolkit, never a
#      mix), `wattbench list` and `info`;
#   2. every GPU test of wattbench-cuda, each in its own process (a fault in one kernel is
#      reported against that test only);
#   3. `wattbench check` (the generic correctness checks of the test suite) on every GPU
#      backend, one process per backend and op, and per trainer;
#   4. the gpu-check suite verified and timed on every GPU backend side by side, one result
#      file (a time limit sends SIGINT first: the completed cases are written, marked
#      interrupted); a backend whose generic check in step 3 hit a CUDA error or crashed runs
#      it in a process of its own afterwards (its kernel fault cannot poison the others' CUDA
#      context);
#   4b. energy truth: a 12 s steady cuBLAS GEMM under `wattbench measure`, which sets each
#      GPU's energy counter beside the integral of its power readings over the same span,
#      with the run's idle power, clocks, temperature, throttle reasons and J per GEMM;
#   5. PyTorch's own CUDA-event timing of the same GEMMs, when torch is importable;
#   6. compute-sanitizer memcheck over the small GPU tests, where the tool exists and time is
#      left;
#   7. a one-screen summary, printed last.
#
# OUTDIR receives: summary.txt env.txt tests.txt gpu-check.json gpu-check.md run.txt
# torch.txt energy-truth.{json,csv,txt} energy-truth-run.json, and gpu-check.<backend>.json
# with run.<backend>.txt per backend run alone. Without a GPU the same script runs as a dry run: every step runs and
# says why it cannot test anything. Exit status: 0 when everything that could run passed. On a
# GPU machine, the check also fails when it would otherwise pass having checked nothing: no GPU
# test listed or no test binary (step 2), or a backend whose `wattbench check` finds its device
# unavailable (step 3: the bundle is built with every GPU backend, so that is a broken library
# set or build, and nothing else runs candle's or tch's CUDA checks), unless it is optional.
#
#   WATTBENCH_GPU_BACKENDS  backends to check (default: cuda,cuda-wgmma,cuda-wgmma-c2,cuda-naive,cublas,cudnn,tch,candle)
#   WATTBENCH_GPU_OPTIONAL  backends that may be unavailable on a GPU machine without failing
#                           the check, comma-separated (default: none; e.g. tch where only a
#                           CPU-only libtorch is at hand); cuda-wgmma and cuda-wgmma-c2 are
#                           added on a GPU whose compute capability is not 9.0 (they are Hopper
#                           kernels: their devices are unavailable elsewhere, with the reason)
#   WATTBENCH_CHECK_BUDGET  total seconds (default 330)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: gpu-check.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
backends=${WATTBENCH_GPU_BACKENDS:-cuda,cuda-wgmma,cuda-wgmma-c2,cuda-naive,cublas,cudnn,tch,candle}
optional=${WATTBENCH_GPU_OPTIONAL:-}
budget=${WATTBENCH_CHECK_BUDGET:-330}
start=$(date +%s)
status=0
bin=$here/wattbench
tests_bin=$here/wattbench-cuda-gpu-tests
scratch=$(mktemp -d /tmp/wattbench-gpu-check.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
: >"$out/tests.txt"

export RUST_BACKTRACE=1
# Kernel PTX cache outside OUTDIR (which holds only the results).
export WATTBENCH_CACHE=${WATTBENCH_CACHE:-/tmp/wattbench-cache}

# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"

# ---- 1. inventory, and one set of CUDA libraries --------------------------------------------
say "inventory"
gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu=1; fi
if [ "$gpu" = 1 ]; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')
  [ "$cc" = 9.0 ] || optional="${optional:+$optional,}cuda-wgmma,cuda-wgmma-c2"
fi
wb_cuda_libs
{
  echo "# $(date -u +%FT%TZ) $(hostname)"
  echo "# bundle commit: $(cat "$here/COMMIT" 2>/dev/null) features: $(cat "$here/FEATURES" 2>/dev/null)"
  echo "gpu: $gpu"
  echo "cuda library set: $kind"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  for lib in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 \
    libnvrtc.so.13 libcurand.so.10 libtorch_cuda.so libtorch_cpu.so; do
    found=""
    IFS=: read -r -a path <<<"$LD_LIBRARY_PATH"
    for d in "${path[@]}"; do
      [ -n "$d" ] && [ -e "$d/$lib" ] && { found=$(readlink -f "$d/$lib"); break; }
    done
    [ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}')
    echo "resolves: $lib -> ${found:-not found}"
  done
  command -v nvidia-smi >/dev/null && {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
    nvidia-smi
  }
  echo "== wattbench list"
  "$bin" list
  echo "== wattbench info"
  "$bin" info
} >"$out/env.txt" 2>&1 || status=1
sed -n '1,12p' "$out/env.txt"
[ "$gpu" = 1 ] || echo "no NVIDIA GPU here: a dry run (every GPU step says why it cannot test)"

# ---- 2. GPU tests, each in its own process --------------------------------------------------
say "GPU tests (each in its own process)"
{
  echo "## 2. GPU tests of wattbench-cuda, each in its own process"
  if [ -x "$tests_bin" ]; then
    "$tests_bin" --list --ignored 2>"$scratch/list.err" | sed -n 's/: test$//p' >"$scratch/tests"
    if [ ! -s "$scratch/tests" ]; then
      # A test binary that does not start, or a list format this script does not read.
      echo "FAIL no GPU test listed by $(basename "$tests_bin") --list --ignored"
      tail -n 10 "$scratch/list.err" | sed 's/^/    /'
    fi
    while read -r t; do
      [ -n "$t" ] || continue
      # The Hopper GEMM's tests need compute capability 9.0: elsewhere they are skipped, named.
      if [ "$gpu" = 1 ] && [ "${cc:-}" != 9.0 ] && [[ $t == *wgmma* ]]; then
        echo "SKIP $t (the Hopper GEMM needs compute capability 9.0; this GPU is ${cc:-unknown})"
        continue
      fi
      t0=$(date +%s)
      limit 120 "$tests_bin" --ignored --exact "$t" --test-threads 1 >"$scratch/log" 2>&1
      rc=$?
      dt=$(( $(date +%s) - t0 ))
      if [ $rc -eq 0 ]; then
        echo "PASS $t (${dt} s)"
      else
        echo "FAIL $t (exit $rc, ${dt} s)"
        grep -v '^\s*$' "$scratch/log" | tail -n 25 | sed 's/^/    /'
      fi
    done <"$scratch/tests"
  elif [ "$gpu" = 1 ]; then
    echo "FAIL no test binary in the bundle ($(basename "$tests_bin"))"
  else
    echo "SKIP no test binary in the bundle"
  fi
} >>"$out/tests.txt"
grep -cE '^PASS' "$out/tests.txt" | sed 's/^/passed: /'
grep -E '^FAIL' "$out/tests.txt" | head -n 20

# ---- 3. the generic checks on every backend --------------------------------------------------
say "wattbench check on $backends"
suspects=""  # the backends whose checks faulted (wb_faulted)
# An unavailable device (exit 2 of `wattbench check`, which also ends a refused selection;
# the reason on its last line): a failure on a GPU machine unless the backend is optional
# (WATTBENCH_GPU_OPTIONAL); n/a in a dry run.
unavailable() { # BACKEND WHAT LOG
  echo "UNAVAILABLE $1/cuda:0 $2 (exit 2): $(tail -n 1 "$3")"
  case ",$optional," in *",$1,"*) return ;; esac
  if [ "$gpu" = 1 ]; then
    echo "    fails the check: a GPU is here (WATTBENCH_GPU_OPTIONAL lists the backends that may be unavailable)"
    status=1
  fi
}
{
  echo "## 3. wattbench check (the test suite's generic checks), one process per backend and op"
  IFS=, read -r -a bs <<<"$backends"
  for b in "${bs[@]}"; do
    for op in gemm conv2d rnn; do
      limit 150 "$bin" check --backend "$b" --device cuda:0 --op "$op" --model none \
        >"$scratch/log" 2>&1
      rc=$?
      wb_faulted "$scratch/log" $rc && suspects="$suspects $b"
      case $rc in
        0) grep -E '^(ok|FAIL|skip)' "$scratch/log" ;;
        2) unavailable "$b" "$op" "$scratch/log" ;;
        *) grep -E '^(ok|FAIL|skip)' "$scratch/log"
           echo "FAIL $b/cuda:0 $op: exit $rc"
           grep -vE '^(ok|FAIL|      )' "$scratch/log" | tail -n 20 | sed 's/^/    /' ;;
      esac
    done
    # Trainers, for the backends that train (the others say so and are skipped).
    if "$bin" list --json 2>/dev/null | python3 -c "import json,sys; sys.exit(0 if any(b['name']=='$b' and b.get('trains') for b in json.load(sys.stdin)['backends']) else 1)" 2>/dev/null; then
      limit 150 "$bin" check --backend "$b" --device cuda:0 --op none >"$scratch/log" 2>&1
      rc=$?
      wb_faulted "$scratch/log" $rc && suspects="$suspects $b"
      grep -E '^(ok|FAIL).*trainer' "$scratch/log"
      [ $rc -eq 2 ] && unavailable "$b" trainer "$scratch/log"
    fi
  done
} >>"$out/tests.txt"
grep -cE '^ok' "$out/tests.txt" | sed 's/^/checks ok: /'
grep -E '^(FAIL|UNAVAILABLE)' "$out/tests.txt" | sed -n '1,12p'

# ---- 4. the suite, side by side ---------------------------------------------------------------
# A kernel fault (a watchdog `trap`, an illegal address) poisons the process's CUDA context, and
# with it every later case of every backend in that process. So the side-by-side run takes the
# backends whose generic checks (step 3) did not fault (wb_faulted); each of the others then
# runs the suite in a process of its own (gpu-check.<backend>.json), so that what works of it
# is still measured without costing the others their results.
suspects=$(printf "%s\n" $suspects | sort -u | xargs)
together=""
IFS=, read -r -a bs <<<"$backends"
for b in "${bs[@]}"; do
  case " $suspects " in
    *" $b "*) ;;
    *) together=${together:+$together,}$b ;;
  esac
done
[ -n "$suspects" ] && echo "run alone (a generic check hit a CUDA error or crashed): $suspects"
suite=gpu-check
[ -f "$here/benchmarks/gpu-check.toml" ] && suite="$here/benchmarks/gpu-check.toml"
suite_run() { # BACKENDS OUTPUT LOG SECONDS
  limit "$4" "$bin" run --suite "$suite" --backend "$1" --device cuda --output "$2" >"$3" 2>&1
  case $? in
    0) ;;
    130|124|143) echo "the suite on $1 hit its time limit: the completed cases are in $(basename "$2") (interrupted)"; status=1 ;;
    *) status=1 ;;
  esac
}
if [ -n "$together" ]; then
  say "gpu-check suite on $together"
  suite_run "$together" "$out/gpu-check.json" "$out/run.txt" 200
  tail -n 5 "$out/run.txt"
fi
for b in $suspects; do
  if [ "$(left)" -lt 60 ]; then echo "SKIP the suite on $b alone: the time budget is spent"; continue; fi
  say "gpu-check suite on $b alone"
  suite_run "$b" "$out/gpu-check.$b.json" "$out/run.$b.txt" $(( $(left) - 40 < 90 ? $(left) - 40 : 90 ))
  tail -n 3 "$out/run.$b.txt"
done
if [ -f "$out/gpu-check.json" ]; then
  "$bin" report "$out/gpu-check.json" --output "$out/gpu-check.md" >/dev/null 2>&1 || status=1
fi

# ---- 4b. energy truth: the NVML counter beside the integral of the power readings -----------
# One bf16 8192^3 cuBLAS GEMM held for an energy window of at least 12 s (a steady load),
# under `wattbench measure`, which reads each GPU's energy counter and the driver's power
# reading at every 50 ms tick and sets their energies side by side over the same span
# (power_check of each GPU domain in energy-truth.json; a disagreement beyond their accuracy
# is a warning). The run itself records idle power before and after, the case's clocks,
# temperature and throttle reasons, joules per GEMM and GFLOP/J (energy-truth-run.json).
say "energy truth: NVML energy counter vs integrated power readings on a steady GEMM"
cat >"$scratch/steady.toml" <<'EOF'
name = "steady-gemm"
description = "one bf16 8192^3 GEMM for an energy window of at least 12 s: a steady load"
dtypes = ["bf16"]
modes = ["infer"]
gemm = [{ tag = "steady8192", m = 8192, n = 8192, k = 8192 }]
EOF
if [ "$(left)" -lt 75 ]; then
  echo "SKIP energy truth: the time budget is spent" | tee "$out/energy-truth.txt"
else
  limit 60 "$bin" measure --interval 50 --output "$out/energy-truth.json" \
    --trace "$out/energy-truth.csv" -- \
    "$bin" run --suite "$scratch/steady.toml" --backend cublas --device cuda \
    --energy-window 12 --max-time 30 --output "$out/energy-truth-run.json" \
    >"$out/energy-truth.txt" 2>&1
  rc=$?
  [ $rc -eq 0 ] || { [ "$gpu" = 1 ] && status=1; }
  grep -E 'cross-check|^warning' "$out/energy-truth.txt" | head -n 4
fi

# ---- 5. PyTorch's own timing of the same GEMMs -----------------------------------------------
say "PyTorch CUDA-event timing"
limit 60 python3 - >"$out/torch.txt" 2>&1 <<'PY'
# The GEMMs of the suite timed by PyTorch itself (cuBLAS through torch.mm, CUDA events, the
# median of 30 calls after 5 warm-up calls), to compare with wattbench's cublas medians.
import json, statistics, sys
try:
    import torch
except Exception as e:
    print(json.dumps({"skipped": f"torch cannot be imported: {e}"}))
    sys.exit(0)
if not torch.cuda.is_available():
    print(json.dumps({"skipped": "torch sees no CUDA device", "torch": torch.__version__}))
    sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
out = {"torch": torch.__version__, "cuda": torch.version.cuda,
       "device": torch.cuda.get_device_name(0), "gemm": []}
for n in (4096, 8192):
    for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        for _ in range(5):
            torch.mm(a, b)
        times = []
        for _ in range(30):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(); torch.mm(a, b); e.record(); e.synchronize()
            times.append(s.elapsed_time(e) / 1e3)
        med = statistics.median(times)
        out["gemm"].append({"n": n, "dtype": name, "median_s": med,
                            "tflops": 2 * n ** 3 / med / 1e12})
print(json.dumps(out, indent=1))
PY
[ $? -eq 0 ] || status=1
head -c 600 "$out/torch.txt"; echo

# ---- 6. compute-sanitizer memcheck over the small tests ---------------------------------------
say "compute-sanitizer"
san=$(wb_tool compute-sanitizer) || san=""
[ -z "$san" ] && [ -x "$here/sanitizer/bin/compute-sanitizer" ] && san=$here/sanitizer/bin/compute-sanitizer
{
  echo "## 6. compute-sanitizer --tool memcheck over the small GPU tests (generic shapes)"
  if [ -z "$san" ]; then
    echo "SKIP compute-sanitizer not found (PATH, /usr/local/cuda/bin, site-packages nvidia/*/bin, the bundle)"
  elif [ "$gpu" != 1 ]; then
    echo "SKIP no GPU: memcheck needs one"
  elif [ ! -x "$tests_bin" ]; then
    echo "SKIP no test binary"
  else
    grep -E '^cuda::' "$scratch/tests" >"$scratch/small"
    while read -r t; do
      if [ "$(left)" -lt 40 ]; then echo "SKIP $t: the time budget is spent"; continue; fi
      limit 90 "$san" --tool memcheck --error-exitcode 97 --leak-check no \
        "$tests_bin" --ignored --exact "$t" --test-threads 1 >"$scratch/log" 2>&1
      rc=$?
      case $rc in
        0) echo "CLEAN $t" ;;
        97) echo "MEMCHECK-ERROR $t"; grep -E 'Invalid|ERROR SUMMARY|at 0x|by thread' "$scratch/log" | head -n 20 | sed 's/^/    /' ;;
        *) echo "FAIL $t (exit $rc under the sanitizer)"; tail -n 10 "$scratch/log" | sed 's/^/    /' ;;
      esac
    done <"$scratch/small"
  fi
} >>"$out/tests.txt"
grep -E '^(SKIP|CLEAN|MEMCHECK-ERROR)' "$out/tests.txt" | tail -n 8

# ---- 7. the summary, last ---------------------------------------------------------------------
grep -qE '^(FAIL|MEMCHECK-ERROR)' "$out/tests.txt" && [ "$gpu" = 1 ] && status=1
python3 - "$out" "$gpu" "$status" "$(elapsed)" "$kind" "$optional" >"$out/summary.txt" 2>&1 <<'PY'
import json, os, re, sys
from collections import defaultdict
out, gpu, status, secs, libs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], sys.argv[5]
optional = set(sys.argv[6].split(","))
lines = open(os.path.join(out, "tests.txt")).read().splitlines()
def count(p): return sum(1 for l in lines if re.match(p, l))
def section(n):  # the lines of step n's section of tests.txt
    heads = [i for i, l in enumerate(lines) if l.startswith("## ")] + [len(lines)]
    for a, b in zip(heads, heads[1:]):
        if lines[a].startswith(f"## {n}."):
            return lines[a + 1:b]
    return []
tests = section(2)
print(f"wattbench GPU check: {'PASSED' if status == 0 else 'FAILED'}"
      f"{'' if gpu else ' (DRY RUN: no GPU on this machine)'}, {secs} s, CUDA libraries: {libs}")
failed = [l for l in tests if l.startswith("FAIL ")]
print(f"tests (own process each): {sum(1 for l in tests if l.startswith('PASS '))} passed, "
      f"{len(failed)} failed" + "".join(f"\n  {l}" for l in failed)[:800])
checks = defaultdict(dict)
for l in lines:
    m = re.match(r"^(ok|FAIL|UNAVAILABLE|skip)\s+(\S+?)/\S+ (\w+)", l)
    if m:
        st, b, what = m.groups()
        prev = checks[b].get(what)
        if prev not in ("FAIL", "UNAVAILABLE"):
            # Unavailable on a GPU machine fails the check, unless the backend is optional.
            na = "UNAVAILABLE" if gpu and b not in optional else "n/a"
            new = {"ok": "ok", "FAIL": "FAIL", "UNAVAILABLE": na, "skip": "n/a"}[st]
            # An op checks in two modes: one mode run is enough for "ok".
            if not (prev == "ok" and new == "n/a"):
                checks[b][what] = new
if checks:
    print("checks (wattbench check): " + "; ".join(
        f"{b}: " + " ".join(f"{w}={s}" for w, s in sorted(v.items())) for b, v in checks.items()))
print("sanitizer: " + (", ".join(f"{count(p)} {n}" for p, n in
      ((r"CLEAN", "clean"), (r"MEMCHECK-ERROR", "with errors"))) if count("CLEAN|MEMCHECK")
      else next((l for l in lines if l.startswith("SKIP compute") or l.startswith("SKIP no GPU")), "not run")))
alone = sorted(f for f in os.listdir(out) if re.fullmatch(r"gpu-check\.[\w-]+\.json", f))
for f in alone:
    try:
        d = json.load(open(os.path.join(out, f)))
    except Exception as e:
        print(f"{f}: unreadable ({e})")
        continue
    cs = d.get("cases", [])
    print(f"{f} (a backend whose generic check faulted, run alone): {len(cs)} cases"
          f"{' (INTERRUPTED)' if d.get('interrupted') else ''}; "
          + ", ".join(f"{s} {sum(1 for c in cs if c['status'] == s)}" for s in ("ok", "skipped", "failed")))
    for c in cs:
        if c["status"] == "ok":
            print(f"  {c['op']} {c['mode']} {c.get('tag') or ''} {c['dtype']}: "
                  f"{c['throughput']['gflops_per_s'] / 1e3:.1f} TFLOP/s (not side by side)")
path = os.path.join(out, "gpu-check.json")
if not os.path.exists(path):
    print("suite: no side-by-side result file (see run.txt)")
    sys.exit(0)
doc = json.load(open(path))
cases = doc.get("cases", [])
print(f"suite gpu-check: {len(cases)} cases{' (INTERRUPTED)' if doc.get('interrupted') else ''}; "
      + ", ".join(f"{s} {sum(1 for c in cases if c['status'] == s)}" for s in ("ok", "skipped", "failed")))
grid = defaultdict(lambda: defaultdict(int))
for c in cases:
    grid[c["backend"]][(c["op"], c["status"])] += 1
for b, g in grid.items():
    cells = []
    for op in ("gemm", "conv2d", "rnn"):
        ok, fl, sk = g[(op, "ok")], g[(op, "failed")], g[(op, "skipped")]
        if ok or fl or sk:
            cells.append(f"{op} {ok} ok" + (f" {fl} FAILED" if fl else "") + (f" {sk} skipped" if sk else ""))
    print(f"  {b:<11} " + "; ".join(cells))
def key(c): return (c["op"], c["mode"], json.dumps(c["params"], sort_keys=True), c["dtype"])
ok = {(c["backend"], key(c)): c for c in cases if c["status"] == "ok"}
def tf(c): return c["throughput"]["gflops_per_s"] / 1e3
vendor = {"gemm": "cublas", "conv2d": "cudnn"}
rows = []
for (b, k), c in sorted(ok.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    if b not in ("cuda", "cuda-wgmma", "cuda-wgmma-c2"):
        continue
    v = ok.get((vendor.get(k[0], ""), k))
    others = " ".join(f"{o} {tf(ok[(o, k)]):.1f}" for o in ("tch", "candle") if (o, k) in ok)
    label = f"{c['op']} {c['mode']} {c.get('tag') or ''} {c['dtype']}"
    rows.append(f"  {label:<28} {b} {tf(c):7.1f} TFLOP/s"
                + (f" | {v['backend']} {tf(v):7.1f} -> ratio {tf(c) / tf(v):.2f}" if v else "")
                + (f" | {others}" if others else ""))
if rows:
    print("ours vs the vendor (TFLOP/s at the median; ratio ours/vendor):")
    print("\n".join(rows[:30]))
try:
    t = json.load(open(os.path.join(out, "torch.txt")))
    if "gemm" in t:
        for g in t["gemm"]:
            ours = next((c for (b, k), c in ok.items() if b == "cublas" and c["op"] == "gemm"
                         and c["mode"] == "infer" and c["dtype"] == g["dtype"]
                         and c["params"]["m"] == g["n"] and c["params"]["n"] == g["n"]
                         and c["params"]["k"] == g["n"]), None)
            line = f"  torch.mm {g['n']}^3 {g['dtype']}: {g['median_s'] * 1e3:.3f} ms (CUDA events)"
            if ours:
                line += f" | wattbench cublas {ours['time']['median_s'] * 1e3:.3f} ms -> {ours['time']['median_s'] / g['median_s']:.3f}x"
            print(line)
    else:
        print(f"torch timing: {t.get('skipped')}")
except Exception as e:
    print(f"torch timing: unreadable ({e})")
try:
    m = json.load(open(os.path.join(out, "energy-truth.json")))
    checks = [d["power_check"] for d in m.get("domains", []) if d.get("power_check")]
    print("energy truth (12 s steady cuBLAS bf16 8192^3 under measure): "
          + ("; ".join(
              f"{c['domain']}: counter {c['counter_j']:.1f} J vs integrated power "
              f"{c['integrated_j']:.1f} J over {c['span_s']:.1f} s, ratio "
              + (f"{c['ratio']:.3f}" if c.get("ratio") is not None else "none")
              + f", {c['verdict']} (±{c['tolerance'] * 100:.0f} %)" for c in checks)
             or "no GPU with both a counter and a power reading"))
    r = json.load(open(os.path.join(out, "energy-truth-run.json")))
    # Counters' idle power (the CPU estimate has no idle part: its figure is not idle power).
    idle = [(d["name"], d.get("avg_watts")) for d in (r.get("energy") or {}).get("idle_baseline") or []
            if d.get("source") != "estimated"]
    print("  idle before: " + (", ".join(f"{n} {w:.1f} W" for n, w in idle if w is not None) or "none"))
    for c in r.get("cases", []):
        e = c.get("energy") or {}
        st = "; ".join(f"gpu{g.get('index')}: SM {g.get('sm_clock_mhz')} MHz, {g.get('temperature_c')} C, "
                       f"throttle {','.join(g.get('throttle_reasons') or []) or 'none'}"
                       for g in e.get("gpu_state") or [])
        print(f"  {c['backend']} {c['status']}: {e.get('total_joules_per_iter')} J per GEMM, "
              f"{e.get('gflops_per_joule')} GFLOP/J over {e.get('window_s')} s; {st}")
except FileNotFoundError as e:
    print(f"energy truth: not run ({os.path.basename(e.filename)} missing)")
except Exception as e:
    print(f"energy truth: unreadable ({e})")
print("files: " + " ".join(sorted(os.listdir(out))))
PY
cat "$out/summary.txt"
exit $status
