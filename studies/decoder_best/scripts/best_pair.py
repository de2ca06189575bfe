"""The decisive pair of studies/decoder_best (PLAN.md, rule 1, fixed before any run): the L-method whose
replicates have the higher mean best held-out accuracy (held-out, never dev), and its vanilla twin.

    python studies/decoder_best/scripts/best_pair.py studies/decoder_best/runs     # prints e.g. l_prefix,prefix
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TWINS = {"l_prefix": "prefix", "l_prompt": "prompt"}


def best_pair(sweep: Path) -> tuple[str, str]:
    """(best L-method, its twin) by the mean best held-out score of each L-method's replicates at its
    chosen point (final/<cell>_s<seed>, contrasts left out); ties go to L-prefix."""
    scores: dict[str, list[float]] = {}
    for path in sorted((sweep / "final").glob("*/metrics.json")):
        if "_contrast_" in path.parent.name:
            continue
        metrics = json.loads(path.read_text())
        if metrics.get("method") in TWINS:
            selection = metrics["selection"]
            scores.setdefault(metrics["method"], []).append(selection.get("score", selection["accuracy"]))
    if set(scores) != set(TWINS):
        raise SystemExit(f"best_pair: {sweep}/final needs finished replicates of both L-methods (found {sorted(scores)})")
    best = max(sorted(TWINS), key=lambda m: (statistics.fmean(scores[m]), m == "l_prefix"))
    return best, TWINS[best]


if __name__ == "__main__":
    print(",".join(best_pair(Path(sys.argv[1]))))
