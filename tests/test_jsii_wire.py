"""synth/jsii_wire.py sends the jsii kernel the same requests as jsii's own encoding.

The manifests are compared byte for byte by test_dist.py and the snapshots; here the encoding itself:
struct arguments (jsii sends every field, unset ones as null; ours only the set ones) and the
request dicts cattrs would build.
"""

from __future__ import annotations

import json
from typing import Any

import jsii._kernel as kernel_module
from cdk8s_plus_27 import k8s
from jsii._kernel.types import CreateRequest, InvokeRequest, ObjRef, Override, StaticInvokeRequest

from constructs.platform import http_probe, quantity
from synth import jsii_wire


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_install_is_active_for_the_pinned_jsii() -> None:
    assert kernel_module._make_reference_for_native is jsii_wire._encode


def test_struct_encoding_equals_jsii_without_the_unset_fields() -> None:
    kernel = kernel_module.Kernel()
    container = k8s.Container(
        name="api",
        image="iotistic/api:1.2.3",
        env=[k8s.EnvVar(name="A", value="1")],
        ports=[k8s.ContainerPort(container_port=3002, name="http")],
        resources=k8s.ResourceRequirements(limits={"memory": quantity("512Mi")}),
        liveness_probe=http_probe("/healthz", 3002, period=10),
        security_context=k8s.SecurityContext(capabilities=k8s.Capabilities(drop=["ALL"])),
    )
    for value in (container, [container, {"k": container}], "x", 3, None, {"a": [1, 2]}):
        theirs = without_nulls(jsii_wire._original(kernel, value))
        ours = jsii_wire._encode(kernel, value)
        assert json.dumps(ours, default=repr, sort_keys=True) == json.dumps(theirs, default=repr, sort_keys=True)


def test_request_hooks_build_the_same_dicts_as_cattrs() -> None:
    import cattrs
    from jsii._kernel.providers.process import _NodeProcess

    class Unstarted(_NodeProcess):
        def __del__(self) -> None:  # never started: nothing to stop
            pass

    ours = Unstarted()._serializer  # what the kernel's process gets (installed by constructs.platform)
    plain = Unstarted.__new__(Unstarted)
    jsii_wire._process_init(plain)  # jsii's own __init__: a fresh converter, jsii's hooks only
    reference: cattrs.Converter = plain._serializer
    requests = [
        CreateRequest(
            fqn="a.B",
            args=[{"$jsii.map": {"x": [1, {"y": None}]}}, "s", 1.5, ObjRef(ref="x@1")],
            overrides=[Override(method="m", cookie="c")],
            interfaces=["i"],
        ),
        InvokeRequest(objref=ObjRef(ref="o@2", interfaces=["q"]), method="m", args=[{"k": True}]),
        StaticInvokeRequest(fqn="a.B", method="fromString", args=["1Gi"]),
    ]
    for request in requests:
        assert ours.unstructure(request) == reference.unstructure(request)
