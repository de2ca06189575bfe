"""Compress the per-step log and the dev predictions of finished runs, for folders kept in git.

A finished run's log.jsonl and predictions.jsonl are most of its size, and gzip to about a sixth.
`ltune report` and scripts/pilot_budget.py read either form, so a folder of committed runs
(docs/*/runs) can keep them as log.jsonl.gz and predictions.jsonl.gz. Unfinished runs are left
alone: a resumed run appends to its plain log.jsonl. Compressing is lossless and deterministic (no
name or time in the gzip header), so a run compresses to the same bytes on any machine, and running
the script again changes nothing.

    python scripts/compact_runs.py docs/learning_curve/runs docs/label_semantics/runs
    python scripts/compact_runs.py --check docs      # list what would change; exit 1 if anything would
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

from ltune.run_files import COMPRESSED, LOG, METRICS, PREDICTIONS, atomic_write_bytes

FILES = (LOG, PREDICTIONS)


def finished_runs(folder: Path) -> list[Path]:
    """Run folders under ``folder`` whose metrics.json says the run finished."""
    runs = []
    for metrics in sorted(Path(folder).rglob(METRICS)):
        try:
            if json.loads(metrics.read_text()).get("status") == "finished":
                runs.append(metrics.parent)
        except (json.JSONDecodeError, OSError):
            continue  # a metrics.json being written or cut: not finished as far as we can tell
    return runs


def compact(run: Path) -> list[tuple[Path, int, int]]:
    """Replace ``run``'s plain JSON-lines files by their gzip copies: (plain path, bytes before, after)
    for each file compressed. The copy is written in full (and read back) before the plain file goes."""
    done = []
    for name in FILES:
        plain = run / name
        if not plain.is_file():
            continue
        data = plain.read_bytes()
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        target = plain.with_name(name + COMPRESSED)
        atomic_write_bytes(target, packed)
        if gzip.decompress(target.read_bytes()) != data:
            raise OSError(f"{target} does not read back as {plain}; {plain} is kept")
        plain.unlink()
        done.append((plain, len(data), len(packed)))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of runs (searched recursively)")
    parser.add_argument("--check", action="store_true", help="only list the files that would be compressed")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not folder.is_dir():
            print(f"compact_runs: {folder} is not a folder; give folders of runs", file=sys.stderr)
            return 2
    runs = [run for folder in args.folders for run in finished_runs(folder)]
    pending = [run / name for run in runs for name in FILES if (run / name).is_file()]
    if args.check:
        for path in pending:
            print(path)
        print(f"{len(pending)} files of {len(runs)} finished runs would be compressed")
        return 1 if pending else 0
    before = after = count = 0
    for run in runs:
        for _, size, packed in compact(run):
            before, after, count = before + size, after + packed, count + 1
    print(f"{count} files of {len(runs)} finished runs compressed: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
