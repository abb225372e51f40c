"""`iotistica-k8s graph`: the topology drawn from dist/, rendered by the real Graphviz `dot`.

The SVG is parsed back (xml.etree): every flow edge carries the flows it stands for in its id, and
those must equal, exactly, the connections the NetworkPolicies of dist/ allow (evaluated here with
ops.netpol over the picture's endpoints); flows a default-deny refuses have no edge.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops import graph
from ops.netpol import Cluster, Pod

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
CLI = [sys.executable, str(ROOT / "cli.py")]
SVG = "{http://www.w3.org/2000/svg}"
ENTERPRISE = "iotistica-enterprise"
RELEASES = graph.releases(DIST)

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="scripts/ensure-system-deps.sh installs graphviz")


def svg_of(t: graph.Topology) -> ET.Element:
    data = graph.render(t, "svg")
    return ET.fromstring(data)


def parsed(root: ET.Element) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    """(DOT name -> node id) and every edge as (class, id, tail id, head id)."""
    names: dict[str, str] = {}
    for g in root.iter(f"{SVG}g"):
        if "node" in (g.get("class") or "").split():
            names[g.findtext(f"{SVG}title") or ""] = g.get("id") or ""
    edges = []
    for g in root.iter(f"{SVG}g"):
        classes = (g.get("class") or "").split()
        if "edge" not in classes:
            continue
        title = g.findtext(f"{SVG}title") or ""
        tail, _, head = title.partition("->")
        edges.append(
            (
                " ".join(c for c in classes if c != "edge"),
                g.get("id") or "",
                names.get(tail, tail),
                names.get(head, head),
            )
        )
    return names, edges


def evaluated(t: graph.Topology, release: str) -> set[graph.Flow]:
    """Every allowed connection over the picture's endpoints, from the policy files read here."""
    objs = [
        d
        for f in sorted((DIST / release).glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if isinstance(d, dict)
    ]
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    ns_labels = {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in objs if o["kind"] == "Namespace"}
    assert t.cluster is not None
    cluster = Cluster(policies, {**t.cluster.namespace_labels, **ns_labels})
    governed = {p["metadata"]["namespace"] for p in policies}
    out = set()
    for (sid, src), (did, dst) in itertools.product(t.endpoints.items(), t.endpoints.items()):
        if not any(isinstance(e, Pod) and e.namespace in governed for e in (src, dst)):
            continue
        for port, proto in t.ports.get(did, []):
            if cluster.allows(src, dst, port, proto):
                out.add((sid, did, port, proto))
    return out


@pytest.fixture(scope="module")
def topologies() -> dict[str, graph.Topology]:
    return {r: graph.build(DIST, r) for r in RELEASES}


@pytest.fixture(scope="module")
def svgs(topologies) -> dict[str, ET.Element]:
    return {r: svg_of(t) for r, t in topologies.items()}


def wl(release: str, kind: str, name: str) -> str:
    return f"wl:{kind}/{release}-{name}"


# --------------------------------------------------------------------------------------------------
# Flows: the picture equals the evaluator
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_every_edge_is_an_allowed_flow_and_every_allowed_flow_has_an_edge(topologies, svgs, release) -> None:
    t = topologies[release]
    names, edges = parsed(svgs[release])
    drawn: set[graph.Flow] = set()
    for cls, eid, _tail, head in edges:
        if cls == "flow":
            flows = graph.parse_flow_id(eid)
            assert flows and all(f[1] == head for f in flows), eid
            drawn |= flows
    want = evaluated(t, release)
    assert want, "an environment without a single allowed flow is not a picture"
    assert sorted(drawn - want, key=str) == [], "drawn but not allowed"
    assert sorted(want - drawn, key=str) == [], "allowed but not drawn"
    # Merged edges: each source's part edge ends at a junction whose flow edge names that source.
    junction_flows = {head: graph.parse_flow_id(eid) for cls, eid, tail, head in edges if cls == "flow"}
    by_tail = {
        tail: graph.parse_flow_id(eid) for cls, eid, tail, _h in edges if cls == "flow" and tail.startswith("join:")
    }
    parts = [(tail, head) for cls, _e, tail, head in edges if cls == "flow-part"]
    for tail, head in parts:
        assert head.startswith("join:") and any(f[0] == tail for f in by_tail[head]), (tail, head)
    assert junction_flows


def test_default_deny_flows_have_no_edge(topologies, svgs) -> None:
    t, (_names, edges) = topologies[ENTERPRISE], parsed(svgs[ENTERPRISE])
    pairs = {(tail, head) for cls, _e, tail, head in edges if cls in ("flow", "flow-part")}
    api, dashboard = wl(ENTERPRISE, "Deployment", "api"), wl(ENTERPRISE, "Deployment", "dashboard")
    mosquitto, redis = wl(ENTERPRISE, "Deployment", "mosquitto"), wl(ENTERPRISE, "StatefulSet", "redis")
    # The dashboard has no egress rule: default-deny refuses everything it might open.
    assert not any(tail == dashboard for tail, _h in pairs)
    assert not any(f[0] == dashboard for f in t.flows)
    # The broker may reach the API's auth callback, never Redis.
    drawn = {f[:2] for cls, eid, _t, _h in edges if cls == "flow" for f in graph.parse_flow_id(eid)}
    assert (mosquitto, api) in drawn and (mosquitto, redis) not in drawn
    assert (dashboard, api) not in drawn
    assert not any(f[:2] == (mosquitto, redis) for f in t.flows)
    assert t.cluster is not None
    assert not t.cluster.allows(t.endpoints[mosquitto], t.endpoints[redis], 6379)
    # A pod no allow-policy selects (a debug pod in the namespace) talks to nothing and is not drawn.
    intruder = Pod("intruder", ENTERPRISE, {"run": "debug"}, "10.244.99.1")
    for ep in t.endpoints.values():
        for port, proto in t.ports.get(ep.name, []):
            assert not t.cluster.allows(intruder, ep, port, proto)


def test_enterprise_flows_inside_the_namespace_are_the_expected_ones(topologies) -> None:
    """Written out by hand from the seed's architecture, independently of the construct's flow table."""
    r = ENTERPRISE
    api, mosq = wl(r, "Deployment", "api"), wl(r, "Deployment", "mosquitto")
    ing, redis = wl(r, "StatefulSet", "ingestion"), wl(r, "StatefulSet", "redis")
    init = wl(r, "Job", "redis-cluster-init")
    repair = wl(r, "CronJob", "redis-cluster-repair")
    want = {
        (api, mosq, 1883, "TCP"),
        (api, redis, 6379, "TCP"),
        (ing, redis, 6379, "TCP"),
        (mosq, api, 3002, "TCP"),
        (redis, redis, 6379, "TCP"),
        (redis, redis, 16379, "TCP"),
        (init, redis, 6379, "TCP"),
        (init, redis, 16379, "TCP"),
        (repair, redis, 6379, "TCP"),  # the repair only talks to the nodes; they gossip among themselves
    }
    inside = {f for f in topologies[r].flows if f[0].startswith("wl:") and f[1].startswith("wl:")}
    assert inside == want


def test_peers_are_named_by_their_policies(topologies) -> None:
    t = topologies[ENTERPRISE]
    api = wl(ENTERPRISE, "Deployment", "api")
    gateway, dns = "peer:envoy-gateway-system/any pod", "peer:kube-system/k8s-app=kube-dns"
    db = "peer:iotistica-cnpg-cl01/any pod"
    assert (gateway, api, 3002, "TCP") in t.flows
    assert (api, dns, 53, "UDP") in t.flows and (api, dns, 53, "TCP") in t.flows
    assert (api, db, 5432, "TCP") in t.flows
    assert (wl(ENTERPRISE, "Job", "db-init"), db, 5432, "TCP") in t.flows
    assert "external PostgreSQL / TimescaleDB" in t.nodes[db].label
    assert any("sql-credentials-iotistica-enterprise" in line for line in t.nodes[db].label)
    public = "addr:0.0.0.0/0 except 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"
    assert (api, public, 443, "TCP") in t.flows
    assert not any(f[1] == public for f in t.flows if f[0] == wl(ENTERPRISE, "StatefulSet", "ingestion"))


# --------------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------------


def test_enterprise_nodes_present(topologies, svgs) -> None:
    names, _edges = parsed(svgs[ENTERPRISE])
    ids = set(names.values())
    r = ENTERPRISE
    for node in (
        "host:enterprise-api.iotistica.com",
        "host:enterprise.iotistica.com",
        "host:mqtt-enterprise.iotistica.com",
        "listener:envoy-gateway-system/iotistica-gateway/https",
        "listener:envoy-gateway-system/iotistica-gateway/mqtt-tls",
        f"route:HTTPRoute/{r}-api",
        f"route:HTTPRoute/{r}-dashboard",
        f"route:TLSRoute/{r}-mosquitto",
        f"svc:{r}/{r}-api",
        f"svc:{r}/{r}-mosquitto",
        wl(r, "Deployment", "api"),
        wl(r, "Deployment", "dashboard"),
        wl(r, "Deployment", "mosquitto"),
        wl(r, "StatefulSet", "ingestion"),
        wl(r, "StatefulSet", "redis"),
        wl(r, "Job", "db-init"),
        wl(r, "Job", "redis-auth-generator"),
        wl(r, "Job", "stream-key-resolver"),
        wl(r, "Job", "redis-cluster-init"),
        wl(r, "Job", "timescaledb-policy"),
        f"secret:{r}/{r}-redis-auth",
        f"secret:{r}/sql-credentials-{r}",
        "peer:kube-system/k8s-app=kube-dns",
        "peer:iotistica-cnpg-cl01/any pod",
    ):
        assert node in ids, node
    # Every object of dist/ is somewhere: its own node, or attached to the node it belongs to.
    t = topologies[r]
    text = "\n".join(line for n in t.nodes.values() for line in n.label)
    for f in sorted((DIST / r).glob("*.yaml")):
        kind, name = f.name.split(".")[0], f.name.split(".", 1)[1].removesuffix(".k8s.yaml")
        if kind in ("ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding", "NetworkPolicy"):
            continue  # the rights view; the policies are the flow edges
        assert name in text, f.name


def test_workloads_show_scale_and_resources(topologies) -> None:
    ent, starter, iot = topologies[ENTERPRISE], topologies["iotistica-starter"], topologies["iotistica"]
    api = ent.nodes[wl(ENTERPRISE, "Deployment", "api")].label
    assert "HPA 4..10 replicas" in api and any(line.startswith("api: 2000m/2Gi (limit 4000m/4Gi)") for line in api)
    assert "HPA 4..20 replicas" in ent.nodes[wl(ENTERPRISE, "StatefulSet", "ingestion")].label
    redis = ent.nodes[wl(ENTERPRISE, "StatefulSet", "redis")].label
    assert "Redis Cluster (6 nodes)" in redis and "6 replica(s)" in redis
    assert "Redis (single)" in starter.nodes[wl("iotistica-starter", "Deployment", "redis")].label
    assert "MQTT broker" in ent.nodes[wl(ENTERPRISE, "Deployment", "mosquitto")].label
    fleet = iot.nodes["ns:fleet-iotistica-pilot"]
    assert fleet.cluster == ("fleet namespaces", "namespace fleet-iotistica-pilot")
    assert any(
        line.startswith("quota ") and "pods 5" in line and "requests.memory 2400Mi" in line for line in fleet.label
    )


def test_hook_jobs_are_chained_in_sync_order(topologies, svgs) -> None:
    t = topologies[ENTERPRISE]
    _names, edges = parsed(svgs[ENTERPRISE])
    chain = dict((tail, head) for cls, _e, tail, head in edges if cls == "order")
    (first,) = set(chain) - set(chain.values())
    jobs = [first]
    while jobs[-1] in chain:
        jobs.append(chain[jobs[-1]])
    # db-init, redis-auth-generator, redis-cluster-init, stream-key-resolver, api-migrations, platform-config,
    # timescaledb-policy
    assert len(set(jobs)) == len(jobs) == 7
    waves = [int(re.search(r"wave (-?\d+)", " ".join(t.nodes[j].label)).group(1)) for j in jobs]  # type: ignore[union-attr]
    assert waves == sorted(waves) and waves[0] == -2 and waves[-1] == 1
    assert {t.nodes[j].cluster[-1] for j in jobs} == {"hook Jobs (sync order)"}


@pytest.mark.parametrize("release", RELEASES)
def test_secrets_are_marked_as_REQUIRED_SECRETS_says(topologies, release) -> None:
    t = topologies[release]
    table = (DIST / release / "REQUIRED-SECRETS.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|[^|]*\|[^|]*\| (.*?) \|$", table, re.M)
    assert rows
    for name, source in rows:
        node = t.nodes.get(f"secret:{t.namespace}/{name}")
        if node is None:
            continue  # listed for an optional feature whose workload is off
        operator = "create before the first sync" in source
        assert node.style == ("secret-operator" if operator else "secret-made"), (name, node.label)
    tls = t.nodes[f"secret:{t.namespace}/{release}-mosquitto-tls"]
    assert tls.style == "secret-made" and "cert-manager" in tls.label[1]


# --------------------------------------------------------------------------------------------------
# Rendering, CLI, docs
# --------------------------------------------------------------------------------------------------


def test_enterprise_png_through_the_cli(tmp_path) -> None:
    out = tmp_path / "enterprise.png"
    proc = subprocess.run([*CLI, "graph", ENTERPRISE, "-o", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and height > 500
    assert f"wrote {out} (png," in proc.stdout


def test_cli_formats_to_stdout() -> None:
    mer = subprocess.run([*CLI, "graph", "client-demo", "--format", "mermaid"], capture_output=True, text=True)
    assert mer.returncode == 0 and mer.stdout.startswith("flowchart LR\n")
    dot = subprocess.run([*CLI, "graph", "client-demo", "--format", "dot"], capture_output=True, text=True)
    assert dot.returncode == 0 and dot.stdout.startswith("digraph ")
    svg = subprocess.run([*CLI, "graph", "client-demo", "--view", "rights"], capture_output=True)
    assert svg.returncode == 0 and ET.fromstring(svg.stdout).tag == f"{SVG}svg"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["graph", "no-such-env"], "no synthesized release 'no-such-env'"),
        (["graph", "cluster"], "no synthesized release 'cluster'"),
        (["graph", "client-demo", "-o", "x.gif"], "x.gif: unknown format 'gif'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, argv, message) -> None:
    proc = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_mermaid_is_deterministic_and_has_every_flow_edge(topologies) -> None:
    t = topologies[ENTERPRISE]
    a, b = graph.to_mermaid(t), graph.to_mermaid(graph.build(DIST, ENTERPRISE))
    assert a == b
    flow_edges = [e for e in t.edges if e.kind == "flow"]
    assert len(re.findall(r"^  n\d+ -->\|", a, re.M)) >= len(flow_edges)
    assert a.count("subgraph ") == a.count("\n  end\n") + a.count("\n    end\n") + a.count("\n      end\n")


def test_docs_pages_are_current_and_check_catches_staleness(tmp_path) -> None:
    assert graph.topology_docs(DIST, ROOT / "docs" / "topology", check=True) == [], "run `iotistica-k8s docs`"
    out = tmp_path / "docs" / "topology"
    assert len(graph.topology_docs(DIST, out)) == len(RELEASES) + 1
    assert graph.topology_docs(DIST, out, check=True) == []
    page = out / f"{ENTERPRISE}.md"
    page.write_text(page.read_text().replace("-->", "---", 1))
    (out / "gone.md").write_text("old\n")
    assert sorted(graph.topology_docs(DIST, out, check=True)) == sorted(
        [str(page.relative_to(tmp_path)), str(out / "gone.md")]
    )
    assert "```mermaid\nflowchart LR\n" in page.read_text()


def test_a_release_owns_its_page_and_the_index_names_none(tmp_path) -> None:
    """Adding a client (`new`, `make synth`) leaves docs --check green: a release without a page is not
    stale, the index is the same for every fleet; `iotistica-k8s docs` then adds the new page."""
    out = tmp_path / "docs" / "topology"
    graph.topology_docs(DIST, out)
    assert (out / "README.md").read_text() == graph.TOPOLOGY_INDEX
    assert not any(f"({release}.md)" in graph.TOPOLOGY_INDEX for release in RELEASES)  # links to no page
    (out / f"{ENTERPRISE}.md").unlink()  # as for a client added since the pages were written
    assert graph.topology_docs(DIST, out, check=True) == []
    assert graph.topology_docs(DIST, out) == [str(out.relative_to(tmp_path) / f"{ENTERPRISE}.md")]
    assert (out / f"{ENTERPRISE}.md").read_text() == graph.mermaid_doc(graph.build(DIST, ENTERPRISE))


# --------------------------------------------------------------------------------------------------
# Generic over kinds; the rights view with admission policies
# --------------------------------------------------------------------------------------------------


def _copy(tmp_path: Path, release: str) -> Path:
    dist = tmp_path / "dist"
    shutil.copytree(DIST / release, dist / release)
    shutil.copytree(DIST / "cluster", dist / "cluster")
    return dist


def test_new_kinds_appear_without_code_changes(tmp_path) -> None:
    dist = _copy(tmp_path, "iotistica-starter")
    ns = "iotistica-starter"
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"{ns}-redis-repair", "namespace": ns},
        "spec": {
            "schedule": "*/10 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": "redis-repair"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "repair",
                                    "image": "redis:7.4.2-alpine",
                                    "env": [
                                        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "x-pass", "key": "p"}}}
                                    ],
                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                }
                            ]
                        },
                    }
                }
            },
        },
    }
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": ns}}
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "redis-repair"}}},
    }
    (dist / ns / "CronJob.repair.k8s.yaml").write_text(yaml.safe_dump(cron))
    (dist / ns / "Widget.w1.k8s.yaml").write_text(yaml.safe_dump_all([widget, budget]))
    t = graph.build(dist, ns)
    node = t.nodes[f"wl:CronJob/{ns}-redis-repair"]
    assert "CronJob schedule */10 * * * *" in node.label and "+ PodDisruptionBudget/pdb" in node.label
    assert f"secret:{ns}/x-pass" in t.nodes and t.nodes[f"secret:{ns}/x-pass"].style == "secret-operator"
    assert t.nodes["obj:Widget"].label == ["Widget", "w1"]
    # Default-deny applies to the new pod: no policy admits it, so it has no flow.
    assert not any(f"wl:CronJob/{ns}-redis-repair" in f[:2] for f in t.flows)
    root = svg_of(t)
    assert f"wl:CronJob/{ns}-redis-repair" in set(parsed(root)[0].values())


def test_rights_view_with_admission_policies(tmp_path) -> None:
    dist = _copy(tmp_path, "iotistica")
    vap: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "fleet-deployer-guardrail"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["namespaces"],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "deployer",
                    "expression": "request.userInfo.username == 'system:serviceaccount:iotistica:iotistic-api'",
                }
            ],
            "validations": [
                {"expression": "object.metadata.name.startsWith('fleet-')", "message": "fleet namespaces only"}
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "fleet-deployer-guardrail"},
        "spec": {"policyName": "fleet-deployer-guardrail", "validationActions": ["Deny"]},
    }
    lonely = {**vap, "metadata": {"name": "unbound"}, "spec": {**vap["spec"], "matchConditions": []}}
    # Another release's API: a name that contains this release's namespace must not count.
    other_user = "request.userInfo.username == 'system:serviceaccount:iotistica-enterprise:iotistic-api'"
    other = {
        **vap,
        "metadata": {"name": "other"},
        "spec": {**vap["spec"], "matchConditions": [{"name": "o", "expression": other_user}]},
    }
    other_binding = {
        **binding,
        "metadata": {"name": "other"},
        "spec": {"policyName": "other", "validationActions": ["Deny"]},
    }
    (dist / "cluster" / "in-cluster" / "ValidatingAdmissionPolicy.guard.k8s.yaml").write_text(
        yaml.safe_dump_all([vap, binding, lonely, other, other_binding])
    )
    t = graph.build(dist, "iotistica", view="rights")
    sa = "sa:iotistica/iotistic-api"
    assert "vap:fleet-deployer-guardrail" in t.nodes
    label = t.nodes["vap:fleet-deployer-guardrail"].label
    assert "CREATE,UPDATE namespaces" in label and "fleet namespaces only" in label
    assert any(line.endswith(": Deny") for line in label)
    assert any(line == "binding (none: not enforced): " for line in t.nodes["vap:unbound"].label)
    _names, edges = parsed(svg_of(t))
    confines = {(tail, head) for cls, _e, tail, head in edges if cls == "confines"}
    # The shipped guardrail (dist/cluster) matches every release's API user, so it confines this one too.
    shipped = {
        f"vap:{yaml.safe_load(f.read_text())['metadata']['name']}"
        for f in (dist / "cluster" / "in-cluster").glob("ValidatingAdmissionPolicy.iotistic-api-*.k8s.yaml")
    }
    assert shipped, "dist/cluster ships the API's admission guardrail"
    assert confines == {("vap:fleet-deployer-guardrail", sa)} | {(v, sa) for v in shipped}
    note = "confines: users its matchConditions name (none of this release's ServiceAccounts)"
    assert note in t.nodes["vap:other"].label
    binds = {(tail, head) for cls, _e, tail, head in edges if cls == "binds"}
    assert (sa, "binding:ClusterRoleBinding//iotistica-virtual-agent-manager") in binds
    assert (sa, "binding:RoleBinding/fleet-iotistica-pilot/iotistica-fleet-pilot") in binds
    cr = t.nodes["role:ClusterRole//iotistic-virtual-agent-manager"].label
    assert "core: namespaces: create,get,patch" in cr
    uses = {(tail, head) for cls, _e, tail, head in edges if cls == "uses"}
    assert ("wl:Deployment/iotistica-api", sa) in uses
    # Pods that do not mount a token are not in the rights view.
    assert "wl:Deployment/iotistica-dashboard" not in t.nodes


def test_without_policies_nothing_is_claimed_denied(tmp_path) -> None:
    """network.enabled: false writes no NetworkPolicy: every workload says it is open both ways."""
    dist = _copy(tmp_path, "client-demo")
    for f in (dist / "client-demo").glob("NetworkPolicy.*"):
        f.unlink()
    t = graph.build(dist, "client-demo")
    assert t.flows == set()
    workloads = [n for n in t.nodes.values() if n.id.startswith("wl:")]
    assert workloads
    for n in workloads:
        assert "ingress: open (no policy isolates it)" in n.label and "egress: open (no policy isolates it)" in n.label


def test_open_egress_is_labelled(tmp_path) -> None:
    """Ingress isolation only (network.defaultDenyEgress: false): workloads say egress is open, and
    their connections out are drawn to every stand-in that accepts them."""
    dist = _copy(tmp_path, "client-demo")
    for f in (dist / "client-demo").glob("NetworkPolicy.*"):
        p = yaml.safe_load(f.read_text())
        p["spec"]["policyTypes"] = [x for x in p["spec"]["policyTypes"] if x != "Egress"]
        p["spec"].pop("egress", None)
        if p["spec"]["policyTypes"]:
            f.write_text(yaml.safe_dump(p))
        else:
            f.unlink()
    t = graph.build(dist, "client-demo")
    for n in t.nodes.values():
        if n.id.startswith("wl:"):
            assert "egress: open (no policy isolates it)" in n.label, n.id
            assert "ingress: open (no policy isolates it)" not in n.label, n.id
    dashboard, api = "wl:Deployment/client-demo-dashboard", "wl:Deployment/client-demo-api"
    assert not any(f[:2] == (dashboard, api) for f in t.flows), "the API's ingress still refuses the dashboard"
    assert (api, "wl:Deployment/client-demo-mosquitto", 1883, "TCP") in t.flows
