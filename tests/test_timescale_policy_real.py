"""The timescaledb-policy Job against the real TimescaleDB, on the schema the platform's own migrations create.

The server is Debian's PostgreSQL 15 with the vendored TimescaleDB 2.28.3 preloaded (tests/realpostgres.py;
the report's ``timescaledb 2.28.3: real`` line). A database is migrated once per module by the API's 22
migration files from the vendored platform source (``api/database/migrations``, applied in order with
psql as the API's runner applies them), and every test gets a copy of it: ``readings`` a hypertable with
compression on and the migrations' 7-day compression and 730-day retention policies, ``readings_1m`` and
``agent_metrics_5min`` continuous aggregates with refresh policies only, 26 jobs (platform-facts §15).
Then the Job's own script runs, from the ConfigMap's files with the Job's environment.

Where the vendored files are missing or damaged (a fresh clone without ../shared), these tests skip with
one line naming the file.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from constructs.lifecycle.timescale_policy_job import policy_sql
from constructs.platform import Release
from tests.helpers import env_from
from tests.realpostgres import (
    NO_TIMESCALEDB,
    TIMESCALEDB,
    PgServer,
    apply_migrations,
    copy_database,
    make_template,
    platform_migrations,
    running_postgres,
)
from tests.test_timescale_policy_sql import run_job, scripts

pytestmark = pytest.mark.skipif(not TIMESCALEDB, reason=NO_TIMESCALEDB)
_DBS = count()
TEMPLATE = "platform_migrated"
RELATIONS = ("readings", "readings_1m", "agent_metrics_5min")

#: The seed's TimescaleDB table per release (tier): readings compress after 2 days and keep 30/60/90
#: days by tier (demo 30, as the provisioning values); readings_1m 7 days / 90 days; agent_metrics_5min
#: keeps 60 days on enterprise only. (relation, kind) -> after; a policy that is not listed must not exist.
COMMON = {
    ("readings", "compression"): "2 days",
    ("readings_1m", "compression"): "7 days",
    ("readings_1m", "retention"): "90 days",
}
SEED = {
    "client-demo": {**COMMON, ("readings", "retention"): "30 days"},
    "iotistica-starter": {**COMMON, ("readings", "retention"): "30 days"},
    "iotistica": {**COMMON, ("readings", "retention"): "60 days"},
    "iotistica-enterprise": {
        **COMMON,
        ("readings", "retention"): "90 days",
        ("agent_metrics_5min", "retention"): "60 days",
    },
}


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres(timescaledb=True) as server:
        yield server


@pytest.fixture(scope="module")
def migrations(tmp_path_factory) -> list[Path]:
    return platform_migrations(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="module")
def template(pg: PgServer, migrations: list[Path]) -> str:
    """A database as db-init and the API's migrations leave it, made a template to copy per test."""
    pg.psql(f"CREATE DATABASE {TEMPLATE}")
    pg.psql("CREATE EXTENSION timescaledb; CREATE EXTENSION pgcrypto", db=TEMPLATE)  # db-init's part
    apply_migrations(pg, TEMPLATE, migrations)
    make_template(pg, TEMPLATE)
    return TEMPLATE


@pytest.fixture(scope="module")
def tiers(manifests, tmp_path_factory) -> dict[str, tuple[dict[str, Any], Path]]:
    out = {}
    for release in SEED:
        folder = tmp_path_factory.mktemp(release)
        out[release] = (scripts(manifests[release], release, folder), folder)
    return out


def migrated_db(pg: PgServer, template: str) -> str:
    name = f"tsdb_{next(_DBS)}"
    copy_database(pg, template, name)
    return name


def policies(pg: PgServer, db: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(relation, kind) -> (after, job id) of the compression and retention jobs on the Job's three
    relations. A continuous aggregate's jobs are matched under the view (as TimescaleDB 2.28 lists them)
    or under its materialization hypertable."""
    rows = pg.psql(
        "SELECT coalesce(c.view_name, j.hypertable_name), j.proc_name, "
        "coalesce(j.config ->> 'compress_after', j.config ->> 'drop_after'), j.job_id "
        "FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.continuous_aggregates c "
        "ON c.materialization_hypertable_schema = j.hypertable_schema "
        "AND c.materialization_hypertable_name = j.hypertable_name "
        "WHERE j.proc_name IN ('policy_compression', 'policy_retention')",
        db=db,
    )
    out = {(r[0], r[1].removeprefix("policy_")): (r[2], int(r[3])) for r in rows if r[0] in RELATIONS}
    assert len(out) == len([r for r in rows if r[0] in RELATIONS]), f"two jobs of one kind on a relation: {rows}"
    return out


def afters(pg: PgServer, db: str) -> dict[tuple[str, str], str]:
    return {k: v[0] for k, v in policies(pg, db).items()}


def all_jobs(pg: PgServer, db: str) -> list[list[str]]:
    """Every job as the scheduler keeps it (not its run times)."""
    return pg.psql(
        "SELECT job_id, proc_name, hypertable_schema, hypertable_name, config, schedule_interval, scheduled"
        " FROM timescaledb_information.jobs ORDER BY job_id",
        db=db,
    )


def other_jobs(pg: PgServer, db: str) -> list[list[str]]:
    """The jobs the policy Job must never touch: refresh policies and the other tables' policies."""
    own = {job_id for _, job_id in policies(pg, db).values()}
    return [j for j in all_jobs(pg, db) if int(j[0]) not in own]


def compression_enabled(pg: PgServer, db: str) -> dict[str, str]:
    rows = pg.psql(
        "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = 'public' AND hypertable_name = 'readings'"
        " UNION ALL SELECT view_name, compression_enabled FROM timescaledb_information.continuous_aggregates"
        " WHERE view_schema = 'public' AND view_name IN ('readings_1m', 'agent_metrics_5min')",
        db=db,
    )
    return dict((r[0], r[1]) for r in rows)


def test_the_migrated_schema_is_as_observed(pg, template) -> None:
    """The starting point (platform-facts §15): the migrations' own policies, 26 jobs. And why the Job
    compares before it adds: add_*_policy(if_not_exists) keeps a different existing policy and returns
    -1, so a tier change would never reach the database."""
    db = migrated_db(pg, template)
    assert afters(pg, db) == {("readings", "compression"): "7 days", ("readings", "retention"): "730 days"}
    assert len(all_jobs(pg, db)) == 26
    assert compression_enabled(pg, db) == {"readings": "t", "readings_1m": "f", "agent_metrics_5min": "f"}
    got = pg.psql("SELECT add_retention_policy('public.readings', INTERVAL '30 days', if_not_exists => true)", db=db)
    assert got == [["-1"]]
    assert afters(pg, db)[("readings", "retention")] == "730 days"


@pytest.mark.parametrize("release", list(SEED))
def test_each_tier_gets_exactly_the_seed_policies_and_a_second_run_changes_no_job(pg, template, tiers, release) -> None:
    db = migrated_db(pg, template)
    untouched = other_jobs(pg, db)
    job, folder = tiers[release]
    proc = run_job(job, folder, pg, db)
    assert proc.returncode == 0, proc.stderr
    assert afters(pg, db) == SEED[release]
    assert "readings: compression after 2 days (was 7 days)" in proc.stderr
    assert f"readings: retention after {SEED[release][('readings', 'retention')]} (was 730 days)" in proc.stderr
    assert "readings_1m: compression enabled" in proc.stderr, "compression on the cagg before its policy"
    assert compression_enabled(pg, db) == {"readings": "t", "readings_1m": "t", "agent_metrics_5min": "f"}
    assert other_jobs(pg, db) == untouched, "refresh policies and the other tables' policies are never touched"

    jobs = all_jobs(pg, db)
    second = run_job(job, folder, pg, db)
    assert second.returncode == 0, second.stderr
    assert all_jobs(pg, db) == jobs, "a second run changes no job: same ids, same configs"
    notices = [line for line in second.stderr.splitlines() if "NOTICE" in line]
    # compression on readings and readings_1m, then compression and retention on each of the three
    assert len(notices) == 2 + 6 and all(line.endswith(": unchanged") for line in notices), second.stderr


def test_a_tier_change_in_either_direction_leaves_exactly_the_new_tiers_policies(pg, template, tiers) -> None:
    db = migrated_db(pg, template)
    untouched = other_jobs(pg, db)
    path = [
        "iotistica",
        "iotistica-enterprise",
        "iotistica",
        "iotistica-starter",
        "iotistica-enterprise",
        "client-demo",
    ]
    before: dict[tuple[str, str], tuple[str, int]] = {}
    logs = []
    for release in path:
        job, folder = tiers[release]
        proc = run_job(job, folder, pg, db)
        assert proc.returncode == 0, f"{release}: {proc.stderr}"
        logs.append(proc.stderr)
        now = policies(pg, db)
        assert {k: v[0] for k, v in now.items()} == SEED[release], release
        if before:  # a policy whose value stays keeps its job
            kept = {k for k in now if k in before and now[k][0] == before[k][0]}
            assert kept and all(now[k][1] == before[k][1] for k in kept), release
        before = now
    assert other_jobs(pg, db) == untouched
    assert "agent_metrics_5min: retention after 60 days (was none)" in logs[1]
    assert "agent_metrics_5min: retention policy removed (was 60 days)" in logs[2]
    assert "agent_metrics_5min: retention policy removed (was 60 days)" in logs[5]


def test_policies_set_to_null_are_removed_and_any_relation_can_be_compressed(pg, template) -> None:
    e = env_from(
        "iotistica",
        timescaledb={
            "readings": {"compressAfter": None, "retain": None},
            "agentMetrics5min": {"compressAfter": "2h", "retain": "14d"},
        },
    )
    sql = policy_sql(Release(release=e.release, namespace=e.namespace, tier=e.tier), e.timescaledb)
    db = migrated_db(pg, template)
    proc = subprocess.run(
        [str(pg.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", db],
        input=sql,
        env=pg.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert afters(pg, db) == {
        ("readings_1m", "compression"): "7 days",
        ("readings_1m", "retention"): "90 days",
        ("agent_metrics_5min", "compression"): "02:00:00",
        ("agent_metrics_5min", "retention"): "14 days",
    }
    assert compression_enabled(pg, db)["agent_metrics_5min"] == "t"


def test_hypertable_compression_is_turned_on_when_off(pg, template, tiers) -> None:
    db = migrated_db(pg, template)
    pg.psql(
        "SELECT remove_compression_policy('public.readings');"
        " ALTER TABLE public.readings SET (timescaledb.compress = false)",
        db=db,
    )
    assert compression_enabled(pg, db)["readings"] == "f"
    job, folder = tiers["iotistica"]
    proc = run_job(job, folder, pg, db)
    assert proc.returncode == 0, proc.stderr
    assert "readings: compression enabled (segmentby agent_uuid, metric_name; orderby time DESC)" in proc.stderr
    assert afters(pg, db) == SEED["iotistica"]
    settings = pg.psql(
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
        " WHERE hypertable = 'public.readings'::regclass",
        db=db,
    )
    assert settings == [["agent_uuid,metric_name", '"time" DESC']]


def test_the_job_waits_for_the_migrations(pg, template, tiers) -> None:
    """On a database whose tables are not there yet, the Job waits (bounded) and then applies the
    policies. The migrations' relations are moved aside and brought back while it waits."""
    db = migrated_db(pg, template)
    kinds = {"readings": "TABLE", "readings_1m": "MATERIALIZED VIEW", "agent_metrics_5min": "MATERIALIZED VIEW"}
    pg.psql(";".join(f"ALTER {kind} public.{rel} RENAME TO {rel}_later" for rel, kind in kinds.items()), db=db)
    back = ";".join(f"ALTER {kind} public.{rel}_later RENAME TO {rel}" for rel, kind in kinds.items())
    job, folder = tiers["iotistica"]
    timer = threading.Timer(1.0, lambda: pg.psql(f"BEGIN; {back}; COMMIT", db=db))
    timer.start()
    try:
        proc = run_job(job, folder, pg, db, WAIT_FOR_TABLES_SECONDS="30")
    finally:
        timer.join()
    assert proc.returncode == 0, proc.stderr
    assert "waiting for: public.readings, public.readings_1m, public.agent_metrics_5min" in proc.stdout
    assert afters(pg, db) == SEED["iotistica"]
