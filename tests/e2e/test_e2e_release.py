"""End to end: a release of dist/ synced by Argo CD's rules to a real kube-apiserver and run by a kubelet made
of the real programs (the platform's api/ and ingestion/, Redis, mosquitto with go-auth, TimescaleDB with TLS,
the hook Jobs' scripts). See docs/e2e.md. Marked ``e2e`` (``make e2e``; ``-m "not e2e"`` leaves them out)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import platform_build
from tests.e2e.release import Release, running_release

MISSING = platform_build.missing()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(MISSING is not None, reason=f"e2e: {MISSING}"),
    pytest.mark.timeout(600),
]

#: The releases run: the demo tier and the standard tier (two API replicas, db-init, HPA).
RELEASES = ["client-demo", "iotistica"]


@pytest.fixture(scope="session")
def built() -> platform_build.Built:
    return platform_build.build()


@pytest.fixture(scope="module", params=RELEASES)
def synced(request: pytest.FixtureRequest, built: platform_build.Built) -> Iterator[tuple[Release, Any]]:
    """The release from an empty database, synced once (scenario 1's first sync); yields (release, result)."""
    with running_release(request.param, built) as r:
        result = r.sync(wave_timeout=_probe_budget(r))
        yield r, result


def _probe_budget(r: Release) -> float:
    """The longest time a workload of the release may take to become ready by its own probes: the startup
    probe's budget (failureThreshold x period) plus one readiness period, and the kubelet's first restart
    back-off (10 s) for a program that exits once while its dependencies come up."""
    budget = 30.0
    for obj in r.objects():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            s = c.get("startupProbe") or {}
            rd = c.get("readinessProbe") or {}
            b = int(s.get("failureThreshold", 0)) * int(s.get("periodSeconds", 10)) + int(rd.get("periodSeconds", 10))
            budget = max(budget, b + 10.0)
    return budget


def _resource_versions(r: Release) -> dict[str, str]:
    out = {}
    for obj in r.objects():
        if obj["kind"] in ("Job",) or not r.argo.served(obj):
            continue
        live = r.kube.get(obj)
        assert live is not None, f"{obj['kind']}/{obj['metadata']['name']} missing on the server"
        out[f"{obj['kind']}/{obj['metadata']['name']}"] = live["metadata"]["resourceVersion"]
    for name in (f"{r.name}-redis-auth", f"{r.name}-ingestion-runtime-env"):
        live = r.kube.get({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": r.namespace}})
        assert live is not None, f"Secret {name} (written by a hook Job) missing"
        out[f"Secret/{name}"] = live["metadata"]["resourceVersion"]
    return out


def _restarts(r: Release) -> dict[str, tuple[str, int]]:
    return {
        f"{p.name}/{c.name}": (p.template_hash, c.restarts)
        for p in list(r.kubelet.pods.values())
        if not p.owner.startswith("Job/")
        for c in p.containers
    }


# ---- scenario 1 ----------------------------------------------------------------------------------


def test_every_workload_ready_and_every_hook_succeeds(synced: tuple[Release, Any]) -> None:
    r, result = synced
    hooks = sorted(o["metadata"]["name"] for o in r.objects() if o["kind"] == "Job")
    assert result.hooks == {h: "Succeeded" for h in hooks}
    workloads = sorted(
        f"{o['kind']}/{o['metadata']['name']}" for o in r.objects() if o["kind"] in ("Deployment", "StatefulSet")
    )
    ready = sorted(
        w for w in workloads if w not in result.not_run and all(p.ready for p in r.kubelet.pods_of(w, r.namespace))
    )
    # The dashboard's image is the one workload not run (no vendored build of it; docs/e2e.md).
    assert result.not_run == [f"Deployment/{r.name}-dashboard"]
    assert ready == [w for w in workloads if w not in result.not_run], r.kubelet.report()
    # Hooks with HookSucceeded are gone from the server after they succeeded.
    for h in hooks:
        assert r.kube.get({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": h, "namespace": r.namespace}}) is None


def test_a_second_sync_changes_nothing(synced: tuple[Release, Any]) -> None:
    r, _ = synced
    before, restarts = _resource_versions(r), _restarts(r)
    result = r.sync(wave_timeout=_probe_budget(r))
    assert set(result.hooks.values()) == {"Succeeded"}
    assert _resource_versions(r) == before
    time.sleep(1.5)  # one kubelet reconcile round
    assert _restarts(r) == restarts, r.kubelet.report()


def test_services_resolve_to_addresses_of_their_own(synced: tuple[Release, Any]) -> None:
    """From inside a pod: the short and the full Service names resolve to the Service's own 127.x address."""
    r, _ = synced
    c = r.kubelet.container(r.namespace, f"Deployment/{r.name}-api")
    names = {f"{r.name}-redis", f"{r.name}-redis.{r.namespace}.svc.cluster.local", f"{r.name}-mosquitto"}
    script = "const dns=require('dns');Promise.all(process.argv.slice(1).map(n=>dns.promises.lookup(n)))" \
             ".then(a=>console.log(JSON.stringify(a.map(x=>x.address))))"  # fmt: skip
    out = r.kubelet.exec(c, ["node", "-e", script, *sorted(names)])
    assert out.returncode == 0, out.stderr
    got = dict(zip(sorted(names), json.loads(out.stdout), strict=True))
    for n, ip in got.items():
        assert ip == r.svc_ip(n.split(".")[0].removeprefix(f"{r.name}-")), (n, ip)
    assert len({r.svc_ip("redis"), r.svc_ip("mosquitto"), r.svc_ip("api")}) == 3
