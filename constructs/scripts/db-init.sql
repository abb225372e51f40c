-- db-init: the seed's four steps plus pgcrypto (platform-facts §7), idempotent. Run by db-init.sh:
--   psql -X -v ON_ERROR_STOP=1 -v app_password_current=on|off -v require_timescaledb=on|off
--        -d <maintenance db> -f db-init.sql
-- as the admin role, with APP_USER, APP_PASSWORD and APP_DB in the environment (read by \getenv, so the
-- password is never on a command line and never echoed). A second run changes nothing.
\set QUIET on
\getenv app_user APP_USER
\getenv app_password APP_PASSWORD
\getenv app_db APP_DB

-- 0. Preflight, before anything changes: the extensions must be installable on this server.
-- TimescaleDB has two prerequisites: its files installed (pg_available_extensions) and its library in
-- shared_preload_libraries (CREATE EXTENSION fails with "must be preloaded" otherwise, after db-init would
-- have changed the role and database). Where this role may not read shared_preload_libraries (it is
-- superuser-only; pg_settings then has no row for it), the check cannot tell and does not refuse.
SELECT NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS timescaledb_missing \gset
SELECT NOT :'timescaledb_missing'::boolean AND coalesce(
         (SELECT setting !~ '(^|[\s,"/])timescaledb([\s,"]|$)' FROM pg_settings WHERE name = 'shared_preload_libraries'),
         false) AS timescaledb_not_preloaded \gset
\if :timescaledb_missing
  \if :require_timescaledb
    DO $$ BEGIN RAISE EXCEPTION 'db-init: the timescaledb extension is not available on this server (shared_preload_libraries and the extension files are needed)'; END $$;
  \else
    \echo 'db-init: WARNING: timescaledb is not available on this server; skipped (REQUIRE_TIMESCALEDB=false)'
  \endif
\elif :timescaledb_not_preloaded
  \if :require_timescaledb
    DO $$ BEGIN RAISE EXCEPTION 'db-init: the timescaledb extension is installed on this server but not preloaded: add timescaledb to shared_preload_libraries and restart the server'; END $$;
  \else
    \echo 'db-init: WARNING: timescaledb is installed but not in shared_preload_libraries; skipped (REQUIRE_TIMESCALEDB=false)'
  \endif
\endif
SELECT :'timescaledb_missing'::boolean OR :'timescaledb_not_preloaded'::boolean AS timescaledb_skipped \gset
SELECT NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto') AS pgcrypto_missing \gset
\if :pgcrypto_missing
  DO $$ BEGIN RAISE EXCEPTION 'db-init: the pgcrypto extension is not available on this server'; END $$;
\endif

-- 1. The application role: created, or given LOGIN and its current password only when they differ.
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') AS role_missing \gset
\if :role_missing
  CREATE ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
  \echo 'db-init: role' :"app_user" 'created'
\else
  SELECT NOT rolcanlogin AS role_nologin FROM pg_roles WHERE rolname = :'app_user' \gset
  \if :role_nologin
    ALTER ROLE :"app_user" WITH LOGIN;
    \echo 'db-init: role' :"app_user" 'given LOGIN'
  \endif
  \if :app_password_current
    \echo 'db-init: role' :"app_user" 'exists, password current'
  \else
    ALTER ROLE :"app_user" WITH PASSWORD :'app_password';
    \echo 'db-init: role' :"app_user" 'password set from its Secret'
  \endif
\endif

-- 2. The database, owned by the application role (it runs the migrations, so it owns the tables).
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db') AS db_missing \gset
\if :db_missing
  CREATE DATABASE :"app_db" OWNER :"app_user";
  \echo 'db-init: database' :"app_db" 'created'
\else
  SELECT pg_get_userbyid(datdba) <> :'app_user' AS db_foreign_owner FROM pg_database WHERE datname = :'app_db' \gset
  \if :db_foreign_owner
    ALTER DATABASE :"app_db" OWNER TO :"app_user";
    \echo 'db-init: database' :"app_db" 'owner set to' :"app_user"
  \else
    \echo 'db-init: database' :"app_db" 'exists'
  \endif
\endif

-- 3. Grants: CONNECT, schema USAGE/CREATE, table, sequence and function privileges (now and by default).
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
\connect :"app_db"
\set QUIET on
GRANT USAGE, CREATE ON SCHEMA public TO :"app_user";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public TO :"app_user";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"app_user";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO :"app_user";
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"app_user";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO :"app_user";
\echo 'db-init: grants on' :"app_db" 'to' :"app_user" 'in place'

-- 4. Extensions, created by the admin before the API's migrations need them (the app role cannot).
\if :timescaledb_skipped
\else
  CREATE EXTENSION IF NOT EXISTS timescaledb;
  \echo 'db-init: extension timescaledb in place'
\endif
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\echo 'db-init: extension pgcrypto in place'
\echo 'db-init: done'
