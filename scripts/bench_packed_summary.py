"""The summary table of scripts/bench_packed.sh: per model, method and pack size R, runs x samples per second
of a pack, of the same R runs one after another in one process, and of two processes side by side (one
thread each, R/2 runs each), from the bench.json files under OUT.

    python scripts/bench_packed_summary.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows_of(path: Path) -> dict:
    report = json.loads(path.read_text())
    return report, {(r["method"], r["runs"]): r for r in report["results"]}


def main(out: Path) -> int:
    lines = []
    for model_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        (one,) = model_dir.glob("one_process/*/bench.json")
        report, packed = rows_of(one)
        lines += [f"### {report['model']} on {report['device_name']}, {report['threads']} threads, batch "
                  f"{report['batch_size']} x {report['seq_len']}, {report['precision']}; frozen weights "
                  f"{report['backbone_weights_mb']:.0f} MB", "",
                  "| method | R | pack: runs x samples/s | one after another | two jobs side by side (1 thread each, R/2 runs) | "
                  "pack / one after another | pack / two jobs | weights held: pack / two jobs / R processes (MB) |",
                  "|" + "---|" * 8]
        for (method, runs), r in sorted(packed.items()):
            two = None
            jobs = sorted(model_dir.glob(f"two_jobs_R{runs}/job*/*/bench.json"))
            if len(jobs) == 2:
                rates = [rows_of(j)[1].get((method, runs // 2), {}).get("alone_run_samples_per_second") for j in jobs]
                two = sum(rates) if all(rates) else None
            pack, alone = r.get("pack_run_samples_per_second"), r.get("alone_run_samples_per_second")
            weights = report["backbone_weights_mb"]

            def f(value, digits=1):
                return "–" if value is None else f"{value:.{digits}f}"

            lines.append(f"| {method} | {runs} | {f(pack)} | {f(alone)} | {f(two)} | "
                         f"{f(pack / alone if pack and alone else None, 2)}x | {f(pack / two if pack and two else None, 2)}x | "
                         f"{weights:.0f} / {weights * (2 if runs > 1 else 1):.0f} / {weights * runs:.0f} |")
        lines.append("")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
