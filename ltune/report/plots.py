"""The report's plots: held-out loss against step (the paper's Figure 2), held-out accuracy
against training wall-clock, and the paired differences with their confidence intervals."""

from __future__ import annotations

import io
from pathlib import Path

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

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(paired) + 1.4))
    labels = [f"{r['model']}/{r['data']}: {r['a']} − {r['b']}" for r in paired]
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


def plot(groups: dict, paired: list[dict], folder: Path) -> list[Path]:
    written = curves(groups, folder)
    if paired:
        written.append(paired_plot(paired, folder))
    return written
