"""The tuning sweeper's selection on scripted held-out scores (no training): the grid grows past an
edge that won outright, a tie is no evidence, a sweep run again extends the same way, and
replicate seeds stay apart from the search seeds."""

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ltune.report.choices import describe
from ltune.tuning import TuneSweeper, extension_past_edge
from tests.conftest import run_cli

SPACE = [0.001, 0.003, 0.01, 0.03]


class ScriptedSweeper(TuneSweeper):
    """The sweeper with each job's metrics.json written from ``score(lr)`` instead of training; a
    job whose metrics.json exists is left alone (as the real sweep skips a finished job)."""

    def __init__(self, sweep_dir, score, **options):
        super().__init__(**options)
        self.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
        self.score, self.launched, self.trained = score, [], []

    def job_config(self, cell):
        return OmegaConf.create({"method": {"name": "prefix", "lr_search": SPACE, "lr": 0.01}})

    def check_jobs(self, cells, spaces):
        """Scripted jobs need no model or data (the real check: tests/test_tuning.py)."""

    def launch(self, jobs, first_index):
        for job in jobs:
            self.launched.append(job.folder)
            path = Path(self.config.hydra.sweep.dir) / job.folder / "metrics.json"
            if path.exists():
                continue
            self.trained.append(job.folder)
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(self.metrics_of(job)))

    def metrics_of(self, job) -> dict:
        """The metrics.json a job writes: its held-out score from ``score(lr)``."""
        score = self.score(float(next(o for o in job.overrides if o.startswith("trainer.lr=")).split("=")[1]))
        return {"selection": {"metric": "accuracy", "score": score, "accuracy": score}, "sizes": {"heldout": 500}}


def tuned_cell(sweep_dir):
    return json.loads((sweep_dir / "tuning.json").read_text())["cells"][0]


def test_a_point_past_an_edge_has_the_grids_ratio_there():
    assert extension_past_edge(SPACE, "top") == pytest.approx(0.09)
    assert extension_past_edge(SPACE, "bottom") == pytest.approx(0.000333)


def test_the_grid_grows_past_the_top_while_the_top_wins_and_a_sweep_run_again_does_the_same(tmp_path):
    """Held-out accuracy peaks at lr 0.1: 0.03 wins at the top edge, so 0.09 is searched; 0.09 wins
    at the new edge, so 0.27 is searched; 0.27 is worse, so 0.09 is chosen, inside the grid.
    Running the sweep again into the same folder searches the same points (finished: nothing is
    trained) and replicates the same choice."""
    peak = lambda lr: 0.9 - 0.05 * abs(math.log10(lr) - math.log10(0.1))  # noqa: E731
    sweeper = ScriptedSweeper(tmp_path / "sweep", peak, max_grid_extensions=3)
    sweeper.sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "sweep")
    assert cell["extended"] == [0.09, 0.27] and cell["chosen_lr"] == 0.09
    assert cell["search_space"] == [*SPACE, 0.09, 0.27] and describe(cell)["edge"] is None
    assert sorted(f for f in sweeper.launched if f.startswith("final/")) == ["final/prefix_s1", "final/prefix_s2",
                                                                           "final/prefix_s3"]
    again = ScriptedSweeper(tmp_path / "sweep", peak, max_grid_extensions=3)
    again.sweep(["method=prefix"])
    assert again.launched == sweeper.launched and again.trained == []
    assert tuned_cell(tmp_path / "sweep") == cell


def test_replicates_run_in_chunks_keep_every_chunks_seeds_and_reused_runs(tmp_path):
    """seeds=[1,2] then seeds=[3] on a grid that grows past its edge: tuning.json names all three
    seeds, and the search run reused as seed 1's replicate stays counted (the report reads
    reused_runs), though the second sweep's first selection, before the extensions, chose another
    rate. A new choice starts the cell again."""
    from ltune.report import reused_as_final

    peak = lambda lr: 0.9 - 0.05 * abs(math.log10(lr) - math.log10(0.1))  # noqa: E731
    options = dict(search_seeds=[1], reuse_search_runs=True, max_grid_extensions=3)
    ScriptedSweeper(tmp_path / "sweep", peak, seeds=[1, 2], **options).sweep(["method=prefix"])
    ScriptedSweeper(tmp_path / "sweep", peak, seeds=[3], **options).sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "sweep")
    assert cell["chosen_lr"] == 0.09 and cell["seeds"] == [1, 2, 3]
    assert cell["reused_runs"] == ["search/prefix_lr0.09_s1"]
    assert reused_as_final(tmp_path / "sweep", tmp_path / "sweep" / "search" / "prefix_lr0.09_s1")
    ScriptedSweeper(tmp_path / "sweep", lambda lr: 0.9 - lr, seeds=[3], search_seeds=[2],
                    max_grid_extensions=0).sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "sweep")
    assert cell["chosen_lr"] == 0.001 and cell["seeds"] == [3] and cell["reused_runs"] == []


def test_the_grid_stops_at_its_limit_and_the_choice_is_flagged_at_the_edge(tmp_path):
    rising = lambda lr: min(0.99, 0.5 + lr)  # noqa: E731
    ScriptedSweeper(tmp_path / "sweep", rising, max_grid_extensions=2).sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "sweep")
    assert cell["extended"] == [0.09, 0.27] and cell["chosen_lr"] == 0.27
    assert "at top edge" in describe(cell)["flags"]
    assert "at top edge" in (tmp_path / "sweep" / "tuning.md").read_text()


def test_a_tie_at_the_edge_is_no_evidence_for_extending(tmp_path):
    """Every point ties (CoLA's majority plateau): the smaller rate is chosen by the tie rule, no
    point is added, and the choice is flagged as at the edge, tied, within the held-out noise."""
    ScriptedSweeper(tmp_path / "sweep", lambda lr: 0.674).sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "sweep")
    assert cell["extended"] == [] and cell["chosen_lr"] == 0.001 and cell["heldout_size"] == 500
    found = describe(cell)
    assert found["flags"][:3] == ["at bottom edge", "margin < SE", "tie"]
    assert found["se"] == pytest.approx(math.sqrt(0.674 * 0.326 / 500))


def test_a_margin_smaller_than_the_held_out_standard_error_is_flagged(tmp_path):
    """0.003 wins by 0.004 on 500 held-out examples (SE of 0.88: 0.0145): flagged; a win by 0.05 is not."""
    for name, runner_up in (("close", 0.876), ("clear", 0.83)):
        scores = {0.001: 0.80, 0.003: 0.88, 0.01: runner_up, 0.03: 0.70}
        ScriptedSweeper(tmp_path / name, scores.get).sweep(["method=prefix"])
        found = describe(tuned_cell(tmp_path / name))
        assert found["margin"] == pytest.approx(0.88 - runner_up)
        assert ("margin < SE" in found["flags"]) == (name == "close")


def test_replicate_seeds_shared_with_the_search_are_refused_unless_reuse_is_asked_for(tmp_path, monkeypatch, capsys):
    """A replicate with a search seed would repeat the run that won the choice on its own held-out
    score. Refused with one line before anything is written; with reuse_search_runs, that run is
    the replicate (not trained again) and tuning.json names it for the report to flag."""
    code, out, err = run_cli(["train", "-m", "hydra/sweeper=ltune_tune", "method=prefix",
                              "hydra.sweeper.search_seeds=[1]", "hydra.sweeper.seeds=[1,2]",
                              "hydra.sweeper.max_grid_extensions=0", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                             tmp_path, monkeypatch, capsys)
    assert code == 2 and err.startswith("ltune: hydra.sweeper.seeds and hydra.sweeper.search_seeds share [1]")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sweep").exists()

    reused = ScriptedSweeper(tmp_path / "reused", lambda lr: 0.5 + lr, search_seeds=[1], seeds=[1, 2],
                             reuse_search_runs=True, max_grid_extensions=0)
    reused.sweep(["method=prefix"])
    assert [f for f in reused.launched if f.startswith("final/")] == ["final/prefix_s2"]
    cell = tuned_cell(tmp_path / "reused")
    assert cell["reused_runs"] == ["search/prefix_lr0.03_s1"] and "reused search run" in describe(cell)["flags"]


def test_replicates_run_seed_by_seed_across_cells(tmp_path):
    """Seed 1 of every cell, then seed 2: a sweep cut off part-way leaves every cell the same seeds,
    and one continued on another machine gives every cell the same machines."""
    sweeper = ScriptedSweeper(tmp_path / "sweep", lambda lr: 0.8 - abs(lr - 0.01), seeds=[1, 2, 3])
    sweeper.sweep(["method=prefix,prompt"])
    finals = [f for f in sweeper.launched if f.startswith("final/")]
    assert finals == ["final/prefix_s1", "final/prompt_s1", "final/prefix_s2", "final/prompt_s2",
                      "final/prefix_s3", "final/prompt_s3"]


def test_replicates_at_the_rates_another_sweep_chose_search_nothing(tmp_path, capsys):
    """hydra.sweeper.chosen_from: the cells' choices are copied (flagged 'chosen in'), no search run is
    launched, and the replicates train at the copied rate; a cell the other sweep lacks is refused in one
    line before anything is written."""
    first = ScriptedSweeper(tmp_path / "first", lambda lr: 0.8 - abs(lr - 0.01), seeds=[1])
    first.sweep(["method=prefix"])
    again = ScriptedSweeper(tmp_path / "again", lambda lr: 0.0, seeds=[1, 2], chosen_from=str(tmp_path / "first"))
    again.sweep(["method=prefix"])
    assert again.launched == ["final/prefix_s1", "final/prefix_s2"]
    cell = tuned_cell(tmp_path / "again")
    assert cell["chosen_lr"] == 0.01 and cell["seeds"] == [1, 2]
    assert "chosen in ../first/tuning.json" in describe(cell)["flags"]  # relative: the two folders move together
    refused = ScriptedSweeper(tmp_path / "other", lambda lr: 0.0, chosen_from=str(tmp_path / "first"))
    with pytest.raises(SystemExit) as exit_:
        refused.sweep(["method=prompt"])
    assert exit_.value.code == 2 and not (tmp_path / "other").exists()
    assert "no choice for prompt" in capsys.readouterr().err


class BudgetedSweeper(ScriptedSweeper):
    """A cell whose runs keep improving up to 4,000 steps: at a budget below that, a run stops at the
    budget with its best held-out step at the budget's end (capped); its score rises with the budget."""

    def job_config(self, cell, budget=()):
        steps = next((int(o.split("=")[1]) for o in budget if o.startswith("trainer.max_steps=")), 1000)
        return OmegaConf.create({"method": {"name": "prefix", "lr_search": SPACE, "lr": 0.01},
                                 "trainer": {"epochs": None, "max_steps": steps}})

    def metrics_of(self, job) -> dict:
        lr = float(next(o for o in job.overrides if o.startswith("trainer.lr=")).split("=")[1])
        steps = self.job_config(job.cell, job.budget).trainer.max_steps
        best = min(steps, 4000)
        score = self.score(lr) + 0.01 * best / 1000
        return {"selection": {"metric": "accuracy", "score": score, "accuracy": score, "best_step": best},
                "stopped": {"step": steps, "budget_steps": steps, "reason": "max_steps" if best == steps else "early_stopping"},
                "timing": {"total_seconds": steps / 10}, "sizes": {"heldout": 500}}


def test_a_capped_cell_is_flagged_and_its_budget_grows_within_its_limit(tmp_path, capsys):
    """Without growths the choice is flagged budget-capped. With max_budget_growths=1 the budget doubles to
    2,000 steps, the whole grid is searched again there (the cost printed first), the replicates train at
    2,000 steps in their own folders, and, still capped there, the cell keeps its flag."""
    peak = lambda lr: 0.8 - abs(lr - 0.01)  # noqa: E731
    flagged = BudgetedSweeper(tmp_path / "flag", peak, seeds=[1])
    flagged.sweep(["method=prefix"])
    assert "budget-capped" in describe(tuned_cell(tmp_path / "flag"))["flags"]
    assert not any("steps" in f for f in flagged.launched)
    grown = BudgetedSweeper(tmp_path / "grow", peak, seeds=[1], max_budget_growths=1)
    grown.sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "grow")
    assert cell["budget"] == ["trainer.max_steps=2000"] and len(cell["budget_growths"]) == 1
    assert [f for f in grown.launched if "_steps2000_lr" in f] == [f"search/prefix_steps2000_lr{lr:g}_s0" for lr in SPACE]
    assert [f for f in grown.launched if f.startswith("final/")] == ["final/prefix_steps2000_s1"]
    assert {"budget grown to trainer.max_steps=2000", "budget-capped"} <= set(describe(cell)["flags"])
    out = capsys.readouterr().out
    assert "searching its 4 points again at trainer.max_steps=2000 (was trainer.max_steps=1000; about 800 s" in out
    again = BudgetedSweeper(tmp_path / "grow", peak, seeds=[1], max_budget_growths=1)
    again.sweep(["method=prefix"])
    assert again.trained == [] and tuned_cell(tmp_path / "grow") == cell  # run again: the same sweep, nothing trained


class JointSweeper(ScriptedSweeper):
    """Scripted held-out scores over several axes: ``score(point)`` gets {key: value} of a job's overrides."""

    def metrics_of(self, job) -> dict:
        values = dict(o.split("=", 1) for o in job.overrides if o.startswith(("trainer.", "method.", "data.")))
        score = self.score(values)
        return {"selection": {"metric": "accuracy", "score": score, "accuracy": score}, "sizes": {"heldout": 500}}


def joint_score(values):
    """Best at softmax, map scale 40 (past the grid's top, 10), lr 0.01 (inside its grid). The grid's best
    point is softmax, scale 10, lr 0.01 (0.770), at the top edge of the scale: the scale grows to 100
    (0.780, better: the top edge again), then to 1,000 (0.730, worse): 100 is chosen, inside its grown
    axis. The categorical objective never grows, and the learning rate, inside its grid, does not."""
    lr, scale = float(values["trainer.lr"]), float(values["method.map_lr_scale"])
    objective = 0.1 if values["method.objective"] == "softmax" else 0.0
    return 0.7 + objective - 0.02 * abs(math.log10(lr) + 2) - 0.05 * abs(math.log10(scale) - math.log10(40))


AXES = {"prefix": {"method.objective": ["pairs", "softmax"], "method.map_lr_scale": [1, 10]}}


def test_a_joint_search_grows_a_numeric_axis_at_its_edge_and_never_a_categorical_one(tmp_path):
    sweeper = JointSweeper(tmp_path / "sweep", joint_score, seeds=[1], axes=AXES)
    sweeper.sweep(["method=prefix"])
    cell = tuned_cell(tmp_path / "sweep")
    assert cell["search_configurations"] == 4 * 2 * 2 + 2
    assert cell["extended_points"] == [["method.map_lr_scale", 100], ["method.map_lr_scale", 1000]]
    assert cell["chosen"] == {"trainer.lr": 0.01, "method.objective": "softmax", "method.map_lr_scale": 100}
    assert cell["chosen_lr"] == 0.01 and describe(cell)["edge"] is None
    finals = [f for f in sweeper.launched if f.startswith("final/")]
    assert finals == ["final/prefix_s1"]
    assert "search/prefix_lr0.01_objective-softmax_map_lr_scale-100_s0" in sweeper.launched
    assert not any("objective-" in f and not f.split("objective-")[1].startswith(("pairs", "softmax"))
                   for f in sweeper.launched)  # the categorical axis kept its two values
    # 0.780 over 0.770: a margin under the SE of 500 held-out texts (0.019)
    assert describe(cell)["flags"] == ["margin < SE", "extended map_lr_scale 100, map_lr_scale 1000"]
    final = sweeper.final_jobs([("method=prefix",)], {("method=prefix",): cell})[0]
    assert final.overrides == ["method=prefix", "trainer.lr=0.01", "method.objective=softmax", "method.map_lr_scale=100",
                               "seed=1"]  # the replicates train at the whole chosen point


def test_unequal_tuning_budgets_in_one_comparison_are_refused_or_flagged(tmp_path, capsys):
    """prefix searches 16 points and prompt 4 in one comparison (the same model and data): refused in one
    line before anything is written; allowed on request, each cell flagged in tuning.json and tuning.md."""
    class TwoMethods(JointSweeper):
        def job_config(self, cell, budget=()):
            name = cell[0].split("=")[1]
            return OmegaConf.create({"method": {"name": name, "lr_search": SPACE, "lr": 0.01}})

    def score(values):
        return joint_score({"method.objective": "pairs", "method.map_lr_scale": 1, **values})

    refused = TwoMethods(tmp_path / "refused", score, seeds=[1], axes=AXES)
    with pytest.raises(SystemExit) as exit_:
        refused.sweep(["method=prefix,prompt"])
    assert exit_.value.code == 2 and not (tmp_path / "refused").exists()
    assert "unequal tuning budgets in one comparison (search points per cell: prefix 16, prompt 4)" in capsys.readouterr().err
    allowed = TwoMethods(tmp_path / "allowed", score, seeds=[1], axes=AXES, allow_unequal_budgets=True)
    allowed.sweep(["method=prefix,prompt"])
    cells = {c["name"]: c for c in json.loads((tmp_path / "allowed" / "tuning.json").read_text())["cells"]}
    assert cells["prompt"]["unequal_budget"] == "4 search points where its comparison has prefix 16, prompt 4"
    assert "unequal tuning budget: 16 search points" in (tmp_path / "allowed" / "tuning.md").read_text()


def test_a_tie_between_categorical_values_goes_to_the_first_listed():
    sweeper = JointSweeper("unused", None)
    cell = ("method=prefix",)
    sweeper.cell_axes = {cell: {"trainer.lr": SPACE, "method.objective": ["softmax", "pairs"]}}
    first = (("trainer.lr", 0.01), ("method.objective", "softmax"))
    second = (("trainer.lr", 0.01), ("method.objective", "pairs"))
    assert sweeper.order_key(cell, first) < sweeper.order_key(cell, second)
    assert sweeper.order_key(cell, (("trainer.lr", 0.003), ("method.objective", "pairs"))) < sweeper.order_key(cell, first)


def test_a_sentence_on_an_axis_is_quoted_for_hydra_and_named_by_its_place_in_folders():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ltune.tuning import point_overrides, point_tag

    words = "A movie review, and what it's about"
    point = (("trainer.lr", 0.001), ("method.init_text", words), ("method.num_virtual_tokens", 8))
    (parsed,) = OverridesParser.create().parse_overrides([point_overrides(point)[1]])
    assert parsed.value() == words
    assert point_tag(point, {"method.init_text": ["neutral words", words]}) == "_lr0.001_init_text-v1_num_virtual_tokens-8"
    assert point_tag(point) == point_tag(point)  # no per-process hash: the same folder on every run


def test_replicates_on_another_task_take_the_choice_of_the_same_method():
    """data=demo at the point an SST-2 sweep chose: the cell of the same name is missing, so the one cell
    of the same method gives the choice (its name the new cell's)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        first = JointSweeper(root / "sst2", joint_score, seeds=[1], axes=AXES)
        first.sweep(["data=sst2", "method=prefix"])
        chosen = tuned_cell(root / "sst2")["chosen"]
        demo = JointSweeper(root / "demo", lambda values: 0.0, seeds=[1, 2], chosen_from=str(root / "sst2"))
        demo.sweep(["data=demo", "method=prefix"])
        cell = tuned_cell(root / "demo")
        assert cell["name"] == "demo_prefix" and cell["chosen"] == chosen
        assert demo.launched == ["final/demo_prefix_s1", "final/demo_prefix_s2"]


def test_a_contrast_replicates_the_chosen_point_with_one_axis_changed(tmp_path):
    """contrasts={prefix: [method.objective]}: besides the replicates of the chosen point (softmax), the same
    point with objective=pairs trains on the contrast seeds, seed by seed after the replicates; the report
    pairs it with the chosen point's replicates (a test over runs of that one knob), not with the twins."""
    import csv

    from ltune.report import report
    from tests.test_report import fake_run

    sweeper = JointSweeper(tmp_path, joint_score, seeds=[1, 2, 3, 4, 5, 6], axes=AXES,
                           contrasts={"prefix": ["method.objective"]}, contrast_seeds=[1, 2, 3, 4, 5, 6])
    sweeper.sweep(["method=prefix"])
    finals = [f for f in sweeper.launched if f.startswith("final/")]
    assert finals[:2] == ["final/prefix_s1", "final/prefix_contrast_objective-pairs_s1"] and len(finals) == 12
    for seed in range(1, 7):
        for folder, objective, accuracy in (("final/prefix", "softmax", 0.80), ("final/prefix_contrast_objective-pairs",
                                                                                 "pairs", 0.70)):
            fake_run(tmp_path, "smollm2", "sst2", "prefix", seed, accuracy + 0.002 * seed, name=f"{folder}_s{seed}",
                     settings={"objective": objective, "map_lr_scale": 100, "lr": 0.01})
    report(tmp_path)
    rows = list(csv.DictReader((tmp_path / "paired.csv").open()))
    assert [(r["a"], r["b"], r["kind"]) for r in rows] == [
        ("prefix [contrast method.objective=pairs]", "prefix", "contrast: method.objective changed (B: the chosen point)")]
    assert rows[0]["reads"] == "below" and float(rows[0]["delta"]) == pytest.approx(-0.10)


def test_a_second_sweep_into_a_folder_being_swept_is_refused_at_once(tmp_path, capsys):
    """Issue 44, item 10: two sweeps started into one folder both failed their jobs on each other's locks."""
    from ltune.run_files import RunLock

    with RunLock(tmp_path / "sweep"):
        second = ScriptedSweeper(tmp_path / "sweep", lambda lr: 0.8)
        with pytest.raises(SystemExit) as exit_:
            second.sweep(["method=prefix"])
    assert exit_.value.code == 2 and second.launched == []
    assert f"hydra.sweep.dir={tmp_path / 'sweep'} is being swept by pid" in capsys.readouterr().err
