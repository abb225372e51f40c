"""NodeRed: optional low-code automation (off by default), flows stored in the API.

Security exception (documented, minimal, and in the model as ``nodered.readOnlyRootFilesystem``,
default false): the root filesystem stays writable. The image keeps
``settings.js`` and the ``@iotistic/*`` plugins in ``/data``, its userDir, and Node-RED writes there
at run time; an emptyDir over ``/data`` would hide that baked content (platform-facts §9). Everything
else of the restricted profile applies.
"""

from __future__ import annotations

from cdk8s_plus_27 import k8s

from constructs import secret_catalog as sc
from constructs.api_objects import Component, Scope
from constructs.isolation.network_policies import Endpoint
from constructs.platform import (
    Props,
    Release,
    container_security,
    deployment,
    empty_dir,
    env,
    env_secret,
    http_probe,
    mount,
    pod_security,
    pod_spec,
    pod_template_metadata,
    resources,
    service,
    sorted_env,
)
from constructs.scan_skips import CKV_HIGH_UID, CKV_READ_ONLY_ROOT, CKV_SECRET_ENV, checkov_skips
from tiers.models import NodeRed as NodeRedValues
from tiers.models import Scheduling

APP = "nodered"
#: uid of `node-red` in the upstream image: the one uid below 10000 (Checkov's CKV_K8S_40 skipped, reason below).
UID = 1000
UID_REASON = (
    "Node-RED writes into /data and the image keeps settings.js and the @iotistic plugins there owned by "
    "node-red (uid 1000) (platform-facts §9 §10): another uid cannot write its userDir"
)
SECRET_ENV_REASON = (
    "the image's settings.js reads IOTISTIC_STORAGE_TOKEN (remote flow storage in the API) from the environment "
    "only (platform-facts §9)"
)
READ_ONLY_ROOT_EXCEPTION = "Node-RED writes into /data, which holds the image's settings.js and plugins"


class NodeRedProps(Props):
    release: Release
    values: NodeRedValues
    scheduling: Scheduling
    api_url: str


class NodeRed(Component):
    """Outputs: ``service_name``, ``port``, ``network_endpoint``."""

    def __init__(self, scope: Scope, id: str, *, props: NodeRedProps) -> None:
        super().__init__(scope, id)
        rel, v = props.release, props.values
        self.name = rel.name("nodered")
        self.service_name = self.name
        self.port = v.port
        self.network_endpoint = Endpoint(key=APP, app=APP, component=APP, ports={"http": v.port})
        container = k8s.Container(
            name="nodered",
            image=v.image.ref,
            image_pull_policy=v.image.image_pull_policy,
            ports=[k8s.ContainerPort(name="http", container_port=v.port, protocol="TCP")],
            env=sorted_env(
                [
                    env("PORT", v.port),
                    env("TZ", "UTC"),
                    env("NODE_RED_REMOTE_STORAGE", True),
                    env("IOTISTIC_BASE_URL", props.api_url),
                    env_secret("IOTISTIC_STORAGE_TOKEN", sc.api_jwt(rel.namespace).name, "token"),
                ]
            ),
            resources=resources(v.resources),
            security_context=container_security(read_only_root=v.read_only_root_filesystem),
            liveness_probe=http_probe("/", "http", period=10, initial_delay=60),
            readiness_probe=http_probe("/", "http", period=5, initial_delay=30),
            volume_mounts=[mount("tmp", "/tmp")],
        )
        template = k8s.PodTemplateSpec(
            metadata=pod_template_metadata(rel, APP, APP),
            spec=pod_spec(
                containers=[container],
                security=pod_security(UID),
                scheduling=props.scheduling,
                volumes=[empty_dir("tmp", "64Mi")],
            ),
        )
        deployment(
            self,
            rel,
            name=self.name,
            app=APP,
            component=APP,
            replicas=1,
            template=template,
            scheduling=props.scheduling,
            annotations={
                **checkov_skips(
                    {
                        CKV_HIGH_UID: UID_REASON,
                        CKV_SECRET_ENV: SECRET_ENV_REASON,
                        **({} if v.read_only_root_filesystem else {CKV_READ_ONLY_ROOT: READ_ONLY_ROOT_EXCEPTION}),
                    },
                    images=[v.image],
                ),
                **(
                    {}
                    if v.read_only_root_filesystem
                    else {
                        "iotistica.com/security-exception": f"readOnlyRootFilesystem=false: {READ_ONLY_ROOT_EXCEPTION}"
                    }
                ),
            },
        )
        service(self, rel, name=self.name, app=APP, component=APP, ports=[("http", v.port, "http")])
