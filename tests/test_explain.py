"""Token attributions (issue 13): faithful on a trained demo model, for a K-way and a pair method;
every output format."""

import json
import random

import pytest
import torch

from tests.conftest import ltune_in_process

pytest.importorskip("captum")

TRAIN = ["trainer.max_steps=120", "trainer.eval_every=60", "trainer.batch_size=16", "model.max_length=32",
         "data.max_eval_samples=8"]


def trained(tmp_path_factory, method, lr):
    outputs = tmp_path_factory.mktemp(method)
    code, out, err = ltune_in_process(["train", f"method={method}", f"trainer.lr={lr}", *TRAIN], outputs)
    assert code == 0, (out + err)[-2000:]
    (run,) = (outputs / "runs").iterdir()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {"prompt": trained(tmp_path_factory, "prompt", 0.01), "l_prompt": trained(tmp_path_factory, "l_prompt", 0.001)}


def score_without(method, score, batch, drop: set[int]) -> float:
    keep = [i for i in range(batch["input_ids"].shape[1]) if i not in drop]
    cut = {k: v[:, keep] for k, v in batch.items()}
    with torch.no_grad():
        return float(score(**cut))


@pytest.mark.slow  # two 120-step trainings: faithfulness needs models that learned something
@pytest.mark.parametrize("name", ["prompt", "l_prompt"])
def test_deleting_the_top_attributed_tokens_lowers_the_score_more_than_random_ones(runs, name):
    from ltune.commands.use import load_run
    from ltune.data import load_task
    from ltune.explain import attribute, label_score_function, single_batch

    cfg, method = load_run(runs[name])
    cfg.data.max_eval_samples = None  # the run scored 8 dev texts; the check reads the first 16
    texts = [e.texts for e in load_task(cfg.data, cfg.seed).dev[:16]]
    rng, k = random.Random(0), 2
    top_drops, random_drops = [], []
    for text in texts:
        with torch.no_grad():
            target = int(method.label_scores(single_batch(method.backbone, text))[0].argmax())
        result = attribute(method, text, target, str(target), steps=24)
        batch = single_batch(method.backbone, text)
        score = label_score_function(method, target)
        words = [i for i, special in enumerate(result.special) if not special]
        if len(words) <= k:
            continue
        top = sorted(words, key=lambda i: -result.values[i])[:k]
        top_drops.append(result.score - score_without(method, score, batch, set(top)))
        random_drops.append(sum(result.score - score_without(method, score, batch, set(rng.sample(words, k)))
                                for _ in range(5)) / 5)
    assert len(top_drops) >= 12
    assert sum(top_drops) / len(top_drops) > sum(random_drops) / len(random_drops)


def test_attributions_sum_to_the_score_difference(trained_runs):
    """Completeness holds for any parameters: a short run is enough."""
    from ltune.commands.use import load_run
    from ltune.explain import attribute

    _, method = load_run(trained_runs("l_prompt"))
    result = attribute(method, ("The keeper saved a penalty in the last minute.",), 0, "sports", steps=48)
    assert sum(result.values) == pytest.approx(result.score - result.baseline_score, abs=5 * result.delta + 1e-3)


def test_explain_formats(trained_runs, tmp_path):
    run = trained_runs("prompt")
    texts = tmp_path / "texts.txt"
    texts.write_text("The keeper saved a penalty.\nWhisk the eggs with sugar.\n")
    for args, suffix in ((["text=The keeper saved a penalty."], ".png"),
                         (["text=The keeper saved a penalty.", "format=html", "labels=all"], ".html"),
                         ([f"file={texts}", "format=jsonl"], ".jsonl")):
        code, stdout, stderr = ltune_in_process(["explain", f"run={run}", *args], tmp_path)
        assert code == 0, (stdout + stderr)[-2000:]
        (out,) = (tmp_path / "explain" / run.name).glob(f"*{suffix}")
        if suffix == ".png":
            assert out.read_bytes()[:4] == b"\x89PNG" and "token attributions to" in stdout
        elif suffix == ".html":
            page = out.read_text()
            assert page.startswith("<!doctype html>") and page.count("<h3>") == 4  # every label
        else:
            records = [json.loads(line) for line in out.read_text().splitlines()]
            assert len(records) == 2 and all(r["attributions"] and "baseline" in r for r in records)
        out.unlink()
