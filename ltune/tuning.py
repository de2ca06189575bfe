"""``hydra/sweeper=ltune_tune``: a fair comparison as one sweep.

1. Search: every cell of the grid (e.g. model x data x method) trains once per learning rate of
   its method's own search space (``method.lr_search``: the same number of points for every
   method) and per search seed.
2. Select: per cell, the learning rate with the best mean held-out score (``trainer.select_on``,
   accuracy unless set; the held-out slice of the training split; dev is never read). Written to ``<sweep>/tuning.json`` and
   ``tuning.md`` next to the results, with the winning score's standard error and margin.
   A cell whose best rate is an edge of its grid, and beat every other point outright (a tie is no
   evidence), gets one more point past that edge with the grid's own ratio there; up to
   ``max_grid_extensions`` points per cell, then the choice is flagged as still at an edge.
3. Replicate: the chosen learning rate with every replicate seed. Replicate seeds are apart from
   the search seeds unless ``reuse_search_runs`` (the winning search run then counts as a
   replicate, and the report flags the cell). Replicates run seed by seed across cells (seed 1 of
   every cell, then seed 2, ...), so a sweep that stops and continues on another machine leaves
   every cell with runs on the same machines.

A cell whose chosen rate's search runs were cut off by the step budget while still improving is
flagged 'budget-capped'; with ``max_budget_growths`` the sweeper multiplies its budget by
``budget_growth`` (printing why and the cost first) and searches the cell's grid again there, as it
grows a grid past an edge.

``chosen_from`` (a sweep folder or its tuning.json) skips steps 1-2: each cell takes the choice that
sweep made for the cell of the same name, e.g. to train the same replicates again on another machine.

Job folders have fixed names (``search/<cell>_lr<lr>_s<seed>``, ``final/<cell>_s<seed>``), so
running the same command into the same ``hydra.sweep.dir`` again skips finished jobs and resumes
unfinished ones. Any launcher works (basic, joblib, submitit, SLURM).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from ltune.report.choices import CHOICES_TEXT, choices_table, edge_of, lr_text, scores_of, won_outright


def selection_text(metric: str) -> str:
    """What the search compares: each run's best held-out ``metric`` (its metrics.json)."""
    return f"held-out {metric} (best evaluation of the run)"


#: Config groups: a cell names its choice of these by value.
GROUPS = ("model", "data", "method")


def cell_name(cell: Sequence[str], varying: set[str] = frozenset()) -> str:
    """A folder-safe name for a cell: its model, data and method choices by value, and the keys
    that vary between cells as key-value (e.g. minilm_sst2_l_prefix_z_input-states)."""
    parts = []
    for override in cell:
        key, _, value = override.partition("=")
        if key in GROUPS:
            parts.append(value)
        elif key in varying:
            parts.append(f"{key.rsplit('.', 1)[-1]}-{value}")
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", "_".join(parts)) or "run"


def extension_past_edge(space: list[float], edge: str) -> float:
    """One more learning rate past the grid's ``edge`` with the grid's ratio between its two points
    there (geometric), to three significant figures."""
    points = sorted(space)
    lr = points[0] ** 2 / points[1] if edge == "bottom" else points[-1] ** 2 / points[-2]
    return float(f"{lr:.3g}")


@dataclasses.dataclass
class Job:
    cell: tuple
    overrides: list
    folder: str  # relative to the sweep folder
    budget: tuple = ()  # the cell's grown step budget (an override), () for the configured one

    def metrics(self, sweep_dir: Path) -> dict | None:
        path = sweep_dir / self.folder / "metrics.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


class TuneSweeper(Sweeper):
    """The sweeper's logic (hydra_plugins.ltune_tune_sweeper registers it with Hydra)."""

    def __init__(self, params=None, search_seeds=(0,), seeds=(1, 2, 3), search: bool = True,
                 reuse_search_runs: bool = False, lr_search=None, max_grid_extensions: int = 2,
                 chosen_from: Optional[str] = None, max_budget_growths: int = 0, budget_growth: float = 2.0):
        self.params = dict(params or {})
        self.search_seeds = list(search_seeds)
        self.earlier_cells: list = []  # tuning.json's cells when the sweep started (sweep())
        self.seeds = list(seeds)
        self.search = search
        self.reuse_search_runs = reuse_search_runs
        self.max_grid_extensions = max_grid_extensions
        self.lr_search = dict(lr_search or {})
        self.chosen_from = Path(str(chosen_from)) if chosen_from else None
        self.max_budget_growths, self.budget_growth = max_budget_growths, budget_growth
        self.budgets: dict[tuple, tuple] = {}  # per cell: the override of its grown step budget
        self.growths: dict[tuple, list] = {}  # per cell: why and how its budget grew
        self.config = self.launcher = self.config_loader = None
        self.varying: set[str] = set()

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.config_loader = hydra_context.config_loader
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    # -- the grid ------------------------------------------------------------------------------
    def cells(self, arguments: List[str]) -> list[tuple]:
        parser = OverridesParser.create()
        given = parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        by_key = {}  # the command line replaces the sweeper's params for the same key
        for override in given:
            key = override.get_key_element()
            if override.is_sweep_override():
                by_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            else:
                by_key[key] = [f"{key}={override.get_value_element_as_str()}"]
        axes = list(by_key.values())
        self.varying = {axis[0].partition("=")[0] for axis in axes if len(axis) > 1}
        return list(itertools.product(*axes))

    def name(self, cell: tuple) -> str:
        return cell_name(cell, self.varying)

    def job_config(self, cell: tuple, budget: tuple = ()) -> DictConfig:
        return self.config_loader.load_sweep_config(self.config, [*cell, *budget])

    def budget_suffix(self, cell: tuple) -> str:
        """'' for the configured budget; '_epochs8' or '_steps2000' for a grown one (folder names)."""
        budget = self.budgets.get(cell, ())
        if not budget:
            return ""
        key, _, value = budget[0].partition("=")
        return f"_{'epochs' if key == 'trainer.epochs' else 'steps'}{value}"

    def launch(self, jobs: list[Job], first_index: int) -> None:
        if not jobs:
            return
        overrides = [[*job.overrides, f"hydra.sweep.subdir={job.folder}"] for job in jobs]
        self.launcher.launch(overrides, initial_job_idx=first_index)

    # -- the sweep -----------------------------------------------------------------------------
    def check_seeds(self) -> None:
        """Replicates apart from the search: a replicate seed that is also a search seed repeats
        the search run that won (its held-out luck chose it), unless reuse is asked for. One
        ``ltune:`` line before anything is written (Hydra would print an exception as a traceback)."""
        shared = sorted(set(self.seeds) & set(self.search_seeds))
        if self.search and shared and not self.reuse_search_runs:
            print(f"ltune: hydra.sweeper.seeds and hydra.sweeper.search_seeds share {shared}: a replicate with a "
                  "search seed repeats the search run that won the choice on its own held-out score; give "
                  "replicate seeds apart from the search seeds (the default: search_seeds=[0], seeds=[1,2,3]) or "
                  "set hydra.sweeper.reuse_search_runs=true to count that run as a replicate (the report flags it)",
                  file=sys.stderr)
            raise SystemExit(2)

    def search_jobs(self, cell: tuple, lrs: list[float]) -> list[Job]:
        budget = self.budgets.get(cell, ())
        return [Job(cell, [*cell, *budget, f"trainer.lr={lr_text(lr)}", f"seed={seed}"],
                    f"search/{self.name(cell)}{self.budget_suffix(cell)}_lr{lr_text(lr)}_s{seed}", budget)
                for lr, seed in itertools.product(lrs, self.search_seeds)]

    def search_runs(self, cell: tuple, lr: float, search_jobs: list[Job], sweep_dir: Path) -> list[dict]:
        """The metrics of the cell's finished search runs at ``lr`` under its current step budget."""
        found = [job.metrics(sweep_dir) for job in search_jobs if job.cell == cell
                 and job.budget == self.budgets.get(cell, ()) and f"trainer.lr={lr_text(lr)}" in job.overrides]
        return [m for m in found if m]

    def grown_budget(self, cell: tuple, chosen: dict, search_jobs: list[Job], sweep_dir: Path) -> dict | None:
        """When most search runs at the cell's chosen rate were cut off by the step budget while still
        improving (report.summary.capped) and the cell has growths left (max_budget_growths): the next
        budget, ``budget_growth`` times the current one (trainer.epochs, or trainer.max_steps where no
        epochs are set), with why and what searching the grid again there costs. Else None."""
        from ltune.report.summary import capped

        if not self.search or chosen["chosen_lr"] is None or len(self.growths[cell]) >= self.max_budget_growths:
            return None
        runs = self.search_runs(cell, chosen["chosen_lr"], search_jobs, sweep_dir)
        cut = [m for m in runs if capped(m)]
        if not runs or 2 * len(cut) <= len(runs):
            return None
        trainer = self.job_config(cell, self.budgets.get(cell, ())).trainer
        key = "trainer.epochs" if trainer.get("epochs") else "trainer.max_steps"
        current = int(trainer.get("epochs") or trainer.get("max_steps"))
        grown = max(current + 1, math.ceil(current * self.budget_growth))
        spent = sum((m.get("timing") or {}).get("total_seconds") or 0.0 for job in search_jobs
                    if job.cell == cell and job.budget == self.budgets.get(cell, ()) for m in [job.metrics(sweep_dir)] if m)
        budget_steps = cut[0].get("stopped", {}).get("budget_steps")
        return {"override": f"{key}={grown}", "from": f"{key}={current}",
                "because": (f"{len(cut)} of {len(runs)} search runs at lr {lr_text(chosen['chosen_lr'])} stopped at the "
                            f"{budget_steps}-step budget with their best held-out step in its last tenth "
                            f"(best steps {', '.join(str(m['selection'].get('best_step')) for m in cut)})"),
                "runs": len(chosen["search_space"]) * len(self.search_seeds),
                "estimated_seconds": round(spent * grown / current, 1)}

    def extension(self, chosen: dict, extended: list[float]) -> float | None:
        """The point to add past the edge a cell's choice sits at, when it won there outright and the
        cell has extensions left; else None."""
        edge = edge_of(chosen["search_space"], chosen["chosen_lr"])
        if not self.search or not edge or len(extended) >= self.max_grid_extensions:
            return None
        return extension_past_edge(chosen["search_space"], edge) if won_outright(scores_of(chosen),
                                                                                 chosen["chosen_lr"]) else None

    def earlier_choices(self, cells: list[tuple]) -> dict:
        """Per cell, the choice of the sweep named by ``chosen_from`` for the cell of the same name.
        One ``ltune:`` line, before anything is written, when that file is missing or lacks a cell."""
        path = self.chosen_from / "tuning.json" if self.chosen_from.is_dir() else self.chosen_from
        found = {c.get("name"): c for c in tuning_cells(path.parent) if isinstance(c, dict)} if path.name == "tuning.json" else {}
        missing = [self.name(cell) for cell in cells if found.get(self.name(cell), {}).get("chosen_lr") is None]
        if missing:
            print(f"ltune: hydra.sweeper.chosen_from={self.chosen_from}: "
                  + (f"no choice for {', '.join(missing)} in {path}" if found else f"no readable tuning.json at {path}")
                  + "; give the folder of a tuning sweep over the same cells (its tuning.json)", file=sys.stderr)
            raise SystemExit(2)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        shown = os.path.relpath(path.resolve(), sweep_dir.resolve())  # moves with a study that moves both folders
        earlier = tuning_cells(sweep_dir)
        for cell in cells:
            self.budgets[cell] = tuple(found[self.name(cell)].get("budget") or ())
        return {cell: with_earlier_seeds({**found[self.name(cell)], "cell": list(cell), "seeds": self.seeds,
                                          "reused_runs": [], "chosen_in": shown}, earlier) for cell in cells}

    def final_jobs(self, cells: list[tuple], tuning: dict) -> list[Job]:
        """The replicates at each cell's chosen rate, seed by seed across cells (seed 1 of every
        cell, then seed 2, ...): a launcher that runs them in order and stops part-way leaves the
        cells with the same seeds done, and a sweep continued on another machine gives every cell
        the same machines."""
        return [Job(cell, [*cell, *self.budgets.get(cell, ()), f"trainer.lr={lr_text(tuning[cell]['chosen_lr'])}",
                           f"seed={seed}"], f"final/{self.name(cell)}{self.budget_suffix(cell)}_s{seed}",
                    self.budgets.get(cell, ()))
                for seed in self.seeds for cell in cells if tuning[cell]["chosen_lr"] is not None
                if not (self.search and self.reuse_search_runs and seed in self.search_seeds)]

    def sweep(self, arguments: List[str]) -> Any:
        self.check_seeds()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        cells = self.cells(arguments)
        if self.chosen_from is not None:
            tuning = self.earlier_choices(cells)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            write_tuning(sweep_dir, list(tuning.values()))
            self.launch(self.final_jobs(cells, tuning), 0)
            return None
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        # The cells as earlier sweeps left them, read before this sweep's first selection rewrites
        # them (a choice before the grid's extensions are searched is not the earlier choice).
        self.earlier_cells = tuning_cells(sweep_dir)
        spaces, extended = {}, {cell: [] for cell in cells}
        for cell in cells:
            cfg = self.job_config(cell)
            space = (self.lr_search or {}).get(str(cfg.method.name), cfg.method.lr_search)
            spaces[cell] = [float(lr) for lr in space] if self.search else [float(cfg.method.lr)]
        self.growths = {cell: [] for cell in cells}
        search_jobs = [job for cell in cells for job in self.search_jobs(cell, spaces[cell])] if self.search else []
        self.launch(search_jobs, 0)
        tuning = self.extend_grids(cells, spaces, search_jobs, sweep_dir, extended)
        while grown := {cell: g for cell in cells if (g := self.grown_budget(cell, tuning[cell], search_jobs, sweep_dir))}:
            jobs = []
            for cell, growth in grown.items():  # the whole grid again at the longer budget: one budget per cell
                print(f"ltune: {self.name(cell)}: {growth['because']}; searching its {growth['runs']} points again at "
                      f"{growth['override']} (was {growth['from']}; about {growth['estimated_seconds']:,.0f} s, from "
                      f"its search runs' times)", flush=True)
                self.budgets[cell] = (growth["override"],)
                self.growths[cell].append(growth)
                jobs += self.search_jobs(cell, spaces[cell])
            self.launch(jobs, len(search_jobs))
            search_jobs += jobs
            tuning = self.extend_grids(cells, spaces, search_jobs, sweep_dir, extended)
        self.launch(self.final_jobs(cells, tuning), len(search_jobs))
        return None

    def extend_grids(self, cells, spaces, search_jobs: list[Job], sweep_dir: Path, extended) -> dict:
        """Select, then grow each cell's grid past a winning edge until no cell has an edge to grow
        (module docstring); returns the choices. ``search_jobs`` gains the jobs it launches."""
        tuning = self.select(cells, spaces, search_jobs, sweep_dir, extended)
        while added := {cell: lr for cell in cells if (lr := self.extension(tuning[cell], extended[cell])) is not None}:
            jobs = []
            for cell, lr in added.items():  # the same points again when the sweep is run again: finished jobs skip
                spaces[cell] = sorted([*spaces[cell], lr])
                extended[cell].append(lr)
                jobs += self.search_jobs(cell, [lr])
            self.launch(jobs, len(search_jobs))
            search_jobs += jobs
            tuning = self.select(cells, spaces, search_jobs, sweep_dir, extended)
        return tuning

    def search_capped(self, cell: tuple, chosen, search_jobs: list[Job], sweep_dir: Path) -> bool:
        """Whether most search runs at the chosen rate were cut off by their budget while improving."""
        from ltune.report.summary import capped

        runs = self.search_runs(cell, chosen, search_jobs, sweep_dir) if chosen is not None and self.search else []
        return bool(runs) and 2 * sum(map(capped, runs)) > len(runs)

    def select(self, cells, spaces, search_jobs: list[Job], sweep_dir: Path, extended=None) -> dict:
        """Per cell: the learning rate with the best mean held-out score (the metric the runs
        selected on, trainer.select_on) over the search seeds (ties: the smaller learning rate).
        Written to tuning.json and tuning.md."""
        tuning = {}
        for cell in cells:
            scores, metrics, sizes = {}, set(), set()
            for lr in spaces[cell]:
                found = self.search_runs(cell, lr, search_jobs, sweep_dir)
                sizes |= {m["sizes"]["heldout"] for m in found if "sizes" in m}
                found = [m["selection"] for m in found]
                metrics |= {s.get("metric", "accuracy") for s in found}
                values = [s.get("score", s["accuracy"]) for s in found]
                scores[lr] = statistics.fmean(values) if values else None
            valid = {lr: s for lr, s in scores.items() if s is not None}
            if not self.search:
                chosen = spaces[cell][0]
            else:
                chosen = min(valid, key=lambda lr: (-valid[lr], lr)) if valid else None
            # A search run at the chosen lr with a replicate seed is that replicate (the same config):
            # reused instead of trained again when reuse_search_runs is on.
            reused = [f"search/{self.name(cell)}_lr{lr_text(chosen)}_s{seed}" for seed in self.seeds
                      if self.search and self.reuse_search_runs and chosen is not None and seed in self.search_seeds]
            tuning[cell] = with_earlier_seeds({"cell": list(cell), "name": self.name(cell), "search_space": spaces[cell],
                            "extended": list((extended or {}).get(cell, [])),
                            "max_grid_extensions": self.max_grid_extensions,
                            "selected_on": "/".join(sorted(metrics)) or "accuracy",
                            "heldout_score": {lr_text(lr): s for lr, s in scores.items()},
                            "heldout_size": min(sizes) if sizes else None,
                            "chosen_lr": chosen, "search_seeds": self.search_seeds, "seeds": self.seeds,
                            "searched": self.search, "reused_runs": reused,
                            "budget": list(self.budgets.get(cell, ())), "budget_growths": self.growths.get(cell, []),
                            "max_budget_growths": self.max_budget_growths,
                            "search_capped": self.search_capped(cell, chosen, search_jobs, sweep_dir)},
                                              self.earlier_cells)
        write_tuning(sweep_dir, list(tuning.values()))
        return tuning


def tuning_cells(sweep_dir: Path) -> list:
    """The cells of the folder's tuning.json (none when it is missing or unreadable)."""
    try:
        cells = json.loads((sweep_dir / "tuning.json").read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return cells if isinstance(cells, list) else []


def with_earlier_seeds(entry: dict, earlier: list) -> dict:
    """The cell with the replicate seeds (and reused search runs) of earlier sweeps of the same
    choice added: replicates run in chunks (seeds=[1,2,3], then seeds=[4,5]) all stay on record, and
    the report keeps counting a reused search run that an earlier chunk named. A cell whose choice
    changed (another rate or other search seeds) starts again."""
    same = [e for e in earlier if isinstance(e, dict) and e.get("name") == entry["name"]
            and e.get("chosen_lr") == entry["chosen_lr"] and e.get("search_seeds") == entry["search_seeds"]
            and (e.get("budget") or []) == (entry.get("budget") or [])]
    if not same:
        return entry
    seeds = sorted(set(entry["seeds"]) | set(same[0].get("seeds") or []))
    reused = sorted(set(entry["reused_runs"]) | set(same[0].get("reused_runs") or []))
    return {**entry, "seeds": seeds, "reused_runs": reused}


def write_tuning(sweep_dir: Path, entries: list[dict]) -> None:
    """Write this sweep's cells to tuning.json/tuning.md, keeping the cells that other sweeps into
    the same folder wrote (e.g. one task at a time): the report reads which search runs are
    replicates from here, and losing a cell would silently drop that cell's reused replicate."""
    from ltune.run_files import write_json, write_text

    earlier = tuning_cells(sweep_dir)
    names = {e["name"] for e in entries}
    entries = sorted([e for e in earlier if isinstance(e, dict) and e.get("name") not in names] + entries,
                     key=lambda e: e["name"])
    metrics = sorted({e.get("selected_on", "accuracy") for e in entries}) or ["accuracy"]
    selection = selection_text(" or ".join(metrics))
    write_json(sweep_dir / "tuning.json", {"selection": selection, "cells": entries})
    lines = ["# Learning-rate search", "",
             f"Chosen per cell by {selection} on the held-out slice of the training split "
             f"(mean over search seeds {entries[0]['search_seeds'] if entries else []}); dev is not read."
             + (" The search run at the chosen lr with a replicate seed is that replicate (reused, not retrained)."
                if any(e["reused_runs"] for e in entries) else ""), "",
             CHOICES_TEXT, "", choices_table(entries)]
    write_text(sweep_dir / "tuning.md", "\n".join(lines) + "\n")
