#!/usr/bin/env bash
# Compile and resource-check every CUDA kernel without a GPU: fetch NVRTC + ptxas 13.0 once
# (scripts/fetch-cuda-tools.sh), then run the kernel_check example of wattbench-cuda, which
# compiles kernels/*.cu through the backends' own NVRTC loader for sm_80, sm_89 and sm_90
# (gemm_sm90.cu for sm_90a only) and prints ptxas's registers / shared memory / spills table
# with the tensor-core instructions cuobjdump finds in each kernel's machine code. Exits
# non-zero on a compile error, a spill in a main kernel, a ptxas note that wgmma was serialized
# or setmaxnreg ignored, a wgmma GEMM with fewer registers than its setmaxnreg trade needs,
# or GEMM machine code without its tensor-core instructions (HGMMA with
# the right transpose flags for the wgmma GEMM, HMMA for the mma.sync one) or with local-memory
# accesses, or a wgmma GEMM with a GPU-scope fence beyond its set-up and exit; and on an entry point it could not check (no row in ptxas's output, no function in
# cuobjdump's, or no cuobjdump: the tools folder must hold it). Extra arguments go to the
# check (e.g. --arch 90).
#
#   CARGO_TARGET_DIR  where to build (default: target)
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(bash scripts/fetch-cuda-tools.sh)
# cudarc dlopens libnvrtc.so / libnvrtc.so.13 by name; NVRTC then dlopens its builtins library.
export LD_LIBRARY_PATH="$tools/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export WATTBENCH_PTXAS="$tools/bin/ptxas"
# cuobjdump runs nvdisasm, which it looks for on PATH.
export WATTBENCH_CUOBJDUMP="$tools/bin/cuobjdump"
export PATH="$tools/bin:$PATH"
exec cargo run -q --locked -p wattbench-cuda --example kernel_check -- "$@"
