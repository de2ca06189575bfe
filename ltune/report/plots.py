"""The report's plots: held-out loss against step (the paper's Figure 2), held-out accuracy
against training wall-clock, the paired differences with their confidence intervals, and (where
the groups differ in the number of training texts) dev accuracy against training size."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from ltune.report.collect import SIZE_KEY, size_linked
from ltune.run_files import atomic_write_bytes

ORDER = ["prefix", "prompt", "l_prefix", "l_prompt", "peft_prompt"]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _colour(method: str, variant: str, variants: list[tuple[str, str]]) -> str:
    return f"C{variants.index((method, variant)) % 10}"


def curves(groups: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted({key[:2] for key in groups})
    variants = sorted({key[2:] for key in groups}, key=lambda mv: (ORDER.index(mv[0]) if mv[0] in ORDER else 99, mv))
    written = []
    loss_label = "held-out loss (L-methods: pair BCE; others: K-way CE)"
    for key, ylabel, xkey, name in (("loss", loss_label, "step", "heldout_loss"),
                                    ("accuracy", "held-out accuracy", "elapsed", "heldout_accuracy_vs_time")):
        fig, axes = plt.subplots(1, len(cells), figsize=(4.4 * len(cells), 3.6), squeeze=False)
        for ax, cell in zip(axes[0], cells):
            for (model, data, method, variant), runs in groups.items():
                if (model, data) != cell:
                    continue
                for i, run in enumerate(runs):
                    evals = [r for r in run["log"] if "heldout" in r]
                    label = (method + (f" [{variant}]" if variant else "")) if i == 0 else None
                    ax.plot([r.get(xkey, 0) for r in evals], [r["heldout"][key] for r in evals], marker="o", ms=2,
                            color=_colour(method, variant, variants), alpha=0.85 if i == 0 else 0.35, label=label)
            ax.set_title(f"{cell[0]} / {cell[1]}")
            ax.set_xlabel("step" if xkey == "step" else "training wall-clock seconds")
            ax.set_ylabel(ylabel, fontsize=8 if key == "loss" else 10)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        written.append(_save(fig, folder / f"{name}.png"))
    return written


def paired_plot(paired: list[dict], folder: Path) -> Path:
    """Each comparison's Δ with its 95% CI over training runs (the primary test); a comparison with
    one run on a side has a point and no bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Long group names (e.g. a learning curve's size settings) wrap, so the axes keep their width.
    labels = [textwrap.fill(f"{r['model']}/{r['data']}: {r['a']} − {r['b']}", 70) for r in paired]
    lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = plt.subplots(figsize=(10 if lines > len(paired) else 8, 0.3 * lines + 0.15 * len(paired) + 1.4))
    for y, r in enumerate(paired):
        colour = {"above": "C2", "below": "C3"}.get(r["reads"], "C7")
        error = None if r["ci_low"] is None else [[r["delta"] - r["ci_low"]], [r["ci_high"] - r["delta"]]]
        ax.errorbar(r["delta"], y, xerr=error, fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(paired)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("Δ dev accuracy (A − B), 95% CI over training runs")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, folder / "paired_differences.png")


LEARNING_CURVE = "learning_curve.png"


def _train_size(runs: list[dict]) -> int | None:
    """A group's training size: data.max_train_samples, or where that is null (the whole split) the
    number of training texts its runs report (metrics.json's sizes)."""
    size = runs[0]["settings"].get(SIZE_KEY)
    if size is None:
        sizes = {r["sizes"]["train"] for r in runs if isinstance(r.get("sizes"), dict) and "train" in r["sizes"]}
        size = min(sizes) if sizes else None
    return int(size) if size is not None else None


def learning_curves(groups: dict) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """Per (model, data) whose groups differ in data.max_train_samples: per line (a method, with any
    setting of its own that is not tied to the size, e.g. an ablation), the points sorted by size:
    {size, mean, ci_low, ci_high, runs} of dev accuracy over the group's seeds (ci None for one run)."""
    from ltune.report.stats import mean_ci

    curves_of: dict = {}
    cells = sorted({key[:2] for key in groups})
    for cell in cells:
        keys = [key for key in groups if key[:2] == cell and all("accuracy" in r["dev"] for r in groups[key])]
        if len({str(groups[key][0]["settings"].get(SIZE_KEY)) for key in keys}) < 2:
            continue
        lines: dict = {}
        for method in sorted({key[2] for key in keys}):
            own = [key for key in keys if key[2] == method]
            settings_of = [groups[key][0]["settings"] for key in own]
            tuned = all(r["stage"] == "final" for key in own for r in groups[key])
            varying = {k for one in settings_of for k in one if len({str(s.get(k)) for s in settings_of}) > 1}
            differing = sorted(varying - size_linked(settings_of) - {SIZE_KEY} - ({"trainer.lr"} if tuned else set()))
            for key in own:
                runs, settings = groups[key], groups[key][0]["settings"]
                size = _train_size(runs)
                if size is None:
                    continue
                apart = ", ".join(f"{k}={settings.get(k)}" for k in differing)
                found = mean_ci([r["dev"]["accuracy"] for r in runs])
                lines.setdefault(method + (f" [{apart}]" if apart else ""), []).append(
                    {"size": size, "mean": found["mean"], "ci_low": found["ci_low"], "ci_high": found["ci_high"],
                     "runs": len(runs)})
        if lines:
            curves_of[cell] = {line: sorted(points, key=lambda p: p["size"]) for line, points in lines.items()}
    return curves_of


def learning_curve_plot(curves_of: dict, folder: Path) -> Path:
    """Dev accuracy against the number of training texts (log scale), one line per method with its
    95% CI over seeds, one panel per model and data; the lines are nudged apart sideways so that
    their intervals do not hide each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves_of), figsize=(6.0 * len(curves_of), 4.2), squeeze=False)
    for ax, ((model, data), lines) in zip(axes[0], curves_of.items()):
        names = sorted(lines, key=lambda n: (ORDER.index(n.split(" ")[0]) if n.split(" ")[0] in ORDER else 99, n))
        for i, name in enumerate(names):
            points = lines[name]
            nudge = 1.0 + 0.035 * (i - (len(names) - 1) / 2)
            xs = [p["size"] * nudge for p in points]
            ys = [p["mean"] for p in points]
            error = [[0 if p["ci_low"] is None else p["mean"] - p["ci_low"] for p in points],
                     [0 if p["ci_high"] is None else p["ci_high"] - p["mean"] for p in points]]
            ax.errorbar(xs, ys, yerr=error, marker="o", ms=4, capsize=3, color=f"C{i % 10}", label=name)
        sizes = sorted({p["size"] for points in lines.values() for p in points})
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_title(f"{model} / {data}: dev accuracy vs training texts", fontsize=10)
        ax.set_xlabel("training texts (log scale)")
        ax.set_ylabel("dev accuracy: mean, 95% CI over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, folder / LEARNING_CURVE)


def plot(groups: dict, paired: list[dict], folder: Path) -> list[Path]:
    written = curves(groups, folder)
    if paired:
        written.append(paired_plot(paired, folder))
    if curves_of := learning_curves(groups):
        written.append(learning_curve_plot(curves_of, folder))
    return written
