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

from ltune.report.collect import SIZE_KEY, default_of, is_default_value
from ltune.report.stats import examples_level_test, over_runs_test, per_seed_correct, seed_power

#: Each L-method and the vanilla method it is compared with.
TWINS = {"l_prefix": "prefix", "l_prompt": "prompt"}
TWIN_KIND = "L-method vs vanilla twin"
REQUESTED_KIND = "requested"


def group_name(key: tuple) -> str:
    return key[2] + (f" [{key[3]}]" if key[3] else "")


def settings_apart(a: list[dict], b: list[dict]) -> list[str]:
    """The keys in which two replicate groups differ; a tuning sweep's chosen lr is a result, so it
    is left out when both groups were tuned."""
    sa, sb = a[0]["settings"], b[0]["settings"]
    keys = sorted(k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k))
    if all(r["stage"] == "final" for r in a + b):
        keys = [k for k in keys if k != "trainer.lr"]
    return keys


def outside_method(a: list[dict], b: list[dict]) -> list[str]:
    """The settings outside the method (model, data, trainer but the learning rate) in which two
    groups' runs differ: runs trained or scored differently are no pair."""
    sa, sb = a[0]["settings"], b[0]["settings"]
    return sorted(k for k in sa.keys() | sb.keys()
                  if not k.startswith("method.") and k != "trainer.lr" and sa.get(k) != sb.get(k))


#: Method settings that never keep two groups from being twins: a tuned rate is a result, and a
#: grid is each method's own.
OWN_PER_METHOD = ("method.name", "method.lr", "method.lr_search")


def method_departures(runs: list[dict]) -> dict[str, str]:
    """The ``method.`` settings in which a group departs from its method's schema defaults (the
    learning rate and its grid aside), from the runs' own settings, not from the group's name (a
    name lists only the settings in which a cell's groups differ)."""
    method = runs[0]["method"]
    return {k: str(v) for k, v in runs[0]["settings"].items()
            if k.startswith("method.") and k not in OWN_PER_METHOD and not is_default_value(v, k, method)}


def method_pairs(groups: dict[tuple, list[dict]], wanted: dict[str, str], kind: str,
                 same_departures: bool = True) -> tuple[list, list[str]]:
    """((A, B, kind) for each group of a method in ``wanted`` and each group of ``wanted[method]`` in
    the same model and data that share every setting outside the method; with ``same_departures``
    (twins) only where both depart from their methods' defaults in the same way (both as the paper
    specifies them, or both with method.init=text), else any two groups (a requested comparison).
    Also lines naming the differing settings of candidates that share fewer."""
    pairs, unpaired = [], []
    for key in groups:
        if key[2] not in wanted:
            continue
        departures = method_departures(groups[key])
        candidates = [k for k in groups if k[:3] == (key[0], key[1], wanted[key[2]])
                      and (not same_departures or method_departures(groups[k]) == departures)]
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


def one_setting_pairs(groups: dict[tuple, list[dict]]) -> list[tuple]:
    """(changed, default, kind) for two groups of one model, data and method that differ in exactly
    one setting."""
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
    return pairs + one_setting_pairs(groups), unpaired


def dev_by_seed(runs: list[dict], metric: str = "accuracy") -> dict[int, float]:
    return {r["seed"]: r["dev"][metric] for r in runs if metric in r["dev"]}


def compare_groups(a: tuple, b: tuple, kind: str, groups: dict[tuple, list[dict]]) -> dict:
    """One comparison's row: the over-runs test and its power (primary), and where both sides saved
    dev predictions on shared examples, the examples-level test (secondary)."""
    runs_a, runs_b = groups[a], groups[b]
    by_seed_a, by_seed_b = dev_by_seed(runs_a), dev_by_seed(runs_b)
    row = {"kind": kind, "model": a[0], "data": a[1], "a": group_name(a), "b": group_name(b),
           "seeds_a": " ".join(map(str, sorted(by_seed_a))), "seeds_b": " ".join(map(str, sorted(by_seed_b))),
           **over_runs_test(by_seed_a, by_seed_b), **seed_power(by_seed_a, by_seed_b),
           "reused_search_runs": sum(r.get("reused", False) for r in runs_a + runs_b)}
    preds_a = [r["predictions"] for r in runs_a if r["predictions"]]
    preds_b = [r["predictions"] for r in runs_b if r["predictions"]]
    ids = sorted(set.intersection(*(set(p) for p in preds_a + preds_b))) if preds_a and preds_b else []
    if ids:
        table_a, table_b = per_seed_correct(preds_a, ids), per_seed_correct(preds_b, ids)
        row.update(examples_level_test(table_a.mean(axis=0), table_b.mean(axis=0)))
    return row


def paired_rows(groups: dict[tuple, list[dict]], compare=()) -> tuple[list[dict], list[str]]:
    """(a row per comparison, lines naming the twins left unpaired and why)."""
    pairs, unpaired = comparisons(groups, compare)
    return [compare_groups(a, b, kind, groups) for a, b, kind in pairs], unpaired
