"""Checks shared by the method configs (run when a config object is created)."""

from ltune.errors import LtuneError


def positive(key: str, value, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise LtuneError(f"method.{key} must be positive, got {value!r}" + (f"; {why}" if why else ""))
