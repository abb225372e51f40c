"""Ask an image's registry for the digest of ``repository:tag`` (OCI distribution API), for
``iotistica-k8s images --resolve`` (docs/hardening.md). Standard library only.

The digest is what the registry served, computed here: ``sha256`` of the manifest bytes returned by
``GET /v2/<name>/manifests/<tag>`` (an index for a multi-platform image, so every node pulls its own
platform's image by one digest). A ``Docker-Content-Digest`` header that disagrees is an error, never
a digest. Anonymous Bearer tokens (Docker Hub, ghcr.io) are fetched from the realm the registry names.

Registry and name follow Docker's normalisation: ``redis`` is ``docker.io/library/redis``, and a first
path component with a ``.`` or ``:`` (or ``localhost``) is a registry host. Loopback registries are
spoken to over plain HTTP (as Docker treats them), every other one over HTTPS.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from tiers import grammar

DOCKER_HUB = "registry-1.docker.io"
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
#: Seconds per request: a registry that does not answer in this time is unreachable.
TIMEOUT = 15
#: A manifest or an index is small; anything larger is not one.
MAX_MANIFEST = 4 * 1024 * 1024


class Unreachable(Exception):
    """No answer from the registry (connection refused, DNS, TLS, timeout)."""


class Refused(Exception):
    """The registry answered, but not with a manifest (unknown tag, denied, inconsistent digest)."""


@dataclass(frozen=True)
class Location:
    registry: str  # host[:port] as the reference names it (docker.io for Docker Hub)
    host: str  # where to connect
    name: str  # the repository path in that registry
    scheme: str


def locate(repository: str) -> Location:
    """Where ``repository`` lives (Docker's normalisation)."""
    first, sep, rest = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host = first
        return Location(registry=first, host=host, name=rest, scheme="http" if _loopback(host) else "https")
    name = repository if sep else f"library/{repository}"
    return Location(registry="docker.io", host=DOCKER_HUB, name=name, scheme="https")


def _loopback(host: str) -> bool:
    hostname = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _bearer_challenge(header: str) -> dict[str, str] | None:
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def _open(request: urllib.request.Request) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - http(s) only, built here
        body = response.read(MAX_MANIFEST + 1)
        return body, {k.lower(): v for k, v in response.headers.items()}


def _token(challenge: dict[str, str]) -> str:
    realm = challenge.get("realm", "")
    if urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
        raise Refused(f"token realm {realm!r} is not an http(s) URL")
    query = urllib.parse.urlencode({k: v for k, v in challenge.items() if k in ("service", "scope")})
    try:
        body, _ = _open(urllib.request.Request(f"{realm}?{query}" if query else realm))
    except urllib.error.HTTPError as exc:
        raise Refused(f"token request to {realm} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"token realm {realm}: {_reason(exc)}") from None
    try:
        data = json.loads(body)
        return str(data.get("token") or data["access_token"])
    except (ValueError, KeyError, TypeError):
        raise Refused(f"token realm {realm} did not answer with a token") from None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason) or exc.__class__.__name__


def resolve(ref: str) -> str:
    """The digest (``sha256:...``) the registry serves for ``repository:tag``.

    Raises :class:`Unreachable` when the registry does not answer, :class:`Refused` when it answers
    without a usable manifest.
    """
    repository, _, tag = ref.rpartition(":")
    where = locate(repository)
    url = f"{where.scheme}://{where.host}/v2/{where.name}/manifests/{tag}"
    headers = {"Accept": ACCEPT, "User-Agent": "iotistica-k8s-images"}
    for attempt in range(2):
        try:
            body, answer = _open(urllib.request.Request(url, headers=headers))
            break
        except urllib.error.HTTPError as exc:
            challenge = _bearer_challenge(exc.headers.get("WWW-Authenticate", "")) if exc.code == 401 else None
            if challenge is not None and attempt == 0:
                headers["Authorization"] = f"Bearer {_token(challenge)}"
                continue
            raise Refused(f"{where.registry} answered {exc.code} for {where.name}:{tag}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(f"registry {where.registry} ({where.scheme}://{where.host}): {_reason(exc)}") from None
    if len(body) > MAX_MANIFEST:
        raise Refused(f"{where.registry} served more than {MAX_MANIFEST} bytes for {where.name}:{tag}")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    claimed = answer.get("docker-content-digest")
    if claimed and claimed.startswith("sha256:") and claimed != digest:
        raise Refused(f"{where.registry} says {claimed} for {where.name}:{tag}, but served content of {digest}")
    assert grammar.DIGEST.match(digest)
    return digest
