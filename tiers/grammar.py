"""What Kubernetes and the services refuse, as checks the models run (platform-facts §16).

Every check raises ``ValueError`` with a message that says what is accepted, so the loader reports
it on one line at the key path. The models in ``tiers/models/`` attach them; nothing here builds
objects.

- Release names: a Service name is a DNS-1035 label (it starts with a letter).
- Image repositories: the distribution reference grammar (``[registry[:port]/]path``), no tag.
- Label keys (``nodeSelector``): ``[prefix/]name`` as the API server checks them.
- Scheduling: ``affinity`` is checked against the Kubernetes 1.27 ``Affinity`` schema, strictly, so a
  misspelled key is an error instead of being dropped.
- Hosts are DNS names, never IP addresses; CORS origins are ``scheme://host[:port]``; the dashboard's
  API URL is ``http(s)``.
- Resource floors: the smallest requests and limits the containers run with.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

#: int32: replicas and HPA bounds are int32 in the Kubernetes API.
INT32_MAX = 2**31 - 1

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REPOSITORY = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
)
#: An image content digest as tiers/images.lock records it (sha256 only: what registries serve).
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

#: Floors of every container's resources: below them a container is starved or killed at start.
MIN_CPU_REQUEST_MILLIS = 10
MIN_MEMORY_MIB = 16
#: The Node.js services (API, ingestion): NODE_OPTIONS --max-old-space-size is heapPercent of the
#: memory limit, and V8 with the services' modules loaded needs at least this heap to start.
MIN_NODE_HEAP_MIB = 128


def dns_1035(value: str) -> str:
    if not _DNS_1035.match(value):
        raise ValueError(
            f"must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending "
            f"with a letter or digit; it names Services), got {value!r}"
        )
    return value


def image_repository(value: str) -> str:
    if not value or len(value) > 255 or not _REPOSITORY.match(value):
        raise ValueError(
            f"must be an image repository without a tag, such as iotistic/api or registry.example.com:5000/"
            f"team/api (lowercase path components), got {value!r}"
        )
    return value


def label_key(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if "/" in value and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"must be a label key ([prefix/]name, the prefix a DNS subdomain), got {value!r}")
    if not _LABEL_NAME.match(name):
        raise ValueError(
            f"must be a label key (name of at most 63 letters, digits, '-', '_', '.', starting and ending "
            f"with a letter or digit), got {value!r}"
        )
    return value


def label_value(value: str) -> str:
    if len(value) > 63 or not re.match(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", value):
        raise ValueError(f"must be a label value (at most 63 letters, digits, '-', '_', '.'), got {value!r}")
    return value


def not_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value
    raise ValueError(f"must be a DNS name, not an IP address (the Gateway routes by hostname), got {value!r}")


def origin(value: str) -> str:
    """A CORS origin: ``scheme://host[:port]``; ``*.`` as the first host label is allowed (the API's wildcard)."""
    parts = urlsplit(value)
    host = parts.hostname or ""
    bare = host[2:] if host.startswith("*.") else host
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    ok = (
        parts.scheme in ("http", "https")
        and bool(bare)
        and parts.netloc.lower() == parts.netloc
        and not parts.username
        and not parts.password
        and parts.path == ""
        and not parts.query
        and not parts.fragment
        and port_ok
        and bool(_DNS_SUBDOMAIN.match(bare) or _is_ip(bare))
    )
    if not ok:
        raise ValueError(
            f"must be an origin scheme://host[:port] (http or https, no path, lowercase), e.g. "
            f"https://app.example.com or https://*.example.com, got {value!r}"
        )
    return value


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {value!r}")
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def affinity(value: dict[str, Any]) -> dict[str, Any]:
    """Check ``affinity`` against the Kubernetes 1.27 schema (strict: unknown keys are errors)."""
    if not value:
        return value
    import kubernetes_validate

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "affinity-check"},
        "spec": {"containers": [{"name": "c", "image": "c"}], "affinity": value},
    }
    try:
        kubernetes_validate.validate(pod, "1.27", strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in list(exc.path)[2:])
        raise ValueError(f"is not a Kubernetes 1.27 Affinity{f' at {where}' if where else ''}: {exc.message}") from None
    return value
