"""Dev accuracy of trained L-method runs under paraphrased label texts (issue 23, part 2).

    python studies/label_semantics/scripts/label_paraphrases.py SWEEP_DIR [--out CSV] [--wordings FILE.json]

For every finished run under SWEEP_DIR that an L-method trained with data.label_text_kind=configured
(a tuning sweep's search runs left out: their rates were not chosen), runs ``ltune eval run=RUN
label_texts=[...]`` once per wording of its data set, and writes one CSV: a row per run and wording
(its dev accuracy with the Wilson 95% interval over dev examples, the labels whose scores tied, and
the run's own dev accuracy under the trained wording), then a row per data, method and wording with the mean over runs and the
Student's t 95% interval of that mean (ltune.report.stats.mean_ci), the trained wording included.

Each evaluation's JSON goes to SWEEP_DIR/paraphrases/ (a run folder is never written); one that is
already there is read, not run again, so the step resumes. Wordings: WORDINGS below (fixed in
studies/label_semantics/PLAN.md before any run), or your own task's with --wordings, a JSON file
{data name: {wording name: [one label text per label, in data.label_names order]}}.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

try:
    import ltune  # noqa: F401
except ImportError:  # run from a checkout without ltune installed (python3 studies/label_semantics/scripts/label_paraphrases.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout

#: Two paraphrases per data set, each label in data.label_names order. No text is longer in tokens
#: than the longest configured one (L-prefix's Z reads as many pooled positions as it was trained with),
#: and none is a single token (L-prefix's softmax pooling would give every label the same prefix).
WORDINGS = {
    "sst2": {  # trained: "the sentiment of this review is negative" / "... positive"
        "scathing_glowing": ["a scathing, hostile review", "a glowing, favourable review"],
        "disliked_loved": ["the reviewer disliked the film", "the reviewer loved the film"],
    },
    "demo": {  # trained: "this text is about sports" / "... cooking and food" / "... technology" / "... travel"
        "about_examples": ["a text about games and athletes", "a text about recipes and meals",
                           "a text about computers and software", "a text about trips and holidays"],
        "news_on": ["news on football and tennis", "news on baking and restaurants", "news on phones and computers",
                    "news on flights and hotels"],
    },
}
TRAINED = "trained"  # the wording the run was trained with (its own metrics.json)


def runs_to_score(sweep: Path) -> list[Path]:
    """Finished runs of an L-method with the configured label texts, search runs left out: those
    with their weights, or already scored (a run trained on another machine, whose weights stayed
    there, keeps the evaluations written beside the sweep)."""
    from omegaconf import OmegaConf

    found = []
    for metrics in sorted(sweep.rglob("metrics.json")):
        run = metrics.parent
        if "search" in run.relative_to(sweep).parts or "paraphrases" in run.relative_to(sweep).parts:
            continue
        scored = any((sweep / "paraphrases").glob(f"{run.name}__*.json"))
        if not (run / "trainable.safetensors").is_file() and not scored:
            continue
        cfg = OmegaConf.load(run / "config.yaml")
        if str(cfg.method.name) in ("l_prefix", "l_prompt") and \
                str(cfg.data.get("label_text_kind", "configured")) == "configured":
            found.append(run)
    return found


def tied_text(groups: list[list[str]]) -> str:
    """Tied label groups as one cell: 'a = b; c = d' ('' when none tie)."""
    return "; ".join(" = ".join(map(str, g)) for g in groups)


def evaluate(run: Path, texts: list[str], out: Path) -> dict:
    """``ltune eval run=RUN label_texts=TEXTS out=OUT`` in this process (read back when OUT exists)."""
    from ltune.commands.use import eval_command

    if not out.is_file():
        eval_command([f"run={run}", f"label_texts={json.dumps(texts)}", f"out={out}"])
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    from ltune.errors import LtuneError
    from ltune.report.stats import mean_ci

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--out", type=Path, default=Path("studies/label_semantics/paraphrases.csv"))
    parser.add_argument("--wordings", type=Path, help="JSON {data: {wording: [label texts]}} (default: WORDINGS)")
    args = parser.parse_args(argv)
    wordings = json.loads(args.wordings.read_text()) if args.wordings else WORDINGS
    if not args.sweep.is_dir():
        sys.exit(f"ltune: {args.sweep} is no folder; give the sweep folder of make reproduce-label-semantics")
    rows = []
    for run in runs_to_score(args.sweep):
        metrics = json.loads((run / "metrics.json").read_text())
        data, method = metrics["data"], metrics["method"]
        if data not in wordings:
            print(f"ltune: no paraphrases for data {data} ({run}); add them with --wordings", file=sys.stderr)
            continue
        base = {"row": "run", "data": data, "method": method, "run": str(run.relative_to(args.sweep)),
                "seed": metrics["seed"], "trained_accuracy": metrics["dev"]["accuracy"]}
        rows.append({**base, "wording": TRAINED, "label_texts": json.dumps(list(metrics["label_texts_used"].values())),
                     "accuracy": metrics["dev"]["accuracy"], "examples": metrics["sizes"]["dev"],
                     "tied_labels": tied_text(metrics["tied_labels"])})
        for name, texts in wordings[data].items():
            try:
                result = evaluate(run, texts, args.sweep / "paraphrases" / f"{run.name}__{name}.json")
            except LtuneError as err:  # e.g. label texts that tie under L-prefix: the run is listed, not scored
                print(f"ltune: {run} ({name}): {err}", file=sys.stderr)
                continue
            low, high = result["accuracy_ci95"]
            rows.append({**base, "wording": name, "label_texts": json.dumps(texts),
                         "accuracy": result["metrics"]["accuracy"], "ci_low": low, "ci_high": high,
                         "examples": result["metrics"]["examples"], "tied_labels": tied_text(result["tied_labels"])})
    cells = sorted({(r["data"], r["method"], r["wording"], r["label_texts"]) for r in rows})
    means = []
    for data, method, wording, texts in cells:
        values = [r["accuracy"] for r in rows if (r["data"], r["method"], r["wording"]) == (data, method, wording)]
        ci = mean_ci(values)
        tied_runs = sum(bool(r["tied_labels"]) for r in rows if (r["data"], r["method"], r["wording"]) == (data, method, wording))
        means.append({"row": "mean", "data": data, "method": method, "wording": wording, "label_texts": texts,
                      "runs": len(values), "runs_with_tied_labels": tied_runs, "accuracy": ci["mean"], "std": ci["std"], "ci_low": ci["ci_low"],
                      "ci_high": ci["ci_high"]})
    fields = ["row", "data", "method", "wording", "label_texts", "run", "seed", "runs", "accuracy", "std", "ci_low",
              "ci_high", "examples", "trained_accuracy", "tied_labels", "runs_with_tied_labels"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(means + rows)
    for m in means:
        interval = "" if m["ci_low"] is None else f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
        print(f"{m['data']:6} {m['method']:9} {m['wording']:18} {m['accuracy']:.3f}{interval} (n={m['runs']})")
    print(f"ltune: wrote {args.out} ({len(rows)} run rows, {len(means)} means; "
          f"intervals: Wilson over dev examples per run, Student's t over runs per mean)")


if __name__ == "__main__":
    main()
