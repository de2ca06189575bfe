"""A step budget from a pilot's held-out curves (the rule is fixed before the pilot runs).

Each finished run under PILOT_DIR reached its best held-out score at some evaluation; the step where
it first came within TOLERANCE of that best is where its curve flattened. The budget is FACTOR times
the latest such step over the runs, rounded up to a multiple of ROUND, at least FLOOR; and never more
than the pilot itself trained (a curve still rising at the pilot's end is reported as such).

    python studies/offline_table_smollm2/scripts/pilot_budget.py studies/offline_table_smollm2/pilot            # the table and the budget
    python studies/offline_table_smollm2/scripts/pilot_budget.py studies/offline_table_smollm2/pilot --override # only trainer.max_steps=N

Writes PILOT_DIR/budget.json (the table and the budget) unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ltune.run_files import LOG, read_json_lines


def heldout_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """(step, held-out score) of each evaluation in the run's log.jsonl (plain or compressed)."""
    return [(entry["step"], entry["heldout"][metric]) for entry in read_json_lines(run_dir / LOG) if "heldout" in entry]


def flat_from(curve: list[tuple[int, float]], tolerance: float) -> int:
    """The first step whose score is within ``tolerance`` of the curve's best."""
    best = max(score for _, score in curve)
    return next(step for step, score in curve if score >= best - tolerance)


def budget(flat_steps: list[int], factor: float, round_to: int, floor: int, cap: int) -> int:
    steps = math.ceil(factor * max(flat_steps) / round_to) * round_to
    return min(max(steps, floor), cap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pilot_dir", type=Path)
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--round", dest="round_to", type=int, default=50)
    parser.add_argument("--floor", type=int, default=200)
    parser.add_argument("--override", action="store_true", help="print only trainer.max_steps=N")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    rows = []
    for metrics_path in sorted(args.pilot_dir.glob("*/metrics.json")):
        run_dir = metrics_path.parent
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("status") != "finished":
            continue
        curve = heldout_curve(run_dir, args.metric)
        best_step, best = max(curve, key=lambda point: (point[1], -point[0]))
        rows.append({"run": run_dir.name, "method": metrics["method"], "lr": metrics.get("lr"),
                     "steps": metrics["steps"], "best": best, "best_step": best_step,
                     "flat_from": flat_from(curve, args.tolerance),
                     "rising_at_end": best_step == curve[-1][0] and len(curve) > 1})
    if not rows:
        print(f"pilot_budget: no finished run under {args.pilot_dir}", file=sys.stderr)
        return 2
    cap = min(row["steps"] for row in rows)
    steps = budget([row["flat_from"] for row in rows], args.factor, args.round_to, args.floor, cap)
    if not args.no_write:
        record = {"rule": {"metric": args.metric, "tolerance": args.tolerance, "factor": args.factor,
                           "round": args.round_to, "floor": args.floor, "cap": cap},
                  "runs": rows, "max_steps": steps}
        (args.pilot_dir / "budget.json").write_text(json.dumps(record, indent=1) + "\n")
    if args.override:
        print(f"trainer.max_steps={steps}")
        return 0
    print(f"{'run':40} {'best':>6} {'at':>5} {'within ' + str(args.tolerance) + ' from':>16} rising at end")
    for row in rows:
        print(f"{row['run']:40} {row['best']:6.3f} {row['best_step']:5d} {row['flat_from']:16d} {row['rising_at_end']}")
    print(f"budget: {args.factor} x {max(row['flat_from'] for row in rows)} rounded up to {args.round_to}, "
          f"floor {args.floor}, cap {cap}: trainer.max_steps={steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
