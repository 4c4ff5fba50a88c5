#!/usr/bin/env bash
# Installs the system programs a local Brownout run needs (PostgreSQL, nginx, mtail, Prometheus) on
# Debian/Ubuntu, Chromium for the report page's tests, HAProxy and wrk for the benchmarks, `just` through cargo, and kubernetes-validate (PyPI, in .tools/venv) for the
# offline checks of the Kubernetes objects. Safe to run again: it installs only what is missing.
# Package services are not started (a policy-rc.d blocks them for the duration of the install);
# dockerd is started here if it is not running, and the local base image is built
# (scripts/base-image.sh).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
have nginx || need+=(nginx-light)
have mtail || need+=(mtail)
have prometheus || need+=(prometheus)
have promtool || need+=(prometheus)
have mount || need+=(mount)
have python3 || need+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# Docker builds and runs the Kubernetes platform's images in the tests (testcontainers); debootstrap
# makes their base image locally, where no registry can be reached.
have dockerd || need+=(docker.io)
have debootstrap || need+=(debootstrap)
# Headless Chromium renders every run's report.html in the tests (console errors, elements, a
# screenshot).
have chromium || need+=(chromium)
# The benchmarks (`just bench`) compare the fault proxy with HAProxy (TCP mode) and the load driver
# with wrk.
have haproxy || need+=(haproxy)
have wrk || need+=(wrk)

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "brownout: missing packages: ${need[*]}; this script knows apt-get only: install them with your package manager" >&2
    exit 3
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "brownout: missing packages: ${need[*]}; run as root: apt-get install -y --no-install-recommends ${need[*]}" >&2
      exit 3
    fi
  fi
  echo "brownout: installing ${need[*]} with apt-get" >&2
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  trap '[ -n "$policy_added" ] && $sudo rm -f /usr/sbin/policy-rc.d' EXIT
  if [ -z "${BROWNOUT_SKIP_APT_UPDATE:-}" ]; then $sudo apt-get update -qq; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# kubernetes-validate: the Kubernetes platform's tests validate the rendered objects against the
# Kubernetes schemas with it, offline. A venv inside the repository (git-ignored), pinned.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.tools/venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "brownout: installing kubernetes-validate into $venv" >&2
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate==1.37.0; }; then
    echo "brownout: could not install kubernetes-validate (PyPI); install it by hand: python3 -m venv $venv && $venv/bin/pip install kubernetes-validate==1.37.0" >&2
    exit 3
  fi
fi

# Docker: start the daemon if nothing answers (a fresh machine or CI has no service manager
# running it), then make the local base image the image tests build on.
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "brownout: Docker is not running; start it (as root: dockerd &, or systemctl start docker)" >&2
    exit 3
  fi
  echo "brownout: starting dockerd (log: /var/log/brownout-dockerd.log)" >&2
  nohup dockerd >/var/log/brownout-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  if ! docker info >/dev/null 2>&1; then
    echo "brownout: dockerd did not start within 30 s; see /var/log/brownout-dockerd.log" >&2
    exit 3
  fi
fi
"$root/scripts/base-image.sh"
