"""End to end, scenario 6: two API replicas start at once on a fresh database (docs/e2e.md).

The API's migration runner takes no lock (api/src/db/migrations.ts); two replicas that both ran it at start
stopped at migration 6 until their startup probes killed them (platform-facts §17, docs/e2e.md). The manifests
now run the migrations once per sync in the ``api-migrations`` Sync hook (wave -1, the API image's own
``runMigrations``) and start the API with ``DB_SKIP_MIGRATIONS=true``. Each release's first sync (the ``synced``
fixture, tests/e2e/conftest.py) has the API at two replicas or more: the HPA's ``minReplicas`` (standard), or
scaled to two (demo, one replica as shipped). Both pods start in the same moment (the worst case for a race),
each on a pod address of its own behind the Service's proxy (tests/e2e/podnet.py)."""

from __future__ import annotations

import http.client
import re
from typing import Any

import pytest

from tests.e2e import platform_build
from tests.e2e.release import Release, api_replicas

MISSING = platform_build.missing()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(MISSING is not None, reason=f"e2e: {MISSING}"),
    pytest.mark.timeout(600),
]


def _logs(r: Release, owner: str) -> dict[str, str]:
    """Every container log of ``owner``'s pods (all restarts), as ``kubectl logs [-p]`` shows them."""
    out = {}
    for pod in [*r.kubelet.gone, *r.kubelet.pods.values()]:
        if pod.namespace == r.namespace and pod.owner == owner:
            for f in sorted(pod.dir.glob("*.log")):
                out[f"{pod.name}/{f.name}"] = f.read_text(errors="replace")
    return out


def test_the_migration_job_runs_before_the_api(synced: tuple[Release, Any]) -> None:
    r, result = synced
    job = f"{r.name}-api-migrations"
    assert result.hooks[job] == "Succeeded"
    events = r.kubelet.events
    done = next(i for i, e in enumerate(events) if re.match(rf"pod {r.namespace}/{job}-\S+ Succeeded", e))
    first_api = next(i for i, e in enumerate(events) if e.startswith(f"pod {r.namespace}/{r.name}-api-0 created"))
    assert done < first_api, events
    logs = "\n".join(_logs(r, f"Job/{job}").values())
    total = len(list((platform_build.build().apps["api"] / "database" / "migrations").glob("*.sql")))
    assert f"api-migrations: done: {total} of {total} migrations applied" in logs, logs[-3000:]


def test_both_replicas_start_at_once_and_become_ready(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    replicas = api_replicas(r)
    pods = r.kubelet.pods_of(f"Deployment/{r.name}-api", r.namespace)
    assert len(pods) == replicas and all(p.ready for p in pods), r.kubelet.report()
    api = [p.containers[0] for p in pods]
    # Started in one pass of the kubelet (its loop runs every 0.1 s), never restarted.
    assert max(c.started_at for c in api) - min(c.started_at for c in api) < 1.0
    assert [c.restarts for c in api] == [0] * replicas, r.kubelet.report()
    # Each replica on an address of its own, and the Service forwards to every ready one.
    assert len({p.ip for p in pods}) == replicas
    assert sorted(r.kubelet.endpoints(r.namespace, f"{r.name}-api", 3002)) == sorted((p.ip, 3002) for p in pods)
    for p in pods:
        conn = http.client.HTTPConnection(p.ip, 3002, timeout=10)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()


def test_each_migration_is_applied_exactly_once(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    files = sorted((platform_build.build().apps["api"] / "database" / "migrations").glob("*.sql"))
    want = sorted(int(f.name.split("_", 1)[0]) for f in files)
    rows = r.db("SELECT migration_number, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1")
    assert [(int(n), int(c)) for n, c in rows] == [(n, 1) for n in want]


def test_the_api_logs_show_no_migration_error(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    replicas = api_replicas(r)
    logs = _logs(r, f"Deployment/{r.name}-api")
    assert len(logs) == replicas, sorted(logs)
    for name, text in logs.items():
        assert "Skipping database migrations (DB_SKIP_MIGRATIONS=true)" in text, (name, text[-2000:])
        bad = [
            line
            for line in text.splitlines()
            if re.search(r"(?i)migration", line) and re.search(r"(?i)error|fail", line)
        ]
        assert bad == [], (name, bad)
