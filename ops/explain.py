"""``iotistica-k8s explain``: one environment in, what it deploys (workloads, hosts, Secrets) and its
capacity printed out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.fleet_render import (
    EXIT_OK,
    Manifest,
    _containers,
    _load,
    render,
)

if TYPE_CHECKING:
    from tiers.models import Environment


def _secret_refs(objs: list[Manifest]) -> list[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretRef"):
                if key in node and isinstance(node[key], dict) and "name" in node[key]:
                    names.add(node[key]["name"])
            if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
                names.add(node["secret"]["secretName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objs)
    return sorted(names)


def _hosts(objs: list[Manifest]) -> list[str]:
    hosts: set[str] = set()
    for o in objs:
        hosts.update(o.get("spec", {}).get("hostnames", []) or [])
        if o["kind"] == "Certificate":
            hosts.update(o["spec"].get("dnsNames", []) or [])
    return sorted(hosts)


def _placement(env: Environment, environments: Path) -> list[str]:
    """Where the environment runs (its cluster) and its database server, and where that is declared."""
    from tiers.loader import load_fleet_file

    source = load_fleet_file(environments, Path.cwd())
    origin = f" ({source.label})" if source.present else " (no fleet file: the default cluster)"
    edge = env.edge
    lines = [
        f"cluster: {env.cluster.name}{origin}: Argo CD destination {env.argocd.destination_server}, gateway "
        f"{edge.gateway.namespace}/{edge.gateway.name}, {edge.certificate.issuer_kind} "
        f"{edge.certificate.issuer_name}, admission policies {env.cluster.admission_policies}"
    ]
    server = source.fleet.server(env.database.server)
    where = f" ({source.label})" if server is not None else " (declared by this environment)"
    host = f", host {env.database.host}:{env.database.port}" if env.database.host else ""
    lines.append(f"database server: {env.database.server}{where}: max_connections {env.database.max_connections}{host}")
    return lines


def cmd_explain(args: argparse.Namespace) -> int:
    from constructs.isolation.api_admission_policies import unguarded_warning
    from tiers.capacity import capacity

    (env,) = _load(args.environments, [args.env_name])
    objs = render([env])[env.release]
    if getattr(args, "json", False):
        print(json.dumps(explain_json(env, objs), indent=2))
        return EXIT_OK
    print(f"{env.release}: namespace {env.namespace}, tier {env.tier}")
    for line in _placement(env, args.environments):
        print(line)
    print("\nworkloads:")
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        replicas = o["spec"].get("replicas", "HPA")
        for c in _containers(o):
            r = c["resources"]
            print(
                f"  {o['kind']:<11} {o['metadata']['name']:<40} replicas {replicas!s:<4} {c['image']}  "
                f"requests {r['requests']['cpu']}/{r['requests']['memory']}  limit {r['limits']['memory']}"
            )
    hpas = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    for h in hpas:
        print(f"  HPA {h['metadata']['name']}: {h['spec']['minReplicas']}..{h['spec']['maxReplicas']}")
    hosts = _hosts(objs)
    print("\nhosts:" + ("".join(f"\n  {h}" for h in hosts) if hosts else " none"))
    from constructs.lifecycle.secrets_provider import secret_plan

    plan = {n.name: n for n in secret_plan(env)}
    made, provided = [], []
    for name in _secret_refs(objs):
        need = plan.get(name)
        if need is None or need.source in ("generated", "resolver"):
            made.append(name)
        else:
            provided.append((name, need.source))
    print("\nrequired secrets (the operator provides them; referenced by name, never in dist/):")
    for name, source in provided:
        print(f"  {name}" + ("  (from 1Password, OnePasswordItem)" if source == "onepassword" else ""))
    print("\nsecrets the cluster makes (hook Jobs, cert-manager; nothing to create):")
    for name in made:
        print(f"  {name}")
    cap = capacity(env)
    print("\ncapacity:")
    if cap.rated_rps:
        print(f"  rated readings/s         {cap.rated_rps:,}")
        buffer = f"{cap.buffer_seconds:,.0f} s (MAXLEN {cap.stream_maxlen:,} / {cap.rated_rps:,} r/s)"
        print(f"  stream buffer            {buffer}")
    else:
        print(f"  rated readings/s         not rated (demo); MAXLEN {cap.stream_maxlen:,}")
    mem = cap.redis_maxmemory_bytes / 2**20
    used = cap.stream_bytes / 2**20
    print(f"  redis memory             full stream ~{used:,.0f} MiB of {mem:,.0f} MiB maxmemory ({used / mem:.0%})")
    print(
        f"  db connections (HPA max) {cap.db_connections_max} of {cap.db_client_connections} "
        f"(API {cap.api_pods_max} pods x {cap.api_pool_size}, ingestion {cap.ingestion_pods_max} pods x "
        f"{cap.ingestion_pool_size})"
    )
    pooler = " through the pooler" if env.database.pooler.enabled else ""
    print(
        f"  db budget                {cap.db_connection_budget} server connections{pooler} on "
        f"{env.database.server} (max_connections {cap.db_max_connections})"
    )
    for f in cap.findings:
        print(f"warning: {f.key}: {f.message}")
    unguarded = unguarded_warning(env)
    if unguarded:
        print(f"warning: {unguarded}")
    return EXIT_OK


def explain_json(env: Any, objs: list[Manifest]) -> dict[str, Any]:
    """What ``explain`` prints, as JSON (for CI bots and pull-request comments)."""
    from constructs.isolation.api_admission_policies import unguarded_warning
    from constructs.lifecycle.secrets_provider import secret_plan
    from tiers.capacity import capacity

    workloads = [
        {
            "kind": o["kind"],
            "name": o["metadata"]["name"],
            "replicas": o["spec"].get("replicas"),
            "containers": [
                {"name": c["name"], "image": c["image"], "resources": c.get("resources", {})} for c in _containers(o)
            ],
        }
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet")
    ]
    hpas = [
        {"name": h["metadata"]["name"], "min": h["spec"]["minReplicas"], "max": h["spec"]["maxReplicas"]}
        for h in objs
        if h["kind"] == "HorizontalPodAutoscaler"
    ]
    plan = {n.name: n for n in secret_plan(env)}
    required, made = [], []
    for name in _secret_refs(objs):
        need = plan.get(name)
        if need is None or need.source in ("generated", "resolver"):
            made.append(name)
        else:
            required.append({"name": name, "source": need.source})
    cap = capacity(env)
    warnings = [f"{f.key}: {f.message}" for f in cap.findings]
    unguarded = unguarded_warning(env)
    if unguarded:
        warnings.append(unguarded)
    return {
        "release": env.release,
        "namespace": env.namespace,
        "tier": str(env.tier),
        "workloads": workloads,
        "autoscalers": hpas,
        "hosts": _hosts(objs),
        "secrets": {"required": required, "made_by_the_cluster": made},
        "capacity": {
            "rated_rps": cap.rated_rps,
            "stream_maxlen": cap.stream_maxlen,
            "buffer_seconds": cap.buffer_seconds if cap.rated_rps else None,
            "redis_maxmemory_bytes": cap.redis_maxmemory_bytes,
            "stream_bytes": cap.stream_bytes,
            "db_connections_max": cap.db_connections_max,
            "db_client_connections": cap.db_client_connections,
            "db_connection_budget": cap.db_connection_budget,
            "db_max_connections": cap.db_max_connections,
        },
        "warnings": warnings,
    }
