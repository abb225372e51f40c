"""ArgoCdApplications: the Argo CD objects of ``dist/argocd/`` (docs/argocd.md).

- **One AppProject per tenant** (``AppProject.<release>``): destinations are exactly the tenant's
  namespaces (its release namespace and its fleet namespaces, by name, never a glob: ``fleet-acme-*``
  would also match ``fleet-acme-eu-pilot`` of a tenant in namespace ``acme-eu``) on its cluster's
  destination server; source repository only the project's; no cluster-scoped kind at all (an empty
  ``clusterResourceWhitelist``); and a ``namespaceResourceBlacklist`` of what a tenant folder never holds
  and must never sync: Secrets (no secret material in dist/; the 1Password Operator writes them),
  Endpoints and EndpointSlices (they would steer another Service's traffic) and every ``argoproj.io``
  kind (an Application or AppProject in a tenant namespace). Everything a tenant folder holds is
  permitted (ResourceQuota and LimitRange of its fleet namespaces included); tests/test_argocd_projects.py
  applies Argo CD's own rules to every object.
- **The platform AppProject** ``iotistica-platform``: the platform Applications and the app-of-apps; only
  the cluster-scoped kinds the platform folders hold, and in namespaces only Argo CD's own kinds.
- **The tenants' ApplicationSet** ``iotistica-tenants``: tenant-agnostic. Its Git files generator finds
  ``dist/*/argocd-tenant.json`` (written by the synth into each tenant folder, tiers/shared.py
  ``tenant_record``) and makes one Application per tenant, named after the release, in the tenant's
  project, syncing ``dist/<release>`` (``*.yaml`` only) into its namespace on its cluster. No
  ``CreateNamespace``: the platform Application creates the namespaces. RollingSync rolls a change out in
  tier order (demo, starter, standard, enterprise), each step at most ``ROLLOUT`` Applications at a time;
  every tier label value is in exactly one step. ``automated.prune`` stays in the template: the
  RollingSync controller turns automated sync off but reads ``prune`` from it for the syncs it triggers
  (argo-cd applicationset/progressivesync/progressive_sync.go ``SyncDesiredApplications``); without
  progressive syncs enabled, the automated policy applies to every tenant at once. The ApplicationSet
  never deletes an Application (``applicationsSync: create-update``) and deleting it leaves them
  (``preserveResourcesOnDeletion``).
- **One platform Application per cluster**, ``iotistica-cluster-<cluster>``, syncs
  ``dist/cluster/<cluster>/`` to that cluster.
- The app-of-apps ``iotistica-apps`` syncs ``dist/argocd/`` itself: apply it once by hand
  (``kubectl apply -f dist/argocd/Application.iotistica-apps.k8s.yaml``); from then on adding, changing or
  removing an environment file is a commit.

Settings come from each environment's ``argocd`` block (tiers/models/lifecycle.py ``ArgoCd``) and
``cluster.name``, through the fleet's slice ``ArgoCdProps`` (tiers/shared.py). Everything shared has one
source, so every environment must agree on ``repoUrl``, ``targetRevision`` and ``namespace``; a
disagreement is a configuration error naming the environment (tiers/shared.py ``common_settings``).
"""

from __future__ import annotations

from cdk8s import ApiObjectMetadata

from constructs.api_objects import Component, Scope, api_object
from constructs.platform import TIER_LABEL
from tiers import TIERS
from tiers.shared import (
    APP_OF_APPS,
    PLATFORM_PROJECT,
    TENANT_FILE,
    TENANTS_APPSET,
    ArgoCdProps,
    cluster_app,
)

#: The cluster Argo CD runs in (the app-of-apps' destination: dist/argocd/ is applied there).
IN_CLUSTER = "https://kubernetes.default.svc"
#: The label of a tenant Application naming its cluster.
CLUSTER_LABEL = "iotistica.com/cluster"
#: RollingSync: at most this many Applications of a tier sync at once (each waits for the Healthy ones
#: before it; the next tier starts when every Application of this one is Healthy).
ROLLOUT = {"demo": 10, "starter": 10, "standard": 5, "enterprise": 2}
#: Sync waves of the app-of-apps: projects first, then the Applications and the ApplicationSet using them.
PROJECT_WAVE = "-1"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
#: What a tenant may never sync, though namespaced (see the module docstring).
TENANT_BLACKLIST = (("", "Secret"), ("", "Endpoints"), ("discovery.k8s.io", "EndpointSlice"), ("argoproj.io", "*"))
#: The cluster-scoped kinds of the platform folders (constructs/shared_charts.py ClusterChart).
PLATFORM_CLUSTER_KINDS = (
    ("", "Namespace"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
)
#: The namespaced kinds of dist/argocd/ (the app-of-apps).
PLATFORM_NAMESPACED_KINDS = (
    ("argoproj.io", "AppProject"),
    ("argoproj.io", "Application"),
    ("argoproj.io", "ApplicationSet"),
)

if tuple(ROLLOUT) != TIERS:
    raise AssertionError("one RollingSync step per tier, in tier order")


def _labels(component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": "argocd",
        "app.kubernetes.io/managed-by": "cdk8s",
        "app.kubernetes.io/name": "argocd-application",
        "app.kubernetes.io/part-of": "iotistica",
        **(extra or {}),
    }


class ArgoCdApplications(Component):
    """Outputs: ``names`` (every Application, sorted), ``projects`` (every AppProject, sorted)."""

    def __init__(self, scope: Scope, id: str, *, props: ArgoCdProps) -> None:
        super().__init__(scope, id)
        from imports.io.argoproj import (
            Application,
            ApplicationSpec,
            ApplicationSpecDestination,
            ApplicationSpecSource,
            ApplicationSpecSourceDirectory,
            ApplicationSpecSyncPolicy,
            ApplicationSpecSyncPolicyAutomated,
            ApplicationSpecSyncPolicyRetry,
            ApplicationSpecSyncPolicyRetryBackoff,
        )

        self.props = props
        shared = props.shared
        self.names: list[str] = []
        self.projects: list[str] = []
        for r in props.releases:
            self._tenant_project(r.release, r.tier, r.cluster, dict(props.clusters)[r.cluster], r.namespaces)
        self._platform_project()
        self._application_set()

        def app(name: str, path: str, server: str, namespace: str | None, component: str) -> None:
            api_object(
                Application,
                self,
                name,
                metadata=ApiObjectMetadata(name=name, namespace=shared.namespace, labels=_labels(component)),
                spec=ApplicationSpec(
                    project=PLATFORM_PROJECT,
                    source=ApplicationSpecSource(
                        repo_url=shared.repo_url,
                        target_revision=shared.target_revision,
                        path=path,
                        directory=ApplicationSpecSourceDirectory(include="*.yaml", recurse=False),
                    ),
                    destination=ApplicationSpecDestination(server=server, namespace=namespace),
                    sync_policy=ApplicationSpecSyncPolicy(
                        automated=ApplicationSpecSyncPolicyAutomated(prune=True, self_heal=True),
                        retry=ApplicationSpecSyncPolicyRetry(
                            limit=5,
                            backoff=ApplicationSpecSyncPolicyRetryBackoff(duration="30s", factor=2, max_duration="10m"),
                        ),
                    ),
                ),
            )
            self.names.append(name)

        for cluster, server in props.clusters:
            app(cluster_app(cluster), f"dist/cluster/{cluster}", server, None, "cluster")
        app(APP_OF_APPS, "dist/argocd", IN_CLUSTER, shared.namespace, "app-of-apps")
        self.names.sort()
        self.projects.sort()

    def _tenant_project(self, release: str, tier: str, cluster: str, server: str, namespaces: tuple[str, ...]) -> None:
        from imports.io.argoproj import (
            AppProject,
            AppProjectSpec,
            AppProjectSpecDestinations,
            AppProjectSpecNamespaceResourceBlacklist,
        )

        shared = self.props.shared
        api_object(
            AppProject,
            self,
            f"project-{release}",
            metadata=ApiObjectMetadata(
                name=release,
                namespace=shared.namespace,
                labels=_labels("project", {CLUSTER_LABEL: cluster, TIER_LABEL: tier}),
                annotations={SYNC_WAVE: PROJECT_WAVE},
            ),
            spec=AppProjectSpec(
                description=f"Tenant {release} ({tier}) on cluster {cluster}: its own namespaces only",
                source_repos=[shared.repo_url],
                destinations=[AppProjectSpecDestinations(server=server, namespace=ns) for ns in namespaces],
                cluster_resource_whitelist=[],
                namespace_resource_blacklist=[
                    AppProjectSpecNamespaceResourceBlacklist(group=g, kind=k) for g, k in TENANT_BLACKLIST
                ],
            ),
        )
        self.projects.append(release)

    def _platform_project(self) -> None:
        from imports.io.argoproj import (
            AppProject,
            AppProjectSpec,
            AppProjectSpecClusterResourceWhitelist,
            AppProjectSpecDestinations,
            AppProjectSpecNamespaceResourceWhitelist,
        )

        shared = self.props.shared
        # The app-of-apps' namespace on the cluster Argo CD runs in; the platform folders are cluster-scoped
        # (their Applications have no destination namespace: Argo CD matches "" then).
        destinations = [AppProjectSpecDestinations(server=IN_CLUSTER, namespace=shared.namespace)]
        destinations += [AppProjectSpecDestinations(server=server, namespace="") for _, server in self.props.clusters]
        api_object(
            AppProject,
            self,
            f"project-{PLATFORM_PROJECT}",
            metadata=ApiObjectMetadata(
                name=PLATFORM_PROJECT,
                namespace=shared.namespace,
                labels=_labels("project"),
                annotations={SYNC_WAVE: PROJECT_WAVE},
            ),
            spec=AppProjectSpec(
                description="The platform: cluster-scoped objects of dist/cluster/<cluster>/ and dist/argocd/",
                source_repos=[shared.repo_url],
                destinations=destinations,
                cluster_resource_whitelist=[
                    AppProjectSpecClusterResourceWhitelist(group=g, kind=k) for g, k in PLATFORM_CLUSTER_KINDS
                ],
                namespace_resource_whitelist=[
                    AppProjectSpecNamespaceResourceWhitelist(group=g, kind=k) for g, k in PLATFORM_NAMESPACED_KINDS
                ],
            ),
        )
        self.projects.append(PLATFORM_PROJECT)

    def _application_set(self) -> None:
        from constructs.api_objects import union
        from imports.io.argoproj import (
            ApplicationSet,
            ApplicationSetSpec,
            ApplicationSetSpecGenerators,
            ApplicationSetSpecGeneratorsGit,
            ApplicationSetSpecGeneratorsGitFiles,
            ApplicationSetSpecStrategy,
            ApplicationSetSpecStrategyRollingSync,
            ApplicationSetSpecStrategyRollingSyncSteps,
            ApplicationSetSpecStrategyRollingSyncStepsMatchExpressions,
            ApplicationSetSpecStrategyRollingSyncStepsMaxUpdate,
            ApplicationSetSpecSyncPolicy,
            ApplicationSetSpecSyncPolicyApplicationsSync,
            ApplicationSetSpecTemplate,
            ApplicationSetSpecTemplateMetadata,
            ApplicationSetSpecTemplateSpec,
            ApplicationSetSpecTemplateSpecDestination,
            ApplicationSetSpecTemplateSpecSource,
            ApplicationSetSpecTemplateSpecSourceDirectory,
            ApplicationSetSpecTemplateSpecSyncPolicy,
            ApplicationSetSpecTemplateSpecSyncPolicyAutomated,
            ApplicationSetSpecTemplateSpecSyncPolicyRetry,
            ApplicationSetSpecTemplateSpecSyncPolicyRetryBackoff,
        )

        shared = self.props.shared
        steps = [
            ApplicationSetSpecStrategyRollingSyncSteps(
                match_expressions=[
                    ApplicationSetSpecStrategyRollingSyncStepsMatchExpressions(
                        key=TIER_LABEL, operator="In", values=[tier]
                    )
                ],
                max_update=union(ApplicationSetSpecStrategyRollingSyncStepsMaxUpdate, "from_number", most),
            )
            for tier, most in ROLLOUT.items()
        ]
        api_object(
            ApplicationSet,
            self,
            TENANTS_APPSET,
            metadata=ApiObjectMetadata(name=TENANTS_APPSET, namespace=shared.namespace, labels=_labels("tenants")),
            spec=ApplicationSetSpec(
                go_template=True,
                go_template_options=["missingkey=error"],
                generators=[
                    ApplicationSetSpecGenerators(
                        git=ApplicationSetSpecGeneratorsGit(
                            repo_url=shared.repo_url,
                            revision=shared.target_revision,
                            files=[ApplicationSetSpecGeneratorsGitFiles(path=f"dist/*/{TENANT_FILE}")],
                        )
                    )
                ],
                strategy=ApplicationSetSpecStrategy(
                    type="RollingSync", rolling_sync=ApplicationSetSpecStrategyRollingSync(steps=steps)
                ),
                sync_policy=ApplicationSetSpecSyncPolicy(
                    applications_sync=ApplicationSetSpecSyncPolicyApplicationsSync.CREATE_HYPHEN_UPDATE,
                    preserve_resources_on_deletion=True,
                ),
                template=ApplicationSetSpecTemplate(
                    metadata=ApplicationSetSpecTemplateMetadata(
                        name="{{ .release }}",
                        namespace=shared.namespace,
                        labels=_labels("release", {CLUSTER_LABEL: "{{ .cluster.name }}", TIER_LABEL: "{{ .tier }}"}),
                    ),
                    spec=ApplicationSetSpecTemplateSpec(
                        project="{{ .project }}",
                        source=ApplicationSetSpecTemplateSpecSource(
                            repo_url=shared.repo_url,
                            target_revision=shared.target_revision,
                            path="{{ .path.path }}",
                            directory=ApplicationSetSpecTemplateSpecSourceDirectory(include="*.yaml", recurse=False),
                        ),
                        destination=ApplicationSetSpecTemplateSpecDestination(
                            server="{{ .cluster.server }}", namespace="{{ .namespace }}"
                        ),
                        sync_policy=ApplicationSetSpecTemplateSpecSyncPolicy(
                            automated=ApplicationSetSpecTemplateSpecSyncPolicyAutomated(prune=True, self_heal=True),
                            retry=ApplicationSetSpecTemplateSpecSyncPolicyRetry(
                                limit=5,
                                backoff=ApplicationSetSpecTemplateSpecSyncPolicyRetryBackoff(
                                    duration="30s", factor=2, max_duration="10m"
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        )
