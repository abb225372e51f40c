"""The rules across environments: one rule set that synth (app.py) and ``validate`` (cli.py) both run.

Client N+1 may never break clients 1..N. Every rule here compares an environment with the others (or
with the shared charts ``dist/argocd/`` and ``dist/cluster/`` that all of them feed):

- Clusters and database servers (fleet.yaml, tiers/fleet_file.py): an environment names a declared
  cluster and, when fleet.yaml declares servers, a declared database server on its cluster.
- Namespaces: unique on each cluster; never another environment's fleet namespace (``fleet-<ns>-<name>``); never a
  reserved one (``kube-*``, ``default``, ``argocd``, cert-manager's, and every namespace an environment
  references for the Gateway, Prometheus, DNS, the database, Argo CD or agents).
- Hosts: every host an environment claims at the shared Gateway (api, dashboard and its aliases, mqtt,
  nodered; set or derived) belongs to one environment only, and no other environment's settings name it
  (a dashboard calling another tenant's API, an Auth0 callback or CORS origin on another tenant's host);
  the platform-wide settings (:data:`PLATFORM_WIDE_KEYS`) are shared by design and not checked.
- Names: a release may not take the name of a shared Argo CD Application (``iotistica-apps``,
  ``iotistica-cluster``); objects outside the release namespace (Namespaces, ClusterRoleBindings, Argo CD
  Applications, Poolers) may not share an identity (kind, namespace, name) with another release's.
- The app-of-apps has one source: ``argocd.repoUrl``, ``targetRevision`` and ``namespace`` agree.
- One database server: environments on ``database.server`` agree on ``maxConnections`` (fleet.yaml's
  ``databaseServers`` declare it once); their connection budgets together fit in it less the reserve (on a
  server fleet.yaml declares, an error; on one only the environments state, a capacity finding: a warning,
  an error under ``--strict``).

Every rule is one pass over the environments with dictionaries (no pairwise loop): ``make bench``
measures them at 100, 1,000 and 3,000 environments.

Blame: a clash names both files and the key, and blames the side that is new or changed against git
(``git status`` of the environment folder, read-only); without git, the later release by name.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tiers.errors import raise_all
from tiers.fleet_file import NO_FLEET_FILE, FleetFile
from tiers.loader import ConfigError, load_environments, load_fleet_file
from tiers.models import Environment
from tiers.models.fleet import did_you_mean
from tiers.shared import APP_OF_APPS, CLUSTER_APP, PLATFORM_PROJECT, TENANTS_APPSET, cluster_servers

#: The shared Argo CD objects of dist/argocd/ (and the platform Applications ``iotistica-cluster-<cluster>``).
SHARED_APPLICATIONS = (APP_OF_APPS, CLUSTER_APP, PLATFORM_PROJECT, TENANTS_APPSET)
#: Namespaces no environment may take, besides those the environments reference.
RESERVED_NAMESPACES = ("default", "argocd", "cert-manager")
RESERVED_PREFIXES = ("kube-",)
#: Names the API's guardrail lets a tenant's API create (fleet-<8 hex>, virtual-agents-<its namespace>):
#: never a release namespace.
API_MADE_PREFIXES = ("fleet-", "virtual-agents-")
#: Connections kept free on a server for migrations, psql, the policy and db-init jobs, monitoring.
RESERVED_CONNECTIONS = 10
#: Settings that are platform-wide by design: one Auth0 tenant and one provisioning service for every tenant
#: (docs/settings.md says so for each). They may name a host a tenant also serves (the platform API's Auth0
#: identifier is https://api.iotistica.com), so the rule on other tenants' hosts leaves them out.
PLATFORM_WIDE_KEYS = frozenset(
    {
        "dashboard.config.auth0Domain",
        "dashboard.config.auth0Audience",
        "dashboard.config.provisioningApiUrl",
        "api.provisioningApiUrl",
    }
)
#: A run of hostname characters in a setting's text (a URL, an origin, an environment variable's value).
_HOST_TOKEN = re.compile(r"[a-z0-9][a-z0-9.-]*")
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
    #: The fleet file of these environments (none: one cluster, no declared server).
    fleet: FleetFile = NO_FLEET_FILE

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
            fleet=load_fleet_file(directory, base),
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


def named_hosts(env: Environment) -> Iterator[tuple[str, str]]:
    """(key, host-like word) of every string of the environment's settings, lowercased.

    Its own claims (``edge.hosts``), the domain they derive from (``edge.domain``) and the platform-wide
    settings are left out; every other string that reaches its output (URLs, origins, extra environment
    variables, labels) is read. A word is a whole run of hostname characters, so ``api.example.com`` is
    not found inside ``eu.api.example.com``.
    """

    def walk(value: object, key: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for k, v in value.items():
                sub = f"{key}.{k}" if key else str(k)
                if sub in PLATFORM_WIDE_KEYS or sub == "edge.domain" or sub == "edge.hosts":
                    continue
                yield from walk(v, sub)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                yield from walk(v, f"{key}.{i}")
        elif isinstance(value, str) and "." in value:  # a host has a dot
            for word in _HOST_TOKEN.findall(value.lower()):
                yield key, word.rstrip(".-")

    yield from walk(env.model_dump(by_alias=True), "")


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

    # Every environment names a declared cluster and (when fleet.yaml declares servers) a declared server
    # on it. The loader refuses these first; here for environments made in code (``new``'s draft).
    fleet = sources.fleet.fleet
    clusters = {c.name for c in fleet.clusters}
    servers = {s.name: fleet.server_cluster(s) for s in fleet.database_servers}
    for e in ordered:
        if e.cluster.name not in clusters:
            add(
                ConfigError(
                    sources.label(e.release),
                    "cluster.name",
                    f"unknown cluster {e.cluster.name!r} (clusters of {sources.fleet.label}: "
                    f"{', '.join(sorted(clusters))}){did_you_mean(e.cluster.name, clusters)}",
                )
            )
        if servers and e.database.server not in servers:
            add(
                ConfigError(
                    sources.label(e.release),
                    "database.server",
                    f"unknown database server {e.database.server!r} (databaseServers of {sources.fleet.label}: "
                    f"{', '.join(sorted(servers))}){did_you_mean(e.database.server, servers)}",
                )
            )
        elif servers and e.cluster.name in clusters and servers[e.database.server] != e.cluster.name:
            add(
                ConfigError(
                    sources.label(e.release),
                    "database.server",
                    f"{e.database.server!r} serves cluster {servers[e.database.server]!r} ({sources.fleet.label}), "
                    f"this environment runs on {e.cluster.name!r}",
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

    # Namespaces (release and fleet) are owned by one environment on each cluster.
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    clashed: set[str] = set()
    for e in ordered:
        for key, ns in namespaces(e):
            on = (e.cluster.name, ns)
            if on in owners and owners[on][0] != e.release:
                clashed.add(ns)
                other, other_key = owners[on]
                offender, innocent = blame(e.release, other, sources)
                keys = {e.release: key, other: other_key}
                what = f"namespace {ns!r}" + (f" on cluster {e.cluster.name!r}" if len(clusters) > 1 else "")
                add(_clash(offender, innocent, keys[offender], keys[innocent], what, sources))
            owners.setdefault(on, (e.release, key))

    # A release namespace is no name a tenant's API may create (docs/guardrail.md): the API could make it
    # first and keep a RoleBinding there. An ownership clash above is the clearer error for the same name.
    for e in ordered:
        prefix = next((p for p in API_MADE_PREFIXES if e.namespace.startswith(p)), None)
        if prefix is not None and e.namespace not in clashed:
            add(
                ConfigError(
                    sources.label(e.release),
                    "namespace",
                    f"{e.namespace!r} starts with {prefix!r}, a name the tenants' APIs may create themselves (the "
                    "admission guardrail, docs/guardrail.md); choose another namespace",
                )
            )

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

    # No environment names a host another one claims (its own URLs derive from its own hosts).
    for e in ordered:
        own = {host for _, host in hosts(e)}  # a host it claims too is the clash reported above
        for key, word in named_hosts(e):
            owner = claimed.get(word)
            if owner is not None and owner[0] != e.release and word not in own:
                other, other_key = owner
                add(
                    ConfigError(
                        sources.label(e.release),
                        key,
                        f"names {word!r}, a host of {sources.label(other)} ({other_key}); a tenant's own URLs "
                        f"point at its own hosts (leave it unset to derive it from this file's edge.hosts)",
                    )
                )

    # Objects outside the release namespace have one owner: on the environment's cluster, and the Argo CD
    # Applications in the one Argo CD.
    identities: dict[tuple[str, tuple[str, str, str]], tuple[str, str]] = {
        ("", ("Application", ordered[0].argocd.namespace if ordered else "argocd", name)): ("", "")
        for name in SHARED_APPLICATIONS
    }
    for e in ordered:
        for key, ident in shared_identities(e):
            if ident[0] == "Namespace":
                continue  # the namespace rule above reports these
            at = ("" if ident[0] == "Application" else e.cluster.name, ident)
            if at in identities and identities[at][0] not in ("", e.release):
                other, other_key = identities[at]
                offender, innocent = blame(e.release, other, sources)
                keys = {e.release: key, other: other_key}
                what = f"{ident[0]} {'/'.join(p for p in ident[1:] if p)}"
                add(_clash(offender, innocent, keys[offender], keys[innocent], what, sources))
            identities.setdefault(at, (e.release, key))

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
    by_server: dict[str, list[Environment]] = {}
    for e in ordered:
        by_server.setdefault(e.database.server, []).append(e)
    for server, group in sorted(by_server.items()):
        for err in _agreement(
            group,
            sources,
            lambda e: e.database.max_connections,
            "database.maxConnections",
            f"must be the same in every environment on database server {server!r} (it has one max_connections)",
        ):
            add(err)

    # A server fleet.yaml declares holds its tenants' budgets: over it is refused, as synth refuses it.
    for err in fleet_capacity(ordered, sources, declared=True):
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


def fleet_capacity(envs: Sequence[Environment], sources: Sources, *, declared: bool = False) -> list[ConfigError]:
    """Budgets on one server. ``declared``: the servers fleet.yaml declares (errors of :func:`validate_fleet`,
    run by synth and validate alike); otherwise the others, whose max_connections only the environments state
    (capacity findings: warnings, errors under --strict)."""
    findings: list[ConfigError] = []
    by_server: dict[str, list[Environment]] = {}
    declared_max = {s.name: s.max_connections for s in sources.fleet.fleet.database_servers}
    for e in sorted(envs, key=lambda e: e.release):
        if (e.database.server in declared_max) == declared:
            by_server.setdefault(e.database.server, []).append(e)
    for server, group in sorted(by_server.items()):
        max_connections = declared_max.get(server, group[0].database.max_connections)
        where = f" ({sources.fleet.label})" if server in declared_max else ""
        room = max_connections - RESERVED_CONNECTIONS
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
                f"max_connections {max_connections}{where} "
                f"less {RESERVED_CONNECTIONS} reserved; "
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
    """Load every environment and apply the fleet's rules; raise every error (ConfigError, ConfigErrors)."""
    check_directory(directory, base)
    envs = load_environments(directory, base=base)
    sources = Sources.of(envs, directory, base)
    errors = validate_fleet(envs, sources)
    if errors:
        raise_all(errors)
    return envs, sources
