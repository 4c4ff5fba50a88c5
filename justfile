# Brownout task runner. `just` lists the recipes.

# Show the recipes.
default:
    @just --list

# Install the system programs a local run needs (PostgreSQL, nginx, Prometheus).
deps:
    @scripts/install-deps.sh

# Build the harness and the sample app.
build:
    cargo build --workspace --bins

# Run a scenario on the local platform, e.g. `just scenario pool-exhaustion --bug no-acquire-timeout`.
scenario NAME *ARGS: deps build
    ./target/debug/brownout run {{NAME}} {{ARGS}}

# Check scenario files without running anything (default: everything in scenarios/).
validate *PATHS: build
    ./target/debug/brownout validate {{PATHS}}

# List the scenarios.
list: build
    ./target/debug/brownout list

# Run the whole test suite: format and lint checks, unit, integration and end-to-end tests.
test: deps
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo build --workspace --bins
    cargo test --workspace

# Run the checkout service by hand (needs DATABASE_URL, PAYMENTS_URL, RECEIPTS_DIR).
app *ARGS:
    cargo run -p target-app --bin checkout -- {{ARGS}}
