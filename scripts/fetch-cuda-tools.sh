#!/usr/bin/env bash
# Fetch NVRTC and ptxas 13.0 (PyPI `nvidia-cuda-nvrtc` and `nvidia-cuda-nvcc`, the CUDA series
# cudarc's `cuda-13000` bindings target), and cuobjdump with nvdisasm (`nvidia-cuda-cuobjdump`,
# `nvidia-cuda-nvdisasm`: 13.2, the oldest series PyPI has; they read 13.0's machine code), once,
# into a cache directory outside the repository. No GPU or driver is needed: NVRTC compiles
# kernels to PTX, ptxas reports their resources and cuobjdump shows their machine code.
#
#   WATTBENCH_CACHE  cache root (default: ~/.cache/wattbench)
#
# Prints the tools directory on stdout; it holds
#   lib/libnvrtc.so.13 (+ builtins)  -> put on LD_LIBRARY_PATH (cudarc dlopens libnvrtc by name)
#   bin/ptxas                        -> WATTBENCH_PTXAS
#   bin/cuobjdump, bin/nvdisasm      -> WATTBENCH_CUOBJDUMP (cuobjdump finds nvdisasm on PATH)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
CUDA_SERIES=13.0
DISASM_SERIES=13.2
# -2: the second layout of this folder (with the disassembler).
dest=$wb_cache/cuda-tools-$CUDA_SERIES-2
wb_cached "$dest"

echo "fetch-cuda-tools: downloading nvidia-cuda-nvrtc and nvidia-cuda-nvcc $CUDA_SERIES.*, nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm $DISASM_SERIES.* (about 135 MB, once)" >&2
wb_download fetch-cuda-tools "nvidia-cuda-nvrtc==$CUDA_SERIES.*" "nvidia-cuda-nvcc==$CUDA_SERIES.*" \
  "nvidia-cuda-cuobjdump==$DISASM_SERIES.*" "nvidia-cuda-nvdisasm==$DISASM_SERIES.*"

tmp=$(mktemp -d "$wb_cache/cuda-tools.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$wb_wheels" "$tmp" "$CUDA_SERIES" "$DISASM_SERIES" <<'PY'
import glob, os, sys, zipfile
wheels, out, series, disasm = sys.argv[1:]
want = {"nvidia_cuda_nvrtc": (series, ("lib/", "include/")),
        "nvidia_cuda_nvcc": (series, ("bin/ptxas",)),
        "nvidia_cuda_cuobjdump": (disasm, ("bin/cuobjdump",)),
        "nvidia_cuda_nvdisasm": (disasm, ("bin/nvdisasm",))}
for pkg, (series, keep) in want.items():
    found = sorted(glob.glob(os.path.join(wheels, f"{pkg}-{series}.*.whl")))
    if not found:
        sys.exit(f"fetch-cuda-tools: {pkg} {series} wheel missing after download")
    with zipfile.ZipFile(found[-1]) as z:
        for n in z.namelist():
            # Wheels lay files out as nvidia/cu13/{bin,lib,include}/...; flatten to {bin,lib,include}.
            parts = n.split("/")
            if len(parts) < 4 or parts[0] != "nvidia":
                continue
            rel = "/".join(parts[2:])
            if not any(rel.startswith(k) for k in keep) or rel.endswith("/"):
                continue
            target = os.path.join(out, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(n) as src, open(target, "wb") as dst:
                dst.write(src.read())
            if rel.startswith(("bin/", "lib/")):
                os.chmod(target, 0o755)
# cudarc tries libnvrtc.so first; give it the plain name too.
lib = os.path.join(out, "lib")
if not os.path.exists(os.path.join(lib, "libnvrtc.so")):
    os.symlink("libnvrtc.so.13", os.path.join(lib, "libnvrtc.so"))
PY
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
touch "$dest/.complete"
echo "fetch-cuda-tools: NVRTC in $dest/lib, ptxas and cuobjdump in $dest/bin" >&2
echo "$dest"
