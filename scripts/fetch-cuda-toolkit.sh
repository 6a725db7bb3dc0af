#!/usr/bin/env bash
# Fetch the CUDA 13.0 toolkit parts candle's CUDA kernels build with (nvcc, its headers, cudart,
# CCCL, NVVM, NVRTC, cuBLAS, cuRAND) from the PyPI `cuda-toolkit==13.0.2` extras, once, into a
# cache directory outside the repository. Used by scripts/build-gpu-bundle.sh; no GPU needed.
#
# 13.0 and not the newest: the GPU machine's driver 580 (CUDA 13.0) loads PTX up to ISA 9.0,
# which is what nvcc 13.0 writes.
#
#   WATTBENCH_CACHE  cache root (default: ~/.cache/wattbench)
#
# Prints the toolkit directory on stdout, laid out as a CUDA install (bin/nvcc, include/,
# lib/, nvvm/): use it as CUDA_PATH and put its bin/ first on PATH.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
TOOLKIT_VERSION=13.0.2
EXTRAS=(nvcc cudart cccl crt nvvm nvrtc cublas curand)
dest=$wb_cache/cuda-toolkit-$TOOLKIT_VERSION
wb_cached "$dest"

echo "fetch-cuda-toolkit: downloading cuda-toolkit==$TOOLKIT_VERSION [$(IFS=,; echo "${EXTRAS[*]}")] (about 700 MB, once; 1.2 GB unpacked)" >&2
# The meta-package pins one wheel per extra; wb_download takes no dependencies, so read the pins
# from its metadata and download those.
wb_download fetch-cuda-toolkit "cuda-toolkit==$TOOLKIT_VERSION"
# Read into a variable first: a failure inside `< <(...)` would not stop the script, and a
# toolkit missing some wheels would be cached as complete.
pins_text=$(python3 - "$wb_wheels" "$TOOLKIT_VERSION" "${EXTRAS[@]}" <<'PY'
import glob, os, re, sys, zipfile
wheels, ver, *extras = sys.argv[1:]
found = glob.glob(os.path.join(wheels, f"cuda_toolkit-{ver}-*.whl"))
if not found:
    sys.exit(f"fetch-cuda-toolkit: cuda-toolkit {ver} wheel missing after download")
with zipfile.ZipFile(found[0]) as z:
    meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
for extra in extras:
    pins = [m.group(1).replace(" ", "") for line in meta.splitlines()
            if (m := re.match(r"Requires-Dist: ([^;]+);.*extra == '" + re.escape(extra) + "'", line))]
    if not pins:
        sys.exit(f"fetch-cuda-toolkit: cuda-toolkit {ver} has no extra `{extra}`")
    print(*pins, sep="\n")
PY
)
[ -n "$pins_text" ] || { echo "fetch-cuda-toolkit: no wheel pins read from cuda-toolkit $TOOLKIT_VERSION" >&2; exit 1; }
mapfile -t pins <<<"$pins_text"
wb_download fetch-cuda-toolkit "${pins[@]}"

tmp=$(mktemp -d "$wb_cache/cuda-toolkit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$wb_wheels" "$tmp" "${pins[@]}" <<'PY'
import glob, os, re, sys, zipfile
wheels, out, *pins = sys.argv[1:]
for pin in pins:
    name, ver = re.match(r"([A-Za-z0-9_.-]+)==([0-9.]+?)\.?\*?$", pin).groups()
    stem = name.replace("-", "_")
    found = sorted(glob.glob(os.path.join(wheels, f"{stem}-{ver}*.whl")))
    if not found:
        sys.exit(f"fetch-cuda-toolkit: {pin} wheel missing after download")
    with zipfile.ZipFile(found[-1]) as z:
        for info in z.infolist():
            # Wheels lay files out as nvidia/cu13/{bin,include,lib,nvvm}/...; flatten that.
            parts = info.filename.split("/")
            if len(parts) < 4 or parts[0] != "nvidia" or info.is_dir():
                continue
            target = os.path.join(out, *parts[2:])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                dst.write(src.read())
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111 or "/bin/" in info.filename or ".so" in parts[-1]:
                os.chmod(target, 0o755)
# The wheels ship versioned sonames only; a toolkit also has the plain link names.
lib = os.path.join(out, "lib")
for so in glob.glob(os.path.join(lib, "lib*.so.*")):
    base = os.path.basename(so)
    plain = base[: base.index(".so") + 3]
    if not os.path.exists(os.path.join(lib, plain)):
        os.symlink(base, os.path.join(lib, plain))
# Some build scripts look under lib64.
if not os.path.exists(os.path.join(out, "lib64")):
    os.symlink("lib", os.path.join(out, "lib64"))
PY
"$tmp/bin/nvcc" --version >/dev/null || { echo "fetch-cuda-toolkit: the unpacked nvcc does not run" >&2; exit 1; }
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
touch "$dest/.complete"
echo "fetch-cuda-toolkit: nvcc $("$dest/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') in $dest" >&2
echo "$dest"
