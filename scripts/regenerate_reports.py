"""Regenerate every study's reports from its committed runs (`make reports`), or check that they regenerate.

Each study folder may hold a `reports.txt`: one `ltune report` call a line (its arguments, paths from the
repository root; `#` starts a comment). This script runs them all from the repository root, so the
committed report.md, results.csv, runs.csv and paired.csv are what the current report code prints.

With `--check` nothing in the checkout is written: each study named in a call is copied into a scratch
folder at the same relative path, the call runs there, and the four files are compared byte for byte
with the committed ones (plots by their set of files: their bytes differ between matplotlib builds, and
what they draw is in the committed runs and csv files). A difference means the report code changed
what a committed report says: regenerate (`make reports`) and commit the result with the change.

    python scripts/regenerate_reports.py                       # every study
    python scripts/regenerate_reports.py --check sst2_seeds    # one study, compared
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
COMPARED = ("report.md", "results.csv", "runs.csv", "paired.csv")


def calls(studies: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """(study, arguments of one `ltune report` call) for every line of the studies' reports.txt."""
    found = []
    for listing in sorted(STUDIES.glob("*/reports.txt")):
        study = listing.parent.name
        if studies and study not in studies:
            continue
        for line in listing.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append((study, shlex.split(line)))
    return found


def report_folder(args: list[str]) -> str:
    return next(a for a in args if "=" not in a)


def studies_named(args: list[str]) -> set[str]:
    """The study folders a call reads (its report folder and its with= folders)."""
    paths = [report_folder(args)] + [p for a in args if a.startswith("with=") for p in a[5:].split(",") if p]
    return {Path(p).parts[1] for p in paths if Path(p).parts[:1] == ("studies",) and len(Path(p).parts) > 1}


@contextlib.contextmanager
def working_in(folder: Path):
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_report(args: list[str]) -> None:
    from contextlib import redirect_stdout

    from ltune.commands.report import report_command

    with redirect_stdout(sys.stderr):
        report_command(args)


def check(args: list[str]) -> list[str]:
    """The differences between the committed outputs of one call and those it prints now ([] if none)."""
    with tempfile.TemporaryDirectory(prefix="ltune-reports-") as scratch:
        for study in studies_named(args):
            shutil.copytree(STUDIES / study, Path(scratch) / "studies" / study,
                            ignore=shutil.ignore_patterns("*.safetensors", "checkpoint.pt"))
        with working_in(Path(scratch)):
            run_report(args)
        folder = report_folder(args)
        committed, fresh = ROOT / folder, Path(scratch) / folder
        differences = []
        for name in COMPARED:
            a, b = committed / name, fresh / name
            if a.exists() != b.exists() or (a.exists() and not filecmp.cmp(a, b, shallow=False)):
                differences.append(f"{folder}/{name}")
        plots = lambda where: sorted(p.name for p in where.glob("*.png"))  # noqa: E731
        if plots(committed) != plots(fresh):
            differences.append(f"{folder}/*.png: committed {plots(committed)}, now {plots(fresh)}")
        return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="*", help="study folder names under studies/ (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the committed reports; write nothing")
    args = parser.parse_args(argv)
    unknown = [s for s in args.studies if not (STUDIES / s / "reports.txt").is_file()]
    if unknown:
        print(f"regenerate_reports: no studies/<name>/reports.txt for {', '.join(unknown)}", file=sys.stderr)
        return 2
    found = calls(args.studies)
    waiting = [(study, call) for study, call in found if not (ROOT / report_folder(call)).is_dir()]
    for _, call in waiting:  # a study in progress whose sweep has not written this folder yet
        print(f"skipped (no runs yet): ltune report {' '.join(call)}")
    found = [item for item in found if item not in waiting]
    failed = []
    for study, call in found:
        print(f"{'checking' if args.check else 'regenerating'}: ltune report {' '.join(call)}", flush=True)
        if args.check:
            failed += check(call)
        else:
            with working_in(ROOT):
                run_report(call)
    if args.check:
        for line in failed:
            print(f"differs from what the report code prints now: {line}")
        print(f"{len(found)} report(s) checked: " + ("all regenerate" if not failed else
                                                     f"{len(failed)} file(s) differ; run `make reports` and commit"))
        return 1 if failed else 0
    print(f"{len(found)} report(s) regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
