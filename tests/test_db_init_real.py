"""constructs/scripts/db-init.{sh,sql} run for real, twice, against a real PostgreSQL 15 server.

The server is Debian's PostgreSQL 15, started by tests/realpostgres.py on a free loopback port with
scram-sha-256 password authentication (as CNPG serves it). The script runs under /bin/sh with the
environment the synthesized Job gives it (Secrets resolved to test values).

The mode is explicit (``realpostgres.TIMESCALEDB``, the report's ``timescaledb 2.28.3: ...`` line):
- **real** (the vendored TimescaleDB 2.28.3 in ../shared/vendor): the server runs from a private copy of
  the installation tree with the real extension, preloaded, and the runs keep the Job's
  REQUIRE_TIMESCALEDB=true: db-init creates the real extension. The "installed but not preloaded" server
  is the same real extension without shared_preload_libraries;
- **skipped** (a fresh clone without ../shared, or a damaged tarball): the runs set
  REQUIRE_TIMESCALEDB=false, a test shows that with the Job's ``true`` the script stops before changing
  anything, and the "installed but not preloaded" state is a stand-in extension that refuses to be
  created unless preloaded, as TimescaleDB does (db-init's preflight reads only pg_available_extensions
  and shared_preload_libraries, which the stand-in makes true to that state).
Either way, db-init must refuse a server that has the extension installed but not preloaded before any
change, naming shared_preload_libraries.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import by, container
from tests.realpostgres import TIMESCALEDB, PgServer, running_postgres

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "constructs" / "scripts" / "db-init.sh"
APP_USER, APP_DB = "iotistica-app", "iotistica"
REQUIRE = "true" if TIMESCALEDB else "false"

#: Without the vendored TimescaleDB only: extension files with its name whose script refuses, as TimescaleDB's loader
#: does, to be created unless the library is in shared_preload_libraries.
NOT_PRELOADED_STAND_IN: dict[str, str | None] = {
    "timescaledb.control": "comment = 'test stand-in: refuses CREATE EXTENSION unless preloaded'\n"
    "default_version = '0.0.0'\nrelocatable = false\n",
    "timescaledb--0.0.0.sql": "DO $$ BEGIN\n"
    "  IF current_setting('shared_preload_libraries') !~ 'timescaledb' THEN\n"
    "    RAISE EXCEPTION 'extension \"timescaledb\" must be preloaded'\n"
    "      USING HINT = 'Please preload the timescaledb library via shared_preload_libraries.';\n"
    "  END IF;\nEND $$;\n",
}


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres(timescaledb=TIMESCALEDB) as server:
        yield server


@pytest.fixture(scope="module")
def pg_without_timescaledb(pg: PgServer) -> Iterator[PgServer]:
    """A server whose PostgreSQL has no TimescaleDB files: the shared one where the vendored extension
    is absent, else one started from a private installation tree with any control file of that name
    hidden."""
    if not TIMESCALEDB:
        yield pg
        return
    with running_postgres(extensions={"timescaledb.control": None}) as server:
        yield server


@pytest.fixture(scope="module")
def pg_not_preloaded() -> Iterator[PgServer]:
    """A server where TimescaleDB is installed but not in shared_preload_libraries."""
    if TIMESCALEDB:
        with running_postgres(timescaledb=True, preload=False) as server:
            yield server
    else:
        with running_postgres(extensions=NOT_PRELOADED_STAND_IN) as server:
            yield server


def job_env(manifests, pg: PgServer, password: str, **extra: str) -> dict[str, str]:
    """The env of the synthesized db-init Job with its Secret references resolved to test values."""
    job = by(manifests["iotistica"], "Job", "iotistica-db-init")
    secrets = {
        ("sql-credentials-iotistica", "server"): pg.host,
        ("sql-credentials-iotistica", "port"): str(pg.port),
        ("sql-credentials-iotistica", "username"): APP_USER,
        ("sql-credentials-iotistica", "password"): password,
        ("sql-credentials-iotistica", "dbname"): APP_DB,
        ("pg-admin-credentials", "username"): "postgres",
        ("pg-admin-credentials", "password"): "test-admin-pw",
    }
    env = dict(pg.env())
    for e in container(job)["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(ref["name"], ref["key"])]
    # The Job's PGSSLMODE is `require` (CNPG serves TLS); the test server has no certificate.
    env.update({"PGSSLMODE": "disable", "REQUIRE_TIMESCALEDB": REQUIRE, "WAIT_SECONDS": "10", "POLL_SECONDS": "1"})
    env.update(extra)
    return env


def run(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = ["sh", str(SCRIPT)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def state(pg: PgServer) -> dict[str, Any]:
    """Everything db-init may change, including the role row's xmin (a password reset rewrites it)."""
    return {
        "role": pg.psql(f"SELECT rolname, rolcanlogin, rolpassword, xmin FROM pg_authid WHERE rolname = '{APP_USER}'"),
        "database": pg.psql(
            f"SELECT datname, pg_get_userbyid(datdba), datacl FROM pg_database WHERE datname = '{APP_DB}'"
        ),
        "schema": pg.psql("SELECT nspacl FROM pg_namespace WHERE nspname = 'public'", db=APP_DB),
        "default_acl": pg.psql("SELECT defaclobjtype, defaclacl FROM pg_default_acl ORDER BY 1", db=APP_DB),
        "extensions": pg.psql("SELECT extname, extversion FROM pg_extension ORDER BY 1", db=APP_DB),
        "tables": pg.psql(
            "SELECT relname, relacl FROM pg_class WHERE relnamespace = 'public'::regnamespace", db=APP_DB
        ),
    }


def test_db_init_twice_second_run_is_a_no_op(manifests, pg: PgServer) -> None:
    env = job_env(manifests, pg, "app-pw-1")
    first = run(env)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f'role "{APP_USER}" created' in out and f'database "{APP_DB}" created' in out
    assert "extension pgcrypto in place" in out and out.rstrip().endswith("db-init: done")
    if TIMESCALEDB:
        assert "extension timescaledb in place" in out
    else:
        assert "timescaledb is not available on this server; skipped" in out
    assert "app-pw-1" not in out + first.stderr, "the password is never printed"
    before = state(pg)

    second = run(env)
    assert second.returncode == 0, second.stderr
    assert f'role "{APP_USER}" exists, password current' in second.stdout
    assert f'database "{APP_DB}" exists' in second.stdout
    for change in ("created", "password set", "owner set", "given LOGIN"):
        assert change not in second.stdout
    assert state(pg) == before, "a second run changes nothing (the role row is not even rewritten)"


def test_role_database_and_grants_exist(manifests, pg: PgServer) -> None:
    assert run(job_env(manifests, pg, "app-pw-1")).returncode == 0
    assert pg.psql(f"SELECT rolcanlogin, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = '{APP_USER}'") == [
        ["t", "f", "f"]
    ]
    assert pg.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{APP_DB}'") == [[APP_USER]]
    checks = pg.psql(
        f"SELECT has_database_privilege('{APP_USER}', '{APP_DB}', 'CONNECT'),"
        f" has_schema_privilege('{APP_USER}', 'public', 'USAGE'),"
        f" has_schema_privilege('{APP_USER}', 'public', 'CREATE')",
        db=APP_DB,
    )
    assert checks == [["t", "t", "t"]]
    assert ["pgcrypto"] in [[r[0]] for r in pg.psql("SELECT extname FROM pg_extension", db=APP_DB)]

    # The app role logs in with its Secret's password and works like the API's migrations do.
    pg.psql(
        "CREATE TABLE IF NOT EXISTS app_owned (id serial PRIMARY KEY, v text);"
        "INSERT INTO app_owned (v) VALUES (encode(gen_random_bytes(4), 'hex'));",
        db=APP_DB,
        user=APP_USER,
        password="app-pw-1",
    )
    # An object the admin creates later is usable by the app after the next run (grants) and at once
    # (default privileges).
    pg.psql("CREATE TABLE admin_made (id int); CREATE SEQUENCE admin_seq;", db=APP_DB)
    pg.psql(
        "SELECT count(*) FROM admin_made; SELECT nextval('admin_seq');", db=APP_DB, user=APP_USER, password="app-pw-1"
    )
    pg.psql("DROP TABLE admin_made; DROP SEQUENCE admin_seq;", db=APP_DB)


def test_a_changed_password_is_applied_and_an_existing_database_is_adopted(manifests, pg: PgServer) -> None:
    pg.psql("CREATE DATABASE adopted")  # owned by postgres, as a hand-made database would be
    env = job_env(manifests, pg, "app-pw-2", APP_DB="adopted")
    proc = run(env)
    assert proc.returncode == 0, proc.stderr
    assert f'role "{APP_USER}" password set from its Secret' in proc.stdout
    assert f'database "adopted" owner set to "{APP_USER}"' in proc.stdout
    assert pg.psql("SELECT 1", db="adopted", user=APP_USER, password="app-pw-2") == [["1"]]
    with pytest.raises(subprocess.CalledProcessError):
        pg.psql("SELECT 1", user=APP_USER, password="app-pw-1")
    assert "password current" in run(env).stdout


def test_a_nologin_role_gets_login(manifests, pg: PgServer) -> None:
    pg.psql('CREATE ROLE "legacy-app" NOLOGIN')
    proc = run(job_env(manifests, pg, "legacy-pw", APP_USER="legacy-app", APP_DB="legacy"))
    assert proc.returncode == 0, proc.stderr
    assert 'role "legacy-app" given LOGIN' in proc.stdout
    assert pg.psql("SELECT 1", db="legacy", user="legacy-app", password="legacy-pw") == [["1"]]


def test_missing_timescaledb_fails_before_any_change(manifests, pg_without_timescaledb: PgServer) -> None:
    pg = pg_without_timescaledb
    env = job_env(manifests, pg, "fresh-pw", APP_USER="fresh-app", APP_DB="fresh", REQUIRE_TIMESCALEDB="true")
    proc = run(env)
    assert proc.returncode == 1
    assert "the timescaledb extension is not available on this server" in proc.stderr
    assert pg.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'fresh-app'") == [["0"]]
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'fresh'") == [["0"]]


def test_installed_but_not_preloaded_fails_before_any_change(manifests, pg_not_preloaded: PgServer) -> None:
    pg = pg_not_preloaded
    # The state is exactly that: the extension is available, and creating it fails for want of preloading.
    assert pg.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'") == [["1"]]
    with pytest.raises(subprocess.CalledProcessError, match="must be preloaded"):
        pg.psql("CREATE EXTENSION timescaledb")

    env = job_env(manifests, pg, "np-pw", APP_USER="np-app", APP_DB="np", REQUIRE_TIMESCALEDB="true")
    proc = run(env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "db-init" in line]
    assert errors and "not preloaded: add timescaledb to shared_preload_libraries" in errors[0], proc.stderr
    assert pg.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'np-app'") == [["0"]]
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'np'") == [["0"]]

    # REQUIRE_TIMESCALEDB=false: the rest is done, the extension skipped with the reason.
    relaxed = run(job_env(manifests, pg, "np-pw", APP_USER="np-app", APP_DB="np", REQUIRE_TIMESCALEDB="false"))
    assert relaxed.returncode == 0, relaxed.stderr
    assert "timescaledb is installed but not in shared_preload_libraries; skipped" in relaxed.stdout
    assert "extension timescaledb in place" not in relaxed.stdout


def test_unreachable_server_fails_after_the_bounded_wait(manifests, pg: PgServer) -> None:
    env = job_env(manifests, pg, "x", PGPORT="1", WAIT_SECONDS="2", POLL_SECONDS="1")
    proc = run(env)
    assert proc.returncode == 1 and "not ready after 2s" in proc.stderr


def test_the_job_runs_the_shipped_script(manifests) -> None:
    cm = by(manifests["iotistica"], "ConfigMap", "iotistica-db-init")
    assert cm["data"]["db-init.sh"] == SCRIPT.read_text()
    assert cm["data"]["db-init.sql"] == (SCRIPT.parent / "db-init.sql").read_text()
    assert container(by(manifests["iotistica"], "Job", "iotistica-db-init"))["command"] == [
        "sh",
        "/scripts/db-init.sh",
    ]
