"""Figures per replicate group (results.csv) and per run (runs.csv): dev metrics over seeds, where
the runs stopped, costs, efficiency as the paper means it, classes a run never predicts."""

from __future__ import annotations

import statistics
from collections import Counter

from ltune.report.conditions import conditions_of
from ltune.report.stats import first_reaching, mean_ci, metric_range

METHOD_ORDER = ["prefix", "prompt", "l_prefix", "l_prompt"]
VANILLA = ("prefix", "prompt", "peft_prompt")
DEV_METRICS = ("accuracy", "matthews_corr", "f1", "macro_f1", "balanced_accuracy")
#: The share of a run's own plateau (best held-out accuracy) that "converged" means here.
PLATEAU_FRACTION = 0.95

#: The paper's Table 1 (accuracy on GLUE dev), keyed by ltune's model and data names.
PAPER_TABLE1 = {
    "bert": {"cola": (0.807, 0.791, 0.812, 0.802), "rte": (0.682, 0.661, 0.701, 0.682), "sst2": (0.912, 0.891, 0.920, 0.902)},
    "roberta": {"cola": (0.798, 0.784, 0.803, 0.791), "rte": (0.635, 0.594, 0.651, 0.604), "sst2": (0.940, 0.931, 0.942, 0.939)},
    "deberta": {"cola": (0.834, 0.812, 0.840, 0.819), "rte": (0.711, 0.672, 0.729, 0.679), "sst2": (0.938, 0.907, 0.947, 0.927)},
    "falcon": {"cola": (0.799, 0.772, 0.823, 0.816), "rte": (0.652, 0.607, 0.672, 0.638), "sst2": (0.848, 0.804, 0.901, 0.873)},
    "bloom": {"cola": (0.824, 0.835, 0.842, 0.817), "rte": (0.634, 0.615, 0.684, 0.660), "sst2": (0.857, 0.825, 0.909, 0.882)},
    "llama2": {"cola": (0.811, 0.793, 0.852, 0.821), "rte": (0.692, 0.662, 0.731, 0.691), "sst2": (0.881, 0.845, 0.941, 0.911)},
}


def paper_accuracy(model: str, data: str, method: str) -> float | None:
    row = PAPER_TABLE1.get(model, {}).get(data)
    return row[METHOD_ORDER.index(method)] if row and method in METHOD_ORDER else None


def time_to_fraction(log: list[dict], fraction: float = PLATEAU_FRACTION) -> tuple[int | None, float | None]:
    """(step, seconds) at which held-out accuracy first reached ``fraction`` of its best."""
    evals = [r for r in log if "heldout" in r]
    if not evals:
        return None, None
    return first_reaching(evals, fraction * max(r["heldout"]["accuracy"] for r in evals))


def _mean(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def never_predicted(run: dict) -> list[str]:
    """The dev classes (by name where the config has them) that a run predicts for no example."""
    if not run["predictions"]:
        return []
    gold = {label for _, label in run["predictions"].values()}
    predicted = {prediction for prediction, _ in run["predictions"].values()}
    names = run["settings"].get("data.label_names") or []
    return [str(names[c]) if isinstance(c, int) and 0 <= c < len(names) else str(c)
            for c in sorted(gold - predicted, key=str)]


#: A run is *stuck* when it never left the majority class: at least this share of its dev predictions
#: fall on one class, or its accuracy (dev, or best held-out where the run recorded the held-out
#: majority rate) is within one binomial standard error of the majority class's rate. A stuck run is
#: its own outcome (the method failed to start learning), reported beside the mean, not only in it.
STUCK_SHARE = 0.95
#: A run is *budget-capped* when it stopped at its step budget (not by early stopping) with its best
#: held-out step in the last tenth of that budget: it was still improving when it was cut off.
CAPPED_TAIL = 0.1
STUCK_TEXT = (
    f"Stuck: a run that never left the majority class — at least {STUCK_SHARE:.0%} of its dev predictions on one "
    "class, or its dev accuracy (or its best held-out accuracy, where the run recorded the held-out majority rate) "
    "within one binomial SE of the majority class's rate. A stuck run is a different outcome from a run that learns "
    "less well, so each cell gives its stuck rate (k/n, exact 95% interval) and each pair tests the two rates "
    "(Fisher's exact test) and gives its difference twice: over all runs (primary) and over the runs that learn "
    "(a sensitivity analysis, same tests).")
CAPPED_TEXT = (
    f"Budget-capped: the run stopped at its step budget (not by early stopping) with its best held-out step in the "
    f"last {CAPPED_TAIL:.0%} of it, so it was still improving; a cell with capped runs may be cut off, not worse "
    "(the tuning sweeper can grow a capped cell's budget: hydra.sweeper.max_budget_growths).")


def stuck(run: dict) -> bool:
    """Whether the run never left the majority class (STUCK_SHARE)."""
    from ltune.report.stats import binomial_se

    predictions = list(run.get("predictions", {}).values())
    if predictions:
        predicted = Counter(p for p, _ in predictions)
        if max(predicted.values()) >= STUCK_SHARE * len(predictions):
            return True
    majority = run["dev"].get("majority_rate")
    if majority is None and predictions:
        majority = max(Counter(y for _, y in predictions).values()) / len(predictions)
    examples = run["dev"].get("examples") or len(predictions)
    if majority is not None and examples and run["dev"].get("accuracy") is not None:
        if run["dev"]["accuracy"] <= majority + binomial_se(majority, examples):
            return True
    heldout = run.get("selection", {}).get("metrics", {})
    if heldout.get("majority_rate") is not None and heldout.get("examples"):
        return heldout["accuracy"] <= heldout["majority_rate"] + binomial_se(heldout["majority_rate"], heldout["examples"])
    return False


def capped(run: dict) -> bool:
    """Whether the run was cut off by its step budget while still improving (CAPPED_TAIL)."""
    stopped, best = run.get("stopped", {}), run.get("selection", {}).get("best_step")
    budget = stopped.get("budget_steps")
    if stopped.get("reason", "max_steps") == "early_stopping" or not budget or best is None:
        return False
    return best >= (1 - CAPPED_TAIL) * budget


def majority_rate(run: dict) -> float | None:
    """What predicting the most frequent dev class alone scores (metrics.json, or the saved predictions)."""
    if run["dev"].get("majority_rate") is not None:
        return run["dev"]["majority_rate"]
    labels = [y for _, y in run.get("predictions", {}).values()]
    return max(Counter(labels).values()) / len(labels) if labels else None


def learning_rate(run: dict):
    lr = run["settings"].get("trainer.lr")
    return run["settings"].get("method.lr") if lr is None else lr


def summarise(groups: dict[tuple, list[dict]]) -> list[dict]:
    """One row per replicate group: dev metrics with spread and CI, where the runs stopped, costs."""
    rows = []
    for (model, data, method, variant), runs in groups.items():
        row = {"model": model, "data": data, "method": method, "variant": variant, "runs": len(runs),
               "seeds": " ".join(str(r["seed"]) for r in runs),
               "reused_search_runs": sum(r.get("reused", False) for r in runs)}
        for metric in DEV_METRICS:
            if all(metric in r["dev"] for r in runs):
                found = mean_ci([r["dev"][metric] for r in runs], metric_range(metric))
                row.update({f"dev_{metric}_{k}": v for k, v in found.items()})
        row["dev_majority_rate"] = _mean([majority_rate(r) for r in runs])
        paper = paper_accuracy(model, data, method)
        row["paper_accuracy"] = paper
        row["delta_vs_paper"] = None if paper is None else row["dev_accuracy_mean"] - paper
        lrs = sorted({learning_rate(r) for r in runs}, key=str)
        row["lr"] = lrs[0] if len(lrs) == 1 else " ".join(map(str, lrs))
        row["never_predicted"] = "; ".join(f"s{r['seed']}: {', '.join(never_predicted(r))}"
                                           for r in runs if never_predicted(r))
        row.update(stuck_figures(runs))
        row["budget_capped"] = sum(capped(r) for r in runs)
        row["differs_within"] = differs_within(runs)
        sizes = {r.get("search_size") for r in runs} - {None}
        row["search_runs"] = max(sizes) if sizes else None  # what the tuning of its rate (and axes) spent
        row.update(_costs(runs))
        rows.append(row)
    return rows


#: What replicates of one config share whatever their seed; a group whose runs differ in one of these did
#: not run one protocol (e.g. a run of 20 steps beside runs of 200), and its row says so.
SHARED_FACTS = {"step budget": lambda r: (r.get("stopped") or {}).get("budget_steps"),
                "training texts": lambda r: (r.get("sizes") or {}).get("train"),
                "held-out texts": lambda r: (r.get("sizes") or {}).get("heldout"),
                "dev texts": lambda r: (r.get("sizes") or {}).get("dev"),
                "trainable parameters": lambda r: r.get("trainable_params")}


def differs_within(runs: list[dict]) -> str:
    """'' when the group's runs agree on SHARED_FACTS, else what differs and in which seeds."""
    found = []
    for name, fact in SHARED_FACTS.items():
        values: dict = {}
        for r in runs:
            values.setdefault(fact(r), []).append(r["seed"])
        if len({v for v in values if v is not None}) > 1:
            found.append(f"{name} " + ", ".join(f"{v} (seeds {' '.join(map(str, seeds))})" for v, seeds in values.items()))
    return "; ".join(found)


def stuck_figures(runs: list[dict]) -> dict:
    """The group's stuck runs: how many, their seeds, the exact 95% interval of the rate, and the mean dev
    accuracy of the runs that learn."""
    from ltune.report.stats import rate_interval

    found = [r for r in runs if stuck(r)]
    low, high = rate_interval(len(found), len(runs))
    learning = [r["dev"]["accuracy"] for r in runs if not stuck(r) and "accuracy" in r["dev"]]
    return {"stuck": len(found), "stuck_seeds": " ".join(str(r["seed"]) for r in found),
            "stuck_rate_ci_low": low, "stuck_rate_ci_high": high,
            "learning_dev_accuracy_mean": statistics.fmean(learning) if learning else None}


def _costs(runs: list[dict]) -> dict:
    to_plateau = [time_to_fraction(r["log"]) for r in runs]
    timing = [r["timing"] for r in runs]
    stops = [r.get("stopped", {}) for r in runs]
    reasons = sorted({s.get("reason", "max_steps") for s in stops})
    return {
        "heldout_best_mean": _mean([best_heldout(r) for r in runs]),
        "selected_on": "/".join(sorted({r.get("selection", {}).get("metric", "accuracy") for r in runs})),
        "trainable_params": runs[0]["trainable_params"],
        "total_params": runs[0]["total_params"],
        "steps": _mean([r["steps"] for r in runs]),
        "budget_steps": _mean([s.get("budget_steps") for s in stops]),
        "stop_reasons": " ".join(f"{reason} ({sum(s.get('reason', 'max_steps') == reason for s in stops)})"
                                 for reason in reasons),
        "best_step": _mean([r.get("selection", {}).get("best_step") for r in runs]),
        "seconds_per_step": _mean([t["seconds_per_step"] for t in timing]),
        "train_seconds": _mean([t["train_seconds"] for t in timing]),
        "total_seconds": _mean([t.get("total_seconds") for t in timing]),
        "outside_steps_share": _mean([1 - t["seconds_per_step"] * r["steps"] / t["total_seconds"]
                                      for t, r in zip(timing, runs) if t.get("total_seconds")]),
        "padding_efficiency": _mean([t.get("padding_efficiency") for t in timing]),
        "steps_to_plateau": _mean([s for s, _ in to_plateau]),
        "seconds_to_plateau": _mean([t for _, t in to_plateau]),
        "eval_seconds_per_example": _mean([t["eval_seconds_per_example"] for t in timing]),
        "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
    }


def best_heldout(run: dict) -> float | None:
    """The best held-out score of the metric the run selected on (trainer.select_on; accuracy in
    runs written before it)."""
    selection = run.get("selection", {})
    return selection.get("score", selection.get("accuracy"))


def add_vanilla_targets(rows: list[dict], groups: dict[tuple, list[dict]]) -> None:
    """Steps and seconds until each run's held-out accuracy reaches the best vanilla method's
    plateau in its cell (mean best held-out accuracy over the vanilla method's seeds)."""
    for row in rows:
        vanilla = [r for r in rows if (r["model"], r["data"]) == (row["model"], row["data"])
                   and r["method"] in VANILLA and r["heldout_best_mean"] is not None]
        if not vanilla:
            row.update({"vanilla_plateau": None, "steps_to_vanilla_plateau": None, "seconds_to_vanilla_plateau": None,
                        "reached_vanilla_plateau": None})
            continue
        target = max(r["heldout_best_mean"] for r in vanilla)
        runs = groups[(row["model"], row["data"], row["method"], row["variant"])]
        reached = [first_reaching(r["log"], target) for r in runs]
        row.update({"vanilla_plateau": target,
                    "steps_to_vanilla_plateau": _mean([s for s, _ in reached]),
                    "seconds_to_vanilla_plateau": _mean([t for _, t in reached]),
                    "reached_vanilla_plateau": f"{sum(s is not None for s, _ in reached)}/{len(reached)}"})


def machine_name(run: dict) -> str:
    """The machine a run's timings come from (metrics.json environment.machine), in words."""
    found = run.get("environment", {}).get("machine")
    if not found:
        return "a machine not recorded"
    bf16 = "native bf16" if found.get("native_bf16") else "no native bf16"
    gpu = f"{found['gpu']} on " if found.get("gpu") else ""
    return f"{gpu}{found.get('cpu')} ({found.get('cpu_capability')}, {bf16}), {found.get('cores')} cores"


def role_of(run: dict) -> str:
    if run.get("repeated"):
        return "repeat (not averaged)"
    if run.get("reused"):
        return "search + replicate (reused)"
    return "search" if run["stage"] == "search" else "replicate"


def run_rows(runs: list[dict], variants: dict[str, str], folder, size_settings: dict[str, str] | None = None) -> list[dict]:
    """runs.csv: one row per finished run, search runs and repeats included; ``size_settings``: per
    run folder, the settings its group's name leaves to the training size."""
    rows = []
    for run in sorted(runs, key=lambda r: r["run_dir"]):
        selection, stopped, timing = run.get("selection", {}), run.get("stopped", {}), run.get("timing", {})
        rows.append({"run": str(_relative(run["run_dir"], folder)), "model": run["model"], "data": run["data"],
                     "method": run["method"], "variant": variants.get(run["run_dir"], ""),
                     "size_settings": (size_settings or {}).get(run["run_dir"], ""), "seed": run["seed"],
                     "lr": learning_rate(run), "role": role_of(run),
                     "selected_on": selection.get("metric", "accuracy"), "best_heldout_score": best_heldout(run),
                     "best_heldout_step": selection.get("best_step"), "stop_reason": stopped.get("reason", "max_steps"),
                     "stopped_at_step": stopped.get("step", run.get("steps")),
                     **{f"dev_{m}": run["dev"].get(m) for m in DEV_METRICS if m in run["dev"]},
                     "never_predicted": ", ".join(never_predicted(run)), "stuck": stuck(run),
                     "budget_capped": capped(run),
                     # The L-methods' label texts (data.label_text_kind) and the labels whose scores tied.
                     "label_text_kind": run.get("label_text_kind", "configured"),
                     "tied_labels": "; ".join(" = ".join(map(str, g)) for g in run.get("tied_labels", [])),
                     "train_seconds": timing.get("train_seconds"), "total_seconds": timing.get("total_seconds"),
                     "machine": machine_name(run),
                     **{k: v for k, v in conditions_of(run).items() if k != "machine"}})
    return rows


def _relative(path: str, folder):
    """A run's folder as seen from the report's folder (``../runs/...`` for another sweep's run)."""
    import os
    from pathlib import Path

    return Path(os.path.relpath(path, folder))
