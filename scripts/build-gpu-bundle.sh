#!/usr/bin/env bash
# Build, here (no GPU or driver needed), what the GPU check runs there, into the ignored folder
# .gpu-bundle/ (carried to the GPU machine; must stay under 64 MiB):
#   wattbench                    release build with every GPU backend: tch, cuda (our kernels,
#                                cuBLAS, cuDNN) and candle on CUDA (features tch,cuda,candle-cuda)
#   wattbench-cuda-gpu-tests     wattbench-cuda's GPU tests (ignored here; --ignored there)
#   gpu-check.sh, profile-gemm.sh (with gpu-env.sh, which both source), benchmarks/, kernels/
#                                (for reading; the binaries embed them), COMMIT, FEATURES
# There: `bash .gpu-bundle/gpu-check.sh OUTDIR`, then `bash .gpu-bundle/profile-gemm.sh OUTDIR`
# (bash, since file modes can be lost in transit; each leaves two files in OUTDIR: a tarball of
# its work folder and its summary).
# wattbench-candle's tests are built with its CUDA ones too, to check that they compile (no other
# build enables candle's `cuda` feature), but not carried: `wattbench check` runs the same
# checks there, and the binary would take 25 MiB of the 64.
#
# candle on CUDA needs two things a plain `cargo build` here does not have:
# - nvcc, to compile candle's kernels at build time: the CUDA 13.0 toolkit from PyPI
#   (scripts/fetch-cuda-toolkit.sh; 13.0 because driver 580 loads PTX up to ISA 9.0), for
#   sm_90 (CUDA_COMPUTE_CAP; no GPU to ask; cudaforge makes it sm_90a). Fatbins compressed
#   (--compress-mode=size: candle's MoE kernels, 32 MB uncompressed, are 5.6 MB in the binary;
#   whether driver 580 loads compressed fatbins is unverified, and only the quantized MoE ops,
#   which wattbench never calls, use them).
# - one cudarc for all: candle-core asks cudarc for `dynamic-linking`, our crates for
#   `dynamic-loading` (binaries that start without the driver), and cudarc's build refuses
#   both. So the build runs in a scratch copy of the working tree (target/gpu-bundle/ws) whose
#   cargo config patches candle-core with a copy, generated here from the cargo registry, whose
#   cudarc features say `dynamic-loading` + `cuda-13000`. The repository's Cargo.toml and
#   Cargo.lock are not touched; the copy's lock differs from the real one in candle-core's
#   source only (checked). candle's kernels link cudart statically (kept out of the binary's
#   exported symbols, so libtorch's own libcudart is not interposed).
# Cold build about 20 min on 2 cores (candle's kernels about 8 of them), warm about 1 min.
#
#   CARGO_TARGET_DIR  build directory (default: target/gpu-bundle)
#   WATTBENCH_CACHE   where libtorch and the CUDA toolkit are fetched to (default: ~/.cache/wattbench)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
features=tch,cuda,candle-cuda
target=$(realpath -m "${CARGO_TARGET_DIR:-target/gpu-bundle}")
export CARGO_TARGET_DIR=$target # absolute: cargo runs in the copy
ws=$target/ws
bundle=$root/.gpu-bundle
limit_mib=64
# The CUDA series the bundle targets (the GPU machine's driver 580): cudarc's bindings and nvcc.
cudarc_cuda="cuda-13000"
export CUDA_COMPUTE_CAP=90
# git only reads here: no opportunistic index refreshes, in the real repository or the copy.
export GIT_OPTIONAL_LOCKS=0

start=$(date +%s)
step="starting"
say() { echo "build-gpu-bundle: $*" >&2; }
die() {
  echo "build-gpu-bundle: FAILED: $*" >&2
  exit 1
}
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || echo "build-gpu-bundle: FAILED (exit $rc) while $step" >&2
}
trap on_exit EXIT

# --- Tools ------------------------------------------------------------------------------------
step="fetching libtorch (scripts/fetch-libtorch.sh)"
LIBTORCH=$(bash scripts/fetch-libtorch.sh)
export LIBTORCH
step="fetching the CUDA toolkit (scripts/fetch-cuda-toolkit.sh)"
cuda=$(bash scripts/fetch-cuda-toolkit.sh)
step="fetching crates (cargo fetch --locked)"
cargo fetch --locked

# --- candle-core with cudarc on dynamic loading -------------------------------------------------
step="generating the patched candle-core"
candle_version=$(python3 - "$root/Cargo.lock" <<'PY'
import sys, tomllib
lock = tomllib.load(open(sys.argv[1], "rb"))
v = [p["version"] for p in lock["package"] if p["name"] == "candle-core"]
if len(v) != 1:
    sys.exit(f"expected one candle-core in Cargo.lock, found {v}")
print(v[0])
PY
)
candle_src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "candle-core-$candle_version" | head -n1)
[ -n "$candle_src" ] || die "candle-core $candle_version not in the cargo registry after cargo fetch"
patched=$target/patched/candle-core-$candle_version
python3 - "$candle_src" "$patched" "$cudarc_cuda" <<'PY'
import hashlib, os, shutil, sys
src, dst, cuda = sys.argv[1:]
toml = open(os.path.join(src, "Cargo.toml")).read()
# candle-core's cudarc dependency, as published (normalised by cargo): exactly these two
# features change; a layout not seen before stops the build rather than guess.
start = toml.index("[dependencies.cudarc]")
end = toml.index("\n[", start + 1)
dep = toml[start:end]
for old in ('"dynamic-linking"', '"cuda-version-from-build-system"'):
    if dep.count(old) != 1:
        sys.exit(f"candle-core's [dependencies.cudarc] does not list {old} once; "
                 "update the patch in scripts/build-gpu-bundle.sh for this version")
dep = dep.replace('"dynamic-linking"', '"dynamic-loading"')
dep = dep.replace('"cuda-version-from-build-system"', f'"{cuda}"')
new = toml[:start] + dep + toml[end:]
stamp = hashlib.sha256((src + new).encode()).hexdigest()
stamp_file = os.path.join(dst, ".wattbench-patch")
if os.path.exists(stamp_file) and open(stamp_file).read() == stamp:
    sys.exit(0)  # up to date: keep the mtimes, so cargo does not rebuild it
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, symlinks=True)  # copy2: mtimes kept
open(os.path.join(dst, "Cargo.toml"), "w").write(new)
open(stamp_file, "w").write(stamp)
print(f"build-gpu-bundle: {dst}: cudarc features dynamic-linking -> dynamic-loading, "
      f"cuda-version-from-build-system -> {cuda}", file=sys.stderr)
PY

# --- The scratch workspace -----------------------------------------------------------------------
# The working tree as it is (tracked files, and untracked ones git does not ignore), copied with
# their mtimes so that cargo rebuilds only what changed; files gone from the tree are removed.
step="copying the working tree to $ws"
mkdir -p "$ws"
git ls-files -z --cached --others --exclude-standard | python3 -c '
import os, shutil, sys
root, ws = sys.argv[1:]
files = {f for f in sys.stdin.buffer.read().decode().split("\0") if f and os.path.isfile(os.path.join(root, f))}
files.discard("Cargo.lock")  # the copy keeps its own lock (below)
for f in sorted(files):
    s, d = os.path.join(root, f), os.path.join(ws, f)
    st = os.stat(s)
    if os.path.exists(d) and (lambda t: (t.st_size, t.st_mtime_ns) == (st.st_size, st.st_mtime_ns))(os.stat(d)):
        continue
    os.makedirs(os.path.dirname(d), exist_ok=True)
    shutil.copy2(s, d)
keep = {".git", ".cargo", "Cargo.lock"}
for dirpath, dirnames, filenames in os.walk(ws, topdown=True):
    rel = os.path.relpath(dirpath, ws)
    if rel == ".":
        dirnames[:] = [d for d in dirnames if d not in keep]
    for n in filenames:
        r = os.path.normpath(os.path.join(rel, n))
        if r not in files and r not in keep:
            os.remove(os.path.join(dirpath, n))
' "$root" "$ws"
# The copy's lock: the real one, re-resolved by cargo for the patch (candle-core's entry only).
# Replaced only when the real one changed, so that an unchanged lock keeps its mtime.
if ! cmp -s "$root/Cargo.lock" "$target/Cargo.lock.real" 2>/dev/null; then
  cp "$root/Cargo.lock" "$ws/Cargo.lock"
  cp "$root/Cargo.lock" "$target/Cargo.lock.real"
fi
mkdir -p "$ws/.cargo"
cat >"$ws/.cargo/config.toml.new" <<EOF
# Generated by scripts/build-gpu-bundle.sh: candle-core with cudarc on dynamic loading.
[patch.crates-io]
candle-core = { path = "$patched" }
EOF
if cmp -s "$ws/.cargo/config.toml.new" "$ws/.cargo/config.toml"; then
  rm "$ws/.cargo/config.toml.new"
else
  mv "$ws/.cargo/config.toml.new" "$ws/.cargo/config.toml"
fi
# Provenance: the binary records the git commit it is built from, "-dirty" when the sources
# differ from it (crates/wattbench/build.rs asks git). The copy gets its own git directory, at
# the real HEAD and sharing the real object store, so that git compares the copied files with
# that commit; the lock is marked unchanged when the real one is (the copy's differs by the
# patch alone). The real repository is only read.
head=$(git rev-parse HEAD)
if [ ! -d "$ws/.git" ]; then
  git init -q "$ws"
  echo "$root/.git/objects" >"$ws/.git/objects/info/alternates"
fi
if [ "$(cat "$ws/.git/HEAD")" != "$head" ]; then
  echo "$head" >"$ws/.git/HEAD"
  git -C "$ws" read-tree HEAD
fi
# (`ls-files -v` shows assume-unchanged entries in lower case; the index is written only on a
# change, since the binary's build script reruns when it changes.)
assumed=$(git -C "$ws" ls-files -v Cargo.lock | cut -c1)
if git diff --quiet HEAD -- Cargo.lock; then
  [ "$assumed" = h ] || git -C "$ws" update-index --assume-unchanged Cargo.lock
else
  [ "$assumed" = H ] || git -C "$ws" update-index --no-assume-unchanged Cargo.lock
fi
dirty=$(git status --porcelain --untracked-files=no -- crates kernels benchmarks Cargo.toml Cargo.lock)
commit=$head${dirty:+-dirty}

# --- Build ---------------------------------------------------------------------------------------
# nvcc and its toolkit for candle-kernels (cudaforge finds nvcc on PATH / NVCC / CUDA_HOME).
export PATH="$cuda/bin:$PATH" CUDA_PATH="$cuda" CUDA_HOME="$cuda" CUDA_ROOT="$cuda" NVCC="$cuda/bin/nvcc"
export CUDARC_CUDA_VERSION=13000 NVCC_APPEND_FLAGS="--compress-mode=size"
# candle-kernels links `-lcudart`: give the linker only the static cudart under that name, and
# keep its symbols out of the binary's dynamic symbol table.
mkdir -p "$target/cuda-link"
ln -sfn "$cuda/lib/libcudart_static.a" "$target/cuda-link/libcudart.a"
export RUSTFLAGS="-L native=$target/cuda-link -C link-arg=-Wl,--exclude-libs,libcudart.a"
cd "$ws"
step="resolving the copy's Cargo.lock"
cargo metadata --format-version 1 >/dev/null
python3 - "$root/Cargo.lock" "$ws/Cargo.lock" <<'PY'
import sys, tomllib
def pkgs(p):
    return {(x["name"], x["version"], x.get("source", "path")) for x in tomllib.load(open(p, "rb"))["package"]}
real, copy = pkgs(sys.argv[1]), pkgs(sys.argv[2])
diff = sorted((real ^ copy) - {x for x in real ^ copy if x[0] == "candle-core"})
if diff:
    sys.exit(f"the copy's Cargo.lock differs from the real one beyond candle-core: {diff} "
             "(is the real Cargo.lock up to date? cargo build --locked there)")
PY

# One cargo run for the binary and the test binaries: one feature resolution, so that nothing
# (candle's kernels above all) is built twice with different features.
step="building wattbench (release, features $features) and the GPU test binaries"
say "$step"
t=$SECONDS
cargo build --release --locked -p wattbench -p wattbench-cuda -p wattbench-candle \
  --features "$(sed 's/[^,]*/wattbench\/&/g' <<<"$features")" \
  --bin wattbench --test gpu --test correctness \
  --message-format=json-render-diagnostics >"$target/artifacts.json"
say "$step: $((SECONDS - t)) s"
exe_of() { # exe_of PACKAGE TARGET: the executable cargo built for it
  python3 - "$target/artifacts.json" "$1" "$2" <<'PY'
import json, re, sys
path, pkg, name = sys.argv[1:]
for line in open(path):
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["name"] == name
            and re.search(r"[/#]" + re.escape(pkg) + r"[@#]", m["package_id"])):
        print(m["executable"])
PY
}
exe=$(exe_of wattbench wattbench)
cuda_tests=$(exe_of wattbench-cuda gpu)
candle_tests=$(exe_of wattbench-candle correctness)
[ -n "$exe" ] && [ -n "$cuda_tests" ] && [ -n "$candle_tests" ] ||
  die "cargo built no wattbench ($exe), wattbench-cuda gpu test ($cuda_tests) or wattbench-candle test ($candle_tests) executable"
cd "$root"

# --- Checks here ------------------------------------------------------------------------------
# candle's tests with the `cuda` feature: the CPU cases, and the device probe (on a machine
# without a driver: cuda:0 unavailable with the reason, nothing run); the GPU ones are ignored.
step="running wattbench-candle's tests (built with its cuda feature)"
say "$step"
"$candle_tests" >"$target/candle-tests.log" 2>&1 || {
  tail -n 30 "$target/candle-tests.log" >&2
  die "$step (log: $target/candle-tests.log)"
}
grep '^test result' "$target/candle-tests.log" >&2
# The binary starts without the driver or any CUDA library (cudarc loads them at run time).
step="checking the binary's libraries"
needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
say "wattbench needs at start: $(tr '\n' ' ' <<<"$needed")"
if echo "$needed" | grep -E '^lib(cuda|cudart|cublas|cublasLt|curand|nvrtc|cudnn|nccl|nvJitLink)\.so'; then
  die "wattbench links a CUDA library (above); cudarc must load them at run time"
fi
if nm -D --defined-only "$exe" | grep -E ' (cuda[A-Z]|__cuda)'; then
  die "wattbench exports cudart symbols (above), which would interpose libtorch's libcudart"
fi
step="running wattbench list"
"$exe" list >"$target/list.txt" 2>&1 || {
  cat "$target/list.txt" >&2
  die "wattbench list failed"
}
grep -E '^  (candle|tch|cuda|cuda-naive|cuda-wgmma|cublas|cudnn) ' "$target/list.txt" >&2

# --- The bundle --------------------------------------------------------------------------------
step="assembling $bundle"
# Assembled beside it and swapped in only once complete and small enough: a failure keeps the
# previous bundle as it was.
final=$bundle
bundle=$final.new
rm -rf "$bundle"
mkdir -p "$bundle"
cp "$exe" "$bundle/wattbench"
cp "$cuda_tests" "$bundle/wattbench-cuda-gpu-tests"
# Debug info only: the symbol table stays, so backtraces keep function names.
strip --strip-debug "$bundle/wattbench" "$bundle/wattbench-cuda-gpu-tests"
cp scripts/gpu-check.sh scripts/gpu-env.sh scripts/profile-gemm.sh scripts/wb "$bundle/"
chmod +x "$bundle/gpu-check.sh" "$bundle/profile-gemm.sh" "$bundle/wb"
# The scripts get one run on the GPU machine: a syntax error must stop the build here.
for f in gpu-check.sh gpu-env.sh profile-gemm.sh wb; do
  bash -n "$bundle/$f" || die "$f has a syntax error"
done
cp -r benchmarks "$bundle/benchmarks"
cp -r kernels "$bundle/kernels" # embedded in the binaries already; here for reading
echo "$commit" >"$bundle/COMMIT"
echo "$features" >"$bundle/FEATURES"

size=$(du -sb "$bundle" | cut -f1)
say "contents:"
(cd "$bundle" && du -ab . | sort -k2 | awk '{ printf "  %8.1f MiB  %s\n", $1 / 1048576, $2 }') >&2
say "$final: $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB (limit $limit_mib), commit $commit, features $features, built in $(($(date +%s) - start)) s"
[ "$size" -lt $((limit_mib * 1048576)) ] || die "the bundle is too large to carry (limit $limit_mib MiB); $final is as it was"
rm -rf "$final"
mv "$bundle" "$final"
bundle=$final
step="done"
