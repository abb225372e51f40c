"""ArgoCdApplications: the Argo CD ``Application`` objects of ``dist/argocd/``.

- One Application per environment, named after the release: source ``<repoUrl>@<targetRevision>``, path
  ``dist/<release>``, only ``*.yaml`` (so ``REQUIRED-SECRETS.md`` beside the manifests is never applied),
  destination the release namespace; automated sync with prune and self-heal, ``CreateNamespace=true``,
  and retries with back-off (a first sync may race the 1Password Operator writing Secrets).
- ``iotistica-cluster`` syncs ``dist/cluster/`` (cluster-scoped objects shared by every release).
- The app-of-apps ``iotistica-apps`` syncs ``dist/argocd/`` itself: apply it once by hand
  (``kubectl apply -f dist/argocd/Application.iotistica-apps.k8s.yaml``); from then on adding, changing or
  removing an environment file is a commit.

Settings come from each environment's ``argocd`` block (tiers/models/lifecycle.py ``ArgoCd``), through the
fleet's slice ``ArgoCdProps`` (tiers/shared.py). The app-of-apps has one source, so every environment must
agree on ``repoUrl``, ``targetRevision`` and ``namespace``; a disagreement is a configuration error naming
the environment (tiers/shared.py ``common_settings``).
"""

from __future__ import annotations

from cdk8s import ApiObjectMetadata

from constructs.api_objects import Component, Scope, api_object
from tiers.models import ArgoCd
from tiers.shared import APP_OF_APPS, CLUSTER_APP, ArgoCdProps


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": "argocd",
        "app.kubernetes.io/managed-by": "cdk8s",
        "app.kubernetes.io/name": "argocd-application",
        "app.kubernetes.io/part-of": "iotistica",
    }


class ArgoCdApplications(Component):
    """Outputs: ``names`` (every Application, sorted)."""

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

        shared = props.shared
        self.names: list[str] = []

        def app(
            name: str, settings: ArgoCd, path: str, namespace: str | None, component: str, options: list[str]
        ) -> None:
            api_object(
                Application,
                self,
                name,
                metadata=ApiObjectMetadata(name=name, namespace=shared.namespace, labels=_labels(component)),
                spec=ApplicationSpec(
                    project=settings.project,
                    source=ApplicationSpecSource(
                        repo_url=settings.repo_url,
                        target_revision=settings.target_revision,
                        path=path,
                        directory=ApplicationSpecSourceDirectory(include="*.yaml", recurse=False),
                    ),
                    destination=ApplicationSpecDestination(server=settings.destination_server, namespace=namespace),
                    sync_policy=ApplicationSpecSyncPolicy(
                        automated=ApplicationSpecSyncPolicyAutomated(prune=True, self_heal=True),
                        sync_options=options or None,
                        retry=ApplicationSpecSyncPolicyRetry(
                            limit=5,
                            backoff=ApplicationSpecSyncPolicyRetryBackoff(duration="30s", factor=2, max_duration="10m"),
                        ),
                    ),
                ),
            )
            self.names.append(name)

        for r in props.releases:
            app(r.release, r.settings, f"dist/{r.release}", r.namespace, "release", ["CreateNamespace=true"])
        app(CLUSTER_APP, shared, "dist/cluster", None, "cluster", [])
        app(APP_OF_APPS, shared, "dist/argocd", shared.namespace, "app-of-apps", [])
        self.names.sort()
