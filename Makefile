# The README's commands. .ci/run calls `make test` on a fresh machine.
.PHONY: test check demo fmt lint cycles unit unit-fast tools compose-check bench-checkout

# CI passes CARGO_FLAGS=--locked: the build uses Cargo.lock as committed, or fails.
CARGO_FLAGS ?=

test: fmt lint cycles unit

# The fast loop: fmt, clippy, module cycles, and the unit tests inside each crate (no end-to-end test, no tool install).
check: fmt lint cycles unit-fast

# The local stack and two checkouts; Ctrl-C stops it. See scripts/demo.sh for its settings.
demo:
	scripts/demo.sh

fmt:
	cargo fmt --all --check

lint:
	cargo clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

# No module imports a module that imports it back (see the script's doc).
cycles:
	python3 scripts/module-cycles.py .

# The end-to-end tests start the Temporal dev server from the project-local install;
# the broker's tests also run on the PostgreSQL server scripts/start-postgres.sh starts;
# stripe-sim's contract test runs Stripe's official Python library from .tools/stripe-venv;
# the test of Stripe's libraries through the broker also runs its Node library from .tools/stripe-node.
unit: tools
	cargo test $(CARGO_FLAGS) --workspace

unit-fast:
	cargo test $(CARGO_FLAGS) --workspace --lib --bins

tools:
	@scripts/install-temporal.sh >/dev/null
	@scripts/install-stripe-python.sh >/dev/null
	@scripts/install-stripe-node.sh >/dev/null
	@scripts/start-postgres.sh >/dev/null

# Validates docker-compose.yml with the example settings (needs docker-compose; no engine).
compose-check:
	docker-compose --env-file .env.example -f docker-compose.yml config -q

# Checkout load: N checkouts through Keylease and through a keyless baseline
# (see BENCHMARKS.md). Flags: BENCH_ARGS="--workflows 500 --concurrency 100".
bench-checkout: tools
	cargo build --release -p keylease-worker -p keylease-broker -p stripe-sim -p keylease-bench
	target/release/keylease-bench $(BENCH_ARGS)
