#!/bin/sh
# platform-config: what the platform keeps in its own database and dist/ must set (platform-facts §17), on
# every Argo CD sync at wave 1, after the API (and its migrations) is healthy. Idempotent: a row that is
# already as wanted is left alone (config.sql, one transaction). POSIX sh (busybox in the postgres:*-alpine
# image, dash on Debian).
#
# Environment (the Job sets it from sql-credentials-{ns}: the application role, which owns the tables;
# psql-hook.sh, beside this script, reads it):
#   PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD
#   WAIT_FOR_TABLES_SECONDS        how long to wait for the API's tables (default 600)
#   SQL_DIR                        where wait.sql and config.sql are (default: beside this script)
set -eu
HOOK=platform-config
. "$(dirname "$0")/psql-hook.sh"

# Bounded wait: the tables exist once the API's migrations have run (the API opens its port after them).
wait_for_tables "The API creates them with its migrations on its first start (check its logs)."

run_sql config.sql "nothing was changed"
