"""The machine side of a run: processes, devices, random states, the optimizer and compilation.

Nothing here knows about models, data or methods beyond "parameters" and "a module".
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import resource
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ltune.errors import LtuneError


def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch (or a plain run): the one process that writes."""
    return int(os.environ.get("RANK", "0")) == 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LtuneError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto")
    if name not in ("cpu", "cuda"):
        raise LtuneError(f"unknown trainer.device '{name}'; valid: auto, cpu, cuda")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has native bf16 kernels: a CUDA card that supports bf16, a CPU with
    oneDNN's bf16 path (AVX-512 or AMX). On a CPU without it (e.g. AVX2 only) torch emulates bf16
    matrix products, far slower than fp32: 37-45x per product, 15-20x per SmolLM2 training step on an
    AVX2 EPYC (docs/benchmarks.md); ``bf16_products`` runs them in fp32 there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True  # not known: the user's choice stands
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


_aten = torch.ops.aten
_FLASH_CPU = _aten._scaled_dot_product_flash_attention_for_cpu.default
#: The ops whose bf16 CPU kernels are matrix products: without native bf16 (an AVX2-only CPU) torch
#: runs them on a slow generic path, 15-45x fp32's time. Each maps to the positions of the outputs
#: that stay fp32 under bf16 (flash attention's log-sum-exp); every other output is bf16.
BF16_PRODUCTS = {
    _aten.mm.default: (), _aten.addmm.default: (), _aten.bmm.default: (), _aten.baddbmm.default: (),
    _aten.mv.default: (), _aten.addmv.default: (), _aten.dot.default: (),
    _FLASH_CPU: (1,), _aten._scaled_dot_product_flash_attention_for_cpu_backward.default: (),
}


def _up(value):
    return value.float() if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 else value


class Bf16ProductsInFp32(TorchDispatchMode):
    """bf16 matrix products on a CPU without native bf16, computed as fp32 products of the same
    bf16 values and rounded back to bf16.

    That is the arithmetic of a native bf16 kernel (bf16 operands, exact products summed in fp32,
    one rounding of the result), up to the order of the sums, as on any other card or CPU: a bf16
    run keeps its precision, and costs about fp32's time instead of torch's emulated kernels'
    (docs/benchmarks.md). Every other op runs as it would without the mode."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fp32_outputs = BF16_PRODUCTS.get(func)
        if fp32_outputs is None or not any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args):
            return func(*args, **kwargs)
        out = func(*(_up(a) for a in args), **{key: _up(value) for key, value in kwargs.items()})
        if isinstance(out, torch.Tensor):
            return out.to(torch.bfloat16)
        return tuple(o if i in fp32_outputs or not isinstance(o, torch.Tensor) or o.dtype != torch.float32
                     else o.to(torch.bfloat16) for i, o in enumerate(out))


def bf16_products(device, precision: str):
    """Where bf16 has no native kernels on a CPU, a context in which its matrix products run as
    fp32 products of the bf16 values (``Bf16ProductsInFp32``); elsewhere nothing. Forward passes
    (``evaluation.autocast``) and backward passes of a bf16 run both enter it."""
    device = torch.device(device)
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        return Bf16ProductsInFp32()
    return contextlib.nullcontext()


def machine(device: torch.device) -> dict:
    """The hardware a run's timings come from: the CPU's model, the kernel level torch uses on it,
    its cores, whether ``device`` has native bf16, and the GPU's name on CUDA."""
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    found = {"cpu": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
             "native_bf16": native_bf16(device)}
    if device.type == "cuda":
        found["gpu"] = torch.cuda.get_device_name(device)
    return found


#: The libraries besides torch whose versions can move a run's figures (kernels, defaults).
STACK = ("transformers", "peft")


def stack_versions() -> dict:
    """{package: installed version} of STACK, read from the installed metadata (nothing imported);
    None for a package that is not installed."""
    from importlib import metadata

    found = {}
    for package in STACK:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def fast_precision(device: str = "cpu") -> str:
    """The quicker trainer.precision on ``device``: bf16 where it is native, else fp32."""
    return "bf16" if native_bf16(torch.device(device)) else "fp32"


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


def build_optimizer(params: list, lr: float, weight_decay: float, fused="auto") -> torch.optim.AdamW:
    """AdamW over the trainable parameters (tensors, or groups: dicts with "params" and their own
    "lr"). ``fused``: True uses torch's single-kernel AdamW (CUDA
    and CPU), False torch's default (multi-tensor on CUDA, a loop over parameters on CPU), "auto"
    the fused kernel when the parameters are on CUDA and the default elsewhere."""
    if fused == "auto":
        tensors = [p for group in params for p in group["params"]] if params and isinstance(params[0], dict) else params
        fused = all(p.is_cuda for p in tensors)
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
