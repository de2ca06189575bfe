"""The conditions a run trained under besides its config, and whether two arms of a comparison share them.

A config fixes the protocol (model, data, method, budget, precision asked for); it does not fix the
machine. The same config on another machine kind, another precision path (bf16 native or emulated),
other versions of torch, transformers or peft, or another number of CPU threads sums floating-point
numbers in another order, and over a training run that moves the result (this project's two
executions of one table moved a cell's mean from 0.586 to 0.670). So the arms of a comparison must
match in these too. Each run's conditions come from its metrics.json (``environment``); runs written
before a condition was recorded show it as 'not recorded', which matches only itself.

A *stratum* is one combination of conditions. Two arms whose runs share no stratum are confounded
with what differs; arms that share some are compared within the shared strata (pairs.py).
"""

from __future__ import annotations

from collections import Counter

#: The conditions, in the order a report names them.
CONDITIONS = ("machine", "precision", "torch", "transformers", "peft", "threads")
NOT_RECORDED = "not recorded"


CONDITIONS_TEXT = (
    "Run conditions: besides the config, each run records the machine it trained on (the GPU, or the CPU model "
    "and its kernel level), the precision as it ran (bf16 native or emulated), the torch, transformers and peft "
    "versions, and its CPU threads; each changes the order of floating-point sums, and over a training run that "
    "moves results. A pair's arms are tested within the conditions they share: all runs where they all share "
    "one set; the seeds whose two runs share conditions where both sides have the same seeds (6 or more such "
    "pairs); else the runs under the one shared set, or a permutation test stratified by the shared sets. Arms "
    "that share none are 'confounded' with what differs and are not read as above, below or level. The column "
    "'run conditions that differ' lists every condition whose values differ between the arms.")


def machine_kind(run: dict) -> str:
    """The kind of machine a run's arithmetic ran on: the GPU's name on a GPU, else the CPU's model and
    the kernel level torch used on it (AVX2, AVX512, ...)."""
    found = (run.get("environment") or {}).get("machine")
    if not found:
        return NOT_RECORDED
    if found.get("gpu"):
        return str(found["gpu"])
    return f"{found.get('cpu')} ({found.get('cpu_capability')})"


def conditions_of(run: dict) -> dict[str, str]:
    """The run's conditions (CONDITIONS) as texts. Precision says whether bf16 ran on native kernels;
    threads count on a CPU only (a GPU's sums do not depend on them); a run from before threads were
    recorded takes them from its config (trainer.num_threads, 'default' when unset)."""
    env = run.get("environment") or {}
    machine = env.get("machine") or {}
    precision = env.get("precision") or NOT_RECORDED
    if precision == "bf16" and machine:
        precision += " (native)" if machine.get("native_bf16") or machine.get("gpu") else " (emulated)"
    on_cpu = str(env.get("device", "cpu")).startswith("cpu") and not machine.get("gpu")
    threads = env.get("threads", run.get("num_threads", NOT_RECORDED) if env else NOT_RECORDED)
    return {"machine": machine_kind(run), "precision": precision,
            **{name: str(env.get(name) or NOT_RECORDED) for name in ("torch", "transformers", "peft")},
            "threads": ("default" if threads is None else str(threads)) if on_cpu else "–"}


def stratum(run: dict) -> tuple:
    return tuple(conditions_of(run)[name] for name in CONDITIONS)


def stratum_text(key: tuple) -> str:
    shown = dict(zip(CONDITIONS, key))
    return ", ".join(f"{name} {value}" if name != "machine" else value for name, value in shown.items()
                     if value not in ("–",))


def differing(runs_a: list[dict], runs_b: list[dict]) -> dict[str, tuple[list[str], list[str]]]:
    """{condition: (A's values, B's values)} for the conditions whose values differ between the arms
    (either side holding a value the other lacks)."""
    found = {}
    for name in CONDITIONS:
        values_a = sorted({conditions_of(r)[name] for r in runs_a})
        values_b = sorted({conditions_of(r)[name] for r in runs_b})
        if values_a != values_b:
            found[name] = (values_a, values_b)
    return found


def differing_text(found: dict[str, tuple[list[str], list[str]]]) -> str:
    return "; ".join(f"{name}: A {' + '.join(a)} vs B {' + '.join(b)}" for name, (a, b) in found.items())


def confounded_with(runs_a: list[dict], runs_b: list[dict]) -> str | None:
    """None when the arms share a stratum; else the conditions that keep them apart, machine first
    ('the machine', 'the machine and torch', ...)."""
    if {stratum(r) for r in runs_a} & {stratum(r) for r in runs_b}:
        return None
    found = [name for name in CONDITIONS
             if not ({conditions_of(r)[name] for r in runs_a} & {conditions_of(r)[name] for r in runs_b})]
    names = [("the machine" if name == "machine" else name) for name in found] or ["their combination of conditions"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def counts(runs: list[dict]) -> Counter:
    """Runs per stratum."""
    return Counter(stratum(r) for r in runs)


def balance_plan(groups: dict[tuple, list[dict]], target: tuple | None = None) -> tuple[tuple | None, list[str]]:
    """(target stratum, lines) naming, per group, the seeds that did not run in ``target`` and would
    have to run again there for every group to share it. ``target`` defaults to the stratum that holds
    the most runs (ties: the first by name). No lines when every run is in the target already."""
    every = Counter(stratum(r) for runs in groups.values() for r in runs)
    if not every:
        return None, []
    if target is None:
        target = sorted(every.items(), key=lambda item: (-item[1], item[0]))[0][0]
    lines = []
    for key, runs in groups.items():
        missing = sorted(r["seed"] for r in runs if stratum(r) != target)
        if missing:
            name = " / ".join(str(part) for part in key[:3]) + (f" [{key[3]}]" if key[3] else "")
            lines.append(f"{name}: seeds {' '.join(map(str, missing))} ({len(missing)} of {len(runs)})")
    return target, lines
