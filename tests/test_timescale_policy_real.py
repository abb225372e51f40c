"""The timescaledb-policy Job against the real TimescaleDB extension, where it is installed.

The server preloads TimescaleDB (tests/realpostgres.py decides the mode and the report header says which
ran). The schema is what the API's migrations leave (platform-facts §15): ``readings`` a hypertable with
compression on and the migrations' 7-day compression and 730-day retention policies; ``readings_1m`` and
``agent_metrics_5min`` continuous aggregates with refresh policies only. Then the Job's own script runs,
with the Job's environment, as in tests/test_timescale_policy_sql.py (which proves the same logic against
a stand-in where the extension is absent). Where TimescaleDB is absent, these tests skip and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest

from tests.realpostgres import NO_TIMESCALEDB, TIMESCALEDB, PgServer, running_postgres
from tests.test_timescale_policy_sql import STANDARD_POLICIES, policies, run_job, scripts

pytestmark = pytest.mark.skipif(not TIMESCALEDB, reason=NO_TIMESCALEDB)
_DBS = count()

MIGRATED = """
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE public.readings (time timestamptz NOT NULL, agent_uuid text, metric_name text, value double precision);
SELECT create_hypertable('public.readings', 'time', chunk_time_interval => INTERVAL '6 hours');
ALTER TABLE public.readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'agent_uuid, metric_name',
                                 timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('public.readings', INTERVAL '7 days');
SELECT add_retention_policy('public.readings', INTERVAL '730 days');
CREATE MATERIALIZED VIEW public.readings_1m WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, agent_uuid, metric_name, avg(value) AS avg
    FROM public.readings GROUP BY 1, 2, 3 WITH NO DATA;
SELECT add_continuous_aggregate_policy('public.readings_1m', start_offset => INTERVAL '10 minutes',
                                       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
CREATE MATERIALIZED VIEW public.agent_metrics_5min WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '5 minutes', time) AS bucket, agent_uuid, max(value) AS max
    FROM public.readings GROUP BY 1, 2 WITH NO DATA;
SELECT add_continuous_aggregate_policy('public.agent_metrics_5min', start_offset => INTERVAL '1 hour',
                                       end_offset => INTERVAL '5 minutes', schedule_interval => INTERVAL '5 minutes');
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres(timescaledb=True) as server:
        yield server


@pytest.fixture(scope="module")
def tiers(manifests, tmp_path_factory) -> dict[str, tuple[dict[str, Any], Any]]:
    out = {}
    for release in ("iotistica", "iotistica-enterprise"):
        folder = tmp_path_factory.mktemp(release)
        out[release] = (scripts(manifests[release], release, folder), folder)
    return out


def migrated_db(pg: PgServer) -> str:
    name = f"tsdb_{next(_DBS)}"
    pg.psql(f"CREATE DATABASE {name}")
    pg.psql(MIGRATED, db=name)
    return name


def refresh_jobs(pg: PgServer, db: str) -> list[list[str]]:
    return pg.psql(
        "SELECT job_id, config FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1",
        db=db,
    )


def test_policies_are_set_and_a_second_run_is_harmless(pg, tiers) -> None:
    db = migrated_db(pg)
    refresh = refresh_jobs(pg, db)
    job, folder = tiers["iotistica"]  # standard tier
    first = run_job(job, folder, pg, db)
    assert first.returncode == 0, first.stderr
    got = policies(pg, db)
    assert {k: v[0] for k, v in got.items()} == STANDARD_POLICIES
    second = run_job(job, folder, pg, db)
    assert second.returncode == 0, second.stderr
    assert policies(pg, db) == got, "a second run changes nothing: same policies, same job ids"
    assert refresh_jobs(pg, db) == refresh, "refresh policies are never touched"


def test_a_tier_change_corrects_the_drift(pg, tiers) -> None:
    db = migrated_db(pg)
    standard, enterprise = tiers["iotistica"], tiers["iotistica-enterprise"]
    assert run_job(standard[0], standard[1], pg, db).returncode == 0
    before = policies(pg, db)
    up = run_job(enterprise[0], enterprise[1], pg, db)
    assert up.returncode == 0, up.stderr
    after = policies(pg, db)
    assert after[("readings", "retention")][0] == "90 days"
    assert after[("readings", "compression")] == before[("readings", "compression")]
    assert after[("agent_metrics_5min", "retention")][0] == "60 days"
    down = run_job(standard[0], standard[1], pg, db)
    assert down.returncode == 0, down.stderr
    final = policies(pg, db)
    assert final[("readings", "retention")][0] == "60 days" and ("agent_metrics_5min", "retention") not in final
