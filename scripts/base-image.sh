#!/usr/bin/env bash
# Makes the local base image `brownout/base:bookworm` for the Kubernetes platform's images, with
# debootstrap from Debian's package mirror (for machines where no image registry can be reached;
# elsewhere the Dockerfiles' default `debian:bookworm-slim` is pulled instead). Needs root and a
# running Docker. Safe to run again: does nothing if the image exists.
set -euo pipefail
image="brownout/base:bookworm"
if docker image inspect "$image" >/dev/null 2>&1; then exit 0; fi
mirror="${BROWNOUT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d /tmp/brownout-base-XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "brownout: building $image with debootstrap (bookworm, minbase) from $mirror" >&2
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
  echo "brownout: debootstrap failed (log: $root.log); check that $mirror is reachable" >&2
  exit 3
fi
rm -f "$root.log"
tar -C "$root" -c . | docker import - "$image" >/dev/null
echo "brownout: $image ready" >&2
