"""Reading run folders for the report: finished runs with their settings, logs and dev
predictions; failed, unfinished and unreadable runs are listed, never averaged in."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ltune.report.conditions import NOT_RECORDED
from ltune.run_files import CONFIG, FAILED, LOG, METRICS, PREDICTIONS, read_json_lines

#: Keys that differ between seed replicates of one configuration, or that only say where files
#: go and how progress is tracked: every other key of the resolved config must be equal for two
#: runs to be averaged as replicates.
NOT_A_SETTING = ("seed", "run_name", "output_root", "resume", "logger", "trainer.num_threads", "pack")


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def settings_of(config: dict) -> dict:
    """The flattened resolved config of a run without the keys that replicates may differ in. A
    key a later ltune version added (method.init, data.label_text_kind) and the run's config lacks
    gets the schema's default, which is what the run used: runs from before and after the key came
    are the same replicates, never two groups."""
    flat = flatten(config)
    for key, default in schema_defaults((config.get("method") or {}).get("name")).items():
        if not str(default).startswith("${"):  # an interpolation (trainer.lr: ${method.lr}) needs the rest of the config
            flat.setdefault(key, default)
    return {k: v for k, v in flat.items() if not any(k == skip or k.startswith(skip + ".") for skip in NOT_A_SETTING)}


def schema_defaults(method: str | None) -> dict:
    """{flattened key: default} of the schema's settings that have one (trainer, model, data and
    ``method``'s); a choice's default as its text."""
    import dataclasses

    from ltune.config import schema
    from ltune.methods import METHODS

    sections = {"trainer": schema.TrainerConfig, "model": schema.ModelConfig, "data": schema.DataConfig}
    if method in METHODS:
        sections["method"] = METHODS[method].config
    return {f"{section}.{field.name}": getattr(field.default, "value", field.default)
            for section, config_class in sections.items() for field in dataclasses.fields(config_class)
            if field.default is not dataclasses.MISSING}


def stage_of(run: Path, folder: Path) -> str | None:
    """"search" or "final" for the jobs of a tuning sweep (hydra/sweeper=ltune_tune), else None."""
    parts = run.relative_to(folder).parts
    for stage in ("search", "final"):
        if stage in parts[:-1] or (run.parent.name == stage):
            return stage
    return None


def read_run(run: Path, folder: Path) -> dict:
    """A finished run's figures; raises ValueError when a file is unreadable."""
    from omegaconf import OmegaConf

    try:
        metrics = json.loads((run / METRICS).read_text())
        config = OmegaConf.to_container(OmegaConf.load(run / CONFIG), resolve=False) or {}
    except Exception as err:  # truncated JSON, broken YAML: the run is listed, not averaged
        raise ValueError(f"unreadable {METRICS} or {CONFIG} ({type(err).__name__})") from None
    for key in ("model", "data", "method", "seed", "dev"):
        if key not in metrics:
            raise ValueError(f"{METRICS} has no '{key}'")
    log = read_json_lines(run / LOG)
    predictions = {r["id"]: (r["prediction"], r["label"]) for r in read_json_lines(run / PREDICTIONS)}
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    return {**metrics, "run_dir": str(run), "log": log, "settings": settings_of(config), "predictions": predictions,
            "stage": stage_of(run, folder), "num_threads": trainer.get("num_threads", NOT_RECORDED)}


def collect(folder: Path) -> tuple[list[dict], list[dict]]:
    """(finished runs, failed, unfinished or unreadable runs) under ``folder``."""
    finished, problems = [], []
    for metrics in sorted(folder.rglob(METRICS)):
        run = metrics.parent
        try:
            finished.append(read_run(run, folder))
        except ValueError as err:
            problems.append({"run_dir": str(run), "status": "unreadable", "error": str(err)})
    for failed in sorted(folder.rglob(FAILED)):
        if (failed.parent / METRICS).is_file():
            continue  # a job that failed once and finished later (a sweep run again): finished, not failed
        try:
            record = json.loads(failed.read_text())
        except json.JSONDecodeError:
            record = {"error": f"unreadable {FAILED}"}
        problems.append({"run_dir": str(failed.parent), "status": "failed", "error": record.get("error", "")})
    known = {r["run_dir"] for r in finished} | {p["run_dir"] for p in problems}
    for marker in sorted([*folder.rglob(".hydra"), *folder.rglob(CONFIG)]):
        run = marker.parent
        if str(run) not in known and run != folder and (marker.name == ".hydra" or (run / "checkpoint.pt").exists()):
            known.add(str(run))
            problems.append({"run_dir": str(run), "status": "unfinished", "error": "no metrics.json (killed or running)"})
    return finished, problems


def default_of(key: str, method: str):
    """The schema's default of a flattened config key (``method.*`` from the method's config);
    None where the schema has none."""
    return schema_defaults(method).get(key)


def is_default_value(value, key: str, method: str) -> bool:
    """Whether a setting's value is the schema's default for that method."""
    return str(value) == str(default_of(key, method))


def drop_repeated_seeds(finished: list[dict]) -> tuple[list[dict], list[dict]]:
    """(runs, repeats): a run with the same model, data, method, settings and seed as an earlier
    one (by folder name) is the same replicate trained again; counting it twice would shrink the
    spread and the interval. Repeats are listed in the report, not averaged in."""
    kept, repeats, seen = [], [], {}
    for run in sorted(finished, key=lambda r: r["run_dir"]):
        key = (run["model"], run["data"], run["method"], run["seed"],
               json.dumps(run["settings"], sort_keys=True, default=str))
        if key in seen:
            repeats.append({"run_dir": run["run_dir"], "status": "repeated seed",
                            "error": f"seed {run['seed']} with the same settings as {seen[key]}; counted once"})
        else:
            seen[key] = run["run_dir"]
            kept.append(run)
    return kept, repeats


#: The setting a learning curve's x axis reads.
SIZE_KEY = "data.max_train_samples"


def size_linked(settings: list[dict]) -> set[str]:
    """Among groups' ``settings`` at two or more training sizes (SIZE_KEY), the settings that take one
    value per size (e.g. the held-out slice or the step budget of a size): they belong to the size,
    not to a group's name. SIZE_KEY itself is not among them. Empty at a single size."""
    by_size: dict = {}
    for one in settings:
        by_size.setdefault(str(one.get(SIZE_KEY)), []).append(one)
    if len(by_size) < 2:
        return set()
    names = {k for one in settings for k in one} - {SIZE_KEY}
    return {k for k in names if all(len({str(one.get(k)) for one in group}) == 1 for group in by_size.values())}


def _size_linked_per_cell(groups: dict[tuple, list[dict]]):
    """Per (model, data, method): its group keys, their settings, and the size-linked settings that
    differ between its sizes (a tuned learning rate is a result, not a setting of the size)."""
    for cell in sorted({key[:3] for key in groups}):
        keys = [key for key in groups if key[:3] == cell]
        settings = [groups[key][0]["settings"] for key in keys]
        tuned = all(r["stage"] == "final" for key in keys for r in groups[key])
        linked = [k for k in sorted(size_linked(settings)) if len({str(one.get(k)) for one in settings}) > 1
                  and not (tuned and k == "trainer.lr")]
        yield cell, keys, settings, linked


def settings_of_sizes(groups: dict[tuple, list[dict]]) -> dict[tuple, dict[str, dict[str, str]]]:
    """Per (model, data) whose groups come at two or more training sizes: per size, the size-linked
    settings that differ between sizes, as {size: {setting: value}} (values joined by ' / ' where the
    methods differ at a size)."""
    found: dict = {}
    for cell, _, settings, linked in _size_linked_per_cell(groups):
        for one in settings:
            row = found.setdefault(cell[:2], {}).setdefault(str(one.get(SIZE_KEY)), {})
            for k in linked:
                row.setdefault(k, set()).add(str(one.get(k)))
    return {cell: {size: {k: " / ".join(sorted(v)) for k, v in row.items()} for size, row in sizes.items()}
            for cell, sizes in found.items() if len(sizes) > 1 and any(sizes.values())}


def size_settings(groups: dict[tuple, list[dict]]) -> dict[tuple, str]:
    """Per group key, its size-linked settings as 'k=v, ...' ('' outside a learning curve): what the
    group's name leaves to the size, for the csv files."""
    return {key: ", ".join(f"{k}={one.get(k)}" for k in linked)
            for _, keys, settings, linked in _size_linked_per_cell(groups) for key, one in zip(keys, settings)}


def replicate_groups(finished: list[dict]) -> dict[tuple, list[dict]]:
    """Runs grouped as seed replicates: same model, data, method and every other setting.

    The key is (model, data, method, variant). Variant names, among the settings in which the
    groups of one model, data and method differ, those where this group departs from the schema's
    default ("" for the default group, so a method's paper-default runs get one name on every task
    whether or not a task also has ablations). The learning rate a tuning sweep chose is a result,
    not a setting: it is left out of the name. At several training sizes (a learning curve), the
    settings that go with a size (``size_linked``) are left out too: the size names them.
    """
    groups = defaultdict(list)
    for run in finished:
        frozen = json.dumps(run["settings"], sort_keys=True, default=str)
        groups[(run["model"], run["data"], run["method"], frozen)].append(run)
    by_cell = defaultdict(list)
    named = {}
    for key in groups:
        contrast = groups[key][0].get("contrast")
        if contrast:  # the chosen point with one axis changed: named by that axis
            value = str(groups[key][0]["settings"].get(contrast))
            value = value if len(value) <= 24 else value[:23].rstrip() + "…"
            named[(*key[:3], f"contrast {contrast}={value}")] = sorted(groups[key], key=lambda r: r["seed"])
        else:
            by_cell[key[:3]].append(key)
    for cell, keys in by_cell.items():
        settings = [groups[key][0]["settings"] for key in keys]
        tuned = all(r["stage"] == "final" for key in keys for r in groups[key])
        linked = size_linked(settings)
        differing = sorted({k for s in settings for k in s if any(t.get(k) != s.get(k) for t in settings)} - linked)
        # what a tuning sweep chose (the rate, and the keys a joint search searched) is a result, not a
        # setting: left out of the names, unless nothing else tells the groups apart
        results = {"trainer.lr"} | {k for key in keys for r in groups[key] for k in r.get("tuned", ())}
        if tuned and [k for k in differing if k not in results]:
            differing = [k for k in differing if k not in results]
        elif tuned and len(differing) > 1:
            differing = [k for k in differing if k != "trainer.lr"]
        names = [", ".join(f"{k}={s.get(k)}" for k in differing if not is_default_value(s.get(k), k, cell[2]))
                 for s in settings]
        if len(set(names)) < len(names):  # only where defaults cannot tell groups apart: name them all
            names = [", ".join(f"{k}={s.get(k)}" for k in differing) for s in settings]
        # a method setting that departs from the paper's is always named, even where no other group of
        # the cell differs in it (an L-prefix with method.pool_softmax=false is not plain L-prefix)
        names = [", ".join(filter(None, [name, *(f"{k}={v}" for k, v in method_departures(groups[key]).items()
                                                 if k not in differing)]))
                 for name, key in zip(names, keys)]
        for key, variant in zip(keys, names):
            named[(*cell, variant)] = sorted(groups[key], key=lambda r: r["seed"])
    return dict(sorted(named.items(), key=lambda item: [natural_key(part) for part in item[0]]))


#: Method settings that never name a variant: a tuned rate is a result, and a grid is each method's own.
OWN_PER_METHOD = ("method.name", "method.lr", "method.lr_search")


def method_departures(runs: list[dict]) -> dict[str, str]:
    """The ``method.`` settings in which a group departs from its method's schema defaults (the
    learning rate, its grid and what a tuning sweep chose aside), from the runs' own settings."""
    method = runs[0]["method"]
    chosen = ({"trainer.lr"} | {k for r in runs for k in r.get("tuned", ())}
              if all(r.get("stage") == "final" for r in runs) else set())
    return {k: str(v) for k, v in runs[0]["settings"].items()
            if k.startswith("method.") and k not in OWN_PER_METHOD and k not in chosen
            and not is_default_value(v, k, method)}


def search_variants(searched: list[dict], finished: list[dict]) -> dict[str, str]:
    """Per search run's folder, its variant: the name of the replicates its search tuned. The rate a
    search run tries is what the search varies, not a setting, so the runs are named as replicate
    groups with trainer.lr set aside. A search whose replicates are not trained yet is named too, so
    its rows can be told from another variant's search in runs.csv."""
    def without_lr(run):
        return {**run, "stage": "final", "settings": {k: v for k, v in run["settings"].items() if k != "trainer.lr"}}

    searches = {run["run_dir"] for run in searched}
    groups = replicate_groups([without_lr(run) for run in finished + searched])
    return {run["run_dir"]: key[3] for key, runs in groups.items() for run in runs if run["run_dir"] in searches}


def natural_key(text: str) -> list:
    """Sorts names of settings ('k=v, k=v') by each value as a number where it is one
    (max_train_samples=32 before =128, lr 0.05 before 0.1), else by its text."""
    key = []
    for item in str(text).split(", "):
        name, _, value = item.partition("=")
        try:
            key.append((name, 0, float(value), ""))
        except ValueError:
            key.append((name, 1, 0.0, value))
    return key
