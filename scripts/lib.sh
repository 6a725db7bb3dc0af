# Shared by the scripts (source it): the cache root, the done-marker check, pip downloads of
# manylinux x86-64 wheels for CPython 3.11 (downloaded, never installed; no dependencies),
# which is how libtorch and the CUDA tools reach this project, and the hardware slug that names
# the folders of recorded results.
#
#   WATTBENCH_CACHE  cache root (default: ~/.cache/wattbench)

wb_cache=${WATTBENCH_CACHE:-$HOME/.cache/wattbench}
wb_wheels=$wb_cache/wheels

# wb_cached DEST: when an earlier fetch completed DEST, print it and exit. Otherwise DEST's
# lock is taken for the rest of the fetch (two fetches at once, `make -j` on a cold cache: the
# second waits, then finds DEST complete instead of replacing it under the first's feet).
wb_cached() {
  if [ -f "$1/.complete" ]; then
    echo "$1"
    exit 0
  fi
  if command -v flock >/dev/null; then
    mkdir -p "$(dirname "$1")"
    exec 9>"$1.lock"
    flock 9
    if [ -f "$1/.complete" ]; then
      echo "$1"
      exit 0
    fi
  fi
}

# wb_download WHO SPEC...: download the wheels SPEC... into the wheel cache.
wb_download() {
  local who=$1
  shift
  command -v python3 >/dev/null || { echo "$who: python3 with pip is needed" >&2; exit 2; }
  mkdir -p "$wb_wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 \
    --platform manylinux_2_12_x86_64 \
    --python-version 3.11 --implementation cp -d "$wb_wheels" "$@" >&2
}

# wb_hardware_slug BIN: this machine's hardware fingerprint (CPU, its family and model where
# its name has no number, cores, GPU names: what `compare` requires to match), as `wattbench
# BIN info` gives it, made a folder name: `cpu-amd-epyc-authenticamd-family-25-model-1-x2`.
wb_hardware_slug() {
  "$1" info --json | python3 -c '
import json, re, sys
fp = json.load(sys.stdin)["hardware_fingerprint"]
print(re.sub(r"[^A-Za-z0-9]+", "-", fp).strip("-").lower())'
}
