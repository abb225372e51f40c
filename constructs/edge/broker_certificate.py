"""BrokerCertificate: the cert-manager Certificate whose Secret mosquitto mounts for its 8883 listener.

Contract (seed "TLS is issued by cert-manager via the letsencrypt-production ClusterIssuer",
platform-facts §5):
- Certificate ``{release}-mosquitto-tls``; commonName and the only dnsName are the environment's MQTT
  host (Let's Encrypt validates SANs; the commonName alone is not enough).
- Issuer: ClusterIssuer ``letsencrypt-production`` by default (``edge.certificate``).
- ``secretName`` is the broker's ``tls_secret_name`` output, never recomputed here, so the Secret
  cert-manager writes is the one the mosquitto pod mounts (tests/test_edge.py checks both ends).
- RSA 2048 keys, rotated on every renewal: constrained MQTT clients often lack ECDSA support.
- No secretTemplate labels: a Secret carrying ``app.kubernetes.io/instance`` would look like part of
  the ArgoCD Application, which would then try to prune it.
"""

from __future__ import annotations

from constructs.api_objects import Component, Scope, api_object
from constructs.platform import Props, Release
from tiers.models import EdgeCertificate

APP = "mosquitto"


class BrokerCertificateProps(Props):
    release: Release
    values: EdgeCertificate
    #: The MQTT host: commonName and dnsName.
    host: str
    #: MosquittoBroker.tls_secret_name: the Secret the broker mounts.
    secret_name: str


class BrokerCertificate(Component):
    """Outputs: ``name``, ``secret_name``, ``host``."""

    def __init__(self, scope: Scope, id: str, *, props: BrokerCertificateProps) -> None:
        super().__init__(scope, id)
        from imports.io import cert_manager as cm  # large module: loaded on use

        rel, v = props.release, props.values
        self.name = rel.name("mosquitto-tls")
        self.secret_name = props.secret_name
        self.host = props.host
        api_object(
            cm.Certificate,
            self,
            "Certificate",
            metadata=rel.api_metadata(self.name, APP, APP),
            spec=cm.CertificateSpec(
                secret_name=props.secret_name,
                common_name=props.host,
                dns_names=[props.host],
                issuer_ref=cm.CertificateSpecIssuerRef(name=v.issuer_name, kind=v.issuer_kind, group="cert-manager.io"),
                private_key=cm.CertificateSpecPrivateKey(
                    algorithm=cm.CertificateSpecPrivateKeyAlgorithm.RSA,
                    size=2048,
                    rotation_policy=cm.CertificateSpecPrivateKeyRotationPolicy.ALWAYS,
                ),
            ),
        )
