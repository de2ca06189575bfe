"""The learning-rate choices of a tuning sweep (its tuning.json cells), with what makes a choice
weak: an edge of the searched grid, a margin over the runner-up smaller than the winning score's
held-out standard error, a tie, replicates that include the winning search run. Written by the
sweeper into tuning.md and shown by the report."""

from __future__ import annotations

from ltune.report.stats import binomial_se

CHOICES_TEXT = (
    "A joint search (hydra.sweeper.axes) searches every combination of its axes with the learning rate, and "
    "its columns give its points (the best first; all of them in tuning.json) and the chosen point; its edge "
    "flags name the numeric axis whose edge the choice sits at. "
    "Margin: the winning held-out score minus the runner-up's. SE: the binomial standard error of the "
    "winning held-out accuracy, sqrt(p (1 − p) / (n k)), n held-out examples, k search seeds (for another "
    "selection metric no SE is given). Flags: 'at bottom/top edge' — the choice is the grid's smallest or "
    "largest rate, so a better rate may lie beyond it (the sweeper extends the grid past an edge that won "
    "outright, up to hydra.sweeper.max_grid_extensions points; a tie is no evidence for extending); "
    "'margin < SE' — the choice is within the held-out noise; 'tie' — the tie rule (the smaller rate) chose; "
    "'extended' — points the sweeper added; 'reused search run' — a replicate is the winning search run, "
    "selected on its own held-out score (hydra.sweeper.reuse_search_runs), so the cell's mean leans its way; "
    "'chosen in' — the choice was copied from that sweep (hydra.sweeper.chosen_from), whose search runs it shows; "
    "'unequal tuning budget' — the cell searched another number of points than the other cells of its comparison "
    "(hydra.sweeper.allow_unequal_budgets); "
    "'budget-capped' — most search runs at the chosen rate stopped at their step budget with their best held-out step "
    "in its last tenth, still improving (hydra.sweeper.max_budget_growths lets the sweeper grow it); 'budget grown' — "
    "the sweeper multiplied the cell's budget and searched its grid again there."
)


def lr_text(lr: float) -> str:
    return f"{lr:g}"


def scores_of(cell: dict) -> dict[float, float]:
    """The cell's held-out score per learning rate (failed points left out); tuning.json cells
    written before trainer.select_on hold heldout_accuracy."""
    per_lr = cell.get("heldout_score", cell.get("heldout_accuracy", {}))
    return {float(lr): s for lr, s in per_lr.items() if s is not None}


def edge_of(space: list[float], chosen: float | None) -> str | None:
    """"bottom" or "top" when the chosen rate is the grid's smallest or largest (a grid of one point
    has no edge to speak of), else None."""
    if chosen is None or len(space) < 2:
        return None
    if chosen == min(space):
        return "bottom"
    return "top" if chosen == max(space) else None


def won_outright(scores: dict[float, float], chosen: float | None) -> bool:
    """Whether the chosen rate's score is strictly the best (not a tie broken by the smaller rate)."""
    if chosen is None or chosen not in scores:
        return False
    return all(score < scores[chosen] for lr, score in scores.items() if lr != chosen)


def _points(cell: dict) -> dict[tuple, float]:
    """{point: score} of a joint search's cell ((key, value), ...); failed points left out."""
    return {tuple(p["values"].items()): p["score"] for p in cell.get("points") or [] if p["score"] is not None}


def _short(key: str) -> str:
    return "lr" if key == "trainer.lr" else key.rsplit(".", 1)[-1]


#: Longer values (a sentence that starts a prefix) are cut to this many characters in tables.
SHOWN_VALUE = 24


def _value(value) -> str:
    text = lr_text(value) if isinstance(value, float) else str(value)
    return text if len(text) <= SHOWN_VALUE else text[:SHOWN_VALUE - 1].rstrip() + "…"


def point_words(values: dict) -> str:
    return ", ".join(f"{_short(k)}={_value(v)}" for k, v in values.items())


def _edges(cell: dict) -> list[str]:
    """The edges of a joint search's numeric axes that its chosen point sits at ('bottom edge of lr')."""
    chosen, points = cell.get("chosen") or {}, list(_points(cell)) or [tuple((cell.get("chosen") or {}).items())]
    found = []
    for key, value in chosen.items():
        values = sorted({dict(p).get(key) for p in points} - {None}, key=str)
        if len(values) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        values = sorted(values)
        edge = "bottom" if value == values[0] else "top" if value == values[-1] else None
        if edge:
            found.append(f"{edge} edge of {_short(key)}")
    return found


def describe(cell: dict) -> dict:
    """The choice with its margin, SE and flags (see CHOICES_TEXT)."""
    joint = bool(cell.get("points"))
    if joint:
        scores, chosen = _points(cell), tuple((cell.get("chosen") or {}).items())
    else:
        scores, chosen = scores_of(cell), cell.get("chosen_lr")
    best = scores.get(chosen) if chosen is not None else None
    others = [s for key, s in scores.items() if key != chosen]
    margin = best - max(others) if best is not None and others else None
    n, seeds = cell.get("heldout_size"), len(cell.get("search_seeds") or [1])
    se = (binomial_se(best, n, seeds) if best is not None and n and cell.get("selected_on", "accuracy") == "accuracy"
          else None)
    flags = []
    if joint:
        edge = None
        flags += [f"at {where}" for where in (_edges(cell) if cell.get("searched", True) else [])]
    else:
        edge = edge_of(cell.get("search_space", []), chosen) if cell.get("searched", True) else None
        if edge:
            flags.append(f"at {edge} edge")
    if margin is not None and se is not None and margin < se:
        flags.append("margin < SE")
    if margin is not None and margin == 0:
        flags.append("tie")
    if joint and cell.get("extended_points"):
        flags.append("extended " + ", ".join(f"{_short(k)} {lr_text(v) if isinstance(v, float) else v}"
                                             for k, v in cell["extended_points"]))
    elif cell.get("extended"):
        flags.append("extended " + ", ".join(lr_text(x) for x in cell["extended"]))
    if cell.get("reused_runs"):
        flags.append("reused search run")
    if cell.get("budget_growths"):
        flags.append(f"budget grown to {', '.join(cell.get('budget') or [])}")
    if cell.get("search_capped"):
        flags.append("budget-capped")
    if cell.get("unequal_budget"):
        flags.append(f"unequal tuning budget: {cell['unequal_budget']}")
    if cell.get("chosen_in"):
        flags.append(f"chosen in {cell['chosen_in']}")
    return {"margin": margin, "se": se, "heldout_size": n, "edge": edge, "flags": flags}


def _number(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


#: A joint search's table cell lists its best points, the rest are in tuning.json.
POINTS_SHOWN = 4


def _joint_columns(cell: dict) -> tuple[str, str, str]:
    """(search space, scores, chosen) of a joint search for the table."""
    axes = cell.get("axes") or {}
    space = (f"{cell.get('search_configurations', len(cell.get('points') or []))} points: "
             + " x ".join(f"{_short(k)} {{{', '.join(_value(v) for v in values)}}}"
                          for k, values in axes.items()))
    ranked = sorted(cell.get("points") or [], key=lambda p: -1 if p["score"] is None else -p["score"])
    shown = "; ".join(f"{point_words(p['values'])}: {'failed' if p['score'] is None else format(p['score'], '.3f')}"
                      for p in ranked[:POINTS_SHOWN])
    more = len(ranked) - POINTS_SHOWN
    scores = shown + (f"; {more} more in tuning.json" if more > 0 else "")
    chosen = point_words(cell["chosen"]) if cell.get("chosen") else "–"
    return space, scores, chosen


def choices_table(cells: list[dict]) -> str:
    lines = ["| cell | search space | selected on | held-out score per lr | chosen lr | margin | SE (n) | flags |",
             "|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        found = describe(cell)
        per_lr = cell.get("heldout_score", cell.get("heldout_accuracy", {}))
        scores = ", ".join(f"{lr}: {'failed' if s is None else f'{s:.3f}'}" for lr, s in per_lr.items())
        chosen = "–" if cell["chosen_lr"] is None else lr_text(cell["chosen_lr"])
        space = ", ".join(lr_text(x) for x in cell["search_space"])
        if cell.get("points"):
            space, scores, chosen = _joint_columns(cell)
        size = f" ({found['heldout_size']})" if found["heldout_size"] else ""
        lines.append(f"| {cell['name']} | {space} | "
                     f"{cell.get('selected_on', 'accuracy')} | {scores} | {chosen} | {_number(found['margin'])} | "
                     f"{_number(found['se'])}{size} | {'; '.join(found['flags']) or '–'} |")
    return "\n".join(lines)
