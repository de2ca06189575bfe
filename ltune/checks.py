"""Small checks the config dataclasses run in ``__post_init__``; a failed check is one
``LtuneError`` line naming the key."""

from __future__ import annotations

import enum

from ltune.errors import LtuneError


class Choice(str, enum.Enum):
    """A config value from a fixed set (OmegaConf checks it at composition); prints and compares
    as its text."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise LtuneError(message)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(key: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    require(is_int(value) and value >= 1,
            f"{key} must be a positive integer{' or null' if allow_none else ''}, got {value!r}")


def positive_number(key: str, value) -> None:
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
            f"{key} must be positive, got {value!r}")


def one_line(err: Exception) -> str:
    """An OmegaConf error as one line: its message and the key it concerns. An OmegaConf error is
    read itself: under a debugger or coverage (or OC_CAUSE=1) OmegaConf chains the unformatted
    original ("Value '$VALUE' ...") as its cause. Another error (Hydra's) is read through its cause."""
    from omegaconf.errors import OmegaConfBaseException

    cause = err if isinstance(err, OmegaConfBaseException) else (getattr(err, "__cause__", None) or err)
    message = str(getattr(cause, "msg", None) or str(cause)).strip().splitlines()[0]
    key = getattr(cause, "full_key", None) or getattr(err, "full_key", None)
    return f"{key}: {message}" if key and key not in message else message
