"""The report's tables (markdown) and csv files; every figure comes from summary.py, pairs.py or
choices.py, and each column's test from stats.py."""

from __future__ import annotations

import csv
import io

from ltune.report.collect import natural_key
from ltune.report.stats import FEWEST_SEEDS_FOR_AN_INTERVAL, MONTE_CARLO_FLOOR, RESAMPLES, TARGET_DIFFERENCES
from ltune.report.summary import METHOD_ORDER, PLATEAU_FRACTION

METHOD_LABELS = {"prefix": "Prefix (P)", "prompt": "Prompt (Pr)", "l_prefix": "L-prefix (LT-P)",
                 "l_prompt": "L-prompt (LT-Pr)"}


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def p_text(p: float | None, exact: bool | None = False) -> str:
    """A p-value; a Monte-Carlo one at its floor (no resample as extreme as the observed statistic: the
    smallest its R resamples can give, two-sided 2/(R+1)) as ≤ 2/(R+1), never as a measured value."""
    if p is None:
        return "–"
    if not exact and p <= MONTE_CARLO_FLOOR + 1e-15:
        return f"≤ 2/{RESAMPLES + 1:,}"
    return f"{p:.4f}"


def lr_text(lr) -> str:
    """A learning rate as written in a config (3e-4 as 0.0003, never rounded to 0.000)."""
    return f"{lr:g}" if isinstance(lr, float) else fmt(lr)


def method_name(row: dict) -> str:
    return row["method"] + (f" [{row['variant']}]" if row["variant"] else "")


def mean_cell(row: dict, metric: str) -> str:
    """mean ± std [CI] (n): † where the interval was clipped to the metric's range; a note where n is
    too small for the interval to mean much or the mean includes a reused search run."""
    mean, std = row[f"dev_{metric}_mean"], row[f"dev_{metric}_std"]
    if std is None:
        cell = f"{mean:.3f} (n=1: no spread, no interval)"
    else:
        clipped = "†" if row[f"dev_{metric}_clipped"] else ""
        cell = (f"{mean:.3f} ± {std:.3f} [{row[f'dev_{metric}_ci_low']:.3f}, {row[f'dev_{metric}_ci_high']:.3f}]"
                f"{clipped} (n={row['runs']})")
        if row["runs"] < FEWEST_SEEDS_FOR_AN_INTERVAL:
            cell += f"; n={row['runs']}: too few seeds for an interval to mean much"
    if row.get("reused_search_runs"):
        cell += f"; ‡ {row['reused_search_runs']} reused search run"
    if row.get("stuck"):
        cell += (f"; stuck {row['stuck']}/{row['runs']} [{row['stuck_rate_ci_low']:.2f}, {row['stuck_rate_ci_high']:.2f}]"
                 + (f", the others {row['learning_dev_accuracy_mean']:.3f}" if row.get("learning_dev_accuracy_mean")
                    is not None and metric == "accuracy" else ""))
    if row.get("budget_capped"):
        cell += f"; budget-capped {row['budget_capped']}/{row['runs']}"
    if row.get("differs_within"):
        cell += f"; **its runs differ: {row['differs_within']}**"
    return cell


def accuracy_table(rows: list[dict], metric: str = "accuracy") -> str:
    columns = sorted({(r["model"], r["data"]) for r in rows})
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    methods = sorted({(r["method"], r["variant"]) for r in rows},
                     key=lambda mv: (order.get(mv[0], 99), natural_key(mv[0]), natural_key(mv[1])))
    by_key = {(r["model"], r["data"], r["method"], r["variant"]): r for r in rows}
    majority = {}
    for r in rows:
        if r.get("dev_majority_rate") is not None:
            majority.setdefault((r["model"], r["data"]), r["dev_majority_rate"])
    heads = [f"{m} / {d}" + (f" (majority class {majority[(m, d)]:.3f})" if metric == "accuracy" and (m, d) in majority else "")
             for m, d in columns]
    lines = ["| method | " + " | ".join(heads) + " |", "|---|" + "---|" * len(columns)]
    for method, variant in methods:
        cells = []
        for model, data in columns:
            r = by_key.get((model, data, method, variant))
            if r is None or f"dev_{metric}_mean" not in r:
                cells.append("–")
                continue
            cell = mean_cell(r, metric)
            if metric == "accuracy" and r["paper_accuracy"] is not None:
                cell += f"; paper {r['paper_accuracy']:.3f}, Δ {r['delta_vs_paper']:+.3f}"
            cells.append(cell)
        name = METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _signed(value) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _p_pair(raw, adjusted, exact=False) -> str:
    return "–" if raw is None else f"{p_text(raw, exact)} / {p_text(adjusted, exact)}"


def paired_table(rows: list[dict]) -> str:
    """The comparisons' words and figures: one row per pair (the details are in ``paired_details_table``)."""
    lines = ["| model / data | A | B | reads | Δ accuracy (A − B) | 95% CI over runs | p over runs (raw / Holm) | "
             "stuck A vs B (Fisher p raw / Holm) | Δ among the runs that learn [95% CI] (p raw / Holm) | "
             "budget-capped A / B | run conditions that differ |", "|" + "---|" * 11]
    for r in rows:
        ci = "–" if r["ci_low"] is None else f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
        flag = " ‡" if r.get("reused_search_runs") else ""
        stuck = f"{r['stuck_a']} vs {r['stuck_b']}" + (
            f" ({_p_pair(r['stuck_p'], r.get('stuck_p_holm'), True)})" if r.get("stuck_p") is not None else "")
        if r.get("learning_delta") is not None:
            learning_ci = ("" if r.get("learning_ci_low") is None
                           else f" [{r['learning_ci_low']:+.4f}, {r['learning_ci_high']:+.4f}]")
            learning = (f"{r['learning_delta']:+.4f}{learning_ci} "
                        f"({_p_pair(r.get('learning_p_value'), r.get('learning_p_value_holm'))}; runs {r['learning_runs']})")
        else:
            learning = "–" if r.get("stuck_p") is None else "– (a side has fewer than two runs that learn)"
        lines.append(f"| {r['model']} / {r['data']} | {r['a']} | {r['b']} | **{r['in_words']}**{flag} | "
                     f"{r['delta']:+.4f} | {ci} | {_p_pair(r['p_value'], r.get('p_value_holm'), r['p_exact'])} | "
                     f"{stuck} | {learning} | {r['capped_a']} / {r['capped_b']} | {r['conditions_differ']} |")
    return "\n".join(lines)


def paired_details_table(rows: list[dict]) -> str:
    seeds_for = " / ".join(f"{t:g}" for t in TARGET_DIFFERENCES)
    lines = ["| model / data | A | B | test | runs compared | smallest p | detectable Δ (80% power) | "
             f"seeds for {seeds_for} | examples-level 95% CI (given these runs) | examples-level p | seeds A / B |",
             "|" + "---|" * 11]
    for r in rows:
        examples_ci = (f"[{r['examples_ci_low']:+.4f}, {r['examples_ci_high']:+.4f}] ({r['examples']} examples)"
                       if "examples_ci_low" in r else "– (no shared predictions)")
        needed = " / ".join(fmt(r.get(f"seeds_for_{t:g}")) for t in TARGET_DIFFERENCES)
        lines.append(f"| {r['model']} / {r['data']} | {r['a']} | {r['b']} | {fmt(r['test'])} | {r['design']} | "
                     f"{fmt(r['smallest_p'], 4)} | {fmt(r.get('detectable_difference'), 4)} | {needed} | {examples_ci} | "
                     f"{p_text(r.get('examples_p'))} | {r['seeds_a']} / {r['seeds_b']} |")
    return "\n".join(lines)


def stopping_table(rows: list[dict]) -> str:
    lines = ["| model / data | method | lr | budget steps | stopped at (mean) | why (runs) | best held-out step (mean) | "
             "best held-out score (mean) | budget-capped |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        capped = f"**budget-capped {r['budget_capped']}/{r['runs']}**" if r.get("budget_capped") else "–"
        lines.append(f"| {r['model']} / {r['data']} | {method_name(r)} | {lr_text(r['lr'])} | {fmt(r['budget_steps'], 0)} | "
                     f"{fmt(r['steps'], 0)} | {r['stop_reasons']} | {fmt(r['best_step'], 0)} | "
                     f"{fmt(r['heldout_best_mean'])} ({r.get('selected_on', 'accuracy')}) | "
                     f"{capped} |")
    return "\n".join(lines)


def efficiency_table(rows: list[dict]) -> str:
    lines = ["| model / data | method | trainable params | s/step | eval ms/example | real/processed tokens | "
             f"steps to {PLATEAU_FRACTION:.0%} of own plateau | s to it | steps to best vanilla plateau | s to it | "
             "reached | train s | run s | share outside steps |", "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['model']} / {r['data']} | {method_name(r)} | {r['trainable_params']:,} | {fmt(r['seconds_per_step'])} | "
            f"{fmt(r['eval_seconds_per_example'] * 1000, 2)} | {fmt(r['padding_efficiency'], 2)} | "
            f"{fmt(r['steps_to_plateau'], 0)} | {fmt(r['seconds_to_plateau'], 1)} | "
            f"{fmt(r.get('steps_to_vanilla_plateau'), 0)} | {fmt(r.get('seconds_to_vanilla_plateau'), 1)} | "
            f"{fmt(r.get('reached_vanilla_plateau'))} | {fmt(r['train_seconds'], 1)} | {fmt(r['total_seconds'], 1)} | "
            f"{fmt(r['outside_steps_share'], 2)} |")
    return "\n".join(lines)


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
