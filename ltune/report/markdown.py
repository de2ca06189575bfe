"""report.md: the tables of tables.py and choices.py with the words that say what each figure is."""

from __future__ import annotations

from ltune.report.choices import CHOICES_TEXT, choices_table
from ltune.report.conditions import CONDITIONS_TEXT, balance_plan, counts, stratum, stratum_text
from ltune.report.stats import EXAMPLES_TEST, FEWEST_SEEDS_FOR_AN_INTERVAL, HOLM_TEXT, OVER_RUNS_TEST, POWER_TEXT
from ltune.report.summary import CAPPED_TEXT, PLATEAU_FRACTION, STUCK_TEXT
from ltune.report.tables import (accuracy_table, efficiency_table, method_name, paired_details_table, paired_table,
                                 stopping_table)

OTHER_METRICS = (("matthews_corr", "Matthews correlation (CoLA's official metric)"), ("f1", "F1"),
                 ("macro_f1", "Macro-F1"),
                 ("balanced_accuracy", "Balanced accuracy (the mean recall per class; the majority class alone scores 1/K)"))
EFFICIENCY_TEXT = (
    f"Own plateau: the run's best held-out accuracy; steps/seconds: the first held-out evaluation reaching "
    f"{PLATEAU_FRACTION:.0%} of it. Best vanilla plateau: the highest mean best held-out accuracy of prefix or "
    "prompt tuning in the cell; 'reached' counts the runs that got there. Seconds are training wall-clock "
    "(held-out evaluations included). Evaluation scores all K labels: one pass for prefix/prompt, K pair "
    "passes for the L-methods. Share outside steps: the part of a run's wall-clock (loading, tokenising, "
    "evaluation, writing) not spent in training steps.")
PLOTS_TEXT = (
    "Held-out loss is each method's own objective: binary cross-entropy over all K (text, label) pairs for "
    "the L-methods (K-way cross-entropy over their pair scores under method.objective=softmax), K-way cross-entropy for prefix/prompt tuning; compare curve shapes (how soon each falls), "
    "not levels across the two families.")
LEARNING_CURVE_TEXT = (
    "learning_curve.png: dev accuracy against the number of training texts (data.max_train_samples, log scale), "
    "one line per method: the mean over seed replicates with its 95% t interval (no bar where a size has one run). "
    "Each size is its own group, with its own tuned learning rate and the settings that go with the size; the "
    "test of each L-method against its twin at each size is in the comparisons above (a row per size).")


#: The rules a report is read under; a change to them (and so to what a committed report says) bumps
#: the number, and `make reports` regenerates every study's report under the new rules.
RULES = 3
RULES_TEXT = ("tests over training runs, within the run conditions both arms share (confounded where they share "
              "none); stuck runs as their own outcome; Holm over the report's comparisons; budget-capped flags")


def header(folder, finished: int, searched: int, problems: int, machines) -> list[str]:
    parts = [f"# ltune report: {folder}", "", f"Read under ltune's report rules {RULES}: {RULES_TEXT}.", "",
             f"{finished} finished runs" + (f" (and {searched} learning-rate search runs, not averaged)" if searched else "")
             + f"; {problems} failed, unfinished, unreadable or repeated (listed below, not averaged in). "
             "One row per run: runs.csv.",
             "Dev figures as mean ± std over seed replicates, the 95% confidence interval of the mean (Student's t, "
             "clipped to the metric's range where it crosses it: †) and n; replicates share every setting but the "
             f"seed. With fewer than {FEWEST_SEEDS_FOR_AN_INTERVAL} seeds an interval is too wide to mean much (the "
             "cell says so). ‡: the cell's replicates include the search run that won the learning-rate choice "
             "(reuse_search_runs), selected on its own held-out score. Checkpoints and learning rates were selected "
             "on a held-out slice of the training split, never on dev. Paper = Table 1 of arXiv 2402.01643 where it "
             "has the cell."]
    if machines:
        parts += ["", "Timings measured on " + "; ".join(machines) + "."
                  + (" Seconds from different machines are not comparable." if len(machines) > 1 else "")]
    return parts


def tuning_sections(sweeps: list[tuple[str, list[dict]]]) -> list[str]:
    parts = []
    for where, cells in sweeps:
        points = sum(len(cell.get("search_space", [])) for cell in cells)
        cost = (f"Each extra search seed (hydra.sweeper.search_seeds) costs one run per grid point: {points} runs for "
                f"the {len(cells)} cell(s) here. The SE falls with the square root of held-out examples x search seeds: "
                "halving it takes 4x either (data.max_heldout_samples, or search seeds at 4x the search runs).")
        parts += ["", f"## Learning-rate search (held-out){f': {where}' if where else ''}", "",
                  CHOICES_TEXT, "", cost, "", choices_table(cells)]
    return parts


def comparison_section(paired: list[dict], unpaired: list[str]) -> list[str]:
    parts = []
    if paired:
        family = paired[0].get("family_size", 0)
        parts += ["", "## Comparisons (dev): the test over training runs", "", OVER_RUNS_TEST, "", CONDITIONS_TEXT, "",
                  HOLM_TEXT + f" The family here: {family} comparison(s).", "", STUCK_TEXT, "", CAPPED_TEXT, "",
                  paired_table(paired), "", "The tests in detail:", "", POWER_TEXT, "", EXAMPLES_TEST, "",
                  paired_details_table(paired)]
    if unpaired:
        parts += ["", "## Twins not compared", "", *[f"- {line}" for line in unpaired]]
    return parts


def never_predicted_section(rows: list[dict]) -> list[str]:
    flagged = [r for r in rows if r.get("never_predicted")]
    if not flagged:
        return []
    return ["", "## Classes a run never predicts", "",
            "A run that never predicts a dev class cannot score above the other classes' share; for L-prefix this "
            "is the tie of label texts of equal token length (method.z_input=states, method.pool_softmax=false or "
            "label texts of other lengths avoid it).", "",
            *[f"- {r['model']} / {r['data']} / {method_name(r)}: {r['never_predicted']}" for r in flagged]]


def conditions_section(groups: dict) -> list[str]:
    """Per group, its runs per set of run conditions, and the seeds that would have to run again for every
    group to share the conditions most runs have (``ltune report FOLDER balance=...`` picks another)."""
    every = sorted({stratum(r) for runs in groups.values() for r in runs})
    if not every:
        return []
    parts = ["", "## Run conditions", "",
             "Each set of conditions a run trained under besides its config (machine, precision, torch, transformers, "
             "peft, CPU threads; from metrics.json), and how many runs of each group ran under it.", ""]
    names = [f"C{i + 1}" for i in range(len(every))]
    parts += [f"- {name}: {stratum_text(key)}" for name, key in zip(names, every)]
    parts += ["", "| group | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, runs in groups.items():
        found = counts(runs)
        label = f"{key[0]} / {key[1]} / {key[2]}" + (f" [{key[3]}]" if key[3] else "")
        parts.append(f"| {label} | " + " | ".join(str(found.get(k, "–")) for k in every) + " |")
    target, lines = balance_plan(groups)
    if lines:
        parts += ["", f"Not balanced: to give every group the conditions most runs have "
                      f"({names[every.index(target)]}), these would have to run again under them:", "",
                  *[f"- {line}" for line in lines]]
    elif len(every) == 1:
        parts += ["", "Every run trained under the same conditions."]
    return parts


def sizes_section(sizes_of: dict) -> list[str]:
    """Per model and data of a learning curve, the settings that go with each training size (they are
    left out of the groups' names, which name the size alone)."""
    parts = []
    for (model, data), sizes in sizes_of.items():
        keys = sorted({k for row in sizes.values() for k in row})
        order = sorted(sizes, key=lambda size: (size == "None", int(size) if size.isdigit() else 0))
        parts += ["", f"Settings that go with each training size, {model} / {data}:", "",
                  "| data.max_train_samples | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        parts += [f"| {size} | " + " | ".join(sizes[size].get(k, "–") for k in keys) + " |" for size in order]
    return parts


def markdown(folder, rows, paired, plots, problems, finished: int, searched: int, unpaired=(), machines=(),
             sweeps=(), sizes_of=None, groups=None) -> str:
    parts = header(folder, finished, searched, len(problems), machines)
    parts += tuning_sections(list(sweeps))
    parts += ["", "## Accuracy (dev)", "", accuracy_table(rows)]
    parts += sizes_section(sizes_of or {})
    for metric, title in OTHER_METRICS:
        if any(f"dev_{metric}_mean" in r for r in rows):
            parts += ["", f"## {title} (dev)", "", accuracy_table([r for r in rows if f"dev_{metric}_mean" in r], metric)]
    parts += never_predicted_section(rows)
    parts += comparison_section(paired, list(unpaired))
    parts += conditions_section(groups or {})
    parts += ["", "## Where the runs stopped", "", stopping_table(rows), "", "## Efficiency", "", efficiency_table(rows),
              "", EFFICIENCY_TEXT, "", "## Plots", "", PLOTS_TEXT, ""]
    if any(p.name == "learning_curve.png" for p in plots):
        parts += [LEARNING_CURVE_TEXT, ""]
    parts += [f"![{p.stem}]({p.name})" for p in plots]
    if problems:
        parts += ["", "## Failed, unfinished, unreadable or repeated runs", "", "| run | status | error |", "|---|---|---|"]
        parts += [f"| {p['run_dir']} | {p['status']} | {p.get('error', '')} |" for p in problems]
    return "\n".join(parts) + "\n"
