"""Stage 3, render (in one process): environments in, their manifests written into a folder.

Takes validated environments (and, for the shared charts, the fleet's slice they read:
tiers/shared.py) and a folder; gives, in that folder, ``<release>/<kind>.<name>.k8s.yaml`` for every
object of each environment's ``ReleaseChart`` (constructs/release_chart.py; namespaced objects only,
:func:`check_tenant_objects`), ``cluster/<cluster>/`` and ``argocd/`` for the shared charts
(constructs/shared_charts.py), and each release's ``REQUIRED-SECRETS.md`` and ``argocd-tenant.json``.
Each object is turned into JSON by the Python renderer (synth/python_renderer.py) or, with
``renderer="cdk8s"``, by its cdk8s object in the jsii kernel (same output), then into YAML by
synth/manifest_writer.py.

The worker processes of synth/workers.py run the same :func:`render`: :func:`worker_init`,
:func:`worker_prepare` and :func:`render_part` are what they run.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import synth.kernel  # noqa: F401  (before any binding: the jsii kernel starts on demand, in a worker too)
from tiers.errors import ConfigError, SettingError

if TYPE_CHECKING:
    from tiers.models import Environment
    from tiers.shared import SharedProps


def release_charts(scope: Any, envs: Sequence[Environment], labels: dict[str, str] | None = None) -> list[Any]:
    """One ReleaseChart per environment; a construct's :class:`SettingError` becomes a one-line ConfigError.

    Only ``SettingError`` is a config error: any other exception (a jsii failure, a bug) propagates
    as what it is and is reported as an internal failure, never as a problem of a valid file.
    """
    return [release_chart(scope, env, labels) for env in envs]


def release_chart(scope: Any, env: Environment, labels: dict[str, str] | None = None) -> Any:
    """The ReleaseChart of one environment (see :func:`release_charts`)."""
    from constructs.release_chart import ReleaseChart

    try:
        return ReleaseChart(scope, env)
    except SettingError as exc:
        label = (labels or {}).get(env.release, f"environments/{env.release}.yaml")
        raise ConfigError(label, exc.path, exc.message) from None


def render(
    envs: Sequence[Environment],
    outdir: Path,
    labels: dict[str, str] | None = None,
    shared: SharedProps | None = None,
    renderer: str = "python",
    previous: Path | None = None,
) -> None:
    """Render release charts (and, when ``shared`` is given, the shared charts) into ``outdir``.

    ``renderer``: who turns each object into JSON (constructs/api_objects.py); the output is the same.
    ``previous``: the output folder this render will replace (its files with the same bytes are
    linked, not written again: synth/files.py).
    """
    from constructs.api_objects import renderer as rendered_by

    with rendered_by(renderer), _few_collections():
        _render(envs, outdir, labels, shared, previous)


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Rendering allocates many small, short-lived, acyclic objects (freed by reference counting)
    while thousands of binding classes stay alive: the cyclic collector would rescan those again and
    again. They are frozen out of its sight and it runs a hundred times less often while rendering."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _render(
    envs: Sequence[Environment],
    outdir: Path,
    labels: dict[str, str] | None,
    shared: SharedProps | None,
    previous: Path | None,
) -> None:
    from constructs.api_objects import Root
    from constructs.shared_charts import ARGOCD, ArgoCdChart, ClusterChart, cluster_folder
    from synth import manifest_writer

    app = Root(str(outdir))
    # (folder, chart maker, the environment file a tenant folder comes from; None for a shared folder)
    charts: list[tuple[str, Callable[[], Any], str | None]] = [
        (
            env.release,
            functools.partial(release_chart, app, env, labels),
            (labels or {}).get(env.release, f"environments/{env.release}.yaml"),
        )
        for env in envs
    ]
    if shared is not None:
        props = shared
        charts += [
            (cluster_folder(c.name), functools.partial(ClusterChart, app, props, c), None) for c in props.clusters
        ]
        charts.append((ARGOCD, lambda: ArgoCdChart(app, props), None))
    # One chart at a time: built, written (same files as app.synth(), the YAML written in Python by
    # synth/manifest_writer.py) and released, so memory holds one chart, not all of them.
    for name, make, source in charts:
        chart = make()
        objects = chart.to_json()
        if source is not None:
            check_tenant_objects(source, name, objects)
        manifest_writer.write_files(outdir, manifest_writer.render_files([(name, objects)]), previous)
        chart.release()
    # Lifecycle: the human-readable list of Secrets beside each release's manifests (not applied).
    from constructs.lifecycle.required_secrets import write_required_secrets

    write_required_secrets(envs, outdir)
    # Delivery: the tenant file the ApplicationSet's Git files generator discovers (not applied either).
    write_tenant_files(envs, outdir, previous)


#: Kinds that are cluster-scoped whatever their metadata says (Kubernetes and the CRDs this project uses).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "GatewayClass",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)


def check_tenant_objects(source: str, folder: str, objects: Sequence[Any]) -> None:
    """A tenant folder holds namespaced objects only: its Argo CD project permits no cluster-scoped kind
    (docs/argocd.md), and its cluster-scoped objects are its files in the platform folder
    dist/cluster/<cluster>/. A cluster-scoped object here (a known cluster-scoped kind, or an object
    without ``metadata.namespace``: a namespaced chart stamps it on every object) is a configuration
    error naming the environment file and the object."""
    for obj in objects:
        if obj is None:
            continue
        meta = obj.get("metadata") or {}
        kind, name = obj.get("kind"), meta.get("name")
        if kind in CLUSTER_SCOPED_KINDS or not meta.get("namespace"):
            raise ConfigError(
                source,
                f"{kind}/{name}",
                f"a cluster-scoped object in the tenant folder dist/{folder}/; it belongs in the platform "
                "folder dist/cluster/<cluster>/ (tenant projects permit no cluster-scoped kind)",
            )


def write_tenant_files(envs: Sequence[Environment], outdir: Path, previous: Path | None = None) -> None:
    """Write ``<outdir>/<release>/argocd-tenant.json`` (tiers/shared.py ``tenant_record``) for each
    environment (linked from ``previous`` when the bytes are the same, as the manifests: synth/files.py)."""
    import json

    from synth.files import write_tree
    from tiers.shared import TENANT_FILE, tenant_record

    files = [
        (e.release, TENANT_FILE, (json.dumps(tenant_record(e), indent=2, sort_keys=True) + "\n").encode()) for e in envs
    ]
    write_tree(outdir, files, previous)


# --------------------------------------------------------------------------------------------------
# What a worker process runs (synth/workers.py)
# --------------------------------------------------------------------------------------------------


def worker_init(tmpdir: str | None = None) -> None:
    """Each synth worker leads its own process group, which its jsii node child (the cdk8s renderer's,
    or the YAML writer's fallback) joins.

    The parent ends a worker and any node child together with one ``killpg`` when the synth fails or
    is interrupted, or when it is done with them (synth/workers.py ``end_workers``); the group still
    belongs to the parent's session. ``tmpdir``: the worker's temporary folder (``TMPDIR`` for it and
    its node child), which the parent removes once they are ended: a killed jsii kernel never removes
    the copy of its runtime it makes in the temporary folder.
    """
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; no KeyboardInterrupt traceback
    # Spawned with SIGINT/SIGTERM blocked (synth/workers.py), so that a Ctrl-C meant for the synth
    # could not reach it while it was still in the parent's process group; now the parent ends it
    # with its group.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if tmpdir is not None:
        os.environ["TMPDIR"] = tempfile.tempdir = tmpdir


def render_part(
    envs: list[dict[str, Any]],
    outdir: str,
    labels: dict[str, str],
    shared: SharedProps | None,
    renderer: str = "python",
    previous: Path | None = None,
) -> None:
    """A worker process's share of the synth (environments travel as JSON-able dicts, validated again
    here; the shared charts' slice, already computed from all of them, as it is)."""
    from tiers.models import Environment

    render([Environment.model_validate(d) for d in envs], Path(outdir), labels, shared, renderer, previous)


def worker_prepare() -> None:
    """A render worker's first task: what rendering imports, above all the bindings (``cdk8s``,
    ``cdk8s_plus_27``: Python classes only, the jsii kernel waits until something asks it for
    something, see synth/kernel.py) and pydantic's models, about half a second."""
    import cdk8s  # noqa: F401
    import cdk8s_plus_27  # noqa: F401

    import constructs.lifecycle.required_secrets  # noqa: F401
    import constructs.release_chart  # noqa: F401
    import constructs.shared_charts  # noqa: F401

    # The CRD bindings every release or the shared charts use (the constructs import them on first use),
    # imported while the worker waits for its first task rather than in it.
    import imports.io.argoproj  # noqa: F401
    import imports.io.cert_manager  # noqa: F401
    import imports.io.envoyproxy.gateway  # noqa: F401
    import imports.io.k8s.networking.gateway  # noqa: F401
    import synth.manifest_writer  # noqa: F401
    from synth.python_renderer import tables

    tables()  # the renderer's wire tables (imports/wire_tables.json), read once per process
