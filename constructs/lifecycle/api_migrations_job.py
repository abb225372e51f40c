"""ApiMigrationsJob: the API's database migrations as a Sync hook (wave -1), before any API pod starts.

The API applies its migrations at start unless ``DB_SKIP_MIGRATIONS=true`` (``api/src/bootstrap/database.ts``),
and its runner takes no lock (``api/src/db/migrations.ts``): two replicas starting at once on a fresh database
race on them (platform-facts §17). Run from this product's manifests, both replicas of the standard tier
stopped at migration 6 (``006_initial_create_hypertables_and_aggregates``, a ``-- NO TRANSACTION`` migration)
until their startup probes killed them, and the sync never became healthy (docs/e2e.md).

So the migrations run once, in this Job, with the API image's own runner (``dist/db/migrations.js``,
``runMigrations``; the image has no separate entry point for it), and the API Deployment sets
``DB_SKIP_MIGRATIONS=true``. The Job runs on every sync (``BeforeHookCreation``) with the API's image, so a
new API version's migrations are applied before its pods roll out; a failed migration stops the sync
before the Deployment changes, and the Job stays for ``kubectl logs``.

It connects as the API does: the same database settings (``DB_*``, the role of ``sql-credentials-{ns}``,
app-safe migrations for an ``-app`` role), under its own application name. It needs no ServiceAccount token
and no port; its NetworkPolicy allows DNS and the database only.
"""

from __future__ import annotations

from pathlib import Path

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope
from constructs.isolation.network_policies import Endpoint
from constructs.lifecycle.sync_hooks import SCRIPTS_DIR, WAVE_MIGRATIONS, hook_job, scripts_config_map
from constructs.platform import Props, Release, database_env, env, heap_mb, statement_timeout_env
from constructs.scan_skips import CKV_SECRET_ENV
from tiers.models import Api, Database, Scheduling

APP = "api-migrations"
COMPONENT = "database"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "api-migrations.js"
#: The API image's uid in this product (constructs/core/api_service.py UID): the same program, the same user.
UID = 11000
#: The API's pool is clamped to 5..100 (api/src/db/connection.ts); the runner uses one connection at a time.
POOL_SIZE = 5
#: How long the Job waits for the database to answer (db-init, one wave earlier, has already reached it).
WAIT_SECONDS = 300
#: Every migration of an empty database takes seconds (platform-facts §17); the deadline leaves room for a
#: large database's new migration.
DEADLINE_SECONDS = 1800
APPLICATION_NAME = "iotistic-api-migrations"
CHECKOV_REASONS = {
    CKV_SECRET_ENV: "the API image's migration runner (dist/db/migrations.js) reads DB_PASSWORD from the "
    "environment only and has no *_FILE variant (platform-facts §2.4)",
}


class ApiMigrationsJobProps(Props):
    release: Release
    #: The API's settings: its image, resources, heap, log level, statement timeout.
    values: Api
    database: Database
    scheduling: Scheduling


class ApiMigrationsJob(Component):
    """Outputs: ``name`` (Job), ``skip_env`` (the variable the API Deployment sets), ``network_endpoint``."""

    #: The API's switch that leaves the migrations to this Job (api/src/bootstrap/database.ts).
    SKIP_ENV = "DB_SKIP_MIGRATIONS"

    def __init__(self, scope: Scope, id: str, *, props: ApiMigrationsJobProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name(APP)
        self.network_endpoint = Endpoint(key=APP, app=APP, component=COMPONENT)
        sql = sc.sql_credentials(rel.namespace).name
        scripts_config_map(
            self, rel, name=self.name, app=APP, component=COMPONENT, files={SCRIPT.name: SCRIPT.read_text()}
        )
        hook_job(
            self,
            rel,
            name=self.name,
            app=APP,
            component=COMPONENT,
            job_wave=WAVE_MIGRATIONS,
            image=v.image,
            res=v.resources,
            command=["node", f"{SCRIPTS_DIR}/{SCRIPT.name}"],
            env=[
                *database_env(props.database, sql, POOL_SIZE),
                *statement_timeout_env(v.db_statement_timeout_ms),
                env("DB_APPLICATION_NAME", APPLICATION_NAME),
                env("NODE_ENV", v.node_env),
                env("LOG_LEVEL", v.log_level),
                env("NODE_OPTIONS", f"--max-old-space-size={heap_mb(v.resources, v.heap_percent)}"),
                env("WAIT_SECONDS", WAIT_SECONDS),
            ],
            uid=UID,
            scheduling=props.scheduling,
            scripts=self.name,
            backoff_limit=2,
            deadline_seconds=DEADLINE_SECONDS,
            skips=CHECKOV_REASONS,
        )
