#!/usr/bin/env bash
# Installs the system programs a local Brownout run needs (PostgreSQL, nginx, mtail, Prometheus) on
# Debian/Ubuntu, and `just` through cargo. Safe to run again: it installs only what is missing.
# Package services are not started (a policy-rc.d blocks them for the duration of the install).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
have nginx || need+=(nginx-light)
have mtail || need+=(mtail)
have prometheus || need+=(prometheus)
have promtool || need+=(prometheus)
have mount || need+=(mount)

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
