#!/usr/bin/env bash
# The Hopper GEMM against the mma.sync kernel and cuBLAS, on an H100/H200, from the GPU bundle
# (`make gpu-bundle`; run after gpu-check.sh, which verifies every backend first), with bash
# (file modes can be lost in transit):
#
#   bash .gpu-bundle/profile-gemm.sh OUTDIR
#   bash .gpu-bundle/profile-gemm.sh --summary-only WORKDIR
#
# Everything is written to a work folder (WATTBENCH_WORK, default /tmp/wb-gpu, + /profile), and
# OUTDIR receives two files (the device returns at most 8; gpu-check.sh's two may be beside
# them): profile-gemm.tgz (the work folder, packed again after every step and on exit) and
# profile-gemm-summary.txt. --summary-only runs nothing: it rewrites WORKDIR/summary.txt from
# the files of a work folder this script made (an unpacked profile-gemm.tgz), each suite run
# judged again from its recorded exit status and result file, prints it, and exits as the run
# would have: 1 when the records show a failure, 3 when they show a run that did not finish or
# left profiles unrun (INCOMPLETE; a folder without .summary-args.json: its summary.txt said
# so, or its steps.txt has no ncu step), else 0 (python3 alone: no GPU, no binary).
#
# Within a total budget (WATTBENCH_PROFILE_BUDGET, default 240 s), each step under its own
# limit; the seconds at the right were measured on one H200 on 2026-11-30 (steps.txt records
# what each took):
#   0. a quick generic check of each wgmma backend, each in its own process; 30 s each  2 s
#   1. the hopper-gemm suite (benchmarks/hopper-gemm.toml: bf16 4096^3, 8192^3 and the
#      Llama-2-7B MLP GEMMs at T = 1, 16, 4096: 8 cases) on cuda-wgmma, cuda-wgmma-c2 (clusters
#      of two sharing B by multicast), cuda and cublas side by side in one run, every case
#      verified first, with NVML energy over windows of at least 3 s: 32 case x backend runs
#      of about 4.9 s each (start-up and idle power before and after included)      158 s
#      (at most 190, leaving 45 s for step 2 where the budget allows);
#      hopper-gemm.json and hopper-gemm.md (TFLOP/s, GFLOP/J, clocks and throttle reasons);
#      a wgmma backend that faults in its generic check runs alone after the others
#      (hopper-gemm.<backend>.json), so its fault cannot cost them their results. A run killed
#      at its limit after it wrote a complete result file (not marked interrupted) was
#      exiting: it is judged on its cases (on 2026-11-30 the limit, then 158 s, struck there);
#   2. Nsight Compute (`ncu --clock-control none`, which leaves the clocks alone) on one
#      8192^3 bf16 product of each backend, cuda-wgmma first, then cuBLAS (the baseline),
#      cuda-wgmma-c2 and cuda: speed of light, compute and memory workload, occupancy, warp
#      states, executed instruction mix (HGMMA = wgmma, HMMA = mma.sync), every section's
#      details where ncu knows --print-details: ncu.txt; 30 s each, skipped when under 15 s
#      are left                                                      38 s for the four (~9.5 s each)
#   3. a summary: summary.txt (ours / cuBLAS per case, the profile's headline figures).
# Total: 199 s of the 240 on 2026-11-30. The work folder also holds env.txt (the CUDA library
# set chosen, as in gpu-check.sh, which the summary judges the runs' libraries against),
# cuda-libs/ (its links; not packed), steps.txt,
# suite-status.txt (each suite run's verdict, exit status, limit and seconds), run.<name>.txt,
# report-errors.txt (where the report failed) and .summary-args.json (the summary's inputs, for
# --summary-only).
#
# Without a GPU it runs as a dry run and says why each step cannot measure. Exit status: 0
# when every step that could run succeeded, 1 when one failed (a mix of CUDA library sets
# loaded included: the CUDA libraries are linked as in gpu-check.sh, cuda-libs/), 3 when
# nothing failed but ncu profiles were left unrun for the budget (INCOMPLETE), 2 for bad usage,
# 130 / 143 when stopped by SIGINT / SIGTERM (the results so far packed).
#
#   WATTBENCH_PROFILE_BUDGET  total seconds (default 240)
#   WATTBENCH_WORK            the work folder's parent (default /tmp/wb-gpu)
# shellcheck disable=SC2317 # on_exit runs from the trap
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: profile-gemm.sh OUTDIR (the folder that gets the results), or profile-gemm.sh --summary-only WORKDIR"
mode=run
if [ "${1:-}" = --summary-only ]; then
  if [ $# -ne 2 ] || [ ! -d "$2" ]; then echo "$usage (WORKDIR: an existing work folder)" >&2; exit 2; fi
  mode=summary
  work=$(cd "$2" && pwd)
else
  if [ $# -ne 1 ] || [ -z "$1" ]; then echo "$usage" >&2; exit 2; fi
  out=$1
  work=${WATTBENCH_WORK:-/tmp/wb-gpu}/profile
fi
budget=${WATTBENCH_PROFILE_BUDGET:-240}
start=$(date +%s)
status=0
bin=$here/wattbench
suite=$here/benchmarks/hopper-gemm.toml
[ -f "$suite" ] || suite=$here/../benchmarks/hopper-gemm.toml
gpu=0
summarised=0

# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"
# The summary (step 3), written last, or by the exit trap when the run stops early. Its Python:
# WORK SUITE_STATUS GPU STATUS SECONDS BUDGET INCOMPLETE. It keeps its arguments in
# .summary-args.json; --summary-only calls it with WORK SUITE_STATUS "" GPU, and it takes them
# from there (for a folder from before that file: GPU, and the seconds summed from steps.txt),
# the verdict from the records (suite-status.txt, report-errors.txt, ncu.txt's exits).
IFS= read -r -d '' summary_src <<'PY'
import json, os, re, sys
out, suite_status = sys.argv[1], sys.argv[2]
def read(name):
    try:
        return open(os.path.join(out, name)).read()
    except OSError:
        return ""
rewritten = sys.argv[3] == ""
if not rewritten:
    args = dict(zip(("gpu", "status", "secs", "budget", "incomplete"), sys.argv[3:8]))
    with open(os.path.join(out, ".summary-args.json"), "w") as f:
        json.dump(args, f)
else:
    try:
        args = json.load(open(os.path.join(out, ".summary-args.json")))
    except (OSError, ValueError):
        # A folder from before .summary-args.json: what its files say. Incomplete when the
        # summary it holds said so (a run stopped midway) or steps.txt lacks the last step (ncu).
        said = re.match(r"wattbench Hopper GEMM profile: INCOMPLETE, (.*?): (no verdict|FAILED before)",
                        read("summary.txt"))
        last = [l.split(":")[0] for l in read("steps.txt").splitlines() if ":" in l]
        incomplete = (said.group(1) if said else "" if "ncu" in last else
                      "the records end " + (f"after step {last[-1]}" if last else "before the first step")
                      + " (steps.txt has no ncu step)")
        args = {"gpu": sys.argv[4], "status": "0", "incomplete": incomplete, "budget": "",
                "secs": str(sum(int(x) for x in re.findall(r"^[^:]+: (\d+) s,", read("steps.txt"), re.M)))}
gpu, secs, incomplete = args["gpu"] == "1", args["secs"], args["incomplete"]
took = f"{secs} s of a {args['budget']} s budget" if args.get("budget") else f"{secs} s (the steps' sum)"
# The suite runs: NAME, MESSAGE, VERDICT (pass, fail, skip), exit status, limit, seconds.
runs = [l.split("\t") for l in (open(suite_status).read().splitlines() if os.path.exists(suite_status) else [])]
runs = [f for f in runs if len(f) > 2]
failures = [f"suite {f[0]}: {f[1]}" for f in runs if f[2] == "fail"]
failures += ["report: " + l for l in read("report-errors.txt").splitlines()]
failures += [l for l in read("ncu.txt").splitlines() if re.match(r"ncu on \S+: exit", l)]
# The CUDA libraries the runs loaded, the one set chosen (env.txt; see gpu-check.sh): a mix
# fails the profile.
results = sorted(os.path.join(out, f) for f in os.listdir(out) if re.fullmatch(r"hopper-gemm(\..+)?\.json", f))
mix = cuda_lib_mix(results, read("env.txt").splitlines())
if mix:
    failures.append("a mix of CUDA libraries loaded: " + "; ".join(mix))
status = (1 if failures or args["status"] != "0" else 0) if rewritten else (1 if mix or args["status"] != "0" else 0)
# Profiles the budget left out: the profile is not complete (ncu not found is a plain skip).
unrun = [l for l in read("ncu.txt").splitlines() if re.match(r"SKIP: the time budget is spent", l)]
verdict = ("OK" if status == 0 else "FAILED") if gpu else (
    "DRY RUN, NOTHING MEASURED (no GPU on this machine)" + ("; FAILED" if status else ""))
if gpu and status == 0 and unrun:
    verdict = f"INCOMPLETE: OK where run, {len(unrun)} ncu profile(s) not run for the budget (ncu.txt)"
if incomplete:
    verdict = (f"INCOMPLETE, {incomplete}: "
               + ("no verdict (nothing had failed before the stop)" if status == 0 else "FAILED before the stop")
               + ("" if gpu else "; a dry run"))
print(f"wattbench Hopper GEMM profile: {verdict}, {took}")
if mix:
    print("\n".join(cuda_lib_mix_lines(mix, "the suite runs (environment.libraries of " + " ".join(
        os.path.basename(p) for p in results) + ")")))
if rewritten:
    print("  (rewritten from the work folder by --summary-only; the verdict from its records"
          + (": " + "; ".join(l[:160] for l in failures[:6]) if failures else "") + ")")
steps = [l.split(",")[0] for l in read("steps.txt").splitlines()]
print("seconds per step (steps.txt): " + ", ".join(s.replace(": ", " ").replace(" s", "") for s in steps))
for f in runs:
    print(f"suite {f[0]}: {f[1]}")
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
    print(f"{'case':<18} {'backend':<13} {'TFLOP/s':>8} {'vs cublas':>9} {'GFLOP/J':>8}  (GFLOP/J: the GPU's energy counter;"
          " three significant digits)")
    for t in tags:
        base = ok.get(("cublas", t))
        for b in ("cuda-wgmma", "cuda-wgmma-c2", "cuda", "cublas"):
            c = ok.get((b, t))
            if not c:
                continue
            tf = c["throughput"]["gflops_per_s"] / 1e3
            rel = sig3(tf / (base['throughput']['gflops_per_s'] / 1e3)) if base else "-"
            # The GPU's counter alone (the run's total adds the CPU estimate).
            js = [d.get("joules_per_iter") for d in (c.get("energy") or {}).get("domains") or []
                  if d["name"].startswith("gpu")]
            e = sig3(c['throughput']['flops'] / sum(js) / 1e9) if js and None not in js and sum(js) > 0 else "-"
            impl = c.get("implementation") or ""
            impl = impl if b.startswith("cuda-wgmma") else ""  # width, cluster, split K
            print(f"{t:<18} {b:<13} {sig3(tf):>8} {rel:>9} {e:>8}  {impl}")
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
print("files (in profile-gemm.tgz): " + " ".join(sorted(f for f in os.listdir(out) if not f.startswith(".") and f != "cuda-libs")))
# 1: failed; 3: INCOMPLETE without a failure (the run did not finish, or left profiles unrun).
sys.exit(1 if status else 3 if verdict.startswith("INCOMPLETE") else 0)
PY
summary() { # [WHY INCOMPLETE]
  python3 -c "$wb_summary_py"$'\n'"$summary_src" "$work" "$work/suite-status.txt" "$gpu" "$status" \
    "$(elapsed)" "$budget" "${1:-}" >"$work/summary.txt" 2>&1
}
# --summary-only: the summary of an existing work folder, from its records; nothing runs. Each
# suite run is judged again (wb_judge_run) from what it recorded: suite-status.txt's exit
# status, limit and seconds, or, in a folder from before that file, steps.txt's
# "suite-NAME: S s, exit RC". The GPU flag: .summary-args.json's, else steps.txt's "gpu 1",
# whether hopper-gemm.json lists the GPU it ran on, ncu.txt has a profile, or the folder's
# summary.txt (written on every step) gave a verdict other than a dry run's.
summary_only() {
  local judged name msg verdict rc secs dt rest
  [ -f "$work/steps.txt" ] || {
    echo "profile-gemm.sh --summary-only: $work has no steps.txt: not a work folder of this script" >&2
    return 2
  }
  gpu=$(python3 - "$work" <<'PY'
import json, os, re, sys
try:
    print(json.load(open(os.path.join(sys.argv[1], ".summary-args.json")))["gpu"])
except (OSError, ValueError, KeyError):
    try:
        print(1 if json.load(open(os.path.join(sys.argv[1], "hopper-gemm.json")))["environment"].get("gpus") else 0)
    except (OSError, ValueError, KeyError):
        # ncu profiles only on a GPU: a section of it says there was one.
        read = lambda n: open(os.path.join(sys.argv[1], n)).read() if os.path.exists(os.path.join(sys.argv[1], n)) else ""
        steps, first = read("steps.txt"), (read("summary.txt").splitlines() or [""])[0]
        print(1 if re.search(r"^wgmma-checks: .*\bgpu 1\b", steps, re.M) or "\n#### " in "\n" + read("ncu.txt")
              or (first.startswith("wattbench Hopper GEMM profile: ") and "DRY RUN" not in first
                  and "a dry run" not in first) else 0)
PY
)
  judged=$(mktemp /tmp/wattbench-profile-status.XXXXXX)
  {
    if [ -f "$work/suite-status.txt" ]; then
      cat "$work/suite-status.txt"
    else
      # (tab is a blank to `read`: an empty field would vanish, so "-" stands for one)
      sed -nE 's/^suite-([^:]+): ([0-9]+) s, exit ([0-9]+).*/\1\t-\t-\t\3\t-\t\2/p' "$work/steps.txt"
    fi
  } | while IFS=$'\t' read -r name msg verdict rc secs dt rest; do
    [ "$secs" = - ] && secs=""
    if [[ $rc =~ ^[0-9]+$ ]]; then
      IFS=$'\t' read -r verdict msg <<<"$(wb_judge_run "$name" "$rc" "$work/$name.json" "$secs" "$gpu" "$dt")"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$msg" "$verdict" "$rc" "$secs" "$dt"
  done >"$judged"
  wb_summary_write "$work" "$judged" "$gpu" "$summary_src"
}
if [ "$mode" = summary ]; then
  summary_only
  exit $?
fi

mkdir -p "$out" || { echo "profile-gemm.sh: cannot make $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
# Execute bits can be lost in transit.
chmod +x "$bin" 2>/dev/null
# The work folder is emptied first: only one this script made (its marker inside).
if [ -d "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.wattbench-profile-gemm" ]; then
  echo "profile-gemm: $work exists and is not a folder of this script; set WATTBENCH_WORK" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work"
touch "$work/.wattbench-profile-gemm"
: >"$work/steps.txt"
: >"$work/suite-status.txt"
scratch=$(mktemp -d /tmp/wattbench-profile.XXXXXX)
export WATTBENCH_CACHE=${WATTBENCH_CACHE:-/tmp/wattbench-cache}
export RUST_BACKTRACE=1
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
wb_cuda_libs "$work/cuda-libs"
# The set chosen (the summary judges the libraries the runs loaded against it) and what each
# name cudarc asks for resolves to.
{
  wb_cuda_chosen
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  wb_cuda_resolve
} >"$work/env.txt" 2>&1
grep -E '^cuda library (set|links|not linked)' "$work/env.txt"
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
step_done wgmma-checks "$t0" "gpu $gpu, alone:${alone:- none}"
# One run of the suite; its line in suite-status.txt: NAME, the verdict's message,
# pass|fail|skip, the exit status, the limit and the seconds it took (--summary-only judges it
# again from them).
suite_run() { # BACKENDS OUTPUT SECONDS
  local rc t0 dt name verdict msg
  name=$(basename "$2" .json)
  say "hopper-gemm suite on $1 (limit $3 s)"
  t0=$(date +%s)
  WB_KILL_AFTER=10 limit "$3" "$bin" run --suite "$suite" --backend "$1" --device cuda \
    --energy-window 3 --output "$2" >"$work/run.$name.txt" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  wb_run_tail "$work/run.$name.txt"
  IFS=$'\t' read -r verdict msg <<<"$(wb_judge_run "$name" "$rc" "$2" "$3" "$gpu" "$dt")"
  [ "$verdict" = fail ] && status=1
  [ "$rc" = 3 ] && [ "$gpu" = 1 ] && msg="$msg (not a Hopper GPU?)"
  echo "$msg"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$msg" "$verdict" "$rc" "$3" "$dt" >>"$work/suite-status.txt"
  step_done "suite-$name" "$t0" "exit $rc: $msg"
}
# Measured on one H200 on 2026-11-30: 32 runs of about 4.9 s each (a 3 s energy window,
# verification, warm-up; start-up and idle power included), 157.8 s inside the run; a limit of
# 158 s struck while it exited. Nsight Compute's four profiles (step 2, the point of this
# script) took 38 s in all: 45 s are kept for them, and the suite gets what is left above that,
# at most 190 s (about 30 s above the measured time), at least 60 (a short budget then leaves
# the profiles less, and the last ones are skipped). A wgmma backend run alone (8 runs, about
# 40 s, and its own start-up) gets 50 s, taken from the side-by-side run's share.
ncu_reserve=45
suite_s=$(($(left) - ncu_reserve))
[ "$suite_s" -gt 190 ] && suite_s=190
[ "$suite_s" -lt 60 ] && suite_s=60
if [ -z "$alone" ]; then
  suite_run "$backends" "$work/hopper-gemm.json" "$suite_s"
else
  n_alone=$(wc -w <<<"$alone")
  main_s=$((suite_s - 50 * n_alone))
  [ "$main_s" -lt 60 ] && main_s=60
  suite_run "$backends" "$work/hopper-gemm.json" "$main_s"
  for wb in $alone; do
    suite_run "$wb" "$work/hopper-gemm.$wb.json" 50
  done
fi
if [ -f "$work/hopper-gemm.json" ]; then
  limit 30 "$bin" report "$work/hopper-gemm.json" --output "$work/hopper-gemm.md" >/dev/null 2>"$work/report.err" ||
    { status=1; echo "report of hopper-gemm.json failed: $(head -c 300 "$work/report.err")" | tee -a "$work/report-errors.txt"; }
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
      # About 9.5 s each on the H200 of 2026-11-30.
      if [ "$(left)" -lt 15 ]; then echo "SKIP: the time budget is spent"; continue; fi
      WB_KILL_AFTER=10 limit 30 "$ncu" --clock-control none "${details[@]}" --kernel-name "$k" --launch-skip 1 --launch-count 1 \
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
rc=$?
summarised=1
cat "$work/summary.txt"
# The summary's own findings (a mix of CUDA libraries: 1; INCOMPLETE: 3; 1 too when it failed).
[ "$rc" = 1 ] && status=1
[ "$status" = 0 ] && [ "$rc" = 3 ] && status=3
exit $status
