"""Capacity arithmetic of an environment: what the typed model knows that Helm cannot.

- Rated readings/s per tier come from the seed's tier headings (starter ~200 r/s, standard ~2,000,
  enterprise ~50,000; the demo tier is not rated).
- Stream buffer: REDIS_INGESTION_STREAM_MAXLEN / rated r/s, the seconds of backlog Redis holds before
  the API starts spooling and the stream trims.
- Redis memory: a full stream at MAXLEN against maxmemory (per node; on a cluster the tenant's stream
  lives in one hash slot, so on one master).
- Database connections at HPA max: replicas x pool size of API and ingestion against the server's
  max_connections (platform-facts §7: the pools exhaust 100 quickly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tiers.models import Environment

RATED_READINGS_PER_SECOND = {"demo": None, "starter": 200, "standard": 2000, "enterprise": 50000}
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
    findings: list[Finding] = field(default_factory=list)


def capacity(env: Environment) -> Capacity:
    api, ing = env.api, env.ingestion
    rated = RATED_READINGS_PER_SECOND[env.tier]
    buffer = ing.stream_maxlen / rated if rated else None
    stream_bytes = ing.stream_maxlen * STREAM_ENTRY_BYTES
    maxmem = env.redis.maxmemory_mb * 1024 * 1024
    api_max = api.hpa.max_replicas if api.hpa.enabled else api.replicas
    ing_max = ing.max_pods
    conns = api_max * api.db_pool_size + ing_max * ing.db_pool_size
    findings: list[Finding] = []
    if buffer is not None and buffer < MIN_BUFFER_SECONDS:
        findings.append(
            Finding(
                "warning",
                "ingestion.streamMaxlen",
                f"the stream holds only {buffer:.0f} s at the rated {rated:,} readings/s "
                f"(MAXLEN {ing.stream_maxlen:,}); a database stall longer than that spools or drops data",
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
    budget = env.database.max_connections - RESERVED_CONNECTIONS
    if conns > budget:
        findings.append(
            Finding(
                "warning",
                "database.maxConnections",
                f"at HPA max the pools open {conns} connections (API {api_max} x {api.db_pool_size} + ingestion "
                f"{ing_max} x {ing.db_pool_size}), above max_connections {env.database.max_connections} "
                f"less {RESERVED_CONNECTIONS} reserved",
            )
        )
    return Capacity(
        rated_rps=rated,
        stream_maxlen=ing.stream_maxlen,
        buffer_seconds=buffer,
        stream_bytes=stream_bytes,
        redis_maxmemory_bytes=maxmem,
        api_pods_max=api_max,
        ingestion_pods_max=ing_max,
        db_connections_max=conns,
        db_max_connections=env.database.max_connections,
        findings=findings,
    )
