#!/bin/sh
# platform-config: what the platform keeps in its own database and dist/ must set (platform-facts §17), on
# every Argo CD sync at wave 1, after the API (and its migrations) is healthy. Idempotent: a row that is
# already as wanted is left alone (config.sql, one transaction). POSIX sh (busybox in the postgres:*-alpine
# image, dash on Debian).
#
# Environment (the Job sets it from sql-credentials-{ns}: the application role, which owns the tables):
#   PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD
#   WAIT_FOR_TABLES_SECONDS        how long to wait for the API's tables (default 600)
#   SQL_DIR                        where wait.sql and config.sql are (default: beside this script)
set -eu

log() { printf 'platform-config: %s\n' "$*"; }
die() { printf 'platform-config: ERROR: %s\n' "$*" >&2; exit 1; }

for var in PGHOST PGDATABASE PGUSER PGPASSWORD; do
  eval "value=\${$var:-}"
  [ -n "$value" ] || die "$var is not set"
done
WAIT_FOR_TABLES_SECONDS=${WAIT_FOR_TABLES_SECONDS:-600}
POLL_SECONDS=${POLL_SECONDS:-5}
SQL_DIR=${SQL_DIR:-$(dirname "$0")}
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}

# Bounded wait: the tables exist once the API's migrations have run (the API opens its port after them).
start=$(date +%s)
while :; do
  if missing=$(psql -X -q -t -A -v ON_ERROR_STOP=1 -f "$SQL_DIR/wait.sql" 2>&1); then
    [ -z "$missing" ] && break
  else
    missing="database ${PGDATABASE} on ${PGHOST}:${PGPORT:-5432} not reachable ($(printf '%s' "$missing" | tr '\n' ' '))"
  fi
  if [ $(( $(date +%s) - start )) -ge "$WAIT_FOR_TABLES_SECONDS" ]; then
    die "after ${WAIT_FOR_TABLES_SECONDS}s still missing: ${missing}. The API creates them with its migrations on its first start (check its logs)."
  fi
  log "waiting for: ${missing}"
  sleep "$POLL_SECONDS"
done

psql -X -q -v ON_ERROR_STOP=1 --single-transaction -f "$SQL_DIR/config.sql" \
  || die "config.sql failed and was rolled back (see above); nothing was changed"
