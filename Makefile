# The README's test command. .ci/run calls it on a fresh machine.
.PHONY: test fmt lint unit

test: fmt lint unit

fmt:
	cargo fmt --all --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace
