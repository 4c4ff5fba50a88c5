#!/usr/bin/env bash
# Installs the system programs Brownout's commands need, in groups, so that each command installs
# only its own (Debian 12 and Ubuntu 24.04, with apt-get):
#
#   scripts/install-deps.sh [GROUP...]     (no GROUP: all)
#   local  the local platform: PostgreSQL, nginx, mtail, Prometheus and promtool, mount
#          (`just scenario`, `prove`, `suite`, `gameday`)
#   page   a headless Chrome/Chromium for the report page's tests
#   bench  HAProxy and wrk for the benchmarks (`just bench`, with local)
#   kube   the Kubernetes platform's images and tests: Docker (started if it is not running), the
#          local base image (scripts/base-image.sh, with debootstrap), python3 and a venv with
#          kubernetes-validate (PyPI, in .tools/venv)
#   all    every group (`just test`, .ci/run)
#
# What is already there is used, not installed again: e.g. GitHub's Ubuntu 24.04 runners ship
# PostgreSQL, nginx, Docker and Google Chrome. Package names are checked with apt-cache where the
# distributions differ (Debian's `nginx-light` does not exist on Ubuntu 24.04: `nginx` there).
# `apt-get update` runs once, and only if something is missing (not at all with
# BROWNOUT_SKIP_APT_UPDATE=1, for a caller that just ran it). Package services are not started (a
# policy-rc.d blocks them for the duration of the install). Exit 2 for an unknown group, 3 when
# something cannot be installed (naming how to install it by hand).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "brownout: $*" >&2; }

groups=()
for g in "${@:-all}"; do
  case "$g" in
    all) groups+=(local page bench kube) ;;
    local | page | bench | kube) groups+=("$g") ;;
    *)
      say "unknown group '$g' (groups: local page bench kube all)"
      exit 2
      ;;
  esac
done
want() { [[ " ${groups[*]} " == *" $1 "* ]]; }

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# A headless browser that really runs (Ubuntu's `chromium-browser` and `chromium` are wrappers
# for a snap, which fail without snapd); BROWNOUT_CHROME first. The tests look for it the same way
# (tests/support/chromium.rs).
browser() {
  local c
  for c in ${BROWNOUT_CHROME:-} google-chrome google-chrome-stable chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1 &&
      timeout 60 "$c" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

# Logical names of what is missing; turned into this distribution's package names after the
# package lists are known (apt-get update).
need=()
if want local; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
  have nginx || need+=(nginx)
  have mtail || need+=(mtail)
  { have prometheus && have promtool; } || need+=(prometheus)
  have mount || need+=(mount)
fi
if want page && ! browser >/dev/null; then
  need+=(chromium)
fi
if want bench; then
  # The benchmarks compare the fault proxy with HAProxy (TCP mode) and the load driver with wrk.
  have haproxy || need+=(haproxy)
  have wrk || need+=(wrk)
fi
if want kube; then
  have python3 || need+=(python3)
  python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  # Docker builds and runs the Kubernetes platform's images in the tests (testcontainers);
  # debootstrap makes their base image locally, where no registry can be reached.
  have dockerd || need+=(docker.io)
  have debootstrap || need+=(debootstrap)
fi

# Whether apt knows a package with an installable version (read whole: `grep -q` would end the
# pipe early, and pipefail would count apt-cache's SIGPIPE as a failure).
available() { [[ "$(apt-cache policy "$1" 2>/dev/null)" =~ Candidate:\ [^\(] ]]; }

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${need[*]} (groups: ${groups[*]}); this script knows apt-get only: install them with your package manager"
    exit 3
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      say "missing: ${need[*]}; run this script as root"
      exit 3
    fi
  fi
  if [ -z "${BROWNOUT_SKIP_APT_UPDATE:-}" ]; then $sudo apt-get update -qq; fi
  packages=()
  for n in "${need[@]}"; do
    case "$n" in
      # Debian's small build where there is one (Debian 12), else the distribution's nginx.
      nginx) if available nginx-light; then packages+=(nginx-light); else packages+=(nginx); fi ;;
      chromium)
        # Ubuntu's chromium packages only install the snap wrapper: no use without snapd.
        if grep -qs '^ID=ubuntu' /etc/os-release || ! available chromium; then
          say "no headless browser runs here (tried: ${BROWNOUT_CHROME:-} google-chrome google-chrome-stable chromium chromium-browser); install Google Chrome (https://www.google.com/chrome/, a .deb) or Chromium, or point BROWNOUT_CHROME at one"
          exit 3
        fi
        packages+=(chromium)
        ;;
      *) packages+=("$n") ;;
    esac
  done
  missing=()
  for p in "${packages[@]}"; do available "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt knows no installable ${missing[*]} here (Ubuntu: enable the universe component); install them by hand"
    exit 3
  fi
  say "installing (groups: ${groups[*]}): ${packages[*]} with apt-get"
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  trap '[ -n "$policy_added" ] && $sudo rm -f /usr/sbin/policy-rc.d' EXIT
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  say "nothing to install (groups: ${groups[*]})"
fi

if want page; then
  if ! b="$(browser)"; then
    say "the browser installed does not run headless; point BROWNOUT_CHROME at one that does"
    exit 3
  fi
  say "headless browser for the page tests: $b (BROWNOUT_CHROME overrides)"
fi

if want kube; then
  # kubernetes-validate: the Kubernetes platform's tests validate the rendered objects against the
  # Kubernetes schemas with it, offline. A venv inside the repository (git-ignored), pinned.
  venv="$root/.tools/venv"
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    say "installing kubernetes-validate into $venv"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate==1.37.0; }; then
      say "could not install kubernetes-validate (PyPI); install it by hand: python3 -m venv $venv && $venv/bin/pip install kubernetes-validate==1.37.0"
      exit 3
    fi
  fi

  # Docker: start the daemon if nothing answers (a fresh machine or CI has no service manager
  # running it), then make the local base image the image tests build on.
  if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      say "Docker is not running; start it (as root: dockerd &, or systemctl start docker)"
      exit 3
    fi
    say "starting dockerd (log: /var/log/brownout-dockerd.log)"
    nohup dockerd >/var/log/brownout-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    if ! docker info >/dev/null 2>&1; then
      say "dockerd did not start within 30 s; see /var/log/brownout-dockerd.log"
      exit 3
    fi
  fi
  "$root/scripts/base-image.sh"
fi
