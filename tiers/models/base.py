"""Building blocks of every settings model: the frozen base class, :func:`rule`, quantities and names,
images, resources, autoscaling and scheduling."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tiers import grammar
from tiers.quantity import cpu_millis, mem_mib

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_DURATION = re.compile(r"^\d+[smhd]$")

#: The longest suffix any object adds to the release name is ``-ingestion-headless`` (19). A
#: release of 40 characters keeps every derived name, StatefulSet pod names included, under 63.
RELEASE_MAX = 40


def rule(field: str, message: str) -> PydanticCustomError:
    """A cross-field rule violation reported at ``<model path>.<field>``."""
    return PydanticCustomError("rule", "{field}: {detail}", {"field": field, "detail": message})


def _dns_label(max_len: int) -> Any:
    def check(value: str) -> str:
        if len(value) > max_len:
            raise ValueError(f"must be at most {max_len} characters, got {len(value)} ({value!r})")
        if not _DNS_LABEL.match(value):
            raise ValueError(
                f"must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
                f"with a letter or digit), got {value!r}"
            )
        return value

    return AfterValidator(check)


def _check_cpu(value: str) -> str:
    cpu_millis(value)
    return value


def _check_mem(value: str) -> str:
    mem_mib(value)
    return value


def _check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"must be a duration such as 15m or 7d, got {value!r}")
    return value


def _check_dns_name(value: str) -> str:
    if not _DNS_NAME.match(value):
        raise ValueError(f"must be a DNS name, got {value!r}")
    return value


DnsLabel = Annotated[str, _dns_label(63)]
ReleaseName = Annotated[str, _dns_label(RELEASE_MAX), AfterValidator(grammar.dns_1035)]
Cpu = Annotated[str, AfterValidator(_check_cpu)]
Memory = Annotated[str, AfterValidator(_check_mem)]
Duration = Annotated[str, AfterValidator(_check_duration)]
DnsName = Annotated[str, AfterValidator(_check_dns_name)]


class Model(BaseModel):
    """Base of every settings model: frozen, no unknown keys, camelCase keys in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class Image(Model):
    """A container image, always pinned to a tag, and by digest where tiers/images.lock records one."""

    repository: str = Field(description="Image repository, e.g. `iotistic/api`. Required.")
    tag: str = Field(description="Image tag. Required; `latest` is refused.")
    digest: str | None = Field(
        default=None,
        description="Content digest `sha256:<64 hex>`: the image is written `repository:tag@digest`. "
        "Default: the digest tiers/images.lock records for `repository:tag`, else none (the image keeps its "
        "tag only and `validate --strict` lists it; docs/hardening.md).",
    )
    pull_policy: Literal["IfNotPresent", "Always"] | None = Field(
        default=None,
        description="imagePullPolicy. Default: IfNotPresent when pinned by digest (the content cannot change), "
        "Always when the image has a tag only (every node runs what the tag names now).",
    )

    @model_validator(mode="after")
    def _pinned(self) -> Image:
        if self.tag == "latest" or not _TAG.match(self.tag):
            raise rule("tag", f"must be a pinned tag (not 'latest'), got {self.tag!r}")
        try:
            grammar.image_repository(self.repository)
        except ValueError as exc:
            raise rule("repository", str(exc)) from None
        if self.digest is not None and not grammar.DIGEST.match(self.digest):
            raise rule("digest", f"must be sha256:<64 lowercase hex digits>, got {self.digest!r}")
        return self

    @property
    def tag_ref(self) -> str:
        """``repository:tag``: how tiers/images.lock names this image."""
        return f"{self.repository}:{self.tag}"

    @property
    def ref(self) -> str:
        """The container's ``image``: ``repository:tag@digest`` when pinned by digest, else ``repository:tag``."""
        return f"{self.tag_ref}@{self.digest}" if self.digest else self.tag_ref

    @property
    def image_pull_policy(self) -> str:
        """imagePullPolicy: the setting, else it follows from pinning (see ``pull_policy``)."""
        return self.pull_policy or ("IfNotPresent" if self.digest else "Always")


class Requests(Model):
    cpu: Cpu = Field(description="CPU request. Required.")
    memory: Memory = Field(description="Memory request. Required.")


class Limits(Model):
    cpu: Cpu | None = Field(default=None, description="CPU limit. Default: none (no CPU throttling).")
    memory: Memory = Field(description="Memory limit. Required.")


class Resources(Model):
    """Container resources. Requests and a memory limit are mandatory on every container."""

    requests: Requests = Field(description="Requests. Required.")
    limits: Limits = Field(description="Limits. Required (at least memory).")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        # Floors (platform-facts §16): a zero CPU request starves the container; below 16Mi it is killed at start.
        if cpu_millis(self.requests.cpu) < grammar.MIN_CPU_REQUEST_MILLIS:
            raise rule(
                "requests.cpu",
                f"must be at least {grammar.MIN_CPU_REQUEST_MILLIS}m (the floor), got {self.requests.cpu}",
            )
        for key, value in (("requests.memory", self.requests.memory), ("limits.memory", self.limits.memory)):
            if mem_mib(value) < grammar.MIN_MEMORY_MIB:
                raise rule(key, f"must be at least {grammar.MIN_MEMORY_MIB}Mi (the floor), got {value}")
        if mem_mib(self.limits.memory) < mem_mib(self.requests.memory):
            raise rule(
                "limits.memory",
                f"must be >= requests.memory ({self.requests.memory}), got {self.limits.memory}",
            )
        if self.limits.cpu is not None and cpu_millis(self.limits.cpu) < cpu_millis(self.requests.cpu):
            raise rule("limits.cpu", f"must be >= requests.cpu ({self.requests.cpu}), got {self.limits.cpu}")
        return self

    @property
    def memory_limit_mib(self) -> float:
        return mem_mib(self.limits.memory)


def _res(cpu: str, mem: str, cpu_limit: str | None, mem_limit: str) -> Any:
    return Field(
        default_factory=lambda: Resources(
            requests=Requests(cpu=cpu, memory=mem), limits=Limits(cpu=cpu_limit, memory=mem_limit)
        ),
        description=f"Container resources. Default: requests {cpu}/{mem}, limits {cpu_limit or 'none'}/{mem_limit}.",
    )


class Hpa(Model):
    """A HorizontalPodAutoscaler. When enabled, the workload omits spec.replicas."""

    enabled: bool = Field(default=False, description="Create an HPA. Default: false.")
    min_replicas: int = Field(default=1, ge=1, le=grammar.INT32_MAX, description="minReplicas. Default: 1.")
    max_replicas: int = Field(default=1, ge=1, le=grammar.INT32_MAX, description="maxReplicas. Default: 1.")
    cpu_target_percent: int = Field(
        default=70, ge=1, le=100, description="Average CPU utilisation target. Default: 70."
    )
    memory_target_percent: int = Field(
        default=80, ge=1, le=100, description="Average memory utilisation target. Default: 80."
    )
    scale_up_stabilization_seconds: int = Field(
        default=60, ge=0, le=3600, description="Scale-up stabilisation window. Default: 60 (seed)."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Scale-down stabilisation window. Default: 300 (seed: 5 min)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Hpa:
        if self.min_replicas > self.max_replicas:
            raise rule("minReplicas", f"must be <= maxReplicas ({self.max_replicas}), got {self.min_replicas}")
        return self


class Toleration(Model):
    key: str | None = Field(default=None, description="Taint key. Default: none (matches all keys with Exists).")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Operator. Default: Equal.")
    value: str | None = Field(default=None, description="Taint value. Default: none.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect. Default: all effects."
    )
    toleration_seconds: int | None = Field(default=None, ge=0, description="For NoExecute. Default: forever.")


class Scheduling(Model):
    """Where pods may run. Applied to every pod of the environment unless a component overrides it."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, description="nodeSelector (label keys and values). Default: {}."
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="tolerations. Default: [].")
    affinity: dict[str, Any] = Field(
        default_factory=dict,
        description="affinity, as the Kubernetes API spells it; checked against the Kubernetes 1.27 schema "
        "(an unknown key is an error, never dropped). Default: {}.",
    )

    @model_validator(mode="after")
    def _kubernetes_grammar(self) -> Scheduling:
        for key, value in self.node_selector.items():
            try:
                grammar.label_key(key)
                grammar.label_value(value)
            except ValueError as exc:
                raise rule(f"nodeSelector.{key}", str(exc)) from None
        for i, t in enumerate(self.tolerations):
            if t.key is not None:
                try:
                    grammar.label_key(t.key)
                except ValueError as exc:
                    raise rule(f"tolerations.{i}.key", str(exc)) from None
        try:
            grammar.affinity(self.affinity)
        except ValueError as exc:
            raise rule("affinity", str(exc)) from None
        return self
