"""The seed plan of studies/sst2_seeds/PLAN.md from committed runs: per pair, the smallest difference a
Welch test (alpha 0.05, two-sided) detects with 80% power at n seeds a side, and the seeds a side
that detect 0.02 and 0.01, at the seed standard deviations of a results.csv.

    python scripts/seed_plan.py studies/offline_table/per_task_run/results.csv
    python scripts/seed_plan.py studies/offline_table/per_task_run/results.csv l_prefix:l_prefix l_prompt:l_prompt

(other pairs as method_a:method_b arguments; a method against itself: two variants of it, e.g. label
text kinds, at that method's seed spread)

Approximation: (t(0.975, df) + t(0.80, df)) x sqrt(s_a²/n + s_b²/n) with Welch's df; `ltune report`
computes the same questions exactly (noncentral t) from a sweep's own seeds."""

from __future__ import annotations

import csv
import math
import sys

from scipy import stats

PAIRS = (("l_prefix", "prefix"), ("l_prompt", "prompt"), ("peft_lora", "prefix"))


def detectable(s_a: float, s_b: float, n: int) -> float:
    se = math.sqrt(s_a ** 2 / n + s_b ** 2 / n)
    df = se ** 4 / ((s_a ** 2 / n) ** 2 / (n - 1) + (s_b ** 2 / n) ** 2 / (n - 1))
    return (stats.t.ppf(0.975, df) + stats.t.ppf(0.80, df)) * se


def seeds_for(s_a: float, s_b: float, difference: float, most: int = 1000) -> str:
    return next((str(n) for n in range(2, most + 1) if detectable(s_a, s_b, n) <= difference), f"> {most}")


def main(path: str, data: str = "sst2", pairs=PAIRS) -> None:
    with open(path, newline="") as f:
        stds = {r["method"]: float(r["dev_accuracy_std"]) for r in csv.DictReader(f)
                if r["data"] == data and not r["variant"]}
    print("| pair | seed stds | n = 3 | n = 10 | seeds a side for 0.02 | for 0.01 |")
    print("|---|---|---|---|---|---|")
    for a, b in pairs:
        s_a, s_b = stds[a], stds[b]
        print(f"| {a} vs {b} | {s_a:.4f}, {s_b:.4f} | {detectable(s_a, s_b, 3):.3f} | {detectable(s_a, s_b, 10):.3f} "
              f"| {seeds_for(s_a, s_b, 0.02)} | {seeds_for(s_a, s_b, 0.01)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], pairs=[tuple(p.split(":", 1)) for p in sys.argv[2:]] or PAIRS)
