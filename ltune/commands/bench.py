"""``ltune bench``: training-step and evaluation speed of every method, in one process, on one
model, with one batch and sequence shape, reported as ratios to prefix/prompt tuning.

Figures, not tests: step time is the median over ``steps`` optimizer steps after ``warmup``,
the methods' steps interleaved round by round;
evaluation time is per example with all K labels scored (batched, not one label at a time).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ltune.commands.bench_common import cfg_method_defaults, synthetic_batch, timed
from ltune.errors import LtuneError

BENCH_METHODS = [
    ("prefix", {}),
    ("l_prefix", {}),
    ("l_prefix+reencode", {"reencode_labels": True}),
    ("prompt", {}),
    ("l_prompt", {}),
    ("l_prompt+reencode", {"reencode_labels": True}),
    ("peft_prompt", {}),
    ("peft_lora", {}),  # adapts the model's layers: it gets a copy of the backbone of its own
]
DEFAULTS = {"model": "minilm", "data": "sst2", "batch_size": "16", "seq_len": "128", "steps": "20", "warmup": "3",
            "precision": "fp32", "device": "auto", "compile": "false", "fused": "auto", "attn": "",
            "out": "", "methods": "", "peak_tflops": "", "profile": "false", "packed": "", "layout": "both",
            "threads": ""}
#: Dense bf16 peak of cards we know, TFLOP/s (vendor figures, without sparsity), for model FLOPs utilisation.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


def parse(args: list[str]) -> dict[str, str]:
    options = dict(DEFAULTS)
    options["model_overrides"] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.startswith("model."):  # e.g. model.random_init.num_hidden_layers=2
            options["model_overrides"].append(arg)
            continue
        if not sep or key not in DEFAULTS:
            raise LtuneError(f"bad bench option '{arg}'; valid: {', '.join(f'{k}=' for k in DEFAULTS)}")
        options[key] = value
    if options["compile"] not in ("true", "false"):
        raise LtuneError(f"bad bench option 'compile={options['compile']}'; valid: compile=true or compile=false")
    if options["profile"] not in ("true", "false"):
        raise LtuneError(f"bad bench option 'profile={options['profile']}'; valid: profile=true or profile=false")
    if options["fused"] not in ("auto", "true", "false"):
        raise LtuneError(f"bad bench option 'fused={options['fused']}'; valid: fused=auto, fused=true or fused=false")
    return options


@dataclasses.dataclass
class MethodTimings:
    """One method under measurement, with what was measured of it so far."""

    name: str
    method: object
    params: list
    optimizer: torch.optim.Optimizer
    step_times: list = dataclasses.field(default_factory=list)
    eval_times: list = dataclasses.field(default_factory=list)
    step_memory_mb: float = 0.0


def _timed(device, work, timings: MethodTimings) -> float:
    """Seconds ``work`` takes (the GPU synchronised around it). On CUDA it also tracks the most
    memory the work allocated on top of what was already allocated (activations, gradients)."""
    seconds, extra = timed(device, work)
    if extra is not None:
        timings.step_memory_mb = max(timings.step_memory_mb, extra)
    return seconds


def _train_step(timings: MethodTimings, batch, device, precision) -> None:
    from ltune.evaluation import autocast
    from ltune.runtime import bf16_products

    with autocast(device, precision):
        loss = timings.method.training_loss(batch)
    with bf16_products(device, precision):
        loss.backward()
    timings.optimizer.step()
    timings.optimizer.zero_grad(set_to_none=True)


def _scores(timings: MethodTimings, batch, device, precision) -> None:
    from ltune.evaluation import autocast

    with autocast(device, precision):
        timings.method.label_scores(batch)


def build_runs(wanted: list[str], backbone, label_texts: list[str], device, fused) -> list[MethodTimings]:
    """Every wanted method, built once on the shared backbone (a method that changes the model's
    layers gets a copy of its own), each with its own optimizer."""
    from ltune.methods import METHODS, build_method
    from ltune.runtime import build_optimizer, place

    runs = []
    for name, overrides in BENCH_METHODS:
        if name not in wanted:
            continue
        base = name.split("+")[0]
        own = copy.deepcopy(backbone) if METHODS[base].model.modifies_backbone else backbone
        method = place(build_method({**cfg_method_defaults(base), **overrides}, own, label_texts), device)
        params = [p for p in method.parameters() if p.requires_grad]
        runs.append(MethodTimings(name, method, params, build_optimizer(params, lr=1e-4, weight_decay=0.0, fused=fused)))
    return runs


def measure(runs: list[MethodTimings], batch: dict, device, precision: str, steps: int, warmup: int) -> None:
    """Training steps interleaved round by round (one step of each method per round), so a slow
    drift of the machine (clocks, other load) hits all methods alike; then scoring passes."""
    progress = tqdm(total=(warmup + steps + max(2, steps // 4) + 1) * len(runs), desc="ltune bench", unit="step")
    for step in range(warmup + steps):
        for timings in runs:
            timings.method.train()  # the methods share the backbone: set its mode for each
            seconds = _timed(device, lambda: _train_step(timings, batch, device, precision), timings)
            if step >= warmup:
                timings.step_times.append(seconds)
            progress.update(1)
    with torch.no_grad():
        for step in range(max(2, steps // 4) + 1):
            for timings in runs:
                timings.method.eval()
                seconds = _timed(device, lambda: _scores(timings, batch, device, precision), timings)
                if step:  # the first pass warms up
                    timings.eval_times.append(seconds)
                progress.update(1)
    progress.close()


def summarise(runs: list[MethodTimings], backbone_params: int, size: int, length: int, peak, device) -> list[dict]:
    results = []
    for timings in runs:
        step_time = statistics.median(timings.step_times)
        # Model FLOPs of a frozen-backbone training step: 4 x backbone parameters x tokens
        # (forward 2, backward through the activations 2; no weight gradients).
        achieved = 4 * backbone_params * size * length / step_time / 1e12
        results.append({
            "model_tflops_per_second": achieved,
            "mfu": achieved / peak if peak else None,
            "method": timings.name,
            "trainable_params": sum(p.numel() for p in timings.params),
            "step_seconds": step_time,
            "samples_per_second": size / step_time,
            "tokens_per_second": size * length / step_time,
            "eval_seconds_per_example": statistics.median(timings.eval_times) / size,
            "step_memory_mb": timings.step_memory_mb if device.type == "cuda" else None,
        })
        print(f"ltune bench: {timings.name}: {step_time * 1000:.1f} ms/step", flush=True)
    by_name = {r["method"]: r for r in results}
    for r in results:
        reference = "prefix" if "prefix" in r["method"] else ("prompt" if "prompt" in r["method"] else None)
        if reference in by_name:
            r[f"step_time_vs_{reference}"] = r["step_seconds"] / by_name[reference]["step_seconds"]
    if "prompt" in by_name and "peft_prompt" in by_name:
        by_name["prompt"]["step_time_vs_peft_prompt"] = by_name["prompt"]["step_seconds"] / by_name["peft_prompt"]["step_seconds"]
    return results


def run(options: dict[str, str]) -> dict:
    from ltune.backbone import load_backbone
    from ltune.config import compose
    from ltune.runtime import compile_backbone, pick_device

    attention = [f"model.attn_implementation={options['attn']}"] if options["attn"] else []
    cfg = compose([f"model={options['model']}", f"data={options['data']}",
                   f"model.max_length={options['seq_len']}", *attention, *options["model_overrides"]])
    device = pick_device(options["device"])
    size, length = int(options["batch_size"]), int(options["seq_len"])
    steps, warmup, precision = int(options["steps"]), int(options["warmup"]), options["precision"]
    wanted = [m for m in options["methods"].split(",") if m] or [name for name, _ in BENCH_METHODS]
    backbone = load_backbone(cfg.model, device)
    if not backbone.placed:
        backbone.to(device)
    backbone_memory = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None
    compiled = options["compile"] == "true"
    if compiled:
        compile_backbone(backbone)
    backbone_params = sum(p.numel() for p in backbone.model.parameters())
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = float(options["peak_tflops"]) if options["peak_tflops"] else next(
        (v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)
    label_texts = list(cfg.data.label_texts)
    batch = {k: v.to(device) for k, v in
             synthetic_batch(backbone, size, length, len(label_texts), torch.Generator().manual_seed(0)).items()}
    runs = build_runs(wanted, backbone, label_texts, device, {"auto": "auto", "true": True, "false": False}[options["fused"]])
    measure(runs, batch, device, precision, steps, warmup)
    profiles = {}
    if options["profile"] == "true":
        from ltune.step_profile import profile_steps

        for timings in runs:
            model = getattr(timings.method, "backbone", backbone).model
            profiles[timings.name] = profile_steps(timings.method, model, timings.optimizer, batch, device, precision,
                                                   max(1, min(steps, 5)))
    return {
        "model": options["model"], "device": str(device),
        "device_name": device_name, "backbone_params": backbone_params, "peak_tflops": peak,
        "threads": torch.get_num_threads(), "batch_size": size, "seq_len": length, "labels": len(label_texts),
        "precision": precision, "compile": compiled, "backbone_memory_mb": backbone_memory,
        "fused_optimizer": runs[0].optimizer.defaults["fused"] is True if runs else None,
        "attn_implementation": backbone.model.config._attn_implementation, "steps": steps, "warmup": warmup,
        "torch": torch.__version__, "quantization": str(cfg.model.quantization),
        "results": summarise(runs, backbone_params, size, length, peak, device),
        "profiles": profiles,
    }


def markdown(report: dict) -> str:
    head = (f"model `{report['model']}` on {report['device_name']} ({report['threads']} threads), batch "
            f"{report['batch_size']} x {report['seq_len']} tokens, {report['labels']} labels, {report['precision']}, "
            f"attention {report.get('attn_implementation')}, compile {report.get('compile')}, "
            f"fused AdamW {report.get('fused_optimizer')}, "
            f"median of {report['steps']} steps after {report['warmup']} warm-up (methods interleaved), "
            f"torch {report['torch']}")
    if report.get("backbone_memory_mb") is not None:
        head += (f"; backbone weights {report['backbone_memory_mb']:.0f} MB; step MB = what one training step "
                 f"allocates on top of the resident weights and states")
    lines = [head, "", "| method | trainable params | ms/step | samples/s | tokens/s | model TFLOP/s | MFU | "
             "eval ms/example (K labels) | step time ratio | step MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        ratios = [f"{v:.2f}x {k.removeprefix('step_time_vs_')}" for k, v in r.items() if k.startswith("step_time_vs_")]
        peak = f"{r['step_memory_mb']:.0f}" if r["step_memory_mb"] is not None else "–"
        lines.append(f"| {r['method']} | {r['trainable_params']:,} | {r['step_seconds'] * 1000:.1f} | "
                     f"{r['samples_per_second']:.1f} | {r['tokens_per_second']:.0f} | "
                     f"{r['model_tflops_per_second']:.3f} | {_fmt_mfu(r['mfu'])} | "
                     f"{r['eval_seconds_per_example'] * 1000:.2f} | {', '.join(ratios) or '–'} | {peak} |")
    if report.get("profiles"):
        from ltune.step_profile import profile_markdown

        lines += ["", "Where a training step's time goes (torch.profiler, host time of the ops):", ""]
        lines += ["\n\n".join(profile_markdown(name, profile) for name, profile in report["profiles"].items())]
    return "\n".join(lines)


def _fmt_mfu(value) -> str:
    return f"{value:.3f}" if value is not None else "–"


def out_folder(options: dict) -> Path:
    """Where a benchmark's files go: out=, else <LTUNE_OUTPUT_DIR or outputs>/bench (like every command)."""
    import os

    return Path(options["out"] or Path(os.environ.get("LTUNE_OUTPUT_DIR", "outputs")) / "bench")


def bench_command(args: list[str]) -> Path:
    from ltune.config import check_overrides
    from ltune.run_files import check_folder_path, write_json, write_text

    check_overrides([a for a in args if a.split("=")[0] in ("model", "data")])
    options = parse(args)
    check_folder_path(out_folder(options), "the benchmark's folder (out=, or LTUNE_OUTPUT_DIR/bench)",
                      "give a writable one: out=<folder> or LTUNE_OUTPUT_DIR=<folder>")
    if options["layout"] not in ("both", "pack", "separate"):
        raise LtuneError(f"bad bench option 'layout={options['layout']}'; valid: layout=both, pack or separate")
    if options["threads"]:
        torch.set_num_threads(int(options["threads"]))
    if options["packed"]:
        from ltune.commands.bench_packed import packed_markdown, run_packed_bench

        report, render = run_packed_bench(options), packed_markdown
    else:
        report, render = run(options), markdown
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    folder = out_folder(options) / f"{stamp}_{options['model']}_{options['precision']}{'_packed' if options['packed'] else ''}"
    folder.mkdir(parents=True, exist_ok=False)
    write_json(folder / "bench.json", report)
    table = render(report)
    write_text(folder / "bench.md", table + "\n")
    print(table)
    print(f"ltune bench: wrote {folder}")
    return folder
