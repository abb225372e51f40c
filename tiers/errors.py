"""The two kinds of user error, kept apart from every other exception on purpose.

Only these mean "the input is wrong" (exit code 2, one line naming the file and the key path). Any
other exception during a synth is an internal or environment failure (exit code 1) and never blames
an environment file. A ``ValueError`` is *not* a config error by itself: a crashed jsii node child
surfaces as ``json.JSONDecodeError``, which is a ``ValueError`` too.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A user error in an environment file (or an option): one line, no traceback.

    ``line``: the 1-based line of the file the key is on, when known; the text ends with ``(line N)``.
    """

    def __init__(self, file: str, path: str, message: str, line: int | None = None) -> None:
        self.file, self.path, self.message, self.line = file, path, message, line
        text = f"{file}: {path}: {message}" if path else f"{file}: {message}"
        super().__init__(text + (f" (line {line})" if line else ""))

    @property
    def errors(self) -> list[ConfigError]:
        """Every error this one stands for (one; :class:`ConfigErrors` has several)."""
        return [self]

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str, int | None]]:
        # Raised in synth worker processes and re-raised in the parent: pickle the parts.
        return (ConfigError, (self.file, self.path, self.message, self.line))


class ConfigErrors(ConfigError):
    """Several user errors of one run, each reported on its own line (``error_lines``); behaves as the first."""

    def __init__(self, errors: list[ConfigError]) -> None:
        flat = [e for err in errors for e in err.errors]
        first = flat[0]
        super().__init__(first.file, first.path, first.message, first.line)
        self._errors = flat

    @property
    def errors(self) -> list[ConfigError]:
        return list(self._errors)

    def __str__(self) -> str:
        return "\n".join(Exception.__str__(e) for e in self._errors)

    def __reduce__(self) -> tuple[type[ConfigErrors], tuple[list[ConfigError]]]:  # type: ignore[override]
        return (ConfigErrors, (self._errors,))


def raise_all(errors: list[ConfigError]) -> None:
    """Raise nothing for no error, the error for one, :class:`ConfigErrors` for several."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)


def error_lines(exc: ConfigError) -> list[str]:
    """One line per error, as printed after ``error: ``."""
    return [Exception.__str__(e) for e in exc.errors]


class SettingError(ValueError):
    """A construct refusing a setting the models let through; the caller adds the file name.

    ``path`` is the key path (``api.extraEnv``), ``message`` the reason. A subclass of ``ValueError``
    for callers that build a construct directly, but synth catches exactly this type.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)

    def __reduce__(self) -> tuple[type[SettingError], tuple[str, str]]:
        return (SettingError, (self.path, self.message))


def error_json(exc: ConfigError) -> dict[str, object]:
    """One error as JSON for CI bots: file, key, line (or null), message and the line as printed."""
    return {"file": exc.file, "key": exc.path, "line": exc.line, "message": exc.message, "text": Exception.__str__(exc)}
