"""Kubernetes objects of a chart: the one call every construct declares a manifest with.

Every manifest is declared with its typed L1 binding (``k8s.KubeDeployment``, ``gw.HttpRoute``,
``cdk8s.ApiObject``) and its typed props::

    api_object(k8s.KubeDeployment, scope, "Deployment", metadata=k8s.ObjectMeta(...), spec=...)

Charts that hold such objects derive from :class:`ObjectChart`, under a :class:`Root` (where cdk8s has
its ``Chart`` and ``App``); ``to_json()`` returns their manifests, and the platform's constructs under
a chart are :class:`Component` nodes.

Two renderers stand behind them (:func:`renderer`), with the same output:

- ``"python"`` (what a synth ships): the object stays in Python and ``to_json()`` is the synth
  engine's Python renderer (synth/python_renderer.py). None of these classes is a kernel object then,
  so a synth never starts the jsii kernel (synth/kernel.py defers the bindings' assembly loads until
  something asks the kernel for something).
- ``"cdk8s"``: each is backed by the cdk8s object it stands for, created in the jsii kernel, which
  renders itself. ``tests/test_api_objects.py`` and ``app.py --renderer cdk8s`` prove the two give the
  same JSON and the same dist/ for every object.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from functools import cache
from typing import Any

import cdk8s
from cdk8s import Chart

from constructs import Construct
from synth.python_renderer import Unsupported, render, tables

RENDERERS = ("python", "cdk8s")

_renderer = "python"


@contextlib.contextmanager
def renderer(name: str) -> Iterator[None]:
    """Objects created inside the block use renderer ``name`` (``"python"`` or ``"cdk8s"``)."""
    global _renderer
    if name not in RENDERERS:
        raise ValueError(f"renderer must be one of {RENDERERS}, got {name!r}")
    previous, _renderer = _renderer, name
    try:
        yield
    finally:
        _renderer = previous


def current_renderer() -> str:
    return _renderer


# --------------------------------------------------------------------------------------------------
# JSON patches (RFC 6902), as cdk8s.JsonPatch applies them
# --------------------------------------------------------------------------------------------------


class JsonPatch:
    """One patch operation; ``to_cdk8s()`` is the same operation for an object the kernel renders."""

    __slots__ = ("op", "path", "value")

    def __init__(self, op: str, path: str, value: Any = None) -> None:
        self.op, self.path, self.value = op, path, value

    @staticmethod
    def add(path: str, value: Any) -> JsonPatch:
        return JsonPatch("add", path, value)

    @staticmethod
    def remove(path: str) -> JsonPatch:
        return JsonPatch("remove", path)

    @staticmethod
    def replace(path: str, value: Any) -> JsonPatch:
        return JsonPatch("replace", path, value)

    def to_cdk8s(self) -> cdk8s.JsonPatch:
        if self.op == "remove":
            return cdk8s.JsonPatch.remove(self.path)
        return getattr(cdk8s.JsonPatch, self.op)(self.path, self.value)

    def apply(self, doc: dict[str, Any]) -> None:
        """Apply to ``doc`` in place (``fast-json-patch``'s ``applyOperation`` without validation)."""
        if not self.path.startswith("/"):
            raise Unsupported(f"JSON patch path {self.path!r} is not absolute")
        keys = [k.replace("~1", "/").replace("~0", "~") for k in self.path[1:].split("/")]
        parent: Any = doc
        for key in keys[:-1]:
            parent = parent[int(key)] if isinstance(parent, list) else parent[key]
        last = keys[-1]
        value = copy.deepcopy(self.value)  # cdk8s clones the operations before applying them
        if isinstance(parent, list):
            if self.op == "add":
                parent.insert(len(parent) if last == "-" else int(last), value)
            elif self.op == "remove":
                del parent[int(last)]
            else:
                parent[int(last)] = value
        elif self.op == "remove":
            parent.pop(last, None)
        else:
            parent[last] = value


@cache
def _union(cls: type, factory: str, value: int | str, kernel: bool) -> Any:
    obj = getattr(cls, factory)(value) if kernel else object.__new__(cls)
    obj._iotistica_wire_value = value
    return obj


def union(cls: type, factory: str, value: int | str) -> Any:
    """A union value (``k8s.IntOrString.from_number(8080)``, ``k8s.Quantity.from_string("1Gi")``, a CRD's
    ``...Expr.from_string``), made once per value. Under the cdk8s renderer it is the kernel's object;
    under the Python renderer it is an instance of the same class that never goes to the kernel and
    carries its value (all the renderer reads of it: ``{value}``, as ``NumberStringUnionResolver``)."""
    return _union(cls, factory, value, _renderer == "cdk8s")


# --------------------------------------------------------------------------------------------------
# Objects and the charts that hold them
# --------------------------------------------------------------------------------------------------


class Root:
    """The root of the construct tree, where a cdk8s ``App`` would be: chart ids are unique in it.

    Under the cdk8s renderer it is backed by a real ``cdk8s.App`` (each chart by a real ``Chart``);
    under the Python renderer nothing of the tree is in the jsii kernel, which is then never started
    (synth/kernel.py defers the bindings' assembly loads until something asks the kernel for something).
    ``outdir`` is the App's; nothing writes there but :mod:`synth.manifest_writer`.
    """

    def __init__(self, outdir: str | None = None) -> None:
        self.path = ""
        self.child_ids: set[str] = set()
        self.kernel_scope: Construct | None = None
        if _renderer == "cdk8s":
            self.kernel_scope = cdk8s.App(
                outdir=outdir,
                yaml_output_type=cdk8s.YamlOutputType.FOLDER_PER_CHART_FILE_PER_RESOURCE,
                # Never construct-metadata.json, whatever $CDK8S_RECORD_CONSTRUCT_METADATA says.
                record_construct_metadata=False,
            )


class ObjectChart:
    """A chart whose manifests are :class:`KubeObject`; ``to_json()`` renders them in creation order.

    The options are cdk8s ``Chart``'s: ``namespace`` is every object's default namespace, ``labels``
    are added to every object's. Under the cdk8s renderer it is backed by a ``cdk8s.Chart`` with the
    same id and options (``disable_resource_name_hashes`` matters there only: every object here has
    its ``metadata.name``).
    """

    def __init__(
        self,
        scope: Root,
        id: str,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        disable_resource_name_hashes: bool = False,
    ) -> None:
        _claim(scope, id)
        self.chart_namespace = namespace
        self.chart_labels: dict[str, str] = dict(labels or {})
        self.objects: list[KubeObject] = []
        self.files: set[tuple[str, str]] = set()
        self.path: str = id
        self.child_ids: set[str] = set()
        self._iotistica_chart = self
        self.kernel_scope: Construct | None = None
        if _renderer == "cdk8s" and scope.kernel_scope is not None:
            self.kernel_scope = Chart(
                scope.kernel_scope,
                id,
                namespace=namespace,
                labels=labels,
                disable_resource_name_hashes=disable_resource_name_hashes,
            )

    def to_json(self) -> list[Any]:
        return [obj.to_json() for obj in self.objects]

    def release(self) -> None:
        """Drop everything the chart built (objects, components, their props) once it is written.

        The chart and its objects refer to each other: a cycle that the garbage collector, run rarely
        while rendering (synth/render.py), would free late, so a worker's memory would grow per environment."""
        vars(self).clear()


class Component:
    """A construct of the platform (a service, a policy set, a fleet namespace): a node of the construct
    tree under an :class:`ObjectChart`, with a scope-unique id as every construct has.

    It holds no kernel object under the Python renderer (a grouping node writes nothing, and each kernel
    create is a round trip); under the cdk8s renderer it is backed by a ``constructs.Construct`` at the
    same path, so the kernel's tree is the same as it always was.
    """

    def __init__(self, scope: Scope, id: str) -> None:
        _claim(scope, id)
        self.scope, self.id = scope, id
        self.path: str = f"{scope.path}/{id}"
        self.child_ids: set[str] = set()
        self._iotistica_chart: ObjectChart = scope._iotistica_chart
        self.kernel_scope: Construct | None = (
            Construct(scope.kernel_scope, id) if _renderer == "cdk8s" and scope.kernel_scope is not None else None
        )


Scope = ObjectChart | Component


def _claim(scope: Root | Scope, id: str) -> None:
    if id in scope.child_ids:
        raise ValueError(f"There is already a construct with name {id!r} in {scope.path}")
    scope.child_ids.add(id)


class KubeObject:
    """One manifest: its L1 binding, props and patches (rendered in Python, or by its kernel object)."""

    __slots__ = ("binding", "construct_id", "props", "chart", "patches", "kernel_object", "kind", "name")

    def __init__(self, binding: type, scope: Scope, construct_id: str, props: dict[str, Any]) -> None:
        chart = scope._iotistica_chart
        _claim(scope, construct_id)
        self.binding, self.construct_id, self.props, self.chart = binding, construct_id, props, chart
        self.patches: list[JsonPatch] = []
        info = tables()["classes"].get(getattr(binding, "__jsii_type__", None))
        self.kind: str = info["kind"] if info else props["kind"]
        self.name: str | None = getattr(props.get("metadata"), "name", None)
        if self.name is None:
            raise ValueError(f"{scope.path}/{construct_id}: {self.kind} without metadata.name (names are a contract)")
        if (self.kind, self.name) in chart.files:  # cdk8s would silently write one file over the other
            raise ValueError(
                f"{scope.path}/{construct_id}: a second {self.kind} named {self.name!r} in chart {chart.path}"
            )
        chart.files.add((self.kind, self.name))
        self.kernel_object: Any = None
        if _renderer == "cdk8s":
            if scope.kernel_scope is None:
                raise ValueError(f"{scope.path}: built under the Python renderer, cannot hold a cdk8s object")
            self.kernel_object = binding(scope.kernel_scope, construct_id, **props)
        chart.objects.append(self)

    def add_json_patch(self, *ops: JsonPatch) -> None:
        self.patches.extend(ops)
        if self.kernel_object is not None:
            self.kernel_object.add_json_patch(*(op.to_cdk8s() for op in ops))

    def to_json(self) -> Any:
        if self.kernel_object is not None:
            return self.kernel_object.to_json()
        return render(self.binding, self.props, self.patches, self.chart.chart_namespace, self.chart.chart_labels)


def api_object(binding: type, scope: Scope, construct_id: str, **props: Any) -> KubeObject:
    """Declare the manifest ``binding(scope, construct_id, **props)`` in ``scope``'s chart."""
    return KubeObject(binding, scope, construct_id, props)
