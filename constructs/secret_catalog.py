"""The Secrets an environment needs (the seed's "Required Secrets" table), referenced by name only.

Nothing here creates a Secret: their material never enters dist/. Constructs take the names from
here so that the table, the wiring and the generated list of required Secrets cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SecretRef:
    name: str
    keys: tuple[str, ...]
    used_by: str


def sql_credentials(ns: str) -> SecretRef:
    return SecretRef(f"sql-credentials-{ns}", ("server", "port", "dbname", "username", "password"), "API, Ingestion")


def mqtt_credentials(ns: str) -> SecretRef:
    return SecretRef(f"mqtt-credentials-{ns}", ("username", "password"), "API (MQTT connection to broker)")


def openai_credentials() -> SecretRef:
    return SecretRef("openai-credentials-master", ("key",), "API (AI / anomaly summaries)")


def api_jwt(ns: str) -> SecretRef:
    return SecretRef(f"api-jwt-{ns}", ("token",), "API (JWT signing secret)")


def license_credentials(ns: str) -> SecretRef:
    return SecretRef(f"api-license-credentials-{ns}", ("key",), "API, Ingestion (stream key resolver)")


def license_public_key() -> SecretRef:
    return SecretRef("api-license-public-key-master", ("key",), "API")


def bootstrap_token() -> SecretRef:
    return SecretRef("api-bootstrap-token-master", ("token",), "API")


def internal_auth_token() -> SecretRef:
    return SecretRef("internal-auth-token-master", ("token",), "API")


def redis_auth(release: str) -> SecretRef:
    return SecretRef(f"{release}-redis-auth", ("password",), "Redis, API, Ingestion")


def ingestion_runtime_env(release: str) -> SecretRef:
    """Written in the cluster by the stream key resolver Job (lifecycle), read by ingestion (envFrom)."""
    return SecretRef(
        f"{release}-ingestion-runtime-env", ("INGESTION_TENANT_ID", "REDIS_INGESTION_STREAM_KEY"), "Ingestion"
    )


def required(ns: str) -> list[SecretRef]:
    """The seed's table, in its order."""
    return [
        sql_credentials(ns),
        mqtt_credentials(ns),
        openai_credentials(),
        api_jwt(ns),
        license_credentials(ns),
        license_public_key(),
        bootstrap_token(),
        internal_auth_token(),
    ]
