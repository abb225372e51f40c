"""A faster Python-side encoding of jsii struct arguments (same messages to the kernel, less work).

jsii's Python runtime encodes every struct argument (``k8s.ObjectMeta``, ``k8s.Container``, ...) by
reading *every* field of the struct through its generated property, and each property evaluates
``typing.cast(typing.Optional[...], ...)``: for a cold synth that was the largest Python-side item
after the kernel waits (cProfile, docs/performance.md). The struct already holds exactly the fields
that were set in ``_values``; :func:`install` encodes from there. The fields left out are the unset
ones, which the original sends as ``null`` and the kernel treats as absent: the manifests are the
same bytes (``tests/test_dist.py``, the snapshot tests).

The request that carries them (create, invoke, static invoke) is then turned into JSON-able data by
cattrs, which dispatches on the type of every nested value; the arguments are already plain JSON
data by then, so :func:`install` registers hooks for those three requests that copy lists and dicts
and hand anything else to cattrs as before.

Installed only for the jsii version it was written against (``requirements.lock``); any other value
than a plain struct goes to jsii's own function.
"""

from __future__ import annotations

from typing import Any

import jsii
import jsii._kernel as kernel_module
import jsii._kernel.providers.process as process_module
from jsii._kernel.types import CreateRequest, InvokeRequest, StaticInvokeRequest

#: The jsii release whose ``_make_reference_for_native`` this mirrors.
JSII_VERSION = "1.142.0"

_original = kernel_module._make_reference_for_native
_process_init = process_module._NodeProcess.__init__
_PLAIN = (str, int, float, bool, type(None))


def _encode(kernel: Any, d: Any) -> Any:
    t = type(d)
    if t in _PLAIN:
        return d
    if t is dict:
        return {"$jsii.map": {k: _encode(kernel, v) for k, v in d.items()}}
    if t is list:
        return [_encode(kernel, i) for i in d]
    mapping = getattr(t, "__jsii_name_mapping__", None)
    values = getattr(d, "_values", None)
    if mapping is not None and type(values) is dict and getattr(t, "__jsii_type__", None) is not None:
        # A struct: the generated class keeps the set fields in _values, keyed by their Python names.
        if all(name in mapping for name in values):
            return {
                "$jsii.struct": {
                    "fqn": t.__jsii_type__,
                    "data": {mapping[name]: _encode(kernel, v) for name, v in values.items() if v is not None},
                }
            }
    return _original(kernel, d)


def _request_hooks(converter: Any) -> dict[type, Any]:
    fallback = converter.unstructure

    def plain(v: Any) -> Any:
        t = type(v)
        if t in _PLAIN:
            return v
        if t is dict:
            return {plain(k): plain(x) for k, x in v.items()}
        if t is list:
            return [plain(x) for x in v]
        return fallback(v)

    def args(values: Any) -> Any:
        return None if values is None else [plain(v) for v in values]

    return {
        CreateRequest: lambda r: {
            "fqn": r.fqn,
            "args": args(r.args),
            "overrides": [fallback(o) for o in r.overrides],
            "interfaces": r.interfaces,
            "api": "create",
        },
        InvokeRequest: lambda r: {
            "objref": fallback(r.objref),
            "method": r.method,
            "args": args(r.args),
            "api": "invoke",
        },
        StaticInvokeRequest: lambda r: {"fqn": r.fqn, "method": r.method, "args": args(r.args), "api": "sinvoke"},
    }


def _with_hooks(self: Any) -> None:
    _process_init(self)
    for request_type, hook in _request_hooks(self._serializer).items():
        self._serializer.register_unstructure_hook(request_type, hook)


def install() -> bool:
    """Route jsii's argument encoding through :func:`_encode` and the request hooks; False (and
    nothing changed) on another jsii. The hooks go to the kernel's process when it is created: this
    starts nothing (a synth with the Python renderer never starts the kernel)."""
    if jsii.__version__ != JSII_VERSION:
        return False
    kernel_module._make_reference_for_native = _encode
    process_module._NodeProcess.__init__ = _with_hooks  # type: ignore[method-assign]
    return True
