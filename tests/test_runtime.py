"""The machine side of a run: bf16 matrix products on a CPU without native bf16."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from ltune import runtime
from ltune.runtime import BF16_PRODUCTS, Bf16ProductsInFp32, bf16_products
from tests.methods.test_methods import make

BF16 = torch.bfloat16


def _operands(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=generator).to(BF16)

    return r


def _sdpa(r, masked: bool):
    q, k, v = (r(2, 3, 5, 8).requires_grad_() for _ in range(3))
    mask = torch.zeros(2, 1, 5, 5, dtype=BF16)
    mask[..., -1] = float("-inf")  # the last key is padding
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask if masked else None)
    (out.float() * torch.linspace(-1, 1, 8)).sum().backward()
    return (out.detach(), q.grad, k.grad, v.grad)


def _linear(r):
    x, w, b = r(4, 6, 16).requires_grad_(), r(12, 16).requires_grad_(), r(12).requires_grad_()
    out = F.linear(x, w, b)
    (out.float() * torch.linspace(-1, 1, 12)).sum().backward()
    return (out.detach(), x.grad, w.grad, b.grad)


CASES = {
    "mm": lambda r: torch.mm(r(7, 33), r(33, 5)),
    "addmm": lambda r: torch.addmm(r(5), r(7, 33), r(33, 5), beta=0.5, alpha=2.0),
    "bmm": lambda r: torch.bmm(r(3, 7, 33), r(3, 33, 5)),
    "baddbmm": lambda r: torch.baddbmm(r(3, 7, 5), r(3, 7, 33), r(3, 33, 5)),
    "mv": lambda r: torch.mv(r(7, 33), r(33)),
    "addmv": lambda r: torch.addmv(r(7), r(7, 33), r(33)),
    "dot": lambda r: torch.dot(r(33), r(33)),
    "linear, forward and backward": _linear,
    "attention, forward and backward": lambda r: _sdpa(r, masked=False),
    "masked attention, forward and backward": lambda r: _sdpa(r, masked=True),
}


@pytest.mark.parametrize("case", CASES)
def test_bf16_products_in_fp32_give_what_torchs_own_bf16_kernels_give(case):
    """Same dtypes, and values within a bf16 rounding (the sums' order may differ): the mode changes
    the speed of a bf16 run on an AVX2-only CPU, not its arithmetic."""
    theirs = CASES[case](_operands())
    with Bf16ProductsInFp32():
        ours = CASES[case](_operands())
    theirs, ours = (x if isinstance(x, tuple) else (x,) for x in (theirs, ours))
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.dtype == reference.dtype and mine.shape == reference.shape
        torch.testing.assert_close(mine.float(), reference.float(), rtol=2 ** -7, atol=2 ** -7 * reference.float().abs().max().item())


class ProductSpy(TorchDispatchMode):
    """Records the operand dtypes of every matrix product that reaches the kernels."""

    def __init__(self):
        super().__init__()
        self.operands = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in BF16_PRODUCTS:
            self.operands.append({a.dtype for a in args if isinstance(a, torch.Tensor)})
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("native", [False, True])
def test_a_bf16_training_step_multiplies_in_fp32_only_on_a_cpu_without_native_bf16(monkeypatch, native):
    """Forward and backward: without native bf16 no product reaches torch's (emulated, 15-45x slower)
    bf16 kernels; with it, the native kernels run as before."""
    from ltune import train

    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    method, batch = make("llama", "l_prefix")
    method.train()
    run = SimpleNamespace(device=torch.device("cpu"), precision="bf16",
                          accelerator=SimpleNamespace(backward=lambda loss: loss.backward()))
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    optimisation = SimpleNamespace(params=params, optimizer=optimizer,
                                   scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
    with ProductSpy() as spy:
        loss = train.train_step(method, batch, run, optimisation, grad_clip=1.0, on_bad_loss=AssertionError)
    assert torch.isfinite(loss)
    in_bf16 = [dtypes for dtypes in spy.operands if BF16 in dtypes]
    assert len(spy.operands) > 20  # the forward's and the backward's products
    assert bool(in_bf16) is native


@pytest.mark.parametrize("device, precision, native, expected", [
    ("cpu", "bf16", False, Bf16ProductsInFp32), ("cpu", "bf16", True, type(None)),
    ("cpu", "fp32", False, type(None)), ("cuda", "bf16", False, type(None)),
])
def test_only_bf16_on_a_cpu_without_native_kernels_reroutes_products(monkeypatch, device, precision, native, expected):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    with bf16_products(device, precision) as mode:
        assert type(mode) is expected
