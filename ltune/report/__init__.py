"""``ltune report FOLDER``: every run under FOLDER -> report.md, results.csv, paired.csv and plots.

- Accuracy in the paper's Table 1 layout (methods as rows, model x data as columns): mean ± std
  over seed replicates, the 95% confidence interval and the run count; the paper's number where
  it has the cell. Only true replicates are averaged (same resolved config but the seed).
- Paired comparisons on the same dev examples: each L-method against its vanilla twin (l_prefix
  vs prefix, l_prompt vs prompt) and each ablation against its method's paper default.
- Where each run stopped and why; efficiency as the paper means it (steps and seconds until the
  held-out accuracy reaches 95% of the run's own plateau, and the best vanilla method's plateau).
- A tuning sweep's learning-rate search (tuning.json) is shown; its search runs are not averaged.
Failed, unfinished and unreadable runs are listed, never averaged in.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from pathlib import Path

from ltune.errors import LtuneError
from ltune.report.collect import collect, default_of, drop_repeated_seeds, is_default_value, replicate_groups
from ltune.report.plots import plot
from ltune.report.stats import (PAIRED_TEST, first_reaching, mean_ci, paired_difference, per_seed_correct,
                                seeds_and_examples_ci)
from ltune.run_files import write_text

METHOD_ORDER = ["prefix", "prompt", "l_prefix", "l_prompt"]
METHOD_LABELS = {"prefix": "Prefix (P)", "prompt": "Prompt (Pr)", "l_prefix": "L-prefix (LT-P)",
                 "l_prompt": "L-prompt (LT-Pr)"}
#: Each L-method and the vanilla method it is compared with.
TWINS = {"l_prefix": "prefix", "l_prompt": "prompt"}
VANILLA = ("prefix", "prompt", "peft_prompt")
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


def summarise(groups: dict[tuple, list[dict]]) -> list[dict]:
    """One row per replicate group: dev metrics with spread and CI, where the runs stopped, costs."""
    rows = []
    for (model, data, method, variant), runs in groups.items():
        row = {"model": model, "data": data, "method": method, "variant": variant, "runs": len(runs),
               "seeds": " ".join(str(r["seed"]) for r in runs)}
        for metric in ("accuracy", "matthews_corr", "f1", "macro_f1"):
            if all(metric in r["dev"] for r in runs):
                mean, std, low, high = mean_ci([r["dev"][metric] for r in runs])
                row.update({f"dev_{metric}_mean": mean, f"dev_{metric}_std": std,
                            f"dev_{metric}_ci_low": low, f"dev_{metric}_ci_high": high})
        paper = paper_accuracy(model, data, method)
        row["paper_accuracy"] = paper
        row["delta_vs_paper"] = None if paper is None else row["dev_accuracy_mean"] - paper
        lrs = sorted({r["settings"].get("trainer.lr") for r in runs}, key=str)
        row["lr"] = lrs[0] if len(lrs) == 1 else " ".join(map(str, lrs))
        row.update(_costs(runs))
        rows.append(row)
    return rows


def _costs(runs: list[dict]) -> dict:
    to_plateau = [time_to_fraction(r["log"]) for r in runs]
    timing = [r["timing"] for r in runs]
    stops = [r.get("stopped", {}) for r in runs]
    reasons = sorted({s.get("reason", "max_steps") for s in stops})
    return {
        # the metric each run selected on (trainer.select_on; accuracy in runs written before it)
        "heldout_best_mean": _mean([r.get("selection", {}).get("score", r.get("selection", {}).get("accuracy"))
                                    for r in runs]),
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


def settings_apart(a: list[dict], b: list[dict]) -> list[str]:
    """The keys in which two replicate groups differ; a tuning sweep's chosen lr is a result, so it
    is left out when both groups were tuned."""
    sa, sb = a[0]["settings"], b[0]["settings"]
    keys = sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k))
    if all(r["stage"] == "final" for r in a + b):
        keys = [k for k in keys if k != "trainer.lr"]
    return keys


def comparisons(groups: dict[tuple, list[dict]]) -> list[tuple[tuple, tuple, str]]:
    """(A, B, kind) pairs of replicate groups to test on the same dev examples:
    - each L-method against its vanilla twin in the same cell (the paper's claim);
    - within one cell, two groups that differ in exactly one setting (an ablation, or a speed
      setting such as the precision): A is the changed setting, B has the schema's default."""
    pairs = []
    for key in groups:
        twins = [k for k in default_twins(key, groups) if not twin_mismatch(groups[key], groups[k])]
        if len(twins) == 1:
            pairs.append((key, twins[0], "L-method vs vanilla twin"))
    keys = list(groups)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if a[:3] != b[:3]:
                continue
            differing = settings_apart(groups[a], groups[b])
            if len(differing) != 1:
                continue
            setting, default = differing[0], default_of(differing[0], a[2])
            changed, base = (b, a) if str(groups[a][0]["settings"].get(setting)) == str(default) else (a, b)
            pairs.append((changed, base, f"{setting} changed (B: default)"))
    return pairs


def default_twins(key: tuple, groups: dict[tuple, list[dict]]) -> list[tuple]:
    """For an L-method group with the paper's settings, the groups of its vanilla twin (l_prefix:
    prefix, l_prompt: prompt) in the same model and data with the schema's settings; else none."""
    model, data, method, _ = key
    if method not in TWINS or not is_default(key, groups):
        return []
    return [k for k in groups if k[:3] == (model, data, TWINS[method]) and is_default(k, groups)]


def twin_mismatch(a: list[dict], b: list[dict]) -> list[str]:
    """The settings outside the method (model, data, trainer but the learning rate) in which an
    L-method's runs and its twin's differ: runs trained or scored differently are no pair."""
    sa, sb = a[0]["settings"], b[0]["settings"]
    return sorted(k for k in sa.keys() | sb.keys()
                  if not k.startswith("method.") and k != "trainer.lr" and sa.get(k) != sb.get(k))


def unpaired_twins(groups: dict[tuple, list[dict]]) -> list[str]:
    """Lines for the report: L-method groups whose twin exists but was trained or scored with other
    settings, so no paired test was made."""
    lines = []
    for key in groups:
        for twin in default_twins(key, groups):
            differences = twin_mismatch(groups[key], groups[twin])
            if differences:
                lines.append(f"{key[0]} / {key[1]}: {_name(key)} vs {_name(twin)} not paired; their runs differ in "
                             + ", ".join(differences))
    return lines


def is_default(key: tuple, groups: dict) -> bool:
    """Whether a group's distinguishing settings are all the schema's defaults."""
    if not key[3]:
        return True
    settings = groups[key][0]["settings"]
    names = [part.split("=", 1)[0] for part in key[3].split(", ")]
    return all(is_default_value(settings.get(n), n, key[2]) for n in names if n != "trainer.lr")


def paired_rows(groups: dict[tuple, list[dict]]) -> list[dict]:
    rows = []
    for a, b, kind in comparisons(groups):
        runs_a, runs_b = groups[a], groups[b]
        preds_a = [r["predictions"] for r in runs_a if r["predictions"]]
        preds_b = [r["predictions"] for r in runs_b if r["predictions"]]
        if not preds_a or not preds_b:
            continue
        ids = sorted(set.intersection(*(set(p) for p in preds_a + preds_b)))
        if not ids:
            continue
        table_a, table_b = per_seed_correct(preds_a, ids), per_seed_correct(preds_b, ids)
        result = paired_difference(table_a.mean(axis=0), table_b.mean(axis=0))
        low, high = seeds_and_examples_ci(table_a, table_b)
        rows.append({"kind": kind, "model": a[0], "data": a[1], "a": _name(a), "b": _name(b),
                     "seeds_a": len(preds_a), "seeds_b": len(preds_b), **result,
                     "ci_low_seeds_too": low, "ci_high_seeds_too": high})
    return rows


def _name(key: tuple) -> str:
    return key[2] + (f" [{key[3]}]" if key[3] else "")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def accuracy_table(rows: list[dict], metric: str = "accuracy") -> str:
    columns = sorted({(r["model"], r["data"]) for r in rows})
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    methods = sorted({(r["method"], r["variant"]) for r in rows}, key=lambda mv: (order.get(mv[0], 99), mv))
    by_key = {(r["model"], r["data"], r["method"], r["variant"]): r for r in rows}
    lines = ["| method | " + " | ".join(f"{m} / {d}" for m, d in columns) + " |", "|---|" + "---|" * len(columns)]
    for method, variant in methods:
        cells = []
        for model, data in columns:
            r = by_key.get((model, data, method, variant))
            if r is None or f"dev_{metric}_mean" not in r:
                cells.append("–")
                continue
            if r[f"dev_{metric}_std"] is None:
                cell = f"{r[f'dev_{metric}_mean']:.3f} (n=1: no spread, no interval)"
            else:
                cell = (f"{r[f'dev_{metric}_mean']:.3f} ± {r[f'dev_{metric}_std']:.3f} "
                        f"[{r[f'dev_{metric}_ci_low']:.3f}, {r[f'dev_{metric}_ci_high']:.3f}] (n={r['runs']})")
            if metric == "accuracy" and r["paper_accuracy"] is not None:
                cell += f"; paper {r['paper_accuracy']:.3f}, Δ {r['delta_vs_paper']:+.3f}"
            cells.append(cell)
        name = METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(rows: list[dict]) -> str:
    lines = ["| model / data | A | B | Δ accuracy (A − B) | 95% CI | p | 95% CI, seeds too | examples | seeds A / B |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} / {r['data']} | {r['a']} | {r['b']} | {r['delta']:+.4f} | "
                     f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['p_value']:.4f} | "
                     f"[{r['ci_low_seeds_too']:+.4f}, {r['ci_high_seeds_too']:+.4f}] | {r['examples']} | "
                     f"{r['seeds_a']} / {r['seeds_b']} |")
    return "\n".join(lines)


def stopping_table(rows: list[dict]) -> str:
    lines = ["| model / data | method | lr | budget steps | stopped at (mean) | why (runs) | best held-out step (mean) | "
             "best held-out score (mean) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} / {r['data']} | {_method_name(r)} | {_lr_text(r['lr'])} | {_fmt(r['budget_steps'], 0)} | "
                     f"{_fmt(r['steps'], 0)} | {r['stop_reasons']} | {_fmt(r['best_step'], 0)} | "
                     f"{_fmt(r['heldout_best_mean'])} ({r.get('selected_on', 'accuracy')}) |")
    return "\n".join(lines)


def _lr_text(lr) -> str:
    """A learning rate as written in a config (3e-4 as 0.0003, never rounded to 0.000)."""
    return f"{lr:g}" if isinstance(lr, float) else _fmt(lr)


def _method_name(row: dict) -> str:
    return row["method"] + (f" [{row['variant']}]" if row["variant"] else "")


def efficiency_table(rows: list[dict]) -> str:
    lines = ["| model / data | method | trainable params | s/step | eval ms/example | real/processed tokens | "
             f"steps to {PLATEAU_FRACTION:.0%} of own plateau | s to it | steps to best vanilla plateau | s to it | "
             "reached | train s | run s | share outside steps |", "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['model']} / {r['data']} | {_method_name(r)} | {r['trainable_params']:,} | {_fmt(r['seconds_per_step'])} | "
            f"{_fmt(r['eval_seconds_per_example'] * 1000, 2)} | {_fmt(r['padding_efficiency'], 2)} | "
            f"{_fmt(r['steps_to_plateau'], 0)} | {_fmt(r['seconds_to_plateau'], 1)} | "
            f"{_fmt(r.get('steps_to_vanilla_plateau'), 0)} | {_fmt(r.get('seconds_to_vanilla_plateau'), 1)} | "
            f"{_fmt(r.get('reached_vanilla_plateau'))} | {_fmt(r['train_seconds'], 1)} | {_fmt(r['total_seconds'], 1)} | "
            f"{_fmt(r['outside_steps_share'], 2)} |")
    return "\n".join(lines)


def tuning_section(folder: Path) -> list[str]:
    path = folder / "tuning.md"
    if not path.is_file():
        return []
    return ["", path.read_text().replace("# Learning-rate search", "## Learning-rate search (held-out)").strip()]


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


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def report(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise LtuneError(f"{folder} is not a folder; give a sweep folder or outputs/")
    finished, problems = collect(folder)
    for run in finished:  # a search run a tuning sweep reused as a replicate is a final run
        if run["stage"] == "search" and reused_as_final(folder, Path(run["run_dir"])):
            run["stage"] = "final"
    searched = [r for r in finished if r["stage"] == "search"]
    finished = [r for r in finished if r["stage"] != "search"]
    if not finished:
        raise LtuneError(f"no finished runs (metrics.json) under {folder}")
    finished, repeats = drop_repeated_seeds(finished)
    groups = replicate_groups(finished)
    rows = summarise(groups)
    add_vanilla_targets(rows, groups)
    paired = paired_rows(groups)
    write_text(folder / "results.csv", _csv(rows))
    if paired:
        write_text(folder / "paired.csv", _csv(paired))
    plots = plot(groups, paired, folder)
    write_text(folder / "report.md", markdown(folder, rows, paired, plots, problems + repeats, len(finished),
                                              len(searched), unpaired_twins(groups), machines(finished + searched)))
    return folder / "report.md"


def machines(runs: list[dict]) -> list[str]:
    """One line per machine the runs' timings come from (metrics.json environment.machine), with
    how many runs it holds; runs written before ltune recorded it are counted as unrecorded."""
    counts = Counter()
    for run in runs:
        found = run.get("environment", {}).get("machine")
        if not found:
            counts["a machine not recorded"] += 1
            continue
        bf16 = "native bf16" if found.get("native_bf16") else "no native bf16"
        gpu = f"{found['gpu']} on " if found.get("gpu") else ""
        counts[f"{gpu}{found.get('cpu')} ({found.get('cpu_capability')}, {bf16}), {found.get('cores')} cores"] += 1
    return [f"{name} ({n} runs)" for name, n in sorted(counts.items())]


def markdown(folder, rows, paired, plots, problems, finished: int, searched: int, unpaired=(), machines=()) -> str:
    parts = [f"# ltune report: {folder}", "",
             f"{finished} finished runs" + (f" (and {searched} learning-rate search runs, not averaged)" if searched else "")
             + f"; {len(problems)} failed, unfinished, unreadable or repeated (listed below, not averaged in).",
             "Dev accuracy as mean ± std over seed replicates, the 95% confidence interval of the mean (Student's t) "
             "and n; replicates share every setting but the seed. Checkpoints and learning rates were selected on a "
             "held-out slice of the training split, never on dev. Paper = Table 1 of arXiv 2402.01643 where it has "
             "the cell."]
    if machines:
        parts += ["", "Timings measured on " + "; ".join(machines) + "."
                  + (" Seconds from different machines are not comparable." if len(machines) > 1 else "")]
    parts += tuning_section(folder)
    parts += ["", "## Accuracy (dev)", "", accuracy_table(rows)]
    for metric, title in (("matthews_corr", "Matthews correlation (CoLA's official metric)"), ("f1", "F1"),
                          ("macro_f1", "Macro-F1")):
        if any(f"dev_{metric}_mean" in r for r in rows):
            parts += ["", f"## {title} (dev)", "", accuracy_table([r for r in rows if f"dev_{metric}_mean" in r], metric)]
    if paired:
        parts += ["", "## Paired comparisons (dev, same examples)", "", f"Test: {PAIRED_TEST}", "", paired_table(paired)]
    if unpaired:
        parts += ["", "## Twins not compared", "", *[f"- {line}" for line in unpaired]]
    parts += ["", "## Where the runs stopped", "", stopping_table(rows), "", "## Efficiency", "", efficiency_table(rows), "",
              f"Own plateau: the run's best held-out accuracy; steps/seconds: the first held-out evaluation reaching "
              f"{PLATEAU_FRACTION:.0%} of it. Best vanilla plateau: the highest mean best held-out accuracy of prefix or "
              "prompt tuning in the cell; 'reached' counts the runs that got there. Seconds are training wall-clock "
              "(held-out evaluations included). Evaluation scores all K labels: one pass for prefix/prompt, K pair "
              "passes for the L-methods. Share outside steps: the part of a run's wall-clock (loading, tokenising, "
              "evaluation, writing) not spent in training steps.", "", "## Plots", "",
              "Held-out loss is each method's own objective: binary cross-entropy over all K (text, label) pairs for "
              "the L-methods, K-way cross-entropy for prefix/prompt tuning; compare curve shapes (how soon each falls), "
              "not levels across the two families.", ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    if problems:
        parts += ["", "## Failed, unfinished, unreadable or repeated runs", "", "| run | status | error |", "|---|---|---|"]
        parts += [f"| {p['run_dir']} | {p['status']} | {p.get('error', '')} |" for p in problems]
    return "\n".join(parts) + "\n"
