# Brownout task runner. `just` lists the recipes.

# Show the recipes.
default:
    @just --list

# Install the system programs, by group (default all): local (PostgreSQL, nginx, mtail,
# Prometheus: what a local run needs), page (a headless browser), bench (HAProxy, wrk), kube
# (Docker, the base image, kubernetes-validate). Each recipe below installs only its own groups.
deps *GROUPS:
    @scripts/install-deps.sh {{GROUPS}}

# The local platform's programs only (what `scenario`, `prove`, `suite` and `gameday` need).
[private]
deps-local:
    @scripts/install-deps.sh local

# Build the harness and the sample app (release: what is measured is not a debug build).
build:
    cargo build --workspace --bins --release

# Run a scenario on the local platform, e.g. `just scenario pool-exhaustion --bug no-acquire-timeout`.
scenario NAME *ARGS: deps-local build
    ./target/release/brownout run {{NAME}} {{ARGS}}

# Prove that scenarios catch their bugs ([catches] in each file): the hardened app passes, each bug
# fails exactly its listed expectations (default: every scenario that declares [catches]).
prove *NAMES: deps-local build
    ./target/release/brownout prove {{NAMES}}

# Run several scenarios one after another (default: all), each against its stored baseline if any;
# one table, one reports/suite/<id>/junit.xml; exit 1 if an expectation failed. E.g. `just suite --bug no-drain`.
suite *ARGS: deps-local build
    ./target/release/brownout suite {{ARGS}}

# Check scenario files without running anything (default: everything in scenarios/).
validate *PATHS: build
    ./target/release/brownout validate {{PATHS}}

# List the scenarios.
list: build
    ./target/release/brownout list

# The fast tier (CI runs it, about 30 min from a fresh clone): format and lint checks, unit,
# integration and end-to-end tests, quick benchmarks; the scenario matrix is `just test-matrix`.
test: (deps "all")
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo build --workspace --bins --release
    cargo test --workspace --release
    cargo test --workspace --release --bench bench -- --quick

# The long tier (about 30 min): every scenario proved on the hardened app and with each bug of its
# [catches] (`brownout prove`), each run's load, edge counts and page checked, the bugs again on the
# system without the edge rule, the scenarios without what they prove, and every alert rule fired.
test-matrix: (deps "local" "page")
    cargo build --workspace --bins --release
    cargo test --release -p harness --test e2e -- --ignored --exact scenario_matrix --nocapture

# The kind platform for real (needs docker, kind v0.33.0 and kubectl; exit 3 naming how to install
# a missing one): creates or reuses the `brownout` kind cluster (kind-config/kind.yaml, Kubernetes
# 1.34), builds the release binaries and, once, the images; smoke rows first (sigterm-grace, then
# slow-upstream), stopping at the first failing one with a diagnosis in reports/kind/diagnosis/;
# then the kind matrix. `./just test-kind --smoke-only` stops after the smoke rows.
test-kind *ARGS: (deps "kube" "page")
    scripts/test-kind.sh {{ARGS}}

# Benchmarks, side by side in one run (PARTS: proxy load startup cost inflight; default all): the
# fault proxy vs HAProxy, the load driver vs bare goose and wrk, stack start-up, the harness's CPU and
# RSS at 40/400/2000 req/s, memory per send waiting for its answer vs reqwest and hyper. Prints the table, writes reports/bench/. `just bench --quick` only checks they run.
bench *PARTS: (deps "local" "bench") build
    cargo bench -p harness --bench bench -- {{PARTS}}

# Fuzz the scenario + system loader for SECS seconds (the test suite runs it for 60 s).
fuzz SECS="600":
    BROWNOUT_FUZZ_SECS={{SECS}} cargo test --release -p harness --test fuzz_spec -- --nocapture

# Abort N runs at random moments with SIGINT, then N with SIGKILL, checking that nothing is left
# after each (the test suite runs 4 of each). Needs root and the local platform's programs.
abort-soak N="200": deps-local
    cargo build --workspace --bins --release
    BROWNOUT_ABORT_RUNS={{N}} cargo test --release -p harness --test abort -- --nocapture --test-threads 1

# Run the e2e matrix N times and print per scenario × bug the verdicts and the smallest margin per
# time-bound expectation (PROFILE: release or debug). Reports stay in reports/stability-PROFILE/.
stability N="3" PROFILE="release": (deps "local" "page")
    cargo build --workspace --bins {{ if PROFILE == "release" { "--release" } else { "" } }}
    rm -rf reports/stability-{{PROFILE}}
    -BROWNOUT_E2E_REPEAT={{N}} BROWNOUT_E2E_REPORTS={{justfile_directory()}}/reports/stability-{{PROFILE}} cargo test {{ if PROFILE == "release" { "--release" } else { "" } }} -p harness --test e2e -- --ignored --exact scenario_matrix
    ./target/{{PROFILE}}/brownout summarize reports/stability-{{PROFILE}}

# Run a game day on SYSTEM (the local platform): steady load, faults by hand from the page or
# `brownout gameday inject|heal|rate|note|status|stop`, a report of the windows when stopped.
gameday SYSTEM="scenarios/systems/checkout.toml" *ARGS: deps-local build
    ./target/release/brownout gameday {{SYSTEM}} {{ARGS}}

# A MINUTES-long game day at RATE req/s, three faults scripted through the subcommands; prints the
# windows, the harness's memory and what was left (the README's figures).
gameday-soak MINUTES="30" RATE="100": deps-local build
    scripts/gameday-soak.sh {{MINUTES}} {{RATE}}

# Run the checkout service by hand (needs DATABASE_URL, PAYMENTS_URL, RECEIPTS_DIR).
app *ARGS:
    cargo run -p target-app --bin checkout -- {{ARGS}}
