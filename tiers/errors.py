"""The two kinds of user error, kept apart from every other exception on purpose.

Only these mean "the input is wrong" (exit code 2, one line naming the file and the key path). Any
other exception during a synth is an internal or environment failure (exit code 1) and never blames
an environment file. A ``ValueError`` is *not* a config error by itself: a crashed jsii node child
surfaces as ``json.JSONDecodeError``, which is a ``ValueError`` too.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A user error in an environment file (or an option): one line, no traceback."""

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file, self.path, self.message = file, path, message
        super().__init__(f"{file}: {path}: {message}" if path else f"{file}: {message}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str]]:
        # Raised in synth worker processes and re-raised in the parent: pickle the three parts.
        return (ConfigError, (self.file, self.path, self.message))


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
