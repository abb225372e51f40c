"""Load environment files: the tier preset deep-merged under the file, like Helm's ``-f a -f b``.

Layering, lowest first: the model defaults (the seed's demo values), ``tiers/presets/<tier>.yaml``,
the fleet file's layer (``fleet.yaml`` beside ``environments/``: tiers/fleet_file.py), then the
environment file. Mappings merge key by key; anything else (lists included) is replaced by
the rightmost layer.

Every problem becomes a :class:`ConfigError` with the file and the key path, rendered on one line,
e.g. ``environments/iotistica.yaml: api.hpa.minReplicas: must be <= maxReplicas (4), got 6``.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tiers import TIERS
from tiers.errors import ConfigError, ConfigErrors, raise_all
from tiers.fleet_file import NO_FLEET_FILE, FleetFile, fleet_layer, fleet_path
from tiers.images import LOCK, LOCK_LABEL, check_lock, pin
from tiers.models import Environment
from tiers.models.fleet import FleetSettings

PRESETS = Path(__file__).resolve().parent / "presets"

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "deep_merge",
    "format_error",
    "load_environment",
    "load_environments",
    "load_fleet_file",
    "read_fleet",
    "read_lock",
    "read_yaml",
]


class _Refused(Exception):
    """A construct of the YAML text an environment file may not use (line is 1-based)."""

    def __init__(self, line: int, path: str, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases.

    An alias makes one node appear many times; nested aliases grow exponentially (an "alias bomb",
    10^8 leaves from a few lines), and nothing in an environment file needs them. Refused at the
    first anchor, before anything is expanded.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            symbol = "*" if kind == "alias" else "&"
            raise _Refused(
                line, "", f"line {line}: YAML {kind} {symbol}{event.anchor} is not allowed in environment files"
            )
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def _check_duplicates(node: yaml.Node, path: tuple[str, ...] = ()) -> None:
    """Refuse a key given twice in one mapping (YAML would keep the last one without a word)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            where = ".".join((*path, key))
            if key in seen:
                raise _Refused(line, where, f"line {line}: duplicate key (first at line {seen[key]})")
            seen[key] = line
            _check_duplicates(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, (*path, str(i)))


def read_yaml(text: str) -> Any:
    """Parse one YAML document, refusing anchors, aliases and duplicate keys (raises ``_Refused``).

    A document libyaml reads without a doubt (:func:`_read_yaml_fast`) is read by libyaml, several
    times faster; anything else, every error included, by :class:`StrictLoader`, which is the
    reference for both the data and the message.
    """
    data = _read_yaml_fast(text)
    return read_yaml_strict(text) if data is _UNSURE else data


def read_yaml_strict(text: str) -> Any:
    """:func:`read_yaml` with :class:`StrictLoader` only (the reference the fast path is tested against)."""
    return _construct(StrictLoader(text))


def _construct(loader: Any) -> Any:
    """The one document of ``loader``, refusing duplicate keys; the loader is disposed of."""
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicates(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


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
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)
#: Deeper than this, libyaml is not used: its composer recurses in C (no RecursionError to catch).
_FAST_MAX_DEPTH = 64
_UNSURE = object()


def _read_yaml_fast(text: str) -> Any:
    """The document as libyaml reads it, or ``_UNSURE`` when :class:`StrictLoader` must decide.

    Only the plain case is taken: no anchor or alias (the strict loader refuses them, naming the
    line), nesting of at most ``_FAST_MAX_DEPTH``, no character PyYAML's reader refuses, no error
    and no duplicate key. The first pass reads events only, so an alias is never expanded here.
    Same constructor and resolver as ``SafeLoader``: the same data (tests/test_synth_cache.py compares).
    """
    if _FAST_LOADER is None or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return _UNSURE
    try:
        events = _FAST_LOADER(text)
        try:
            depth = 0
            while events.check_event():
                event = events.get_event()
                if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                    return _UNSURE
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > _FAST_MAX_DEPTH:
                        return _UNSURE
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
        finally:
            events.dispose()
        return _construct(_FAST_LOADER(text))
    except Exception:  # noqa: BLE001 - whatever it is, the strict loader decides and words it
        return _UNSURE


#: The last parse of each preset, by label: (its text, its data); copied for each environment.
_PRESETS_READ: dict[str, tuple[str, dict[str, Any]]] = {}


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(label, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(label, "", f"cannot read the file ({exc.__class__.__name__})") from None


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    return _parse_yaml(_read_text(path, label), label)


def _read_preset(tier: str) -> dict[str, Any]:
    """A tier preset, parsed once per content (one preset feeds many environments); a fresh copy each time."""
    path, label = PRESETS / f"{tier}.yaml", f"tiers/presets/{tier}.yaml"
    text = _read_text(path, label)
    known = _PRESETS_READ.get(label)
    if known is None or known[0] != text:
        known = _PRESETS_READ[label] = (text, _parse_yaml(text, label))
    return copy.deepcopy(known[1])


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = read_yaml(text)
    except _Refused as exc:
        raise ConfigError(label, exc.path, exc.message) from None
    except RecursionError:
        raise ConfigError(label, "", "invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(label, "", f"{where}invalid YAML: {plain_words(problem)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(label, "", f"must be a mapping of settings, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(label, str(key), "keys must be strings")
    return data


#: The YAML parser's problems in plain words (the parser's own words kept in parentheses).
_PLAIN = (
    ("found character '\\t' that cannot start any token", "a tab character: indent with spaces only"),
    (
        "mapping values are not allowed here",
        "a second ':' on the line: quote a value that holds ': ', or fix the indentation",
    ),
    ("could not find expected ':'", "a line that is not 'key: value': a ':' is missing, or the indentation is off"),
    ("did not find expected key", "this line's indentation does not match the keys above it"),
    ("expected <block end>", "this line's indentation does not match the keys above it"),
    ("did not find expected '-' indicator", "a list item's indentation does not match the items above it"),
    ("found unexpected end of stream", "the file ends inside a quoted value: a closing quote is missing"),
    ("found unknown escape character", "an unknown backslash escape inside double quotes: use single quotes"),
    ("but found another document", "more than one YAML document ('---'): an environment file holds one"),
)


def plain_words(problem: str) -> str:
    """A YAML parser problem said plainly, e.g. a tab: "a tab character: indent with spaces only"."""
    for raw, plain in _PLAIN:
        if problem.startswith(raw):
            return f"{plain} ({problem})"
    return problem


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


def read_lock(path: Path = LOCK, label: str = LOCK_LABEL) -> dict[str, str]:
    """The images lock (tiers/images.py), checked; an absent file is an empty lock."""
    try:
        text = _read_text(path, label)
    except ConfigError as exc:
        if exc.message == "file not found":
            return {}
        raise
    return check_lock(_parse_yaml(text, label), label)


def load_environment(
    path: Path, label: str | None = None, lock: Mapping[str, str] | None = None, fleet: FleetFile | None = None
) -> Environment:
    """Read one environment file and return its validated model, or raise ConfigError (ConfigErrors: every
    error of the file, each with its line).

    ``lock``: the images lock (tiers/images.py); default: the committed ``tiers/images.lock``.
    ``fleet``: the fleet file (tiers/fleet_file.py); default: ``fleet.yaml`` beside the file's folder.
    """
    label = label or str(path)
    if lock is None:
        lock = read_lock()
    if fleet is None:
        fleet = read_fleet(fleet_path(path.parent))
    text = _read_text(path, label)
    data = _parse_yaml(text, label)
    if not data:
        raise ConfigError(label, "", "empty file (no settings; `iotistica-k8s new NAME --tier TIER` writes one)")
    tier = data.get("tier")
    if tier is None:
        raise ConfigError(label, "tier", "required key is missing")
    if tier not in TIERS:
        near = difflib.get_close_matches(str(tier), TIERS, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(
            label,
            "tier",
            f"unknown tier {_short(tier)}; {hint}expected one of {', '.join(TIERS)}",
            _line_of(text, ["tier"]),
        )
    preset = _read_preset(tier)
    layer = fleet_layer(fleet, data, label)
    merged = deep_merge(deep_merge(preset, layer) if layer else preset, data)
    try:
        env = Environment.model_validate(merged)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: [str(p) for p in e.get("loc", ())])
        raise_all([_located(label, text, err) for err in errors])
        raise  # unreachable: raise_all raises for a non-empty list
    if env.release != path.stem:
        raise ConfigError(
            label,
            "release",
            f"must match the file name ({path.stem!r}), got {env.release!r}",
            _line_of(text, ["release"]),
        )
    pinned: Environment = pin(env, lock, label)
    return pinned


#: Fleet files read in this process: path -> (text, result).
_FLEETS_READ: dict[str, tuple[str, FleetFile]] = {}


def read_fleet(path: Path, label: str | None = None) -> FleetFile:
    """The fleet file at ``path`` (absent: :data:`NO_FLEET_FILE`), validated; parsed once per content."""
    label = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return NO_FLEET_FILE
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(label, "", f"cannot read the file ({exc.__class__.__name__})") from None
    known = _FLEETS_READ.get(str(path))
    if known is not None and known[0] == text and known[1].label == label:
        return known[1]
    data = _parse_yaml(text, label)
    try:
        fleet = FleetSettings.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: [str(p) for p in e.get("loc", ())])
        where, message = format_error(errors[0])
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        raise ConfigError(label, where, message) from None
    result = FleetFile(fleet, label, True)
    _FLEETS_READ[str(path)] = (text, result)
    return result


def load_fleet_file(directory: Path, base: Path | None = None) -> FleetFile:
    """The fleet file of an environments folder (``fleet.yaml`` beside it), read once per run."""
    path = fleet_path(directory)
    try:
        label = str(path.relative_to(base)) if base else str(path)
    except ValueError:
        label = str(path)
    return read_fleet(path, label)


def _located(label: str, text: str, err: Mapping[str, Any]) -> ConfigError:
    """One pydantic error as a ConfigError with its line in the file and, for an unknown key, the nearest
    known one ("did you mean")."""
    where, message = format_error(err)
    parts = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "extra_forbidden" and parts:
        near = difflib.get_close_matches(parts[-1], model_keys(parts[:-1]), n=1)
        if near:
            message += f"; did you mean {near[0]!r}?"
    return ConfigError(label, where, message, _line_of(text, where.split(".") if where else []))


def model_keys(loc: Iterable[str]) -> list[str]:
    """The keys a mapping of an environment file may have at ``loc`` (a key path), [] when unknown."""
    import typing

    from pydantic import BaseModel

    def models(annotation: Any) -> list[Any]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in typing.get_args(annotation) for m in models(arg)]

    current: list[Any] = [Environment]
    for part in loc:
        nxt: list[Any] = []
        for m in current:
            for name, info in m.model_fields.items():
                if part in (name, info.alias):
                    nxt += models(info.annotation)
        if not nxt:  # a list index or a map key: the same models one level down
            nxt = current if part.isdigit() or current else []
        current = nxt
    return sorted({info.alias or name for m in current for name, info in m.model_fields.items()})


def _line_of(text: str, keys: list[str]) -> int | None:
    """The 1-based line of the deepest key of ``keys`` (a key path; list items by index) the file has."""
    try:
        node = yaml.compose(text, Loader=StrictLoader)
    except (yaml.YAMLError, _Refused, RecursionError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if str(k.value) == key), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_environments(
    directory: Path, only: Iterable[str] = (), base: Path | None = None, images_lock: Path | None = None
) -> list[Environment]:
    """Load every ``*.yaml`` of a directory (or only the named releases), sorted by release, each image
    pinned by the digest the images lock records (``images_lock``; default ``tiers/images.lock``)."""

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
    lock = read_lock() if images_lock is None else read_lock(images_lock, label(images_lock))
    fleet = load_fleet_file(directory, base)
    envs, errors = [], []
    for p in paths:  # every file read: every error of the run reported, not the first only
        try:
            envs.append(load_environment(p, label(p), lock, fleet))
        except ConfigError as exc:
            errors.append(exc)
    raise_all(errors)
    # Rules across environments (namespaces, hosts, names, ...) are tiers/fleet.py's: validate_fleet.
    return sorted(envs, key=lambda e: e.release)
