"""ltune predict (issue 21, item 1): each text is printed with its own scores, whatever order the
length-sorted evaluation batches score them in; tied labels are named."""

import json

import pytest
import torch

from ltune.evaluation import Predictions, in_given_order
from tests.conftest import run_cli
from tests.tiny import LABEL_TEXTS, method_cfg, tiny_backbone

SHORT = ["trainer.max_steps=2", "trainer.eval_every=2", "data.max_eval_samples=8", "model.max_length=32"]
#: Given shortest first, so sorting by length (longest first) reverses them.
TEXTS = ["Whisk.", "The hurdler clipped the final barrier but still crossed the line first.", "Bake the bread slowly."]
METHODS = ("l_prefix", "l_prompt", "prefix", "prompt", "peft_prompt", "peft_lora")


def test_in_given_order_puts_each_row_of_scores_at_its_id():
    scores = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    shuffled = Predictions(scores, torch.zeros(3, dtype=torch.long), torch.tensor([2, 0, 1]))
    assert in_given_order(shuffled).tolist() == [[2.0, 3.0], [4.0, 5.0], [0.0, 1.0]]
    with pytest.raises(ValueError):
        in_given_order(Predictions(scores, torch.zeros(3, dtype=torch.long), torch.tensor([0, 0, 1])))


@pytest.mark.parametrize("name", METHODS)
def test_predict_scores_every_text_as_it_would_alone(name):
    """Every method: the texts scored together (batches of 2, so sorting moves them across batches)
    get the scores each gets alone."""
    from ltune.commands.use import predict_probabilities
    from ltune.methods import build_method

    torch.manual_seed(0)
    method = build_method(method_cfg(name), tiny_backbone("bert"), LABEL_TEXTS).eval()
    rows = [(t,) for t in TEXTS]
    lengths = [len(method.backbone.tokenize([t])["input_ids"][0]) for t in TEXTS]
    assert sorted(range(3), key=lambda i: -lengths[i]) != [0, 1, 2]  # the loader's order differs from the given one
    together, _ = predict_probabilities(method, rows, batch_size=2)
    alone = torch.cat([predict_probabilities(method, [row], batch_size=2)[0] for row in rows])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(alone[0], alone[1], rtol=1e-4, atol=1e-5)  # the texts are told apart


def test_predict_command_pairs_texts_with_their_scores(tmp_path, monkeypatch, capsys):
    """End to end on a trained demo run: the two texts of the issue, together and alone; and the
    tie warning of predict labels= (named labels, on stderr)."""
    code, out, err = run_cli(["train", *SHORT], tmp_path, monkeypatch, capsys)
    assert code in (0, None), (out + err)[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    texts = TEXTS[:2]

    def predict(*args, stdin=None):
        code, out, err = run_cli(["predict", f"run={run}", "format=jsonl", *args], tmp_path, monkeypatch, capsys,
                                 stdin=stdin)
        assert code in (0, None), (out + err)[-2000:]
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")], err

    together, _ = predict(*(f"text={t}" for t in texts))
    alone = [predict(f"text={t}")[0][0] for t in texts]
    assert [r["text"] for r in together] == texts
    assert alone[0]["scores"] != pytest.approx(alone[1]["scores"], rel=1e-4, abs=1e-5)  # a swap would show
    for got, want in zip(together, alone):
        assert got["scores"] == pytest.approx(want["scores"], rel=1e-4, abs=1e-5)
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    for given in (predict(f"file={tmp_path / 'texts.txt'}")[0], predict(stdin="\n".join(texts) + "\n")[0]):
        assert [r["text"] for r in given] == texts
        for got, want in zip(given, alone):
            assert got["scores"] == pytest.approx(want["scores"], rel=1e-4, abs=1e-5)

    from ltune.methods.l_prefix.model import LPrefix

    monkeypatch.setattr(LPrefix, "identical_label_pairs", lambda self: [(0, 1)])
    labels = '["this text is about politics", "this text is about football", "this text is about cooking"]'
    _, err = predict("text=The senate met.", f"labels={labels}")
    warnings = [line for line in err.splitlines() if line.startswith("ltune: warning:")]
    assert len(warnings) == 1 and "'this text is about politics', 'this text is about football'" in warnings[0]
    assert "method.z_input=states" in warnings[0] and "method.pool_softmax=false" in warnings[0]


def test_eval_scores_a_run_on_the_users_own_data_config(trained_runs, tmp_path, monkeypatch, capsys):
    """Issue 43, item 9: a user's data config, given as the path of its yaml file or by name with config_dir=,
    composed and checked as train composes it; one with other label names is refused in one line before the
    model loads."""
    import json
    from pathlib import Path

    import yaml

    from tests.conftest import run_cli

    run = trained_runs("l_prefix")
    demo = Path(__file__).resolve().parents[2] / "ltune" / "data" / "demo"
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "ltune" / "conf" / "data" / "demo.yaml").read_text())
    config.update(name="mytopics", files={"train": str(demo / "train.jsonl"), "validation": str(demo / "dev.jsonl")})
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "mytopics.yaml").write_text(yaml.safe_dump(config))
    outputs = tmp_path / "outputs"
    for args in ([f"data={tmp_path / 'conf' / 'data' / 'mytopics.yaml'}"], ["data=mytopics", f"config_dir={tmp_path / 'conf'}"]):
        code, out, err = run_cli(["eval", f"run={run}", *args, "max_samples=16"], outputs, monkeypatch, capsys)
        assert code in (0, None), err[-2000:]
        assert "ltune: mytopics validation (16 texts)" in out
    (result, *_) = sorted((outputs / "evals" / run.name).glob("mytopics_validation_*.json"))
    assert json.loads(result.read_text())["metrics"]["examples"] == 16
    config["label_names"] = ["travel", "sports", "cooking", "technology"]
    (tmp_path / "conf" / "data" / "shuffled.yaml").write_text(yaml.safe_dump({**config, "name": "shuffled"}))
    code, out, err = run_cli(["eval", f"run={run}", f"data={tmp_path / 'conf' / 'data' / 'shuffled.yaml'}"],
                             outputs, monkeypatch, capsys)
    assert code == 2 and "eval needs the same label names in the same order" in err
