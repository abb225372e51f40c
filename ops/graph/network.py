"""The network view: :class:`_Builder` takes a release's manifests and gives its :class:`Topology`
(hosts, routes, Services, workloads, Secrets, hook Jobs, fleet namespaces, other objects, and the
flows of :mod:`ops.graph.flows`).
"""

from __future__ import annotations

import re
from collections import defaultdict

from ops.graph.flows import _FlowBuilder
from ops.graph.model import (
    HOOK,
    ROUTE_KINDS,
    Manifest,
    Node,
    Topology,
    _meta,
    _resources,
    _wave,
    configmaps_read,
    ref,
    secrets_read,
)
from ops.netpol import selects


class _Builder(_FlowBuilder):
    def build(self) -> Topology:
        t = self.topo
        workloads = self.workloads()
        hpas = {
            (
                (o["spec"].get("scaleTargetRef") or {}).get("kind"),
                (o["spec"].get("scaleTargetRef") or {}).get("name"),
            ): o
            for o in self.objs
            if o["kind"] == "HorizontalPodAutoscaler"
        }
        made = self.cluster_made_secrets(workloads)
        hooks = sorted(
            (o for o, _ in workloads.values() if HOOK in (_meta(o).get("annotations") or {})),
            key=lambda o: (_wave(o), _meta(o)["name"]),
        )
        for wid, (o, tpl) in workloads.items():
            self.mark(o)
            meta, spec = _meta(o), o.get("spec") or {}
            ns = meta.get("namespace", self.namespace)
            hpa = hpas.get((o["kind"], meta["name"]))
            if hpa is not None:
                self.mark(hpa)
                scale = f"HPA {hpa['spec'].get('minReplicas', 1)}..{hpa['spec']['maxReplicas']} replicas"
            elif o["kind"] in ("Job", "CronJob", "Pod"):
                scale = o["kind"] + (f" schedule {spec['schedule']}" if "schedule" in spec else "")
            else:
                scale = f"{spec.get('replicas', 1)} replica(s)"
            annotations = meta.get("annotations") or {}
            if HOOK in annotations:
                scale += f", hook {annotations[HOOK]}, wave {_wave(o)}"
            role = self.role_of(o, tpl)
            label = [f"{o['kind']} {meta['name']}", *([role] if role else []), scale, *_resources(tpl["spec"])]
            concern = "hook Jobs (sync order)" if HOOK in annotations else self.concern_of(o, tpl)
            order = f"{_wave(o) + 1000:06d} {meta['name']}" if HOOK in annotations else ""
            t.add(
                Node(wid, label, (*self.ns_cluster(ns), concern), "job" if HOOK in annotations else "workload", order)
            )
            for s in secrets_read(tpl["spec"]):
                sid = f"secret:{ns}/{s}"
                source = made.get(s)
                t.add(
                    Node(
                        sid,
                        [f"Secret {s}", source or "provided by an operator"],
                        (
                            *self.ns_cluster(ns),
                            "Secrets made in the cluster" if source else "Secrets an operator provides",
                        ),
                        "secret-made" if source else "secret-operator",
                    )
                )
                t.edge(wid, sid, "reads")
            for cm in sorted(configmaps_read(tpl["spec"])):
                for c in self.objs:
                    if c["kind"] == "ConfigMap" and _meta(c).get("name") == cm and _meta(c).get("namespace") == ns:
                        self.attach(wid, c)
        for a, b in zip(hooks, hooks[1:], strict=False):
            t.edge(f"wl:{ref(a)}", f"wl:{ref(b)}", "order", "then")
        self.services(workloads)
        self.routes()
        self.fleet_namespaces()
        self.network(workloads)
        self.leftovers(workloads)
        for nid, refs in self.attached.items():
            if nid in t.nodes:
                t.nodes[nid].label.append("+ " + ", ".join(sorted(set(refs))))
        return t

    def role_of(self, o: Manifest, tpl: Manifest) -> str:
        """What a workload is, from its images and configuration (Redis cluster/single, broker)."""
        images = " ".join(c.get("image", "") for c in tpl["spec"].get("containers") or [])
        replicas = (o.get("spec") or {}).get("replicas", 1)
        if re.search(r"(^|[/\s])(redis|valkey)[:@]", images) and o["kind"] not in ("Job", "CronJob", "Pod"):
            text = " ".join(
                str((c.get("data") or {}).values())
                for c in self.objs
                if c["kind"] == "ConfigMap" and _meta(c).get("name") in configmaps_read(tpl["spec"])
            )
            args = " ".join(str(a) for c in tpl["spec"].get("containers") or [] for a in c.get("args") or [])
            cluster = "cluster-enabled yes" in text or "--cluster-enabled yes" in args
            return f"Redis Cluster ({replicas} nodes)" if cluster else "Redis (single)"
        if re.search(r"(^|[/\s])[\w.-]*(mosquitto|emqx|vernemq|rabbitmq)[\w.-]*[:@]", images):
            return "MQTT broker"
        if re.search(r"(^|[/\s])(postgres|timescaledb)[\w.-]*[:@]", images) and o["kind"] in ("Job", "CronJob"):
            return "SQL job"
        return ""

    def concern_of(self, o: Manifest, tpl: Manifest) -> str:
        role = self.role_of(o, tpl)
        if role.startswith("Redis"):
            return "data"
        if role == "MQTT broker":
            return "messaging"
        if o["kind"] in ("Job", "CronJob"):
            return "jobs"
        return "applications"

    def cluster_made_secrets(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> dict[str, str]:
        """Secret name -> what makes it in the cluster (generator Jobs, cert-manager, secret operators)."""
        made: dict[str, str] = {}
        roles = {(_meta(o).get("namespace"), _meta(o)["name"]): o for o in self.objs if o["kind"] == "Role"}
        writers: dict[tuple[str | None, str], set[str]] = defaultdict(set)  # (ns, sa) -> secrets it may write
        for b in self.objs:
            if b["kind"] != "RoleBinding" or b["roleRef"]["kind"] != "Role":
                continue
            role = roles.get((_meta(b).get("namespace"), b["roleRef"]["name"]))
            if role is None:
                continue
            written: set[str] = set()  # named under a write verb
            read: set[str] = set()  # named under other verbs
            creates = False
            for rule in role.get("rules") or []:
                if "secrets" not in rule.get("resources", []):
                    continue
                write = bool(set(rule.get("verbs", [])) & {"create", "update", "patch"})
                creates = creates or (write and not rule.get("resourceNames"))
                (written if write else read).update(rule.get("resourceNames") or [])
            # A generator with an unrestricted create makes the Secrets it names for writing, or else
            # the one it checks for (get by name) before creating it.
            names = written or (read if creates else set())
            if names:
                for s in b.get("subjects") or []:
                    if s.get("kind") == "ServiceAccount":
                        writers[(s.get("namespace"), s["name"])] |= names
        for wid, (o, tpl) in workloads.items():
            ns = _meta(o).get("namespace")
            sa = tpl["spec"].get("serviceAccountName")
            if sa and (ns, sa) in writers:
                for s in writers[(ns, sa)]:
                    made[s] = f"made by {wid.removeprefix('wl:')}"
        for o in self.objs:
            spec = o.get("spec") or {}
            if o["kind"] == "Certificate" and spec.get("secretName"):
                made[spec["secretName"]] = f"issued by cert-manager ({ref(o)})"
            elif o["kind"] == "OnePasswordItem":
                made[_meta(o)["name"]] = f"synced from 1Password ({ref(o)})"
            elif o["kind"] == "ExternalSecret":
                target = (spec.get("target") or {}).get("name") or _meta(o)["name"]
                made[target] = f"synced by External Secrets ({ref(o)})"
        return made

    # -- services and routes ------------------------------------------------------------------------

    def services(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> None:
        t = self.topo
        for o in self.objs:
            if o["kind"] != "Service":
                continue
            self.mark(o)
            meta, spec = _meta(o), o.get("spec") or {}
            sid = f"svc:{meta.get('namespace')}/{meta['name']}"
            ports = ", ".join(
                f"{p.get('name', '')}:{p['port']}".lstrip(":") for p in spec.get("ports") or [] if "port" in p
            )
            kind = "headless" if spec.get("clusterIP") == "None" else spec.get("type", "ClusterIP")
            t.add(
                Node(
                    sid,
                    [f"Service {meta['name']}", f"{kind} {ports}"],
                    self.ns_cluster(meta["namespace"]) + ("services",),
                    "service",
                )
            )
            sel = spec.get("selector")
            if not sel:
                continue
            for wid, (w, tpl) in workloads.items():
                if _meta(w).get("namespace") == meta.get("namespace") and selects(
                    {"matchLabels": sel}, (tpl.get("metadata") or {}).get("labels") or {}
                ):
                    t.edge(sid, wid, "selects")

    def routes(self) -> None:
        t = self.topo
        for o in self.objs:
            if o["kind"] not in ROUTE_KINDS:
                continue
            self.mark(o)
            meta, spec = _meta(o), o.get("spec") or {}
            rid = f"route:{o['kind']}/{meta['name']}"
            matches = sorted(
                {
                    (m.get("path") or {}).get("value", "")
                    for r in spec.get("rules") or []
                    for m in r.get("matches") or []
                    if (m.get("path") or {}).get("value")
                }
            )
            label = [f"{o['kind']} {meta['name']}", *(["paths " + " ".join(matches)] if matches else [])]
            t.add(Node(rid, label, ("Gateway routes",), "route"))
            listeners = []
            for p in spec.get("parentRefs") or []:
                gw_ns = p.get("namespace", meta.get("namespace"))
                lid = f"listener:{gw_ns}/{p['name']}/{p.get('sectionName', '*')}"
                t.add(
                    Node(
                        lid,
                        [f"listener {p.get('sectionName', '(all)')}", *([f"port {p['port']}"] if "port" in p else [])],
                        (f"Gateway {gw_ns}/{p['name']}",),
                        "listener",
                    )
                )
                listeners.append(lid)
                t.edge(lid, rid, "route")
            for host in spec.get("hostnames") or []:
                hid = f"host:{host}"
                t.add(Node(hid, [host], ("public hosts",), "host"))
                for lid in listeners:
                    t.edge(hid, lid, "route")
            for rule in spec.get("rules") or []:
                for b in rule.get("backendRefs") or []:
                    if b.get("kind", "Service") != "Service":
                        continue
                    sid = f"svc:{b.get('namespace', meta.get('namespace'))}/{b['name']}"
                    t.edge(rid, sid, "route", str(b.get("port", "")))

    def fleet_namespaces(self) -> None:
        t = self.topo
        for o in self.objs:
            if o["kind"] != "Namespace":
                continue
            self.mark(o)
            name = _meta(o)["name"]
            nid = f"ns:{name}"
            ann = _meta(o).get("annotations") or {}
            label = [f"Namespace {name}"]
            if ann.get("iotistica.com/description"):
                label.append(ann["iotistica.com/description"])
            pss = (_meta(o).get("labels") or {}).get("pod-security.kubernetes.io/enforce")
            if pss:
                label.append(f"pod security: {pss}")
            own = [p for p in self.policies if _meta(p).get("namespace") == name]
            deny = [
                "+".join(p["spec"].get("policyTypes") or [])
                for p in own
                if not (p["spec"].get("podSelector") or {})
                and not p["spec"].get("ingress")
                and not p["spec"].get("egress")
            ]
            if own:
                label.append(
                    f"{len(own)} NetworkPolicies"
                    + (f", default deny {', '.join(deny)}" if deny else ", no default deny")
                )
            for q in self.objs:
                if q["kind"] == "ResourceQuota" and _meta(q).get("namespace") == name:
                    self.mark(q)
                    hard = (q.get("spec") or {}).get("hard") or {}
                    label.append("quota " + ", ".join(f"{k} {v}" for k, v in sorted(hard.items())))
                if q["kind"] == "LimitRange" and _meta(q).get("namespace") == name:
                    self.mark(q)
                    for lim in (q.get("spec") or {}).get("limits") or []:
                        d = lim.get("default") or {}
                        if d:
                            label.append(
                                f"{lim.get('type', '')} default limit " + "/".join(str(v) for _, v in sorted(d.items()))
                            )
            t.add(Node(nid, label, self.ns_cluster(name), "namespace"))

    def leftovers(self, workloads: dict[str, tuple[Manifest, Manifest]]) -> None:
        """Attach every other object to the node it targets or selects; list the rest."""
        t = self.topo
        by_name: dict[tuple[str, str], str] = {}
        for nid in t.nodes:
            kind_name = nid.split(":", 1)[1]
            if "/" in kind_name and nid.startswith(("wl:", "route:")):
                k, n = kind_name.split("/", 1)
                by_name[(k, n)] = nid
            if nid.startswith("svc:"):
                by_name[("Service", kind_name.split("/", 1)[1])] = nid
        for o in self.objs:
            if id(o) in self.drawn or o["kind"] in (
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
            ):
                continue
            spec = o.get("spec") or {}
            targets = [spec.get("scaleTargetRef"), spec.get("targetRef"), *(spec.get("targetRefs") or [])]
            found = [by_name.get((r.get("kind", ""), r.get("name", ""))) for r in targets if isinstance(r, dict)]
            hit = [h for h in found if h]
            sel = spec.get("selector")
            if not hit and isinstance(sel, dict):
                sel = sel if "matchLabels" in sel or "matchExpressions" in sel else {"matchLabels": sel}
                for wid, (_w, tpl) in workloads.items():
                    if sel.get("matchLabels") and selects(sel, (tpl.get("metadata") or {}).get("labels") or {}):
                        hit.append(wid)
                if not hit:
                    for sid in [n for n in t.nodes if n.startswith("svc:")]:
                        svc = next(
                            s
                            for s in self.objs
                            if s["kind"] == "Service" and f"svc:{_meta(s).get('namespace')}/{_meta(s)['name']}" == sid
                        )
                        if sel.get("matchLabels") and selects(sel, _meta(svc).get("labels") or {}):
                            hit.append(sid)
            if o["kind"] == "Certificate":
                hit += [f"secret:{_meta(o).get('namespace')}/{spec.get('secretName')}"]
            hit = [h for h in hit if h in t.nodes]
            if hit:
                for h in sorted(set(hit)):
                    self.attach(h, o)
            elif o["kind"] not in ("ConfigMap",):
                oid = f"obj:{o['kind']}"
                node = t.add(Node(oid, [o["kind"]], ("other objects",), "other"))
                node.label.append(_meta(o).get("name", ""))
                self.mark(o)
