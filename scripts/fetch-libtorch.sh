#!/usr/bin/env bash
# Fetch libtorch 2.11.0 (the version tch 0.24 binds) from the PyPI `torch` wheel, once, into a
# cache directory outside the repository. Prints the libtorch directory on stdout.
#
#   WATTBENCH_CACHE  cache root (default: ~/.cache/wattbench)
#
# libtorch_cpu.so links against libcudart and libcupti even in a CPU-only process, so the
# matching nvidia-cuda-runtime / nvidia-cuda-cupti wheels are unpacked beside it; the large CUDA
# math libraries (cuBLAS, cuDNN, NCCL, ...) are not fetched.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
TORCH_VERSION=2.11.0
CUDA_SERIES=13.0
dest=$wb_cache/libtorch-$TORCH_VERSION
wb_cached "$dest"

echo "fetch-libtorch: downloading torch==$TORCH_VERSION (about 1 GB, once)" >&2
wb_download fetch-libtorch "torch==$TORCH_VERSION"
wb_download fetch-libtorch "nvidia-cuda-runtime==$CUDA_SERIES.*" "nvidia-cuda-cupti==$CUDA_SERIES.*"

tmp=$(mktemp -d "$wb_cache/libtorch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$wb_wheels" "$tmp" "$TORCH_VERSION" <<'PY'
import glob, os, sys, zipfile
wheels, out, ver = sys.argv[1:]
# Keep headers and libraries; skip the CUDA-only libraries, which a CPU run never loads.
skip = ("libtorch_cuda", "libc10_cuda", "libcudnn", "libnccl", "libcublas", "libcusparse",
        "libcufft", "libcurand", "libcusolver", "libnvrtc", "libnvJitLink", "libcufile",
        "libnvshmem", "libtriton", "libcaffe2_nvrtc")
torch = glob.glob(os.path.join(wheels, f"torch-{ver}-*.whl"))
if not torch:
    sys.exit("fetch-libtorch: torch wheel missing after download")
with zipfile.ZipFile(torch[0]) as z:
    for n in z.namelist():
        if not (n.startswith("torch/lib/") or n.startswith("torch/include/")):
            continue
        if any(os.path.basename(n).startswith(s) for s in skip):
            continue
        z.extract(n, out)
        if n.startswith("torch/lib/"):
            os.chmod(os.path.join(out, n), 0o755)
for pat in ("nvidia_cuda_runtime-*.whl", "nvidia_cuda_cupti-*.whl"):
    for w in glob.glob(os.path.join(wheels, pat)):
        with zipfile.ZipFile(w) as z:
            for n in z.namelist():
                if "/lib/" in n and ".so" in n:
                    target = os.path.join(out, "torch", "lib", os.path.basename(n))
                    with z.open(n) as src, open(target, "wb") as dst:
                        dst.write(src.read())
                    os.chmod(target, 0o755)
PY
rm -rf "$dest"
mv "$tmp/torch" "$dest"
touch "$dest/.complete"
echo "$dest"
