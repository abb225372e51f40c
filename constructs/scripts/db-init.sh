#!/bin/sh
# db-init: create or align the application role and database, grants and extensions (db-init.sql).
# Idempotent: run on every Argo CD sync before the API (Sync hook, wave -1). POSIX sh (busybox in the
# postgres:*-alpine image, dash on Debian).
#
# Environment (the Job sets it from Secrets; nothing is passed on a command line):
#   PGHOST PGPORT PGUSER PGPASSWORD  the server (sql-credentials-{ns}) and the admin role (pg-admin-credentials)
#   ADMIN_DATABASE                   maintenance database to connect to (default postgres)
#   APP_USER APP_PASSWORD APP_DB     the application role and database (sql-credentials-{ns})
#   WAIT_SECONDS                     how long to wait for the server (default 300)
#   REQUIRE_TIMESCALEDB              true: fail when timescaledb is not installable (default true)
#   SQL_FILE                         default: db-init.sql beside this script
set -eu

log() { printf 'db-init: %s\n' "$*"; }
die() { printf 'db-init: ERROR: %s\n' "$*" >&2; exit 1; }

for var in PGHOST PGUSER PGPASSWORD APP_USER APP_PASSWORD APP_DB; do
  eval "value=\${$var:-}"
  [ -n "$value" ] || die "$var is not set"
done
ADMIN_DATABASE=${ADMIN_DATABASE:-postgres}
WAIT_SECONDS=${WAIT_SECONDS:-300}
POLL_SECONDS=${POLL_SECONDS:-5}
SQL_FILE=${SQL_FILE:-$(dirname "$0")/db-init.sql}
case "${REQUIRE_TIMESCALEDB:-true}" in
  true) require=on ;;
  false) require=off ;;
  *) die "REQUIRE_TIMESCALEDB must be true or false" ;;
esac
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

start=$(date +%s)
until pg_isready -q -d "$ADMIN_DATABASE"; do
  [ $(( $(date +%s) - start )) -lt "$WAIT_SECONDS" ] || die "server ${PGHOST}:${PGPORT:-5432} not ready after ${WAIT_SECONDS}s"
  log "waiting for ${PGHOST}:${PGPORT:-5432} ..."
  sleep "$POLL_SECONDS"
done

# Is the Secret's password already the role's? Then the role is not touched at all (a second run is a
# no-op). Any failure (no such role, wrong password, no CONNECT) means: set it.
if PGUSER=$APP_USER PGPASSWORD=$APP_PASSWORD psql -X -q -t -A -d "$ADMIN_DATABASE" -c 'SELECT 1' >/dev/null 2>&1; then
  current=on
else
  current=off
fi

psql -X -q -v ON_ERROR_STOP=1 -v app_password_current="$current" -v require_timescaledb="$require" \
  -d "$ADMIN_DATABASE" -f "$SQL_FILE" || die "db-init.sql failed (see above); nothing after the failing step ran"
