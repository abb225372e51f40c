# psql-hook.sh: what the psql hook Jobs share (timescaledb-policy.sh, platform-config.sh), sourced by them
# from their ConfigMap after they set HOOK (their name, the prefix of every line). POSIX sh (busybox in the
# postgres:*-alpine image, dash on Debian).
#
# Environment (the Job sets it from Secrets):
#   PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD   the server, the application database and the role
#   WAIT_FOR_TABLES_SECONDS        how long wait_for_tables waits (default 600)
#   SQL_DIR                        where the hook's .sql files are (default: beside the script)

log() { printf '%s: %s\n' "$HOOK" "$*"; }
die() { printf '%s: ERROR: %s\n' "$HOOK" "$*" >&2; exit 1; }

for var in PGHOST PGDATABASE PGUSER PGPASSWORD; do
  eval "value=\${$var:-}"
  [ -n "$value" ] || die "$var is not set"
done
WAIT_FOR_TABLES_SECONDS=${WAIT_FOR_TABLES_SECONDS:-600}
POLL_SECONDS=${POLL_SECONDS:-5}
SQL_DIR=${SQL_DIR:-$(dirname "$0")}
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}

# wait_for_tables HINT: a bounded wait until wait.sql prints nothing (it prints what is still missing); on
# time-out, dies naming what is missing and HINT (what the operator checks).
wait_for_tables() {
  start=$(date +%s)
  while :; do
    if missing=$(psql -X -q -t -A -v ON_ERROR_STOP=1 -f "$SQL_DIR/wait.sql" 2>&1); then
      [ -z "$missing" ] && return 0
    else
      missing="database ${PGDATABASE} on ${PGHOST}:${PGPORT:-5432} not reachable ($(printf '%s' "$missing" | tr '\n' ' '))"
    fi
    if [ $(( $(date +%s) - start )) -ge "$WAIT_FOR_TABLES_SECONDS" ]; then
      die "after ${WAIT_FOR_TABLES_SECONDS}s still missing: ${missing}. $1"
    fi
    log "waiting for: ${missing}"
    sleep "$POLL_SECONDS"
  done
}

# run_sql FILE WHAT_STAYS: FILE in one transaction; on failure, dies saying it was rolled back and WHAT_STAYS.
run_sql() {
  psql -X -q -v ON_ERROR_STOP=1 --single-transaction -f "$SQL_DIR/$1" \
    || die "$1 failed and was rolled back (see above); $2"
}
