"""Each paraphrase's change against the trained wording, over runs: per (data, method, wording), the mean of
each run's dev accuracy under the paraphrase minus under its trained texts, with a paired t 95% interval
(scipy.stats.ttest_rel), from paraphrases.csv's per-run rows.

    python studies/label_semantics/scripts/paraphrase_differences.py studies/label_semantics/paraphrases.csv \\
        --out studies/label_semantics/paraphrase_differences.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def differences(path: Path) -> list[dict]:
    from scipy import stats

    runs = defaultdict(list)
    for row in csv.DictReader(path.open()):
        if row["row"] != "mean" and row["wording"] != "trained" and row["trained_accuracy"]:
            runs[(row["data"], row["method"], row["wording"])].append(
                (float(row["accuracy"]), float(row["trained_accuracy"])))
    found = []
    for (data, method, wording), pairs in sorted(runs.items()):
        now, trained = np.array([a for a, _ in pairs]), np.array([t for _, t in pairs])
        ci = stats.ttest_rel(now, trained).confidence_interval(0.95) if len(pairs) > 1 else None
        found.append({"data": data, "method": method, "wording": wording, "runs": len(pairs),
                      "trained_mean": trained.mean(), "paraphrase_mean": now.mean(),
                      "difference": (now - trained).mean(),
                      "ci_low": None if ci is None else float(ci.low), "ci_high": None if ci is None else float(ci.high)})
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paraphrases", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = differences(args.paraphrases)
    writer = csv.DictWriter(args.out.open("w", newline="") if args.out else sys.stdout, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
