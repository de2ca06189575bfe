"""One training run, top to bottom: load, train with held-out selection, report dev.

Reads a composed config (conf/config.yaml) and writes into ``run_dir``:
metrics.json, config.yaml (resolved), log.jsonl (per step) and trainable.safetensors
(the selected trainable parameters only).
"""

from __future__ import annotations

import copy
import math
import os
import platform
import random
import resource
import signal
import threading
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from accelerate import Accelerator
from transformers import get_linear_schedule_with_warmup

import ltune
from ltune import run_files
from ltune.backbone import load_backbone
from ltune.data import load_task
from ltune.data.collate import ClassificationCollator, PairCollator, TokenizedExamples
from ltune.errors import LtuneError
from ltune.evaluation import autocast, evaluate
from ltune.loggers import NoLogger, make_logger
from ltune.methods import build_method


def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch (or a plain run) writes the run folder."""
    return int(os.environ.get("RANK", "0")) == 0


def rng_states() -> dict:
    return {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _numpy_state() -> list:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LtuneError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto")
    if name not in ("cpu", "cuda"):
        raise LtuneError(f"unknown trainer.device '{name}'; valid: auto, cpu, cuda")
    return torch.device(name)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def place(method, device: torch.device):
    """Move the method to ``device``; a backbone that from_pretrained placed (device_map,
    4/8-bit weights) stays where it is and only the method's own maps and head move."""
    if not method.backbone.placed:
        return method.to(device)
    for name, child in method.named_children():
        if name != "backbone":
            child.to(device)
    for name, param in list(method.named_parameters(recurse=False)):
        param.data = param.data.to(device)
    for name, buffer in list(method.named_buffers(recurse=False)):
        setattr(method, name, buffer.to(device))
    return method


def check_trainer(cfg) -> None:
    t = cfg.trainer
    for key in ("batch_size", "eval_batch_size", "eval_every"):
        if not isinstance(t[key], int) or t[key] <= 0:
            raise LtuneError(f"trainer.{key} must be a positive integer, got {t[key]!r}")
    if not float(t.lr) > 0:
        raise LtuneError(f"trainer.lr must be positive, got {t.lr!r}")
    if t.precision not in ("fp32", "bf16"):
        raise LtuneError(f"unknown trainer.precision '{t.precision}'; valid: fp32, bf16")
    if not isinstance(t.get("compile", False), bool):
        raise LtuneError(f"trainer.compile must be true or false, got {t.compile!r}")
    if t.get("fused_optimizer", "auto") not in ("auto", True, False):
        raise LtuneError(f"trainer.fused_optimizer must be auto, true or false, got {t.fused_optimizer!r}")
    if t.epochs is None and (not isinstance(t.max_steps, int) or t.max_steps <= 0):
        raise LtuneError(f"trainer.max_steps must be a positive integer (or set trainer.epochs), got {t.max_steps!r}")


def build_optimizer(params: list, lr: float, weight_decay: float, fused="auto") -> torch.optim.AdamW:
    """AdamW over the trainable parameters. ``fused``: True uses torch's single-kernel AdamW (CUDA
    and CPU), False torch's default (multi-tensor on CUDA, a loop over parameters on CPU), "auto"
    the fused kernel when the parameters are on CUDA and the default elsewhere."""
    if fused == "auto":
        fused = all(p.is_cuda for p in params)
    if fused:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def compile_backbone(backbone) -> None:
    """torch.compile the frozen model's forward in place (parameter names and checkpoints are
    unchanged). The first steps of each new input shape pay the compilation."""
    import torch._dynamo

    # Methods run the model with and without a prefix cache, prompts and label batches: allow the
    # recompilations those shapes need instead of silently falling back to eager.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    backbone.model.compile()


def prepare_run_dir(run_dir: Path) -> None:
    if (run_dir / run_files.METRICS).exists():
        raise LtuneError(f"run folder {run_dir} already holds a finished run; it is never overwritten")
    run_dir.mkdir(parents=True, exist_ok=True)


def train(cfg: DictConfig, run_dir: Path, group: str | None = None, resume: bool = False) -> dict:
    """Train one run into ``run_dir``; ``group`` names the sweep it belongs to (for trackers).
    With ``resume``, continue from ``run_dir``'s checkpoint."""
    check_trainer(cfg)
    main = is_main_process()
    if main:
        prepare_run_dir(run_dir)
    tracker = make_logger(cfg, run_dir, group) if main else NoLogger()
    failed = True
    try:
        metrics = _train(cfg, run_dir, tracker, resume)
        failed = False
        return metrics
    finally:
        tracker.finish(failed=failed)


def _train(cfg: DictConfig, run_dir: Path, tracker, resume: bool = False) -> dict:
    started = time.perf_counter()
    seed_everything(cfg.seed)
    # Under torchrun / accelerate launch, accelerate joins the process group (gloo on CPU, NCCL on
    # GPU), wraps the method in DistributedDataParallel and shards the data; a plain run is one process.
    accelerator = Accelerator(cpu=pick_device(cfg.trainer.device).type == "cpu")
    device, main, parallel = accelerator.device, accelerator.is_main_process, accelerator.num_processes > 1
    precision = cfg.trainer.precision
    if cfg.trainer.get("num_threads"):
        torch.set_num_threads(int(cfg.trainer.num_threads))  # parallel local jobs: threads = cores / jobs

    # Model, data, method.
    backbone = load_backbone(cfg.model, device)
    task = load_task(cfg.data, cfg.seed)
    if not backbone.placed:
        backbone.to(device)  # first: the L-methods encode their label texts where the backbone lives
    method = place(build_method(cfg.method, backbone, task.label_texts), device)
    if cfg.trainer.get("compile"):
        compile_backbone(backbone)
    if main and not resume:
        run_files.write_text(run_dir / run_files.CONFIG, OmegaConf.to_yaml(cfg, resolve=True))

    # Data loaders: training texts are tokenised once; pairs are drawn per batch.
    generator = torch.Generator().manual_seed(cfg.seed)
    pair_generator = torch.Generator().manual_seed(cfg.seed + 1)
    if method.pair_training:
        train_collate = PairCollator(backbone, task.num_labels, pair_generator)
    else:
        train_collate = ClassificationCollator(backbone)
    eval_collate = ClassificationCollator(backbone)
    train_loader = DataLoader(
        TokenizedExamples(task.train, backbone),
        batch_size=cfg.trainer.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=train_collate,
    )
    heldout_loader = DataLoader(
        TokenizedExamples(task.heldout, backbone), batch_size=cfg.trainer.eval_batch_size, collate_fn=eval_collate
    )
    dev_loader = DataLoader(
        TokenizedExamples(task.dev, backbone), batch_size=cfg.trainer.eval_batch_size, collate_fn=eval_collate
    )

    # Data parallel: each process gets its share of every global batch (trainer.batch_size per
    # process) and of the evaluation sets; gather_for_metrics puts the evaluations back together.
    model, gather = method, None
    if parallel:
        model = accelerator.prepare_model(method)
        train_loader, heldout_loader, dev_loader = (
            accelerator.prepare_data_loader(loader) for loader in (train_loader, heldout_loader, dev_loader)
        )
        gather = accelerator.gather_for_metrics

    # Optimisation: only the method's maps and head.
    params = [p for p in method.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in method.parameters())
    total_steps = cfg.trainer.epochs * len(train_loader) if cfg.trainer.epochs else cfg.trainer.max_steps
    optimizer = build_optimizer(
        params, float(cfg.trainer.lr), cfg.trainer.weight_decay, cfg.trainer.get("fused_optimizer", "auto")
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(cfg.trainer.warmup_ratio * total_steps), total_steps
    )
    if main:
        print(
            f"ltune: {cfg.method.name} on {cfg.model.name} / {cfg.data.name}: {len(task.train)} train, "
            f"{len(task.heldout)} held-out, {len(task.dev)} dev texts; {trainable:,} trainable of {total:,} "
            f"parameters; {total_steps} steps on {device}"
            + (f" x {accelerator.num_processes} processes" if parallel else ""),
            flush=True,
        )

    # Training state; a checkpoint holds all of it, so a resumed run ends exactly where an
    # uninterrupted one would (same batches, pairs, dropout masks and optimizer state).
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "step_seconds": 0.0, "heldout_seconds": 0.0,
             "samples": 0, "tokens": 0, "elapsed": 0.0,
             "best": {"step": 0, "accuracy": -1.0, "state": None, "seconds": 0.0, "metrics": None},
             "epoch_start_rng": {"loader": generator.get_state(), "pairs": pair_generator.get_state()}}
    checkpoint_path = run_dir / run_files.CHECKPOINT
    if resume:
        saved = run_files.load_checkpoint(checkpoint_path)
        method.load_trainable_state_dict(saved["trainable"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        if main:
            run_files.truncate_log(run_dir / run_files.LOG, state["step"])
            print(f"ltune: resuming {run_dir} at step {state['step']}", flush=True)

    def save_checkpoint() -> None:
        if main:
            run_files.save_checkpoint(checkpoint_path, {
                "trainable": method.trainable_state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "state": {**state, "elapsed": time.perf_counter() - loop_started},
                "rng": rng_states(),
            })

    log = run_files.JsonlLog(run_dir / run_files.LOG) if main else None
    best = state["best"]
    step = state["step"]
    loop_started = time.perf_counter() - state["elapsed"]
    method.train()
    progress = tqdm(total=total_steps, initial=step, desc="train", dynamic_ncols=True, disable=not main)
    every = cfg.trainer.get("checkpoint_every") or cfg.trainer.eval_every
    skip = state["batch_in_epoch"]
    pending_rng = saved["rng"] if resume else None
    # Ctrl-C finishes the step in flight, then saves a consistent checkpoint and exits 130.
    interrupted = []
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True)) if in_main_thread else None
    try:
        while step < total_steps:
            # The loader draws its order (and the collator its pairs) from these generators:
            # restoring them at the epoch start and skipping the batches already seen resumes exactly.
            generator.set_state(state["epoch_start_rng"]["loader"])
            pair_generator.set_state(state["epoch_start_rng"]["pairs"])
            batches = iter(train_loader)
            for _ in range(skip):
                next(batches)
            if pending_rng is not None:
                restore_rng_states(pending_rng)  # dropout masks continue as they would have
                pending_rng = None
            for batch in batches:
                tick = time.perf_counter()
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(device, precision):
                    loss = model(batch)
                if not torch.isfinite(loss):
                    kept = f"; the checkpoint of step {state['step']} is kept" if checkpoint_path.exists() else ""
                    raise LtuneError(
                        f"the training loss became {loss.item()} at step {step + 1}; lower trainer.lr "
                        f"(now {cfg.trainer.lr}) or check the data{kept}"
                    )
                accelerator.backward(loss)
                if cfg.trainer.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.trainer.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                state["step"], state["batch_in_epoch"] = step, state["batch_in_epoch"] + 1
                state["step_seconds"] += time.perf_counter() - tick
                state["samples"] += batch["input_ids"].shape[0]
                state["tokens"] += int(batch["attention_mask"].sum())
                logged_loss = accelerator.reduce(loss.detach(), "mean") if parallel else loss.detach()
                record = {
                    "step": step,
                    "loss": logged_loss.item(),  # the global batch's loss in a data-parallel run
                    "lr": scheduler.get_last_lr()[0],
                    "elapsed": time.perf_counter() - loop_started,
                }
                progress.update(1)
                progress.set_postfix(loss=f"{record['loss']:.4f}")

                if step % cfg.trainer.eval_every == 0 or step == total_steps:
                    tick = time.perf_counter()
                    heldout = evaluate(method, heldout_loader, device, task.metrics, "held-out", precision, gather)
                    state["heldout_seconds"] += time.perf_counter() - tick
                    record["heldout"] = heldout
                    if heldout["accuracy"] > best["accuracy"]:
                        best = {
                            "step": step,
                            "accuracy": heldout["accuracy"],
                            "metrics": heldout,
                            "state": copy.deepcopy(method.trainable_state_dict()),
                            "seconds": time.perf_counter() - loop_started,
                        }
                        state["best"] = best
                    if main:
                        progress.write(
                            f"step {step}: loss {record['loss']:.4f}, held-out accuracy {heldout['accuracy']:.4f} "
                            f"(best {best['accuracy']:.4f} at step {best['step']})"
                        )
                if main:
                    log.write(record)
                    tracker.log(record, step)
                if step % every == 0 and step < total_steps:
                    save_checkpoint()
                if interrupted and step < total_steps:
                    save_checkpoint()
                    if main:
                        progress.write(f"ltune: interrupted at step {step}; checkpoint saved. "
                                       f"Resume: ltune train resume={run_dir}")
                    raise SystemExit(130)
                if step >= total_steps:
                    break
            else:  # the epoch ended: the next one starts from the generators' current states
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
                state["epoch_start_rng"] = {"loader": generator.get_state(), "pairs": pair_generator.get_state()}
            skip = 0
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
        progress.close()
        if log is not None:
            log.close()
    train_seconds = time.perf_counter() - loop_started

    # Report dev with the parameters selected on the held-out slice.
    method.load_trainable_state_dict(best["state"])
    tick = time.perf_counter()
    dev = evaluate(method, dev_loader, device, task.metrics, "dev", precision, gather)
    eval_seconds = time.perf_counter() - tick
    step_seconds, heldout_seconds = state["step_seconds"], state["heldout_seconds"]
    samples, tokens = state["samples"], state["tokens"]
    if not main:
        return {"dev": dev, "selection": {"best_step": best["step"]}}
    run_files.save_parameters(
        run_dir / run_files.PARAMS, best["state"], {"method": cfg.method.name, "step": str(best["step"])}
    )
    metrics = {
        "method": cfg.method.name,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": cfg.seed,
        "status": "finished",
        "trainable_params": trainable,
        "paper_formula_params": method.paper_trainable_params(),
        "total_params": total,
        "dev": dev,
        "selection": {
            "split": "heldout",
            "metric": "accuracy",
            "best_step": best["step"],
            "accuracy": best["accuracy"],
            "metrics": best["metrics"],
        },
        "timing": {
            "train_seconds": train_seconds,
            "seconds_per_step": step_seconds / step,
            "samples_per_second": samples * accelerator.num_processes / step_seconds,  # all processes
            "tokens_per_second": tokens * accelerator.num_processes / step_seconds,
            "heldout_eval_seconds": heldout_seconds,
            "time_to_best_seconds": best["seconds"],
            "eval_seconds": eval_seconds,
            "eval_seconds_per_example": eval_seconds / max(len(task.dev), 1),
            "total_seconds": time.perf_counter() - started,
        },
        "peak_memory_mb": peak_memory_mb(device),
        "steps": step,
        "sizes": {"train": len(task.train), "heldout": len(task.heldout), "dev": len(task.dev)},
        "environment": {
            "device": str(device),
            "precision": precision,
            "processes": accelerator.num_processes,
            "ltune": ltune.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    run_files.write_json(run_dir / run_files.METRICS, metrics)
    checkpoint_path.unlink(missing_ok=True)  # finished: the selected parameters are in trainable.safetensors
    tracker.summary({k: metrics[k] for k in ("dev", "selection", "timing", "trainable_params", "total_params",
                                             "peak_memory_mb")})
    return metrics
