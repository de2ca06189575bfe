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
sweep made for the cell of the same name (or else for the one cell of the same method: a choice made
on one task, trained on another), e.g. to train the same replicates again on another machine.

Job folders have fixed names (``search/<cell>_lr<lr>_s<seed>``, ``final/<cell>_s<seed>``), so
running the same command into the same ``hydra.sweep.dir`` again skips finished jobs and resumes
unfinished ones. Any launcher works (basic, joblib, submitit, SLURM).
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from omegaconf import DictConfig, OmegaConf, open_dict

from ltune.report.choices import CHOICES_TEXT, choices_table, lr_text


def selection_text(metric: str) -> str:
    """What the search compares: each run's best held-out ``metric`` (its metrics.json)."""
    return f"held-out {metric} (best evaluation of the run)"


#: Config groups: a cell names its choice of these by value.
GROUPS = ("model", "data", "method")
#: The axis every search has: the learning rate (a point's first coordinate).
LR = "trainer.lr"


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


def is_numeric(values: list) -> bool:
    """An axis whose values are all numbers (not booleans) grows at its edges; any other is categorical."""
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def value_past_edge(values: list, edge: str):
    """The next value of a numeric axis past ``edge`` with the ratio of its two outermost values there:
    a float to three significant figures, an integer rounded (None where that gives no new positive
    integer)."""
    if all(isinstance(v, int) for v in values):
        points = sorted(set(values))
        ratio = points[0] / points[1] if edge == "bottom" else points[-1] / points[-2]
        value = round((points[0] if edge == "bottom" else points[-1]) * ratio)
        return value if value >= 1 and value not in points else None
    return extension_past_edge([float(v) for v in values], edge)


#: A value that can stand in a folder name as it is; others are named by their place in the axis.
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,24}")


def value_text(value) -> str:
    """A value as an override writes it (true/false, 0.0003 as 0.0003; text with spaces or Hydra's
    special characters quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    if isinstance(value, str) and not PLAIN_VALUE.fullmatch(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def point_overrides(point: tuple) -> list[str]:
    return [f"{key}={value_text(value)}" for key, value in point]


def point_tag(point: tuple, axes: dict | None = None) -> str:
    """A search point in a folder name: _lr0.001, then _<last part of each other key>-<value>; a value
    that is no plain word (e.g. a sentence) by its place in its axis (``axes``): _init_text-v1."""
    parts = []
    for key, value in point:
        text = value_text(value)
        if key == LR:
            parts.append(f"_lr{text}")
            continue
        if not PLAIN_VALUE.fullmatch(text):
            values = (axes or {}).get(key, [])
            text = (f"v{values.index(value)}" if value in values
                    else "v" + hashlib.sha1(str(value).encode()).hexdigest()[:8])  # the same on every run
        parts.append(f"_{key.rsplit('.', 1)[-1]}-{text}")
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", "".join(parts))


def point_text(point: tuple) -> str:
    return ", ".join(f"{'lr' if k == LR else k}={value_text(v)}" for k, v in point)


@dataclasses.dataclass
class Job:
    cell: tuple
    overrides: list
    folder: str  # relative to the sweep folder
    budget: tuple = ()  # the cell's grown step budget (an override), () for the configured one
    point: tuple = ()  # the search point ((key, value), ...), () for a replicate

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
                 chosen_from: Optional[str] = None, max_budget_growths: int = 0, budget_growth: float = 2.0,
                 axes=None, allow_unequal_budgets: bool = False, contrasts=None, contrast_seeds=None, pack: int = 1):
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
        to_plain = lambda v: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v  # noqa: E731
        self.axes = {str(m): {str(k): list(to_plain(v)) for k, v in to_plain(a).items()}
                     for m, a in (to_plain(axes) or {}).items()}
        self.allow_unequal_budgets = allow_unequal_budgets
        self.pack = int(pack)
        self.contrasts = {str(m): [str(k) for k in to_plain(keys)] for m, keys in (to_plain(contrasts) or {}).items()}
        self.contrast_seeds = list(to_plain(contrast_seeds)) if contrast_seeds is not None else None
        self.budgets: dict[tuple, tuple] = {}  # per cell: the override of its grown step budget
        self.growths: dict[tuple, list] = {}  # per cell: why and how its budget grew
        self.cell_axes: dict[tuple, dict] = {}  # per cell: {key: values searched} (the learning rate first)
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

    def search_axes(self, cell: tuple) -> dict:
        """{key: values} the cell searches: the learning rate (the method's lr_search, or the sweeper's
        lr_search for that method; without a search, the cell's trainer.lr, method.lr unless set), then the sweeper's axes for the
        cell's method (hydra.sweeper.axes), in the order given."""
        cfg = self.job_config(cell)
        method = str(cfg.method.name)
        space = (self.lr_search or {}).get(method, cfg.method.lr_search)
        lrs = [float(lr) for lr in space] if self.search else [float(cfg.trainer.lr)]  # the cell's own rate
        return {LR: lrs, **(self.axes.get(method, {}) if self.search else {})}

    def launch(self, jobs: list[Job], first_index: int) -> None:
        """The jobs through the launcher; with ``pack`` > 1, jobs that can share one frozen model's forward
        (one cell, the same shapes) go in packs of up to ``pack``: one launcher job trains a pack
        (ltune/packed.py), each run into its own folder."""
        if not jobs:
            return
        overrides = []
        for pack in self.packs(jobs):
            first = pack[0]
            extra = [f"pack={self.write_pack(pack)}"] if len(pack) > 1 else []
            overrides.append([*first.overrides, *extra, f"hydra.sweep.subdir={first.folder}"])
        self.launcher.launch(overrides, initial_job_idx=first_index)

    def packs(self, jobs: list[Job]) -> list[list[Job]]:
        """Jobs in packs of up to ``pack`` that share a cell and every search value a run cannot change alone
        (ltune.packed.PER_RUN), in the jobs' order; packable methods only."""
        from ltune.packed import PACKABLE, PER_RUN

        if self.pack <= 1:
            return [[job] for job in jobs]
        open_packs: dict = {}
        packs: list[list[Job]] = []
        for job in jobs:
            method = next((o.partition("=")[2] for o in job.cell if o.startswith("method=")), None)
            shape = tuple((k, v) for k, v in job.point if k not in PER_RUN)
            key = (job.cell, job.budget, shape)
            if method not in PACKABLE:
                packs.append([job])
                continue
            pack = open_packs.get(key)
            if pack is None or len(pack) >= self.pack:
                pack = open_packs[key] = []
                packs.append(pack)
            pack.append(job)
        return packs

    def write_pack(self, pack: list[Job]) -> str:
        """The pack's file (its runs' folders and overrides), read by the job that trains them."""
        from ltune.run_files import write_json

        sweep_dir = Path(self.config.hydra.sweep.dir)
        path = sweep_dir / "packs" / f"{Path(pack[0].folder).name}.json"
        write_json(path, {"members": [{"folder": job.folder, "overrides": job.overrides} for job in pack]})
        return str(path.resolve())

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

    def check_jobs(self, cells: list[tuple], spaces: dict) -> None:
        """What every job needs, before the first one starts: each search point's config passes the schema,
        each model's files can be found (or are in the offline cache) and each data set can be read. A
        problem is one ``ltune:`` line and nothing is written (a job failing later would leave a folder
        per job)."""
        from ltune.backbone.sources import check_model_source
        from ltune.config import validate
        from ltune.data import check_sources, load_task
        from ltune.errors import LtuneError

        seen_models, seen_data = set(), set()
        try:
            for cell in cells:
                for point in spaces.get(cell) or [()]:
                    cfg = self.job_config(cell, (*self.budgets.get(cell, ()), *point_overrides(point)))
                    with open_dict(cfg):
                        cfg.pop("hydra", None)  # Hydra's own node resolves only inside a running job
                    validate(cfg)
                model, data = OmegaConf.to_yaml(cfg.model), OmegaConf.to_yaml(cfg.data)
                if model not in seen_models:
                    seen_models.add(model)
                    check_model_source(cfg.model)
                if data not in seen_data:
                    seen_data.add(data)
                    check_sources(cfg.data)
                    if not cfg.data.get("files") and not cfg.data.get("glue_dir"):
                        load_task(cfg.data, int(cfg.seed))  # a hub data set: read it once (offline: one line now)
        except LtuneError as err:
            print(f"ltune: {self.name(cell)}: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def check_packing(self, cells: list[tuple]) -> None:
        """pack > 1 needs the frozen model without dropout in every packable cell: one line before anything."""
        from ltune.packed import PACKABLE

        if self.pack <= 1:
            return
        for cell in cells:
            cfg = self.job_config(cell)
            if str(cfg.method.name) in PACKABLE and cfg.trainer.get("backbone_dropout", True):
                print(f"ltune: hydra.sweeper.pack={self.pack} needs trainer.backbone_dropout=false ({self.name(cell)} has "
                      "it true): one forward over several runs' texts cannot give each run its own dropout stream",
                      file=sys.stderr)
                raise SystemExit(2)

    def comparison_of(self, cell: tuple) -> tuple:
        """The cell's overrides but its method: the cells of one comparison share them."""
        return tuple(o for o in cell if o.partition("=")[0] != "method")

    def check_budgets(self, cells: list[tuple], spaces: dict) -> dict[tuple, str]:
        """Equal tuning budgets: within one comparison (cells that differ in the method only) every cell
        searches the same number of points with the same search seeds. Unequal ones are one ``ltune:``
        line before anything is written, unless allow_unequal_budgets; then {cell: flag} names them."""
        flags, by_comparison = {}, {}
        for cell in cells:
            by_comparison.setdefault(self.comparison_of(cell), []).append(cell)
        for comparison, members in by_comparison.items():
            sizes = {self.name(cell): len(spaces[cell]) for cell in members}
            if len(set(sizes.values())) < 2:
                continue
            listed = ", ".join(f"{name} {n}" for name, n in sizes.items())
            if not self.allow_unequal_budgets:
                print(f"ltune: unequal tuning budgets in one comparison (search points per cell: {listed}); give every "
                      "method the same number of points (method.lr_search, hydra.sweeper.lr_search, hydra.sweeper.axes) "
                      "or set hydra.sweeper.allow_unequal_budgets=true (tuning.md and the report then flag it)",
                      file=sys.stderr)
                raise SystemExit(2)
            for cell in members:
                flags[cell] = f"{len(spaces[cell])} search points where its comparison has {listed}"
        return flags

    def search_jobs(self, cell: tuple, points: list[tuple]) -> list[Job]:
        budget = self.budgets.get(cell, ())
        return [Job(cell, [*cell, *budget, *point_overrides(point), f"seed={seed}"],
                    f"search/{self.name(cell)}{self.budget_suffix(cell)}{point_tag(point, self.cell_axes.get(cell))}_s{seed}",
                    budget, point)
                for point, seed in itertools.product(points, self.search_seeds)]

    def search_runs(self, cell: tuple, point: tuple, search_jobs: list[Job], sweep_dir: Path) -> list[dict]:
        """The metrics of the cell's finished search runs at ``point`` under its current step budget."""
        found = [job.metrics(sweep_dir) for job in search_jobs if job.cell == cell
                 and job.budget == self.budgets.get(cell, ()) and job.point == point]
        return [m for m in found if m]

    def grown_budget(self, cell: tuple, chosen: dict, search_jobs: list[Job], sweep_dir: Path) -> dict | None:
        """When most search runs at the cell's chosen point were cut off by the step budget while still
        improving (report.summary.capped) and the cell has growths left (max_budget_growths): the next
        budget, ``budget_growth`` times the current one (trainer.epochs, or trainer.max_steps where no
        epochs are set), with why and what searching the grid again there costs. Else None."""
        from ltune.report.summary import capped

        if not self.search or chosen["chosen_lr"] is None or len(self.growths[cell]) >= self.max_budget_growths:
            return None
        point = chosen_point(chosen)
        runs = self.search_runs(cell, point, search_jobs, sweep_dir)
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
                "because": (f"{len(cut)} of {len(runs)} search runs at {point_text(point)} stopped at the "
                            f"{budget_steps}-step budget with their best held-out step in its last tenth "
                            f"(best steps {', '.join(str(m['selection'].get('best_step')) for m in cut)})"),
                "runs": chosen["search_configurations"] * len(self.search_seeds),
                "estimated_seconds": round(spent * grown / current, 1)}

    def extensions(self, cell: tuple, chosen: dict, points: list[tuple], extended: list) -> list[tuple]:
        """The points to add past the edges the cell's choice sits at: for each numeric axis whose chosen
        value is that axis's smallest or largest, when the choice won outright (a tie is no evidence) and
        the axis has extensions left (max_grid_extensions), the chosen point with that axis one step past
        its edge (the grid's ratio there). The other axes keep the chosen values."""
        if not self.search or chosen["chosen_lr"] is None or not won_point_outright(chosen):
            return []
        best = chosen_point(chosen)
        added = []
        for i, (key, value) in enumerate(best):
            values = sorted({p[i][1] for p in points})
            if not is_numeric(values) or len(values) < 2 or sum(k == key for k, _ in extended) >= self.max_grid_extensions:
                continue
            edge = "bottom" if value == values[0] else "top" if value == values[-1] else None
            new = value_past_edge(values, edge) if edge else None
            if new is not None:
                added.append(tuple((k, new if j == i else v) for j, (k, v) in enumerate(best)))
        return added

    def earlier_choices(self, cells: list[tuple]) -> dict:
        """Per cell, the choice of the sweep named by ``chosen_from`` for the cell of the same name.
        One ``ltune:`` line, before anything is written, when that file is missing or lacks a cell."""
        path = self.chosen_from / "tuning.json" if self.chosen_from.is_dir() else self.chosen_from
        earlier_cells = [c for c in tuning_cells(path.parent) if isinstance(c, dict)] if path.name == "tuning.json" else []
        found = {c.get("name"): c for c in earlier_cells}
        for cell in cells:  # another task: the one cell of the same method (e.g. SST-2's choice on the demo data)
            method = next((o.partition("=")[2] for o in cell if o.startswith("method=")), None)
            same = [c for c in earlier_cells if f"method={method}" in (c.get("cell") or [])]
            if self.name(cell) not in found and len(same) == 1:
                found[self.name(cell)] = same[0]
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
        return {cell: with_earlier_seeds({**found[self.name(cell)], "cell": list(cell), "name": self.name(cell),
                                          "seeds": self.seeds, "reused_runs": [], "chosen_in": shown}, earlier)
                for cell in cells}

    def contrast_points(self, cell: tuple, entry: dict) -> list[tuple[str, tuple]]:
        """(axis key, point) for each contrast of the cell (hydra.sweeper.contrasts): its chosen point with
        that axis at each of its other listed values."""
        best = chosen_point(entry)
        if best is None:
            return []
        method = next((o.partition("=")[2] for o in cell if o.startswith("method=")), None)
        axes = entry.get("axes") or self.cell_axes.get(cell) or {}
        found = []
        for key in self.contrasts.get(method, []):
            for value in axes.get(key, []):
                if value != dict(best).get(key):
                    found.append((key, tuple((k, value if k == key else v) for k, v in best)))
        return found

    def final_jobs(self, cells: list[tuple], tuning: dict) -> list[Job]:
        """The replicates at each cell's chosen point, seed by seed across cells (seed 1 of every
        cell, then seed 2, ...): a launcher that runs them in order and stops part-way leaves the
        cells with the same seeds done, and a sweep continued on another machine gives every cell
        the same machines. A contrast (hydra.sweeper.contrasts) trains the chosen point with one axis
        changed, on contrast_seeds, after the replicates of the same seed."""
        jobs = []
        contrast_seeds = self.seeds if self.contrast_seeds is None else self.contrast_seeds
        for seed in [*self.seeds, *(s for s in contrast_seeds if s not in self.seeds)]:
            for cell in cells:
                entry, budget = tuning[cell], self.budgets.get(cell, ())
                if entry["chosen_lr"] is None:
                    continue
                base = [*cell, *budget]
                if seed in self.seeds and not (self.search and self.reuse_search_runs and seed in self.search_seeds):
                    jobs.append(Job(cell, [*base, *point_overrides(chosen_point(entry)), f"seed={seed}"],
                                    f"final/{self.name(cell)}{self.budget_suffix(cell)}_s{seed}", budget))
                if seed in contrast_seeds:
                    axes = entry.get("axes") or self.cell_axes.get(cell)
                    for key, point in self.contrast_points(cell, entry):
                        tag = point_tag(tuple((k, v) for k, v in point if k == key), axes)
                        jobs.append(Job(cell, [*base, *point_overrides(point), f"seed={seed}"],
                                        f"final/{self.name(cell)}{self.budget_suffix(cell)}_contrast{tag}_s{seed}",
                                        budget, point))
        return jobs

    def sweep(self, arguments: List[str]) -> Any:
        """The whole sweep, holding its folder's lock: a second sweep into the same folder at once is
        refused in one line before it writes anything (two would fight over every job's folder)."""
        from ltune.run_files import RunLock

        sweep_dir = Path(self.config.hydra.sweep.dir)
        holder = RunLock.holder(sweep_dir)
        if holder:
            print(f"ltune: hydra.sweep.dir={sweep_dir} is being swept by {holder}; wait for that sweep to finish (or "
                  "stop it), or give another hydra.sweep.dir", file=sys.stderr)
            raise SystemExit(2)
        self.check_seeds()
        cells = self.cells(arguments)
        self.check_packing(cells)
        if self.chosen_from is not None:
            tuning = self.earlier_choices(cells)
            self.check_jobs(cells, {cell: [chosen_point(tuning[cell])] for cell in cells})
            with RunLock(sweep_dir):
                OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
                write_tuning(sweep_dir, list(tuning.values()))
                self.launch(self.final_jobs(cells, tuning), 0)
            return None
        self.cell_axes = {cell: self.search_axes(cell) for cell in cells}
        spaces = {cell: [tuple(zip(axes, values)) for values in itertools.product(*axes.values())]
                  for cell, axes in self.cell_axes.items()}
        self.budget_flags = self.check_budgets(cells, spaces) if self.search else {}
        self.check_jobs(cells, spaces if self.search else {})
        with RunLock(sweep_dir):  # from here on the sweep writes
            return self.search_and_replicate(cells, spaces, sweep_dir)

    def search_and_replicate(self, cells: list[tuple], spaces: dict, sweep_dir: Path) -> Any:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        # The cells as earlier sweeps left them, read before this sweep's first selection rewrites
        # them (a choice before the grid's extensions are searched is not the earlier choice).
        self.earlier_cells = tuning_cells(sweep_dir)
        extended = {cell: [] for cell in cells}
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
        while added := {cell: new for cell in cells if (new := self.extensions(cell, tuning[cell], spaces[cell],
                                                                                extended[cell]))}:
            jobs = []
            for cell, points in added.items():  # the same points again when the sweep is run again: finished jobs skip
                for point in points:
                    changed = next((k, v) for (k, v), (_, old) in zip(point, chosen_point(tuning[cell])) if v != old)
                    spaces[cell].append(point)
                    extended[cell].append(changed)
                jobs += self.search_jobs(cell, points)
            self.launch(jobs, len(search_jobs))
            search_jobs += jobs
            tuning = self.select(cells, spaces, search_jobs, sweep_dir, extended)
        return tuning

    def search_capped(self, cell: tuple, point, search_jobs: list[Job], sweep_dir: Path) -> bool:
        """Whether most search runs at the chosen point were cut off by their budget while improving."""
        from ltune.report.summary import capped

        runs = self.search_runs(cell, point, search_jobs, sweep_dir) if point is not None and self.search else []
        return bool(runs) and 2 * sum(map(capped, runs)) > len(runs)

    def order_key(self, cell: tuple, point: tuple) -> tuple:
        """The tie rule: the smaller learning rate, then each other axis's value in its listed order
        (numeric axes: the smaller value; a value the grid grew to comes past the listed ones)."""
        axes = self.cell_axes.get(cell, {})
        key = []
        for name, value in point:
            values = axes.get(name, [])
            if name == LR or is_numeric([value]):
                key.append((0, float(value)))
            else:
                key.append((1, values.index(value) if value in values else len(values)))
        return tuple(key)

    def select(self, cells, spaces, search_jobs: list[Job], sweep_dir: Path, extended=None) -> dict:
        """Per cell: the search point with the best mean held-out score (the metric the runs selected
        on, trainer.select_on) over the search seeds (ties: ``order_key``). Written to tuning.json
        and tuning.md."""
        tuning = {}
        for cell in cells:
            scores, metrics, sizes = {}, set(), set()
            for point in spaces[cell]:
                found = self.search_runs(cell, point, search_jobs, sweep_dir)
                sizes |= {m["sizes"]["heldout"] for m in found if "sizes" in m}
                found = [m["selection"] for m in found]
                metrics |= {s.get("metric", "accuracy") for s in found}
                values = [s.get("score", s["accuracy"]) for s in found]
                scores[point] = statistics.fmean(values) if values else None
            valid = {point: score for point, score in scores.items() if score is not None}
            if not self.search:
                chosen = spaces[cell][0]
            else:
                chosen = min(valid, key=lambda p: (-valid[p], self.order_key(cell, p))) if valid else None
            chosen_lr = dict(chosen)[LR] if chosen is not None else None
            # A search run at the chosen point with a replicate seed is that replicate (the same config):
            # reused instead of trained again when reuse_search_runs is on.
            reused = [f"search/{self.name(cell)}{self.budget_suffix(cell)}{point_tag(chosen, self.cell_axes.get(cell))}_s{seed}"
                      for seed in self.seeds
                      if self.search and self.reuse_search_runs and chosen is not None and seed in self.search_seeds]
            axes = self.cell_axes.get(cell, {LR: []})
            entry = {"cell": list(cell), "name": self.name(cell),
                     "search_space": sorted({dict(p)[LR] for p in spaces[cell]}),
                     "extended": [v for k, v in (extended or {}).get(cell, []) if k == LR],
                     "max_grid_extensions": self.max_grid_extensions,
                     "selected_on": "/".join(sorted(metrics)) or "accuracy",
                     "heldout_score": {lr_text(dict(p)[LR]): s for p, s in scores.items()},
                     "heldout_size": min(sizes) if sizes else None,
                     "chosen_lr": chosen_lr, "search_seeds": self.search_seeds, "seeds": self.seeds,
                     "searched": self.search, "reused_runs": reused, "search_configurations": len(spaces[cell]),
                     "budget": list(self.budgets.get(cell, ())), "budget_growths": self.growths.get(cell, []),
                     "max_budget_growths": self.max_budget_growths,
                     "search_capped": self.search_capped(cell, chosen, search_jobs, sweep_dir)}
            if len(axes) > 1:  # a joint search: every point with its score, the chosen point in full
                entry.update({"axes": {k: list(v) for k, v in axes.items()},
                              "points": [{"values": dict(p), "score": s} for p, s in scores.items()],
                              "extended_points": [[k, v] for k, v in (extended or {}).get(cell, [])],
                              "chosen": dict(chosen) if chosen is not None else None})
                entry["heldout_score"] = {}  # per point in "points": one lr has several scores
            if getattr(self, "budget_flags", {}).get(cell):
                entry["unequal_budget"] = self.budget_flags[cell]
            contrasts = self.contrasts.get(str(dict(o.partition("=")[::2] for o in cell).get("method")), [])
            if contrasts and len(axes) > 1:
                entry["contrasts"] = contrasts
                entry["contrast_seeds"] = self.seeds if self.contrast_seeds is None else self.contrast_seeds
            tuning[cell] = with_earlier_seeds(entry, self.earlier_cells)
        write_tuning(sweep_dir, list(tuning.values()))
        return tuning


def chosen_point(entry: dict) -> tuple:
    """The chosen search point of a tuning.json cell ((key, value), ...): its full point for a joint
    search, else its learning rate alone."""
    if entry.get("chosen"):
        return tuple(entry["chosen"].items())
    return ((LR, entry["chosen_lr"]),) if entry.get("chosen_lr") is not None else None


def scored_points(entry: dict) -> dict[tuple, float | None]:
    """{point: mean held-out score} of a tuning.json cell, joint search or learning rate alone."""
    if entry.get("points"):
        return {tuple(p["values"].items()): p["score"] for p in entry["points"]}
    return {((LR, float(lr)),): score for lr, score in (entry.get("heldout_score") or {}).items()}


def won_point_outright(entry: dict) -> bool:
    """Whether the chosen point's score is strictly the best (not a tie broken by the tie rule)."""
    scores, best = scored_points(entry), chosen_point(entry)
    if best is None or scores.get(best) is None:
        return False
    return all(score < scores[best] for point, score in scores.items() if point != best and score is not None)


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
            and e.get("chosen") == entry.get("chosen")
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
