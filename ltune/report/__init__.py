"""``ltune report FOLDER``: every run under FOLDER -> report.md, results.csv, runs.csv, paired.csv and plots.

Where each part lives:
- collect.py: reading run folders; seed replicate groups (same resolved config but the seed);
- pairs.py: which groups are compared (L-method vs twin, ablation vs default, requested pairs);
- stats.py: every statistic (scipy.stats): the test over training runs (primary), its power, the
  examples-level test (secondary), intervals of a mean, held-out standard errors;
- choices.py: a tuning sweep's learning-rate choices with their edge and noise flags (tuning.json);
- summary.py: figures per group (results.csv) and per run (runs.csv);
- tables.py, markdown.py, plots.py: the rendering.
Failed, unfinished and unreadable runs are listed, never averaged in; a tuning sweep's search runs
are not averaged unless the sweep reused one as a replicate (then the report flags the cell).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

from ltune.errors import LtuneError
from ltune.report.collect import (collect, drop_repeated_seeds, replicate_groups, search_variants, settings_of_sizes,
                                  size_settings)
from ltune.report.conditions import balance_plan, stratum, stratum_text
from ltune.report.markdown import markdown
from ltune.report.pairs import paired_rows
from ltune.report.plots import plot
from ltune.report.summary import add_vanilla_targets, machine_name, run_rows, summarise, time_to_fraction
from ltune.report.tables import csv_text, stopping_table
from ltune.run_files import write_text

__all__ = ["report", "time_to_fraction", "stopping_table"]


def reused_as_final(folder: Path, run: Path) -> bool:
    """Whether a tuning sweep (tuning.json above ``run``) counts this search run as a replicate."""
    for sweep in [run.parent.parent, *run.parents]:
        path = sweep / "tuning.json"
        if path.is_file():
            try:
                cells = json.loads(path.read_text())["cells"]
            except (ValueError, KeyError):
                return False
            relative = str(run.relative_to(sweep))
            return any(relative in cell.get("reused_runs", []) for cell in cells)
        if sweep == folder:
            break
    return False


def attach_tuning(runs: list[dict]) -> None:
    """Each run of a tuning sweep gets, from its sweep's tuning.json cell: ``tuned``, the config keys that
    sweep searched besides the learning rate (hydra.sweeper.axes: results of the tuning, like the rate, not
    settings that set groups apart), and ``search_size``, the search runs its cell spent (points x search
    seeds; None outside a tuning sweep)."""
    cells_of: dict = {}
    for run in runs:
        path = Path(run["run_dir"])
        sweep = path.parent.parent
        if sweep not in cells_of:
            cells_of[sweep] = tuning_cells_at(sweep)
        run["tuned"], run["search_size"] = frozenset(), None
        for cell in cells_of[sweep]:
            axes = cell.get("axes") or {}
            found = re.fullmatch(re.escape(str(cell.get("name"))) + r"(_(epochs|steps)\d+)?"
                                 r"(_contrast_(?P<short>[A-Za-z0-9_]+?)-[^/]+|_lr.*)?_s\d+", path.name)
            if found:
                run["tuned"] = frozenset(k for k in axes if k != "trainer.lr")
                if found.group("short"):  # a contrast: the chosen point with this axis changed
                    run["contrast"] = next((k for k in axes if k.rsplit(".", 1)[-1] == found.group("short")), None)
                size = cell.get("search_configurations") or len(cell.get("search_space") or [])
                grown = len(cell.get("extended_points") or cell.get("extended") or [])
                seeds = len(cell.get("search_seeds") or [1]) if cell.get("searched", True) else 0
                run["search_size"], run["search_initial"] = size * seeds, (size - grown) * seeds
                break


def tuning_cells_at(sweep: Path) -> list[dict]:
    try:
        cells = json.loads((sweep / "tuning.json").read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def sweeps_of(folder: Path, runs: list[dict], shown_from: Path | None = None) -> list[tuple[str, list[dict]]]:
    """(where, cells) of every tuning.json under ``folder``, where relative to ``shown_from`` (the
    report's folder; ``folder`` itself by default); a cell written before the sweeper recorded its
    held-out size gets it from its search runs' metrics.json."""
    sweeps = []
    for path in sorted(folder.rglob("tuning.json")):
        try:
            cells = json.loads(path.read_text())["cells"]
        except (ValueError, KeyError, TypeError):
            continue
        for cell in cells:
            if not cell.get("heldout_size"):
                prefix = str(path.parent / "search" / f"{cell['name']}_lr")
                sizes = [r["sizes"]["heldout"] for r in runs if r["run_dir"].startswith(prefix) and "sizes" in r]
                cell["heldout_size"] = min(sizes) if sizes else None
        shown = Path(os.path.relpath(path.parent, shown_from or folder))
        sweeps.append(("" if shown == Path(".") else str(shown), cells))
    return sweeps


def machines(runs: list[dict]) -> list[str]:
    """One line per machine the runs' timings come from, with how many runs it holds."""
    counts = Counter(machine_name(run) for run in runs)
    return [f"{name} ({n} runs)" for name, n in sorted(counts.items())]


def check_folders(folder: Path, others=()) -> None:
    """One line for a folder that is missing, or for folders that would read some runs twice."""
    for path in (folder, *others):
        if not path.is_dir():
            raise LtuneError(f"{path} is not a folder; give a sweep folder or outputs/")
    roots = [path.resolve() for path in (folder, *others)]
    for i, a in enumerate(roots):
        for b in roots[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise LtuneError(f"{a} and {b} overlap, so their runs would count twice; give folders side by side")


def balance_target(groups: dict, wanted: str | None) -> tuple | None:
    """The run conditions (a stratum) whose text contains ``wanted`` (case-insensitive); None for the
    default (the conditions most runs have). One line when none or several match."""
    if not wanted:
        return None
    every = sorted({stratum(r) for runs in groups.values() for r in runs})
    found = [key for key in every if wanted.lower() in stratum_text(key).lower()]
    if len(found) != 1:
        listed = "; ".join(stratum_text(key) for key in every)
        raise LtuneError(f"balance={wanted} matches {len(found)} of the runs' conditions ({listed}); give a text "
                         "that names one of them, e.g. its CPU or GPU")
    return found[0]


def check_compare(groups: dict, compare, folders) -> None:
    """A requested comparison whose side has no finished replicates is one line (nothing is written)."""
    methods = sorted({key[2] for key in groups})
    for a, b in compare:
        absent = [m for m in (a, b) if m not in methods]
        if absent:
            where = ", ".join(map(str, folders))
            raise LtuneError(f"compare={a}:{b}: no finished {' or '.join(absent)} runs under {where} (its methods with "
                             f"runs: {', '.join(methods)}); drop the pair or add that sweep's folder with with=")


def report(folder: Path, compare=(), others=(), balance: str | None = None) -> Path:
    """Write the report of every run under ``folder`` and under each of ``others`` (other sweeps'
    folders, read as if their runs were here; the report is written in ``folder``); ``compare``:
    (method A, method B) pairs to test besides the L-methods' twins and the ablations. ``balance``: a
    text naming a set of run conditions (e.g. a CPU's name): print which seeds of which groups would
    have to run again under it for the table to be balanced (the report's own plan aims at the
    conditions most runs have)."""
    folder, others = Path(folder), [Path(other) for other in others]
    check_folders(folder, others)
    from ltune.run_files import check_folder_path

    check_folder_path(folder, "the report's folder", "the report is written beside the runs: copy the folder somewhere "
                                                     "writable and report there")
    finished, problems = [], []
    for root in (folder, *others):
        runs, broken = collect(root)
        for run in runs:  # a search run a tuning sweep reused as a replicate is a final run
            if run["stage"] == "search" and reused_as_final(root, Path(run["run_dir"])):
                run["stage"], run["reused"] = "final", True
        finished, problems = finished + runs, problems + broken
    attach_tuning(finished)
    searched = [r for r in finished if r["stage"] == "search"]
    finished = [r for r in finished if r["stage"] != "search"]
    if not finished:
        outputs = [name for name in ("report.md", "results.csv", "tuning.json") if (folder / name).is_file()]
        raise LtuneError(f"no finished runs (metrics.json) under {folder}"
                         + (f"; it holds a report's outputs ({', '.join(outputs)}) but not the run folders they "
                            "came from: give the sweep folder with its runs" if outputs else ""))
    readable = finished
    finished, repeats = drop_repeated_seeds(finished)
    groups = replicate_groups(finished)
    check_compare(groups, compare, [folder, *others])
    target = balance_target(groups, balance)
    rows = summarise(groups)
    add_vanilla_targets(rows, groups)
    paired, unpaired = paired_rows(groups, compare)
    variants = {r["run_dir"]: key[3] for key, runs in groups.items() for r in runs}
    variants |= search_variants(searched, finished)
    linked = size_settings(groups)
    for row in rows:
        row["size_settings"] = linked.get((row["model"], row["data"], row["method"], row["variant"]), "")
    by_size = {r["run_dir"]: linked.get(key, "") for key, runs in groups.items() for r in runs}
    repeated = {p["run_dir"] for p in repeats}
    every_run = [*finished, *searched, *({**r, "repeated": True} for r in readable if r["run_dir"] in repeated)]
    write_text(folder / "results.csv", csv_text(rows))
    write_text(folder / "runs.csv", csv_text(run_rows(every_run, variants, folder, by_size)))
    if paired:
        write_text(folder / "paired.csv", csv_text(paired))
    plots = plot(groups, paired, folder)
    sweeps = [sweep for root in (folder, *others) for sweep in sweeps_of(root, finished + searched, folder)]
    title = str(folder) + (f" (with the runs of {', '.join(map(str, others))})" if others else "")
    write_text(folder / "report.md", markdown(title, rows, paired, plots, problems + repeats, len(finished),
                                              len(searched), unpaired, machines(finished + searched), sweeps,
                                              settings_of_sizes(groups), groups))
    if balance:
        _, lines = balance_plan(groups, target)
        print(f"ltune: to train every group under {stratum_text(target)}, run again: "
              + ("nothing (every run already did)" if not lines else ""))
        for line in lines:
            print(f"  {line}")
        if lines:
            print("  (e.g. a tuning sweep into a new folder with hydra.sweeper.chosen_from=<this sweep> and those seeds)")
    return folder / "report.md"
