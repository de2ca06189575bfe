"""Packed training: several runs of one method through one frozen model, in lockstep (``hydra.sweeper.pack``).

Every method here trains a few small maps on a frozen model, so R runs that differ in their seed,
learning rate or another per-run option can share one copy of the model and one forward pass a step:

- each run draws its own batch (its own data order and negatives, from its own seeded generators) and
  computes its own prefix or prompt with its own parameters;
- the frozen model reads the R batches stacked along the batch dimension once (``Backbone.encode``:
  texts padded to the longest, each row with its own prefix or prompt);
- each run's loss reads its own rows of the pooled output, and one backward over the sum of the losses
  gives each run the gradient of its own loss (the runs share no parameter); each run then clips and
  steps its own optimizer and scheduler;
- held-out evaluation, early stopping, logs, checkpoints and results are each run's own, through the
  same code as a run trained alone (``ltune.train``): a run that stops leaves the pack, which shrinks,
  and a killed pack resumes each run from its own checkpoint.

How a method's single model call is shared: each run's training step runs twice, first up to its call
of ``Backbone.encode`` (which records the arguments and stops the step), then, after one call over
every run's stacked arguments, again with that call returning the run's own rows. The maps before the
call are a few small products; the model's forward, which is nearly all of a step, runs once.

A packed run is the run trained alone but for the order of floating-point sums (other padding, other
batch shapes), provided the frozen model runs without dropout (``trainer.backbone_dropout=false``: one
forward over several runs' texts cannot give each run its own dropout stream). What packs: prefix,
prompt, L-prefix and L-prompt; peft's prompt tuning and LoRA change the model itself and do not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ltune import run_files
from ltune.errors import LtuneError

#: The methods whose runs share one frozen model's forward.
PACKABLE = ("prefix", "prompt", "l_prefix", "l_prompt")
#: What the runs of a pack may differ in: what each run draws, learns at, stops at and writes; the
#: model, the data, the method's shapes and the precision are the pack's.
PER_RUN = ("seed", "run_name", "resume", "output_root", "logger", "pack", "trainer.lr", "trainer.weight_decay",
           "trainer.warmup_ratio", "trainer.grad_clip", "trainer.max_steps", "trainer.epochs", "trainer.eval_every",
           "trainer.patience", "trainer.min_delta", "trainer.min_steps", "trainer.select_on", "trainer.checkpoint_every",
           "method.lr", "method.lr_search", "method.map_lr_scale", "method.objective", "method.init", "method.init_text")


def flat(cfg) -> dict:
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                walk(value, f"{name}.")
            else:
                out[name] = value

    walk(OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg, "")
    return out


def check_packable(cfgs: list) -> None:
    """One line when the runs cannot share a frozen model's forward: another method or model, other data,
    shapes or precision, a method that changes the model, or dropout inside the frozen model."""
    first = flat(cfgs[0])
    method = str(first.get("method.name"))
    if method not in PACKABLE:
        raise LtuneError(f"method={method} cannot be packed (it changes the frozen model itself); packs take "
                         f"{', '.join(PACKABLE)}: set hydra.sweeper.pack=1 for it")
    if first.get("trainer.backbone_dropout", True):
        raise LtuneError("packed runs need trainer.backbone_dropout=false: one forward over several runs' texts cannot "
                         "give each run its own dropout stream, so a packed run would differ from the run alone")
    for cfg in cfgs[1:]:
        other = flat(cfg)
        apart = sorted(k for k in first.keys() | other.keys()
                       if first.get(k) != other.get(k) and not any(k == p or k.startswith(p + ".") for p in PER_RUN))
        if apart:
            raise LtuneError(f"runs {cfgs[0].run_name} and {cfg.run_name} cannot share one frozen model's forward: they "
                             f"differ in {', '.join(apart[:6])}; a pack's runs differ only in "
                             f"{', '.join(p for p in PER_RUN if p not in ('run_name', 'resume', 'output_root', 'logger', 'pack'))}")


class _Recorded(Exception):
    """Raised by the recording encode: the run's step stops at its model call."""


_ENCODE_SIGNATURE = None


def _bound(args, kwargs) -> dict:
    global _ENCODE_SIGNATURE
    from ltune.backbone.encoding import Backbone

    if _ENCODE_SIGNATURE is None:
        _ENCODE_SIGNATURE = inspect.signature(Backbone.encode)
    bound = _ENCODE_SIGNATURE.bind(None, *args, **kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k != "self"}


@contextlib.contextmanager
def encode_replaced(backbone, function):
    backbone.encode = function  # an instance attribute: the method's self.backbone.encode(...) calls it
    try:
        yield
    finally:
        del backbone.encode


def recorded_call(backbone, model, batch: dict) -> dict:
    """The arguments of the model call a run's training step makes (the step stops there)."""
    found = {}

    def record(*args, **kwargs):
        if found:
            raise LtuneError("a packed method called the frozen model twice in one step; pack it with pack=1")
        found.update(_bound(args, kwargs))
        raise _Recorded

    with encode_replaced(backbone, record):
        try:
            model(batch)
        except _Recorded:
            pass
    if not found:
        raise LtuneError("a packed method's step did not call the frozen model; pack it with pack=1")
    return found


def stacked(calls: list[dict], pad_id: int) -> dict:
    """One call's arguments from every run's: texts right-padded to the longest, rows stacked."""
    longest = max(call["input_ids"].shape[1] for call in calls)

    def pad(tensor, value):
        return torch.nn.functional.pad(tensor, (0, longest - tensor.shape[1]), value=value)

    out = {"input_ids": torch.cat([pad(c["input_ids"], pad_id) for c in calls]),
           "attention_mask": torch.cat([pad(c["attention_mask"], 0) for c in calls])}
    for key, dim in (("token_type_ids", 0), ("prompt", 0), ("prompt_mask", 0), ("prefix_kv", 2), ("prefix_mask", 0)):
        given = [c[key] for c in calls]
        if all(g is None for g in given):
            out[key] = None
        elif any(g is None for g in given):
            raise LtuneError(f"the packed runs give the frozen model different inputs ({key}); pack them with pack=1")
        else:
            out[key] = torch.cat([pad(g, 0) for g in given] if key == "token_type_ids" else given, dim=dim)
    return out


def replayed_loss(backbone, model, batch: dict, pooled: torch.Tensor) -> torch.Tensor:
    """The run's loss, its model call answered by its own rows of the shared call."""
    with encode_replaced(backbone, lambda *args, **kwargs: pooled):
        return model(batch)


def packed_step(loops: list, batches: list[dict]) -> list[torch.Tensor]:
    """One optimizer step of every run in ``loops`` on its own batch, the frozen model read once; returns
    each run's loss (detached). A loss that is not finite stops the pack with that run's line."""
    from ltune.evaluation import autocast
    from ltune.runtime import bf16_products

    runtime = loops[0].runtime
    backbone = loops[0].components.backbone
    with autocast(runtime.device, runtime.precision):
        calls = [recorded_call(backbone, loop.model, batch) for loop, batch in zip(loops, batches)]
        pooled = backbone.encode(**stacked(calls, backbone.pad_token_id))
        rows = [call["input_ids"].shape[0] for call in calls]
        losses = [replayed_loss(backbone, loop.model, batch, part)
                  for loop, batch, part in zip(loops, batches, torch.split(pooled, rows))]
    for loop, loss in zip(loops, losses):
        if not torch.isfinite(loss):
            raise loop.bad_loss(loss.item())
    with bf16_products(runtime.device, runtime.precision):
        torch.stack(losses).sum().backward()
    for loop in loops:
        optimisation = loop.optimisation
        if loop.cfg.trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(optimisation.params, loop.cfg.trainer.grad_clip)
        optimisation.optimizer.step()
        optimisation.scheduler.step()
        optimisation.optimizer.zero_grad(set_to_none=True)
    return [loss.detach() for loss in losses]


class RunProgress:
    """What ``after_step`` writes for one run of a pack: its lines, named by the run (no bar of its own)."""

    def __init__(self, name: str):
        self.name = name

    def update(self, steps: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def write(self, line: str) -> None:
        print(f"[{self.name}] {line}", flush=True)


def batches_of(loop):
    """A run's training batches, epoch after epoch, as ``train.run_training`` walks them."""
    while True:
        for batch in loop.state.start_epoch(loop.loaders):
            yield batch
        loop.state.end_epoch(loop.loaders)


def run_packed(loops: list, interrupted: list) -> list[float]:
    """Train every run of the pack to its end; returns each run's training seconds."""
    from tqdm.auto import tqdm

    from ltune.train import after_step, exit_code, set_training_mode, signal_name

    clocks = [time.perf_counter() - loop.state.elapsed for loop in loops]
    seconds = [0.0] * len(loops)
    streams = [batches_of(loop) for loop in loops]
    progresses = [RunProgress(loop.run_dir.name) for loop in loops]
    active = [i for i, loop in enumerate(loops)
              if loop.state.step < loop.optimisation.total_steps and loop.state.stop_reason is None]
    for loop in loops:
        set_training_mode(loop)
    bar = tqdm(total=max(loop.optimisation.total_steps for loop in loops), desc=f"train (pack of {len(loops)})",
               dynamic_ncols=True, initial=min((loops[i].state.step for i in active), default=0))
    try:
        while active:
            tick = time.perf_counter()
            members = [loops[i] for i in active]
            batches = [{k: v.to(m.runtime.device) for k, v in next(streams[i]).items()} for i, m in zip(active, members)]
            losses = packed_step(members, batches)
            step_seconds = time.perf_counter() - tick
            finished = []
            for i, loop, batch, loss in zip(active, members, batches, losses):
                state = loop.state
                state.step += 1
                state.batch_in_epoch += 1
                state.step_seconds += step_seconds  # the pack's step: what this run's step cost with the others
                reads = loop.components.method.reads_per_training_row()
                state.samples += batch["input_ids"].shape[0] * reads
                state.tokens += int(batch["attention_mask"].sum()) * reads
                state.padded_tokens += batch["attention_mask"].numel() * reads
                record = {"step": state.step, "loss": loss.item(), "lr": loop.optimisation.scheduler.get_last_lr()[-1]}
                if after_step(loop, record, clocks[i], progresses[i], []):
                    finished.append(i)
                    seconds[i] = time.perf_counter() - clocks[i]
                    loop.log.close()
                else:
                    set_training_mode(loop)  # a held-out evaluation ran in between
            bar.update(1)
            active = [i for i in active if i not in finished]
            if interrupted and active:  # Ctrl-C or SIGTERM: every run of the pack keeps its checkpoint
                for i in active:
                    loops[i].save_checkpoint(clocks[i])
                    loops[i].log.close()
                print(f"ltune: interrupted ({signal_name(interrupted)}); checkpoints saved for "
                      f"{', '.join(loops[i].run_dir.name for i in active)}; run the same command again to resume",
                      flush=True)
                raise SystemExit(exit_code(interrupted))
    finally:
        bar.close()
    return seconds


def train_packed(cfgs: list[DictConfig], run_dirs: list[Path], resumes: list[bool], group: str | None,
                 interrupted: list) -> list[dict]:
    """Train the runs of ``cfgs`` (each into its folder, resuming where ``resumes`` says) as one pack;
    returns each run's metrics, as ``train.train`` would have written them alone (plus ``packed_with``)."""
    from ltune.loggers import make_logger
    from ltune.train import (Loop, TrainState, announce, build_components, build_loaders, build_optimisation,
                             prepare_run_dir, set_up_runtime, write_results)

    check_packable(cfgs)
    with contextlib.ExitStack() as stack:
        for run_dir in run_dirs:
            prepare_run_dir(run_dir)
            stack.enter_context(run_files.RunLock(run_dir))
        runtime = set_up_runtime(cfgs[0])
        if runtime.parallel:
            raise LtuneError("packed runs train in one process; run them without torchrun or accelerate launch")
        loops = []
        for cfg, run_dir, resume in zip(cfgs, run_dirs, resumes):
            own = dataclasses.replace(runtime)  # each run's own time before a resume
            tracker = make_logger(cfg, run_dir, group)
            stack.callback(tracker.finish, failed=False)
            components = build_components(cfg, own)
            if not resume:
                run_files.write_text(run_dir / run_files.CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
            loaders, model = build_loaders(cfg, components, own)
            optimisation = build_optimisation(cfg, components.method, loaders)
            announce(cfg, own, components, optimisation)
            state = TrainState.fresh(loaders)
            if resume:
                state, _ = TrainState.restore(run_dir / run_files.CHECKPOINT, components.method, optimisation)
                own.before_resume = state.elapsed
                run_files.truncate_log(run_dir / run_files.LOG, state.step)
                print(f"ltune: resuming {run_dir} at step {state.step}", flush=True)
            log = run_files.JsonlLog(run_dir / run_files.LOG)
            loops.append(Loop(cfg, run_dir, own, components, loaders, model, optimisation, state, log, tracker,
                              interrupted))
        backbones = {id(loop.components.backbone) for loop in loops}
        if len(backbones) != 1:
            raise LtuneError("the packed runs did not get one shared frozen model; pack them with pack=1")
        seconds = run_packed(loops, interrupted)
        names = [str(run_dir) for run_dir in run_dirs]
        return [write_results(loop, seconds[i], {"packed_with": [n for n in names if n != str(loop.run_dir)]})
                for i, loop in enumerate(loops)]


def train_pack(cfgs: list[DictConfig], run_dirs: list[Path], resumes: list[bool], group: str | None = None) -> list[dict]:
    """``train_packed`` with Ctrl-C and SIGTERM finishing the step in flight (every run checkpoints)."""
    from ltune.train import ctrl_c_finishes_the_step, exit_code

    with ctrl_c_finishes_the_step() as interrupted:
        results = train_packed(cfgs, run_dirs, resumes, group, interrupted)
    if interrupted:
        print("ltune: interrupted; the pack had finished training and its results are written", flush=True)
        raise SystemExit(exit_code(interrupted))
    return results
