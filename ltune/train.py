"""One training run as named stages: set up the runtime, build the components (backbone, task,
method), build the loaders and the optimisation, train (one step at a time, evaluating on the
held-out slice and keeping the best state), then evaluate dev once with the selected parameters
and write the results.

Reads a composed config (conf/config.yaml) and writes into ``run_dir``: metrics.json,
config.yaml (resolved), log.jsonl (per step) and trainable.safetensors (the selected
trainable parameters only). ``TrainState`` is everything a checkpoint holds, so a resumed run
ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import platform
import signal
import threading
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

import ltune
from ltune import run_files
from ltune.backbone import forget, load_backbone
from ltune.data import Task, load_task
from ltune.data.label_texts import label_texts_of
from ltune.data.batching import LengthGroupedBatches
from ltune.data.collate import ClassificationCollator, PairCollator, TokenizedExamples, evaluation_loader
from ltune.errors import LtuneError
from ltune.evaluation import (Predictions, autocast, evaluate, near_tie_warning, near_tied_pairs, predict_scores, score,
                              tie_warning, tied_label_groups)
from ltune.loggers import NoLogger, make_logger
from ltune.methods import build_method
from ltune.methods.base import TuningMethod
from ltune.runtime import (bf16_products, build_optimizer, compile_backbone, is_main_process, machine, native_bf16,
                           peak_memory_mb, pick_device, place, restore_rng_states, rng_states, seed_everything,
                           stack_versions)


# -- stages ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Runtime:
    accelerator: Accelerator
    device: torch.device
    main: bool  # this process writes the run folder
    parallel: bool  # data parallel over several processes
    precision: str
    started: float
    #: Training wall-clock of the processes before a resume (from the checkpoint): the run's total
    #: counts it (their set-up and the steps redone after the checkpoint are not counted).
    before_resume: float = 0.0


def set_up_runtime(cfg: DictConfig) -> Runtime:
    started = time.perf_counter()
    seed_everything(cfg.seed)
    # Under torchrun / accelerate launch, accelerate joins the process group (gloo on CPU, NCCL on
    # GPU), wraps the method in DistributedDataParallel and shards the data; a plain run is one process.
    accelerator = Accelerator(cpu=pick_device(cfg.trainer.device).type == "cpu")
    if cfg.trainer.get("num_threads"):
        torch.set_num_threads(int(cfg.trainer.num_threads))  # parallel local jobs: threads = cores / jobs
    main, precision = is_main_process(), str(cfg.trainer.precision)
    if precision == "bf16" and main and not native_bf16(accelerator.device):
        print(f"ltune: note: trainer.precision=bf16 on a {accelerator.device.type} without native bf16 kernels: its "
              f"matrix products run as fp32 products of the bf16 values, rounded to bf16 (the arithmetic of a native "
              f"kernel, at about fp32's speed; torch's own emulation is 15-45x slower)", flush=True)
    return Runtime(accelerator, accelerator.device, main, accelerator.num_processes > 1, precision, started)


@dataclasses.dataclass
class Components:
    backbone: object
    task: Task
    method: TuningMethod


def build_components(cfg: DictConfig, runtime: Runtime) -> Components:
    backbone = load_backbone(cfg.model, runtime.device, reuse=True)
    task = load_task(cfg.data, cfg.seed)
    task.label_texts = label_texts_of(cfg.data, backbone.tokenizer)  # by data.label_text_kind
    unseen = unseen_dev_labels(task)
    if unseen and runtime.main:
        print(f"ltune: warning: dev labels never seen in training: "
              + ", ".join(f"'{name}' ({count} of {len(task.dev)} dev texts)" for name, count in unseen.items())
              + f"; the run cannot learn them, so its dev figures count them as errors. Check the splits of "
              f"data={cfg.data.name} (or data.max_train_samples)", flush=True)
    if not backbone.placed:
        backbone.to(runtime.device)  # first: the L-methods encode their label texts where the backbone lives
    # Loading (or reusing) the backbone may draw random numbers: the method starts from the seed alone.
    seed_everything(cfg.seed)
    method = place(build_method(cfg.method, backbone, task.label_texts), runtime.device)
    for line in method.start_warnings() if runtime.main else []:
        print(line, flush=True)
    if method.modifies_backbone or cfg.trainer.compile:
        forget(backbone)  # the next run in this process loads a fresh one
    if cfg.trainer.compile:
        compile_backbone(backbone)
    return Components(backbone, task, method)


def unseen_dev_labels(task: Task) -> dict[str, int]:
    """Dev labels that no training example has: {label name: its count in dev}."""
    import collections

    seen = {e.label for e in task.train}
    counts = collections.Counter(e.label for e in task.dev if e.label not in seen)
    return {task.label_names[label]: counts[label] for label in sorted(counts)}


@dataclasses.dataclass
class Loaders:
    train: DataLoader
    heldout: DataLoader
    dev: DataLoader
    #: The random sources of the training order and of the L-methods' pairs (saved in checkpoints).
    order: torch.Generator
    pairs: torch.Generator
    #: accelerate's gather_for_metrics in a data-parallel run (None otherwise).
    gather: object = None


def build_loaders(cfg: DictConfig, components: Components, runtime: Runtime) -> tuple[Loaders, torch.nn.Module]:
    """Training texts are tokenised once; pairs are drawn per batch. Returns the loaders and the
    module a training step calls (the method, or its DistributedDataParallel wrapper)."""
    backbone, task, method = components.backbone, components.task, components.method
    order = torch.Generator().manual_seed(cfg.seed)
    pairs = torch.Generator().manual_seed(cfg.seed + 1)
    train_collate = PairCollator(backbone, task.num_labels, pairs) if method.pair_training else ClassificationCollator(backbone)
    examples = TokenizedExamples(task.train, backbone)
    if cfg.trainer.group_by_length:
        batches = LengthGroupedBatches(examples.lengths(), cfg.trainer.batch_size, order,
                                       processes=runtime.accelerator.num_processes)
        train = DataLoader(examples, batch_sampler=batches, collate_fn=train_collate)
    else:
        train = DataLoader(examples, batch_size=cfg.trainer.batch_size, shuffle=True, generator=order,
                           collate_fn=train_collate)
    heldout = evaluation_loader(task.heldout, backbone, cfg.trainer.eval_batch_size)
    dev = evaluation_loader(task.dev, backbone, cfg.trainer.eval_batch_size)
    if not runtime.parallel:
        return Loaders(train, heldout, dev, order, pairs), method
    # Data parallel: each process gets its share of every global batch (trainer.batch_size per
    # process) and of the evaluation sets; gather_for_metrics puts the evaluations back together.
    accelerator = runtime.accelerator
    model = accelerator.prepare_model(method)
    train, heldout, dev = (accelerator.prepare_data_loader(loader) for loader in (train, heldout, dev))
    return Loaders(train, heldout, dev, order, pairs, accelerator.gather_for_metrics), model


@dataclasses.dataclass
class Optimisation:
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: object
    total_steps: int


def build_optimisation(cfg: DictConfig, method: TuningMethod, loaders: Loaders) -> Optimisation:
    """AdamW over the method's maps and head only (in the method's groups), with linear warm-up and decay."""
    groups = method.optimizer_groups(float(cfg.trainer.lr))
    params = [p for group in groups for p in group["params"]]
    total_steps = cfg.trainer.epochs * len(loaders.train) if cfg.trainer.epochs else cfg.trainer.max_steps
    optimizer = build_optimizer(groups, float(cfg.trainer.lr), cfg.trainer.weight_decay,
                                cfg.trainer.get("fused_optimizer", "auto"))
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(cfg.trainer.warmup_ratio * total_steps),
                                                total_steps)
    return Optimisation(params, optimizer, scheduler, total_steps)


# -- the training state ---------------------------------------------------------------------

@dataclasses.dataclass
class TrainState:
    """Where a run is: the step, the position in the data, the random sources at the epoch's
    start, the running timings and the best held-out evaluation so far (with its parameters)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    step_seconds: float = 0.0
    heldout_seconds: float = 0.0
    samples: int = 0
    tokens: int = 0  # real text tokens of the training batches
    padded_tokens: int = 0  # processed text positions (batch size x longest text, summed)
    elapsed: float = 0.0
    evaluations_without_gain: int = 0  # since the best held-out evaluation (early stopping)
    stop_reason: str | None = None
    best: dict = dataclasses.field(
        default_factory=lambda: {"step": 0, "score": float("-inf"), "state": None, "seconds": 0.0, "metrics": None})
    epoch_start_rng: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def fresh(cls, loaders: Loaders) -> "TrainState":
        return cls(epoch_start_rng={"loader": loaders.order.get_state(), "pairs": loaders.pairs.get_state()})

    def save(self, path: Path, method: TuningMethod, optimisation: Optimisation, elapsed: float) -> None:
        """A checkpoint: trainable parameters, optimizer, scheduler, this state and every RNG."""
        run_files.save_checkpoint(path, {
            "trainable": method.trainable_state_dict(),
            "optimizer": optimisation.optimizer.state_dict(),
            "scheduler": optimisation.scheduler.state_dict(),
            "state": {**dataclasses.asdict(self), "elapsed": elapsed},
            "rng": rng_states(),
        })

    @classmethod
    def restore(cls, path: Path, method: TuningMethod, optimisation: Optimisation) -> tuple["TrainState", dict]:
        """The state of a checkpoint, with the method and optimisation loaded from it; and the
        process RNG states to restore once the data position has been skipped to."""
        saved = run_files.load_checkpoint(path)
        method.load_trainable_state_dict(saved["trainable"])
        optimisation.optimizer.load_state_dict(saved["optimizer"])
        optimisation.scheduler.load_state_dict(saved["scheduler"])
        fields = {f.name for f in dataclasses.fields(cls)}
        best = saved["state"].get("best", {})
        if "score" not in best and "accuracy" in best:  # a checkpoint written before trainer.select_on
            best["score"] = best.pop("accuracy")
        return cls(**{k: v for k, v in saved["state"].items() if k in fields}), saved["rng"]

    def start_epoch(self, loaders: Loaders):
        """An iterator over this epoch's remaining batches. The loader draws its order (and the
        collator its pairs) from generators restored to the epoch's start; the batches already
        seen are skipped, so a resumed run sees exactly the batches an uninterrupted one would."""
        loaders.order.set_state(self.epoch_start_rng["loader"])
        loaders.pairs.set_state(self.epoch_start_rng["pairs"])
        batches = iter(loaders.train)
        for _ in range(self.batch_in_epoch):
            next(batches)
        return batches

    def end_epoch(self, loaders: Loaders) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_start_rng = {"loader": loaders.order.get_state(), "pairs": loaders.pairs.get_state()}


# -- one step, one evaluation ---------------------------------------------------------------

def train_step(model, batch: dict, runtime: Runtime, optimisation: Optimisation, grad_clip: float,
               on_bad_loss) -> torch.Tensor:
    """Forward, backward and update on one batch; returns the loss (detached). A loss that is not
    finite is never applied: ``on_bad_loss(value)`` gives the error to raise instead."""
    with autocast(runtime.device, runtime.precision):
        loss = model(batch)
    if not torch.isfinite(loss):
        raise on_bad_loss(loss.item())
    with bf16_products(runtime.device, runtime.precision):
        runtime.accelerator.backward(loss)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(optimisation.params, grad_clip)
    optimisation.optimizer.step()
    optimisation.scheduler.step()
    optimisation.optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def evaluate_and_select(components: Components, loaders: Loaders, runtime: Runtime, state: TrainState,
                        clock_start: float, select_on: str = "accuracy", min_delta: float = 0.0) -> dict:
    """Evaluate on the held-out slice; keep the parameters if their ``select_on`` metric is the
    best so far, and count the evaluations since its last gain of more than ``min_delta`` (early
    stopping)."""
    tick = time.perf_counter()
    heldout = evaluate(components.method, loaders.heldout, runtime.device, components.task.metrics, "held-out",
                       runtime.precision, loaders.gather)
    state.heldout_seconds += time.perf_counter() - tick
    if heldout[select_on] > state.best["score"] + min_delta:
        state.evaluations_without_gain = 0
    else:
        state.evaluations_without_gain += 1
    if heldout[select_on] > state.best["score"]:
        state.best = {
            "step": state.step,
            "score": heldout[select_on],
            "metrics": heldout,
            "state": copy.deepcopy(components.method.trainable_state_dict()),
            "seconds": time.perf_counter() - clock_start,
        }
    return heldout


@contextlib.contextmanager
def ctrl_c_finishes_the_step():
    """Ctrl-C (SIGINT), or SIGTERM as SLURM and most schedulers send it, records the signal (the step in
    flight finishes, then the loop checkpoints and exits 130, or 143 for SIGTERM)."""
    interrupted = []
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda signum, _frame: interrupted.append(signum))
    try:
        yield interrupted
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def exit_code(interrupted: list) -> int:
    """128 + the first signal that interrupted the run: 130 for Ctrl-C, 143 for SIGTERM."""
    first = next((s for s in interrupted if isinstance(s, int) and not isinstance(s, bool)), signal.SIGINT)
    return 128 + int(first)


def signal_name(interrupted: list) -> str:
    return "SIGTERM" if signal.SIGTERM in interrupted else "Ctrl-C"


# -- the loop -------------------------------------------------------------------------------

@dataclasses.dataclass
class Loop:
    """What the training loop works with (built by the stages above)."""

    cfg: DictConfig
    run_dir: Path
    runtime: Runtime
    components: Components
    loaders: Loaders
    model: torch.nn.Module
    optimisation: Optimisation
    state: TrainState
    log: object
    tracker: object
    #: Set by Ctrl-C (SIGINT) anywhere in the run: the step in flight finishes, then a checkpoint.
    interrupted: list = dataclasses.field(default_factory=list)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / run_files.CHECKPOINT

    def bad_loss(self, value: float) -> LtuneError:
        kept = f"; the checkpoint of step {self.state.step} is kept" if self.checkpoint_path.exists() else ""
        return LtuneError(f"the training loss became {value} at step {self.state.step + 1}; lower trainer.lr "
                          f"(now {self.cfg.trainer.lr}) or check the data{kept}")

    def save_checkpoint(self, clock_start: float) -> None:
        if self.runtime.main:
            self.state.save(self.checkpoint_path, self.components.method, self.optimisation,
                            time.perf_counter() - clock_start)


def set_training_mode(loop: Loop) -> None:
    """The method's maps in training mode; the frozen model too, unless trainer.backbone_dropout=false
    keeps it as at evaluation (no dropout)."""
    loop.components.method.train()
    if not loop.cfg.trainer.get("backbone_dropout", True):
        loop.components.backbone.model.eval()


def run_training(loop: Loop, pending_rng: dict | None) -> float:
    """Train until the step budget is spent; returns the training wall-clock seconds."""
    state, total = loop.state, loop.optimisation.total_steps
    clock_start = time.perf_counter() - state.elapsed
    set_training_mode(loop)
    progress = tqdm(total=total, initial=state.step, desc="train", dynamic_ncols=True, disable=not loop.runtime.main)
    try:
        interrupted = loop.interrupted
        while state.step < total and state.stop_reason is None:
            batches = state.start_epoch(loop.loaders)
            if pending_rng is not None:
                restore_rng_states(pending_rng)  # dropout masks continue as they would have
                pending_rng = None
            for batch in batches:
                if after_step(loop, train_one(loop, batch), clock_start, progress, interrupted):
                    break
            else:  # the epoch ended: the next one starts from the generators' current states
                state.end_epoch(loop.loaders)
    finally:
        progress.close()
        if loop.log is not None:
            loop.log.close()
    return time.perf_counter() - clock_start


def train_one(loop: Loop, batch: dict) -> dict:
    """One optimizer step on ``batch``; returns the step's log record."""
    state, runtime = loop.state, loop.runtime
    tick = time.perf_counter()
    batch = {k: v.to(runtime.device) for k, v in batch.items()}
    loss = train_step(loop.model, batch, runtime, loop.optimisation, loop.cfg.trainer.grad_clip, loop.bad_loss)
    state.step += 1
    state.batch_in_epoch += 1
    state.step_seconds += time.perf_counter() - tick
    reads = loop.components.method.reads_per_training_row()  # what the model read, not the batch's rows
    state.samples += batch["input_ids"].shape[0] * reads
    state.tokens += int(batch["attention_mask"].sum()) * reads
    state.padded_tokens += batch["attention_mask"].numel() * reads
    logged = runtime.accelerator.reduce(loss, "mean") if runtime.parallel else loss
    return {"step": state.step, "loss": logged.item(),  # the global batch's loss in a data-parallel run
            "lr": loop.optimisation.scheduler.get_last_lr()[-1]}  # the head's: method.lr, whatever map_lr_scale is


def after_step(loop: Loop, record: dict, clock_start: float, progress, interrupted: list) -> bool:
    """Evaluate, log and checkpoint as scheduled after a step; True when training is over."""
    state, total, cfg = loop.state, loop.optimisation.total_steps, loop.cfg
    record["elapsed"] = time.perf_counter() - clock_start
    progress.update(1)
    progress.set_postfix(loss=f"{record['loss']:.4f}")
    if state.step % cfg.trainer.eval_every == 0 or state.step == total:
        select_on = cfg.trainer.select_on
        record["heldout"] = evaluate_and_select(loop.components, loop.loaders, loop.runtime, state, clock_start,
                                                select_on, cfg.trainer.min_delta)
        if loop.runtime.main:
            progress.write(f"step {state.step}: loss {record['loss']:.4f}, held-out {select_on} "
                           f"{record['heldout'][select_on]:.4f} (best {state.best['score']:.4f} at step "
                           f"{state.best['step']})")
        if (cfg.trainer.patience and state.evaluations_without_gain >= cfg.trainer.patience
                and cfg.trainer.min_steps <= state.step < total):
            state.stop_reason = "early_stopping"
            if loop.runtime.main:
                progress.write(f"ltune: early stopping at step {state.step}: no held-out gain in "
                               f"{state.evaluations_without_gain} evaluations (best at step {state.best['step']})")
    if loop.runtime.main:
        loop.log.write(record)
        loop.tracker.log(record, state.step)
    if state.stop_reason is not None:
        return True
    every = cfg.trainer.get("checkpoint_every") or cfg.trainer.eval_every
    if state.step % every == 0 and state.step < total:
        loop.save_checkpoint(clock_start)
    if interrupted and state.step < total:
        loop.save_checkpoint(clock_start)
        if loop.runtime.main:
            progress.write(f"ltune: interrupted ({signal_name(interrupted)}) at step {state.step}; checkpoint saved. "
                           f"Resume: ltune train resume={loop.run_dir}")
        raise SystemExit(exit_code(interrupted))
    return state.step >= total


# -- results --------------------------------------------------------------------------------

def write_results(loop: Loop, train_seconds: float, extra: dict | None = None) -> dict:
    """Evaluate dev once with the parameters selected on held-out; write the run's files (``extra``: more
    fields for metrics.json, e.g. a packed run's ``packed_with``)."""
    cfg, runtime, state, components = loop.cfg, loop.runtime, loop.state, loop.components
    method, task, best = components.method, components.task, loop.state.best
    method.load_trainable_state_dict(best["state"])
    tick = time.perf_counter()
    predictions = predict_scores(method, loop.loaders.dev, runtime.device, "dev", runtime.precision, loop.loaders.gather)
    dev = score(method, predictions, task.metrics)
    eval_seconds = time.perf_counter() - tick
    if not runtime.main:
        return {"dev": dev, "selection": {"best_step": best["step"]}}
    tied = tied_label_groups(predictions.scores, method)
    near = near_tied_pairs(predictions.scores, tied)
    for warning in (tie_warning(tied, task.label_names, str(cfg.method.name), len(predictions.labels)),
                    near_tie_warning(near, task.label_names, str(cfg.method.name), len(predictions.labels))):
        if warning:
            print(warning, flush=True)
    run_files.save_parameters(loop.run_dir / run_files.PARAMS, best["state"],
                              {"method": cfg.method.name, "step": str(best["step"])})
    write_predictions(loop.run_dir / run_files.PREDICTIONS, predictions)
    trainable = sum(p.numel() for p in loop.optimisation.params)
    processes = runtime.accelerator.num_processes
    metrics = {
        "method": cfg.method.name, "model": cfg.model.name, "data": cfg.data.name, "seed": cfg.seed,
        "status": "finished",
        "trainable_params": trainable,
        "paper_formula_params": method.paper_trainable_params(),
        "total_params": sum(p.numel() for p in method.parameters()),
        "dev": dev,
        # Labels whose scores tie on every dev text (only the first of each group is ever predicted).
        "tied_labels": [[task.label_names[i] for i in group] for group in tied],
        # Labels whose scores differ by under NEAR_TIE of the scores' spread on every dev text.
        "near_tied_labels": [[task.label_names[i], task.label_names[j]] for i, j, _, _ in near],
        # The label texts the L-methods encoded (data.label_text_kind turns data.label_texts into them).
        "label_text_kind": str(cfg.data.get("label_text_kind", "configured")),
        "label_texts_used": dict(zip(task.label_names, task.label_texts)),
        "dev_labels_unseen_in_training": unseen_dev_labels(task),
        "selection": {"split": "heldout", "metric": cfg.trainer.select_on, "best_step": best["step"],
                      "score": best["score"], "accuracy": best["metrics"]["accuracy"], "metrics": best["metrics"]},
        "stopped": {"step": state.step, "budget_steps": loop.optimisation.total_steps,
                    "reason": state.stop_reason or ("epochs" if cfg.trainer.epochs else "max_steps"),
                    "evaluations_without_gain": state.evaluations_without_gain, "patience": cfg.trainer.patience,
                    "min_steps": cfg.trainer.min_steps},
        "timing": {
            "train_seconds": train_seconds,
            "seconds_per_step": state.step_seconds / state.step,
            "samples_per_second": state.samples * processes / state.step_seconds,  # all processes
            "tokens_per_second": state.tokens * processes / state.step_seconds,
            "padding_efficiency": state.tokens / max(state.padded_tokens, 1),  # real / processed text tokens
            "heldout_eval_seconds": state.heldout_seconds,
            "time_to_best_seconds": best["seconds"],
            "eval_seconds": eval_seconds,
            "eval_seconds_per_example": eval_seconds / max(len(task.dev), 1),
            "total_seconds": time.perf_counter() - runtime.started + runtime.before_resume,
            "seconds_before_resume": runtime.before_resume,
        },
        "peak_memory_mb": peak_memory_mb(runtime.device),
        "steps": state.step,
        "sizes": {"train": len(task.train), "heldout": len(task.heldout), "dev": len(task.dev)},
        "environment": {"device": str(runtime.device), "precision": runtime.precision, "processes": processes,
                        "threads": torch.get_num_threads(), "ltune": ltune.__version__, "torch": torch.__version__,
                        **stack_versions(), "python": platform.python_version(), "machine": machine(runtime.device)},
    }
    metrics.update(extra or {})
    run_files.write_json(loop.run_dir / run_files.METRICS, metrics)
    loop.checkpoint_path.unlink(missing_ok=True)  # finished: the selected parameters are in trainable.safetensors
    loop.tracker.summary({k: metrics[k] for k in ("dev", "selection", "timing", "trainable_params", "total_params",
                                                  "peak_memory_mb")})
    return metrics


def write_predictions(path: Path, predictions: Predictions) -> None:
    """Per dev example: its id in the split, gold label, predicted label and every label's score
    (for paired comparisons between runs on the same examples)."""
    order = predictions.ids.argsort()
    lines = []
    for i in order.tolist():
        row = predictions.scores[i]
        lines.append(json.dumps({"id": int(predictions.ids[i]), "label": int(predictions.labels[i]),
                                 "prediction": int(row.argmax()), "scores": [round(float(x), 6) for x in row]}))
    run_files.write_text(path, "\n".join(lines) + "\n")


# -- the run --------------------------------------------------------------------------------

def train(cfg: DictConfig, run_dir: Path, group: str | None = None, resume: bool = False) -> dict:
    """Train one run into ``run_dir``; ``group`` names the sweep it belongs to (for trackers).
    With ``resume``, continue from ``run_dir``'s checkpoint. ``cfg`` has been validated (the
    commands check it against the schema before anything runs).

    Ctrl-C anywhere in the run (loading, encoding label texts, held-out or dev evaluation) never
    raises inside it: during training the step in flight finishes, a checkpoint is saved and the
    run exits 130; during the final dev evaluation the run finishes writing its results, then
    exits 130 (a sweep stops there; run again, it skips the finished job)."""
    with ctrl_c_finishes_the_step() as interrupted:
        metrics = _train(cfg, run_dir, group, resume, interrupted)
    if interrupted:
        if is_main_process():
            print(f"ltune: interrupted ({signal_name(interrupted)}); the run had finished training and its results "
                  f"are written to {run_dir}",
                  flush=True)
        raise SystemExit(exit_code(interrupted))
    return metrics


def _train(cfg: DictConfig, run_dir: Path, group: str | None, resume: bool, interrupted: list) -> dict:
    main = is_main_process()
    if not main:
        return _run(cfg, run_dir, NoLogger(), resume, interrupted)
    prepare_run_dir(run_dir)
    with run_files.RunLock(run_dir):  # a second process on this folder stops with one line
        if not resume and (run_dir / run_files.CHECKPOINT).exists():
            raise LtuneError(f"run folder {run_dir} holds an unfinished run; continue it with resume={run_dir}")
        tracker = make_logger(cfg, run_dir, group)
        failed = True
        try:
            metrics = _run(cfg, run_dir, tracker, resume, interrupted)
            failed = False
            return metrics
        finally:
            tracker.finish(failed=failed)


def _run(cfg: DictConfig, run_dir: Path, tracker, resume: bool, interrupted: list | None = None) -> dict:
    runtime = set_up_runtime(cfg)
    components = build_components(cfg, runtime)
    if runtime.main and not resume:
        run_files.write_text(run_dir / run_files.CONFIG, OmegaConf.to_yaml(cfg, resolve=True))
    loaders, model = build_loaders(cfg, components, runtime)
    optimisation = build_optimisation(cfg, components.method, loaders)
    announce(cfg, runtime, components, optimisation)
    state, pending_rng = TrainState.fresh(loaders), None
    if resume:
        state, pending_rng = TrainState.restore(run_dir / run_files.CHECKPOINT, components.method, optimisation)
        runtime.before_resume = state.elapsed
        if runtime.main:
            run_files.truncate_log(run_dir / run_files.LOG, state.step)
            print(f"ltune: resuming {run_dir} at step {state.step}", flush=True)
    log = run_files.JsonlLog(run_dir / run_files.LOG) if runtime.main else None
    loop = Loop(cfg, run_dir, runtime, components, loaders, model, optimisation, state, log, tracker,
                interrupted if interrupted is not None else [])
    train_seconds = run_training(loop, pending_rng)
    return write_results(loop, train_seconds)


def announce(cfg: DictConfig, runtime: Runtime, components: Components, optimisation: Optimisation) -> None:
    if not runtime.main:
        return
    task, method = components.task, components.method
    trainable = sum(p.numel() for p in optimisation.params)
    total = sum(p.numel() for p in method.parameters())
    processes = runtime.accelerator.num_processes
    print(f"ltune: {cfg.method.name} on {cfg.model.name} / {cfg.data.name}: {len(task.train)} train, "
          f"{len(task.heldout)} held-out, {len(task.dev)} dev texts; {trainable:,} trainable of {total:,} "
          f"parameters; {optimisation.total_steps} steps on {runtime.device}"
          + (f" x {processes} processes" if runtime.parallel else ""), flush=True)
    note = heldout_note(len(task.train), len(task.heldout), cfg.trainer.eval_every, optimisation.total_steps,
                        cfg.trainer.batch_size)
    if note:
        print(note, flush=True)


def heldout_note(train: int, heldout: int, eval_every: int, steps: int, batch_size: int) -> str | None:
    """A note when the held-out slice outweighs the training it selects on: more held-out texts than training
    texts, so every evaluation reads more texts than the steps between two of them (data.max_train_samples
    caps the training texts, not the held-out slice)."""
    between = min(eval_every, steps) * batch_size
    if heldout <= train or heldout <= between:
        return None
    return (f"ltune: note: {heldout} held-out texts for {train} training texts: each held-out evaluation reads "
            f"{heldout} texts, the {min(eval_every, steps)} steps between two read {between}; data.max_heldout_samples="
            f"{max(train, 1)} holds out as many as it trains on (the learning curve's sizes do: ltune/conf/train_size)")


def prepare_run_dir(run_dir: Path) -> None:
    if (run_dir / run_files.METRICS).exists():
        raise LtuneError(f"run folder {run_dir} already holds a finished run; it is never overwritten")
    run_dir.mkdir(parents=True, exist_ok=True)
