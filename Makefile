# wattbench: the two commands of the README, and their parts.
#   make run    fetch libtorch, build, measure this machine's ceilings once, run the quick suite,
#               write the result file and its reports (Markdown and self-contained HTML)
#   make test   fetch libtorch and NVRTC, fmt + clippy (-D warnings) + rustdoc (-D warnings)
#               + the CUDA kernel compile/resource check + every test (tch included; the HTML
#               report is opened in Debian's headless chromium, installed here when missing)
#               + a Slurm self-test (one-node cluster from Debian's packages) + the k8s manifest
#               validated against the Kubernetes schema
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
FEATURES ?= wattbench/tch,wattbench-candle/train,wattbench-tch/train
SUITE ?= quick
RUN_ARGS ?=
LIBTORCH_ENV = LIBTORCH="$$(bash scripts/fetch-libtorch.sh)"; export LIBTORCH;

.PHONY: run build test fmt clippy doc unit kernel-check emulate bench-build browser slurm-selftest k8s-validate gpu-bundle bench-overhead

build:
	$(LIBTORCH_ENV) $(CARGO) build --release --locked -p wattbench --features $(FEATURES)

run: build
	mkdir -p results/runs
	out="results/runs/$$(date -u +%Y%m%dT%H%M%SZ)-$$(hostname)-$(basename $(notdir $(SUITE))).json"; \
	status=0; ./target/release/wattbench run --suite $(SUITE) --output "$$out" $(RUN_ARGS) || status=$$?; \
	if [ -f "$$out" ]; then \
	  ./target/release/wattbench ceilings --if-missing || echo "ceilings not measured: the report has no roofs" >&2; \
	  ./target/release/wattbench report "$$out" --output "$${out%.json}.md"; \
	  ./target/release/wattbench report --format html "$$out" --output "$${out%.json}.html"; \
	  echo "reports: $${out%.json}.md $${out%.json}.html"; fi; \
	exit $$status

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(LIBTORCH_ENV) $(CARGO) clippy --locked --workspace --all-targets --features $(FEATURES) -- -D warnings

# Every public item documented, no broken links (warnings are errors).
doc:
	$(LIBTORCH_ENV) RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps --features $(FEATURES)

# Every test binary runs (--no-fail-fast: one CI run shows every failure); ends with one line
# summing their counts (ignored = GPU-only tests), failures included.
unit:
	$(LIBTORCH_ENV) log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	status=0; $(CARGO) test --locked --no-fail-fast --workspace --features $(FEATURES) 2>&1 | tee "$$log" || status=$$?; \
	awk '/^test result:/ { p += $$4; f += $$6; i += $$8 } /process didn.t exit successfully/ && !/exit status: 101\)/ { k += 1 } \
	  END { printf "tests: %d passed, %d failed, %d skipped%s\n", p, f, i, k ? sprintf("; %d test binaries ended without their result (a signal or another exit status: see above)", k) : "" }' "$$log"; \
	exit $$status

# Every CUDA kernel compiles with NVRTC (sm_80/89/90) and ptxas reports no spills; no GPU needed.
kernel-check:
	bash scripts/kernel-check.sh

# Our kernels executed on the CPU emulator (part of `unit`, so of `make test`): every plan of
# the cuda, cuda-naive, cuda-wgmma and cuda-wgmma-c2 backends on the generic shapes, verified
# against the f64 reference; needs g++ with AddressSanitizer, no GPU.
emulate:
	$(LIBTORCH_ENV) $(CARGO) test --locked -p wattbench-cuda --lib emulator

# Every bench compiles (criterion's `ops` included); they are run by `cargo bench`, not here.
bench-build:
	$(LIBTORCH_ENV) $(CARGO) test --locked --workspace --features $(FEATURES) --benches --no-run

# Debian's chromium, for the test that opens the HTML report in a real browser.
browser:
	command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	  || { $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }; }

# A one-node Slurm cluster (Debian's packages), a 2-task array, merge and checks; it prints why
# when it skips (exit 77: Slurm cannot be installed here, e.g. not root), and the skip fails
# the target where WATTBENCH_REQUIRE_SLURM is set (CI). Uses the binary `unit` built.
slurm-selftest:
	bash scripts/slurm/selftest.sh $${CARGO_TARGET_DIR:-target}/debug/wattbench || { rc=$$?; [ $$rc = 77 ] \
	  && echo "SKIPPED: the Slurm self-test did not run (see above)" >&2 \
	  && [ -z "$${WATTBENCH_REQUIRE_SLURM:-}" ]; }

# The Kubernetes manifests against the API schema (kubernetes-validate from PyPI, strict).
k8s-validate:
	bash scripts/k8s/validate.sh

test: fmt clippy doc kernel-check bench-build browser unit slurm-selftest k8s-validate

# A self-contained GPU build for the GPU check (.gpu-bundle/; see scripts/gpu-check.sh): every
# GPU backend in one binary, candle's CUDA kernels compiled with nvcc 13.0 from PyPI (fetched
# once); no GPU needed. Cold about 20 min on 2 cores. Details in scripts/build-gpu-bundle.sh.
gpu-bundle:
	CARGO_TARGET_DIR=$${CARGO_TARGET_DIR:-target/gpu-bundle} bash scripts/build-gpu-bundle.sh

# Harness overhead against a bare loop over the same backend call (a benchmark, not a test).
bench-overhead:
	$(LIBTORCH_ENV) $(CARGO) bench --locked -p wattbench --features $(FEATURES) --bench harness_overhead
