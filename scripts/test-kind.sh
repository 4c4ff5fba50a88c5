#!/usr/bin/env bash
# The kind platform's real run, cheap to attempt and easy to read (`./just test-kind`; the kind
# workflow runs it too):
#   1. docker, kind and kubectl are there (exit 3 naming how to install each if not);
#   2. the `brownout` kind cluster is created from kind-config/kind.yaml (kind v0.33.0's node
#      image for Kubernetes 1.34, pinned by digest) or reused;
#   3. the release binaries are built; the first run builds and loads the four images under
#      their content tag, every later run finds them on the node and skips both;
#   4. smoke rows first, one hardened run each: sigterm-grace, then slow-upstream. The first that
#      fails stops everything with a diagnosis printed and saved in reports/kind/diagnosis/<row>/
#      (pods, events by time, every container's log, current and --previous, the run's output
#      and its report.json);
#   5. the kind matrix (tests/e2e.rs scenario_matrix_on_kind), reports in reports/kind/matrix/
#      (the smoke rows' in reports/kind/smoke/).
# Usage: scripts/test-kind.sh [--smoke-only]
# BROWNOUT_IMAGE_BASE: the images' base (default: this host's distribution, whose glibc the
# copied binaries need; else the Dockerfiles' debian:bookworm-slim).
set -euo pipefail
cd "$(dirname "$0")/.."

# The kind release and node image (harness/src/platform/kube/images.rs KIND_RELEASE and
# NODE_IMAGE; kind-config/kind.yaml pins the image; a unit test keeps them equal).
KIND_RELEASE=v0.33.0
KUBECTL_RELEASE=v1.34.11
CLUSTER=brownout
CONTEXT=kind-$CLUSTER
SMOKE_ROWS=(sigterm-grace slow-upstream)
REPORTS=$PWD/reports/kind
B=${BROWNOUT_BIN:-target/release/brownout}

smoke_only=false
for arg in "$@"; do
  case "$arg" in
    --smoke-only) smoke_only=true ;;
    *) echo "usage: scripts/test-kind.sh [--smoke-only]" >&2; exit 2 ;;
  esac
done

say() { printf 'test-kind: %s\n' "$*" >&2; }

# 1. The programs.
missing=0
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  say "$1 is not installed: $2"
  missing=1
}
need docker "apt-get install docker.io (then start dockerd), or https://docs.docker.com/engine/install/"
need kind "go install sigs.k8s.io/kind@$KIND_RELEASE, or the release binary: curl -Lo kind https://kind.sigs.k8s.io/dl/$KIND_RELEASE/kind-linux-amd64 && chmod +x kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
need kubectl "curl -LO https://dl.k8s.io/release/$KUBECTL_RELEASE/bin/linux/amd64/kubectl && chmod +x kubectl (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/)"
[ "$missing" = 0 ] || exit 3
docker info >/dev/null 2>&1 || { say "docker is installed but its daemon does not answer (start dockerd)"; exit 3; }
have_kind=$(kind version 2>/dev/null || true)
case "$have_kind" in
  *"$KIND_RELEASE "*) ;;
  *) say "warning: $have_kind; the node image is built for kind $KIND_RELEASE (other releases: best effort)" ;;
esac

if [ -z "${BROWNOUT_IMAGE_BASE:-}" ] && [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  distro=$(. /etc/os-release && echo "${ID:-}:${VERSION_ID:-}")
  case "$distro" in
    ubuntu:?*|debian:?*) export BROWNOUT_IMAGE_BASE=$distro ;;
  esac
fi
say "image base: ${BROWNOUT_IMAGE_BASE:-debian:bookworm-slim, the default of the Dockerfiles}"

# 2. The cluster, created or reused.
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  pinned=$(sed -n 's/^ *image: *//p' kind-config/kind.yaml | head -1)
  running=$(docker inspect --format '{{.Config.Image}}' "$CLUSTER-control-plane" 2>/dev/null || echo unknown)
  if [ "$running" != "$pinned" ]; then
    say "warning: the $CLUSTER cluster runs $running, not the pinned $pinned (kind delete cluster --name $CLUSTER to recreate it)"
  fi
  say "reusing the kind cluster $CLUSTER"
else
  say "creating the kind cluster $CLUSTER from kind-config/kind.yaml"
  kind create cluster --config kind-config/kind.yaml --wait 180s
fi
kubectl --context "$CONTEXT" version 2>/dev/null | sed 's/^/test-kind: /' >&2 || true

# 3. The binaries (the images copy them; the first run builds and loads the images).
cargo build --workspace --bins --release

# The newest namespace of a run (the one a smoke row just left behind).
newest_run_namespace() {
  kubectl --context "$CONTEXT" get namespaces -l brownout.dev/run \
    --sort-by=.metadata.creationTimestamp \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null | tail -1
}

# Prints and saves what a failed smoke row left: its output, pods, events by time, every
# container's log (current and --previous), and its report.
diagnose() {
  local row=$1 out=$2 err=$3 code=$4
  local dir=$REPORTS/diagnosis/$row
  rm -rf "$dir"
  mkdir -p "$dir/logs"
  cp "$out" "$dir/run.stdout"
  cp "$err" "$dir/run.stderr"
  local report
  report=$(sed -n 's/^report: //p' "$out" | tail -1)
  local ns
  ns=$(newest_run_namespace)
  {
    echo "== smoke row $row: brownout run exited $code"
    if [ -n "$report" ]; then
      echo "report: $(dirname "$report")/report.json"
    else
      echo "report: none written"
    fi
    echo "== the run's last 40 lines of stderr ($dir/run.stderr)"
    tail -40 "$err"
  } | tee "$dir/summary.txt"
  if [ -z "$ns" ]; then
    echo "== no namespace of a run is left on the cluster (the run stopped before deploying?)" | tee -a "$dir/summary.txt"
    kubectl --context "$CONTEXT" get pods -A -o wide >"$dir/all-pods.txt" 2>&1 || true
    cat "$dir/all-pods.txt"
    return
  fi
  kubectl --context "$CONTEXT" -n "$ns" get pods -o wide >"$dir/pods.txt" 2>&1 || true
  kubectl --context "$CONTEXT" -n "$ns" describe pods >"$dir/describe-pods.txt" 2>&1 || true
  # `kubectl events` lists by time; older kubectl: by creation.
  kubectl --context "$CONTEXT" -n "$ns" events >"$dir/events.txt" 2>&1 ||
    kubectl --context "$CONTEXT" -n "$ns" get events --sort-by=.metadata.creationTimestamp >"$dir/events.txt" 2>&1 || true
  kubectl --context "$CONTEXT" get pods -A -o wide >"$dir/all-pods.txt" 2>&1 || true
  local pod container
  for pod in $(kubectl --context "$CONTEXT" -n "$ns" get pods -o jsonpath='{.items[*].metadata.name}' 2>/dev/null); do
    for container in $(kubectl --context "$CONTEXT" -n "$ns" get pod "$pod" -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}' 2>/dev/null); do
      kubectl --context "$CONTEXT" -n "$ns" logs "$pod" -c "$container" >"$dir/logs/$pod.$container.log" 2>&1 || true
      kubectl --context "$CONTEXT" -n "$ns" logs "$pod" -c "$container" --previous >"$dir/logs/$pod.$container.previous.log" 2>&1 || true
    done
  done
  {
    echo "== pods of namespace $ns ($dir/pods.txt)"
    cat "$dir/pods.txt"
    echo "== events by time, last 60 ($dir/events.txt)"
    tail -60 "$dir/events.txt"
    local f
    for f in "$dir"/logs/*.log; do
      echo "== $(basename "$f"), last 20 lines"
      tail -20 "$f"
    done
    echo "== saved in $dir; the namespace $ns is kept (./target/release/brownout clean --platform kind deletes it)"
  } | tee -a "$dir/summary.txt"
}

# 4. The smoke rows, one hardened run each; the namespace is kept for a diagnosis.
mkdir -p "$REPORTS/smoke"
for row in "${SMOKE_ROWS[@]}"; do
  say "smoke row: $row (hardened)"
  out=$(mktemp) err=$(mktemp)
  code=0
  started=$SECONDS
  BROWNOUT_KEEP_NAMESPACE=1 "$B" run "$row" --platform kind --reports-dir "$REPORTS/smoke" \
    >"$out" 2> >(tee "$err" >&2) || code=$?
  cat "$out"
  say "smoke row $row took $((SECONDS - started)) s (the matrix has about 29 rows like it)"
  if [ "$code" != 0 ]; then
    diagnose "$row" "$out" "$err" "$code"
    say "smoke row $row failed (exit $code): stopping; the diagnosis is in $REPORTS/diagnosis/$row/"
    exit 1
  fi
  ns=$(newest_run_namespace)
  "$B" clean --platform kind
  if [ -n "$ns" ]; then
    kubectl --context "$CONTEXT" wait --for=delete "namespace/$ns" --timeout=120s >/dev/null 2>&1 || true
  fi
  rm -f "$out" "$err"
done
if [ "$smoke_only" = true ]; then
  say "smoke rows passed (--smoke-only: the matrix is not run)"
  exit 0
fi

# 5. The kind matrix.
say "the kind matrix (tests/e2e.rs scenario_matrix_on_kind), reports in $REPORTS/matrix"
BROWNOUT_E2E_REPORTS=$REPORTS/matrix cargo test --release -p harness --test e2e -- \
  --ignored --exact scenario_matrix_on_kind --nocapture --test-threads=1
