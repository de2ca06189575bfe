"""Compact the per-step log and the dev predictions of finished runs, for folders kept in git.

A finished run's log.jsonl and predictions.jsonl are most of its size. By default each is cut to what
`ltune report` reads and gzipped: the log keeps its held-out evaluations (the curves, the steps to a
plateau), the predictions keep each dev example's id, gold label and prediction (not every label's
score); the two shrink about 20x and 5x. `--full` keeps every line and field and only gzips (about a
sixth). `ltune report` reads either form, so a folder of committed runs (studies/*/) keeps
log.jsonl.gz and predictions.jsonl.gz. Unfinished runs are left alone: a resumed run appends to its
plain log.jsonl. The result is deterministic (no name or time in the gzip header), so a run compacts
to the same bytes on any machine, and running the script again changes nothing.

    python scripts/compact_runs.py studies/learning_curve/runs studies/label_semantics/runs
    python scripts/compact_runs.py --check studies      # list what would change; exit 1 if anything would
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


#: Per file, what `ltune report` reads of each line (None: the line is left out).
def _evaluation(record: dict) -> dict | None:
    return record if "heldout" in record else None


def _prediction(record: dict) -> dict:
    return {key: record[key] for key in ("id", "label", "prediction") if key in record}


SLIM = {LOG: _evaluation, PREDICTIONS: _prediction}


def slimmed(name: str, data: bytes) -> bytes:
    """The JSON lines of ``data`` cut to what the report reads (SLIM); the same bytes when already cut."""
    keep = SLIM[name]
    lines = []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            record = keep(json.loads(line))
            if record is not None:
                lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def compact(run: Path, full: bool = False) -> list[tuple[Path, int, int]]:
    """Replace ``run``'s JSON-lines files (plain or gzipped) by gzip copies cut to what the report reads
    (all of them with ``full``): (path, bytes before, after) for each file changed. The copy is written
    in full (and read back) before the old file goes."""
    done = []
    for name in FILES:
        plain, target = run / name, run / (name + COMPRESSED)
        source = plain if plain.is_file() else target if target.is_file() else None
        if source is None:
            continue
        stored = source.read_bytes()
        data = gzip.decompress(stored) if source == target else stored
        kept = data if full else slimmed(name, data)
        packed = gzip.compress(kept, compresslevel=9, mtime=0)
        if source == target and packed == stored:
            continue  # already compact
        atomic_write_bytes(target, packed)
        if gzip.decompress(target.read_bytes()) != kept:
            raise OSError(f"{target} does not read back as written; {source} is kept")
        if source == plain:
            plain.unlink()
        done.append((source, len(stored), len(packed)))
    return done


def pending_files(run: Path, full: bool) -> list[Path]:
    """The files of ``run`` that compacting would change."""
    found = []
    for name in FILES:
        plain, target = run / name, run / (name + COMPRESSED)
        if plain.is_file():
            found.append(plain)
        elif target.is_file() and not full:
            stored = target.read_bytes()
            if gzip.compress(slimmed(name, gzip.decompress(stored)), compresslevel=9, mtime=0) != stored:
                found.append(target)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of runs (searched recursively)")
    parser.add_argument("--check", action="store_true", help="only list the files that would change")
    parser.add_argument("--full", action="store_true", help="keep every line and field (only gzip)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not folder.is_dir():
            print(f"compact_runs: {folder} is not a folder; give folders of runs", file=sys.stderr)
            return 2
    runs = [run for folder in args.folders for run in finished_runs(folder)]
    if args.check:
        pending = [path for run in runs for path in pending_files(run, args.full)]
        for path in pending:
            print(path)
        print(f"{len(pending)} files of {len(runs)} finished runs would change")
        return 1 if pending else 0
    before = after = count = 0
    for run in runs:
        for _, size, packed in compact(run, args.full):
            before, after, count = before + size, after + packed, count + 1
    print(f"{count} files of {len(runs)} finished runs compacted ({'gzipped' if args.full else 'cut to what ltune report reads and gzipped'}): "
          f"{before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
