"""``ltune bench packed=1,2,4,8``: what packing buys (ltune/packed.py), measured in one process.

For each packable method and each pack size R: R runs of the method (their own seeds and optimizers) on
one frozen model, each with its own synthetic batch of the bench's shape. Rounds alternate between the
two layouts so that a drift of the machine hits both alike:

- pack: one step of all R runs through one forward of the frozen model (``packed.packed_step``);
- one after another: the same R runs, each its own step (its own forward), as R separate runs take turns.

It reports the median seconds of a round in each layout, runs x samples per second, their ratio, and
memory: the frozen model's weights held once by a pack against R times by R separate processes, each
run's trainable state, and on a GPU what a step allocates on top of the weights. Two separate processes
side by side are measured by running this with ``layout=separate`` twice at once
(scripts/bench_packed_jobs.sh).
"""

from __future__ import annotations

import resource
import statistics
import time
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from ltune.errors import LtuneError
from ltune.commands.bench_common import timed
from ltune.packed import PACKABLE, packed_step


class _FixedRate:
    """A scheduler that leaves the rate alone (the bench times steps, not schedules)."""

    def step(self) -> None:
        pass

    def get_last_lr(self) -> list[float]:
        return [0.0]


def _loops(method_name: str, count: int, backbone, label_texts, device, runtime) -> list:
    from ltune.commands.bench_common import cfg_method_defaults
    from ltune.methods import build_method
    from ltune.runtime import build_optimizer, place, seed_everything

    loops = []
    for run in range(count):
        seed_everything(run)
        method = place(build_method(cfg_method_defaults(method_name), backbone, label_texts), device)
        params = [p for p in method.parameters() if p.requires_grad]
        optimisation = SimpleNamespace(params=params, optimizer=build_optimizer(params, lr=1e-4, weight_decay=0.0),
                                       scheduler=_FixedRate())
        loops.append(SimpleNamespace(runtime=runtime, components=SimpleNamespace(backbone=backbone), model=method,
                                     optimisation=optimisation, cfg=OmegaConf.create({"trainer": {"grad_clip": 1.0}}),
                                     bad_loss=lambda value: LtuneError(f"loss {value}")))
    return loops


def _alone_step(loop, batch, device, precision) -> None:
    from ltune.evaluation import autocast
    from ltune.runtime import bf16_products

    with autocast(device, precision):
        loss = loop.model(batch)
    with bf16_products(device, precision):
        loss.backward()
    torch.nn.utils.clip_grad_norm_(loop.optimisation.params, 1.0)
    loop.optimisation.optimizer.step()
    loop.optimisation.optimizer.zero_grad(set_to_none=True)


def run_packed_bench(options: dict) -> dict:
    from ltune.backbone import load_backbone
    from ltune.commands.bench_common import synthetic_batch
    from ltune.config import compose
    from ltune.runtime import pick_device

    sizes = [int(x) for x in options["packed"].split(",") if x]
    if not sizes or min(sizes) < 1:
        raise LtuneError(f"packed= takes pack sizes, e.g. packed=1,2,4,8; got '{options['packed']}'")
    wanted = [m for m in options["methods"].split(",") if m] or list(PACKABLE)
    unpackable = [m for m in wanted if m not in PACKABLE]
    if unpackable:
        raise LtuneError(f"packed= measures {', '.join(PACKABLE)}; {', '.join(unpackable)} cannot be packed")
    layout = options.get("layout") or "both"
    cfg = compose([f"model={options['model']}", f"data={options['data']}", f"model.max_length={options['seq_len']}",
                   *options["model_overrides"]])
    device = pick_device(options["device"])
    size, length = int(options["batch_size"]), int(options["seq_len"])
    steps, warmup, precision = int(options["steps"]), int(options["warmup"]), options["precision"]
    backbone = load_backbone(cfg.model, device)
    if not backbone.placed:
        backbone.to(device)
    backbone.model.eval()  # packed runs train with the frozen model as at evaluation (backbone_dropout=false)
    weights_mb = sum(p.numel() * p.element_size() for p in backbone.model.parameters()) / 2**20
    label_texts = list(cfg.data.label_texts)
    runtime = SimpleNamespace(device=device, precision=precision)
    results = []
    for method_name in wanted:
        for count in sizes:
            loops = _loops(method_name, count, backbone, label_texts, device, runtime)
            batches = [{k: v.to(device) for k, v in synthetic_batch(backbone, size, length, len(label_texts),
                                                                      torch.Generator().manual_seed(100 + r)).items()}
                       for r in range(count)]
            for loop in loops:
                loop.model.train()
                backbone.model.eval()
            pack, alone, pack_mb, alone_mb = [], [], [], []
            for round_ in range(warmup + steps):
                if layout in ("both", "pack"):
                    seconds, extra = timed(device, lambda: packed_step(loops, batches))
                    if round_ >= warmup:
                        pack.append(seconds)
                        pack_mb.append(extra)
                if layout in ("both", "separate"):
                    seconds, extra = timed(device, lambda: [_alone_step(loop, batch, device, precision)
                                                             for loop, batch in zip(loops, batches)])
                    if round_ >= warmup:
                        alone.append(seconds)
                        alone_mb.append(extra)
            row = {"method": method_name, "runs": count,
                   "pack_seconds": statistics.median(pack) if pack else None,
                   "alone_seconds": statistics.median(alone) if alone else None,
                   "trainable_mb_per_run": sum(p.numel() * 4 * 3 for p in loops[0].optimisation.params) / 2**20,
                   "pack_step_mb": max(pack_mb) if pack_mb and pack_mb[0] is not None else None,
                   "alone_step_mb": max(alone_mb) if alone_mb and alone_mb[0] is not None else None}
            for key in ("pack", "alone"):
                if row[f"{key}_seconds"]:
                    row[f"{key}_run_samples_per_second"] = count * size / row[f"{key}_seconds"]
            if row["pack_seconds"] and row["alone_seconds"]:
                row["speedup"] = row["alone_seconds"] / row["pack_seconds"]
            results.append(row)
            print(f"ltune bench: {method_name} x {count}: pack {row['pack_seconds'] or 0:.3f} s, one after another "
                  f"{row['alone_seconds'] or 0:.3f} s a round", flush=True)
            del loops
    return {"kind": "packed", "model": options["model"], "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "batch_size": size, "seq_len": length, "precision": precision,
            "steps": steps, "warmup": warmup, "layout": layout, "torch": torch.__version__,
            "backbone_weights_mb": weights_mb, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "results": results}


def packed_markdown(report: dict) -> str:
    head = (f"model `{report['model']}` on {report['device_name']} ({report['threads']} threads), batch "
            f"{report['batch_size']} x {report['seq_len']} tokens per run, {report['precision']}, median of "
            f"{report['steps']} rounds after {report['warmup']} warm-up (layouts alternating), torch {report['torch']}; "
            f"frozen weights {report['backbone_weights_mb']:.0f} MB (a pack holds them once, R separate processes R "
            f"times); this process's peak resident memory {report['peak_rss_mb']:.0f} MB")
    lines = [head, "", "| method | runs R | pack: s a round | one after another: s a round | pack speed-up | "
             "runs x samples/s, pack | runs x samples/s, one after another | weights held: pack / R processes (MB) | "
             "step MB on the GPU: pack / one run |", "|" + "---|" * 9]
    for r in report["results"]:
        def f(value, digits=3):
            return "–" if value is None else f"{value:.{digits}f}"
        lines.append(f"| {r['method']} | {r['runs']} | {f(r['pack_seconds'])} | {f(r['alone_seconds'])} | "
                     f"{f(r.get('speedup'), 2)}x | {f(r.get('pack_run_samples_per_second'), 1)} | "
                     f"{f(r.get('alone_run_samples_per_second'), 1)} | {report['backbone_weights_mb']:.0f} / "
                     f"{report['backbone_weights_mb'] * r['runs']:.0f} | {f(r['pack_step_mb'], 0)} / {f(r['alone_step_mb'], 0)} |")
    return "\n".join(lines)
