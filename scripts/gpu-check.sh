#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no Rust or network. Run it from the
# bundle that `make gpu-bundle` built (.gpu-bundle/, carried to the GPU machine), with bash
# (file modes can be lost in transit):
#
#   bash .gpu-bundle/gpu-check.sh OUTDIR
#   bash .gpu-bundle/gpu-check.sh --summary-only WORKDIR
#
# Everything is written to a work folder (WATTBENCH_WORK, default /tmp/wb-gpu, + /check), and
# OUTDIR receives two files only (the device returns at most 8): gpu-check.tgz (the work
# folder, packed again after every step and on exit, so that a run stopped midway still returns
# what it had) and gpu-check-summary.txt (the one-screen summary, also printed last).
# --summary-only runs nothing: it rewrites WORKDIR/summary.txt from the files of a work folder
# this script made (an unpacked gpu-check.tgz), with this script's summary and its rules (each
# suite run judged again from its recorded exit status and result file), prints it, and exits
# as the run would have: 1 when the records show a failure, 3 when they show a run that did not
# finish or left parts unrun (INCOMPLETE), else 0. A folder without .summary-args.json is
# INCOMPLETE when its summary.txt said so or its steps.txt has no sanitizer step, and on a GPU
# when env.txt or steps.txt says "gpu 1". It needs python3 alone (no GPU, no binary).
#
# Steps, the most valuable evidence first, each under its own time limit, within a total budget
# (WATTBENCH_CHECK_BUDGET, default 330 s, so that one rerun fits in a 15-minute device lease).
# The seconds at the right were measured on one H200 on 2026-11-30 (steps.txt records what each
# step took, to re-plan; step 3's is an estimate, its timing having changed since):
#   1. inventory: nvidia-smi, the CUDA library set chosen (pip wheels, or the toolkit with the
#      system's cuDNN 9; never a mix: cuda-libs/ holds unversioned links to its files, first on
#      LD_LIBRARY_PATH, because cudarc opens libcublas.so before libcublas.so.13; the summary
#      fails a run whose result files show a library loaded from two folders, cuBLAS and
#      cuBLASLt from different folders, or a library from outside the chosen set where that
#      set has it; env.txt names the libraries the set lacks), the file each name cudarc asks for
#      resolves to, libtorch, `ldd` of the binaries, /proc/meminfo, `wattbench list`, `list --json`
#      and `info` at once; 30 s limit each                                          4 s
#   2. energy truth: one bf16 8192^3 cuBLAS GEMM, 2 s of warm-up, then a steady 12 s energy
#      window, under `wattbench measure`: the NVML energy counter beside the integral of the
#      power readings over the steady window (and over measure's whole span), idle power
#      before and after, clocks, temperature, throttle reasons, J per GEMM; 60 s limit  27 s
#   3. PyTorch's own CUDA-event timing of the GEMMs of step 6 (timing truth), timed the way
#      wattbench times: 1 s of back-to-back warm-up calls, then back-to-back calls for at least
#      2 s, each between a pair of CUDA events; and beside it the short burst of earlier checks
#      (5 warm-up calls, 30 timed: a GPU not yet at its power cap); 60 s limit. 6 s with the
#      burst alone; with the sustained timing, an estimate: 4 x ~3.2 s + start-up   ~20 s
#   4. every GPU test of wattbench-cuda, each in its own process, 4 at a time, the Hopper
#      (wgmma) tests one after another in a lane of their own; 45 s a test; after a wgmma test
#      hits its limit the remaining wgmma tests are skipped (a hung kernel hangs again);
#      the step ends after 60 s (tests not started by then are skipped, named)       40 s
#   5. `wattbench check` (the generic correctness checks) on every GPU backend, one process
#      per backend and op, and per trainer, 4 at a time (wgmma in its own lane); 45 s a
#      check; the step ends after 60 s                                               16 s
#   6. the side-by-side suite (issue 8's comparisons, from benchmarks/gpu-check.toml: GEMM
#      4096^3 and 8192^3 in fp32 and bf16, inference; ResNet-50's 3x3 convolutions, forward
#      and training; the LSTM/GRU steps), NVML's 2 s minimum energy window per case, one
#      process per op family, each with its own limit (and a reserve kept for the families
#      after it), so that every family gets its share:
#        6a. GEMM: cuda (tiled fp32, mma.sync bf16) beside cuBLAS              40 s (<= 50)
#        6b. GEMM bf16 on cuda-wgmma alone                                     15 s (<= 30)
#        6c. GEMM bf16 on cuda-wgmma-c2 alone                                  16 s (<= 30)
#        6d. conv: cuda (implicit GEMM) beside cuDNN                           59 s (<= 70)
#        6e. RNN: cuda (fused steps) beside tch and candle                     47 s (<= 65)
#      The Hopper backends always run in processes of their own: a kernel fault (a watchdog
#      `trap`, an illegal address) poisons its process's CUDA context, and with it every later
#      case of every backend there. Likewise a backend whose test (step 4) or check (step 5)
#      hit a CUDA error, a trap, a time limit or crashed is left out of its family's run and
#      runs its families' cases alone afterwards, time permitting (gpu-check.alone-<b>.json).
#      A time limit sends SIGINT first: the completed cases are written, marked interrupted,
#      and the run fails; a run whose result file is complete (not interrupted) was killed
#      while exiting, and is judged on its cases;
#   7. compute-sanitizer memcheck over the small GPU tests, where the tool exists and at
#      least 25 s are left                                                            5 s
#   8. the summary (summary.txt, printed last; not timed, about a second)
# Total: 280 s of the 330 on 2026-11-30 (about 295 s with step 3's longer timing); the limits
# above bound each step, and each limit is also cut to what is left of the budget.
#
# The work folder holds: summary.txt steps.txt env.txt cuda-libs/ (not packed: its links point
# into this machine's folders) list.json tests.txt logs/ (the full
# output of failed tests and checks) suites/ energy-truth.{json,csv,txt} energy-truth-run.json
# torch.txt torch-stderr.txt suite-status.txt (each step-6 run's verdict, exit status, limit
# and seconds) report-errors.txt (where a report failed) .summary-args.json (the summary's
# inputs, for --summary-only), and per step-6 run gpu-check.<family>.json, .md and
# run.<family>.txt. Without a GPU the same script runs as a dry run: every step runs or says
# why it cannot test anything, and the summary says that nothing was tested. Exit status: 0
# when everything that could run passed, 1 when something failed (a mix of CUDA library sets
# included), 3 when nothing failed but the verdict is INCOMPLETE (tests, checks or suite runs
# the budget left unrun), 2 for bad usage, 130 / 143 when stopped by SIGINT / SIGTERM (the
# results so far packed). On a GPU machine, the check also fails when it would
# otherwise pass having checked nothing: no GPU test listed or no test binary (step 4), a
# backend whose `wattbench check` finds its device unavailable (step 5: the bundle is built
# with every GPU backend, so that is a broken library set or build, and nothing else runs
# candle's or tch's CUDA checks), unless it is optional, or a run of step 6 in which nothing ran.
#
#   WATTBENCH_GPU_BACKENDS  backends to check (default: cuda,cuda-wgmma,cuda-wgmma-c2,cuda-naive,cublas,cudnn,tch,candle)
#   WATTBENCH_GPU_OPTIONAL  backends that may be unavailable on a GPU machine without failing
#                           the check, comma-separated (default: none; e.g. tch where only a
#                           CPU-only libtorch is at hand); cuda-wgmma and cuda-wgmma-c2 are
#                           added on a GPU whose compute capability is not 9.0 (they are Hopper
#                           kernels: their devices are unavailable elsewhere, with the reason)
#   WATTBENCH_CHECK_BUDGET  total seconds (default 330)
#   WATTBENCH_CHECK_JOBS    tests and checks run at once, besides the wgmma lane (default 4)
#   WATTBENCH_WORK          the work folder's parent (default /tmp/wb-gpu)
# shellcheck disable=SC2317 # the job functions run through run_pool/run_lane and the exit trap
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: gpu-check.sh OUTDIR (the folder that gets the results), or gpu-check.sh --summary-only WORKDIR"
mode=run
if [ "${1:-}" = --summary-only ]; then
  if [ $# -ne 2 ] || [ ! -d "$2" ]; then echo "$usage (WORKDIR: an existing work folder)" >&2; exit 2; fi
  mode=summary
  work=$(cd "$2" && pwd)
else
  if [ $# -ne 1 ] || [ -z "$1" ]; then echo "$usage" >&2; exit 2; fi
  out=$1
  work=${WATTBENCH_WORK:-/tmp/wb-gpu}/check
fi
backends=${WATTBENCH_GPU_BACKENDS:-cuda,cuda-wgmma,cuda-wgmma-c2,cuda-naive,cublas,cudnn,tch,candle}
optional=${WATTBENCH_GPU_OPTIONAL:-}
budget=${WATTBENCH_CHECK_BUDGET:-330}
jobs_at_once=${WATTBENCH_CHECK_JOBS:-4}
start=$(date +%s)
status=0
bin=$here/wattbench
tests_bin=$here/wattbench-cuda-gpu-tests
suspects="" # backends to run alone in step 6 (a fault in step 4 or 5)
summarised=0
gpu=0
kind=none
step_name=start

# shellcheck source=scripts/gpu-env.sh
. "$here/gpu-env.sh"

# One line per step in steps.txt: what it took and how it ended (the next plan's timings).
step_t0=$start
step() { # NAME: a step begins
  step_name=$1
  step_t0=$(date +%s)
}
# A failed test, check or memcheck recorded so far fails the run (the summary's verdict).
fold_failures() {
  grep -qE '^(FAIL|MEMCHECK-ERROR)|^    fails the check' "$work/tests.txt" && [ "$gpu" = 1 ] && status=1
  return 0
}
step_done() { # NOTE: the step ended
  echo "$step_name: $(($(date +%s) - step_t0)) s, $*" >>"$work/steps.txt"
  fold_failures
  # A summary at every step, so that a run killed from outside (no trap runs) still returns one.
  summary "in progress: the run was stopped from outside after step $step_name"
  wb_pack "$work" "$out" gpu-check
}

# The summary (step 8), written last, or by the exit trap when the run stops early.
summary() { # [WHY INCOMPLETE]
  python3 -c "$wb_summary_py"$'\n'"$summary_src" "$work" "$work/suite-status.txt" "$gpu" "$status" \
    "$(elapsed)" "$kind" "$optional" "$suspects" "$budget" "${1:-}" >"$work/summary.txt" 2>&1
}
# Its Python: WORK SUITE_STATUS GPU STATUS SECONDS LIBS OPTIONAL SUSPECTS BUDGET INCOMPLETE. It
# keeps its arguments in .summary-args.json; --summary-only calls it with WORK SUITE_STATUS ""
# GPU, and it takes them from there (for a folder from before that file: GPU, env.txt's library
# set, the seconds summed from steps.txt) and the verdict from the records (each failure that
# set the run's exit status is in a file: env.txt, tests.txt, steps.txt, suite-status.txt,
# report-errors.txt).
IFS= read -r -d '' summary_src <<'PY'
import csv, json, os, re, sys
from collections import defaultdict
work, suite_status = sys.argv[1], sys.argv[2]
def read(name):
    try:
        return open(os.path.join(work, name)).read()
    except OSError:
        return ""
env = read("env.txt").splitlines()
steps_txt = read("steps.txt").splitlines()
rewritten = sys.argv[3] == ""
if not rewritten:
    args = dict(zip(("gpu", "status", "secs", "libs", "optional", "suspects", "budget", "incomplete"), sys.argv[3:11]))
    with open(os.path.join(work, ".summary-args.json"), "w") as f:
        json.dump(args, f)
else:
    try:
        args = json.load(open(os.path.join(work, ".summary-args.json")))
    except (OSError, ValueError):
        # A folder from before .summary-args.json: what its files say. Incomplete when the
        # summary it holds said so (a run stopped midway) or steps.txt lacks the last step.
        m = lambda pat: next((x.group(1) for x in map(re.compile(pat).match, env) if x), "")
        said = re.match(r"wattbench GPU check: INCOMPLETE, (.*?): (no verdict|FAILED before)", read("summary.txt"))
        last = [l.split(":")[0] for l in steps_txt if ":" in l]
        incomplete = (said.group(1) if said else "" if "sanitizer" in last else
                      "the records end " + (f"after step {last[-1]}" if last else "before the first step")
                      + " (steps.txt has no sanitizer step)")
        args = {"gpu": sys.argv[4], "status": "0",
                "libs": m(r"cuda library set: (\S+)") or "not recorded",
                "secs": str(sum(int(x) for x in re.findall(r"^[^:]+: (\d+) s,", read("steps.txt"), re.M))),
                "optional": "", "suspects": "", "budget": "", "incomplete": incomplete}
gpu, secs, libs, budget, incomplete = args["gpu"] == "1", args["secs"], args["libs"], args["budget"], args["incomplete"]
took = f"{secs} s of a {budget} s budget" if budget else f"{secs} s (the steps' sum; the budget was not recorded)"
optional, suspects = set(args["optional"].split(",")), args["suspects"].split()
# The suite runs: NAME, MESSAGE, VERDICT (pass, fail, skip) and, for a run, its exit status,
# limit and seconds; a file from before the verdict column has NAME and MESSAGE alone.
runs, runs_failed, runs_unrun = {}, [], []
for l in open(suite_status).read().splitlines() if os.path.exists(suite_status) else []:
    f = l.split("\t")
    if len(f) < 2:
        continue
    runs[f[0]] = f[1]
    if (f[2] == "fail") if len(f) > 2 else re.match(r"FAILED|hit its", f[1]):
        runs_failed.append(f[0])
    # A family the budget left out (not-run; "skip" in a record from before that verdict).
    if (f[2] if len(f) > 2 else "") == "not-run" or "the time budget is spent" in f[1]:
        runs_unrun.append(f[0])
# The failures the records show (what set the run's exit status).
failures = [l for l in env if re.match(r"wattbench (list|list --json|info): exit|gpu: /dev/nvidia\S* exists", l)]
if gpu:
    failures += [l for l in read("tests.txt").splitlines() if re.match(r"(FAIL|MEMCHECK-ERROR)|    fails the check", l)][:5]
    failures += [l for l in steps_txt if re.match(r"(energy-truth|torch-timing): \d+ s, exit [1-9]", l)]
failures += [f"suite {n}: {runs[n]}" for n in runs_failed]
failures += ["report: " + l for l in read("report-errors.txt").splitlines()]
# The CUDA libraries the runs loaded (their result files' environment.libraries): the one set
# chosen (env.txt's "cuda library chosen:" lines), or the figures are of other libraries than
# the run says (two copies of cuBLAS and of cuDNN, on 2026-11-30). A failure: the check stands
# behind its library set.
results = sorted(os.path.join(work, f) for f in os.listdir(work)
                 if re.fullmatch(r"gpu-check\..+\.json|energy-truth-run\.json", f))
mix = cuda_lib_mix(results, env)
if mix:
    failures.append("a mix of CUDA libraries loaded: " + "; ".join(mix))
status = (1 if failures or args["status"] != "0" else 0) if rewritten else (
    1 if mix or args["status"] != "0" else 0)
lines = read("tests.txt").splitlines()
def section(n):  # the lines of step n's section of tests.txt
    heads = [i for i, l in enumerate(lines) if l.startswith("## ")] + [len(lines)]
    for a, b in zip(heads, heads[1:]):
        if lines[a].startswith(f"## {n}."):
            return lines[a + 1:b]
    return []
if not gpu:
    verdict = "DRY RUN, NOTHING TESTED (no GPU on this machine; each step says why it could not test)"
    if status != 0:
        verdict += "; FAILED (see the gpu: and wattbench lines below)"
else:
    verdict = "PASSED" if status == 0 else "FAILED"
    # A GPU test or check the time budget left unrun is not a pass: the verdict says so.
    unrun = [l for k in (4, 5) for l in section(k) if l.startswith("SKIP") and "not run:" in l]
    if status == 0 and (unrun or runs_unrun):
        verdict = ("INCOMPLETE: passed where run, "
                   + ", ".join(([f"{len(unrun)} GPU test(s) or check(s) not run (the SKIP lines below)"] if unrun else [])
                               + ([f"suite run(s) not run for the budget: {' '.join(runs_unrun)}"] if runs_unrun else [])))
if incomplete:
    verdict = (f"INCOMPLETE, {incomplete}: "
               + ("no verdict (nothing had failed before the stop)" if status == 0 else "FAILED before the stop")
               + ("" if gpu else "; a dry run"))
print(f"wattbench GPU check: {verdict}, {took}, CUDA libraries: {libs}"
      + (" (BUT A MIX WAS LOADED: below)" if mix else ""))
if mix:
    print("\n".join(cuda_lib_mix_lines(mix, "the runs (environment.libraries of " + " ".join(
        os.path.basename(p) for p in results) + ")")))
if rewritten:
    print("  (rewritten from the work folder by --summary-only; the verdict from its records"
          + (": " + "; ".join(l.strip()[:160] for l in failures[:6]) if failures else "") + ")")
for l in env:
    if re.match(r"^(gpu|torch lib|ldd|meminfo): ", l) or re.match(r"^wattbench .*: exit", l):
        print("  " + l)
steps = [l.split(",")[0] for l in read("steps.txt").splitlines()]
if steps:
    print("seconds per step (steps.txt): " + ", ".join(s.replace(": ", " ").replace(" s", "") for s in steps))
tests = section(4)
n = lambda ls, p: sum(1 for l in ls if l.startswith(p))
failed = [l for l in tests if l.startswith("FAIL")]
print(f"tests (own process each): {n(tests, 'PASS ')} passed, {len(failed)} failed, {n(tests, 'SKIP')} skipped"
      + "".join(f"\n  {l[:200]}" for l in failed[:10])
      + "".join(f"\n  {l[:200]}" for l in tests if l.startswith("NOTE")))
for l in [l for k in (4, 5) for l in section(k) if l.startswith("SKIP") and "not run:" in l][:10]:
    print(f"  {l[:200]}")
if not gpu and n(tests, "SKIP"):
    print("  (skipped: no GPU here; each test ran and could not pass without one)")
checks = defaultdict(dict)
for l in section(5):
    m = re.match(r"^(ok|FAIL|UNAVAILABLE|skip|SKIP)\s+(\S+?)/\S+ (\w+)", l)
    if m:
        st, b, what = m.groups()
        prev = checks[b].get(what)
        if prev not in ("FAIL", "UNAVAILABLE", "not-run"):
            # Unavailable on a GPU machine fails the check, unless the backend is optional.
            na = "UNAVAILABLE" if gpu and b not in optional else "n/a"
            new = {"ok": "ok", "FAIL": "FAIL", "UNAVAILABLE": na, "skip": "n/a", "SKIP": "not-run"}[st]
            # An op checks in two modes: one mode run is enough for "ok".
            if not (prev == "ok" and new == "n/a"):
                checks[b][what] = new
if checks:
    print("checks (wattbench check): " + "; ".join(
        f"{b}: " + " ".join(f"{w}={s}" for w, s in sorted(v.items())) for b, v in checks.items()))
if suspects:
    print("run alone in step 6 (a test or check hit a CUDA error, a trap, a time limit or crashed): "
          + " ".join(suspects))
san = section(7)
print("sanitizer: " + (f"{n(san, 'CLEAN')} clean, {n(san, 'MEMCHECK-ERROR')} with errors"
                       if n(san, "CLEAN") + n(san, "MEMCHECK-ERROR") else
                       next((l for l in san if l.startswith("SKIP")), "not run")))

# ---- the side-by-side suite
order = ["gemm", "gemm-wgmma", "gemm-wgmma-c2", "conv2d", "rnn"]
names = order + sorted(k for k in runs if k not in order)
cases = []  # (family, case)
for fam in names:
    path = os.path.join(work, f"gpu-check.{fam}.json")
    if fam not in runs and not os.path.exists(path):
        continue
    if not os.path.exists(path):
        print(f"suite {fam}: {runs.get(fam, 'not run')} (no result file)")
        continue
    try:
        d = json.load(open(path))
    except Exception as e:
        print(f"suite {fam}: gpu-check.{fam}.json unreadable ({e})")
        continue
    cs = d.get("cases", [])
    cases += [(fam, c) for c in cs]
    by = defaultdict(lambda: defaultdict(int))
    for c in cs:
        by[c["backend"]][c["status"]] += 1
    print(f"suite {fam}: {runs.get(fam, '')}; {len(cs)} cases{' (INTERRUPTED)' if d.get('interrupted') else ''}: "
          + "; ".join(f"{b} " + " ".join(f"{k} {v}" for k, v in sorted(s.items())) for b, s in by.items()))
# Failures one by one; skips grouped by their reason.
bad = [c for f, c in cases if c["status"] == "failed"]
for c in bad[:10]:
    print(f"  FAILED {c['id']}: {(c.get('reason') or '')[:150]}")
if len(bad) > 10:
    print(f"  ... and {len(bad) - 10} more failed (gpu-check.*.md)")
why = defaultdict(list)
for f, c in cases:
    if c["status"] == "skipped":
        why[c.get("reason") or "no reason given"].append(c["id"])
for r, ids in list(why.items())[:6]:
    print(f"  skipped {len(ids)} (e.g. {ids[0]}): {r[:150]}")
def key(c):
    return (c["op"], c["mode"], json.dumps(c["params"], sort_keys=True), c["dtype"])
ok = {}
for f, c in cases:
    if c["status"] == "ok":
        ok[(c["backend"], key(c))] = (f, c)
def tf(c):
    return c["throughput"]["gflops_per_s"] / 1e3
def gpu_j(c):  # joules per call of the GPU counter domains alone
    e = c.get("energy") or {}
    js = [d.get("joules_per_iter") for d in e.get("domains") or [] if d["name"].startswith("gpu")]
    return sum(js) if js and None not in js else None
def fig(c):  # three significant digits: a small figure is never printed as 0
    t = c["time"]
    lo, hi = t["ci95_median_s"]
    s = f"{sig3(tf(c)):>6} TFLOP/s ({t['median_s'] * 1e3:.3f} ms [{lo * 1e3:.3f}, {hi * 1e3:.3f}])"
    j = gpu_j(c)
    if j:
        s += f" {sig3(c['throughput']['flops'] / j / 1e9)} GFLOP/J"
    return s
others = {"gemm": ["cublas"], "conv2d": ["cudnn"], "rnn": ["tch", "candle"]}
rows = []
for f, c in cases:  # in the suite's order
    b, k = c["backend"], key(c)
    if b not in ("cuda", "cuda-wgmma", "cuda-wgmma-c2") or c["status"] != "ok":
        continue
    label = f"{c['op']} {c['mode']} {c.get('tag') or ''} {c['dtype']}"
    row = f"  {label:<26} {b} {fig(c)}"
    for o in others.get(c["op"], []):
        if (o, k) in ok:
            fo, v = ok[(o, k)]
            row += (f" | {o} {fig(v)} -> {sig3(tf(c) / tf(v))}"
                    + ("" if fo == f else " (other process)"))
    rows.append(row)
if rows:
    print("ours vs the others (median, its 95% interval; GFLOP/J of the GPU counter; ratio ours/other):")
    print("\n".join(rows[:30]))
print("not timed here (to fit the budget; their generic checks ran in step 5): cuda-naive; tch and "
      "candle on GEMM and conv; the suite's odd and Llama-2 GEMMs (profile-gemm.sh times the Llama ones); GEMM training")

# ---- timing truth
tt = read("torch.txt").splitlines()
t = None
for l in reversed(tt):
    if l.startswith("{"):
        try:
            t = json.loads(l)
            break
        except ValueError:
            pass
if t is None:
    err = read("torch-stderr.txt").strip().splitlines()
    print("torch timing: no result" + (f" ({err[-1][:200]})" if err else " (torch.txt empty)"))
elif "gemm" in t:
    # wattbench times a sustained load (1 s of warm-up, then >= 2 s of samples for NVML's energy
    # window); torch's sustained figure is timed the same way and compared. The burst (5 warm-up
    # calls, 30 timed: about 50 ms) is shown beside it: on a GPU that reaches its power cap under
    # a sustained load, it is timed before the cap clocks the GPU down.
    # The throttle reasons this run recorded (energy truth's and the suites' cases): the power
    # cap explains a faster burst only where it was seen here.
    throttled = set()
    try:
        et = [c for c in json.load(open(os.path.join(work, "energy-truth-run.json"))).get("cases", [])]
    except (OSError, ValueError):
        et = []
    for c in et + [c for _, c in cases]:
        for g in (c.get("energy") or {}).get("gpu_state") or []:
            throttled.update(g.get("throttle_reasons") or [])
    et_capped = any("sw_power_cap" in (g.get("throttle_reasons") or [])
                    for c in et for g in (c.get("energy") or {}).get("gpu_state") or [])
    capped = "sw_power_cap" in throttled
    print(f"timing truth: torch {t['torch']} on {t['device']}, torch.mm (cuBLAS), a pair of CUDA events around each "
          f"call ({t.get('fp32')}; bf16 reduced-precision reduction "
          f"{'ON' if t.get('bf16_reduced_precision_reduction') else 'off'}), vs wattbench cublas's median:")
    if (t.get("method") or {}).get("sustained"):
        print(f"  sustained: {t['method']['sustained']}")
    ms = lambda x: f"{x * 1e3:.3f} ms"
    for g in t["gemm"]:
        ours = next((c for (b, k), (f, c) in ok.items() if b == "cublas" and c["op"] == "gemm"
                     and c["mode"] == "infer" and c["dtype"] == g["dtype"]
                     and c["params"].get("m") == g["n"] and c["params"].get("n") == g["n"]
                     and c["params"].get("k") == g["n"]), None)
        su = g.get("sustained")
        bu = g.get("burst") or (g if "median_s" in g else None)  # a torch.txt from before: the burst alone
        def vs(x):
            if not ours:
                return " | no wattbench cublas result to compare"
            r = ours["time"]["median_s"] / x
            return (f" | wattbench cublas {ms(ours['time']['median_s'])} -> {r:.3f}x"
                    + (" (within 5 %)" if abs(r - 1) <= 0.05 else " (MORE THAN 5 % apart: explain)"))
        head = f"  torch.mm {g['n']}^3 {g['dtype']}:"
        if su:
            f3 = lambda x: f"{x * 1e3:.3f}"
            print(f"{head} sustained {ms(su['median_s'])} [p5-p95 {f3(su['p5_s'])}-{f3(su['p95_s'])}, min-max "
                  f"{f3(su['min_s'])}-{f3(su['max_s'])} ms; {su['calls']} calls over {su['span_s']:.1f} s]"
                  + vs(su["median_s"]))
        if bu:
            line = f"    burst (5 warm-up calls, then 30 timed) {ms(bu['median_s'])}"
            if su:
                d = bu["median_s"] / su["median_s"] - 1
                if d < -0.05 and capped:
                    line += (f", {-d * 100:.0f} % faster than sustained: the GPU not yet at its power cap "
                             "during a burst (a sustained load is clocked down by sw_power_cap, which this run "
                             "recorded" + ("; energy truth's window ended throttled by it" if et_capped else "")
                             + "; evidence: results/gpu/2026-11-30-h200/timing-truth/)")
                elif d < -0.05:
                    line += (f", {-d * 100:.0f} % faster than sustained (unexplained here: this run recorded no "
                             "sw_power_cap throttling)")
                elif d > 0.05:
                    line += f", {d * 100:.0f} % slower than sustained (not the power cap: unexplained here)"
                else:
                    line += " (within 5 % of the sustained figure)"
                print(line)
            else:
                print(f"{head} burst {ms(bu['median_s'])}" + vs(bu["median_s"]))
    if any("sustained" not in g for g in t["gemm"]):
        print("  (a torch.txt from before the sustained timing: bursts alone, against wattbench's sustained load"
              + (", timed before the GPU reaches the power cap this run recorded (sw_power_cap); evidence: "
                 "results/gpu/2026-11-30-h200/timing-truth/)" if capped else ")"))
else:
    print(f"torch timing: {t.get('skipped')}")

# ---- energy truth
def pc_line(c):
    r = f"{c['ratio']:.3f}" if c.get("ratio") is not None else "none"
    return (f"{c['domain']}: counter {c['counter_j']:.1f} J vs integrated power {c['integrated_j']:.1f} J "
            f"over {c['span_s']:.1f} s ({c['samples']} readings), ratio {r}, {c['verdict']} "
            f"(within ±{c['tolerance'] * 100:.0f} %)")
try:
    r = json.load(open(os.path.join(work, "energy-truth-run.json")))
    print("energy truth (cuBLAS bf16 8192^3, 2 s warm-up, then a >= 12 s steady energy window):")
    idle = lambda ds: ", ".join(f"{d['name']} {d['avg_watts']:.1f} W" for d in ds or []
                                if d.get("source") != "estimated" and d.get("avg_watts") is not None) or "none"
    en = r.get("energy") or {}
    print(f"  idle before: {idle(en.get('idle_baseline'))}; after: {idle(en.get('idle_after'))}")
    for c in r.get("cases", []):
        e = c.get("energy") or {}
        if c["status"] != "ok" or not e:
            print(f"  {c['backend']} {c['status']}: {(c.get('reason') or 'no energy')[:200]}")
            continue
        for d in e.get("domains") or []:
            if d.get("power_check"):
                print(f"  steady window only: {pc_line(d['power_check'])}")
        j = gpu_j(c)
        tot = e.get("total_joules_per_iter") or {}
        print(f"  {e.get('calls')} GEMMs over {e.get('window_s', 0):.1f} s: GPU counter "
              + (f"{j:.3f} J per GEMM, {sig3(c['throughput']['flops'] / j / 1e9)} GFLOP/J" if j else "no reading")
              + (f"; total of {', '.join(e.get('total_includes') or [])}: {tot['value']:.3f} J per GEMM "
                 f"[{tot['low']:.3f}, {tot['high']:.3f}]" if tot else ""))
        for g in e.get("gpu_state") or []:
            print(f"  gpu{g.get('index')} at the window's end: SM {g.get('sm_clock_mhz')} MHz, memory "
                  f"{g.get('memory_clock_mhz')} MHz, {g.get('temperature_c')} C, {g.get('power_watts')} W, "
                  f"throttle {','.join(g.get('throttle_reasons') or []) or 'none'}")
except FileNotFoundError:
    print("energy truth: not run (energy-truth-run.json missing; energy-truth.txt says why)")
except Exception as e:
    print(f"energy truth: unreadable ({e!r})")
try:
    m = json.load(open(os.path.join(work, "energy-truth.json")))
    for d in m.get("domains", []):
        if d.get("power_check"):
            print(f"  whole measure span (idle baseline and setup included): {pc_line(d['power_check'])}")
    # The trace's counter-derived power: how long the load stayed above half-way from idle to peak.
    rows = list(csv.DictReader(open(os.path.join(work, "energy-truth.csv"))))
    for col in [k for k in (rows[0] if rows else {}) if re.fullmatch(r"gpu\d+_watts", k)]:
        pts = [(float(x["t_s"]), float(x[col])) for x in rows if x.get(col)]
        if len(pts) > 2:
            lo, hi = min(w for _, w in pts), max(w for _, w in pts)
            mid = (lo + hi) / 2
            above = sum(t1 - t0 for (t0, _), (t1, w) in zip(pts, pts[1:]) if w >= mid)
            print(f"  trace {col[:-6]}: {above:.1f} s above {mid:.0f} W (half-way from {lo:.0f} to {hi:.0f} W) "
                  f"of {pts[-1][0]:.1f} s traced")
except FileNotFoundError:
    pass
except Exception as e:
    print(f"  measure report or trace unreadable ({e!r})")
for l in read("report-errors.txt").splitlines():
    print("FAILED " + l[:300])
print("files (in gpu-check.tgz): " + " ".join(sorted(f for f in os.listdir(work) if not f.startswith(".") and f != "cuda-libs")))
# 1: failed; 3: INCOMPLETE without a failure (the run did not finish, or left parts unrun).
sys.exit(1 if status else 3 if verdict.startswith("INCOMPLETE") else 0)
PY
# --summary-only: the summary of an existing work folder, from its records; nothing runs. Each
# suite run is judged again (wb_judge_run) from the exit status, limit and seconds it recorded
# in suite-status.txt; a record from before those columns is taken as it is.
summary_only() {
  local judged name msg verdict rc secs dt rest
  [ -f "$work/steps.txt" ] || {
    echo "gpu-check.sh --summary-only: $work has no steps.txt: not a work folder of this script" >&2
    return 2
  }
  grep -qE '^gpu: 1\b' "$work/env.txt" 2>/dev/null && gpu=1
  grep -qE '^inventory: .*\bgpu 1\b' "$work/steps.txt" && gpu=1
  judged=$(mktemp /tmp/wattbench-gpu-check-status.XXXXXX)
  while IFS=$'\t' read -r name msg verdict rc secs dt rest; do
    if [[ $rc =~ ^[0-9]+$ ]]; then
      IFS=$'\t' read -r verdict msg <<<"$(wb_judge_run "$name" "$rc" "$work/gpu-check.$name.json" "$secs" "$gpu" "$dt")"
    fi
    printf '%s\t%s%s\n' "$name" "$msg" "${verdict:+$'\t'$verdict}"
  done < <(cat "$work/suite-status.txt" 2>/dev/null) >"$judged"
  wb_summary_write "$work" "$judged" "$gpu" "$summary_src"
}
# --summary-only: nothing else runs.
if [ "$mode" = summary ]; then
  summary_only
  exit $?
fi

mkdir -p "$out" || { echo "gpu-check.sh: cannot make $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
# Execute bits can be lost in transit.
chmod +x "$bin" "$tests_bin" 2>/dev/null
# The work folder is emptied first: only one this script made (its marker inside).
if [ -d "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.wattbench-gpu-check" ]; then
  echo "gpu-check: $work exists and is not a folder of this script; set WATTBENCH_WORK" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work/logs" "$work/suites"
touch "$work/.wattbench-gpu-check"
scratch=$(mktemp -d /tmp/wattbench-gpu-check.XXXXXX)
: >"$work/tests.txt"
: >"$work/steps.txt"
export RUST_BACKTRACE=1
# Kernel PTX cache outside the results.
export WATTBENCH_CACHE=${WATTBENCH_CACHE:-/tmp/wattbench-cache}

# The lanes of steps 4 and 5 still running (the trap stops them, and what they started).
bg=""
killed="" # every process kill_tree signalled, waited for before the last pack
kill_tree() { # PID: stopped first, so that it starts nothing new while its children go
  local c
  kill -STOP "$1" 2>/dev/null || return 0
  # Its children, from /proc (the image may have no `ps`; grep -s passes over a process that
  # ended during the scan, where awk would stop).
  for c in $(grep -sH "^PPid:[[:space:]]*$1\$" /proc/[0-9]*/status | cut -d/ -f3); do kill_tree "$c"; done
  kill "$1" 2>/dev/null
  kill -CONT "$1" 2>/dev/null
  killed="$killed $1"
}
on_exit() {
  local rc=$? p
  for p in $bg; do kill_tree "$p"; done
  # shellcheck disable=SC2086 # one PID a word
  wb_wait_gone $killed
  fold_failures
  [ "$summarised" = 1 ] || summary "stopped early (exit $rc) during step ${step_name:-start}"
  wb_pack "$work" "$out" gpu-check
  rm -rf "$scratch"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. inventory, and one set of CUDA libraries --------------------------------------------
say "inventory"
step inventory
gpu=0
cc=""
if command -v nvidia-smi >/dev/null && limit 30 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu=1; fi
if [ "$gpu" = 1 ]; then
  cc=$(limit 30 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')
  [ "$cc" = 9.0 ] || optional="${optional:+$optional,}cuda-wgmma,cuda-wgmma-c2"
fi
wb_cuda_libs "$work/cuda-libs"
# The three inventories of the binary at once: each loads every backend's libraries.
limit 30 "$bin" list >"$scratch/list.txt" 2>&1 &
p_list=$!
limit 30 "$bin" list --json >"$work/list.json" 2>"$scratch/list-json.err" &
p_json=$!
limit 30 "$bin" info >"$scratch/info.txt" 2>&1 &
p_info=$!
{
  echo "# $(date -u +%FT%TZ) $(hostname)"
  echo "# bundle commit: $(cat "$here/COMMIT" 2>/dev/null) features: $(cat "$here/FEATURES" 2>/dev/null)"
  echo "gpu: $gpu${cc:+ (compute capability $cc)}"
  # A GPU's device node without a GPU listed: nvidia-smi missing or broken on a GPU machine,
  # not a machine without one (the summary shows this `gpu:` line). /dev/nvidiactl alone is
  # not enough: containers given no GPU keep it.
  if [ "$gpu" = 0 ] && compgen -G '/dev/nvidia[0-9]*' >/dev/null; then
    echo "gpu: $(compgen -G '/dev/nvidia[0-9]*' | head -n 1) exists, but \`nvidia-smi -L\` lists no GPU (nvidia-smi $(command -v nvidia-smi >/dev/null && echo fails || echo "is not on PATH")): run as a dry run, and FAILED"
  fi
  wb_cuda_chosen
  echo "torch lib: ${torch_lib:-not found (looked in the site-packages of python3 and /opt/torch/.venv)}"
  echo "python for torch: $wb_py"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  wb_cuda_resolve
  # A library the loader cannot find stops the binary before main (libtorch_cpu, libc10).
  for b in "$bin" "$tests_bin"; do
    missing=$(limit 30 ldd "$b" 2>&1 | grep 'not found' | awk '{print $1}' | xargs)
    echo "ldd $(basename "$b"): ${missing:+NOT FOUND: }${missing:-every library found}"
  done
  # The harness skips a case whose host memory estimate exceeds MemAvailable.
  grep -E '^(MemTotal|MemAvailable):' /proc/meminfo | tr -s ' ' | sed 's/^/meminfo: /'
  echo "cpus: $(nproc)"
  if [ "$gpu" = 1 ]; then
    limit 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit,persistence_mode --format=csv
    limit 30 nvidia-smi
  fi
  wait "$p_list" || echo "wattbench list: exit $?"
  wait "$p_json" || echo "wattbench list --json: exit $?"
  wait "$p_info" || echo "wattbench info: exit $?"
  echo "== wattbench list"
  cat "$scratch/list.txt"
  echo "== wattbench info"
  cat "$scratch/info.txt"
} >"$work/env.txt" 2>&1
grep -qE '^wattbench (list|list --json|info): exit' "$work/env.txt" && status=1
grep -q '^gpu: /dev/nvidia[0-9]* exists' "$work/env.txt" && status=1
grep -E '^(gpu|cuda library (set|links|not linked)|torch lib|python for torch|resolves|ldd|meminfo|wattbench .*: exit)' "$work/env.txt"
grep -E '^  (tch|cuda|cublas|cudnn|candle|cuda-naive|cuda-wgmma|cuda-wgmma-c2) +cuda' "$scratch/list.txt" | cut -c1-160
[ "$gpu" = 1 ] || echo "no NVIDIA GPU here: a dry run (every GPU step says why it cannot test)"
step_done "gpu $gpu, libraries $kind"

# ---- 2. energy truth: the NVML counter beside the integral of the power readings -----------
# One bf16 8192^3 cuBLAS GEMM (about 1.5 ms a call on an H200) repeated through 2 s of warm-up
# (clocks and temperature settle; ENERGY.md 5) and then an energy window of at least 12 s: a
# steady load of >= 10 s. `wattbench run` sets each GPU's energy counter beside the trapezoid
# integral of the driver's power readings over that window (the case's power_check), records
# idle power before and after, the case's clocks, temperature and throttle reasons, joules per
# GEMM and GFLOP/J (energy-truth-run.json). `wattbench measure` around it does the same over
# its whole span, idle baseline and the run's setup included (energy-truth.json), and writes
# the power trace (energy-truth.csv). `timeout --foreground`: measure forwards the signal to
# the run, which must get it once (a second one ends it without writing its file); the run's
# own --max-time bounds it.
say "energy truth: NVML energy counter vs integrated power readings on a steady GEMM"
step energy-truth
cat >"$work/suites/steady.toml" <<'EOF'
name = "steady-gemm"
description = "one bf16 8192^3 GEMM, 2 s of warm-up then an energy window of at least 12 s: a steady load"
dtypes = ["bf16"]
modes = ["infer"]
gemm = [{ tag = "steady8192", m = 8192, n = 8192, k = 8192 }]
EOF
WB_FOREGROUND=1 limit 60 "$bin" measure --interval 50 --output "$work/energy-truth.json" \
  --trace "$work/energy-truth.csv" -- \
  "$bin" run --suite "$work/suites/steady.toml" --backend cublas --device cuda \
  --warmup 2 --energy-window 12 --max-time 30 --output "$work/energy-truth-run.json" \
  >"$work/energy-truth.txt" 2>&1
rc=$?
if [ "$gpu" = 1 ]; then
  echo "energy truth: exit $rc (energy-truth.txt; the summary sets the figures side by side)"
  [ $rc -eq 0 ] || status=1
  grep -E '^cross-check' "$work/energy-truth.txt"
  wb_run_tail "$work/energy-truth.txt" warnings
  step_done "exit $rc"
else
  echo "SKIP energy truth: no GPU (the steady run had nothing to run: exit $rc)"
  step_done "skipped: no GPU (exit $rc)"
fi

# ---- 3. PyTorch's own timing of the same GEMMs -----------------------------------------------
# stdout's last line is the JSON (read by the summary); warnings go to torch-stderr.txt.
say "PyTorch CUDA-event timing"
step torch-timing
NVIDIA_TF32_OVERRIDE=${NVIDIA_TF32_OVERRIDE:-0} limit 60 "$wb_py" - \
  >"$work/torch.txt" 2>"$work/torch-stderr.txt" <<'PY'
# The GEMMs of step 6 timed by PyTorch itself (cuBLAS through torch.mm), to compare with
# wattbench's cublas medians, timed the way wattbench times: 1 s of back-to-back warm-up calls,
# then back-to-back calls for at least 2 s (wattbench samples >= 2 s, NVML's energy window),
# each between a pair of CUDA events: median, 5th and 95th percentiles, min and max. On an H200
# a sustained load runs at the 700 W power cap, clocked down (sw_power_cap) to about 1.5 GHz,
# while the first 0.1 s does not yet (results/gpu/2026-11-30-h200/timing-truth/: 8192^3 bf16
# 1.434 ms then, 1.640 ms over seconds 1-3). The short burst of earlier checks (5 warm-up
# calls, then 30 timed, each synchronized) is kept beside it, timed first, before any
# sustained load of this step. fp32 stays fp32 (no TF32), as in wattbench
# (NVIDIA_TF32_OVERRIDE=0 too), and bf16 split-K partial sums stay fp32, as wattbench's cublas
# handle asks (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION; PyTorch allows bf16 ones by
# default).
import json, statistics, sys
try:
    import torch
except Exception as e:
    print(json.dumps({"skipped": f"torch cannot be imported by {sys.executable}: {e}"}))
    sys.exit(0)
if not torch.cuda.is_available():
    print(json.dumps({"skipped": "torch sees no CUDA device", "torch": torch.__version__}))
    sys.exit(0)
mm = torch.backends.cuda.matmul
if hasattr(mm, "fp32_precision"):  # torch >= 2.9: allow_tf32 is deprecated
    mm.fp32_precision = "ieee"
    prec = "torch.backends.cuda.matmul.fp32_precision = 'ieee'"
else:
    mm.allow_tf32 = False
    prec = "torch.backends.cuda.matmul.allow_tf32 = False"
mm.allow_bf16_reduced_precision_reduction = False
WARM_S, SPAN_S = 1.0, 2.0
out = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.executable,
       "device": torch.cuda.get_device_name(0), "fp32": prec,
       "bf16_reduced_precision_reduction": bool(mm.allow_bf16_reduced_precision_reduction),
       "method": {
           "sustained": f"{WARM_S:g} s of back-to-back warm-up calls, then back-to-back calls for at least "
                        f"{SPAN_S:g} s of GPU time, each between a pair of CUDA events (wattbench's warm-up and span)",
           "burst": "5 warm-up calls, then 30 calls each between a pair of CUDA events and synchronized, "
                    "before any sustained load of this step"},
       "gemm": []}
products = [(n, dt, name) for n in (4096, 8192) for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16"))]
event = lambda: torch.cuda.Event(enable_timing=True)
def operands(n, dt):
    torch.manual_seed(n)
    return (torch.randn(n, n, device="cuda", dtype=dt), torch.randn(n, n, device="cuda", dtype=dt),
            torch.empty(n, n, device="cuda", dtype=dt))
def figures(ts, n):
    xs = sorted(ts)
    at = lambda p: xs[min(len(xs) - 1, round(p * (len(xs) - 1)))]
    med = statistics.median(xs)
    return {"calls": len(xs), "median_s": med, "min_s": xs[0], "p5_s": at(0.05), "p95_s": at(0.95),
            "max_s": xs[-1], "tflops": 2 * n ** 3 / med / 1e12}
def burst(a, b, c):
    for _ in range(5):
        torch.mm(a, b, out=c)
    ts = []
    for _ in range(30):
        s, e = event(), event()
        s.record(); torch.mm(a, b, out=c); e.record(); e.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    return ts
def sustained(a, b, c, per_call):
    # The host waits on a mark one chunk (about 20 ms of calls) behind what it has queued, so
    # that the GPU never idles; the phases end on GPU time, read from the events.
    chunk = max(1, min(512, int(0.02 / per_call)))
    first = event()
    first.record()
    pairs, prev, prev_n, warm = [], None, 0, None
    while True:
        timed = warm is not None
        for _ in range(chunk):
            if timed:
                s, e = event(), event()
                s.record(); torch.mm(a, b, out=c); e.record()
                pairs.append((s, e))
            else:
                torch.mm(a, b, out=c)
        mark = event()
        mark.record()
        if prev is not None:
            prev.synchronize()
            if not timed and first.elapsed_time(prev) / 1e3 >= WARM_S:
                warm = first.elapsed_time(prev) / 1e3
            elif timed and prev_n and pairs[0][0].elapsed_time(pairs[prev_n - 1][1]) / 1e3 >= SPAN_S:
                break
        prev, prev_n = mark, len(pairs)
    # The last chunk's events are complete only once the mark recorded after them is: reading
    # one before raises ("device not ready").
    mark.synchronize()
    ts = [s.elapsed_time(e) / 1e3 for s, e in pairs]
    return ts, warm, pairs[0][0].elapsed_time(pairs[-1][1]) / 1e3
rows = {}
for n, dt, name in products:  # the bursts first, on a GPU not yet loaded by this step
    a, b, c = operands(n, dt)
    rows[(n, name)] = {"n": n, "dtype": name, "burst": figures(burst(a, b, c), n)}
    del a, b, c
for n, dt, name in products:
    a, b, c = operands(n, dt)
    ts, warm, span = sustained(a, b, c, rows[(n, name)]["burst"]["median_s"])
    rows[(n, name)]["sustained"] = dict(figures(ts, n), warmup_s=warm, span_s=span)
    out["gemm"].append(rows[(n, name)])
    del a, b, c
print(json.dumps(out))
PY
rc=$?
[ $rc -eq 0 ] || { [ "$gpu" = 1 ] && status=1; }
python3 - "$work/torch.txt" <<'PY'
import json, sys
try:
    t = json.loads(open(sys.argv[1]).read().splitlines()[-1])
except (IndexError, ValueError):
    sys.exit("torch timing: no result (torch-stderr.txt says why)")
for g in t.get("gemm", []):
    print(f"torch.mm {g['n']}^3 {g['dtype']}: sustained {g['sustained']['median_s'] * 1e3:.3f} ms "
          f"({g['sustained']['calls']} calls over {g['sustained']['span_s']:.1f} s), burst {g['burst']['median_s'] * 1e3:.3f} ms")
if "skipped" in t:
    print(f"torch timing skipped: {t['skipped']}")
PY
step_done "exit $rc"

# ---- 4. GPU tests, each in its own process --------------------------------------------------
# The backends a test exercises (for "run alone" in step 6).
test_backends() {
  case $1 in
    cuda_wgmma_c2::* | wgmma_cluster_*) echo cuda-wgmma-c2 ;;
    cuda_wgmma::* | wgmma_*) echo cuda-wgmma ;;
    cuda_naive::*) echo cuda-naive ;;
    cublas::*) echo cublas ;;
    cudnn::* | cudnn_*) echo cudnn ;;
    gemm_kernels_on_odd_shapes_and_every_transpose) echo cuda cuda-naive cublas ;;
    *) echo cuda ;;
  esac
}
# Runs FUNC on each line of FILE (tab-separated fields as arguments), N at once.
run_pool() { # N FUNC FILE
  local n=$1 f=$2 line
  local -a args
  while IFS= read -r line; do
    IFS=$'\t' read -r -a args <<<"$line"
    while [ "$(jobs -rp | wc -l)" -ge "$n" ]; do wait -n; done
    "$f" "${args[@]}" </dev/null &
  done <"$3"
  wait
}
# Runs FUNC on each line of FILE, one after another.
run_lane() { # FUNC FILE
  local f=$1 line
  local -a args
  while IFS= read -r line; do
    IFS=$'\t' read -r -a args <<<"$line"
    "$f" "${args[@]}" </dev/null
  done <"$2"
}
# The seconds a job may take: at most PER_JOB, and what is left of the step; 0 when under 5.
job_seconds() { # PER_JOB
  local s=$((step_end - $(date +%s)))
  [ "$s" -gt "$1" ] && s=$1
  [ "$s" -lt 5 ] && s=0
  echo "$s"
}
# One GPU test in its own process: its lines in $scratch/r/IDX, the backends to run alone in
# $scratch/r/IDX.suspect.
test_job() { # IDX TEST
  local i=$1 t=$2 res=$scratch/r/$1 s rc t0 dt
  if [[ $t == *wgmma* ]] && [ -s "$scratch/wgmma-hung" ]; then
    echo "SKIP $t (not run: $(cat "$scratch/wgmma-hung") hit its time limit, and a hung Hopper kernel would hang again)" >"$res"
    return
  fi
  s=$(job_seconds 45)
  if [ "$s" = 0 ]; then
    echo "SKIP $t (not run: the step's $step_cap s were spent)" >"$res"
    return
  fi
  t0=$(date +%s)
  WB_KILL_AFTER=5 limit "$s" "$tests_bin" --ignored --exact "$t" --test-threads 1 --show-output >"$res.log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  {
    if [ "$gpu" != 1 ]; then
      echo "SKIP $t (no GPU here, so it cannot pass: it ran and exited $rc)"
    elif [ "$rc" -eq 0 ] && grep -q '^test result: ok\. 1 passed' "$res.log"; then
      echo "PASS $t (${dt} s)"
    elif [ "$rc" -eq 0 ]; then
      echo "FAIL $t (exit 0 but no test passed: the name matched no test, or the binary ran none)"
    else
      case $rc in
        124 | 137)
          echo "FAIL $t (hit its ${s} s time limit: a hung kernel?)"
          [[ $t == *wgmma* ]] && echo "$t" >"$scratch/wgmma-hung" ;;
        *) echo "FAIL $t (exit $rc, ${dt} s)" ;;
      esac
      grep -v '^\s*$' "$res.log" | tail -n 25 | sed 's/^/    /'
      wb_log "$res.log" "$work/logs/test.${t//::/.}.log"
      wb_faulted "$res.log" "$rc" "0 101" && test_backends "$t" >"$res.suspect"
    fi
  } >"$res"
}
say "GPU tests (each in its own process, $jobs_at_once at once; wgmma tests in their own lane)"
step gpu-tests
step_cap=60
step_end=$(($(date +%s) + step_cap))
mkdir -p "$scratch/r"
{
  echo "## 4. GPU tests of wattbench-cuda, each in its own process"
  if [ -x "$tests_bin" ]; then
    limit 30 "$tests_bin" --list --ignored 2>"$scratch/list.err" | sed -n 's/: test$//p' >"$scratch/tests"
    if [ ! -s "$scratch/tests" ]; then
      # A test binary that does not start, or a list format this script does not read.
      echo "FAIL no GPU test listed by $(basename "$tests_bin") --list --ignored"
      tail -n 10 "$scratch/list.err" | sed 's/^/    /'
    fi
    : >"$scratch/tests.wgmma"
    : >"$scratch/tests.other"
    i=0
    while read -r t; do
      [ -n "$t" ] || continue
      i=$((i + 1))
      # The Hopper GEMM's tests need compute capability 9.0: elsewhere they are skipped, named.
      if [ "$gpu" = 1 ] && [ "$cc" != 9.0 ] && [[ $t == *wgmma* ]]; then
        echo "SKIP $t (the Hopper GEMM needs compute capability 9.0; this GPU is ${cc:-unknown})" >"$scratch/r/$i"
      elif [[ $t == *wgmma* ]]; then
        printf '%s\t%s\n' "$i" "$t" >>"$scratch/tests.wgmma"
      else
        printf '%s\t%s\n' "$i" "$t" >>"$scratch/tests.other"
      fi
    done <"$scratch/tests"
    # The whole-module tests (no ::) are the long ones: started first.
    sort -t$'\t' -k2,2 "$scratch/tests.other" | awk -F'\t' '{ print ($2 ~ /::/) "\t" $0 }' |
      sort -s -n -k1,1 | cut -f2- >"$scratch/tests.sorted"
    run_lane test_job "$scratch/tests.wgmma" &
    lane=$!
    run_pool "$jobs_at_once" test_job "$scratch/tests.sorted" &
    pool=$!
    bg="$lane $pool"
    wait "$lane" "$pool"
    bg=""
    for j in $(seq 1 "$i"); do cat "$scratch/r/$j" 2>/dev/null; done
    cat "$scratch"/r/*.suspect 2>/dev/null >"$scratch/suspects.tests"
    skipped=$(cat "$scratch"/r/[0-9]* 2>/dev/null | grep -c '^SKIP .*a hung Hopper kernel')
    [ "$skipped" -gt 0 ] &&
      echo "NOTE after $(cat "$scratch/wgmma-hung") hit its time limit, the $skipped remaining wgmma tests were skipped"
  elif [ "$gpu" = 1 ]; then
    echo "FAIL no test binary in the bundle ($(basename "$tests_bin"))"
  else
    echo "SKIP no test binary in the bundle"
  fi
} >>"$work/tests.txt"
suspects="$suspects $(xargs 2>/dev/null <"$scratch/suspects.tests")"
sec4=$(sed -n '/^## 4\./,$p' "$work/tests.txt")
echo "passed: $(grep -c '^PASS' <<<"$sec4"), failed: $(grep -c '^FAIL' <<<"$sec4"), skipped: $(grep -c '^SKIP' <<<"$sec4")"
grep -E '^(FAIL|NOTE)' <<<"$sec4" | head -n 20
step_done "$(grep -c '^PASS' <<<"$sec4") passed, $(grep -c '^FAIL' <<<"$sec4") failed, $(grep -c '^SKIP' <<<"$sec4") skipped"

# ---- 5. the generic checks on every backend --------------------------------------------------
# An unavailable device (exit 2 of `wattbench check`, which also ends a refused selection;
# the reason on its last line): a failure on a GPU machine unless the backend is optional
# (WATTBENCH_GPU_OPTIONAL); n/a in a dry run.
unavailable() { # BACKEND WHAT LOG
  echo "UNAVAILABLE $1/cuda:0 $2 (exit 2): $(tail -n 1 "$3")"
  case ",$optional," in *",$1,"*) return ;; esac
  if [ "$gpu" = 1 ]; then
    echo "    fails the check: a GPU is here (WATTBENCH_GPU_OPTIONAL lists the backends that may be unavailable)"
  fi
}
# One `wattbench check` of BACKEND's op WHAT (or its trainer, WHAT = trainer) in its own process.
check_job() { # IDX BACKEND WHAT
  local i=$1 b=$2 what=$3 res=$scratch/c/$1 s rc
  local -a sel=(--op "$what" --model none)
  [ "$what" = trainer ] && sel=(--op none)
  if [[ $b == cuda-wgmma* ]] && [ -s "$scratch/wgmma-hung" ]; then
    echo "SKIP $b/cuda:0 $what (not run: $(cat "$scratch/wgmma-hung") hit its time limit)" >"$res"
    return
  fi
  s=$(job_seconds 45)
  if [ "$s" = 0 ]; then
    echo "SKIP $b/cuda:0 $what (not run: the step's $step_cap s were spent)" >"$res"
    return
  fi
  WB_KILL_AFTER=5 limit "$s" "$bin" check --backend "$b" --device cuda:0 "${sel[@]}" >"$res.log" 2>&1
  rc=$?
  {
    case $rc in
      0) grep -E '^(ok|FAIL|skip)' "$res.log" ;;
      2) unavailable "$b" "$what" "$res.log" ;;
      124 | 137)
        grep -E '^(ok|FAIL|skip)' "$res.log"
        echo "FAIL $b/cuda:0 $what: hit its ${s} s time limit (a hung kernel?)"
        [[ $b == cuda-wgmma* ]] && echo "the $b check of $what" >"$scratch/wgmma-hung" ;;
      *)
        grep -E '^(ok|FAIL|skip)' "$res.log"
        echo "FAIL $b/cuda:0 $what: exit $rc"
        grep -vE '^(ok|FAIL|      )' "$res.log" | tail -n 20 | sed 's/^/    /' ;;
    esac
  } >"$res"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || wb_log "$res.log" "$work/logs/check.$b.$what.log"
  [ "$gpu" = 1 ] && wb_faulted "$res.log" "$rc" && echo "$b" >"$res.suspect"
}
say "wattbench check on $backends ($jobs_at_once at once; wgmma in its own lane)"
step checks
step_cap=60
step_end=$(($(date +%s) + step_cap))
mkdir -p "$scratch/c"
: >"$scratch/checks.wgmma"
: >"$scratch/checks.other"
i=0
IFS=, read -r -a bs <<<"$backends"
for b in "${bs[@]}"; do
  whats="gemm conv2d rnn"
  # Trainers, for the backends that train (list --json, read once in step 1).
  python3 -c "import json,sys; sys.exit(0 if any(x['name']==sys.argv[2] and x.get('trains') for x in json.load(open(sys.argv[1]))['backends']) else 1)" \
    "$work/list.json" "$b" 2>/dev/null && whats="$whats trainer"
  for what in $whats; do
    i=$((i + 1))
    if [[ $b == cuda-wgmma* ]]; then
      printf '%s\t%s\t%s\n' "$i" "$b" "$what" >>"$scratch/checks.wgmma"
    else
      printf '%s\t%s\t%s\n' "$i" "$b" "$what" >>"$scratch/checks.other"
    fi
  done
done
{
  echo "## 5. wattbench check (the test suite's generic checks), one process per backend and op"
  run_lane check_job "$scratch/checks.wgmma" &
  lane=$!
  run_pool "$jobs_at_once" check_job "$scratch/checks.other" &
  pool=$!
  bg="$lane $pool"
  wait "$lane" "$pool"
  bg=""
  for j in $(seq 1 "$i"); do cat "$scratch/c/$j" 2>/dev/null; done
} >>"$work/tests.txt"
suspects="$suspects $(cat "$scratch"/c/*.suspect 2>/dev/null | xargs)"
sec5=$(sed -n '/^## 5\./,$p' "$work/tests.txt")
echo "checks ok: $(grep -c '^ok' <<<"$sec5")"
grep -E '^(FAIL|UNAVAILABLE|SKIP)' <<<"$sec5" | cut -c1-200 | sed -n '1,12p'
step_done "$(grep -c '^ok' <<<"$sec5") ok, $(grep -c '^FAIL' <<<"$sec5") failed, $(grep -c '^UNAVAILABLE' <<<"$sec5") unavailable, $(grep -c '^SKIP' <<<"$sec5") skipped"

# ---- 6. the side-by-side suite, one process per op family ------------------------------------
# The cases issue 8 compares, taken from the bundle's gpu-check suite by tag: GEMM gemm4096
# and gemm8192 (fp32 and bf16, inference), every conv2d entry (ResNet-50's 3x3 layers, forward
# and training) and every rnn entry (LSTM and GRU, forward and training). The suite's other
# entries (the odd and Llama-2 GEMMs, GEMM training) are left out to fit the budget: their
# generic checks ran in step 5, and profile-gemm.sh times the Llama GEMMs.
suite=$work/suites/side-by-side.toml
if ! "$wb_py" - "$here/benchmarks/gpu-check.toml" "$suite" 2>"$scratch/suite.err" <<'PY'; then
import json, sys, tomllib
src, dst = sys.argv[1:]
s = tomllib.load(open(src, "rb"))
def val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(val(x) for x in v) + "]"
    raise TypeError(f"unexpected value {v!r}")
def table(d):
    return "{ " + ", ".join(f"{k} = {val(v)}" for k, v in d.items()) + " }"
gemm = [{k: v for k, v in e.items() if k != "modes"} for e in s.get("gemm", [])
        if e.get("tag") in ("gemm4096", "gemm8192")]
if len(gemm) != 2 or not s.get("conv2d") or not s.get("rnn"):
    sys.exit("gpu-check.toml has no gemm4096/gemm8192 entries, or no conv2d or rnn")
lines = ['name = "gpu-check-side-by-side"',
         'description = "issue 8\'s side-by-side cases of the gpu-check suite: GEMM 4096^3 and '
         '8192^3 (fp32, bf16; inference), ResNet-50 3x3 conv (forward, training), LSTM/GRU steps"',
         f"dtypes = {val(s.get('dtypes', ['f32']))}", 'modes = ["infer"]']
for op, entries in (("gemm", gemm), ("conv2d", s["conv2d"]), ("rnn", s["rnn"])):
    lines.append(f"{op} = [")
    lines += [f"  {table(e)}," for e in entries]
    lines.append("]")
open(dst, "w").write("\n".join(lines) + "\n")
PY
  # The suite's layout changed: the whole gpu-check suite (the GEMM families run inference only).
  echo "the side-by-side subset could not be made ($(tail -n 1 "$scratch/suite.err")): the whole gpu-check suite runs instead"
  cp "$here/benchmarks/gpu-check.toml" "$suite" 2>/dev/null || suite="gpu-check"
fi
: >"$work/suite-status.txt"
# One family: OPS on BACKENDS in one process, for at most SECONDS. Its line in suite-status.txt:
# NAME, the verdict's message, pass|fail|skip, the exit status, the limit and the seconds it
# took (for --summary-only to judge it again).
fam_run() { # NAME OPS BACKENDS SECONDS [EXTRA...]
  local name=$1 ops=$2 bk=$3 secs=$4 f=$work/gpu-check.$1.json log=$work/run.$1.txt rc t0 dt msg verdict
  shift 4
  say "suite $name: $ops on $bk (limit $secs s)"
  step "suite-$name"
  t0=$(date +%s)
  WB_KILL_AFTER=10 limit "$secs" "$bin" run --suite "$suite" --op "$ops" --backend "$bk" --device cuda \
    --output "$f" "$@" >"$log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  IFS=$'\t' read -r verdict msg <<<"$(wb_judge_run "$name" "$rc" "$f" "$secs" "$gpu" "$dt")"
  [ "$verdict" = fail ] && status=1
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$msg" "$verdict" "$rc" "$secs" "$dt" >>"$work/suite-status.txt"
  echo "$msg"
  wb_run_tail "$log"
  step_done "$msg"
}
fam_skip() { # NAME WHY [VERDICT: skip, or not-run for a family the budget left out]
  printf '%s\t%s\t%s\n' "$1" "SKIPPED: $2" "${3:-skip}" >>"$work/suite-status.txt"
  echo "SKIP suite $1: $2"
}
# shellcheck disable=SC2086 # a word list
suspects=$(printf "%s\n" $suspects | sort -u | xargs)
[ -n "$suspects" ] && echo "run alone (a test or check hit a CUDA error, a trap, a time limit or crashed): $suspects"
configured() { case ",$backends," in *",$1,"*) return 0 ;; esac; return 1; }
suspect() { case " $suspects " in *" $1 "*) return 0 ;; esac; return 1; }
# The families: NAME OPS BACKENDS CAP FLOOR EXTRA (FLOOR: the seconds kept for it while the
# families before it run). BACKENDS are those configured and not suspect.
families=()
alone=""
add_family() { # NAME OPS BACKENDS CAP FLOOR EXTRA
  local b keep=""
  for b in ${3//,/ }; do
    configured "$b" || continue
    if suspect "$b" && [[ $b != cuda-wgmma* ]]; then
      case " $alone " in *" $b "*) ;; *) alone="$alone $b" ;; esac
    else
      keep=${keep:+$keep,}$b
    fi
  done
  [ -n "$keep" ] && families+=("$1|$2|$keep|$4|$5|$6")
}
add_family gemm gemm cuda,cublas 50 25 "--mode infer"
if [ "$gpu" = 1 ] && [ "$cc" != 9.0 ]; then
  fam_skip gemm-wgmma "the Hopper GEMM needs compute capability 9.0; this GPU is ${cc:-unknown}"
  fam_skip gemm-wgmma-c2 "the Hopper GEMM needs compute capability 9.0; this GPU is ${cc:-unknown}"
elif [ -s "$scratch/wgmma-hung" ]; then
  # A hung Hopper kernel would hang again, for each family's whole limit.
  fam_skip gemm-wgmma "$(cat "$scratch/wgmma-hung") hit its time limit in step 4 or 5 (a hung kernel?)"
  fam_skip gemm-wgmma-c2 "$(cat "$scratch/wgmma-hung") hit its time limit in step 4 or 5 (a hung kernel?)"
else
  add_family gemm-wgmma gemm cuda-wgmma 30 12 "--dtype bf16 --mode infer"
  add_family gemm-wgmma-c2 gemm cuda-wgmma-c2 30 12 "--dtype bf16 --mode infer"
fi
add_family conv2d conv2d cuda,cudnn 70 30 ""
add_family rnn rnn cuda,tch,candle 65 30 ""
ops_of() { # BACKEND: the ops of its families
  case $1 in cuda) echo gemm,conv2d,rnn ;; cublas) echo gemm ;; cudnn) echo conv2d ;; *) echo rnn ;; esac
}
# Alone, last: what is left of the budget (cuda has three families' cases).
for b in $alone; do
  cap=45
  [ "$b" = cuda ] && cap=90
  families+=("alone-$b|$(ops_of "$b")|$b|$cap|0|")
done
for k in "${!families[@]}"; do
  IFS='|' read -r name ops bk cap _ extra <<<"${families[$k]}"
  # Kept for the families after this one (their floors), and 10 s for the summary.
  reserve=10
  for later in "${families[@]:$((k + 1))}"; do
    IFS='|' read -r _ _ _ _ floor _ <<<"$later"
    reserve=$((reserve + floor))
  done
  secs=$(($(left) - reserve))
  [ "$secs" -gt "$cap" ] && secs=$cap
  if [ "$secs" -lt 10 ]; then
    fam_skip "$name" "the time budget is spent ($(left) s left, $reserve s kept for what follows)" not-run
    continue
  fi
  # shellcheck disable=SC2086 # EXTRA is a word list
  fam_run "$name" "$ops" "$bk" "$secs" $extra
done
for f in "$work"/gpu-check.*.json; do
  [ -f "$f" ] || continue
  # A result file `report` cannot read is a failure of the check (kept in report-errors.txt).
  limit 30 "$bin" report "$f" --output "${f%.json}.md" >/dev/null 2>"$scratch/report.err"
  rc=$?
  if [ $rc -eq 124 ] && [ "$(left)" -lt 5 ]; then
    # Not run: the budget is spent (the JSON file is in the archive all the same).
    echo "report of $(basename "$f") not made: the time budget is spent (not a failure)"
  elif [ $rc -ne 0 ]; then
    echo "report of $(basename "$f") failed: $(head -c 300 "$scratch/report.err")" |
      tee -a "$work/report-errors.txt"
    status=1
  fi
done

# ---- 7. compute-sanitizer memcheck over the small tests ---------------------------------------
say "compute-sanitizer"
step sanitizer
san=$(wb_tool compute-sanitizer) || san=""
[ -z "$san" ] && [ -x "$here/sanitizer/bin/compute-sanitizer" ] && san=$here/sanitizer/bin/compute-sanitizer
{
  echo "## 7. compute-sanitizer --tool memcheck over the small GPU tests (generic shapes)"
  if [ -z "$san" ]; then
    echo "SKIP compute-sanitizer not found (PATH, /usr/local/cuda/bin, site-packages nvidia/*/bin, the bundle)"
  elif [ "$gpu" != 1 ]; then
    echo "SKIP no GPU: memcheck needs one"
  elif [ ! -x "$tests_bin" ]; then
    echo "SKIP no test binary"
  else
    grep -E '^cuda::' "$scratch/tests" >"$scratch/small"
    while read -r t; do
      # About 1 s a test on the H200 of 2026-11-30 (six in 5 s).
      s=$(($(left) - 10))
      [ "$s" -gt 60 ] && s=60
      if [ "$s" -lt 15 ]; then echo "SKIP $t: the time budget is spent"; continue; fi
      WB_KILL_AFTER=5 limit "$s" "$san" --tool memcheck --error-exitcode 97 --leak-check no \
        "$tests_bin" --ignored --exact "$t" --test-threads 1 >"$scratch/log" 2>&1
      rc=$?
      case $rc in
        0) echo "CLEAN $t" ;;
        97) echo "MEMCHECK-ERROR $t"; grep -E 'Invalid|ERROR SUMMARY|at 0x|by thread' "$scratch/log" | head -n 20 | sed 's/^/    /' ;;
        124 | 137) echo "SKIP $t: not finished under the sanitizer within $s s" ;;
        *) echo "FAIL $t (exit $rc under the sanitizer)"; tail -n 10 "$scratch/log" | sed 's/^/    /' ;;
      esac
    done <"$scratch/small"
  fi
} >>"$work/tests.txt"
sec7=$(sed -n '/^## 7\./,$p' "$work/tests.txt")
grep -E '^(SKIP|CLEAN|MEMCHECK-ERROR|FAIL)' <<<"$sec7" | tail -n 8
step_done "$(grep -c '^CLEAN' <<<"$sec7") clean, $(grep -c '^MEMCHECK-ERROR' <<<"$sec7") with errors"

# ---- 8. the summary, last ---------------------------------------------------------------------
fold_failures
summary
rc=$?
summarised=1
cat "$work/summary.txt"
# The summary's own findings (a mix of CUDA libraries: 1; INCOMPLETE: 3; 1 too when it failed).
[ "$rc" = 1 ] && status=1
[ "$status" = 0 ] && [ "$rc" = 3 ] && status=3
exit $status
