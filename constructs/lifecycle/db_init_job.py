"""DbInitJob: the seed's "Database Initialization" Job (optional; off on demo, on elsewhere).

Connected as the admin (Secret ``pg-admin-credentials``, keys ``username``/``password``) to the server of
``sql-credentials-{ns}``, it runs ``scripts/db-init.sql`` (the tests run it twice against a real
PostgreSQL server):

1. creates the application role, or gives it LOGIN and its Secret's password only when they differ;
2. creates the database owned by that role, or sets the owner;
3. grants CONNECT, schema USAGE/CREATE, table, sequence and function privileges, now and by default;
4. creates the extensions ``timescaledb`` and ``pgcrypto`` (platform-facts §7: the API's migrations, in
   app-safe mode, expect both to exist and the app role cannot create them).

A second run changes nothing. It is a Sync hook at wave -1, so the API (wave 0) starts after it. No
ServiceAccount token: it talks only to PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from cdk8s_plus_27 import k8s

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope
from constructs.isolation.network_policies import Endpoint
from constructs.lifecycle.sync_hooks import (
    POSTGRES_UID,
    PSQL_SECRET_ENV,
    SCRIPTS_DIR,
    WAVE_SECRET_JOBS,
    hook_job,
    scripts_config_map,
)
from constructs.platform import Props, Release, env, env_secret
from constructs.scan_skips import CKV_SECRET_ENV
from tiers.models import Database, DbInit, Scheduling

APP = "db-init"
COMPONENT = "database"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def ssl_mode(db: Database) -> str:
    """libpq sslmode matching the services' DB_SSL (CNPG's CA is self-signed and not mounted: no verify)."""
    return "require" if db.ssl else "prefer"


def pg_env(rel: Release, login_secret: str, db: Database, app_name: str) -> list[k8s.EnvVar]:
    """libpq variables of a job: the server from ``sql-credentials-{ns}``, the login from ``login_secret``."""
    sql = sc.sql_credentials(rel.namespace).name
    return [
        env_secret("PGHOST", sql, "server"),
        env_secret("PGPORT", sql, "port"),
        env_secret("PGUSER", login_secret, "username"),
        env_secret("PGPASSWORD", login_secret, "password"),
        env("PGSSLMODE", ssl_mode(db)),
        env("PGAPPNAME", app_name),
    ]


class DbInitJobProps(Props):
    release: Release
    values: DbInit
    database: Database
    scheduling: Scheduling


class DbInitJob(Component):
    """Outputs: ``name`` (Job), ``admin_secret``, ``network_endpoint``."""

    def __init__(self, scope: Scope, id: str, *, props: DbInitJobProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name(APP)
        self.admin_secret = v.admin_secret_name
        self.network_endpoint = Endpoint(key=APP, app=APP, component=COMPONENT)
        sql = sc.sql_credentials(rel.namespace).name

        scripts_config_map(
            self,
            rel,
            name=self.name,
            app=APP,
            component=COMPONENT,
            files={f: (SCRIPTS / f).read_text() for f in ("db-init.sh", "db-init.sql")},
        )
        hook_job(
            self,
            rel,
            name=self.name,
            app=APP,
            component=COMPONENT,
            job_wave=WAVE_SECRET_JOBS,
            image=v.image,
            res=v.resources,
            command=["sh", f"{SCRIPTS_DIR}/db-init.sh"],
            env=[
                *pg_env(rel, v.admin_secret_name, props.database, "iotistica-db-init"),
                env_secret("APP_USER", sql, "username"),
                env_secret("APP_PASSWORD", sql, "password"),
                env_secret("APP_DB", sql, "dbname"),
                env("ADMIN_DATABASE", v.admin_database),
                env("WAIT_SECONDS", v.wait_seconds),
                env("REQUIRE_TIMESCALEDB", True),
            ],
            uid=POSTGRES_UID,
            scheduling=props.scheduling,
            scripts=self.name,
            backoff_limit=5,
            deadline_seconds=v.wait_seconds + 600,
            skips={CKV_SECRET_ENV: PSQL_SECRET_ENV},
        )
