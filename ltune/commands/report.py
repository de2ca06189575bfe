"""``ltune report FOLDER``: tables and plots from every run under FOLDER."""

from __future__ import annotations

from pathlib import Path

from ltune.errors import LtuneError


def report_command(args: list[str]) -> None:
    if len(args) != 1:
        raise LtuneError("usage: ltune report <sweep or outputs folder>")
    from ltune.report import report

    path = report(Path(args[0]))
    print(f"ltune: wrote {path}, results.csv and plots beside it")
