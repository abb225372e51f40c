"""The rights view: a release's manifests (and dist/cluster/) in, a :class:`Topology` out: each
ServiceAccount, the pods that mount its token, its Roles/ClusterRoles and bindings, and the admission
policies that confine it.
"""

from __future__ import annotations

import re

import yaml

from ops.graph.model import (
    Manifest,
    Node,
    Topology,
    _meta,
    pod_template,
    ref,
)
from ops.graph.network import _Builder


def _rule_text(rule: Manifest) -> str:
    groups = ",".join(g or "core" for g in rule.get("apiGroups") or []) or "core"
    if rule.get("nonResourceURLs"):
        what = " ".join(rule["nonResourceURLs"])
    else:
        what = ",".join(rule.get("resources") or [])
        if rule.get("resourceNames"):
            what += " [" + ",".join(rule["resourceNames"]) + "]"
        what = f"{groups}: {what}"
    return f"{what}: {','.join(rule.get('verbs') or [])}"


def t_sas(t: Topology) -> set[tuple[str, str]]:
    """(namespace, name) of the ServiceAccounts drawn in a rights view."""
    out = set()
    for k in t.nodes:
        if k.startswith("sa:"):
            ns, _, name = k.removeprefix("sa:").partition("/")
            out.add((ns, name))
    return out


def _confines(text: str, ns: str, name: str) -> bool:
    """Whether an admission policy's text (CEL, match rules) names this ServiceAccount's user."""
    if f"system:serviceaccount:{ns}:{name}" in text or f"system:serviceaccount:{ns}:'" in text:
        return True
    if "userInfo" not in text:
        return False
    # A pattern the user name must match (CEL ``matches``: RE2, unanchored unless the pattern says so).
    user = f"system:serviceaccount:{ns}:{name}"
    for pattern in re.findall(r"username\.matches\('((?:[^'\\]|\\.)*)'\)", text):
        try:
            if re.search(pattern, user):
                return True
        except re.error:
            continue
    quoted = (r"[\'\"]" + re.escape(x) + r"[\'\"]" for x in (ns, name))
    return all(re.search(q, text) for q in quoted)


def rights(release: str, objs: list[Manifest], cluster_objs: list[Manifest]) -> Topology:
    b = _Builder(release, objs, cluster_objs)
    t = Topology(release, b.namespace, "rights")
    everything = objs + cluster_objs
    roles = {
        (o["kind"], _meta(o).get("namespace"), _meta(o)["name"]): o
        for o in everything
        if o["kind"] in ("Role", "ClusterRole")
    }
    sas: set[tuple[str, str]] = set()
    for o in objs:
        if o["kind"] == "ServiceAccount":
            sas.add((_meta(o).get("namespace", b.namespace), _meta(o)["name"]))

    def sa_node(ns: str, name: str) -> str:
        sid = f"sa:{ns}/{name}"
        t.add(Node(sid, [f"ServiceAccount {name}", f"namespace {ns}"], ("ServiceAccounts",), "sa"))
        return sid

    for ns, name in sorted(sas):
        sa_node(ns, name)
    for o in objs:
        tpl = pod_template(o)
        if tpl is None:
            continue
        spec = tpl["spec"]
        ns = _meta(o).get("namespace", b.namespace)
        sa = spec.get("serviceAccountName", "default")
        mounts = spec.get("automountServiceAccountToken")
        if mounts is False:
            continue
        wid = f"wl:{ref(o)}"
        t.add(Node(wid, [f"{o['kind']} {_meta(o)['name']}", "mounts a token"], ("pods with a token",), "workload"))
        t.edge(wid, sa_node(ns, sa), "uses")
    for bd in everything:
        if bd["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        # This release's ServiceAccounts only (dist/cluster/ holds bindings of every release).
        subjects = [
            s
            for s in bd.get("subjects") or []
            if s.get("kind") == "ServiceAccount"
            and s.get("namespace", _meta(bd).get("namespace")) in {b.namespace, *b.fleets}
        ]
        if not subjects:
            continue
        rr = bd["roleRef"]
        where = f"in namespace {_meta(bd)['namespace']}" if bd["kind"] == "RoleBinding" else "cluster-wide"
        role_ns = _meta(bd).get("namespace") if rr["kind"] == "Role" else None
        role = roles.get((rr["kind"], role_ns, rr["name"]))
        rid = f"role:{rr['kind']}/{role_ns or ''}/{rr['name']}"
        rule_lines = [_rule_text(r) for r in (role or {}).get("rules") or []] or ["(not in dist/)"]
        t.add(Node(rid, [f"{rr['kind']} {rr['name']}", *rule_lines], ("Roles and ClusterRoles",), "role"))
        bid = f"binding:{bd['kind']}/{_meta(bd).get('namespace', '')}/{_meta(bd)['name']}"
        t.add(Node(bid, [f"{bd['kind']} {_meta(bd)['name']}", where], ("bindings",), "binding"))
        t.edge(bid, rid, "grants")
        for s in subjects:
            t.edge(sa_node(s.get("namespace", _meta(bd).get("namespace", "")), s["name"]), bid, "binds", where)
    # Admission policies (kind ValidatingAdmissionPolicy and its Binding, any apiVersion).
    policies = {_meta(o)["name"]: o for o in everything if o["kind"] == "ValidatingAdmissionPolicy"}
    bound = {
        (o.get("spec") or {}).get("policyName") for o in everything if o["kind"] == "ValidatingAdmissionPolicyBinding"
    }
    unbound: list[Manifest] = [
        {
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "(none: not enforced)"},
            "spec": {"policyName": n},
        }
        for n in sorted(set(policies) - bound)
    ]
    for o in everything + unbound:
        if o["kind"] != "ValidatingAdmissionPolicyBinding":
            continue
        bspec: Manifest = o.get("spec") or {}
        name = str(bspec.get("policyName", ""))
        pol: Manifest = policies.get(name) or {}
        spec = pol.get("spec") or {}
        resource_rules: list[Manifest] = ((spec.get("matchConstraints") or {}).get("resourceRules")) or []
        what = sorted(
            {
                f"{','.join(rule.get('operations') or [])} {','.join(rule.get('resources') or [])}"
                for rule in resource_rules
            }
        )
        actions = ",".join(bspec.get("validationActions") or [])
        checks = [v.get("message") or v.get("expression", "") for v in spec.get("validations") or []]
        pid = f"vap:{name}"
        label = [f"ValidatingAdmissionPolicy {name}", *what, f"binding {_meta(o)['name']}: {actions}", *checks[:4]]
        if len(checks) > 4:
            label.append(f"... {len(checks) - 4} more checks")
        t.add(Node(pid, label, ("admission policies",), "policy"))
        text = yaml.safe_dump([pol, o])
        confined = [(ns, n) for ns, n in sorted(t_sas(t)) if _confines(text, ns, n)]
        for ns, n in confined:
            t.edge(pid, f"sa:{ns}/{n}", "confines")
        if not confined:
            who = "users its matchConditions name" if "userInfo" in text else "every matching request"
            t.nodes[pid].label.append(f"confines: {who} (none of this release's ServiceAccounts)")
    return t
