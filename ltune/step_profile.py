"""Where one training step's time goes (``ltune bench profile=true``).

torch.profiler records a few training steps. Hooks wrap each part of the backbone's forward in a
named range: the word embeddings, the attention blocks, the MLP blocks, the norms, and the whole
model (what the model does between its parts, e.g. residual adds, masks and positions, is
"model, other"). A forward op belongs to the innermost range around it; a backward op belongs to
the part whose forward op created it (the autograd sequence number links the two). Outside the
model: the method's own work (prefix/prompt/label encoders, pooling, scoring, loss) and the
optimizer. A backward op whose forward op is not found (weight-gradient accumulation has no
sequence number) is "not attributed". The parts come from the module names of PARTS: a table, one row per part, matched
against a module's own name (the last component of its path), outermost match only, so nothing
is counted twice. Times are host (CPU) times of the ops; the profiler slows a step down, so the
unprofiled step time is measured beside them.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch

#: A module's own name -> the part it is (the names transformers' families give these blocks).
PARTS = {
    "attention": ("self_attn", "attention", "self_attention", "attn", "attn_layer"),
    "mlp": ("mlp", "intermediate", "output", "feed_forward", "ffn", "block_sparse_moe"),
    "norm": ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
             "post_feedforward_layernorm", "norm", "final_layernorm", "ln_f", "LayerNorm", "final_norm"),
}
ORDER = ("embedding", "attention", "mlp", "norm", "model, other", "method (outside the model)", "not attributed",
         "optimizer")


def part_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(part, module) for every outermost module of a part, and the input embeddings."""
    by_name = {name: part for part, names in PARTS.items() for name in names}
    embedding = model.get_input_embeddings()
    found, taken = [("embedding", embedding)], [""]
    for path, module in model.named_modules():
        part = by_name.get(path.rsplit(".", 1)[-1]) if path else None
        if part is None or module is embedding or any(path.startswith(t + ".") for t in taken if t):
            continue
        found.append((part, module))
        taken.append(path)
    return found


RANGE = "ltune.part."
AUTOGRAD = "autograd::engine::evaluate_function: "


def _ranges(model: torch.nn.Module) -> list:
    """Forward hooks that open a named profiler range per part (and the whole model)."""
    handles = []
    for part, module in part_modules(model) + [("model", model)]:
        opened = []

        def enter(module, args, part=part, opened=opened):
            opened.append(torch.profiler.record_function(RANGE + part).__enter__())

        def leave(module, args, output, opened=opened):
            opened.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def _part_of(event) -> str | None:
    """The innermost part range around a forward event, 'method' outside the model, None for a
    backward event."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(AUTOGRAD):
            return None
        if parent.name.startswith(RANGE):
            return parent.name.removeprefix(RANGE)
        parent = parent.cpu_parent
    return "method"


def attribute(events) -> dict[tuple[str, str], float]:
    """Microseconds per (part, pass) from a profiler's events."""
    by_sequence: dict[int, str] = {}
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for event in events:
        if event.name.startswith(RANGE) or event.name.startswith(AUTOGRAD):
            continue
        part = _part_of(event)
        if part is None:
            continue
        if event.sequence_nr >= 0:
            by_sequence.setdefault(event.sequence_nr, part)
        parent = event.cpu_parent
        if parent is None or parent.name.startswith(RANGE):  # a top-level op of its range: no double count
            totals[(part, "forward")] += event.cpu_time_total
    for event in events:
        if event.name.startswith(AUTOGRAD):
            totals[(by_sequence.get(event.sequence_nr, "unattributed"), "backward")] += event.cpu_time_total
    return totals


def profile_steps(method, model: torch.nn.Module, optimizer, batch: dict, device, precision: str,
                  steps: int) -> dict:
    """Per part and pass, mean milliseconds per step over ``steps`` profiled training steps, and
    the median unprofiled step beside them."""
    from ltune.evaluation import autocast
    from ltune.runtime import bf16_products

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_step() -> float:
        sync()
        start = time.perf_counter()
        with autocast(device, precision):
            loss = method.training_loss(batch)
        with bf16_products(device, precision):
            loss.backward()
        with torch.profiler.record_function(RANGE + "optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    method.train()
    one_step()  # warm-up
    plain = [one_step() for _ in range(steps)]
    handles = _ranges(model)
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            profiled = [one_step() for _ in range(steps)]
    finally:
        for handle in handles:
            handle.remove()
    events = prof.events()
    totals = attribute(events)
    optimizer_us = sum(e.cpu_time_total for e in events if e.name == RANGE + "optimizer")
    names = {"model": "model, other", "method": "method (outside the model)", "unattributed": "not attributed"}
    parts = [{"part": names.get(part, part), "pass": direction, "ms": us / 1000 / steps}
             for (part, direction), us in totals.items() if part != "optimizer"]
    parts.append({"part": "optimizer", "pass": "step", "ms": optimizer_us / 1000 / steps})
    return {"plain_step_ms": 1000 * statistics.median(plain), "profiled_step_ms": 1000 * statistics.median(profiled),
            "parts": parts}
def profile_markdown(name: str, profile: dict) -> str:
    total = sum(row["ms"] for row in profile["parts"])
    lines = [f"**{name}**: {profile['plain_step_ms']:.1f} ms per step without hooks, "
             f"{profile['profiled_step_ms']:.1f} ms profiled; the shares are of the profiled ops' time", "",
             "| part | pass | ms/step | share |", "|---|---|---|---|"]
    order = {part: i for i, part in enumerate(ORDER)}
    for row in sorted(profile["parts"], key=lambda r: (order[r["part"]], r["pass"] != "forward")):
        lines.append(f"| {row['part']} | {row['pass']} | {row['ms']:.1f} | {row['ms'] / total:.0%} |")
    return "\n".join(lines)
