"""Which replicate groups the report compares, and each comparison's figures (from stats.py).

- Each L-method against its vanilla twin (l_prefix vs prefix, l_prompt vs prompt) in the same model
  and data, where both sides depart from their method's paper settings in the same way (not at all,
  or both with method.init=text) and share every other setting (the learning rate aside: each method
  has its own). Twins that differ elsewhere are listed, unpaired, with the settings that differ.
- Within one model, data and method, two groups that differ in exactly one setting (an ablation, or
  a speed setting): A is the changed setting, B has the schema's default.
- Any method against another on request (``compare``): every group of A against every group of B
  that shares the settings outside the method, whatever each departs from its method's defaults.
"""

from __future__ import annotations

from ltune.report.collect import SIZE_KEY, default_of, method_departures
from ltune.report.conditions import confounded_with, differing, differing_text, stratum, stratum_text
from ltune.report.stats import (FEWEST_PAIRS, TARGET_DIFFERENCES, examples_level_test, holm, over_runs_test,
                                per_seed_correct, rates_test, reading, seed_power, stratified_test)
from ltune.report.summary import capped, stuck

#: Each L-method and the vanilla method it is compared with.
TWINS = {"l_prefix": "prefix", "l_prompt": "prompt"}
TWIN_KIND = "L-method vs vanilla twin"
REQUESTED_KIND = "requested"


def group_name(key: tuple) -> str:
    return key[2] + (f" [{key[3]}]" if key[3] else "")


def tuned_keys(*groups: list[dict]) -> set[str]:
    """The keys a tuning sweep chose for these groups' final runs: the learning rate, and the axes of a
    joint search (hydra.sweeper.axes). Results of the tuning, not settings that keep groups apart."""
    runs = [r for group in groups for r in group]
    if not runs or not all(r["stage"] == "final" for r in runs):
        return set()
    return {"trainer.lr"} | {k for r in runs for k in r.get("tuned", ())}


def settings_apart(a: list[dict], b: list[dict]) -> list[str]:
    """The keys in which two replicate groups differ; what a tuning sweep chose (tuned_keys) is a
    result, so it is left out when both groups were tuned."""
    sa, sb = a[0]["settings"], b[0]["settings"]
    chosen = tuned_keys(a, b)
    return sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k) and k not in chosen)


def outside_method(a: list[dict], b: list[dict]) -> list[str]:
    """The settings outside the method (model, data, trainer but the learning rate and what a joint
    search chose) in which two groups' runs differ: runs trained or scored differently are no pair."""
    sa, sb = a[0]["settings"], b[0]["settings"]
    chosen = tuned_keys(a, b) | {"trainer.lr"}
    return sorted(k for k in sa.keys() | sb.keys()
                  if not k.startswith("method.") and k not in chosen and sa.get(k) != sb.get(k))


def describe_departures(a: list[dict], b: list[dict]) -> str:
    da, db = method_departures(a), method_departures(b)
    return "; ".join(f"{side}: {', '.join(f'{k}={v}' for k, v in d.items()) or 'none'}" for side, d in (("A", da), ("B", db)))


def method_pairs(groups: dict[tuple, list[dict]], wanted: dict[str, str], kind: str,
                 same_departures: bool = True) -> tuple[list, list[str]]:
    """((A, B, kind) for each group of a method in ``wanted`` and each group of ``wanted[method]`` in
    the same model and data that share every setting outside the method; with ``same_departures``
    (twins) only where both depart from their methods' defaults in the same way (both as the paper
    specifies them, or both with method.init=text), else any two groups (a requested comparison).
    Also lines naming the differing settings of candidates that share fewer."""
    pairs, unpaired = [], []
    groups = {key: runs for key, runs in groups.items() if not runs[0].get("contrast")}
    for key in groups:
        if key[2] not in wanted:
            continue
        departures = method_departures(groups[key])
        everyone = [k for k in groups if k[:3] == (key[0], key[1], wanted[key[2]])]
        candidates = [k for k in everyone if not same_departures or method_departures(groups[k]) == departures]
        if not candidates and everyone:  # twins that depart from the paper differently: never paired silently
            unpaired += [f"{key[0]} / {key[1]}: {group_name(key)} vs {group_name(k)} not paired: they depart from "
                         f"their methods' paper settings differently ({describe_departures(groups[key], groups[k])}); "
                         f"compare={key[2]}:{wanted[key[2]]} pairs them anyway" for k in everyone]
        matching = [k for k in candidates if not outside_method(groups[key], groups[k])]
        pairs += [(key, k, kind) for k in matching]
        size = groups[key][0]["settings"].get(SIZE_KEY)
        same_size = [k for k in candidates if groups[k][0]["settings"].get(SIZE_KEY) == size]
        if not matching and same_size:
            unpaired += [f"{key[0]} / {key[1]}: {group_name(key)} vs {group_name(k)} not paired; their runs differ in "
                         + ", ".join(outside_method(groups[key], groups[k])) for k in same_size]
        elif not matching and candidates:  # twins at other training sizes only: never a pair, one line
            unpaired.append(f"{key[0]} / {key[1]}: {group_name(key)} has no {wanted[key[2]]} group at "
                            f"{SIZE_KEY}={size} yet")
    return pairs, unpaired


def contrast_pairs(groups: dict[tuple, list[dict]]) -> list[tuple]:
    """(contrast, chosen, kind) for each contrast of a joint search (the chosen point with one axis changed)
    and the chosen point's replicates of the same model, data and method."""
    pairs = []
    for key, runs in groups.items():
        axis = runs[0].get("contrast")
        if not axis:
            continue
        for other, chosen in groups.items():
            if other[:3] == key[:3] and not chosen[0].get("contrast") and all(
                    runs[0]["settings"].get(k) == chosen[0]["settings"].get(k)
                    for k in runs[0]["settings"].keys() | chosen[0]["settings"].keys() if k != axis):
                pairs.append((key, other, f"contrast: {axis} changed (B: the chosen point)"))
    return pairs


def one_setting_pairs(groups: dict[tuple, list[dict]]) -> list[tuple]:
    """(changed, default, kind) for two groups of one model, data and method that differ in exactly
    one setting."""
    groups = {key: runs for key, runs in groups.items() if not runs[0].get("contrast")}
    pairs, keys = [], list(groups)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if a[:3] != b[:3]:
                continue
            differing = settings_apart(groups[a], groups[b])
            if len(differing) != 1:
                continue
            setting, default = differing[0], default_of(differing[0], a[2])
            changed, base = (b, a) if str(groups[a][0]["settings"].get(setting)) == str(default) else (a, b)
            pairs.append((changed, base, f"{setting} changed (B: default)"))
    return pairs


def comparisons(groups: dict[tuple, list[dict]], compare=()) -> tuple[list, list[str]]:
    """Every (A, B, kind) the report tests, and the lines of twins left unpaired (see the module).
    ``compare``: (method A, method B) pairs asked for besides the twins."""
    pairs, unpaired = method_pairs(groups, TWINS, TWIN_KIND)
    for method_a, method_b in compare:
        requested, not_requested = method_pairs(groups, {method_a: method_b}, REQUESTED_KIND, same_departures=False)
        pairs += [p for p in requested if p[:2] not in {q[:2] for q in pairs}]
        unpaired += not_requested
    return pairs + one_setting_pairs(groups) + contrast_pairs(groups), unpaired


def dev_by_seed(runs: list[dict], metric: str = "accuracy") -> dict[int, float]:
    return {r["seed"]: r["dev"][metric] for r in runs if metric in r["dev"]}


def arms_test(runs_a: list[dict], runs_b: list[dict]) -> dict:
    """The test over runs of two arms, within the run conditions they share (conditions.py):
    - every run in one stratum: the test of stats.over_runs_test over all runs;
    - no shared stratum: the same figures, but ``confounded`` names what keeps the arms apart;
    - the same seed numbers on both sides, FEWEST_PAIRS or more of them with both runs in one stratum:
      the paired test over those seeds only (each pair ran under the same conditions);
    - else one shared stratum: the test over the runs in it; several: stats.stratified_test.
    ``design`` says which, and which runs were left out."""
    strata_a, strata_b = {r["seed"]: stratum(r) for r in runs_a}, {r["seed"]: stratum(r) for r in runs_b}
    everywhere = set(strata_a.values()) | set(strata_b.values())
    shared = set(strata_a.values()) & set(strata_b.values())
    by_seed_a, by_seed_b = dev_by_seed(runs_a), dev_by_seed(runs_b)
    if len(everywhere) <= 1 or not shared:
        confounded = None if shared else confounded_with(runs_a, runs_b)
        design = ("every run under one set of run conditions" if len(everywhere) <= 1
                  else f"none: the arms share no run conditions (confounded with {confounded})")
        return {**over_runs_test(by_seed_a, by_seed_b), **seed_power(by_seed_a, by_seed_b), "design": design,
                "confounded": confounded}
    same_seeds = sorted(by_seed_a) == sorted(by_seed_b)
    matched = [s for s in sorted(by_seed_a) if same_seeds and strata_a[s] == strata_b[s]]
    if len(matched) >= FEWEST_PAIRS:
        left_out = sorted(set(by_seed_a) - set(matched))
        a, b = {s: by_seed_a[s] for s in matched}, {s: by_seed_b[s] for s in matched}
        design = (f"paired within run conditions: the {len(matched)} seeds whose two runs share them"
                  + (f" (seeds {' '.join(map(str, left_out))} left out)" if left_out else ""))
        return {**over_runs_test(a, b), **seed_power(a, b), "design": design, "confounded": None}
    if len(shared) == 1:
        (only,) = shared
        a = {s: v for s, v in by_seed_a.items() if strata_a[s] == only}
        b = {s: v for s, v in by_seed_b.items() if strata_b[s] == only}
        design = (f"within {stratum_text(only)} only: {len(a)} vs {len(b)} runs "
                  f"({len(by_seed_a) - len(a)} A and {len(by_seed_b) - len(b)} B runs under other conditions left out)")
        return {**over_runs_test(a, b), **seed_power(a, b), "design": design, "confounded": None}
    per_a = {k: [by_seed_a[s] for s in by_seed_a if strata_a[s] == k] for k in shared}
    per_b = {k: [by_seed_b[s] for s in by_seed_b if strata_b[s] == k] for k in shared}
    found = stratified_test({str(k): v for k, v in per_a.items()}, {str(k): v for k, v in per_b.items()})
    kept_a, kept_b = sum(map(len, per_a.values())), sum(map(len, per_b.values()))
    design = (f"stratified over the {len(shared)} run conditions both arms have: {kept_a} vs {kept_b} runs"
              f" ({len(by_seed_a) - kept_a} A and {len(by_seed_b) - kept_b} B runs under other conditions left out)")
    return {**found, "detectable_difference": None, **{f"seeds_for_{t:g}": None for t in TARGET_DIFFERENCES},
            "design": design, "confounded": None}


def search_size(runs: list[dict]) -> int | None:
    """The search runs a group's tuning spent (points x search seeds; None outside a tuning sweep)."""
    sizes = {r.get("search_size") for r in runs} - {None}
    return max(sizes) if sizes else None


def search_sizes_text(runs_a: list[dict], runs_b: list[dict]) -> str:
    """'' when both arms' tunings spent the same number of search runs, else what each spent, and whether
    their first grids differed (an unequal budget) or only the growth past a winning edge did (one rule
    for both, spent where it found an edge)."""
    a, b = search_size(runs_a), search_size(runs_b)
    if a is None or b is None or a == b:
        return ""
    first = [max({r.get("search_initial") for r in runs} - {None}, default=None) for runs in (runs_a, runs_b)]
    why = ("their first grids differ: an unequal tuning budget" if first[0] != first[1]
           else "equal first grids; the rest grew past a winning edge")
    return f"tuning budget: A {a} search runs vs B {b} ({why})"


def compare_groups(a: tuple, b: tuple, kind: str, groups: dict[tuple, list[dict]]) -> dict:
    """One comparison's row: the run conditions that differ between the arms; the over-runs test and its
    power (primary) within the conditions the arms share; the stuck rates and their test; the test again
    over the runs that learn (sensitivity); budget-capped runs; and where both sides saved dev predictions
    on shared examples, the examples-level test (secondary). The words come later (``read_rows``), once the
    family's p-values are adjusted."""
    runs_a, runs_b = groups[a], groups[b]
    by_seed_a, by_seed_b = dev_by_seed(runs_a), dev_by_seed(runs_b)
    row = {"kind": kind, "model": a[0], "data": a[1], "a": group_name(a), "b": group_name(b),
           "seeds_a": " ".join(map(str, sorted(by_seed_a))), "seeds_b": " ".join(map(str, sorted(by_seed_b))),
           "conditions_differ": "; ".join(filter(None, [differing_text(differing(runs_a, runs_b)),
                                                        search_sizes_text(runs_a, runs_b)])) or "none",
           "search_a": search_size(runs_a), "search_b": search_size(runs_b),
           **arms_test(runs_a, runs_b), "reused_search_runs": sum(r.get("reused", False) for r in runs_a + runs_b)}
    stuck_a, stuck_b = [r for r in runs_a if stuck(r)], [r for r in runs_b if stuck(r)]
    row.update({"stuck_a": f"{len(stuck_a)}/{len(runs_a)}", "stuck_b": f"{len(stuck_b)}/{len(runs_b)}",
                "stuck_p": rates_test(len(stuck_a), len(runs_a), len(stuck_b), len(runs_b)) if stuck_a or stuck_b else None})
    if stuck_a or stuck_b:
        learning = arms_test([r for r in runs_a if not stuck(r)], [r for r in runs_b if not stuck(r)]) \
            if len(stuck_a) < len(runs_a) and len(stuck_b) < len(runs_b) else {"delta": None, "p_value": None}
        row.update({f"learning_{k}": learning.get(k) for k in ("delta", "ci_low", "ci_high", "p_value", "test", "design")})
        row["learning_runs"] = f"{len(runs_a) - len(stuck_a)} / {len(runs_b) - len(stuck_b)}"
        row["_learning"] = learning
    row.update({"capped_a": f"{sum(map(capped, runs_a))}/{len(runs_a)}", "capped_b": f"{sum(map(capped, runs_b))}/{len(runs_b)}"})
    preds_a = [r["predictions"] for r in runs_a if r["predictions"]]
    preds_b = [r["predictions"] for r in runs_b if r["predictions"]]
    ids = sorted(set.intersection(*(set(p) for p in preds_a + preds_b))) if preds_a and preds_b else []
    if ids:
        table_a, table_b = per_seed_correct(preds_a, ids), per_seed_correct(preds_b, ids)
        row.update(examples_level_test(table_a.mean(axis=0), table_b.mean(axis=0)))
    return row


def in_words(row: dict) -> str:
    """The row's words from both outcomes: the difference over all runs (primary, Holm-adjusted) and, where
    a side has stuck runs, the stuck rates and the difference among the runs that learn, e.g. 'below, through
    stuck runs (4/10 vs 0/10); level among the runs that learn'."""
    if row.get("confounded"):
        return f"confounded with {row['confounded']}"
    primary = row["reads"]
    if row.get("stuck_p") is None:
        return primary
    stuck_text = f"stuck {row['stuck_a']} vs {row['stuck_b']}"
    learning = row["learning_reads"]
    among = (f"{learning} among the runs that learn" if not learning.startswith("untested")
             else "no test among the runs that learn (a side has fewer than two)")
    if primary in ("above", "below") and learning != primary:
        return f"{primary}, through stuck runs ({stuck_text}); {among}"
    return f"{primary} ({stuck_text}); {among}"


def read_rows(rows: list[dict]) -> list[dict]:
    """Adjust each test's p-values over the report's family (Holm: stats.holm; confounded pairs are not
    read and stay out of it) and give each row its words."""
    families = (("p_value", None), ("stuck_p", None), ("learning_p_value", "_learning"))
    for column, _ in families:
        values = [None if r.get("confounded") else r.get(column) for r in rows]
        for r, adjusted in zip(rows, holm(values)):
            r[f"{column}_holm"] = adjusted
    for r in rows:
        r["reads"] = reading(r, r["p_value_holm"]) if not r.get("confounded") else "confounded"
        if "_learning" in r:
            r["learning_reads"] = reading(r.pop("_learning"), r["learning_p_value_holm"])
        r["in_words"] = in_words(r)
        r["family_size"] = sum(1 for q in rows if q.get("p_value") is not None and not q.get("confounded"))
    return rows


def paired_rows(groups: dict[tuple, list[dict]], compare=()) -> tuple[list[dict], list[str]]:
    """(a row per comparison, lines naming the twins left unpaired and why)."""
    pairs, unpaired = comparisons(groups, compare)
    return read_rows([compare_groups(a, b, kind, groups) for a, b, kind in pairs]), unpaired
