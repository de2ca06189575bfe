"""The machine effect, from the same seeds trained on two machines (issue 39, item 7).

docs' sst2_seeds table ran its replicates on an NVIDIA H200 and a 2-core Xeon; `one_machine/` trained the
same configs with the same seeds again on one 2-core AMD EPYC. A run is the same config and seed in both;
only the machine (and with it torch's build, the kernels and the order of floating-point sums) differs.
For each method this prints and writes, over the seeds both hold:

- the per-seed difference of dev accuracy (new machine − old), its mean with a paired t 95% interval and an
  exact sign-flip p (scipy.stats), and its standard deviation;
- the seed standard deviation within each machine, and the ratio sd(difference) / (sqrt(2) x pooled seed sd):
  about 1 means moving a run to another machine changes it as much as drawing a new seed does;
- how many seeds changed whether they got stuck (never left the majority class), and the mean |change| of
  the step they stopped at.

    python studies/sst2_seeds/scripts/machine_effect.py studies/sst2_seeds/runs studies/sst2_seeds/one_machine --out studies/sst2_seeds/machine_effect
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

import numpy as np


def replicates(folder: Path) -> dict[tuple[str, int], dict]:
    """{(method, seed): runs.csv row} of the folder's replicates (its report's runs.csv)."""
    with (folder / "runs.csv").open() as handle:
        return {(r["method"], int(r["seed"])): r for r in csv.DictReader(handle) if r["role"] == "replicate"}


def machine_of(rows: list[dict]) -> str:
    return " + ".join(sorted({r["machine"].split(" (")[0] for r in rows}))


def effect(old: dict, new: dict, method: str) -> dict:
    from scipy import stats

    seeds = sorted(s for m, s in old if m == method and (m, s) in new)
    a = np.array([float(old[(method, s)]["dev_accuracy"]) for s in seeds])
    b = np.array([float(new[(method, s)]["dev_accuracy"]) for s in seeds])
    diff = b - a
    result = {"method": method, "seeds": len(seeds), "old_machine": machine_of([old[(method, s)] for s in seeds]),
              "new_machine": machine_of([new[(method, s)] for s in seeds]), "old_mean": a.mean(), "new_mean": b.mean(),
              "mean_difference": diff.mean(), "sd_difference": diff.std(ddof=1) if len(seeds) > 1 else None}
    if len(seeds) > 1 and np.ptp(diff) > 0:
        ci = stats.ttest_rel(b, a).confidence_interval(0.95)
        p = stats.permutation_test((diff,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
                                   vectorized=True, n_resamples=10_000, alternative="two-sided", random_state=0).pvalue
        result.update(ci_low=float(ci.low), ci_high=float(ci.high), p=float(p))
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if len(seeds) > 1 else None
    result.update(old_seed_sd=a.std(ddof=1) if len(seeds) > 1 else None, new_seed_sd=b.std(ddof=1) if len(seeds) > 1 else None,
                  ratio_to_a_new_seed=(result["sd_difference"] / (math.sqrt(2) * pooled)) if pooled else None)
    stuck = [(old[(method, s)]["stuck"] == "True", new[(method, s)]["stuck"] == "True") for s in seeds]
    result["stuck_old"], result["stuck_new"] = sum(o for o, _ in stuck), sum(n for _, n in stuck)
    result["stuck_changed"] = sum(o != n for o, n in stuck)
    steps = [abs(int(new[(method, s)]["stopped_at_step"]) - int(old[(method, s)]["stopped_at_step"])) for s in seeds]
    result["mean_abs_stop_step_change"] = statistics.fmean(steps) if steps else None
    return result


def fmt(value, digits=3, signed=False):
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the sweep folder of the first machines (its runs.csv)")
    parser.add_argument("new", type=Path, help="the sweep folder of the re-run on one machine (its runs.csv)")
    parser.add_argument("--out", type=Path, help="write OUT.csv and OUT.md")
    args = parser.parse_args(argv)
    old, new = replicates(args.old), replicates(args.new)
    methods = sorted({m for m, _ in old} & {m for m, _ in new})
    rows = [effect(old, new, m) for m in methods]
    lines = ["| method | seeds | old machine(s) | new machine | dev mean old → new | new − old, mean [95% CI] (paired t), p | "
             "sd of new − old | seed sd old / new | sd(new − old) / (√2 x seed sd) | stuck old → new (seeds that changed) | "
             "mean |Δ stopped step| |", "|" + "---|" * 11]
    for r in rows:
        ci = f"[{fmt(r.get('ci_low'), signed=True)}, {fmt(r.get('ci_high'), signed=True)}]" if "ci_low" in r else "–"
        lines.append(f"| {r['method']} | {r['seeds']} | {r['old_machine']} | {r['new_machine']} | {fmt(r['old_mean'])} → "
                     f"{fmt(r['new_mean'])} | {fmt(r['mean_difference'], signed=True)} {ci}, p {fmt(r.get('p'), 4)} | "
                     f"{fmt(r['sd_difference'])} | {fmt(r['old_seed_sd'])} / {fmt(r['new_seed_sd'])} | "
                     f"{fmt(r['ratio_to_a_new_seed'], 2)} | {r['stuck_old']} → {r['stuck_new']} ({r['stuck_changed']}) | "
                     f"{fmt(r['mean_abs_stop_step_change'], 0)} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with args.out.with_suffix(".csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
            writer.writeheader()
            writer.writerows(rows)
        args.out.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
