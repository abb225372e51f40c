"""The topology of one environment, drawn from what the app wrote into dist/ (never from the model).

``build(dist, release)`` reads ``dist/<release>/*.yaml`` and its cluster's platform folder
``dist/cluster/<cluster>/*.yaml`` (its own Namespaces and binding there, the rest for cluster-wide
rights) and returns a :class:`Topology`: nodes grouped in clusters per concern, and edges. Two views:

- ``network``: public hosts -> Gateway listeners -> routes -> Services -> workloads (replicas or HPA
  range, resources), the hook Jobs in sync order, fleet namespaces with their quota, the Secrets each
  workload reads (made in the cluster or provided by an operator), and the network flows. Flow edges
  come only from evaluating the NetworkPolicies (:mod:`ops.netpol`) between every pair of endpoints:
  the workloads of dist/ plus one stand-in per peer the policies name (a namespace, a pod selector in a
  namespace, an address range). Everything not drawn is denied, except where a node says its
  ingress or egress is open (no policy isolates it).
- ``rights``: each ServiceAccount, the pods that mount its token, what it may do and where (Roles,
  ClusterRoles, bindings), and the admission policies that confine it.

The code is generic over kinds: an object of a kind it has no special case for is attached to the node
it references or selects, or listed under "other objects", so new objects show without code changes.

The package, one module per concern: model (the data, dist/ read back), flows and network (the
network view), rights (the rights view), draw (Graphviz and Mermaid), views (build, docs/topology/).
"""

from __future__ import annotations

from ops.graph.draw import (
    EDGE_STYLES,
    LEGEND,
    MERMAID_ARROWS,
    MERMAID_SHAPES,
    STYLES,
    GraphvizMissing,
    flow_id,
    mermaid_doc,
    parse_flow_id,
    render,
    to_dot,
    to_mermaid,
)
from ops.graph.model import (
    HOOK,
    MERGE_FROM,
    NAME,
    ROUTE_KINDS,
    WAVE,
    WELL_KNOWN,
    DistError,
    Edge,
    Flow,
    Manifest,
    Node,
    Topology,
    configmaps_read,
    load,
    pod_template,
    port_label,
    read_folder,
    ref,
    releases,
    secrets_read,
)
from ops.graph.rights import rights, t_sas
from ops.graph.views import TOPOLOGY_INDEX, build, topology_docs

__all__ = [
    "DistError",
    "EDGE_STYLES",
    "Edge",
    "Flow",
    "GraphvizMissing",
    "HOOK",
    "LEGEND",
    "MERGE_FROM",
    "MERMAID_ARROWS",
    "MERMAID_SHAPES",
    "Manifest",
    "NAME",
    "Node",
    "ROUTE_KINDS",
    "STYLES",
    "TOPOLOGY_INDEX",
    "Topology",
    "WAVE",
    "WELL_KNOWN",
    "build",
    "configmaps_read",
    "flow_id",
    "load",
    "mermaid_doc",
    "parse_flow_id",
    "pod_template",
    "port_label",
    "read_folder",
    "ref",
    "releases",
    "render",
    "rights",
    "secrets_read",
    "t_sas",
    "to_dot",
    "to_mermaid",
    "topology_docs",
]
