"""The isolation concern: fleet namespaces, cluster RBAC, network isolation and pod security, proven per environment.

- Network: every NetworkPolicy of an environment is evaluated (ops/netpol.py) against the
  pods of its manifests plus stand-ins for the world around them (Gateway, Prometheus, DNS, the
  database, agents, intruders, the internet). The *complete* set of permitted connections must
  equal the expected flows written out below, independently of the construct's flow table.
- RBAC: the ClusterRoles' verbs equal platform-facts §11 exactly; a small RBAC authorizer replays the
  deployer's calls (a chart-provisioned fleet and a namespace the API creates itself, escalation
  check included) and a few calls that must fail.
- Pod security: every pod of every environment against the Kubernetes *restricted* profile, plus
  our stricter rules (numeric uid/gid, read-only root) with the exceptions the model declares.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.netpol import Cluster, Host, Pod
from tests.helpers import BASE, by, env_from, error_of, kinds, pod_labels, pod_specs, pod_template, synth_env
from tiers.loader import ConfigError, load_environment
from tiers.models import Environment

# --------------------------------------------------------------------------------------------------
# The world around an environment
# --------------------------------------------------------------------------------------------------

KUBE_API_IP = "192.168.10.1"  # a control-plane address (private, as on kubeadm clusters)
INTERNET_IP = "104.18.33.45"  # e.g. api.openai.com
NAME = "app.kubernetes.io/name"


def _ports(container_ports: list[dict]) -> tuple[tuple[int, str], ...]:
    return tuple(sorted((p["containerPort"], p.get("protocol", "TCP")) for p in container_ports))


def pod_key(labels: dict[str, str]) -> str:
    """A pod group's name: its name label, or its component under the old chart's name label
    (``migration.selectorLabels: helm``: ``app.kubernetes.io/name: iotistic``, platform-facts §12)."""
    return labels["app.kubernetes.io/component"] if labels[NAME] == "iotistic" else labels[NAME]


def world(env: Environment, objs: list[dict]) -> tuple[Cluster, dict[str, Pod | Host]]:
    """The policies of ``objs`` and every endpoint: release pods plus named stand-ins."""
    ns_labels = {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in kinds(objs, "Namespace")}
    cluster = Cluster(policies=kinds(objs, "NetworkPolicy"), namespace_labels=ns_labels)
    ips = (f"10.244.{i // 200}.{i % 200 + 10}" for i in itertools.count())
    eps: dict[str, Pod | Host] = {}
    for o, spec in pod_specs(objs):
        labels = pod_labels(o)
        ports = _ports([p for c in spec["containers"] for p in c.get("ports", [])])
        eps[pod_key(labels)] = Pod(pod_key(labels), env.namespace, labels, next(ips), ports)
    net = env.network

    def pod(name: str, namespace: str, labels: dict[str, str], ports=()) -> None:
        eps[name] = Pod(name, namespace, labels, next(ips), tuple(ports))

    pod("gateway", net.gateway_namespace, {NAME: "envoy"})
    pod("prometheus", net.prometheus_namespace, {NAME: "prometheus"})
    pod("dns", net.dns.namespace, dict(net.dns.pod_labels), [(53, "TCP"), (53, "UDP")])
    pod("other-kube-system", "kube-system", {"k8s-app": "metrics-server"}, [(53, "UDP"), (443, "TCP")])
    pod("database", net.database.namespace or "db-elsewhere", {"cnpg.io/cluster": "cl01"}, [(5432, "TCP")])
    pod("provisioning", "provisioning", {NAME: "provisioning-api"}, [(3100, "TCP")])
    pod("intruder-local", env.namespace, {"run": "debug"}, [(8080, "TCP")])
    pod("intruder-default", "default", {"run": "debug"}, [(8080, "TCP")])
    for ns in net.agent_namespaces:
        pod(f"agent@{ns}", ns, {"app": "virtual-agent"})
    if env.fleet_namespaces.enabled:
        for fleet in env.fleet_namespaces.fleets:
            ns = env.fleet_namespace(fleet.name)
            pod(f"agent@{fleet.name}", ns, {"app": "virtual-agent"})
            pod(f"simulator@{fleet.name}", ns, {"app": "opcua-simulator"}, [(4840, "TCP"), (502, "TCP")])
    eps["kube-apiserver"] = Host("kube-apiserver", KUBE_API_IP, ((443, "TCP"), (6443, "TCP")))
    eps["internet"] = Host("internet", INTERNET_IP, ((443, "TCP"),))
    return cluster, eps


def governed(env: Environment, ep: Pod | Host) -> bool:
    """Endpoints whose traffic this repo's policies decide: the release and its fleet namespaces."""
    fleets = (
        {env.fleet_namespace(f.name) for f in env.fleet_namespaces.fleets} if env.fleet_namespaces.enabled else set()
    )
    return isinstance(ep, Pod) and (ep.namespace == env.namespace or ep.namespace in fleets)


def permitted(env: Environment, objs: list[dict]) -> set[tuple[str, str, int, str]]:
    """Every (source, destination, port, protocol) the policies allow, where one end is governed."""
    cluster, eps = world(env, objs)
    out = set()
    for (sname, src), (dname, dst) in itertools.product(eps.items(), eps.items()):
        if not (governed(env, src) or governed(env, dst)):
            continue
        for port, proto in dst.ports:
            if cluster.allows(src, dst, port, proto):
                out.add((sname, dname, port, proto))
    return out


def expected_flows(env: Environment, pods: set[str]) -> set[tuple[str, str, int, str]]:
    """The issue's flows, written out by hand (not derived from the construct's table). ``pods``: the
    pod name labels present, for the lifecycle hook Jobs (each has its flows only if it exists)."""
    net = env.network
    nodered = env.nodered.enabled
    cluster = env.redis.cluster.enabled
    tls = env.mosquitto.tls.enabled
    fleets = [f.name for f in env.fleet_namespaces.fleets] if env.fleet_namespaces.enabled else []
    agents = [f"agent@{ns}" for ns in net.agent_namespaces] + [f"agent@{f}" for f in fleets]
    egress = net.default_deny_egress
    flows: set[tuple[str, str, int, str]] = set()

    def add(srcs, dst, ports, proto="TCP"):
        for s in srcs:
            for p in ports:
                flows.add((s, dst, p, proto))

    # Ingress into the release namespace.
    add(["gateway", "mosquitto", "prometheus", *agents] + (["nodered"] if nodered else []), "api", [3002])
    add(["prometheus"], "ingestion", [3003])
    add(["gateway", "api", *agents] + (["nodered"] if nodered else []), "mosquitto", [1883])
    if tls:
        add(["gateway", *agents], "mosquitto", [8883])
    add(["gateway"], "mosquitto", [9001])
    add(
        ["api", "ingestion"] + (["redis", "redis-cluster-init", "redis-cluster-repair"] if cluster else []),
        "redis",
        [6379],
    )
    if cluster:
        add(["redis", "redis-cluster-init"], "redis", [16379])
        if env.monitoring.enabled:
            add(["prometheus"], "redis", [9121])  # the redis_exporter sidecars
    add(["gateway"], "dashboard", [8080])
    if nodered:
        add(["gateway"], "nodered", [env.nodered.port])
    # Fleet namespaces: agents <-> simulators on the protocol ports, agents -> DNS.
    for f in fleets:
        add([f"agent@{f}"], f"simulator@{f}", [4840, 502])
        add([f"simulator@{f}"], f"simulator@{f}", [4840, 502])
        for s in (f"agent@{f}", f"simulator@{f}"):
            add([s], "dns", [53], "UDP")
            add([s], "dns", [53])
        add([f"simulator@{f}"], "mosquitto", [1883] + ([8883] if tls else []))
        add([f"simulator@{f}"], "api", [3002])
    if egress:
        # Egress out of the release namespace: exactly these.
        for s in (
            ["api", "ingestion", "mosquitto"]
            + (["nodered"] if nodered else [])
            + (["redis-cluster-init", "redis-cluster-repair"] if cluster else [])
        ):
            add([s], "dns", [53], "UDP")
            add([s], "dns", [53])
        add(["api", "ingestion"], "database", [5432])
        add(["api"], "provisioning", [3100])
        # The lifecycle hook Jobs: SQL jobs reach the database; Secret jobs reach the Kubernetes API.
        sql_jobs = [j for j in ("db-init", "timescaledb-policy", "platform-config", "api-migrations") if j in pods]
        secret_jobs = [j for j in ("stream-key-resolver", "redis-auth-generator") if j in pods]
        for s in sql_jobs:
            add([s], "dns", [53], "UDP")
            add([s], "dns", [53])
        add(sql_jobs, "database", [5432])
        kube = ["api", *secret_jobs]
        add(kube, "kube-apiserver", [443, 6443])
        # The Kubernetes API rule (network.kubernetesApi.cidr, 0.0.0.0/0 by default) covers 443 elsewhere.
        add(kube, "internet", [443])
        add(kube, "other-kube-system", [443])
    return flows


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # Node-RED on, Redis Cluster: every optional flow at once.
    "enterprise+nodered": ("iotistica-enterprise", {"nodered": {"enabled": True}}),
    # Ingress isolation only; a database by CIDR; Node-RED on (read-only root); no OpenAI.
    "demo-ingress-only": (
        "client-demo",
        {
            "nodered": {"enabled": True, "readOnlyRootFilesystem": True},
            "network": {"defaultDenyEgress": False, "database": {"namespace": None, "cidr": "10.20.0.0/16"}},
            "api": {"aiProvider": "ollama"},
        },
    ),
    # The old Helm chart's selector labels on every long-running workload (migration compatibility).
    "iotistica+helm-selectors": ("iotistica", {"migration": {"selectorLabels": "helm"}}),
    "enterprise+nodered+helm-selectors": (
        "iotistica-enterprise",
        {"nodered": {"enabled": True}, "migration": {"selectorLabels": "helm"}},
    ),
}


@pytest.fixture(scope="module")
def variants() -> dict[str, tuple[Environment, list[dict]]]:
    out = {}
    for key, (release, overrides) in VARIANTS.items():
        env = env_from(release, **overrides)
        out[key] = (env, synth_env(env))
    return out


@pytest.fixture(scope="module")
def all_envs(manifests, environments, variants) -> dict[str, tuple[Environment, list[dict]]]:
    return {**{r: (environments[r], manifests[r]) for r in manifests}, **variants}


ALL = ["client-demo", "iotistica", "iotistica-enterprise", "iotistica-starter", *VARIANTS]


# --------------------------------------------------------------------------------------------------
# Network: flows
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ALL)
def test_only_the_api_and_ingestion_reach_redis(all_envs, key) -> None:
    env, objs = all_envs[key]
    cluster, eps = world(env, objs)
    redis = eps["redis"]
    reach = {name for name, src in eps.items() if cluster.allows(src, redis, 6379)}
    peers = {"redis", "redis-cluster-init"} if env.redis.cluster.enabled else set()
    # The repair CronJob speaks only the client protocol: CLUSTER commands and redis-cli --cluster.
    repair = {"redis-cluster-repair"} if env.redis.cluster.enabled else set()
    assert reach == {"api", "ingestion"} | peers | repair
    if env.redis.cluster.enabled:
        assert {name for name, src in eps.items() if cluster.allows(src, redis, 16379)} == peers


@pytest.mark.parametrize("key", ALL)
def test_the_broker_reaches_the_api_auth_callback(all_envs, key) -> None:
    env, objs = all_envs[key]
    cluster, eps = world(env, objs)
    assert cluster.allows(eps["mosquitto"], eps["api"], 3002)
    assert not cluster.allows(eps["mosquitto"], eps["redis"], 6379)
    if env.network.default_deny_egress:
        assert not cluster.allows(eps["mosquitto"], eps["database"], 5432)


@pytest.mark.parametrize("key", ALL)
def test_permitted_connections_are_exactly_the_expected_flows(all_envs, key) -> None:
    env, objs = all_envs[key]
    got = permitted(env, objs)
    want = expected_flows(env, {pod_key(pod_labels(o)) for o, _ in pod_specs(objs)})
    if not env.network.default_deny_egress:
        # Egress is open: drop connections that only egress isolation would have refused, i.e. those
        # from a release pod to a destination that is not isolated for ingress.
        cluster, eps = world(env, objs)
        got = {f for f in got if not (_in_release(env, eps[f[0]]) and not _ingress_isolated(cluster, eps[f[1]]))}
    assert sorted(got - want) == [], "permitted but not expected"
    assert sorted(want - got) == [], "expected but not permitted"


def _in_release(env: Environment, ep: Pod | Host) -> bool:
    return isinstance(ep, Pod) and ep.namespace == env.namespace


def _ingress_isolated(cluster: Cluster, ep: Pod | Host) -> bool:
    return isinstance(ep, Pod) and bool(cluster.policies_for(ep, "Ingress"))


@pytest.mark.parametrize("key", ALL)
def test_default_deny_covers_every_pod(all_envs, key) -> None:
    env, objs = all_envs[key]
    deny = by(objs, "NetworkPolicy", f"{env.release}-default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    types = ["Ingress", "Egress"] if env.network.default_deny_egress else ["Ingress"]
    assert deny["spec"]["policyTypes"] == types
    if not env.network.default_deny_egress:
        assert all(
            "Egress" not in p["spec"]["policyTypes"]
            for p in kinds(objs, "NetworkPolicy")
            if p["metadata"]["namespace"] == env.namespace
        )


@pytest.mark.parametrize("key", ALL)
def test_every_pod_is_placed_in_the_flow_table(all_envs, key) -> None:
    """A pod no allow-policy selects can talk to nothing: a new workload must be added to FLOWS."""
    env, objs = all_envs[key]
    if not env.network.default_deny_egress:
        pytest.skip("egress is open: a pod with outbound flows only needs no policy")
    allow = [
        p
        for p in kinds(objs, "NetworkPolicy")
        if p["metadata"]["namespace"] == env.namespace and p["spec"]["podSelector"] != {}
    ]
    for o, _spec in pod_specs(objs):
        labels = pod_labels(o)
        selected = [
            p for p in allow if all(labels.get(k) == v for k, v in p["spec"]["podSelector"]["matchLabels"].items())
        ]
        assert selected, (
            f"{o['kind']}/{o['metadata']['name']}: no flow in constructs/isolation/network_policies.py FLOWS"
        )


def test_settings_move_the_peers() -> None:
    env = env_from(
        "iotistica",
        network={
            "gatewayNamespace": "gw",
            "prometheusNamespace": "prom",
            "database": {"namespace": "pg", "port": 6432},
            "kubernetesApi": {"cidr": "192.168.10.0/24", "ports": [6443]},
            "agentNamespaces": [],
        },
        api={"provisioningApiUrl": "https://provisioning.example.com"},
    )
    objs = synth_env(env)
    cluster, eps = world(env, objs)
    assert isinstance(eps["gateway"], Pod) and eps["gateway"].namespace == "gw"
    assert cluster.allows(eps["gateway"], eps["api"], 3002)
    assert cluster.allows(eps["prometheus"], eps["ingestion"], 3003)
    stranger = Pod("old-gateway", "envoy-gateway-system", {NAME: "envoy"}, "10.244.9.9")
    assert not cluster.allows(stranger, eps["api"], 3002)
    db = Pod("pg", "pg", {}, "10.244.9.10", ((6432, "TCP"),))
    assert cluster.allows(eps["api"], db, 6432) and not cluster.allows(eps["api"], db, 5432)
    assert cluster.allows(eps["api"], eps["kube-apiserver"], 6443)
    assert not cluster.allows(eps["api"], eps["kube-apiserver"], 443)
    assert "agent@virtual-agents" not in eps
    # An external provisioning API: HTTPS to public addresses only, never into the cluster.
    api_policy = by(objs, "NetworkPolicy", f"{env.release}-api")
    rules = [r for r in api_policy["spec"]["egress"] if r["ports"] == [{"port": 443, "protocol": "TCP"}]]
    assert rules and all(r["to"][0]["ipBlock"]["except"] for r in rules)


# --------------------------------------------------------------------------------------------------
# Fleet namespaces
# --------------------------------------------------------------------------------------------------


def test_shipped_iotistica_has_a_working_fleet_namespace(manifests, environments) -> None:
    env, objs = environments["iotistica"], manifests["iotistica"]
    assert env.fleet_namespaces.enabled and env.fleet_namespaces.fleets
    fleet = env.fleet_namespaces.fleets[0]
    ns = f"fleet-{env.namespace}-{fleet.name}"
    namespace = by(objs, "Namespace", ns)
    labels = namespace["metadata"]["labels"]
    assert labels["iotistica.com/fleet-namespace"] == "true"
    assert labels["iotistica.com/customer-id"] == env.namespace
    assert labels["iotistica.com/max-agents"] == str(fleet.max_agents)
    assert labels["iotistica.com/max-devices"] == str(fleet.devices)
    assert labels["iotistica.com/fleet-type"] == "virtual"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert {"iotistica.com/description", "iotistica.com/created-by", "iotistica.com/quota-policy"} <= set(
        namespace["metadata"]["annotations"]
    )
    inside = [o for o in objs if o["metadata"].get("namespace") == ns]
    assert sorted(o["kind"] for o in inside) == ["LimitRange", "NetworkPolicy", "ResourceQuota", "RoleBinding"]


def test_quota_follows_the_seed_per_agent_slot(manifests, environments) -> None:
    env = environments["iotistica"]
    fleet = env.fleet_namespaces.fleets[0]
    n = fleet.max_agents
    quota = by(manifests["iotistica"], "ResourceQuota", f"iotistica-fleet-{fleet.name}")
    assert quota["metadata"]["namespace"] == f"fleet-iotistica-{fleet.name}"
    assert quota["spec"]["hard"] == {
        "requests.cpu": f"{300 * n}m",
        "requests.memory": f"{480 * n}Mi",
        "limits.cpu": "2000m",
        "limits.memory": "4Gi",
        "pods": str(n),
        "persistentvolumeclaims": str(n),
        "services": str(n),
        "secrets": str(5 * n),
        "configmaps": str(2 * n),
    }


def test_quota_arithmetic_and_overrides() -> None:
    env = env_from(
        "client-demo",
        fleetNamespaces={
            "enabled": True,
            "fleets": [
                {"name": "a", "maxAgents": 7},
                {"name": "b", "maxAgents": 3, "quota": {"memoryRequestPerAgent": "512Mi", "cpuLimit": "3"}},
            ],
        },
    )
    objs = synth_env(env)
    a = by(objs, "ResourceQuota", "client-demo-fleet-a")["spec"]["hard"]
    assert (a["requests.cpu"], a["requests.memory"], a["secrets"], a["configmaps"]) == ("2100m", "3360Mi", "35", "14")
    b = by(objs, "ResourceQuota", "client-demo-fleet-b")["spec"]["hard"]
    assert (b["requests.cpu"], b["requests.memory"], b["limits.cpu"]) == ("900m", "1536Mi", "3")
    assert by(objs, "Namespace", "fleet-demo-a")["metadata"]["labels"]["iotistica.com/customer-id"] == "demo"


def test_limit_range_defaults(manifests) -> None:
    lr = by(manifests["iotistica"], "LimitRange", "iotistica-fleet-pilot")
    container, pod = lr["spec"]["limits"]
    assert container == {
        "type": "Container",
        "default": {"cpu": "100m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "50m", "memory": "64Mi"},
        "max": {"cpu": "1000m", "memory": "1Gi"},
        "min": {"cpu": "25m", "memory": "32Mi"},
    }
    assert pod == {"type": "Pod", "max": {"cpu": "800m", "memory": "2Gi"}}


def test_fleet_policy_reaches_the_release_broker_through_a_namespace_selector(manifests, environments) -> None:
    """The old chart's ``podSelector: {}`` egress matched only the fleet's own namespace."""
    env, objs = environments["iotistica"], manifests["iotistica"]
    cluster, eps = world(env, objs)
    agent = eps["agent@pilot"]
    assert cluster.allows(agent, eps["mosquitto"], 1883) and cluster.allows(agent, eps["mosquitto"], 8883)
    assert cluster.allows(agent, eps["api"], 3002)
    assert not cluster.allows(agent, eps["redis"], 6379)
    assert not cluster.allows(agent, eps["internet"], 443)
    assert cluster.allows(agent, eps["simulator@pilot"], 4840)
    assert not cluster.allows(eps["intruder-default"], eps["simulator@pilot"], 4840)
    assert not cluster.allows(eps["agent@virtual-agents"], eps["simulator@pilot"], 4840)
    policy = by(objs, "NetworkPolicy", "iotistica-fleet-pilot")
    broker_rule = policy["spec"]["egress"][0]
    assert broker_rule["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "iotistica"}}


def test_fleet_network_policy_is_optional() -> None:
    env = env_from(
        "client-demo",
        fleetNamespaces={
            "enabled": True,
            "fleets": [{"name": "x", "maxAgents": 2, "networkPolicy": {"enabled": False}}],
        },
    )
    objs = synth_env(env)
    assert [o["kind"] for o in objs if o["metadata"].get("namespace") == "fleet-demo-x"] == [
        "ResourceQuota",
        "LimitRange",
        "RoleBinding",
    ]


# --- model validation: exact key paths -------------------------------------------------------------


def fleets(*items: dict) -> dict:
    return {**BASE, "fleetNamespaces": {"enabled": True, "fleets": list(items)}}


def test_fleet_namespace_longer_than_63_is_refused_at_its_path(tmp_path: Path) -> None:
    name = "n" * 52  # fleet-acme- (11) + 52 = 63: fits
    assert load_environment(_write(tmp_path, fleets({"name": name, "maxAgents": 1}))).fleet_namespaces.fleets
    msg = error_of(tmp_path, fleets({"name": "ok", "maxAgents": 1}, {"name": name + "x", "maxAgents": 1}))
    assert msg == (
        "environments/acme.yaml: fleetNamespaces.fleets.1.name: the fleet namespace "
        f"'fleet-acme-{name}x' must be a DNS-1123 label of at most 63 characters, got 64; "
        "use a name of at most 52 characters (line 7)"
    )


def test_fleet_object_names_must_fit_too(tmp_path: Path) -> None:
    data = {**fleets({"name": "f" * 30, "maxAgents": 1}), "release": "a" * 30, "namespace": "n"}
    path = tmp_path / f"{'a' * 30}.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load_environment(path, "e.yaml")
    assert str(exc.value).startswith(f"e.yaml: fleetNamespaces.fleets.0.name: the object name '{'a' * 30}-fleet-")


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "data, expected",
    [
        (fleets({"name": "Bad_Name", "maxAgents": 1}), "fleetNamespaces.fleets.0.name: must be a DNS-1123 label"),
        (fleets({"name": "a", "maxAgents": 1}, {"name": "a", "maxAgents": 2}), "fleetNamespaces.fleets.1.name: 'a' is"),
        (fleets({"name": "a", "maxAgents": 0}), "fleetNamespaces.fleets.0.maxAgents: input should be greater"),
        ({**BASE, "fleetNamespaces": {"enabled": True}}, "fleetNamespaces.fleets: must list at least one fleet"),
        (
            fleets({"name": "a", "maxAgents": 1, "limitRange": {"defaultCpu": "20m"}}),
            "fleetNamespaces.fleets.0.limitRange.defaultCpu: must be >= defaultRequestCpu (50m), got 20m",
        ),
        (
            {**BASE, "network": {"database": {"namespace": None}}},
            "network.database.namespace: set a namespace or a cidr",
        ),
        ({**BASE, "network": {"kubernetesApi": {"cidr": "10.0.0.1/8"}}}, "network.kubernetesApi.cidr: must be a CIDR"),
        (
            {**BASE, "network": {"internet": {"cidr": "10.0.0.0/8", "exceptCidrs": ["192.168.0.0/16"]}}},
            "network.internet.exceptCidrs.0: must lie inside cidr (10.0.0.0/8)",
        ),
        ({**BASE, "api": {"provisioningApiUrl": "http://provisioning:3100"}}, "api.provisioningApiUrl: must be a"),
    ],
)
def test_model_rules(tmp_path: Path, data: dict, expected: str) -> None:
    assert error_of(tmp_path, data).startswith(f"environments/acme.yaml: {expected}")


# --------------------------------------------------------------------------------------------------
# RBAC
# --------------------------------------------------------------------------------------------------

RBAC = "rbac.authorization.k8s.io"
FLEET_ROLE = "iotistic-fleet-namespace-manager"
AGENT_ROLE = "iotistic-virtual-agent-manager"
#: platform-facts §11, "RBAC verbs the deployer code uses", copied by hand.
FACTS = {
    ("", "namespaces"): {"get", "create", "patch"},
    ("", "resourcequotas"): {"list", "create"},
    ("", "secrets"): {"create", "get", "update", "delete"},
    ("", "persistentvolumeclaims"): {"create", "delete"},
    ("apps", "deployments"): {"create", "get", "update", "patch", "delete"},
    ("", "events"): {"list"},
    ("", "pods"): {"list", "delete"},
    (RBAC, "rolebindings"): {"create"},
}
#: RBAC escalation prevention: creating a RoleBinding to the fleet role needs `bind` on it.
BIND = {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": [FLEET_ROLE]}


def _role_table(role: dict) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        if rule == BIND:
            continue
        assert "resourceNames" not in rule, rule
        for g, r in itertools.product(rule["apiGroups"], rule["resources"]):
            table.setdefault((g, r), set()).update(rule["verbs"])
    return table


def test_cluster_roles_grant_exactly_the_deployer_verbs(cluster_manifests) -> None:
    roles = {o["metadata"]["name"]: o for o in kinds(cluster_manifests, "ClusterRole")}
    assert set(roles) == {FLEET_ROLE, AGENT_ROLE}
    fleet, agent = _role_table(roles[FLEET_ROLE]), _role_table(roles[AGENT_ROLE])
    assert not set(fleet) & set(agent), "each call is granted by one role only"
    assert {**fleet, **agent} == FACTS
    # Cluster-level: calls on namespaces, and those in a namespace the API has just created.
    assert set(agent) == {("", "namespaces"), ("", "resourcequotas"), (RBAC, "rolebindings")}
    assert [r for r in roles[AGENT_ROLE]["rules"] if r == BIND] == [BIND]
    assert BIND not in roles[FLEET_ROLE]["rules"]


def test_no_role_anywhere_uses_wildcards(cluster_manifests, all_envs) -> None:
    objs = list(cluster_manifests) + [o for _env, objs in all_envs.values() for o in objs]
    for o in objs:
        if o["kind"] in ("Role", "ClusterRole"):
            for rule in o["rules"]:
                for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(key, []), f"{o['kind']}/{o['metadata']['name']}: {rule}"


@pytest.mark.parametrize("key", ALL)
def test_every_release_binds_its_api_to_the_roles(all_envs, cluster_manifests, key) -> None:
    env, objs = all_envs[key]
    cluster_roles = {o["metadata"]["name"] for o in kinds(cluster_manifests, "ClusterRole")}
    crb = by(objs, "ClusterRoleBinding", f"{env.release}-virtual-agent-manager")
    assert crb["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": AGENT_ROLE}
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": env.namespace}]
    for rb in kinds(objs, "RoleBinding"):
        if rb["roleRef"]["name"] == FLEET_ROLE:
            assert rb["metadata"]["namespace"].startswith(f"fleet-{env.namespace}-")
            assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "iotistic-api", "namespace": env.namespace}]
    for b in kinds(objs, "RoleBinding") + kinds(objs, "ClusterRoleBinding"):
        if b["roleRef"]["kind"] == "ClusterRole":
            assert b["roleRef"]["name"] in cluster_roles, f"{b['metadata']['name']} -> missing ClusterRole"
    if env.fleet_namespaces.enabled:
        assert len([rb for rb in kinds(objs, "RoleBinding") if rb["roleRef"]["name"] == FLEET_ROLE]) == len(
            env.fleet_namespaces.fleets
        )


class Authorizer:
    """RBAC as the API server evaluates it, for one ServiceAccount (no aggregation, no groups)."""

    def __init__(self, roles: list[dict], bindings: list[dict], sa: tuple[str, str]) -> None:
        self.roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in roles}
        self.bindings = list(bindings)
        self.sa = sa

    def _rules_in(self, namespace: str | None) -> list[dict]:
        rules: list[dict] = []
        for b in self.bindings:
            if not any(s["kind"] == "ServiceAccount" and (s["namespace"], s["name"]) == self.sa for s in b["subjects"]):
                continue
            if b["kind"] == "RoleBinding" and b["metadata"]["namespace"] != namespace:
                continue
            ref = b["roleRef"]
            role_ns = None if ref["kind"] == "ClusterRole" else b["metadata"]["namespace"]
            role = self.roles.get((ref["kind"], role_ns, ref["name"]))
            rules += role["rules"] if role else []
        return rules

    def can(self, verb: str, group: str, resource: str, namespace: str | None, name: str | None = None) -> bool:
        for rule in self._rules_in(namespace):
            if (
                group in rule["apiGroups"]
                and resource in rule["resources"]
                and verb in rule["verbs"]
                and (not rule.get("resourceNames") or name in rule["resourceNames"])
            ):
                return True
        return False

    def create_rolebinding(self, namespace: str, cluster_role: str) -> bool:
        """RoleBinding create, with the API server's escalation check; on success the binding exists."""
        if not self.can("create", RBAC, "rolebindings", namespace):
            return False
        role = self.roles.get(("ClusterRole", None, cluster_role))
        holds = role is not None and all(
            self.can(v, g, r, namespace)
            for rule in role["rules"]
            for g, r, v in itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"])
        )
        if not (holds or self.can("bind", RBAC, "clusterroles", None, cluster_role)):
            return False
        self.bindings.append(
            {
                "kind": "RoleBinding",
                "metadata": {"namespace": namespace, "name": "fleet-manager-binding"},
                "roleRef": {"kind": "ClusterRole", "name": cluster_role},
                "subjects": [{"kind": "ServiceAccount", "namespace": self.sa[0], "name": self.sa[1]}],
            }
        )
        return True


NAMESPACED_CALLS = [
    (verb, g, r) for (g, r), verbs in FACTS.items() if r not in ("namespaces",) for verb in sorted(verbs)
]
CLUSTER_ADMIN = {
    "kind": "ClusterRole",
    "metadata": {"name": "cluster-admin"},
    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
}


def _authorizer(env: Environment, objs: list[dict], cluster_manifests: list[dict]) -> Authorizer:
    roles = kinds(cluster_manifests, "ClusterRole") + kinds(objs, "Role") + [CLUSTER_ADMIN]
    bindings = kinds(objs, "RoleBinding") + kinds(objs, "ClusterRoleBinding")
    return Authorizer(roles, bindings, (env.namespace, "iotistic-api"))


def test_the_deployer_can_create_and_run_its_own_fleet_namespace(manifests, environments, cluster_manifests) -> None:
    env = environments["iotistica"]
    authz = _authorizer(env, manifests["iotistica"], cluster_manifests)
    ns = "fleet-1a2b3c4d"  # createFleetNamespace: fleet-<uuid[0:8]>
    assert authz.can("get", "", "namespaces", None, ns)
    assert authz.can("create", "", "namespaces", None)
    assert authz.can("create", "", "resourcequotas", ns) and authz.can("list", "", "resourcequotas", ns)
    assert not authz.can("create", "", "secrets", ns), "nothing inside before the RoleBinding"
    assert authz.create_rolebinding(ns, FLEET_ROLE)
    for verb, group, resource in NAMESPACED_CALLS:
        assert authz.can(verb, group, resource, ns), (verb, group, resource)
    assert authz.can("patch", "", "namespaces", None, ns), "soft delete labels"


def test_the_deployer_works_in_a_chart_provisioned_fleet(manifests, environments, cluster_manifests) -> None:
    env = environments["iotistica"]
    objs = [o for o in manifests["iotistica"] if o["kind"] != "ClusterRoleBinding"]  # namespace grants only
    authz = _authorizer(env, objs, cluster_manifests)
    ns = env.fleet_namespace(env.fleet_namespaces.fleets[0].name)
    for verb, group, resource in NAMESPACED_CALLS:
        if (group, resource) in {("", "resourcequotas"), (RBAC, "rolebindings")}:
            continue  # cluster-level: only needed in namespaces the API creates itself
        assert authz.can(verb, group, resource, ns), (verb, group, resource)


@pytest.mark.parametrize("key", ALL)
def test_the_api_cannot_do_more(all_envs, cluster_manifests, key) -> None:
    env, objs = all_envs[key]
    authz = _authorizer(env, objs, cluster_manifests)
    assert not authz.can("get", "", "secrets", env.namespace)
    assert not authz.can("get", "", "secrets", "kube-system")
    assert not authz.can("list", "", "secrets", "fleet-1a2b3c4d")
    assert not authz.can("delete", "", "namespaces", None, "kube-system")
    assert not authz.can("create", "apps", "deployments", env.namespace)
    assert not authz.can("update", "", "resourcequotas", "kube-system")
    assert not authz.create_rolebinding("kube-system", "cluster-admin"), "escalation must be refused"
    assert not authz.can("bind", RBAC, "clusterroles", None, "cluster-admin")


# --------------------------------------------------------------------------------------------------
# Pod security: the Kubernetes restricted profile (v1.27), plus our stricter rules
# --------------------------------------------------------------------------------------------------

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def exceptions(env: Environment) -> dict[str, set[str]]:
    """Pod name label -> the rules of ours the model exempts it from (documented in tiers/models/core.py)."""
    out: dict[str, set[str]] = {}
    if env.nodered.enabled and not env.nodered.read_only_root_filesystem:
        out["nodered"] = {"readOnlyRootFilesystem"}
    return out


def restricted_violations(obj: dict, spec: dict, exempt: set[str]) -> list[str]:
    bad: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            bad.append(field)
    psc = spec.get("securityContext", {})
    containers = spec.get("initContainers", []) + spec["containers"] + spec.get("ephemeralContainers", [])
    if psc.get("sysctls"):
        bad.append("sysctls")
    for v in spec.get("volumes", []):
        kind = set(v) - {"name"}
        if not kind <= RESTRICTED_VOLUMES:
            bad.append(f"volume {v['name']}: {sorted(kind)}")
    # Our rule: numeric, non-root uid and gid at pod level (the api/ingestion images name no numeric USER).
    for key in ("runAsUser", "runAsGroup"):
        if not (isinstance(psc.get(key), int) and psc[key] > 0):
            bad.append(f"pod {key}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in containers:
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("privileged"):
            bad.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{where}: allowPrivilegeEscalation")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            bad.append(f"{where}: drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{where}: capabilities.add")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            bad.append(f"{where}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{where}: runAsUser 0")
        if sc.get("seccompProfile", {}).get("type", pod_seccomp) not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: seccompProfile")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{where}: procMount")
        se = sc.get("seLinuxOptions", psc.get("seLinuxOptions", {}))
        if (
            se.get("user")
            or se.get("role")
            or se.get("type", "container_t")
            not in (
                "container_t",
                "container_init_t",
                "container_kvm_t",
            )
        ):
            bad.append(f"{where}: seLinuxOptions")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            bad.append(f"{where}: hostPort")
        if sc.get("readOnlyRootFilesystem") is not True and "readOnlyRootFilesystem" not in exempt:
            bad.append(f"{where}: readOnlyRootFilesystem (ours)")
    annotations = pod_template(obj)["metadata"].get("annotations", {})
    if any("apparmor" in k and v == "unconfined" for k, v in annotations.items()):
        bad.append("AppArmor unconfined")
    return bad


@pytest.mark.parametrize("key", ALL)
def test_every_pod_meets_the_restricted_profile(all_envs, key) -> None:
    env, objs = all_envs[key]
    exempt = exceptions(env)
    for o, spec in pod_specs(objs):
        name = pod_key(pod_labels(o))
        assert restricted_violations(o, spec, exempt.get(name, set())) == [], f"{o['kind']}/{o['metadata']['name']}"
        if name in exempt:
            note = o["metadata"].get("annotations", {}).get("iotistica.com/security-exception", "")
            assert all(rule in note for rule in exempt[name]), "an exception is annotated on its workload"


@pytest.mark.parametrize("key", ALL)
def test_exceptions_are_minimal(all_envs, key) -> None:
    """Only the model's declared exceptions exist: nothing else is annotated or relaxed."""
    env, objs = all_envs[key]
    exempt = exceptions(env)
    assert set(exempt) <= {"nodered"}
    for o, spec in pod_specs(objs):
        name = pod_key(pod_labels(o))
        annotated = "iotistica.com/security-exception" in o["metadata"].get("annotations", {})
        assert annotated == (name in exempt), o["metadata"]["name"]
        assert restricted_violations(o, spec, set()) == (
            [f"container {c['name']}: readOnlyRootFilesystem (ours)" for c in spec["containers"]]
            if name in exempt
            else []
        )


def test_the_checker_catches_violations() -> None:
    """The restricted checker is not vacuous."""
    spec = {
        "hostNetwork": True,
        "securityContext": {"runAsUser": 0, "runAsGroup": 0},
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "c",
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
            }
        ],
    }
    obj: dict[str, Any] = {"spec": {"template": {"metadata": {}}}}
    bad = restricted_violations(obj, spec, set())
    for needle in (
        "hostNetwork",
        "volume h",
        "pod runAsUser",
        "privileged",
        "allowPrivilegeEscalation",
        "drop ALL",
        "capabilities.add",
        "runAsNonRoot",
        "runAsUser 0",
        "seccompProfile",
        "hostPort",
        "readOnlyRootFilesystem",
    ):
        assert any(needle in b for b in bad), needle


@pytest.mark.parametrize("key", ALL)
def test_release_namespace_enforces_restricted(all_envs, key) -> None:
    env, objs = all_envs[key]
    ns = by(objs, "Namespace", env.namespace)
    labels = ns["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert ns["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
    assert "namespace" not in ns["metadata"]


def test_node_red_exception_can_be_lifted() -> None:
    objs = synth_env(env_from("client-demo", nodered={"enabled": True, "readOnlyRootFilesystem": True}))
    nr = by(objs, "Deployment", "client-demo-nodered")
    assert "iotistica.com/security-exception" not in nr["metadata"].get("annotations", {})
    assert nr["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_network_can_be_switched_off() -> None:
    objs = synth_env(env_from("client-demo", network={"enabled": False}))
    assert kinds(objs, "NetworkPolicy") == []
