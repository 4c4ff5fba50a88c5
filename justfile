# Brownout task runner. `just` lists the recipes.

# Show the recipes.
default:
    @just --list

# Install the system programs a local run needs (PostgreSQL, nginx, Prometheus).
deps:
    @scripts/install-deps.sh

# Run the whole test suite: lints, unit, integration and end-to-end tests.
test: deps
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# Run the checkout service by hand (needs DATABASE_URL, PAYMENTS_URL, RECEIPTS_DIR).
app *ARGS:
    cargo run -p target-app --bin checkout -- {{ARGS}}
