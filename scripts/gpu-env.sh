# shellcheck shell=bash disable=SC2034,SC2154  # sets and reads the sourcing script's variables
# Shared by the GPU machine's scripts (gpu-check.sh, profile-gemm.sh), sourced from the bundle:
#
#   wb_cuda_libs LINKS  choose one set of CUDA libraries and put it first on LD_LIBRARY_PATH,
#                     behind LINKS, a folder of unversioned links (libcublas.so, ...) to that
#                     set's files (see wb_cuda_links); sets $kind (wheels, toolkit or none),
#                     $torch_lib (torch's lib/, or empty), $wb_py (a python3 that finds torch,
#                     else python3), $wb_links (LINKS, or empty when none was made) and
#                     $wb_unlinked (the libraries the chosen set lacks, which got no link)
#   wb_cuda_chosen    env.txt's "cuda library ..." lines: the set chosen, each link's file
#   wb_cuda_resolve   the "resolves:" lines: the file each name cudarc asks for resolves to
#   wb_tool NAME      the path of a CUDA tool (PATH, /usr/local/cuda/bin, Nsight Compute's
#                     folder, site-packages nvidia/*/bin), or nothing
#   elapsed, left     seconds since $start, and left of $budget (both set by the script)
#   limit S CMD...    run CMD for at most S seconds and never beyond the budget: SIGINT first
#                     (so that `wattbench run` writes what it completed), SIGKILL
#                     $WB_KILL_AFTER s later (default 20); 124 without running when under 5 s
#                     are left. WB_FOREGROUND=1: the signal goes to CMD alone, not to its
#                     process group (for `wattbench measure -- CMD`, which forwards it itself:
#                     the inner command must get it once, or it exits without writing its file)
#   say TEXT          a step's heading, with the seconds so far
#   wb_faulted LOG RC [OKS]  whether a run (output in LOG, exit status RC) faulted
#   wb_pack WORK OUT NAME   WORK as OUT/NAME.tgz (written whole, then renamed; without
#                     cuda-libs/, links into this machine's folders that would dangle anywhere
#                     else), and WORK's summary.txt as OUT/NAME-summary.txt: the device returns
#                     at most 8 files
#   wb_log SRC DEST   a log kept in the work folder: its last MiB (a flooded log would push the
#                     archive past what the device returns)
#   wb_wait_gone PIDS  wait up to 5 s for stopped processes to end (they write on the way)
#   wb_run_file FILE  the state of a `wattbench run` result file: complete or interrupted, with
#                     its ok, skipped and failed counts, missing, or unreadable
#   wb_judge_run NAME RC FILE LIMIT GPU [SECONDS]  the verdict on one `wattbench run` from its
#                     exit status and its result file, as "pass|fail|skip<TAB>message": the
#                     rule both scripts apply, to a run as it ends and again in --summary-only
#   wb_run_tail LOG [warnings]  what a step echoes of a run's output: its warnings whole
#   $wb_summary_py    Python the summaries start with (sig3: a figure to three significant
#                     digits; cuda_lib_mix: what the result files say their processes loaded
#                     of the CUDA libraries that is not one set, the chosen one)
#
# Sourcing it also points the driver's JIT cache at a folder this run can write
# (CUDA_CACHE_PATH, unless set; 1 GiB): our modules are PTX the driver compiles on first load
# (the Hopper GEMM's file takes ptxas about 20 s), which every later process of the run, every
# test binary included, then loads from the cache instead of compiling again.
#
# (The tensor-core instructions in our kernels' machine code are checked where they are built,
# by `make kernel-check`; ncu's instruction statistics show what the GPU executed.)

# The site-packages folders to look in: python3's, then the GPU machine's torch environment
# (/opt/torch/.venv; its python3 is on PATH there, but a PATH without it must not lose libtorch,
# without which the wattbench binary does not even start). $WATTBENCH_SITE_PACKAGES, when
# set, comes first: a folder named on purpose wins over the ones found.
wb_site_packages() {
  {
    [ -n "${WATTBENCH_SITE_PACKAGES:-}" ] && [ -d "$WATTBENCH_SITE_PACKAGES" ] && echo "$WATTBENCH_SITE_PACKAGES"
    python3 -c 'import site, os; [print(p) for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]' 2>/dev/null
    local d
    for d in /opt/torch/.venv/lib/python3*/site-packages; do
      [ -d "$d" ] && echo "$d"
    done
  } | awk '!seen[$0]++'
}

# The CUDA libraries cudarc (our backends, candle's) opens by name, and the major version of
# each that these bindings (CUDA 13, cuDNN 9) take. cudarc tries the unversioned name first
# (libcublas.so), then versioned ones (libcublas.so.13); the pip wheels ship only the versioned
# files, so without a link the unversioned name falls through to ld.so.cache: a toolkit's or
# the system's copy (the H200 run of 2026-11-30 loaded cuBLAS and NVRTC from /usr/local/cuda-13.0
# and cuDNN from /usr/lib while torch and cuBLASLt came from the wheels).
wb_cuda_names="cublas:13 cublasLt:13 nvrtc:13 cudnn:9 cudart:13 curand:10"

# Where a CUDA toolkit's libraries are (the toolkit set, when there are no wheels), and where
# else cuDNN 9 is looked for: no toolkit ships cuDNN, which comes with the system (a deb's
# /usr/lib/x86_64-linux-gnu) or a folder of its own (wb_cudnn_dir asks the toolkit's folder,
# then ld.so.cache, then these). Variables, so that a test can point them at a fake toolkit.
wb_toolkit_dirs="/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib"
wb_cudnn_dirs="/usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib"

# LINKS: a fresh folder of unversioned links (libcublas.so -> DIR/libcublas.so.13, ...) to the
# first of DIRS (colon-separated) that has each library, so that cudarc's first name opens the
# chosen set's file. A library no folder has gets no link (its name is added to $wb_unlinked;
# cudarc then finds whatever LD_LIBRARY_PATH and ld.so.cache give): the others are linked all
# the same. Fails only when LINKS cannot be made.
wb_cuda_links() { # LINKS DIRS
  local links=$1 dirs=$2 nv stem major d f
  local -a ds
  wb_unlinked=""
  rm -rf "$links"
  mkdir -p "$links" || return 1
  IFS=: read -r -a ds <<<"$dirs"
  for nv in $wb_cuda_names; do
    stem=${nv%%:*}
    major=${nv#*:}
    f=""
    for d in "${ds[@]}"; do
      # The soname's file (libcublas.so.13), else a fuller version (libcublas.so.13.1.0.3).
      for f in "$d/lib$stem.so.$major" "$d/lib$stem.so.$major".*; do
        [ -e "$f" ] && break
        f=""
      done
      [ -n "$f" ] && break
    done
    if [ -n "$f" ] && ln -sfn "$f" "$links/lib$stem.so"; then :; else
      wb_unlinked="${wb_unlinked:+$wb_unlinked }$stem"
    fi
  done
  return 0
}

# The folder of cuDNN 9 for a toolkit set whose folder is TOOLKIT_LIB: that folder when it has
# it, else the one ld.so.cache names, else the first of $wb_cudnn_dirs with it; nothing when
# none has it.
wb_cudnn_dir() { # TOOLKIT_LIB
  local d f
  for d in "$1" "$(ldconfig -p 2>/dev/null | awk '$1 ~ /^libcudnn\.so\.9/ {print $NF; exit}' | xargs -r dirname)" \
    $wb_cudnn_dirs; do
    [ -n "$d" ] || continue
    for f in "$d/libcudnn.so.9" "$d"/libcudnn.so.9.*; do
      [ -e "$f" ] && { echo "$d"; return 0; }
    done
  done
  return 1
}

wb_cuda_libs() { # LINKS
  # The machine's pip wheels (site-packages/nvidia/*/lib) and torch's lib/, or else the CUDA
  # toolkit with the system's cuDNN 9 (wb_cudnn_dir): one set of cuBLAS, cuBLASLt, cuDNN and
  # NVRTC, first on the path behind the unversioned links to it (LINKS), never a mix (the
  # summaries check the libraries each run loaded). Wheels and torch are taken from the first
  # folder that has them, never across folders. The cuDNN folder is linked, not put on the
  # path: it is the system's (/usr/lib/...), which first on the path would override the set.
  local d sp wheels="" libs cudnn=""
  kind=none
  torch_lib=""
  wb_links=""
  wb_unlinked=""
  while read -r sp; do
    [ -z "$torch_lib" ] && [ -e "$sp/torch/lib/libtorch_cpu.so" ] && torch_lib=$sp/torch/lib
    if [ -z "$wheels" ] && ls "$sp"/nvidia/*/lib/libcublas.so.13* >/dev/null 2>&1 &&
      ls "$sp"/nvidia/*/lib/libnvrtc.so.13* >/dev/null 2>&1; then
      wheels=$(for d in "$sp"/nvidia/*/lib; do [ -d "$d" ] && printf '%s:' "$d"; done)
      wheels=${wheels%:}
    fi
  done < <(wb_site_packages)
  libs=""
  if [ -n "$wheels" ]; then
    kind=wheels
    libs=$wheels
  else
    for d in $wb_toolkit_dirs; do
      if [ -e "$d/libcublas.so" ] || ls "$d"/libcublas.so.* >/dev/null 2>&1; then
        kind=toolkit
        libs=$d
        cudnn=$(wb_cudnn_dir "$d") || cudnn=""
        [ "$cudnn" = "$d" ] && cudnn=""
        break
      fi
    done
  fi
  if [ -n "$libs" ] && [ -n "${1:-}" ] && wb_cuda_links "$1" "$libs${cudnn:+:$cudnn}"; then
    wb_links=$1
    libs="$wb_links:$libs"
  fi
  [ -n "$torch_lib" ] && libs="${libs:+$libs:}$torch_lib"
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The python3 that has torch (PyTorch's timing), found without importing it.
  wb_py=python3
  for d in python3 /opt/torch/.venv/bin/python3; do
    if command -v "$d" >/dev/null &&
      "$d" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null; then
      wb_py=$d
      break
    fi
  done
}

# The set wb_cuda_libs chose, as env.txt records it (the summaries judge the libraries the runs
# loaded against its "cuda library chosen:" lines): the kind, the links folder, each link's
# file, and the libraries that got no link.
wb_cuda_chosen() {
  local l
  echo "cuda library set: $kind"
  echo "cuda library links: ${wb_links:-none made} (unversioned names, first on LD_LIBRARY_PATH)"
  if [ -n "$wb_links" ]; then
    for l in "$wb_links"/lib*.so; do
      [ -L "$l" ] && echo "cuda library chosen: $(basename "$l") -> $(readlink -f "$l")"
    done
    [ -n "$wb_unlinked" ] && echo "cuda library not linked: $wb_unlinked (not in the chosen set: cudarc" \
      "finds these through LD_LIBRARY_PATH and ld.so.cache, wherever they are)"
  fi
  return 0
}

# For each library cudarc opens, and libcuda and torch's: the file the dynamic loader would
# open for the names asked, in order (unversioned first, as cudarc asks), with this
# LD_LIBRARY_PATH, then ld.so.cache.
wb_cuda_resolve() {
  local nv stem major name names d found how
  local -a path
  IFS=: read -r -a path <<<"$LD_LIBRARY_PATH"
  for nv in cuda:1 $wb_cuda_names torch_cuda: torch_cpu: c10:; do
    stem=${nv%%:*}
    major=${nv#*:}
    names="lib$stem.so${major:+ lib$stem.so.$major}"
    found=""
    for name in $names; do
      for d in "${path[@]}"; do
        [ -n "$d" ] && [ -e "$d/$name" ] && { found=$(readlink -f "$d/$name"); how="$name in $d"; break; }
      done
      [ -n "$found" ] && break
      found=$(ldconfig -p 2>/dev/null | awk -v l="$name" '$1 == l {print $NF; exit}')
      [ -n "$found" ] && { how="$name in ld.so.cache"; found=$(readlink -f "$found"); break; }
    done
    echo "resolves: ${names// / else } -> ${found:-not found}${found:+ ($how)}"
  done
}

wb_tool() {
  local c sp
  for c in "$(command -v "$1" 2>/dev/null)" "/usr/local/cuda/bin/$1" /opt/nvidia/nsight-compute/*/"$1"; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  while read -r sp; do
    for c in "$sp"/nvidia/*/bin/"$1"; do
      [ -x "$c" ] && { echo "$c"; return 0; }
    done
  done < <(wb_site_packages)
  return 1
}

elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((budget - $(elapsed))); }
limit() {
  local s=$1
  shift
  local l
  l=$(left)
  [ "$l" -lt "$s" ] && s=$l
  [ "$s" -lt 5 ] && { echo "skipped: the time budget is spent" >&2; return 124; }
  if [ "${WB_FOREGROUND:-0}" = 1 ]; then
    timeout --foreground -s INT -k "${WB_KILL_AFTER:-20}" "$s" "$@"
  else
    timeout -s INT -k "${WB_KILL_AFTER:-20}" "$s" "$@"
  fi
}
say() { echo "== $* ($(elapsed) s)"; }
# Whether a run (its output in LOG, its exit status RC) faulted: a CUDA error (the driver's
# CUDA_ERROR_* names, or torch's "CUDA error: ..."), an illegal address, our kernels' watchdog
# `trap`, a time limit (124/137: a hung kernel), or an exit status not among OKS (default
# "0 1 2": `wattbench check`'s pass, verification failure and unavailable; a test binary's are
# "0 101", 101 being a failed test), i.e. a panic or a signal. A kernel fault poisons the CUDA
# context of its process, and with it every later case.
wb_faulted() { # LOG RC [OKS]
  grep -qE 'CUDA_ERROR|CUDA error|illegal (memory )?address|watchdog|\btrap\b' "$1" && return 0
  case " ${3:-0 1 2} " in
    *" $2 "*) return 1 ;;
    *) return 0 ;;
  esac
}
wb_pack() { # WORK OUT NAME
  local work=$1 out=$2 name=$3 rc=0
  # GNU tar exits 1 when a file changed while it was read (a stopped process still writing):
  # the archive is whole, so it is kept; 2 is a real failure, said.
  tar -C "$(dirname "$work")" -czf "$out/$name.tgz.part" --exclude="$(basename "$work")/cuda-libs" \
    "$(basename "$work")" 2>"$out/$name.tar.err" || rc=$?
  if [ "$rc" -le 1 ]; then
    mv -f "$out/$name.tgz.part" "$out/$name.tgz"
  else
    echo "wb_pack: tar failed (exit $rc), $out/$name.tgz keeps the previous step's state: $(head -c 300 "$out/$name.tar.err")" >&2
  fi
  rm -f "$out/$name.tgz.part" "$out/$name.tar.err"
  [ -f "$work/summary.txt" ] && cp "$work/summary.txt" "$out/$name-summary.txt"
  return 0
}
wb_log() { # SRC DEST
  tail -c 1048576 "$1" >"$2"
}
wb_wait_gone() { # PIDS
  local i p alive
  for i in $(seq 50); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  return 0
}

export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-${TMPDIR:-/tmp}/wattbench-cuda-jit-cache}
export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-1073741824}
mkdir -p "$CUDA_CACHE_PATH"

wb_run_file() { # FILE
  [ -e "$1" ] || { echo missing; return 0; }
  python3 - "$1" <<'PY' 2>/dev/null || echo "unreadable: python3 could not read it"
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    cs = d.get("cases") or []
    n = lambda s: sum(1 for c in cs if c.get("status") == s)
    # Complete only when the file says so: a run stopped midway writes "interrupted": true.
    print("complete" if d.get("interrupted") is False else "interrupted", n("ok"), n("skipped"), n("failed"))
except Exception as e:
    print("unreadable:", " ".join(str(e).split())[:200])
PY
}

# Whether the run's output (LOG) shows it finished: its count line ("N ok, N skipped, N failed
# in S s", not "(interrupted)") with the file's counts (OK SKIPPED FAILED), no "internal error:
# a backend panicked" (a panicked run also writes a file not marked interrupted, its cases
# missing), and as many cases as its "[i/N]" lines announced. Prints why not, and returns 1.
wb_run_finished() { # LOG OK SKIPPED FAILED
  python3 - "$@" <<'PY'
import re, sys
log, ok, sk, fl = sys.argv[1], *map(int, sys.argv[2:5])
try:
    text = open(log, errors="replace").read()
except OSError as e:
    sys.exit(print(f"{log.rsplit('/', 1)[-1]} unreadable ({e.strerror}): a finished run cannot be told from a crashed one") or 1)
if "internal error: a backend panicked" in text:
    sys.exit(print("a backend panicked (internal error in its output): cases are missing") or 1)
counts = re.findall(r"^(\d+) ok, (\d+) skipped, (\d+) failed in \S+ s(.*)$", text, re.M)
if not counts or counts[-1][3].strip():
    sys.exit(print("its output has no final count line (or it says interrupted): it did not finish") or 1)
if tuple(map(int, counts[-1][:3])) != (ok, sk, fl):
    sys.exit(print(f"its output counted {counts[-1][0]} ok, {counts[-1][1]} skipped, {counts[-1][2]} failed, "
                   f"its file {ok}, {sk}, {fl}") or 1)
announced = re.findall(r"^\[\d+/(\d+)\] ", text, re.M)
if announced and int(announced[-1]) != ok + sk + fl:
    sys.exit(print(f"it announced {announced[-1]} cases, its file has {ok + sk + fl}") or 1)
PY
}

# A run killed by its time limit (124, 137) or stopped by a signal (130, 143) after it had
# written a complete result file was exiting (an H200 run of 2026-11-30 printed its last line
# and the limit struck during the exit): its cases are all there, and it is judged on them.
# Complete: the file not marked interrupted, and its output (run.NAME.txt beside FILE) showing a
# run that finished (wb_run_finished).
# --summary-only's last step, for both scripts: the summary (SRC: the script's Python, after
# $wb_summary_py) of WORK from the judged suite runs in JUDGED, written to WORK/summary.txt and
# printed; its exit status is the summary's. Written aside first: the summary reads the
# folder's summary.txt (did the run say it was incomplete?), which a redirection would empty
# before it starts. JUDGED is removed.
wb_summary_write() { # WORK JUDGED GPU SRC
  local work=$1 judged=$2 gpu=$3 src=$4 rc
  python3 -c "$wb_summary_py"$'\n'"$src" "$work" "$judged" "" "$gpu" >"$judged.txt" 2>&1
  rc=$?
  cat "$judged.txt" >"$work/summary.txt"
  rm -f "$judged" "$judged.txt"
  cat "$work/summary.txt"
  return $rc
}

wb_judge_run() { # NAME RC FILE LIMIT GPU [SECONDS]
  local name=$1 rc=$2 f=$3 secs=$4 gpu=$5 dt=${6:-} file st state ok sk fl why unfinished
  file=$(basename "$f")
  case $rc in
    0) printf 'pass\tok%s\n' "${dt:+ in $dt s}"; return ;;
    3) if [ "$gpu" = 1 ]; then
         printf 'fail\tFAILED: nothing ran, every case was skipped (the reasons are in run.%s.txt)\n' "$name"
       else
         printf 'skip\tSKIPPED: no GPU, nothing could run (exit 3)\n'
       fi
       return ;;
    1) printf 'fail\tFAILED: a case failed verification or errored (exit 1; see the summary)\n'; return ;;
    124 | 137) why="hit its ${secs:+$secs s }time limit" ;;
    130 | 143) why="stopped by a signal (exit $rc)" ;;
    *) printf 'fail\tFAILED: exit %s (run.%s.txt)\n' "$rc" "$name"; return ;;
  esac
  st=$(wb_run_file "$f")
  read -r state ok sk fl <<<"$st"
  if [ "$state" = complete ] && ! unfinished=$(wb_run_finished "$(dirname "$f")/run.$name.txt" "$ok" "$sk" "$fl"); then
    printf 'fail\t%s; %s is not marked interrupted, but run.%s.txt shows a run that did not finish: %s\n' \
      "$why" "$file" "$name" "$unfinished"
    return
  fi
  case $state in
    complete)
      if [ "$fl" -gt 0 ]; then
        printf 'fail\tFAILED: %s case(s) failed verification or errored; the run had finished and %s while exiting (all cases written)\n' "$fl" "$why"
      elif [ "$ok" -eq 0 ] && [ "$gpu" = 1 ]; then
        printf 'fail\tFAILED: nothing ran, every case was skipped (the reasons are in run.%s.txt); the run %s while exiting\n' "$name" "$why"
      elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        printf 'pass\tfinished; killed at its time limit while exiting (all cases written: %s ok, %s skipped%s)\n' "$ok" "$sk" "${secs:+; the limit was $secs s}"
      else
        printf 'pass\tfinished; stopped by a signal while exiting (exit %s; all cases written: %s ok, %s skipped)\n' "$rc" "$ok" "$sk"
      fi ;;
    interrupted) printf 'fail\t%s: the completed cases are in %s (marked interrupted)\n' "$why" "$file" ;;
    missing) printf 'fail\t%s before any result file was written\n' "$why" ;;
    *) printf 'fail\t%s; %s is %s\n' "$why" "$file" "$st" ;;
  esac
}

# `wattbench run` wraps its notes at 100 columns with no indent: the last lines of its output
# alone can be the tail of a warning. A warning's paragraph is its first line and each later
# line that is no other paragraph's start and that a 100-column wrap would have broken there
# (the line before it could not take its first word).
wb_run_tail() { # LOG [warnings]
  python3 - "$1" "${2:-}" <<'PY'
import re, sys
try:
    lines = open(sys.argv[1], errors="replace").read().splitlines()
except OSError as e:
    sys.exit(f"(no output: {e.strerror})")
# The starts of the paragraphs a run and measure print (never a continuation's first words).
start = re.compile(r"\s|\[\d+(/\d+)?\] |[┌│╞├└╘╒║+|]|\(left out |\d+ ok, \d+ skipped, \d+ failed in |"
                   r"(warning|error|note|carbon|cross-check \S+|GPUs metered|energy \([^)]*\)): |"
                   r"GPU energy counter vs |Energy per call is |\d+ more energy caveats |thread '|command exited |wrote /")
paras = []  # [index of its last line, text]
for i, l in enumerate(lines):
    prev = lines[i - 1] if i else None
    if (paras and prev and not start.match(l) and l.strip()
            and len(prev) + 1 + len(l.split(" ")[0]) > 100):
        paras[-1] = [i, paras[-1][1] + " " + l]
    else:
        paras.append([i, l])
shown = [t for _, t in paras if re.match(r"(warning|error): ", t)]
count = [k for k, (_, t) in enumerate(paras) if re.match(r"\d+ ok, \d+ skipped, \d+ failed in ", t)]
if sys.argv[2] != "warnings":
    if count:
        shown += [t for _, t in paras[count[-1]:]]
    else:
        # No count: the run ended early; its last three lines, each paragraph whole.
        shown += [t for last, t in paras if last >= len(lines) - 3]
for t in dict.fromkeys(shown):
    print(t)
PY
}

# shellcheck disable=SC2016 # Python source
wb_summary_py='
import json, math, os, re
def sig3(x):
    """x with three significant digits (more left of the point), never 0 for a positive figure."""
    if x is None:
        return "-"
    if not math.isfinite(x) or x == 0:
        return str(x) if x else "0"
    return f"{x:.{max(0, 2 - math.floor(math.log10(abs(x))))}f}"
CUDA_LIB = re.compile(r"lib(cublasLt|cublas|nvrtc|cudnn|cudart|curand)([_-][a-z_]+)?\.so(\.[0-9.]+)?$")
CUDA_LIB_NAMES = {"cublas": "cuBLAS", "cublasLt": "cuBLASLt", "nvrtc": "NVRTC", "cudnn": "cuDNN",
                  "cudart": "cudart", "curand": "cuRAND"}
def cuda_lib(path):
    """The CUDA library a file is (a key of CUDA_LIB_NAMES; the sub-libraries of cuDNN count as
    cuDNN, the builtins of NVRTC as NVRTC), or None."""
    m = CUDA_LIB.match(os.path.basename(path))
    return m.group(1) if m else None
def cuda_chosen(env):
    """{library: its file in the set the run chose}, from the lines ENV of env.txt: its "cuda
    library chosen:" lines; in a folder from before them (no "cuda library links:" line), the file each
    name resolved to at the inventory (its "resolves:" lines, the chosen set then first on
    LD_LIBRARY_PATH); {} when no set was chosen."""
    links = any(l.startswith("cuda library links:") for l in env)
    chosen = {}
    for l in env:
        m = (re.match(r"cuda library chosen: (\S+) -> (/.+)$", l) if links
             else re.match(r"resolves: (\S+) .*-> (/\S+)", l))
        if m and cuda_lib(m.group(1)):
            chosen.setdefault(cuda_lib(m.group(1)), m.group(2))
    return chosen
def cuda_lib_mix(paths, env):
    """What the processes that wrote the result files PATHS loaded (environment.libraries) of
    the CUDA libraries that is not one set, the one chosen (env.txt lines ENV, cuda_chosen): one
    line a finding, [] when none (or nothing recorded). A library loaded from two folders (two
    copies in the run: which one computed a figure is unknown); cuBLAS and cuBLASLt from
    different folders (cuBLAS calls the cuBLASLt of its own release); a library loaded from
    outside the chosen set where that set has it (the figures are of another copy than the
    run says). A library the chosen set lacks may come from anywhere, once."""
    found = {}  # library: {folder: [file name, ...]}
    for p in paths:
        try:
            libs = (json.load(open(p)).get("environment") or {}).get("libraries") or []
        except (OSError, ValueError, AttributeError):
            continue
        for f in libs:
            lib = cuda_lib(f)
            if lib:
                names = found.setdefault(lib, {}).setdefault(os.path.dirname(f), [])
                if os.path.basename(f) not in names:
                    names.append(os.path.basename(f))
    chosen = cuda_chosen(env)
    def where(lib, d):
        files = " ".join(found[lib][d])
        if lib not in chosen:
            return f"{d} ({files})"
        return f"{d} ({files}; " + ("the chosen set)" if d == os.path.dirname(chosen[lib]) else "not the chosen set)")
    out = []
    for lib in (k for k in CUDA_LIB_NAMES if k in found):
        ds, name = list(found[lib]), CUDA_LIB_NAMES[lib]
        if len(ds) > 1:
            out.append(f"{name} from {len(ds)} folders: " + "; ".join(where(lib, d) for d in ds))
        elif lib in chosen and ds[0] != os.path.dirname(chosen[lib]):
            files = " ".join(found[lib][ds[0]])
            out.append(f"{name} from outside the chosen set: {ds[0]} ({files}), where the chosen set has {chosen[lib]}")
    if "cublas" in found and "cublasLt" in found and set(found["cublas"]) != set(found["cublasLt"]):
        out.append("cuBLAS and cuBLASLt from different folders (they must match): cuBLAS from "
                   + ", ".join(found["cublas"]) + "; cuBLASLt from " + ", ".join(found["cublasLt"]))
    return out
def cuda_lib_mix_lines(mix, what):
    """The lines that report a mix: the findings of cuda_lib_mix, one a line."""
    return [f"FAILED: a mix of CUDA libraries loaded by {what}, not the one set chosen (cudarc opens "
            "unversioned names first, libcublas.so: cuda-libs/ must link each to the chosen set):"] + [
        "    " + l for l in mix]
'
