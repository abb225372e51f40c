"""TimescalePolicyJob: the seed's ``timescaledb-policy`` Job (Sync hook, wave "1", every sync).

Per tier (``timescaledb`` in the environment, tiers/presets): ``readings`` compresses after 2 days and
keeps 30/60/90 days (starter/standard/enterprise; demo 30); ``readings_1m`` compresses after 7 days and
keeps 90 days; ``agent_metrics_5min`` keeps 60 days on enterprise.

``policy.sql`` is generated here and runs in one transaction (``psql --single-transaction``):

1. Compression is turned on where a compression policy needs it, first on the hypertable
   (segmentby ``agent_uuid, metric_name``, orderby ``time DESC``, as migration 006) and then on the
   continuous aggregate (``ALTER MATERIALIZED VIEW ... SET (timescaledb.compress = true)``; platform-facts
   §15: add_compression_policy fails on a cagg until then). Settings that are already on are left alone.
2. Each policy is compared with ``timescaledb_information.jobs`` and, only when it differs, removed
   and added again in the same transaction. ``add_*_policy(..., if_not_exists => true)`` would keep an
   old policy (it returns -1 with a WARNING; §15), so a tier change from 30 to 60 days would never reach
   the database: this job corrects such drift, also the migrations' own 7-day/730-day policies. A
   policy set to null is removed.
   A continuous aggregate's policies are listed under the view itself on TimescaleDB 2.28
   (``public.readings_1m``, platform-facts §15), not under its materialization hypertable; both names
   are matched, so a second run finds them (and keeps their job ids) and a tier change down finds the
   policy it must remove.
3. A second run with the same settings changes nothing (every step reports "unchanged").

``timescaledb-policy.sh`` first waits (bounded) until the extension and the three relations exist, then
fails with a message that names what is missing. The job connects as a role that owns the tables
(policy functions check ownership): ``timescaledb.credentialsSecretName``, default the admin Secret.
"""

from __future__ import annotations

from pathlib import Path

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope
from constructs.isolation.network_policies import Endpoint
from constructs.lifecycle.db_init_job import pg_env
from constructs.lifecycle.sync_hooks import psql_hook
from constructs.platform import Props, Release, env, env_secret
from tiers.models import Database, Scheduling, TimescaleDb, pg_interval

APP = "timescaledb-policy"
COMPONENT = "database"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "timescaledb-policy.sh"
SCHEMA = "public"
HYPERTABLE = "readings"
SEGMENT_BY = "agent_uuid, metric_name"
ORDER_BY = "time DESC"
#: The information view the wait checks for: it exists once the timescaledb extension is installed.
EXTENSION_PROBE = "timescaledb_information.jobs"
#: (relation, is a continuous aggregate)
RELATIONS = (("readings", False), ("readings_1m", True), ("agent_metrics_5min", True))
#: (policy kind, job proc_name, config key, add function, remove function)
KINDS = {
    "compression": ("policy_compression", "compress_after", "add_compression_policy", "remove_compression_policy"),
    "retention": ("policy_retention", "drop_after", "add_retention_policy", "remove_retention_policy"),
}


def _desired(values: TimescaleDb) -> dict[str, tuple[str | None, str | None]]:
    """relation -> (compress after, retain) as PostgreSQL interval text, or None."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for relation, policies in (
        ("readings", values.readings),
        ("readings_1m", values.readings_1m),
        ("agent_metrics_5min", values.agent_metrics_5min),
    ):
        out[relation] = (
            pg_interval(policies.compress_after) if policies.compress_after else None,
            pg_interval(policies.retain) if policies.retain else None,
        )
    return out


def wait_sql() -> str:
    """Prints what is still missing (comma-separated), or an empty line when everything exists."""
    checks = [f"CASE WHEN to_regclass('{EXTENSION_PROBE}') IS NULL THEN 'the timescaledb extension' END"]
    checks += [f"CASE WHEN to_regclass('{SCHEMA}.{rel}') IS NULL THEN '{SCHEMA}.{rel}' END" for rel, _ in RELATIONS]
    body = ",\n       ".join(checks)
    header = "-- timescaledb-policy: what is still missing before the policies can be applied.\n"
    return f"{header}SELECT concat_ws(', ',\n       {body});\n"


def _enable_hypertable_compression() -> str:
    return f"""-- {HYPERTABLE}: compression settings (segmentby {SEGMENT_BY}; orderby {ORDER_BY}), only if still off.
DO $step$
DECLARE
  enabled boolean;
BEGIN
  SELECT compression_enabled INTO enabled FROM timescaledb_information.hypertables
   WHERE hypertable_schema = '{SCHEMA}' AND hypertable_name = '{HYPERTABLE}';
  IF NOT FOUND THEN
    RAISE EXCEPTION '{SCHEMA}.{HYPERTABLE} is not a hypertable (have the API migrations run?)';
  END IF;
  IF enabled THEN
    RAISE NOTICE '{HYPERTABLE}: compression enabled: unchanged';
  ELSE
    ALTER TABLE {SCHEMA}.{HYPERTABLE} SET (
      timescaledb.compress,
      timescaledb.compress_segmentby = '{SEGMENT_BY}',
      timescaledb.compress_orderby = '{ORDER_BY}'
    );
    RAISE NOTICE '{HYPERTABLE}: compression enabled (segmentby {SEGMENT_BY}; orderby {ORDER_BY})';
  END IF;
END
$step$;
"""


def _enable_aggregate_compression(view: str) -> str:
    return f"""-- {view}: compression on the continuous aggregate, only if still off (needed by its compression policy).
DO $step$
DECLARE
  enabled boolean;
BEGIN
  SELECT compression_enabled INTO enabled FROM timescaledb_information.continuous_aggregates
   WHERE view_schema = '{SCHEMA}' AND view_name = '{view}';
  IF NOT FOUND THEN
    RAISE EXCEPTION '{SCHEMA}.{view} is not a continuous aggregate (have the API migrations run?)';
  END IF;
  IF enabled THEN
    RAISE NOTICE '{view}: compression enabled: unchanged';
  ELSE
    ALTER MATERIALIZED VIEW {SCHEMA}.{view} SET (timescaledb.compress = true);
    RAISE NOTICE '{view}: compression enabled';
  END IF;
END
$step$;
"""


def _policy(relation: str, aggregate: bool, kind: str, desired: str | None) -> str:
    proc, key, add, remove = KINDS[kind]
    target = f"{SCHEMA}.{relation}"
    if aggregate:
        owner = f"""  SELECT materialization_hypertable_schema, materialization_hypertable_name
    INTO owner_schema, owner_table
    FROM timescaledb_information.continuous_aggregates WHERE view_schema = '{SCHEMA}' AND view_name = '{relation}';
  IF NOT FOUND THEN
    RAISE EXCEPTION '{target} is not a continuous aggregate (have the API migrations run?)';
  END IF;
"""
        # TimescaleDB 2.28 lists a cagg's policies under the view itself (platform-facts §15); its
        # materialization hypertable is matched too, so the check does not depend on which name a release uses.
        match = f"(hypertable_schema, hypertable_name) IN ((owner_schema, owner_table), ('{SCHEMA}', '{relation}'))"
    else:
        owner = f"  owner_schema := '{SCHEMA}';\n  owner_table := '{relation}';\n"
        match = "hypertable_schema = owner_schema AND hypertable_name = owner_table"
    if desired is None:
        decide = f"""  IF found_jobs = 0 THEN
    RAISE NOTICE '{relation}: no {kind} policy: unchanged';
  ELSE
    PERFORM {remove}('{target}', if_exists => true);
    RAISE NOTICE '{relation}: {kind} policy removed (was %)', current_after;
  END IF;
"""
    else:
        decide = f"""  IF found_jobs = 1 AND current_after = INTERVAL '{desired}' THEN
    RAISE NOTICE '{relation}: {kind} after {desired}: unchanged';
  ELSE
    PERFORM {remove}('{target}', if_exists => true);
    job := {add}('{target}', INTERVAL '{desired}');
    IF job IS NULL OR job < 1 THEN
      RAISE EXCEPTION '{relation}: {add} returned %, expected a new job id', job;
    END IF;
    RAISE NOTICE '{relation}: {kind} after {desired} (was %): job %', coalesce(current_after::text, 'none'), job;
  END IF;
"""
    want = f"after {desired}" if desired else "none"
    return f"""-- {relation}: {kind} policy ({want}); replaced only when it differs.
DO $step$
DECLARE
  owner_schema name;
  owner_table name;
  found_jobs integer;
  current_after interval;
  job integer;
BEGIN
{owner}  SELECT count(*), max((config ->> '{key}')::interval) INTO found_jobs, current_after
    FROM timescaledb_information.jobs
   WHERE proc_name = '{proc}' AND {match};
{decide}END
$step$;
"""


def policy_sql(rel: Release, values: TimescaleDb) -> str:
    """The whole policy script for one environment (run with psql --single-transaction)."""
    desired = _desired(values)
    parts = [
        f"-- timescaledb-policy for release {rel.release} (tier {rel.tier}), generated by iotistica-k8s.\n"
        "-- Idempotent and drift-correcting; run in one transaction (psql --single-transaction).\n"
        "SET LOCAL lock_timeout = '60s';\n"
    ]
    if desired[HYPERTABLE][0]:
        parts.append(_enable_hypertable_compression())
    for relation, aggregate in RELATIONS:
        if aggregate and desired[relation][0]:
            parts.append(_enable_aggregate_compression(relation))
    for relation, aggregate in RELATIONS:
        compress, retain = desired[relation]
        parts.append(_policy(relation, aggregate, "compression", compress))
        parts.append(_policy(relation, aggregate, "retention", retain))
    parts.append(
        "-- The policies in force, for the Job's log.\n"
        "SELECT coalesce(c.view_name, j.hypertable_name) AS relation, j.proc_name AS policy, j.job_id,\n"
        "       coalesce(j.config ->> 'compress_after', j.config ->> 'drop_after') AS after\n"
        "  FROM timescaledb_information.jobs j\n"
        "  LEFT JOIN timescaledb_information.continuous_aggregates c\n"
        "    ON c.materialization_hypertable_schema = j.hypertable_schema\n"
        "   AND c.materialization_hypertable_name = j.hypertable_name\n"
        " WHERE j.proc_name IN ('policy_compression', 'policy_retention')\n"
        " ORDER BY 1, 2;\n"
    )
    return "\n".join(parts)


class TimescalePolicyJobProps(Props):
    release: Release
    values: TimescaleDb
    database: Database
    credentials_secret: str
    scheduling: Scheduling


class TimescalePolicyJob(Component):
    """Outputs: ``name`` (Job), ``sql`` (policy.sql), ``network_endpoint``."""

    def __init__(self, scope: Scope, id: str, *, props: TimescalePolicyJobProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name(APP)
        self.sql = policy_sql(rel, v)
        self.network_endpoint = Endpoint(key=APP, app=APP, component=COMPONENT)
        sql = sc.sql_credentials(rel.namespace).name
        psql_hook(
            self,
            rel,
            name=self.name,
            app=APP,
            component=COMPONENT,
            script=SCRIPT,
            sql_file="policy.sql",
            sql=self.sql,
            wait_sql=wait_sql(),
            image=v.image,
            res=v.resources,
            env=[
                *pg_env(rel, props.credentials_secret, props.database, "iotistica-timescaledb-policy"),
                env_secret("PGDATABASE", sql, "dbname"),
                env("WAIT_FOR_TABLES_SECONDS", v.wait_for_tables_seconds),
            ],
            scheduling=props.scheduling,
            deadline_seconds=v.wait_for_tables_seconds + 900,
        )
