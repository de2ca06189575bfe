"""The test over training runs for a report whose run folders were not kept: Welch's t from each
cell's dev mean, standard deviation and number of seeds in its results.csv
(scipy.stats.ttest_ind_from_stats), for every L-method vs its twin, every variant vs its default
and LoRA vs prefix. Used for studies/offline_table, written before ltune report tested over runs.

    python studies/offline_table/scripts/welch_from_results.py studies/offline_table/per_task_run/results.csv
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from scipy import stats

TWINS = {"l_prefix": "prefix", "l_prompt": "prompt", "peft_lora": "prefix"}


def welch(a: dict, b: dict, metric: str = "dev_accuracy") -> tuple[float, float, float, float]:
    """(difference, CI low, CI high, p) of A's mean minus B's, over seeds."""
    m1, s1, n1 = float(a[f"{metric}_mean"]), float(a[f"{metric}_std"]), int(a["runs"])
    m2, s2, n2 = float(b[f"{metric}_mean"]), float(b[f"{metric}_std"]), int(b["runs"])
    with np.errstate(invalid="ignore", divide="ignore"):  # two cells without spread (CoLA): nan
        p = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False).pvalue
        se = np.sqrt(s1**2 / n1 + s2**2 / n2)
        df = se**4 / ((s1**2 / n1) ** 2 / (n1 - 1) + (s2**2 / n2) ** 2 / (n2 - 1))
        half = stats.t.ppf(0.975, df) * se
    return m1 - m2, m1 - m2 - half, m1 - m2 + half, p


def main(path: str) -> None:
    cells = {(r["model"], r["data"], r["method"], r["variant"]): r for r in csv.DictReader(open(path))}
    print("model,data,a,b,delta,ci_low,ci_high,p,seeds_a,seeds_b")
    for (model, data, method, variant), row in sorted(cells.items()):
        base = (model, data, method, "") if variant else (model, data, TWINS.get(method), "")
        if base not in cells or base == (model, data, method, variant) or not row["dev_accuracy_std"]:
            continue
        d, lo, hi, p = welch(row, cells[base])
        a = f"{method} [{variant}]" if variant else method
        print(f"{model},{data},{a},{base[2]},{d:+.4f},{lo:+.4f},{hi:+.4f},{p:.3f},{row['runs']},{cells[base]['runs']}")


if __name__ == "__main__":
    main(sys.argv[1])
