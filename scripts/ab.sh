#!/usr/bin/env bash
# Interleaved A/B of two git revisions on this machine:
#   scripts/ab.sh REV_A REV_B [AB-OPTIONS] -- RUN-OPTIONS
# e.g. scripts/ab.sh main HEAD --rounds 6 --format markdown -- --suite quick --op gemm
# Each revision is checked out in its own git worktree (target/ab/worktrees/<commit>) and built
# into its own target folder (target/ab/<commit>), so builds stay warm between uses; then this
# checkout's `wattbench ab` runs the two binaries in alternating rounds and compares B with A
# (exit 0; 1 when B is slower; 2 on bad input, an unknown revision, or a revision that does
# not build, which is named). Options: `wattbench ab --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/ab.sh REV_A REV_B [AB-OPTIONS] -- RUN-OPTIONS" >&2; exit 2; }
rev_a=$1 rev_b=$2
shift 2
# Assigned, then exported: `export X="$(...)"` would hide a failed fetch.
LIBTORCH=$(bash scripts/fetch-libtorch.sh)
export LIBTORCH
features=${FEATURES:-wattbench/tch,wattbench-candle/train,wattbench-tch/train}
root=$PWD

# build REV: prints the path of REV's release binary.
build() {
  local sha
  sha=$(git rev-parse --verify "$1^{commit}") || { echo "unknown revision $1" >&2; exit 2; }
  local tree=$root/target/ab/worktrees/$sha
  if [ ! -d "$tree" ]; then
    git worktree add --detach "$tree" "$sha" >&2
  fi
  (cd "$tree" && CARGO_TARGET_DIR=$root/target/ab/$sha cargo build --release --locked \
    -p wattbench --features "$features" >&2) || {
    echo "revision $1 ($sha) does not build (above): no comparison" >&2
    exit 2
  }
  echo "$root/target/ab/$sha/release/wattbench"
}

bin_a=$(build "$rev_a")
bin_b=$(build "$rev_b")
cargo build --release --locked -p wattbench --features "$features" >&2
exec ./target/release/wattbench ab --a "$bin_a" --b "$bin_b" "$@"
