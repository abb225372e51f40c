#!/usr/bin/env bash
# Make sure the Debian packages the tests run for real are installed:
#   redis-server (redis-server), mosquitto (mosquitto), prometheus (promtool),
#   postgresql (/usr/lib/postgresql/*/bin/initdb), busybox (runs the Redis cluster bootstrap
#   script the way the Alpine image does), etcd-server (etcd, the store of the vendored
#   kube-apiserver in tests/realkube.py), openssl (test certificates), docker-registry (a real
#   OCI registry on loopback) and skopeo (pushes an image into it) for the images-lock resolver
#   (docs/hardening.md), mosquitto-clients (mosquitto_sub/mosquitto_pub: the seed's operational
#   checks in tests/e2e), gcc and libc6-dev (compile tests/e2e/bindshim.c, a pod address per replica;
#   gcc only recommends libc6-dev, and the install skips recommends).
# Silent when everything is present. Installs only the missing packages when run as
# root; otherwise prints what to install and exits 1.
set -euo pipefail

have_cmd() {
  # mosquitto lives in /usr/sbin, which is not on a normal user's PATH.
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}
have_initdb() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_cmd redis-server || missing+=(redis-server)
have_cmd mosquitto || missing+=(mosquitto)
have_cmd promtool || missing+=(prometheus)
have_initdb || missing+=(postgresql)
have_cmd busybox || missing+=(busybox)
have_cmd dot || missing+=(graphviz)
have_cmd etcd || missing+=(etcd-server)
have_cmd openssl || missing+=(openssl)
have_cmd docker-registry || missing+=(docker-registry)
have_cmd skopeo || missing+=(skopeo)
have_cmd mosquitto_sub || missing+=(mosquitto-clients)
have_cmd gcc || missing+=(gcc)
[ -e /usr/include/stdio.h ] || missing+=(libc6-dev)

[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "ensure-system-deps: install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "ensure-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# stdout is dropped to keep `make test` quiet; errors still reach stderr.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
