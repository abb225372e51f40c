"""The timescaledb-policy Job's script, the parts that need no TimescaleDB, on a plain PostgreSQL 15 server.

These run on every machine, also a fresh clone without ../shared: the bounded wait for the extension and
the tables and its failure message (a database without the extension, as a fresh one is), an unreachable
database, and that policy.sql is what the ConfigMap ships. The shared helpers (the ConfigMap's files
written out, the Job run with its own environment, the policies read back) are here too.

Everything that depends on TimescaleDB's behaviour runs against the real extension in
tests/test_timescale_policy_real.py (the vendored TimescaleDB 2.28.3 on a database migrated by the
platform's own migrations), and skips with the report's ``timescaledb 2.28.3: skipped: ...`` line where
it is absent. There is no stand-in for the extension: an earlier one modelled a continuous aggregate's
policies as jobs of its materialization hypertable, which TimescaleDB 2.28 does not do, and so hid the
bug it was meant to catch (platform-facts §15).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from constructs.lifecycle.timescale_policy_job import policy_sql
from constructs.platform import Release
from tests.helpers import by, container, env_from, synth_env
from tests.realpostgres import PgServer, running_postgres

_DBS = count()


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


def bare_db(pg: PgServer) -> str:
    """A database as a fresh one is: neither the extension nor the platform's tables."""
    name = f"policy_{next(_DBS)}"
    pg.psql(f"CREATE DATABASE {name}")
    return name


def scripts(objs: list[dict[str, Any]], release: str, into: Path) -> dict[str, Any]:
    """Write the Job's ConfigMap files into ``into``; return the Job."""
    cm = by(objs, "ConfigMap", f"{release}-timescaledb-policy")
    into.mkdir(parents=True, exist_ok=True)
    for name, text in cm["data"].items():
        (into / name).write_text(text)
    return by(objs, "Job", f"{release}-timescaledb-policy")


def run_job(job: dict[str, Any], folder: Path, pg: PgServer, db: str, **extra: str) -> subprocess.CompletedProcess:
    """Run the Job's script from ``folder`` with the Job's environment (its Secrets resolved to ``pg``
    and ``db``, as the admin role), as the Job's container would."""
    secrets = {
        ("server",): pg.host,
        ("port",): str(pg.port),
        ("dbname",): db,
        ("username",): "postgres",
        ("password",): "test-admin-pw",
    }
    env = dict(pg.env())
    for e in container(job)["env"]:
        env[e["name"]] = e["value"] if "value" in e else secrets[(e["valueFrom"]["secretKeyRef"]["key"],)]
    env.update({"PGSSLMODE": "disable", "POLL_SECONDS": "0.2"})  # the Job says require (CNPG serves TLS)
    env.update(extra)
    assert container(job)["command"] == ["sh", "/scripts/timescaledb-policy.sh"]
    return subprocess.run(
        ["sh", str(folder / "timescaledb-policy.sh")], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def standard(manifests, tmp_path_factory) -> tuple[dict[str, Any], Path]:
    """The standard tier's Job and its ConfigMap's files."""
    folder = tmp_path_factory.mktemp("iotistica")
    return scripts(manifests["iotistica"], "iotistica", folder), folder


def test_bounded_wait_then_a_clear_failure(pg, standard) -> None:
    job, folder = standard
    bare = bare_db(pg)
    proc = run_job(job, folder, pg, bare, WAIT_FOR_TABLES_SECONDS="1")
    assert proc.returncode == 1
    assert (
        "after 1s still missing: the timescaledb extension, public.readings, public.readings_1m, "
        "public.agent_metrics_5min. The API creates them with its migrations" in proc.stderr
    )
    assert "timescaledb.enabled: false" in proc.stderr


def test_unreachable_database_is_reported(pg, standard) -> None:
    job, folder = standard
    proc = run_job(job, folder, pg, "postgres", PGPORT="1", WAIT_FOR_TABLES_SECONDS="0")
    assert proc.returncode == 1 and "not reachable" in proc.stderr


def test_policy_sql_is_what_the_configmap_ships() -> None:
    e = env_from("iotistica-enterprise")
    objs = synth_env(e)
    sql = policy_sql(Release(release=e.release, namespace=e.namespace, tier=e.tier), e.timescaledb)
    assert by(objs, "ConfigMap", "iotistica-enterprise-timescaledb-policy")["data"]["policy.sql"] == sql
