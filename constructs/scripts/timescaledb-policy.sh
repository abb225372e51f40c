#!/bin/sh
# timescaledb-policy: apply the release's compression and retention policies (policy.sql), on every Argo CD
# sync at wave 1, after the workloads. Idempotent and drift-correcting (the logic is in policy.sql, one
# transaction). POSIX sh (busybox in the postgres:*-alpine image, dash on Debian).
#
# Environment (the Job sets it from Secrets; psql-hook.sh, beside this script, reads it):
#   PGHOST PGPORT PGDATABASE       the server and the application database (sql-credentials-{ns})
#   PGUSER PGPASSWORD              a role that owns the tables (default: pg-admin-credentials)
#   WAIT_FOR_TABLES_SECONDS        how long to wait for the extension and tables (default 600)
#   SQL_DIR                        where wait.sql and policy.sql are (default: beside this script)
set -eu
HOOK=timescaledb-policy
. "$(dirname "$0")/psql-hook.sh"

# Bounded wait: a fresh database has neither the extension's objects nor the tables until the API's
# migrations (006, 007, 023) have run. wait.sql prints what is still missing, or nothing.
wait_for_tables "The API creates them with its migrations on its first start (check its logs); on a fresh database set timescaledb.enabled: false until they have run."

run_sql policy.sql "the previous policies are unchanged"
