"""The images lock: ``tiers/images.lock`` maps each image reference (``repository:tag``) to the digest
a registry served for it, and the loader pins every image it knows (``repository:tag@sha256:...``).

The lock is read where the environments are loaded (``tiers.loader.read_lock``, ``load_environments``), and
each :class:`~tiers.models.Image` it knows gets its ``digest``: the digest is part of the validated
model, so the synth cache key (``Environment.model_dump_json()``, synth_cache.py) changes with it.
Reading the lock needs no network; only ``iotistica-k8s images --resolve`` (cli.py, tiers/registry.py)
asks registries, and it records only what a registry answered: a digest is never made up. An image
the lock does not know keeps its tag (docs/hardening.md).

Bad input is a :class:`ConfigError` naming the lock and the image: a malformed digest, a key that is
not ``repository:tag``, an environment file that pins a digest the lock contradicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from tiers import grammar
from tiers.errors import ConfigError
from tiers.models.base import _TAG, Image

#: The committed lock, beside the tier presets.
LOCK = Path(__file__).resolve().parent / "images.lock"
LOCK_LABEL = "tiers/images.lock"
HEADER = """\
# The images lock: image reference (repository:tag) -> the content digest a registry served for it.
# The synth writes every image listed here as repository:tag@sha256:..., without network; an image not
# listed keeps its tag (`iotistica-k8s validate --strict` lists those). Never edit a digest by hand:
# `iotistica-k8s images --resolve` asks each image's registry and records what it answered
# (docs/hardening.md, "Recording digests before a release").
"""


def parse_ref(ref: str) -> tuple[str, str]:
    """``repository:tag`` -> (repository, tag); ValueError when it is not one."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not _TAG.match(tag) or tag == "latest":
        raise ValueError(f"must be repository:tag with a pinned tag, got {ref!r}")
    grammar.image_repository(repository)
    return repository, tag


def check_lock(data: dict[str, Any], label: str = LOCK_LABEL) -> dict[str, str]:
    """The entries of a parsed lock, checked (tiers/loader.py ``read_lock`` reads the file). ConfigError
    names the image."""
    unknown = sorted(set(data) - {"images"})
    if unknown:
        raise ConfigError(label, unknown[0], "unknown key (the lock holds `images:` only)")
    images = data.get("images") or {}
    if not isinstance(images, dict):
        kind = type(images).__name__
        raise ConfigError(label, "images", f"must be a mapping of repository:tag to digest, got {kind}")
    lock: dict[str, str] = {}
    for ref, digest in images.items():
        where = f"images.{ref}"
        try:
            parse_ref(str(ref))
        except ValueError as exc:
            raise ConfigError(label, where, str(exc)) from None
        if not isinstance(digest, str) or not grammar.DIGEST.match(digest):
            raise ConfigError(
                label, where, f"digest of image {ref} must be sha256:<64 lowercase hex digits>, got {digest!r}"
            )
        lock[str(ref)] = digest
    return lock


def lock_text(lock: Mapping[str, str]) -> str:
    """The lock file for ``lock``: the header, then the entries sorted by reference."""
    body = yaml.safe_dump({"images": dict(sorted(lock.items()))}, default_flow_style=False, sort_keys=False)
    return HEADER + body


def images_of(model: BaseModel, path: str = "") -> Iterator[tuple[str, Image]]:
    """Every Image in ``model`` with its key path (``api.image``), in field order."""
    for name, value in model:
        where = f"{path}.{to_camel(name)}" if path else to_camel(name)
        if isinstance(value, Image):
            yield where, value
        elif isinstance(value, BaseModel):
            yield from images_of(value, where)
        elif isinstance(value, tuple | list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from images_of(item, f"{where}.{i}")


def pin(model: Any, lock: Mapping[str, str], label: str, path: str = "") -> Any:
    """``model`` with each Image's digest taken from ``lock`` (the same object when nothing changes).

    An environment file may set ``digest`` itself; the lock may not contradict it (ConfigError).
    """
    if isinstance(model, Image):
        known = lock.get(model.tag_ref)
        if known is None or model.digest == known:
            return model
        if model.digest is not None:
            raise ConfigError(
                label, f"{path}.digest", f"{model.digest} contradicts tiers/images.lock ({known}) for {model.tag_ref}"
            )
        return model.model_copy(update={"digest": known})
    if not isinstance(model, BaseModel):
        return model
    updates: dict[str, Any] = {}
    for name, value in model:
        where = f"{path}.{to_camel(name)}" if path else to_camel(name)
        if isinstance(value, BaseModel):
            new = pin(value, lock, label, where)
        elif isinstance(value, tuple | list) and any(isinstance(v, BaseModel) for v in value):
            items = [pin(v, lock, label, f"{where}.{i}") for i, v in enumerate(value)]
            new = type(value)(items) if any(a is not b for a, b in zip(items, value, strict=True)) else value
        else:
            continue
        if new is not value:
            updates[name] = new
    return model.model_copy(update=updates) if updates else model


def unpinned(model: BaseModel) -> list[tuple[str, str]]:
    """(key path, repository:tag) of every image of ``model`` that has no digest."""
    return [(where, image.tag_ref) for where, image in images_of(model) if image.digest is None]
