#!/bin/sh
# timescaledb-policy: apply the release's compression and retention policies (policy.sql), on every Argo CD
# sync at wave 1, after the workloads. Idempotent and drift-correcting (the logic is in policy.sql, one
# transaction). POSIX sh (busybox in the postgres:*-alpine image, dash on Debian).
#
# Environment (the Job sets it from Secrets):
#   PGHOST PGPORT PGDATABASE       the server and the application database (sql-credentials-{ns})
#   PGUSER PGPASSWORD              a role that owns the tables (default: pg-admin-credentials)
#   WAIT_FOR_TABLES_SECONDS        how long to wait for the extension and tables (default 600)
#   SQL_DIR                        where wait.sql and policy.sql are (default: beside this script)
set -eu

log() { printf 'timescaledb-policy: %s\n' "$*"; }
die() { printf 'timescaledb-policy: ERROR: %s\n' "$*" >&2; exit 1; }

for var in PGHOST PGDATABASE PGUSER PGPASSWORD; do
  eval "value=\${$var:-}"
  [ -n "$value" ] || die "$var is not set"
done
WAIT_FOR_TABLES_SECONDS=${WAIT_FOR_TABLES_SECONDS:-600}
POLL_SECONDS=${POLL_SECONDS:-5}
SQL_DIR=${SQL_DIR:-$(dirname "$0")}
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}

# Bounded wait: a fresh database has neither the extension's objects nor the tables until the API's
# migrations (006, 007, 023) have run. wait.sql prints what is still missing, or nothing.
start=$(date +%s)
while :; do
  if missing=$(psql -X -q -t -A -v ON_ERROR_STOP=1 -f "$SQL_DIR/wait.sql" 2>&1); then
    [ -z "$missing" ] && break
  else
    missing="database ${PGDATABASE} on ${PGHOST}:${PGPORT:-5432} not reachable ($(printf '%s' "$missing" | tr '\n' ' '))"
  fi
  if [ $(( $(date +%s) - start )) -ge "$WAIT_FOR_TABLES_SECONDS" ]; then
    die "after ${WAIT_FOR_TABLES_SECONDS}s still missing: ${missing}. The API creates them with its migrations on its first start (check its logs); on a fresh database set timescaledb.enabled: false until they have run."
  fi
  log "waiting for: ${missing}"
  sleep "$POLL_SECONDS"
done

psql -X -q -v ON_ERROR_STOP=1 --single-transaction -f "$SQL_DIR/policy.sql" \
  || die "policy.sql failed and was rolled back (see above); the previous policies are unchanged"
