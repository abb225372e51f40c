"""Read ``fleet.yaml`` (tiers/models/fleet.py) and turn it into the layer each environment gets.

Layering, lowest first: model defaults < ``tiers/presets/<tier>.yaml`` < the fleet layer < the
environment file. The fleet layer holds what the environment's cluster and database server declare
(Argo CD destination, Gateway, ClusterIssuer, admission policy version, the server's host, port and
``max_connections``), the Git repository and Argo CD namespace, and the fleet-wide defaults (image
tags). What fleet.yaml *declares* about a cluster, a server or the repository an environment may
restate but not contradict: a different value is refused naming the environment file and key.

The file is optional: without it the fleet is :data:`DEFAULT_FLEET` and no layer is applied (the
environment files alone, as before the fleet file existed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiers.errors import ConfigError
from tiers.models.fleet import DEFAULT_CLUSTER, DEFAULT_FLEET, IMAGE_COMPONENTS, FleetSettings, did_you_mean

FLEET_FILE = "fleet.yaml"


@dataclass(frozen=True)
class FleetFile:
    """The fleet as read: the model, its label (as printed), and whether a file was there."""

    fleet: FleetSettings
    label: str = FLEET_FILE
    present: bool = False


#: No fleet.yaml: one cluster, no declared server, no layer.
NO_FLEET_FILE = FleetFile(DEFAULT_FLEET)


def fleet_path(environments: Path) -> Path:
    """The fleet file of an environments folder: ``fleet.yaml`` beside it."""
    return environments.parent / FLEET_FILE


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


#: The model's image (repository, tag) per component (a fleet default may give the tag alone).
_MODEL_IMAGES: dict[str, tuple[str, str]] = {}


def _model_image(component: str) -> tuple[str, str]:
    if not _MODEL_IMAGES:
        from tiers.models import Api, Dashboard, Ingestion, Mosquitto, NodeRed, Redis

        models: tuple[type[Api | Ingestion | Dashboard | NodeRed | Redis | Mosquitto], ...] = (
            Api,
            Ingestion,
            Dashboard,
            NodeRed,
            Redis,
            Mosquitto,
        )
        for name, cls in zip(IMAGE_COMPONENTS, models, strict=True):
            image = cls.model_validate({}).image
            _MODEL_IMAGES[name] = (image.repository, image.tag)
    return _MODEL_IMAGES[component]


def cluster_name(fleet: FleetSettings, data: Mapping[str, Any]) -> Any:
    """The cluster an environment's data names, or the default one."""
    named = _get(data, "cluster", "name")
    if named is not None:
        return named
    return fleet.clusters[0].name if len(fleet.clusters) == 1 else DEFAULT_CLUSTER


def server_name(fleet: FleetSettings, data: Mapping[str, Any]) -> Any:
    """The database server an environment's data names, the only declared one, or the model's default."""
    named = _get(data, "database", "server")
    if named is not None:
        return named
    if len(fleet.database_servers) == 1:
        return fleet.database_servers[0].name
    from tiers.models import Database

    return Database.model_fields["server"].default


def fleet_layer(source: FleetFile, data: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The layer of ``source`` for the environment file ``data`` (raw, before merging), or {} without a
    fleet file; raises ConfigError (naming ``label`` and the key) for an unknown cluster or server, or a
    value that contradicts what the fleet file declares."""
    fleet = source.fleet
    name = cluster_name(fleet, data)
    if not isinstance(name, str):
        return {}  # the model refuses the type, naming the key
    cluster = fleet.cluster(name)
    if cluster is None:
        declared = [c.name for c in fleet.clusters]
        why = "unknown cluster" if _get(data, "cluster", "name") is not None else "no cluster named; the default"
        raise ConfigError(
            label,
            "cluster.name",
            f"{why} {name!r} is not in {source.label} (clusters: {', '.join(declared)}){did_you_mean(name, declared)}",
        )
    if not source.present:
        return {}
    idx = fleet.clusters.index(cluster)
    declared_values: list[tuple[str, Any, str]] = [
        ("cluster.admissionPolicies", cluster.admission, f"clusters.{idx}.admissionPolicies"),
        ("argocd.destinationServer", cluster.destination_server, f"clusters.{idx}.destinationServer"),
        ("argocd.repoUrl", fleet.git.repo_url, "git.repoUrl"),
        ("argocd.targetRevision", fleet.git.target_revision, "git.targetRevision"),
        ("argocd.namespace", fleet.argocd.namespace, "argocd.namespace"),
    ]
    layer: dict[str, Any] = {
        "cluster": {"name": cluster.name, "admissionPolicies": cluster.admission},
        "argocd": {
            "repoUrl": fleet.git.repo_url,
            "targetRevision": fleet.git.target_revision,
            "namespace": fleet.argocd.namespace,
            "destinationServer": cluster.destination_server,
        },
        "edge": {
            "gateway": {"name": cluster.gateway.name, "namespace": cluster.gateway.namespace},
            "certificate": {"issuerName": cluster.cluster_issuer, "issuerKind": "ClusterIssuer"},
        },
    }
    server = server_name(fleet, data)
    if fleet.database_servers and isinstance(server, str):
        found = fleet.server(server)
        if found is None:
            names = [s.name for s in fleet.database_servers]
            why = (
                "unknown database server"
                if _get(data, "database", "server") is not None
                else "no server named; the default"
            )
            raise ConfigError(
                label,
                "database.server",
                f"{why} {server!r} is not in {source.label} (databaseServers: {', '.join(names)})"
                f"{did_you_mean(server, names)}",
            )
        serves = fleet.server_cluster(found)
        if serves != cluster.name:
            raise ConfigError(
                label,
                "database.server",
                f"{server!r} serves cluster {serves!r} ({source.label}), this environment runs on {cluster.name!r}",
            )
        sidx = fleet.database_servers.index(found)
        database: dict[str, Any] = {"server": found.name, "maxConnections": found.max_connections}
        declared_values.append(
            ("database.maxConnections", found.max_connections, f"databaseServers.{sidx}.maxConnections")
        )
        if found.host is not None:
            database |= {"host": found.host, "port": found.port}
            declared_values.append(("database.host", found.host, f"databaseServers.{sidx}.host"))
        layer["database"] = database
        layer["network"] = {"database": {"port": found.port}}
    for component in IMAGE_COMPONENTS:
        default = getattr(fleet.defaults.images, component)
        if default is None:
            continue
        repository, tag = _model_image(component)
        layer[component] = {"image": {"repository": default.repository or repository, "tag": default.tag or tag}}
    for key, value, where in declared_values:
        mine = _get(data, *key.split("."))
        if mine is not None and mine != value:
            raise ConfigError(
                label,
                key,
                f"{source.label} declares {value!r} ({where}), this file {mine!r}: remove the key here "
                f"(or change {source.label})",
            )
    return layer
