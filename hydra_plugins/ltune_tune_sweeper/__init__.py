"""Registers ltune's tuning sweeper with Hydra: ``hydra/sweeper=ltune_tune`` (see ltune/tuning.py).

Hydra loads plugins from the ``hydra_plugins`` namespace without registering the module, so this
file keeps to plain runtime annotations.
"""

import dataclasses
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore

from ltune.tuning import TuneSweeper as _TuneSweeper


class TuneSweeper(_TuneSweeper):
    pass


@dataclasses.dataclass
class TuneSweeperConf:
    _target_: str = "hydra_plugins.ltune_tune_sweeper.TuneSweeper"
    #: The grid of cells, as the basic sweeper takes it: {key: "a,b,c"}.
    params: Optional[Any] = None
    #: Seeds of the learning-rate search (each lr is trained once per search seed).
    search_seeds: List[int] = dataclasses.field(default_factory=lambda: [0])
    #: Seeds of the final runs at the chosen learning rate: apart from search_seeds (a shared seed
    #: is refused unless reuse_search_runs), so no replicate was picked by its own held-out score.
    seeds: List[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])
    #: Skip the search and use the method's own lr (method.lr) for the final runs.
    search: bool = True
    #: A search run at the chosen lr whose seed is also a replicate seed is that replicate: reuse
    #: it instead of training the same config again (saves one run per cell; the report flags the
    #: cell, whose mean then includes a run selected on its own held-out score).
    reuse_search_runs: bool = False
    #: Points a cell's grid may grow by: while the best rate is an edge of the grid and beat every
    #: other point outright, one more point past that edge (the grid's ratio there) is searched.
    max_grid_extensions: int = 2
    #: {method name: [lr, ...]}: a smaller (or other) search space than the method's own
    #: method.lr_search, for every method alike (e.g. a costly model).
    lr_search: Optional[Any] = None
    #: A tuning sweep's folder (or its tuning.json): no search; each cell trains its replicates at
    #: the rate that sweep chose for the cell of the same name (e.g. the same table on another machine).
    chosen_from: Optional[str] = None
    #: Times a cell's step budget may grow: while most search runs at its chosen rate stopped at the
    #: budget with their best held-out step in its last tenth (still improving), the budget
    #: (trainer.epochs, else trainer.max_steps) is multiplied by budget_growth and the cell's whole grid
    #: searched again there; the cost is printed first. 0: flag such cells (tuning.md, the report) only.
    max_budget_growths: int = 0
    budget_growth: float = 2.0
    #: A joint search: {method name: {config key: [values]}} searched with the learning rate, every
    #: combination (e.g. {l_prefix: {method.objective: [pairs, softmax], method.map_lr_scale: [1, 10]}}).
    #: A numeric axis grows past a winning edge as the learning rate does (the other axes at the chosen
    #: values); a categorical one (text, booleans) does not.
    axes: Optional[Any] = None
    #: Within one comparison (cells that differ in the method only) every cell must search the same number
    #: of points; true lets unequal ones run, flagged in tuning.md and the report.
    allow_unequal_budgets: bool = False
    #: {method name: [axis key, ...]}: besides the replicates of the chosen point, train the chosen point
    #: with each listed axis at each of its other values (a test over runs of that one knob), on
    #: contrast_seeds (default: the replicate seeds). The report pairs each with the chosen point.
    contrasts: Optional[Any] = None
    contrast_seeds: Optional[List[int]] = None
    #: Up to this many runs of one cell (other seeds, rates or per-run options) train as one pack through one
    #: frozen model's forward (ltune/packed.py; needs trainer.backbone_dropout=false). 1: each run alone.
    pack: int = 1


ConfigStore.instance().store(group="hydra/sweeper", name="ltune_tune", node=TuneSweeperConf, provider="ltune")
