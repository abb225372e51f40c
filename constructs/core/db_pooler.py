"""DbPooler: a CloudNativePG ``Pooler`` (PgBouncer) in front of the release's database server.

Why: the pods' pools are static per pod and sized for HPA max, so without a pooler every pod's pool
counts against the server's ``max_connections`` (platform-facts §7: 100 is exhausted quickly). With
``database.pooler`` on, the API and ingestion connect to PgBouncer; the server sees at most
``database.connectionBudget`` connections (``default_pool_size`` = budget / instances), and the pods'
pools are sized against ``maxClientConnections`` instead.

- ``Pooler`` ``{release}-pooler`` (postgresql.cnpg.io/v1) in the CNPG cluster's namespace
  (``network.database.namespace``; a Pooler must live beside its Cluster), ``spec.cluster.name`` =
  ``database.server``, ``type: rw``. CNPG makes the Service of the same name, so DB_HOST becomes
  ``{release}-pooler.<cnpg namespace>.svc.cluster.local`` (credentials and database are unchanged: CNPG's
  PgBouncer authenticates users through the cluster with ``auth_query``).
- No Pooler CRD is vendored in ``/work/shared/crds`` (only the CNPG ``Cluster``), so there is no generated
  binding: the object is a plain ``ApiObject`` whose fields follow CNPG v1.30's ``PoolerSpec``.
- The release's egress to the database already allows every pod of that namespace on the database
  port, which covers the PgBouncer pods. Policies inside the CNPG namespace are the cluster admin's.
- Not CNPG (``kind: external``): nothing is emitted; run PgBouncer (or the provider's proxy, e.g. RDS
  Proxy) yourself and set ``database.pooler.host``.
"""

from __future__ import annotations

from cdk8s import ApiObject, ApiObjectMetadata

from constructs.api_objects import Component, JsonPatch, Scope, api_object
from constructs.platform import Props, Release
from tiers.models import Database, Resources

APP = "pooler"


class DbPoolerProps(Props):
    release: Release
    values: Database
    #: Namespace of the CNPG cluster (network.database.namespace).
    cluster_namespace: str


class DbPooler(Component):
    """Outputs: ``name``, ``namespace``, ``host`` (DB_HOST of the pods), ``server_pool_size``."""

    def __init__(self, scope: Scope, id: str, *, props: DbPoolerProps) -> None:
        super().__init__(scope, id)
        rel, db = props.release, props.values
        pooler = db.pooler
        self.name = rel.name("pooler")
        self.namespace = props.cluster_namespace
        self.host = f"{self.name}.{self.namespace}.svc.cluster.local"
        self.server_pool_size = max(1, db.connection_budget // pooler.instances)
        obj = api_object(
            ApiObject,
            self,
            "Pooler",
            api_version="postgresql.cnpg.io/v1",
            kind="Pooler",
            metadata=ApiObjectMetadata(name=self.name, namespace=self.namespace, labels=rel.labels(APP, APP)),
        )
        obj.add_json_patch(
            JsonPatch.add(
                "/spec",
                {
                    "cluster": {"name": db.server},
                    "instances": pooler.instances,
                    "type": "rw",
                    "pgbouncer": {
                        "poolMode": pooler.pool_mode,
                        "parameters": {
                            "default_pool_size": str(self.server_pool_size),
                            "max_client_conn": str(pooler.max_client_connections),
                            "max_db_connections": str(db.connection_budget // pooler.instances or 1),
                        },
                    },
                    "template": {
                        "metadata": {"labels": rel.labels(APP, APP)},
                        "spec": {
                            "containers": [
                                {
                                    "name": "pgbouncer",
                                    "image": pooler.image.ref,
                                    "resources": _resources(pooler.resources),
                                }
                            ]
                        },
                    },
                },
            )
        )


def _resources(res: Resources) -> dict[str, dict[str, str]]:
    limits = {"memory": res.limits.memory} | ({"cpu": res.limits.cpu} if res.limits.cpu else {})
    return {"limits": limits, "requests": {"cpu": res.requests.cpu, "memory": res.requests.memory}}
