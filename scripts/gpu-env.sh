# Shared by the GPU machine's scripts (gpu-check.sh, profile-gemm.sh), sourced from the bundle:
#
#   wb_cuda_libs      choose one set of CUDA libraries and put it first on LD_LIBRARY_PATH; sets
#                     $kind (wheels, toolkit or none)
#   wb_tool NAME      the path of a CUDA tool (PATH, /usr/local/cuda/bin, Nsight Compute's
#                     folder, site-packages nvidia/*/bin), or nothing
#   elapsed, left     seconds since $start, and left of $budget (both set by the script)
#   limit S CMD...    run CMD for at most S seconds and never beyond the budget: SIGINT first
#                     (so that `wattbench run` writes what it completed), SIGKILL 20 s later;
#                     124 without running when under 5 s are left
#   say TEXT          a step's heading, with the seconds so far
#
# (The tensor-core instructions in our kernels' machine code are checked where they are built,
# by `make kernel-check`; ncu's instruction statistics show what the GPU executed.)

wb_cuda_libs() {
  # The machine's pip wheels (site-packages/nvidia/*/lib) and torch's lib/, or else the CUDA
  # toolkit: one set of cuBLAS, cuBLASLt, cuDNN and NVRTC, first on the path, never a mix.
  local libset dirs d
  libset=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
sps = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
wheels, torch = [], []
for sp in sps:
    wheels += sorted(d for d in glob.glob(os.path.join(sp, "nvidia", "*", "lib")) if os.path.isdir(d))
    if os.path.isdir(os.path.join(sp, "torch", "lib")):
        torch.append(os.path.join(sp, "torch", "lib"))
has = lambda dirs, name: any(glob.glob(os.path.join(d, name + "*")) for d in dirs)
if has(wheels, "libcublas.so.13") and has(wheels, "libnvrtc.so.13"):
    print("wheels", ":".join(wheels + torch[:1]))
else:
    print("none", ":".join(torch[:1]))
PY
  )
  kind=${libset%% *}
  dirs=${libset#* }
  [ "$kind" = "$libset" ] && { kind=none; dirs=""; }
  if [ "$kind" != wheels ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
      if [ -e "$d/libcublas.so" ] || ls "$d"/libcublas.so.* >/dev/null 2>&1; then
        kind=toolkit
        dirs="$d${dirs:+:$dirs}"
        break
      fi
    done
  fi
  export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

wb_tool() {
  local c
  for c in "$(command -v "$1" 2>/dev/null)" "/usr/local/cuda/bin/$1" /opt/nvidia/nsight-compute/*/"$1" \
    $(python3 -c 'import glob,site; print(" ".join(glob.glob(site.getsitepackages()[0]+"/nvidia/*/bin/'"$1"'")))' 2>/dev/null); do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
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
  timeout -s INT -k 20 "$s" "$@"
}
say() { echo "== $* ($(elapsed) s)"; }
# Whether a `wattbench check` (its output in LOG, its exit status RC) faulted: a CUDA error, or
# an exit other than 0, 1 (a verification failure) and 2 (unavailable), i.e. a panic or a
# signal. A kernel fault poisons the CUDA context of its process, and with it every later case.
wb_faulted() { # LOG RC
  grep -q CUDA_ERROR "$1" || { [ "$2" -ne 0 ] && [ "$2" -ne 1 ] && [ "$2" -ne 2 ]; }
}
