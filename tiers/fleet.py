"""The rules across environments: one rule set that synth (app.py) and ``validate`` (cli.py) both run.

Client N+1 may never break clients 1..N. Every rule here compares an environment with the others (or
with the shared charts ``dist/argocd/`` and ``dist/cluster/`` that all of them feed):

- Namespaces: unique; never another environment's fleet namespace (``fleet-<ns>-<name>``); never a
  reserved one (``kube-*``, ``default``, ``argocd``, cert-manager's, and every namespace an environment
  references for the Gateway, Prometheus, DNS, the database, Argo CD or agents).
- Hosts: every host an environment claims at the shared Gateway (api, dashboard and its aliases, mqtt,
  nodered; set or derived) belongs to one environment only.
- Names: a release may not take the name of a shared Argo CD Application (``iotistica-apps``,
  ``iotistica-cluster``); objects outside the release namespace (Namespaces, ClusterRoleBindings, Argo CD
  Applications, Poolers) may not share an identity (kind, namespace, name) with another release's.
- The app-of-apps has one source: ``argocd.repoUrl``, ``targetRevision`` and ``namespace`` agree.
- One database server: environments on ``database.server`` agree on ``maxConnections``; their
  connection budgets together fit in it (a capacity finding: a warning, an error under ``--strict``).

Blame: a clash names both files and the key, and blames the side that is new or changed against git
(``git status`` of the environment folder, read-only); without git, the later release by name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tiers.loader import ConfigError, load_environments
from tiers.models import Environment
from tiers.shared import APP_OF_APPS, CLUSTER_APP, PLATFORM_PROJECT, TENANTS_APPSET, cluster_servers

#: The shared Argo CD objects of dist/argocd/ (and the platform Applications ``iotistica-cluster-<cluster>``).
SHARED_APPLICATIONS = (APP_OF_APPS, CLUSTER_APP, PLATFORM_PROJECT, TENANTS_APPSET)
#: Namespaces no environment may take, besides those the environments reference.
RESERVED_NAMESPACES = ("default", "argocd", "cert-manager")
RESERVED_PREFIXES = ("kube-",)
#: Connections kept free on a server for migrations, psql, the policy and db-init jobs, monitoring.
RESERVED_CONNECTIONS = 10
#: git status of one environment file.
NEW, CHANGED, UNCHANGED = "new", "changed", "unchanged"


# --------------------------------------------------------------------------------------------------
# Blame
# --------------------------------------------------------------------------------------------------


def git_status(directory: Path, files: Iterable[Path]) -> dict[Path, str]:
    """``new`` / ``changed`` / ``unchanged`` per file against git HEAD; {} when not a git checkout.

    Read-only (``git status --porcelain``); it never affects what synth writes.
    """
    try:
        top = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        out = subprocess.run(
            [
                "git",
                "-C",
                top,
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--",
                str(directory.resolve()),
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    marks: dict[Path, str] = {}
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":  # a rename carries its source as the next entry
            i += 1
        marks[(Path(top) / path).resolve()] = NEW if code in ("??", "A ", "AM") or code[0] in "RC" else CHANGED
    return {f: marks.get(f.resolve(), UNCHANGED) for f in files}


@dataclass(frozen=True)
class Sources:
    """Where each release comes from: its label (as printed) and its git status (may be unknown)."""

    labels: Mapping[str, str]
    status: Mapping[str, str]

    def label(self, release: str) -> str:
        return self.labels.get(release, f"environments/{release}.yaml")

    def state(self, release: str) -> str | None:
        return self.status.get(release)

    @classmethod
    def of(cls, envs: Sequence[Environment], directory: Path, base: Path | None = None) -> Sources:
        paths = {e.release: directory / f"{e.release}.yaml" for e in envs}

        def label(p: Path) -> str:
            try:
                return str(p.relative_to(base)) if base else str(p)
            except ValueError:
                return str(p)

        status = git_status(directory, paths.values())
        return cls(
            labels={r: label(p) for r, p in paths.items()},
            status={r: status[p] for r, p in paths.items() if p in status},
        )


_RANK = {NEW: 0, CHANGED: 1, UNCHANGED: 2}


def blame(a: str, b: str, sources: Sources) -> tuple[str, str]:
    """(offender, other) of a clash between releases ``a`` and ``b``: the new or changed side first."""
    ra, rb = _RANK.get(sources.state(a) or "", 3), _RANK.get(sources.state(b) or "", 3)
    if ra != rb:
        return (a, b) if ra < rb else (b, a)
    return (b, a) if a < b else (a, b)


def _clash(offender: str, other: str, key: str, other_key: str, what: str, sources: Sources) -> ConfigError:
    mine, theirs = sources.state(offender), sources.state(other)
    why = f"; {sources.label(offender)} is {mine}, {sources.label(other)} {theirs}" if mine and theirs else ""
    return ConfigError(
        sources.label(offender), key, f"{what} is already used by {sources.label(other)} ({other_key}){why}"
    )


# --------------------------------------------------------------------------------------------------
# What an environment claims
# --------------------------------------------------------------------------------------------------


def hosts(env: Environment) -> list[tuple[str, str]]:
    """(key, host) of every host the environment claims at the Gateway, set or derived."""
    claimed: list[tuple[str, str]] = []
    for kind in ("api", "dashboard", "mqtt", "nodered"):
        host = env.edge.host(kind, env.release)  # type: ignore[arg-type]
        if host is not None:
            claimed.append((f"edge.hosts.{kind}", host))
    for i, alias in enumerate(env.edge.hosts.dashboard_aliases):
        claimed.append((f"edge.hosts.dashboardAliases.{i}", alias))
    return claimed


def referenced_namespaces(env: Environment) -> list[tuple[str, str]]:
    """(key, namespace) of the platform namespaces an environment points at (never a tenant's)."""
    net = env.network
    refs = [
        ("argocd.namespace", env.argocd.namespace),
        ("edge.gateway.namespace", env.edge.gateway.namespace),
        ("network.gatewayNamespace", net.gateway_namespace),
        ("network.prometheusNamespace", net.prometheus_namespace),
        ("network.dns.namespace", net.dns.namespace),
    ]
    if net.database.namespace:
        refs.append(("network.database.namespace", net.database.namespace))
    refs += [(f"network.agentNamespaces.{i}", ns) for i, ns in enumerate(net.agent_namespaces)]
    return refs


def namespaces(env: Environment) -> list[tuple[str, str]]:
    """(key, namespace) of the namespaces an environment owns: its own and its fleets'."""
    owned = [("namespace", env.namespace)]
    if env.fleet_namespaces.enabled:
        owned += [
            (f"fleetNamespaces.fleets.{i}.name", env.fleet_namespace(f.name))
            for i, f in enumerate(env.fleet_namespaces.fleets)
        ]
    return owned


def shared_identities(env: Environment) -> list[tuple[str, tuple[str, str, str]]]:
    """(key, (kind, namespace, name)) of every object a release puts outside its own namespace.

    tests/test_fleet_validation.py checks this list against the rendered objects.
    """
    ids = [(key, ("Namespace", "", ns)) for key, ns in namespaces(env)]
    if env.fleet_namespaces.enabled:
        for i, f in enumerate(env.fleet_namespaces.fleets):
            ns, name = env.fleet_namespace(f.name), env.fleet_object_name(f.name)
            for kind in ("ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy"):
                ids.append((f"fleetNamespaces.fleets.{i}.name", (kind, ns, name)))
    if env.fleet_namespaces.virtual_agent_manager:
        ids.append(("release", ("ClusterRoleBinding", "", f"{env.release}-virtual-agent-manager")))
    ids.append(("release", ("Application", env.argocd.namespace, env.release)))
    ids.append(("release", ("AppProject", env.argocd.namespace, env.release)))
    pooler = env.database.pooler
    if pooler.enabled and pooler.kind == "cnpg" and env.network.database.namespace:
        ids.append(("release", ("Pooler", env.network.database.namespace, f"{env.release}-pooler")))
    return ids


# --------------------------------------------------------------------------------------------------
# The rule set
# --------------------------------------------------------------------------------------------------


def validate_fleet(envs: Sequence[Environment], sources: Sources) -> list[ConfigError]:
    """Every cross-environment error (empty when the fleet is consistent), blamed on the new side."""
    ordered = sorted(envs, key=lambda e: e.release)
    errors: list[ConfigError] = []
    seen_errors: set[str] = set()

    def add(err: ConfigError) -> None:
        if str(err) not in seen_errors:
            seen_errors.add(str(err))
            errors.append(err)

    # Release names that are shared Applications.
    for e in ordered:
        if e.release in SHARED_APPLICATIONS or e.release.startswith(f"{CLUSTER_APP}-"):
            add(
                ConfigError(
                    sources.label(e.release),
                    "release",
                    f"{e.release!r} is the name of a shared Argo CD Application of dist/argocd/",
                )
            )

    # Reserved namespaces: the fixed ones, and every namespace any environment references.
    reserved: dict[str, tuple[str, str] | None] = {ns: None for ns in RESERVED_NAMESPACES}
    for e in ordered:
        for key, ns in referenced_namespaces(e):
            reserved.setdefault(ns, (e.release, key))
    for e in ordered:
        for key, ns in namespaces(e):
            why = None
            if ns.startswith(RESERVED_PREFIXES) or ns in RESERVED_NAMESPACES:
                why = "is reserved for the cluster (kube-*, default, argocd, cert-manager)"
            elif ns in reserved and reserved[ns] is not None:
                owner, ref_key = reserved[ns]  # type: ignore[misc]
                where = "this file's" if owner == e.release else f"{sources.label(owner)}'s"
                why = f"is a platform namespace ({where} {ref_key}); a tenant may not live there"
            if why:
                add(ConfigError(sources.label(e.release), key, f"{ns!r} {why}"))

    # Namespaces (release and fleet) are owned by one environment.
    owners: dict[str, tuple[str, str]] = {}
    for e in ordered:
        for key, ns in namespaces(e):
            if ns in owners and owners[ns][0] != e.release:
                other, other_key = owners[ns]
                offender, innocent = blame(e.release, other, sources)
                keys = {e.release: key, other: other_key}
                add(_clash(offender, innocent, keys[offender], keys[innocent], f"namespace {ns!r}", sources))
            owners.setdefault(ns, (e.release, key))

    # Hosts are claimed by one environment at the shared Gateway.
    claimed: dict[str, tuple[str, str]] = {}
    for e in ordered:
        for key, host in hosts(e):
            if host in claimed and claimed[host][0] != e.release:
                other, other_key = claimed[host]
                offender, innocent = blame(e.release, other, sources)
                keys = {e.release: key, other: other_key}
                add(_clash(offender, innocent, keys[offender], keys[innocent], f"host {host!r}", sources))
            claimed.setdefault(host, (e.release, key))

    # Objects outside the release namespace have one owner.
    identities: dict[tuple[str, str, str], tuple[str, str]] = {
        ("Application", ordered[0].argocd.namespace if ordered else "argocd", name): ("", "")
        for name in SHARED_APPLICATIONS
    }
    for e in ordered:
        for key, ident in shared_identities(e):
            if ident[0] == "Namespace":
                continue  # the namespace rule above reports these
            if ident in identities and identities[ident][0] not in ("", e.release):
                other, other_key = identities[ident]
                offender, innocent = blame(e.release, other, sources)
                keys = {e.release: key, other: other_key}
                what = f"{ident[0]} {'/'.join(p for p in ident[1:] if p)}"
                add(_clash(offender, innocent, keys[offender], keys[innocent], what, sources))
            identities.setdefault(ident, (e.release, key))

    # The app-of-apps has one source: shared Argo CD settings agree.
    for key, attr in (("repoUrl", "repo_url"), ("targetRevision", "target_revision"), ("namespace", "namespace")):
        for err in _agreement(
            ordered,
            sources,
            lambda e, a=attr: getattr(e.argocd, a),  # type: ignore[misc]
            f"argocd.{key}",
            "must be the same in every environment (the app-of-apps syncs dist/argocd/ from one source)",
        ):
            add(err)

    # One Argo CD destination per cluster, one cluster per destination (tiers/shared.py).
    try:
        cluster_servers(ordered, sources.label)
    except ConfigError as clash:
        add(clash)

    # One database server, one max_connections.
    for server in sorted({e.database.server for e in ordered}):
        group = [e for e in ordered if e.database.server == server]
        for err in _agreement(
            group,
            sources,
            lambda e: e.database.max_connections,
            "database.maxConnections",
            f"must be the same in every environment on database server {server!r} (it has one max_connections)",
        ):
            add(err)
    return errors


def _agreement(
    envs: Sequence[Environment], sources: Sources, value: Callable[[Environment], object], key: str, rule: str
) -> list[ConfigError]:
    """Errors for the environments whose ``value`` differs from the fleet's.

    The fleet's value is the one held by the most unchanged environments (then by the most); the new or
    changed environments that depart from it are blamed, each naming a file that holds the fleet's value.
    """
    values: dict[object, list[str]] = {}
    for e in envs:
        values.setdefault(value(e), []).append(e.release)
    if len(values) < 2:
        return []

    def weight(item: tuple[object, list[str]]) -> tuple[int, int]:
        return (sum(1 for r in item[1] if sources.state(r) == UNCHANGED), len(item[1]))

    fleet_value, holders = max(values.items(), key=weight)
    errors = []
    for held, releases in values.items():
        if held == fleet_value:
            continue
        for r in releases:
            state = f" ({sources.state(r)})" if sources.state(r) else ""
            errors.append(
                ConfigError(
                    sources.label(r),
                    key,
                    f"{rule}: {sources.label(holders[0])} has {fleet_value!r}, this file{state} {held!r}",
                )
            )
    return errors


def fleet_capacity(envs: Sequence[Environment], sources: Sources) -> list[ConfigError]:
    """Capacity across environments (warnings; errors under --strict): budgets on one server."""
    findings: list[ConfigError] = []
    by_server: dict[str, list[Environment]] = {}
    for e in sorted(envs, key=lambda e: e.release):
        by_server.setdefault(e.database.server, []).append(e)
    for server, group in sorted(by_server.items()):
        room = group[0].database.max_connections - RESERVED_CONNECTIONS
        total = sum(e.database.connection_budget for e in group)
        if total <= room:
            continue
        # The new or changed environment is blamed; among equals, the last by name.
        offender = min(reversed(group), key=lambda e: _RANK.get(sources.state(e.release) or "", 3))
        parts = " + ".join(f"{e.release} {e.database.connection_budget}" for e in group)
        findings.append(
            ConfigError(
                sources.label(offender.release),
                "database.connectionBudget",
                f"the environments on server {server!r} hold {total} connections together ({parts}), above its "
                f"max_connections {group[0].database.max_connections} less {RESERVED_CONNECTIONS} reserved; "
                f"lower the budgets, put a pooler in front (database.pooler), or raise max_connections",
            )
        )
    return findings


def check_directory(directory: Path, base: Path | None = None) -> None:
    """Refuse ``*.yml`` files: only ``*.yaml`` are environments, and a file must never be silently skipped."""
    for p in sorted(directory.glob("*.yml")):
        label = str(p.relative_to(base)) if base and p.is_relative_to(base) else str(p)
        raise ConfigError(label, "", f"environment files end in .yaml: rename it to {p.stem}.yaml (it is not read)")


def load_fleet(directory: Path, base: Path | None = None) -> tuple[list[Environment], Sources]:
    """Load every environment and apply the fleet's rules; raise the first error (ConfigError)."""
    check_directory(directory, base)
    envs = load_environments(directory, base=base)
    sources = Sources.of(envs, directory, base)
    errors = validate_fleet(envs, sources)
    if errors:
        raise errors[0]
    return envs, sources
