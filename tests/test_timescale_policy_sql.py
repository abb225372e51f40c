"""The timescaledb-policy Job's SQL and script against a real PostgreSQL 15 server.

TimescaleDB is not packaged for Debian, so what can be proven here is bounded. Precisely:

Proven on a real server (tests/realpostgres.py), running the ConfigMap's files with the Job's environment:
- Every statement of policy.sql parses: PL/pgSQL checks the syntax of every statement of a DO block when
  it compiles it (check_function_bodies is on), also in branches that do not run; a control test shows a
  syntax error in a branch that never runs does fail here. Statements that run are also planned.
- The drift logic works against tests/timescaledb_stub.sql, a stand-in with TimescaleDB's view columns,
  function signatures and observed behaviour (platform-facts §15): the migrations' 7 d / 730 d policies
  are replaced, a second run changes nothing (same job ids), a tier change 60 -> 90 days changes the live
  policy, a null policy is removed, refresh-policy jobs are never touched, all in one transaction.
- Compression is turned on first, hypertable before aggregate: with it off, the run reaches the real
  ``ALTER TABLE`` / ``ALTER MATERIALIZED VIEW ... SET (timescaledb.compress ...)`` statements, which plain
  PostgreSQL rejects with 22023 "unrecognized parameter namespace" (i.e. after parsing them), before any
  add_compression_policy (which the stub fails with 0A000 while compression is off), and the whole
  transaction rolls back.
- The bounded wait for the extension and tables, and its failure message.

Not proven here: that TimescaleDB itself accepts those ALTER statements and functions exactly as the stub
models them (names, config keys ``drop_after``/``compress_after``, a cagg's jobs under its materialization
hypertable). Those come from TimescaleDB's documentation and the behaviour observed in platform-facts §15.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from constructs.lifecycle.timescale_policy_job import policy_sql
from constructs.platform import Release
from tests.helpers import by, container, env_from, synth_env
from tests.realpostgres import PgServer, running_postgres

ROOT = Path(__file__).resolve().parent.parent
STUB = Path(__file__).resolve().parent / "timescaledb_stub.sql"
_DBS = count()

MIGRATED = """
CREATE TABLE public.readings (time timestamptz NOT NULL, agent_uuid text, metric_name text, value double precision);
CREATE MATERIALIZED VIEW public.readings_1m AS
  SELECT date_trunc('minute', time) AS bucket, agent_uuid, metric_name, avg(value) AS avg
    FROM public.readings GROUP BY 1, 2, 3 WITH NO DATA;
CREATE MATERIALIZED VIEW public.agent_metrics_5min AS
  SELECT date_trunc('hour', time) AS bucket, agent_uuid, max(value) AS max
    FROM public.readings GROUP BY 1, 2 WITH NO DATA;
INSERT INTO stub.hypertables VALUES ('public', 'readings', true);
INSERT INTO stub.caggs VALUES
  ('public', 'readings_1m', '_timescaledb_internal', '_materialized_hypertable_2', {cagg_compressed}),
  ('public', 'agent_metrics_5min', '_timescaledb_internal', '_materialized_hypertable_3', false);
-- migration 006's policies on readings; the caggs' refresh policies (027, 023)
SELECT add_compression_policy('public.readings', INTERVAL '7 days');
SELECT add_retention_policy('public.readings', INTERVAL '730 days');
INSERT INTO stub.jobs (proc_name, hypertable_schema, hypertable_name, config) VALUES
  ('policy_refresh_continuous_aggregate', '_timescaledb_internal', '_materialized_hypertable_2',
   '{{"start_offset": "00:10:00", "end_offset": "00:01:00"}}'),
  ('policy_refresh_continuous_aggregate', '_timescaledb_internal', '_materialized_hypertable_3',
   '{{"start_offset": "01:00:00", "end_offset": "00:05:00"}}');
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


def fresh_db(pg: PgServer, *, stub: bool = True, migrated: bool = True, cagg_compressed: bool = True) -> str:
    name = f"policy_{next(_DBS)}"
    pg.psql(f"CREATE DATABASE {name}")
    if stub:
        pg.psql(STUB.read_text(), db=name)
    if migrated:
        pg.psql(MIGRATED.format(cagg_compressed="true" if cagg_compressed else "false"), db=name)
    return name


def scripts(objs: list[dict[str, Any]], release: str, into: Path) -> dict[str, Any]:
    """Write the Job's ConfigMap files into ``into``; return the Job."""
    cm = by(objs, "ConfigMap", f"{release}-timescaledb-policy")
    into.mkdir(parents=True, exist_ok=True)
    for name, text in cm["data"].items():
        (into / name).write_text(text)
    return by(objs, "Job", f"{release}-timescaledb-policy")


def run_job(job: dict[str, Any], folder: Path, pg: PgServer, db: str, **extra: str) -> subprocess.CompletedProcess:
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


#: The standard tier's policies after a run (seed table: compress 2 d, retain 60 d; readings_1m 7 d / 90 d).
STANDARD_POLICIES = {
    ("readings", "compression"): "2 days",
    ("readings", "retention"): "60 days",
    ("readings_1m", "compression"): "7 days",
    ("readings_1m", "retention"): "90 days",
}


def policies(pg: PgServer, db: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(relation, kind) -> (after, job id) of every compression/retention job."""
    rows = pg.psql(
        "SELECT coalesce(c.view_name, j.hypertable_name), j.proc_name, "
        "coalesce(j.config ->> 'compress_after', j.config ->> 'drop_after'), j.job_id "
        "FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.continuous_aggregates c "
        "ON c.materialization_hypertable_name = j.hypertable_name "
        "WHERE j.proc_name IN ('policy_compression', 'policy_retention')",
        db=db,
    )
    return {(r[0], r[1].removeprefix("policy_")): (r[2], int(r[3])) for r in rows}


def refresh_jobs(pg: PgServer, db: str) -> list[list[str]]:
    return pg.psql("SELECT job_id, config FROM stub.jobs WHERE proc_name LIKE 'policy_refresh%' ORDER BY 1", db=db)


@pytest.fixture(scope="module")
def tiers(manifests, tmp_path_factory) -> dict[str, tuple[dict[str, Any], Path]]:
    out = {}
    for release in ("iotistica", "iotistica-enterprise", "client-demo", "iotistica-starter"):
        folder = tmp_path_factory.mktemp(release)
        out[release] = (scripts(manifests[release], release, folder), folder)
    return out


def test_migrated_policies_are_replaced_then_left_alone(pg, tiers) -> None:
    db = fresh_db(pg)
    refresh = refresh_jobs(pg, db)
    job, folder = tiers["iotistica"]  # standard tier
    first = run_job(job, folder, pg, db)
    assert first.returncode == 0, first.stderr
    got = policies(pg, db)
    assert {k: v[0] for k, v in got.items()} == STANDARD_POLICIES
    assert "readings: retention after 60 days (was 730 days)" in first.stderr
    assert "readings: compression after 2 days (was 7 days)" in first.stderr
    assert "agent_metrics_5min: no retention policy: unchanged" in first.stderr

    second = run_job(job, folder, pg, db)
    assert second.returncode == 0, second.stderr
    assert policies(pg, db) == got, "a second run changes nothing: same policies, same job ids"
    notices = [line for line in second.stderr.splitlines() if "NOTICE" in line]
    assert notices and all("unchanged" in line for line in notices), second.stderr
    assert refresh_jobs(pg, db) == refresh, "refresh policies are never touched"


def test_a_tier_change_changes_the_live_policy(pg, tiers) -> None:
    db = fresh_db(pg)
    standard, enterprise = tiers["iotistica"], tiers["iotistica-enterprise"]
    assert run_job(standard[0], standard[1], pg, db).returncode == 0
    before = policies(pg, db)

    up = run_job(enterprise[0], enterprise[1], pg, db)  # 60 -> 90 days, and agent_metrics_5min 60 days
    assert up.returncode == 0, up.stderr
    after = policies(pg, db)
    assert after[("readings", "retention")][0] == "90 days"
    assert after[("readings", "retention")][1] != before[("readings", "retention")][1]
    assert after[("readings", "compression")] == before[("readings", "compression")], "unchanged policy kept"
    assert after[("agent_metrics_5min", "retention")][0] == "60 days"

    down = run_job(standard[0], standard[1], pg, db)  # and back: the aggregate's retention is removed again
    assert down.returncode == 0, down.stderr
    assert "agent_metrics_5min: retention policy removed (was 60 days)" in down.stderr
    final = policies(pg, db)
    assert final[("readings", "retention")][0] == "60 days" and ("agent_metrics_5min", "retention") not in final


@pytest.mark.parametrize("release", ["client-demo", "iotistica-starter"])
def test_thirty_day_tiers(pg, tiers, release) -> None:
    db = fresh_db(pg)
    assert run_job(tiers[release][0], tiers[release][1], pg, db).returncode == 0
    assert policies(pg, db)[("readings", "retention")][0] == "30 days"


def test_the_stub_behaves_as_observed_on_timescaledb(pg) -> None:
    """§15: add_*_policy(if_not_exists) keeps a different existing policy and returns -1 (why the job
    compares and replaces instead), and without it raises 42710."""
    db = fresh_db(pg)
    assert pg.psql(
        "SELECT add_retention_policy('public.readings', INTERVAL '30 days', if_not_exists => true)", db=db
    ) == [["-1"]]
    assert policies(pg, db)[("readings", "retention")][0] == "730 days"
    with pytest.raises(subprocess.CalledProcessError, match="already exists"):
        pg.psql("SELECT add_retention_policy('public.readings', INTERVAL '30 days')", db=db)
    with pytest.raises(subprocess.CalledProcessError, match="columnstore not enabled"):
        pg.psql("SELECT add_compression_policy('public.agent_metrics_5min', INTERVAL '7 days')", db=db)


def test_aggregate_compression_is_enabled_before_its_policy(pg, tiers) -> None:
    db = fresh_db(pg, cagg_compressed=False)  # right after the migrations: readings_1m uncompressed
    before = policies(pg, db)
    proc = run_job(tiers["iotistica"][0], tiers["iotistica"][1], pg, db)
    assert proc.returncode == 1
    # The real ALTER MATERIALIZED VIEW ran (plain PostgreSQL refuses TimescaleDB's option after parsing
    # it), before add_compression_policy could fail with the stub's 0A000; the transaction rolled back.
    assert 'unrecognized parameter namespace "timescaledb"' in proc.stderr
    assert "ALTER MATERIALIZED VIEW public.readings_1m SET (timescaledb.compress = true)" in proc.stderr
    assert "columnstore not enabled" not in proc.stderr
    assert "rolled back" in proc.stderr
    assert policies(pg, db) == before


def test_hypertable_compression_is_enabled_first(pg, tiers) -> None:
    db = fresh_db(pg, cagg_compressed=False)
    pg.psql("UPDATE stub.hypertables SET compression_enabled = false", db=db)
    proc = run_job(tiers["iotistica"][0], tiers["iotistica"][1], pg, db)
    assert proc.returncode == 1 and 'unrecognized parameter namespace "timescaledb"' in proc.stderr
    assert "ALTER TABLE public.readings SET" in proc.stderr, "the hypertable comes before the aggregate"


def test_every_statement_parses(pg) -> None:
    """PL/pgSQL parses every statement of a DO block at compile time, also in branches never taken; so a
    run of policy.sql that succeeds has had all of its ALTERs and policy calls parsed. Control: this
    server does reject a syntax error in a branch that never runs."""
    db = fresh_db(pg)
    assert pg.psql("SHOW check_function_bodies", db=db) == [["on"]]
    with pytest.raises(subprocess.CalledProcessError, match="syntax error"):
        pg.psql("DO $$ BEGIN IF false THEN ALTER TABLE public.readings SETT (x); END IF; END $$", db=db)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("iotistica-enterprise", {}),
        ("client-demo", {"timescaledb": {"readings": {"compressAfter": None, "retain": None}}}),
        ("iotistica", {"timescaledb": {"agentMetrics5min": {"compressAfter": "2h", "retain": "14d"}}}),
    ]
    for release, overrides in cases:
        e = env_from(release, **overrides)
        sql = policy_sql(Release(release=e.release, namespace=e.namespace, tier=e.tier), e.timescaledb)
        db2 = fresh_db(pg)
        proc = subprocess.run(
            [str(pg.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", db2],
            input=sql,
            env=pg.env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        if overrides.get("timescaledb", {}).get("agentMetrics5min"):
            # compression on agent_metrics_5min: the ALTER is reached (and refused by plain PostgreSQL)
            assert 'unrecognized parameter namespace "timescaledb"' in proc.stderr, proc.stderr
        else:
            assert proc.returncode == 0, proc.stderr


def test_bounded_wait_then_a_clear_failure(pg, tiers) -> None:
    job, folder = tiers["iotistica"]
    bare = fresh_db(pg, stub=False, migrated=False)
    proc = run_job(job, folder, pg, bare, WAIT_FOR_TABLES_SECONDS="1")
    assert proc.returncode == 1
    assert (
        "after 1s still missing: the timescaledb extension, public.readings, public.readings_1m, "
        "public.agent_metrics_5min. The API creates them with its migrations" in proc.stderr
    )
    assert "timescaledb.enabled: false" in proc.stderr

    late = fresh_db(pg, migrated=False)
    timer = threading.Timer(1.0, lambda: pg.psql(MIGRATED.format(cagg_compressed="true"), db=late))
    timer.start()
    started = time.monotonic()
    try:
        proc = run_job(job, folder, pg, late, WAIT_FOR_TABLES_SECONDS="20")
    finally:
        timer.join()
    assert proc.returncode == 0, proc.stderr
    assert "waiting for: public.readings, public.readings_1m, public.agent_metrics_5min" in proc.stdout
    assert time.monotonic() - started < 15


def test_unreachable_database_is_reported(pg, tiers) -> None:
    job, folder = tiers["iotistica"]
    proc = run_job(job, folder, pg, "postgres", PGPORT="1", WAIT_FOR_TABLES_SECONDS="0")
    assert proc.returncode == 1 and "not reachable" in proc.stderr


def test_policy_sql_is_what_the_configmap_ships() -> None:
    e = env_from("iotistica-enterprise")
    objs = synth_env(e)
    sql = policy_sql(Release(release=e.release, namespace=e.namespace, tier=e.tier), e.timescaledb)
    assert by(objs, "ConfigMap", "iotistica-enterprise-timescaledb-policy")["data"]["policy.sql"] == sql
