"""Load environment files: the tier preset deep-merged under the file, like Helm's ``-f a -f b``.

Layering, lowest first: the model defaults (the seed's demo values), ``tiers/presets/<tier>.yaml``,
then the environment file. Mappings merge key by key; anything else (lists included) is replaced by
the rightmost layer.

Every problem becomes a :class:`ConfigError` with the file and the key path, rendered on one line,
e.g. ``environments/iotistica.yaml: api.hpa.minReplicas: must be <= maxReplicas (4), got 6``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tiers import TIERS
from tiers.models import Environment

PRESETS = Path(__file__).resolve().parent / "presets"


class ConfigError(Exception):
    """A user error in an environment file: one line, no traceback."""

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file, self.path, self.message = file, path, message
        super().__init__(f"{file}: {path}: {message}" if path else f"{file}: {message}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str]]:
        # Raised in synth worker processes and re-raised in the parent: pickle the three parts.
        return (ConfigError, (self.file, self.path, self.message))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base`` recursively; the override wins for every non-mapping value."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


#: libyaml's parser where PyYAML has it (same documents as SafeLoader, several times faster).
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(label, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(label, "", f"cannot read the file ({exc.__class__.__name__})") from None
    try:
        try:
            data = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader (libyaml's parser)
        except yaml.YAMLError:
            data = yaml.safe_load(text)  # raises again, with the pure-Python parser's marks and wording
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(label, "", f"{where}invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(label, "", f"must be a mapping of settings, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(label, str(key), "keys must be strings")
    return data


def _loc(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_error(err: Mapping[str, Any]) -> tuple[str, str]:
    """One pydantic error as (key path, message)."""
    loc = list(err.get("loc", ()))
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    ctx = err.get("ctx") or {}
    if kind == "rule":
        return _loc([*loc, *str(ctx["field"]).split(".")]), str(ctx["detail"])
    if kind == "extra_forbidden":
        return _loc(loc), "unknown key"
    if kind == "missing":
        return _loc(loc), "required key is missing"
    if msg.startswith("Value error, "):
        return _loc(loc), msg[len("Value error, ") :]
    if "input" in err and kind not in ("model_type", "dict_type"):
        return _loc(loc), f"{msg[:1].lower()}{msg[1:]}, got {_short(err['input'])}"
    return _loc(loc), f"{msg[:1].lower()}{msg[1:]}"


def load_environment(path: Path, label: str | None = None) -> Environment:
    """Read one environment file and return its validated model, or raise ConfigError."""
    label = label or str(path)
    data = _read_yaml(path, label)
    tier = data.get("tier")
    if tier is None:
        raise ConfigError(label, "tier", "required key is missing")
    if tier not in TIERS:
        raise ConfigError(label, "tier", f"unknown tier {_short(tier)}; expected one of {', '.join(TIERS)}")
    preset = _read_yaml(PRESETS / f"{tier}.yaml", f"tiers/presets/{tier}.yaml")
    merged = deep_merge(preset, data)
    try:
        env = Environment.model_validate(merged)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: [str(p) for p in e.get("loc", ())])
        where, message = format_error(errors[0])
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        raise ConfigError(label, where, message) from None
    if env.release != path.stem:
        raise ConfigError(label, "release", f"must match the file name ({path.stem!r}), got {env.release!r}")
    return env


def load_environments(directory: Path, only: Iterable[str] = (), base: Path | None = None) -> list[Environment]:
    """Load every ``*.yaml`` of a directory (or only the named releases), sorted by release."""

    def label(p: Path) -> str:
        try:
            return str(p.relative_to(base)) if base else str(p)
        except ValueError:
            return str(p)

    wanted = sorted(set(only))
    if wanted:
        paths = [directory / f"{name}.yaml" for name in wanted]
    else:
        paths = sorted(directory.glob("*.yaml"))
        if not paths:
            raise ConfigError(label(directory), "", "no environment files (*.yaml) found")
    envs = [load_environment(p, label(p)) for p in paths]
    namespaces: dict[str, str] = {}
    for env, p in zip(envs, paths, strict=True):
        other = namespaces.setdefault(env.namespace, env.release)
        if other != env.release:
            raise ConfigError(label(p), "namespace", f"{env.namespace!r} is already used by release {other!r}")
    return sorted(envs, key=lambda e: e.release)
