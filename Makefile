# wattbench: the two commands of the README, and their parts.
#   make run    fetch libtorch, build, run the quick suite, write the result file and a report
#   make test   fetch libtorch, fmt + clippy (-D warnings) + every test, including tch
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
FEATURES ?= wattbench/tch
SUITE ?= quick
RUN_ARGS ?=
LIBTORCH_ENV = export LIBTORCH="$$(bash scripts/fetch-libtorch.sh)";

.PHONY: run build test fmt clippy unit bench-overhead clean-results

build:
	$(LIBTORCH_ENV) $(CARGO) build --release --locked -p wattbench --features $(FEATURES)

run: build
	mkdir -p results/runs
	out="results/runs/$$(date -u +%Y%m%dT%H%M%SZ)-$$(hostname)-$(SUITE).json"; \
	status=0; ./target/release/wattbench run --suite $(SUITE) --output "$$out" $(RUN_ARGS) || status=$$?; \
	if [ -f "$$out" ]; then ./target/release/wattbench report "$$out" --output "$${out%.json}.md"; \
	  echo "report: $${out%.json}.md"; fi; \
	exit $$status

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(LIBTORCH_ENV) $(CARGO) clippy --locked --workspace --all-targets --features $(FEATURES) -- -D warnings

unit:
	$(LIBTORCH_ENV) $(CARGO) test --locked --workspace --features $(FEATURES)

test: fmt clippy unit

# Harness overhead against a bare loop over the same backend call (a benchmark, not a test).
bench-overhead:
	$(LIBTORCH_ENV) $(CARGO) bench --locked -p wattbench --features $(FEATURES) --bench harness_overhead
