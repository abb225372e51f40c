"""What the shared charts (``dist/cluster/<cluster>/``, ``dist/argocd/``) read of the whole fleet: one
frozen slice, computed where the fleet is loaded.

``ClusterChart`` and ``ArgoCdChart`` (constructs/shared_charts.py) are built from :class:`SharedProps`
alone, never from the environments. So a synth hands its render worker this slice instead of every
environment, and keys the shared charts' cache entry by it: an environment change that touches no
field here (a replica count, a resource limit) leaves both folders as they were. This module imports
no cdk8s binding (the synth computes the slice before its worker is ready).

The two fleet-wide settings these charts need are the same in every environment, and a disagreement
is a :class:`ConfigError` naming the environment: ``cluster.admissionPolicies`` and
``argocd.repoUrl``/``targetRevision``/``namespace`` (the app-of-apps has one source). Per cluster
(``cluster.name``), one Argo CD destination (``argocd.destinationServer``), and never one destination for
two clusters.

Tenancy (docs/argocd.md): a tenant's cluster-scoped objects (its Namespaces, its ClusterRoleBinding)
are rendered into its cluster's platform folder ``dist/cluster/<cluster>/``, one file each, from
:class:`TenantClusterObjects`; its Argo CD AppProject into ``dist/argocd/`` from :class:`ArgoCdRelease`;
its Application comes from the tenant-agnostic ApplicationSet, which discovers it through the file
:data:`TENANT_FILE` the synth writes into its folder (:func:`tenant_record`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tiers.errors import ConfigError
from tiers.models import AdmissionPolicyVersion, ArgoCd, Environment, Fleet

#: The shared Argo CD objects of dist/argocd/ (no release may take their names): the app-of-apps, the
#: platform Applications ``iotistica-cluster-<cluster>`` (one per cluster; before the tenancy layout one
#: ``iotistica-cluster`` synced dist/cluster/), the platform AppProject and the tenants' ApplicationSet.
APP_OF_APPS = "iotistica-apps"
CLUSTER_APP = "iotistica-cluster"
PLATFORM_PROJECT = "iotistica-platform"
TENANTS_APPSET = "iotistica-tenants"
#: The file the synth writes into each tenant's folder for the ApplicationSet's Git files generator (never
#: applied: the tenant's Application includes only ``*.yaml``).
TENANT_FILE = "argocd-tenant.json"
#: The Argo CD settings every environment shares: (YAML key, attribute).
SHARED_FIELDS = (("repoUrl", "repo_url"), ("targetRevision", "target_revision"), ("namespace", "namespace"))


class _Slice(BaseModel):
    """Frozen, no unknown fields, snake_case (these models are Python-only, never read from YAML)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiAdmissionPoliciesProps(_Slice):
    """The guardrail of the API's cluster-wide grant (platform-facts §16). It names no tenant: the policies
    key on the requesting ServiceAccount's namespace and the tenant labels of the target namespace
    (constructs/isolation/api_admission_policies.py), so a tenant added or removed changes nothing here."""

    #: ``admissionregistration.k8s.io`` version of the policies (``cluster.admissionPolicies``).
    api_version: Literal["v1", "v1beta1"]


def cluster_app(cluster: str) -> str:
    """The platform Application of one cluster, syncing ``dist/cluster/<cluster>/``."""
    return f"{CLUSTER_APP}-{cluster}"


class TenantFleet(_Slice):
    """One fleet Namespace of a tenant."""

    #: ``fleet-<release namespace>-<fleet>``.
    namespace: str
    #: The fleet's settings (its labels and annotations come from them).
    fleet: Fleet


class TenantClusterObjects(_Slice):
    """The cluster-scoped objects of one tenant, written into its cluster's platform folder."""

    release: str
    namespace: str
    tier: str
    #: ``migration.workloads`` under ``selectorLabels: helm`` (their objects' ``app.kubernetes.io/name``).
    helm_selectors: tuple[str, ...]
    #: The release Namespace's Pod Security level, or None when ``podSecurity.manageNamespace`` is false.
    namespace_level: Literal["baseline", "restricted"] | None
    #: Whether the API's ServiceAccount gets its ClusterRoleBinding (``fleetNamespaces.virtualAgentManager``).
    cluster_access: bool
    #: ``fleetNamespaces.podSecurityEnforce``.
    fleet_enforce: Literal["baseline", "restricted"]
    #: The fleet Namespaces (none unless ``fleetNamespaces.enabled``), in file order.
    fleets: tuple[TenantFleet, ...]


class ClusterSlice(_Slice):
    """One cluster: its platform folder ``dist/cluster/<name>/`` and platform Application."""

    name: str
    #: The Argo CD destination server of every environment on this cluster.
    server: str
    #: Every tenant on this cluster whose folder the output holds, sorted by release.
    tenants: tuple[TenantClusterObjects, ...]
    #: The admission policies of this cluster's platform folder (its environments' ``cluster.admissionPolicies``,
    #: which fleet.yaml derives from the cluster's Kubernetes minor), or None when the setting is ``none``.
    admission: ApiAdmissionPoliciesProps | None


class ArgoCdRelease(_Slice):
    """The Argo CD AppProject and tenant record of one release (its Application comes from the
    ApplicationSet)."""

    #: The release name: the Application's and the AppProject's name, and its folder ``dist/<release>``.
    release: str
    #: The destination namespace (the release namespace).
    namespace: str
    #: The tier: the RollingSync step of its Application.
    tier: str
    #: Its cluster (``cluster.name``).
    cluster: str
    #: Every namespace its folder syncs into: the release namespace and its fleet namespaces, sorted.
    namespaces: tuple[str, ...]
    #: The environment's ``argocd`` block.
    settings: ArgoCd


class ArgoCdProps(_Slice):
    """Every Argo CD object of dist/argocd/."""

    #: The settings every environment shares (the app-of-apps', the ApplicationSet's and the platform's).
    shared: ArgoCd
    #: One per release, sorted by release.
    releases: tuple[ArgoCdRelease, ...]
    #: Every cluster of the fleet: (name, destination server), sorted by name.
    clusters: tuple[tuple[str, str], ...]


class SharedProps(_Slice):
    """All the shared charts read of the fleet."""

    #: The Argo CD objects of dist/argocd/.
    argocd: ArgoCdProps
    #: The platform folders dist/cluster/<cluster>/, sorted by name.
    clusters: tuple[ClusterSlice, ...]


def shared_props(envs: Sequence[Environment], folders: Collection[str] | None = None) -> SharedProps:
    """The slice of ``envs`` (every environment of the fleet) the shared charts are built from.

    ``folders``: when given, the releases whose folder the output will hold (a partial synth's: those
    it writes and those already there); only they get an Argo CD Application, never one whose
    ``path: dist/<release>`` does not exist. The rest of the slice still covers every environment.
    """
    return SharedProps(argocd=argocd_props(envs, folders), clusters=cluster_slices(envs, folders))


def cluster_servers(envs: Sequence[Environment], label: Callable[[str], str] | None = None) -> dict[str, str]:
    """Each cluster's Argo CD destination server (``cluster.name`` -> ``argocd.destinationServer``).

    A cluster named with two destinations, or one destination under two names, is a ConfigError naming
    the environment that departs (the later release by name); ``label`` names its file.
    """
    named = label or (lambda release: f"environments/{release}.yaml")
    servers: dict[str, tuple[str, str]] = {}
    names: dict[str, tuple[str, str]] = {}
    for e in sorted(envs, key=lambda e: e.release):
        name, server = e.cluster.name, e.argocd.destination_server
        if name in servers and servers[name][0] != server:
            raise ConfigError(
                named(e.release),
                "argocd.destinationServer",
                f"cluster {name!r} has one Argo CD destination: {servers[name][1]} has {servers[name][0]!r}, "
                f"got {server!r}",
            )
        if server in names and names[server][0] != name:
            raise ConfigError(
                named(e.release),
                "cluster.name",
                f"destination {server!r} is cluster {names[server][0]!r} ({names[server][1]}); two clusters "
                f"never share one destination, got {name!r}",
            )
        servers.setdefault(name, (server, e.release))
        names.setdefault(server, (name, e.release))
    return {name: server for name, (server, _) in sorted(servers.items())}


def tenant_namespaces(env: Environment) -> tuple[str, ...]:
    """Every namespace a tenant's folder syncs into: its release namespace and its fleet namespaces."""
    fleets = env.fleet_namespaces
    owned = {env.namespace} | ({env.fleet_namespace(f.name) for f in fleets.fleets} if fleets.enabled else set())
    return tuple(sorted(owned))


def tenant_cluster_objects(env: Environment) -> TenantClusterObjects:
    """What one tenant puts into its cluster's platform folder."""
    fleets = env.fleet_namespaces
    migration = env.migration
    return TenantClusterObjects(
        release=env.release,
        namespace=env.namespace,
        tier=env.tier,
        helm_selectors=tuple(sorted(migration.workloads)) if migration.selector_labels == "helm" else (),
        namespace_level=env.pod_security.level if env.pod_security.manage_namespace else None,
        cluster_access=fleets.virtual_agent_manager,
        fleet_enforce=fleets.pod_security_enforce,
        fleets=tuple(TenantFleet(namespace=env.fleet_namespace(f.name), fleet=f) for f in fleets.fleets)
        if fleets.enabled
        else (),
    )


def cluster_slices(envs: Sequence[Environment], folders: Collection[str] | None = None) -> tuple[ClusterSlice, ...]:
    """Every cluster of ``envs`` and the tenants on it (only those in ``folders``, when given)."""
    servers = cluster_servers(envs)
    ordered = sorted(envs, key=lambda e: e.release)
    on: dict[str, list[Environment]] = {}
    for e in ordered:
        on.setdefault(e.cluster.name, []).append(e)
    return tuple(
        ClusterSlice(
            name=name,
            server=server,
            tenants=tuple(tenant_cluster_objects(e) for e in on[name] if folders is None or e.release in folders),
            admission=policies_props(on[name]),
        )
        for name, server in servers.items()
    )


def tenant_record(env: Environment) -> dict[str, object]:
    """The tenant file (:data:`TENANT_FILE`) of one environment: the parameters of its Application in
    the ApplicationSet (the Git files generator flattens nothing: the template reads ``.cluster.server``).
    The generator adds ``path`` itself (the folder of the file), so no key here is named ``path``."""
    return {
        "cluster": {"name": env.cluster.name, "server": env.argocd.destination_server},
        "namespace": env.namespace,
        "project": env.release,
        "release": env.release,
        "tier": env.tier,
    }


def admission_setting(envs: Sequence[Environment]) -> AdmissionPolicyVersion:
    """``cluster.admissionPolicies`` of the environments of one cluster, the same in each (a disagreement is a
    ConfigError: one platform folder holds the cluster's policies)."""
    ordered = sorted(envs, key=lambda e: e.release)
    if not ordered:
        return "v1"
    first = ordered[0]
    for e in ordered[1:]:
        mine, theirs = e.cluster.admission_policies, first.cluster.admission_policies
        if mine != theirs:
            raise ConfigError(
                f"environments/{e.release}.yaml",
                "cluster.admissionPolicies",
                f"must be the same in every environment on cluster {e.cluster.name!r} (its platform folder "
                f"dist/cluster/{e.cluster.name}/ holds one set of policies): {first.release} has {theirs!r}, "
                f"got {mine!r}",
            )
    return first.cluster.admission_policies


def granted(env: Environment) -> bool:
    """Does this release's API ServiceAccount hold the cluster-wide ClusterRoleBinding?"""
    return env.fleet_namespaces.virtual_agent_manager


def policies_props(envs: Sequence[Environment]) -> ApiAdmissionPoliciesProps | None:
    """The props for all environments, or None when the setting is ``none``.

    The policies name no tenant, so they are there whatever the fleet: the first release that holds the
    grant adds no shared file (docs/guardrail.md)."""
    version = admission_setting(envs)
    if version == "none":
        return None
    return ApiAdmissionPoliciesProps(api_version=version)


def common_settings(envs: Sequence[Environment]) -> ArgoCd:
    """The Argo CD settings every environment shares (defaults when there is none)."""
    ordered = sorted(envs, key=lambda e: e.release)
    for e in ordered:
        if e.release in (APP_OF_APPS, CLUSTER_APP):
            raise ConfigError(e.release, "release", f"{e.release!r} is the name of a shared Argo CD Application")
        if e.release in (PLATFORM_PROJECT, TENANTS_APPSET) or e.release.startswith(f"{CLUSTER_APP}-"):
            raise ConfigError(e.release, "release", f"{e.release!r} is the name of a shared Argo CD object")
    if not ordered:
        return ArgoCd.model_validate({})
    first = ordered[0]
    for e in ordered[1:]:
        for key, attr in SHARED_FIELDS:
            mine, theirs = getattr(e.argocd, attr), getattr(first.argocd, attr)
            if mine != theirs:
                raise ConfigError(
                    e.release,
                    f"argocd.{key}",
                    f"must be the same in every environment (the app-of-apps syncs dist/argocd/ from one "
                    f"source): {first.release} has {theirs!r}, got {mine!r}",
                )
    return first.argocd


def argocd_props(envs: Sequence[Environment], folders: Collection[str] | None = None) -> ArgoCdProps:
    """The Applications of ``envs`` (only of the releases in ``folders``, when given: see
    :func:`shared_props`), and the shared settings every environment agrees on."""
    return ArgoCdProps(
        shared=common_settings(envs),
        releases=tuple(
            ArgoCdRelease(
                release=e.release,
                namespace=e.namespace,
                tier=e.tier,
                cluster=e.cluster.name,
                namespaces=tenant_namespaces(e),
                settings=e.argocd,
            )
            for e in sorted(envs, key=lambda e: e.release)
            if folders is None or e.release in folders
        ),
        clusters=tuple(cluster_servers(envs).items()),
    )
