"""Capacity arithmetic of an environment: what the typed model knows that Helm cannot.

- Rated readings/s per tier come from the seed's tier headings (starter ~200 r/s, standard ~2,000,
  enterprise ~50,000; the demo tier is not rated).
- Stream buffer: REDIS_INGESTION_STREAM_MAXLEN / rated r/s, the seconds of backlog Redis holds before
  the API starts spooling and the stream trims.
- Redis memory: a full stream at MAXLEN against maxmemory (per node; on a cluster the tenant's stream
  lives in one hash slot, so on one master).
- Database connections at HPA max: replicas x pool size of API and ingestion against the environment's
  declared ``database.connectionBudget`` (or, with a pooler, against what the pooler accepts), and the
  budget against the server's max_connections (platform-facts §7: the pools exhaust 100 quickly). The
  budgets of all environments on one server are summed by ``tiers.fleet``.
- Stream MAXLEN is either set, or derived from ``ingestion.streamBufferSeconds`` x the rated load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tiers.models import RATED_READINGS_PER_SECOND, Environment

__all__ = ["RATED_READINGS_PER_SECOND", "Capacity", "Finding", "capacity"]
#: Bytes one stream entry takes in Redis (a reading with its fields and stream overhead), a planning figure.
STREAM_ENTRY_BYTES = 512
#: Below this many seconds of stream buffer, a spike or a slow database turns into spooling or loss.
MIN_BUFFER_SECONDS = 60
#: Connections kept free for migrations, psql, the policy and db-init jobs, monitoring.
RESERVED_CONNECTIONS = 10
REDIS_MEMORY_HIGH_WATERMARK = 0.75


@dataclass(frozen=True)
class Finding:
    level: str  # "warning" (an error under validate --strict)
    key: str  # the setting to look at
    message: str


@dataclass(frozen=True)
class Capacity:
    rated_rps: int | None
    stream_maxlen: int
    buffer_seconds: float | None
    stream_bytes: int
    redis_maxmemory_bytes: int
    api_pods_max: int
    ingestion_pods_max: int
    db_connections_max: int
    db_max_connections: int
    db_connection_budget: int
    db_client_connections: int
    api_pool_size: int
    ingestion_pool_size: int
    findings: list[Finding] = field(default_factory=list)


def capacity(env: Environment) -> Capacity:
    env = env.resolved()
    ing = env.ingestion
    maxlen = env.stream_maxlen
    api_pool, ing_pool = env.api_db_pool_size, env.ingestion_db_pool_size
    rated = RATED_READINGS_PER_SECOND[env.tier]
    buffer = maxlen / rated if rated else None
    stream_bytes = maxlen * STREAM_ENTRY_BYTES
    maxmem = env.redis.maxmemory_mb * 1024 * 1024
    api_max = env.api_pods_max
    ing_max = ing.max_pods
    conns = api_max * api_pool + ing_max * ing_pool
    db = env.database
    clients = db.client_connections()
    findings: list[Finding] = []
    if buffer is not None and buffer < MIN_BUFFER_SECONDS:
        findings.append(
            Finding(
                "warning",
                "ingestion.streamMaxlen",
                f"the stream holds only {buffer:.0f} s at the rated {rated:,} readings/s "
                f"(MAXLEN {maxlen:,}); a database stall longer than that spools or drops data; "
                f"size it with ingestion.streamBufferSeconds: {MIN_BUFFER_SECONDS} (and streamMaxlen: null)",
            )
        )
    if stream_bytes > maxmem * REDIS_MEMORY_HIGH_WATERMARK:
        findings.append(
            Finding(
                "warning",
                "redis.maxmemoryMb",
                f"a full stream needs about {stream_bytes / 2**20:,.0f} MiB, above "
                f"{REDIS_MEMORY_HIGH_WATERMARK:.0%} of maxmemory ({env.redis.maxmemory_mb:,} MiB)",
            )
        )
    what = "the pooler's max_client_conn" if db.pooler.enabled else "database.connectionBudget"
    if conns > clients:
        findings.append(
            Finding(
                "warning",
                "database.connectionBudget" if not db.pooler.enabled else "database.pooler.maxClientConnections",
                f"at HPA max the pools open {conns} connections (API {api_max} x {api_pool} + ingestion "
                f"{ing_max} x {ing_pool}), above {what} ({clients}); leave api.dbPoolSize and "
                f"ingestion.dbPoolSize null to derive them, or raise the budget",
            )
        )
    room = db.max_connections - RESERVED_CONNECTIONS
    if db.connection_budget > room:
        findings.append(
            Finding(
                "warning",
                "database.connectionBudget",
                f"{db.connection_budget} connections do not fit in max_connections {db.max_connections} less "
                f"{RESERVED_CONNECTIONS} reserved ({room})",
            )
        )
    return Capacity(
        rated_rps=rated,
        stream_maxlen=maxlen,
        buffer_seconds=buffer,
        stream_bytes=stream_bytes,
        redis_maxmemory_bytes=maxmem,
        api_pods_max=api_max,
        ingestion_pods_max=ing_max,
        db_connections_max=conns,
        db_max_connections=db.max_connections,
        db_connection_budget=db.connection_budget,
        db_client_connections=clients,
        api_pool_size=api_pool,
        ingestion_pool_size=ing_pool,
        findings=findings,
    )
