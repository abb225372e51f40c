"""The jsii kernel starts when something asks it for something, not when a binding is imported.

Takes nothing; importing this module is what it does (``app.py`` imports it before anything else):
from then on, importing ``jsii`` makes it record each assembly load and make them, in import order,
before the kernel's first other request (:func:`defer_assembly_loads`), and routes jsii's encoding
of struct arguments through :mod:`synth.jsii_wire` (same messages, less work). The Python renderer
needs only the bindings' Python classes, so a synth that uses it never starts Node.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import shutil
import sys
from types import ModuleType
from typing import Any

# jsii's Node 20 end-of-life banner is noise for operators; it does not affect output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def defer_assembly_loads(jsii: ModuleType) -> None:
    """Make jsii record each assembly load and make them, in import order, before the kernel's first
    other request.

    Importing a jsii binding (``constructs``, ``cdk8s``, ``cdk8s_plus_27``, a module of ``imports/``)
    loads its assembly into the jsii kernel, and the first load starts the kernel: Node, then Node
    unpacking each package, most of the floor (bench). The Python renderer needs only the bindings'
    Python classes (synth/python_renderer.py), so a synth that uses it never starts Node. Whatever
    does use the kernel (the cdk8s renderer, the YAML writer's fallback, a test's ``Testing.app()``)
    finds every assembly imported so far loaded, in the order it was imported (a dependency first).
    """
    assembly = jsii.JSIIAssembly
    if getattr(assembly.load, "iotistica_deferred", False):
        return
    from synth import jsii_wire

    # Struct arguments encoded from the fields that are set (same kernel messages, far less Python work).
    jsii_wire.install()
    from jsii._kernel.types import LoadRequest
    from jsii._runtime import kernel

    pending: list[LoadRequest] = []

    class Record:
        @staticmethod
        def load(name: str, version: str, tarball: str) -> None:
            pending.append(LoadRequest(name=name, version=version, tarball=tarball))

    class LoadsFirst:
        """The kernel's provider: any request (a load too) first makes the loads recorded so far."""

        def __init__(self, provider: Any) -> None:
            self.provider, self.checked = provider, False

        def __getattr__(self, name: str) -> Any:
            if not self.checked:  # jsii would fail with a traceback from a half-made process
                node = os.environ.get("JSII_NODE", "node")
                if shutil.which(node) is None:
                    raise NodeMissing(f"the jsii kernel needs Node.js, and {node!r} is not on PATH")
                self.checked = True
            while pending:
                self.provider.load(pending.pop(0))
            return getattr(self.provider, name)

    load = assembly.load.__func__

    def deferred(cls: type, *args: Any, _kernel: Any = None, **kwargs: Any) -> Any:
        return load(cls, *args, _kernel=Record if _kernel is None else _kernel, **kwargs)

    deferred.iotistica_deferred = True  # type: ignore[attr-defined]
    kernel.provider = LoadsFirst(kernel.provider)  # type: ignore[assignment]
    assembly.load = classmethod(deferred)


class NodeMissing(Exception):
    """The jsii kernel was needed (the cdk8s renderer) and there is no Node.js to run it."""


class _KernelOnDemand(importlib.abc.MetaPathFinder):
    """Applies :func:`defer_assembly_loads` as soon as ``jsii`` is imported, before any binding is:
    installed when this module is imported (cheap: jsii itself is imported only by what renders)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "jsii":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_defer(module: ModuleType) -> None:
            exec_module(module)
            defer_assembly_loads(module)

        loader.exec_module = exec_then_defer  # type: ignore[method-assign]
        return spec


if "jsii" in sys.modules:
    defer_assembly_loads(sys.modules["jsii"])
else:  # installed once per process (a module runs once); idempotent anyway
    sys.meta_path.insert(0, _KernelOnDemand())
