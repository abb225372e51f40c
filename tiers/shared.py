"""What the shared charts (``dist/cluster/``, ``dist/argocd/``) read of the whole fleet: one frozen
slice, computed where the fleet is loaded.

``ClusterChart`` and ``ArgoCdChart`` (constructs/shared_charts.py) are built from :class:`SharedProps`
alone, never from the environments. So a synth hands its render worker this slice instead of every
environment, and keys the shared charts' cache entry by it: an environment change that touches no
field here (a replica count, a resource limit) leaves both folders as they were. This module imports
no cdk8s binding (the synth computes the slice before its worker is ready).

The two fleet-wide settings these charts need are the same in every environment, and a disagreement
is a :class:`ConfigError` naming the environment: ``cluster.admissionPolicies`` (one cluster runs
``dist/cluster/``) and ``argocd.repoUrl``/``targetRevision``/``namespace`` (the app-of-apps has one
source).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tiers.errors import ConfigError
from tiers.models import AdmissionPolicyVersion, ArgoCd, Environment

#: The shared Argo CD Applications of dist/argocd/ (no release may take their names).
APP_OF_APPS = "iotistica-apps"
CLUSTER_APP = "iotistica-cluster"
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


class ArgoCdRelease(_Slice):
    """The Argo CD Application of one release."""

    #: The release name: the Application's name and its folder ``dist/<release>``.
    release: str
    #: The destination namespace (the release namespace).
    namespace: str
    #: The environment's ``argocd`` block.
    settings: ArgoCd


class ArgoCdProps(_Slice):
    """Every Application of dist/argocd/."""

    #: The settings every environment shares (the app-of-apps' and the cluster Application's).
    shared: ArgoCd
    #: One per release, sorted by release.
    releases: tuple[ArgoCdRelease, ...]


class SharedProps(_Slice):
    """All the shared charts read of the fleet."""

    #: The admission policies of dist/cluster/, or None when the setting is ``none``.
    admission: ApiAdmissionPoliciesProps | None
    #: The Applications of dist/argocd/.
    argocd: ArgoCdProps


def shared_props(envs: Sequence[Environment], folders: Collection[str] | None = None) -> SharedProps:
    """The slice of ``envs`` (every environment of the fleet) the shared charts are built from.

    ``folders``: when given, the releases whose folder the output will hold (a partial synth's: those
    it writes and those already there); only they get an Argo CD Application, never one whose
    ``path: dist/<release>`` does not exist. The rest of the slice still covers every environment.
    """
    return SharedProps(admission=policies_props(envs), argocd=argocd_props(envs, folders))


def admission_setting(envs: Sequence[Environment]) -> AdmissionPolicyVersion:
    """``cluster.admissionPolicies``, the same in every environment (a disagreement is a ConfigError)."""
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
                f"must be the same in every environment (one cluster runs dist/cluster/): {first.release} has "
                f"{theirs!r}, got {mine!r}",
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
            ArgoCdRelease(release=e.release, namespace=e.namespace, settings=e.argocd)
            for e in sorted(envs, key=lambda e: e.release)
            if folders is None or e.release in folders
        ),
    )
