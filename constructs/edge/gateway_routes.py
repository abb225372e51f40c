"""GatewayRoutes: the Gateway API routes that make an environment reachable through Envoy Gateway.

Contract (seed "Networking", platform-facts §5):
- Every route attaches to the shared Gateway (``edge.gateway``: ``iotistica-gateway`` in
  ``envoy-gateway-system``) through one listener, named by ``sectionName``:
  - ``https`` (443, TLS terminated by the Gateway): HTTPRoute ``{release}-api`` to ``{release}-api:3002``,
    HTTPRoute ``{release}-dashboard`` to ``{release}-dashboard:80``, HTTPRoute ``{release}-nodered`` when
    Node-RED runs, and the optional HTTPRoute ``{release}-mosquitto-ws`` (MQTT over websockets, 9001);
  - ``mqtt-tls`` (8883, Passthrough): TLSRoute ``{release}-mosquitto`` to ``{release}-mosquitto:8883``;
    mosquitto terminates TLS itself with the certificate of the broker's Certificate;
  - ``mqtt`` (1883): the optional TCPRoute ``{release}-mosquitto`` (plain MQTT).
- The API's route forwards only what is public (platform-facts §2.2, §17): ``/api`` (the versioned API,
  ``/api/<API_VERSION>``), ``/ws`` (its websockets, platform-facts §2.1: a rule without a request timeout,
  so Envoy does not cut long-lived connections) and exactly ``/health``. Not ``/mosquitto-auth/*`` (the
  broker's unauthenticated, unlimited auth callbacks) nor ``/metrics`` (agent and device names): the broker
  and Prometheus reach those inside the cluster (constructs/isolation/network_policies.py), and the
  gateway answers 404 to anything no rule matches (Gateway API). PathPrefix matches whole path elements
  (``/api`` matches ``/api/v1/x``, never ``/apix``); tests/test_public_edge.py evaluates the committed
  routes that way. The other routes forward ``/`` (the dashboard, Node-RED, MQTT over websockets).
- apiVersions are settings (``edge.apiVersions``). Each version uses its own typed binding class
  (``TlsRoute``, ``TlsRouteV1Alpha2`` ...), so a version choice is checked against that version's schema.
- The bindings module is imported here, on first use (it is large; see imports/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from constructs.api_objects import Component, Scope, api_object
from constructs.platform import Props, Release
from tiers.errors import SettingError
from tiers.models import Edge

#: Listener of the HTTPRoutes that carry long-lived websocket connections: no request timeout.
NO_TIMEOUT = "0s"
#: The API's public paths: (Gateway API match type, value, request timeout or None for the default).
API_PUBLIC_PATHS = (
    ("PathPrefix", "/ws", NO_TIMEOUT),
    ("PathPrefix", "/api", None),
    ("Exact", "/health", None),
)
_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


class Backend(Props):
    """A Service port a route forwards to."""

    service: str
    port: int


class GatewayRoutesProps(Props):
    release: Release
    edge: Edge
    api: Backend
    dashboard: Backend
    nodered: Backend | None
    #: mosquitto's plain MQTT, MQTT over TLS (None when the broker has no TLS listener) and websockets ports.
    mqtt: Backend
    mqtts: Backend | None
    websockets: Backend


def binding(module: ModuleType, kind: str, api_version: str) -> Callable[[str], Any]:
    """``part -> class`` of the typed binding of ``kind`` at ``api_version``.

    The generated names follow one scheme: ``TlsRoute`` (v1) / ``TlsRouteV1Alpha2``, and the structs
    ``TlsRouteSpec``, ``TlsRouteV1Alpha2SpecRules`` ...
    """
    version = api_version.rsplit("/", 1)[-1]
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"unsupported apiVersion {api_version!r}")
    suffix = "" if version == "v1" else f"V{match[1]}{(match[2] or '').capitalize()}{match[3] or ''}"

    def part(name: str = "") -> Any:
        return getattr(module, f"{kind}{suffix}{name}")

    return part


class GatewayRoutes(Component):
    """Outputs: ``api_route`` (name of the API's HTTPRoute, or None), ``hosts`` ({route: hostnames})."""

    def __init__(self, scope: Scope, id: str, *, props: GatewayRoutesProps) -> None:
        super().__init__(scope, id)
        from imports.io.k8s.networking import gateway as gw  # large module: loaded on use

        rel, edge = props.release, props.edge
        routes, listeners, versions = edge.routes, edge.gateway.listeners, edge.api_versions
        self.api_route: str | None = None
        self.hosts: dict[str, list[str]] = {}
        http = binding(gw, "HttpRoute", versions.http_route)

        def parent(section: str, part: Callable[[str], Any]) -> list[Any]:
            cls = part("SpecParentRefs")
            return [cls(name=edge.gateway.name, namespace=edge.gateway.namespace, section_name=section)]

        def http_route(
            construct_id: str,
            name: str,
            app: str,
            hosts: list[str],
            backend: Backend,
            *,
            paths: tuple[tuple[str, str, str | None], ...] = (),
            websocket_root: bool = False,
        ) -> None:
            """An HTTPRoute with one rule per entry of ``paths`` (match type, value, request timeout), or a
            PathPrefix "/" rule when there is none; ``websocket_root``: that "/" rule has no request timeout."""
            types = http("SpecRulesMatchesPathType")

            def rule(path: str, timeout: str | None, kind: str = "PathPrefix") -> Any:
                return http("SpecRules")(
                    matches=[
                        http("SpecRulesMatches")(
                            path=http("SpecRulesMatchesPath")(
                                type=types.EXACT if kind == "Exact" else types.PATH_PREFIX, value=path
                            )
                        )
                    ],
                    backend_refs=[http("SpecRulesBackendRefs")(name=backend.service, port=backend.port)],
                    timeouts=http("SpecRulesTimeouts")(request=timeout) if timeout else None,
                )

            api_object(
                http(""),
                self,
                construct_id,
                metadata=rel.api_metadata(name, app, app),
                spec=http("Spec")(
                    parent_refs=parent(listeners.https, http),
                    hostnames=hosts,
                    rules=[rule(value, timeout, kind) for kind, value, timeout in paths]
                    if paths
                    else [rule("/", NO_TIMEOUT if websocket_root else None)],
                ),
            )
            self.hosts[f"HTTPRoute/{name}"] = hosts

        def host(kind: Any) -> str:
            value = edge.host(kind, rel.release)
            if value is None:  # the model rejects this; a construct used directly gets a clear error
                raise SettingError(f"edge.hosts.{kind}", "is required for its route")
            return value

        if routes.api:
            self.api_route = rel.name("api")
            http_route("ApiRoute", self.api_route, "api", [host("api")], props.api, paths=API_PUBLIC_PATHS)
        if routes.dashboard:
            hosts = edge.dashboard_hosts(rel.release)
            if not hosts:
                raise SettingError("edge.hosts.dashboard", "is required for its route")
            http_route("DashboardRoute", rel.name("dashboard"), "dashboard", hosts, props.dashboard)
        if routes.nodered and props.nodered is not None:
            http_route("NodeRedRoute", rel.name("nodered"), "nodered", [host("nodered")], props.nodered)
        if routes.websockets:
            # wss://<mqtt host>/: one rule without a request timeout (MQTT connections live for hours).
            name = rel.name("mosquitto-ws")
            http_route("WebsocketsRoute", name, "mosquitto", [host("mqtt")], props.websockets, websocket_root=True)
        if routes.mqtt_tls:
            if props.mqtts is None:
                raise SettingError("edge.routes.mqttTls", "needs the broker's TLS listener (mosquitto.tls.enabled)")
            tls = binding(gw, "TlsRoute", versions.tls_route)
            name = rel.name("mosquitto")
            api_object(
                tls(""),
                self,
                "MqttTlsRoute",
                metadata=rel.api_metadata(name, "mosquitto", "mosquitto"),
                spec=tls("Spec")(
                    parent_refs=parent(listeners.mqtt_tls, tls),
                    hostnames=[host("mqtt")],
                    rules=[
                        tls("SpecRules")(
                            backend_refs=[tls("SpecRulesBackendRefs")(name=props.mqtts.service, port=props.mqtts.port)]
                        )
                    ],
                ),
            )
            self.hosts[f"TLSRoute/{name}"] = [host("mqtt")]
        if routes.mqtt:
            tcp = binding(gw, "TcpRoute", versions.tcp_route)
            api_object(
                tcp(""),
                self,
                "MqttRoute",
                metadata=rel.api_metadata(rel.name("mosquitto"), "mosquitto", "mosquitto"),
                spec=tcp("Spec")(
                    parent_refs=parent(listeners.mqtt, tcp),
                    rules=[
                        tcp("SpecRules")(
                            backend_refs=[tcp("SpecRulesBackendRefs")(name=props.mqtt.service, port=props.mqtt.port)]
                        )
                    ],
                ),
            )
