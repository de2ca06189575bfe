"""Is bf16 autocast fast on this CPU? One matrix product of a training step's size (2,048 tokens x
576 -> 1,536, forward and backward, SmolLM2's MLP width), fp32 against bf16 autocast, five times
each after a warm-up, on every core. Prints seconds per product and the ratio; also what torch
reports about the CPU. A CPU without native bf16 (AVX2 only) emulates it: many times slower. The
third figure is a bf16 run's product in ltune (``ltune.runtime.bf16_products``): on such a CPU, an
fp32 product of the bf16 values, rounded to bf16; elsewhere the same as bf16 autocast."""

import statistics
import time

import torch

from ltune.evaluation import autocast
from ltune.runtime import bf16_products, machine


def ltune_bf16(x, w):
    with autocast("cpu", "bf16"):
        out = x @ w
    with bf16_products("cpu", "bf16"):
        out.float().sum().backward()


def seconds(dtype, x, w, repeats=5):
    timings = []
    for _ in range(repeats + 1):
        tick = time.perf_counter()
        if dtype == "ltune":
            ltune_bf16(x, w)
        elif dtype is None:
            (x @ w).sum().backward()
        else:
            with torch.autocast("cpu", dtype=dtype):
                out = x @ w
            out.float().sum().backward()
        timings.append(time.perf_counter() - tick)
    return statistics.median(timings[1:])


if __name__ == "__main__":
    torch.manual_seed(0)
    x, w = torch.randn(2048, 576), torch.randn(576, 1536, requires_grad=True)
    fp32, bf16, ours = seconds(None, x, w), seconds(torch.bfloat16, x, w), seconds("ltune", x, w)
    print(f"machine: {machine(torch.device('cpu'))}, threads: {torch.get_num_threads()}")
    print(f"fp32 {fp32:.3f} s, bf16 autocast {bf16:.3f} s per product: bf16 takes {bf16 / fp32:.2f}x fp32's time")
    print(f"ltune's bf16 {ours:.3f} s per product: {ours / fp32:.2f}x fp32's time")
