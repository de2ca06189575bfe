"""Config composition and checking for every ltune command: one module that the commands use
and that imports none of them.

``compose`` is Hydra's compose API over ltune's config folder (plus users' ``--config-dir``
folders); ``check_overrides`` and ``check_keys`` turn an unknown option or a misspelt key into one
line before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from ltune.errors import LtuneError

CONF_DIR = Path(os.environ.get("LTUNE_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))
#: Config groups a user picks by name on the command line.
GROUPS = ("model", "data", "method", "trainer", "logger", "experiment", "train_size")
#: Hydra flags that take a value (the value is not an override).
_FLAGS_WITH_VALUE = ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp", "--cfg", "-c",
                     "--package", "-p")


def extra_config_dirs(args: list[str]) -> list[Path]:
    """Folders added with Hydra's --config-dir/-cd (a user's own data or model configs)."""
    dirs = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def search_path(extra_dirs: list[Path]) -> list[str]:
    """The override that adds users' config folders to a compose call."""
    return [f"hydra.searchpath=[{','.join('file://' + str(d.resolve()) for d in extra_dirs)}]"]


def override_args(args: list[str]) -> list[str]:
    """The override arguments, without Hydra's flags and their values."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif arg in ("--info", "-i") or arg.startswith("-"):
            continue
        else:
            out.append(arg)
    return out


def group_options(group: str, extra_dirs: list[Path] = ()) -> list[str]:
    """The options of a config group: yaml files in the config folders and structured configs."""
    from hydra.core.config_store import ConfigStore

    register_schema()
    names = set()
    for folder in [CONF_DIR, *extra_dirs]:
        names.update(p.stem for p in (folder / group).glob("*.yaml"))
    stored = ConfigStore.instance().repo.get(group, {})
    names.update(name.removesuffix(".yaml") for name in stored)
    return sorted(names)


def compose(overrides: list[str], extra_dirs: list[Path] = (), hydra_config: bool = False):
    """The config ``ltune train OVERRIDES`` would use, without a run (Hydra's compose API);
    ``hydra_config`` keeps Hydra's own node (hydra.run.dir, ...)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema()
    extra = search_path(extra_dirs) if extra_dirs else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra_compose("config", overrides=list(overrides) + extra, return_hydra_config=hydra_config)


def register_schema() -> None:
    """Put the dataclass schema into Hydra's ConfigStore (before any composition)."""
    from ltune.config.schema import register

    register()


def check_overrides(args: list[str]) -> None:
    """Fail early, in one line, on a config-group option that does not exist."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    extra_dirs = extra_config_dirs(args)
    try:
        parsed = OverridesParser.create().parse_overrides(override_args(args))
    except OverrideParseException as err:
        raise LtuneError(f"cannot parse the overrides: {str(err).splitlines()[0]}") from None
    check_builtin_clashes(args)
    for override in parsed:
        group = override.key_or_group.lstrip("+~")
        if group not in GROUPS:
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        valid = group_options(group, extra_dirs)
        for value in values:
            if str(value) not in valid:
                raise LtuneError(f"unknown {group} '{value}'; valid options: {', '.join(valid)}")


#: At most this many combinations of a sweep's values are composed and checked up front.
MAX_CHECKED_COMBINATIONS = 64


def sweep_combinations(args: list[str]) -> list[list[str]]:
    """The plain override lists of a command line's sweep (every combination, or each value
    beside the others' first ones when there are too many); hydra.* overrides are left out."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes = []
    for override in OverridesParser.create().parse_overrides(override_args(args)):
        key = override.get_key_element()
        if key.lstrip("+~").startswith("hydra"):
            continue
        if override.is_sweep_override():
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([f"{key}={override.get_value_element_as_str()}"])
    total = 1
    for axis in axes:
        total *= len(axis)
    if total <= MAX_CHECKED_COMBINATIONS:
        return [list(c) for c in itertools.product(*axes)] or [[]]
    firsts = [axis[0] for axis in axes]
    return [firsts[:i] + [value] + firsts[i + 1:] for i, axis in enumerate(axes) for value in axis]


def check_run_configs(args: list[str]) -> None:
    """Compose and validate the config of every run the command line asks for (every sweep
    combination, up to a limit) before Hydra creates any folder: a misspelt key, a wrong type or a
    value out of range is one line."""
    from ltune.config.schema import validate

    from ltune.backbone.sources import check_model_source
    from ltune.data import check_sources
    from ltune.run_files import check_folder_path

    extra_dirs = extra_config_dirs(args)
    for overrides in sweep_combinations(args):
        cfg = compose_checked(overrides, extra_dirs)
        validate(cfg)
        check_folder_path(Path(str(cfg.output_root)), "the output folder (LTUNE_OUTPUT_DIR or output_root)",
                          "give a writable one: LTUNE_OUTPUT_DIR=<folder> or output_root=<folder>")
        check_sources(cfg.data)
        check_model_source(cfg.model)


def compose_checked(overrides: list[str], extra_dirs: list[Path] = ()):
    """``compose`` with Hydra's and OmegaConf's errors turned into one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ltune.checks import one_line

    try:
        return compose(overrides, extra_dirs)
    except (HydraException, OmegaConfBaseException) as err:
        # Hydra chains an override's error as the cause; a group file's merge error only as the
        # context ("In 'data/tickets': ConfigKeyError raised while composing config").
        context = err.__context__ if isinstance(err.__context__, OmegaConfBaseException) else None
        cause = err.__cause__ or context or err
        full_key = getattr(cause, "full_key", None)
        size = chosen_option("train_size", overrides) if any(
            o.lstrip("+~").startswith("train_size=") for o in overrides) else None
        if size and full_key and full_key.startswith("hydra.sweeper."):
            raise LtuneError(f"train_size={size} is a size of the learning curve's tuning sweep (it sets {full_key}); "
                             f"run it with experiment=learning_curve (make reproduce-learning-curve), or for one run give "
                             f"the size's settings yourself (ltune/conf/train_size/{size}.yaml: data.max_train_samples, "
                             f"data.max_heldout_samples, trainer.*)") from None
        if full_key and "not in" in str(cause):
            parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
            keys = ", ".join(valid_keys(parent, overrides, extra_dirs))
            where = f" under {parent}" if parent else ""
            typed = any(o.lstrip("+~").split("=")[0] == full_key for o in overrides)
            source = "" if typed else config_file_of(full_key.split(".")[0], overrides, extra_dirs)
            raise LtuneError(f"unknown config key '{full_key}'{source}; valid keys{where}: {keys}") from None
        raise LtuneError(one_line(cause) if isinstance(cause, OmegaConfBaseException) else " ".join(str(err).split())) from None


def chosen_option(group: str, overrides: list[str]) -> str | None:
    """The option of a config group the command line picks, else config.yaml's default."""
    from omegaconf import OmegaConf

    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key.lstrip("+~") == group:
            return value
    for entry in OmegaConf.load(CONF_DIR / "config.yaml").get("defaults", []):
        if isinstance(entry, dict) or hasattr(entry, "keys"):
            for key, value in entry.items():
                if key == group:
                    return None if value is None else str(value)
    return None


def config_file_of(group: str, overrides: list[str], extra_dirs: list[Path]) -> str:
    """' in <file>' for the yaml file a group's chosen option comes from ('' when there is none)."""
    option = chosen_option(group, overrides) if group in GROUPS else None
    if option is None:
        return ""
    for folder in [CONF_DIR, *extra_dirs]:
        path = folder / group / f"{option}.yaml"
        if path.is_file():
            return f" in {path}"
    return ""


def valid_keys(parent: str, overrides: list[str], extra_dirs: list[Path] = ()) -> list[str]:
    """The keys a config node takes: from the group's composed node, or (where that node cannot be
    composed, e.g. a user's yaml file with the misspelt key) from the schema's dataclass."""
    from omegaconf import OmegaConf

    groups = [o for o in overrides if o.split("=")[0] in GROUPS]
    try:
        cfg = compose(groups, extra_dirs)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if hasattr(node, "keys"):
            return sorted(node.keys())
    except Exception:  # noqa: BLE001  (the group's own file is broken: the schema says what it takes)
        pass
    import dataclasses

    from ltune.config.schema import DataConfig, LoggerConfig, ModelConfig, RunConfig, TrainerConfig
    from ltune.methods import METHODS

    register_schema()
    schemas = {"": RunConfig, "model": ModelConfig, "data": DataConfig, "trainer": TrainerConfig,
               "logger": LoggerConfig}
    if parent == "method":
        entry = METHODS.get(chosen_option("method", overrides) or "")
        schema = entry.config if entry is not None else None
    else:
        schema = schemas.get(parent)
    return sorted(f.name for f in dataclasses.fields(schema)) if schema is not None else []


def check_builtin_clashes(args: list[str]) -> None:
    """A user's config file (--config-dir) named like one of ltune's own options of the same group
    would be silently ignored (Hydra finds ltune's first): one line instead."""
    extra_dirs = extra_config_dirs(args)
    if not extra_dirs:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    chosen: dict[str, set[str]] = {}
    for override in OverridesParser.create().parse_overrides(override_args(args)):
        group = override.key_or_group.lstrip("+~")
        if group in GROUPS:
            values = override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
            chosen.setdefault(group, set()).update(str(v) for v in values if v is not None)
    for group in GROUPS:
        options = chosen.get(group) or {chosen_option(group, [])} - {None}
        for option in sorted(options):
            ours = CONF_DIR / group / f"{option}.yaml"
            for folder in extra_dirs:
                theirs = folder / group / f"{option}.yaml"
                if theirs.is_file() and ours.is_file():
                    raise LtuneError(
                        f"{theirs} has the name of ltune's own {group} config '{option}', which Hydra would use "
                        f"instead of yours; rename your file (e.g. {folder / group / f'my_{option}.yaml'}) and give "
                        f"{group}=my_{option}")


def differing_settings(saved: dict, wanted: dict, skip=(), prefix: str = "") -> list[str]:
    """The dotted keys on which two resolved configs disagree, among the keys both have (a key only
    one side has was added or removed by a later ltune version; the saved run's own config decides
    its value). ``skip`` holds dotted keys (e.g. ``trainer.num_threads``) never compared."""
    found = []
    for key in sorted(saved.keys() & wanted.keys(), key=str):
        path = f"{prefix}{key}"
        if path in skip:
            continue
        if isinstance(saved[key], dict) and isinstance(wanted[key], dict):
            found += differing_settings(saved[key], wanted[key], skip, f"{path}.")
        elif saved[key] != wanted[key]:
            found.append(path)
    return found


def same_settings(saved: dict, wanted: dict, skip=()) -> bool:
    """Whether two resolved configs agree on every key both have (see differing_settings)."""
    return not differing_settings(saved, wanted, skip)


def validate_data(data_cfg) -> None:
    """The data schema's checks on a data config alone (``ltune eval data=``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ltune.checks import one_line
    from ltune.config.schema import DataConfig

    try:
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), data_cfg))
    except OmegaConfBaseException as err:
        raise LtuneError(one_line(err)) from None


def validate(cfg) -> None:
    """Every range check of the schema on a composed config (one line on failure)."""
    from ltune.config.schema import validate as validate_schema

    validate_schema(cfg)


def load_run_config(path: Path):
    """A run's saved config.yaml, merged onto the schema (a run saved before a key existed gets
    the key's default)."""
    from omegaconf import OmegaConf

    return onto_schema(OmegaConf.load(path))


def onto_schema(saved):
    """A run config (loaded or built as plain keys) merged onto the schema's dataclasses: typed, with the
    defaults of keys it lacks, and its checks runnable (``validate``)."""
    from omegaconf import OmegaConf

    from ltune.config.schema import RunConfig
    from ltune.methods import METHODS

    schema = OmegaConf.structured(RunConfig)
    method = saved.get("method", {}).get("name")
    if method in METHODS:
        schema.method = OmegaConf.structured(METHODS[method].config)
    for key in ("trainer", "logger", "model", "data"):
        if key in saved:
            OmegaConf.set_struct(saved[key], False)
    merged = OmegaConf.merge(schema, saved)
    return merged
