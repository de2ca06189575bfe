"""Speed options of the training loop: a compiled backbone and the fused AdamW kernel must train
as the eager model with torch's default AdamW does (up to float rounding)."""

import os
import shutil

import pytest
import torch

from ltune.runtime import build_optimizer, compile_backbone
from tests.methods.test_methods import make

# torch.compile's CPU backend (inductor) builds C++ kernels.
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="torch.compile on the CPU needs a C++ compiler")


def three_steps(family, name, compiled, fused):
    method, batch = make(family, name)
    method.eval()  # no dropout: the two runs must see the same computation
    if compiled:
        compile_backbone(method.backbone)
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, lr=1e-2, weight_decay=0.01, fused=fused)
    losses = []
    for _ in range(3):
        loss = method.training_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    with torch.no_grad():
        scores = method.label_scores(batch)
    return losses, scores, optimizer


def assert_trains_like_eager(family, name, compiled, fused):
    eager_losses, eager_scores, eager_optimizer = three_steps(family, name, compiled=False, fused=False)
    assert not eager_optimizer.defaults["fused"]
    losses, scores, optimizer = three_steps(family, name, compiled=compiled, fused=fused)
    assert losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    assert torch.allclose(scores, eager_scores, rtol=1e-4, atol=1e-5)
    assert eager_losses[-1] != eager_losses[0]  # the steps changed the parameters
    return optimizer


@pytest.mark.parametrize("family,name", [("llama", "l_prefix"), ("bert", "prompt")])
def test_fused_adamw_trains_like_the_default_one(family, name):
    assert assert_trains_like_eager(family, name, compiled=False, fused=True).defaults["fused"]


def test_fused_auto_means_fused_on_cuda_only():
    cpu = [torch.nn.Parameter(torch.zeros(3))]
    assert not build_optimizer(cpu, lr=1e-3, weight_decay=0.0, fused="auto").defaults["fused"]


@pytest.mark.slow  # inductor builds C++ kernels: 30-60 s per model
@needs_compiler
@pytest.mark.parametrize("family,name", [("llama", "l_prefix"), ("bert", "prompt")])
def test_compiled_backbone_trains_like_the_eager_one(family, name):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    assert_trains_like_eager(family, name, compiled=True, fused=False)
    # The backbone really ran compiled (a silent fallback to eager would compile no graph).
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    torch._dynamo.reset()


def test_label_texts_are_encoded_where_the_backbone_will_run(monkeypatch, tmp_path):
    """The L-methods encode their label texts when they are built. The backbone must already be on
    the run's device then: encoding a 7B model's labels on the CPU and moving afterwards is slow
    (issue 9, defect 9). A fake accelerator says the run's device is "meta"."""
    import ltune.train
    from ltune.backbone import Backbone
    from tests.conftest import compose

    class MetaAccelerator:
        def __init__(self, *args, **kwargs):
            self.device, self.is_main_process, self.num_processes = torch.device("meta"), True, 1

    class Built(Exception):
        pass

    seen = []

    def spy(self, label_batch):
        seen.append((next(self.model.parameters()).device, label_batch["input_ids"].device))
        raise Built

    monkeypatch.setattr(ltune.train, "Accelerator", MetaAccelerator)
    monkeypatch.setattr(Backbone, "encode_label_batch", spy)
    cfg = compose("method=l_prompt", f"output_root={tmp_path}")
    with pytest.raises(Built):
        ltune.train.train(cfg, tmp_path / "run")
    assert seen == [(torch.device("meta"), torch.device("meta"))]


@pytest.mark.parametrize("select_on, best_step, without_gain", [("accuracy", 10, 2), ("matthews_corr", 20, 1)])
def test_the_best_held_out_evaluation_is_chosen_by_the_selection_metric(monkeypatch, select_on, best_step, without_gain):
    """On CoLA the majority class wins on accuracy (MCC 0); select_on=matthews_corr keeps the
    evaluation that classifies, and counts early stopping on that metric."""
    from types import SimpleNamespace

    from ltune import train

    scripted = iter([{"accuracy": 0.70, "matthews_corr": 0.0}, {"accuracy": 0.66, "matthews_corr": 0.21},
                     {"accuracy": 0.69, "matthews_corr": 0.12}])
    monkeypatch.setattr(train, "evaluate", lambda *args, **kwargs: next(scripted))
    weight = torch.zeros(1)
    components = SimpleNamespace(method=SimpleNamespace(trainable_state_dict=lambda: {"w": weight}),
                                 task=SimpleNamespace(metrics=["accuracy", "matthews_corr"]))
    loaders = SimpleNamespace(heldout=None, gather=None)
    runtime = SimpleNamespace(device="cpu", precision="fp32")
    state = train.TrainState()
    for step in (10, 20, 30):
        state.step = step
        weight.fill_(step)
        train.evaluate_and_select(components, loaders, runtime, state, 0.0, select_on)
    assert state.best["step"] == best_step and state.best["state"]["w"].item() == best_step
    assert state.evaluations_without_gain == without_gain


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_the_fast_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, native, expected):
    from ltune import runtime

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    assert runtime.native_bf16(torch.device("cpu")) is native
    assert runtime.fast_precision("cpu") == expected


@pytest.mark.parametrize("precision, native, warned", [("bf16", False, True), ("bf16", True, False),
                                                        ("fp32", False, False)])
def test_bf16_asked_of_a_cpu_without_native_bf16_is_kept_with_a_note(monkeypatch, capsys, precision, native, warned):
    """torch emulates bf16 on an AVX2-only CPU (37-45x slower matrix products, measured): the run keeps
    the precision it was asked for (its numbers depend on it), and says in one line that its products
    run in fp32 on the bf16 values (tests/test_runtime.py)."""
    from omegaconf import OmegaConf

    from ltune import train

    monkeypatch.setattr(train, "native_bf16", lambda device: native)
    cfg = OmegaConf.create({"seed": 1, "trainer": {"device": "cpu", "num_threads": None, "precision": precision}})
    assert train.set_up_runtime(cfg).precision == precision
    assert ("ltune: note: trainer.precision=bf16 on a cpu without native bf16 kernels" in capsys.readouterr().out) is warned


def test_a_run_records_the_machine_its_timings_come_from():
    from ltune.runtime import machine

    found = machine(torch.device("cpu"))
    assert found["cpu"] and found["cores"] == os.cpu_count() and isinstance(found["native_bf16"], bool)
    assert found["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "gpu" not in found


def test_throughput_counts_every_read_of_a_text_under_the_softmax_objective(trained_runs):
    """A pairs run reads each batch row once; a softmax run reads each text once per label text, so
    over the same batches (the order is seeded alike) it processes K times the samples and tokens."""
    import json

    def processed(run):
        metrics = json.loads((run / "metrics.json").read_text())
        timing, steps = metrics["timing"], metrics["steps"]
        step_seconds = timing["seconds_per_step"] * steps
        return (timing["samples_per_second"] * step_seconds, timing["tokens_per_second"] * step_seconds,
                timing["padding_efficiency"], len(metrics["label_texts_used"]))

    samples, tokens, padding, k = processed(trained_runs("l_prefix"))
    softmax_samples, softmax_tokens, softmax_padding, _ = processed(trained_runs("l_prefix", "method.objective=softmax"))
    assert k > 2
    assert softmax_samples == pytest.approx(k * samples) and softmax_tokens == pytest.approx(k * tokens)
    assert softmax_padding == pytest.approx(padding)


def test_a_held_out_slice_larger_than_the_training_set_is_noted():
    """Issue 44, item 16: data.max_train_samples=256 still held out 500 texts, half the run's time, unsaid."""
    from ltune.train import heldout_note

    note = heldout_note(train=256, heldout=500, eval_every=10, steps=200, batch_size=8)
    assert note.startswith("ltune: note: 500 held-out texts for 256 training texts") and "max_heldout_samples=256" in note
    assert heldout_note(train=8000, heldout=500, eval_every=50, steps=1000, batch_size=32) is None


def test_backbone_dropout_false_trains_the_maps_with_the_frozen_model_as_at_evaluation():
    """trainer.backbone_dropout=false (what packed training needs): the frozen model stays in eval mode through
    training, held-out evaluations included, while the method's own maps train."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from ltune.data import Example
    from ltune.data.collate import evaluation_loader
    from ltune.evaluation import predict_scores
    from ltune.methods import build_method
    from ltune.train import set_training_mode
    from tests.tiny import LABEL_TEXTS, method_cfg, tiny_backbone

    backbone = tiny_backbone("bert")
    method = build_method(method_cfg("prefix"), backbone, LABEL_TEXTS)
    loop = SimpleNamespace(components=SimpleNamespace(method=method, backbone=backbone),
                           cfg=OmegaConf.create({"trainer": {"backbone_dropout": False}}))
    set_training_mode(loop)
    assert method.training and method.head.training and not backbone.model.training
    loader = evaluation_loader([Example(("a text about sports",), 0, 0), Example(("cooking",), 1, 1)], backbone, 2)
    predict_scores(method, loader, "cpu")  # a held-out evaluation in the middle of training
    assert method.head.training and not any(m.training for m in backbone.model.modules())
