"""``ltune report FOLDER``: every run under FOLDER -> report.md, results.csv and PNG plots.

Accuracy is laid out as the paper's Table 1 (methods as rows, model x data as columns), as
mean +- std over seeds with the run count, next to the paper's number and the difference.
A second table compares efficiency. Failed and unfinished runs are listed, never averaged in.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path

from ltune.errors import LtuneError
from ltune.run_files import CONFIG, LOG, METRICS, atomic_write_bytes, write_text

METHOD_ORDER = ["prefix", "prompt", "l_prefix", "l_prompt"]
METHOD_LABELS = {"prefix": "Prefix (P)", "prompt": "Prompt (Pr)", "l_prefix": "L-prefix (LT-P)",
                 "l_prompt": "L-prompt (LT-Pr)"}

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


#: Keys that differ between seed replicates of one configuration, or that only say where files
#: go and how progress is tracked: every other key of the resolved config must be equal for two
#: runs to be averaged as replicates.
NOT_A_SETTING = ("seed", "run_name", "output_root", "resume", "logger", "trainer.num_threads")


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def settings_of(config: dict) -> dict:
    """The flattened resolved config of a run without the keys that replicates may differ in."""
    return {k: v for k, v in flatten(config).items()
            if not any(k == skip or k.startswith(skip + ".") for skip in NOT_A_SETTING)}


def collect(folder: Path) -> tuple[list[dict], list[dict]]:
    """(finished runs, failed or unfinished runs) under ``folder``."""
    from omegaconf import OmegaConf

    finished, problems = [], []
    for config in sorted(folder.rglob(CONFIG)):
        run = config.parent
        if (run / METRICS).is_file():
            metrics = json.loads((run / METRICS).read_text())
            log = [json.loads(line) for line in (run / LOG).read_text().splitlines()] if (run / LOG).is_file() else []
            settings = settings_of(OmegaConf.to_container(OmegaConf.load(config), resolve=False) or {})
            finished.append({**metrics, "run_dir": str(run), "log": log, "settings": settings})
    for failed in sorted(folder.rglob("failed.json")):
        problems.append({"run_dir": str(failed.parent), "status": "failed", **json.loads(failed.read_text())})
    known = {r["run_dir"] for r in finished} | {p["run_dir"] for p in problems}
    for hydra_dir in sorted(folder.rglob(".hydra")):
        run = hydra_dir.parent
        if str(run) not in known:
            problems.append({"run_dir": str(run), "status": "unfinished", "error": "no metrics.json (killed or running)"})
    return finished, problems


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def time_to_fraction(log: list[dict], fraction: float = 0.95) -> tuple[int | None, float | None]:
    """(step, seconds) at which held-out accuracy first reached ``fraction`` of its best."""
    evals = [r for r in log if "heldout" in r]
    if not evals:
        return None, None
    target = fraction * max(r["heldout"]["accuracy"] for r in evals)
    for r in evals:
        if r["heldout"]["accuracy"] >= target:
            return r["step"], r.get("elapsed")
    return None, None


def replicate_groups(finished: list[dict]) -> dict[tuple, list[dict]]:
    """Runs grouped as seed replicates: same model, data, method and every other setting.

    The key is (model, data, method, variant); variant names the settings in which this group
    differs from the other groups of the same model, data and method ("" when it is the only one).
    """
    groups = defaultdict(list)
    for run in finished:
        frozen = json.dumps(run["settings"], sort_keys=True, default=str)
        groups[(run["model"], run["data"], run["method"], frozen)].append(run)
    by_cell = defaultdict(list)
    for key in groups:
        by_cell[key[:3]].append(key)
    named = {}
    for cell, keys in by_cell.items():
        settings = [groups[key][0]["settings"] for key in keys]
        differing = sorted({k for s in settings for k in s if any(t.get(k) != s.get(k) for t in settings)})
        for key, setting in zip(keys, settings):
            variant = ", ".join(f"{k}={setting.get(k)}" for k in differing)
            named[(*cell, variant)] = groups[key]
    return dict(sorted(named.items()))


def summarise(finished: list[dict]) -> list[dict]:
    rows = []
    for (model, data, method, variant), runs in replicate_groups(finished).items():
        acc_mean, acc_std = _mean_std([r["dev"]["accuracy"] for r in runs])
        row = {"model": model, "data": data, "method": method, "variant": variant, "runs": len(runs),
               "seeds": " ".join(str(r["seed"]) for r in runs), "dev_accuracy_mean": acc_mean, "dev_accuracy_std": acc_std}
        for extra in ("matthews_corr", "f1", "macro_f1"):
            if all(extra in r["dev"] for r in runs):
                row[f"dev_{extra}_mean"], row[f"dev_{extra}_std"] = _mean_std([r["dev"][extra] for r in runs])
        paper = paper_accuracy(model, data, method)
        row["paper_accuracy"] = paper
        row["delta_vs_paper"] = None if paper is None else acc_mean - paper
        to_95 = [time_to_fraction(r["log"]) for r in runs]
        steps95 = [s for s, _ in to_95 if s is not None]
        secs95 = [t for _, t in to_95 if t is not None]
        row.update({
            "trainable_params": runs[0]["trainable_params"],
            "total_params": runs[0]["total_params"],
            "seconds_per_step": statistics.fmean(r["timing"]["seconds_per_step"] for r in runs),
            "train_seconds": statistics.fmean(r["timing"]["train_seconds"] for r in runs),
            "steps": statistics.fmean(r["steps"] for r in runs),
            "steps_to_95pct_best": statistics.fmean(steps95) if steps95 else None,
            "seconds_to_95pct_best": statistics.fmean(secs95) if secs95 else None,
            "eval_seconds_per_example": statistics.fmean(r["timing"]["eval_seconds_per_example"] for r in runs),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
        })
        rows.append(row)
    return rows


def _fmt(value, digits=3):
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
    lines = ["| method | " + " | ".join(f"{m} / {d}" for m, d in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for method, variant in methods:
        cells = []
        for model, data in columns:
            r = by_key.get((model, data, method, variant))
            if r is None or f"dev_{metric}_mean" not in r:
                cells.append("–")
                continue
            cell = f"{r[f'dev_{metric}_mean']:.3f} ± {r[f'dev_{metric}_std']:.3f} (n={r['runs']})"
            if metric == "accuracy" and r["paper_accuracy"] is not None:
                cell += f"; paper {r['paper_accuracy']:.3f}, Δ {r['delta_vs_paper']:+.3f}"
            cells.append(cell)
        name = METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _method_name(row: dict) -> str:
    return row["method"] + (f" [{row['variant']}]" if row["variant"] else "")


def efficiency_table(rows: list[dict]) -> str:
    lines = ["| model / data | method | trainable params | s/step | train s | steps | steps to 95% best | s to 95% best | eval s/example |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} / {r['data']} | {_method_name(r)} | {r['trainable_params']:,} | {r['seconds_per_step']:.3f} | "
            f"{r['train_seconds']:.1f} | {r['steps']:.0f} | {_fmt(r['steps_to_95pct_best'], 0)} | "
            f"{_fmt(r['seconds_to_95pct_best'], 1)} | {r['eval_seconds_per_example']:.4f} |"
        )
    return "\n".join(lines)


def plot(finished: list[dict], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    pairs = sorted({(r["model"], r["data"]) for r in finished})
    loss_label = "held-out loss (L-methods: pair BCE; others: K-way CE)"
    for key, ylabel, xkey, name in (("loss", loss_label, "step", "heldout_loss"),
                                    ("accuracy", "held-out accuracy", "elapsed", "heldout_accuracy_vs_time")):
        fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.4), squeeze=False)
        for ax, (model, data) in zip(axes[0], pairs):
            for method in METHOD_ORDER + sorted({r["method"] for r in finished} - set(METHOD_ORDER)):
                runs = [r for r in finished if (r["model"], r["data"], r["method"]) == (model, data, method)]
                for i, run in enumerate(runs):
                    evals = [r for r in run["log"] if "heldout" in r]
                    ax.plot([r.get(xkey, 0) for r in evals], [r["heldout"][key] for r in evals], marker="o", ms=3,
                            color=f"C{METHOD_ORDER.index(method) if method in METHOD_ORDER else 4}",
                            alpha=0.9 if i == 0 else 0.4, label=METHOD_LABELS.get(method, method) if i == 0 else None)
            ax.set_title(f"{model} / {data}")
            ax.set_xlabel("step" if xkey == "step" else "wall-clock seconds (training)")
            ax.set_ylabel(ylabel, fontsize=8 if key == "loss" else 10)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        path = folder / f"{name}.png"
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written


def report(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise LtuneError(f"{folder} is not a folder; give a sweep folder or outputs/")
    finished, problems = collect(folder)
    if not finished:
        raise LtuneError(f"no finished runs (metrics.json) under {folder}")
    rows = summarise(finished)

    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text(folder / "results.csv", buffer.getvalue())
    plots = plot(finished, folder)

    parts = [f"# ltune report: {folder}", "",
             f"{len(finished)} finished runs; {len(problems)} failed or unfinished (listed below, not averaged in).",
             "Dev accuracy as mean ± std over seeds (n = runs); checkpoints were selected on a held-out slice of "
             "the training split, never on dev. Paper = Table 1 of arXiv 2402.01643 where it has the cell.", "",
             "## Accuracy (dev)", "", accuracy_table(rows)]
    for metric, title in (("matthews_corr", "Matthews correlation (CoLA's official metric)"), ("f1", "F1"),
                          ("macro_f1", "Macro-F1")):
        if any(f"dev_{metric}_mean" in r for r in rows):
            parts += ["", f"## {title} (dev)", "", accuracy_table([r for r in rows if f"dev_{metric}_mean" in r], metric)]
    parts += ["", "## Efficiency", "", efficiency_table(rows), "",
              "Steps/seconds to 95% best: first held-out evaluation reaching 95% of the run's best held-out accuracy "
              "(seconds are training wall-clock, held-out evaluation included).", "", "## Plots", "",
              "Held-out loss is each method's own objective: binary cross-entropy over all K (text, label) "
              "pairs for the L-methods, K-way cross-entropy for prefix/prompt tuning; compare curve shapes "
              "(how soon each falls), not levels across the two families.", ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    if problems:
        parts += ["", "## Failed or unfinished runs", "", "| run | status | error |", "|---|---|---|"]
        parts += [f"| {p['run_dir']} | {p['status']} | {p.get('error', '')} |" for p in problems]
    write_text(folder / "report.md", "\n".join(parts) + "\n")
    return folder / "report.md"
