"""Runs trained with data.label_text_kind, and ``ltune eval label_texts=``: dev scored under
another wording of the label texts (L-methods only), with a 95% interval."""

import json
from pathlib import Path

import pytest

from ltune.data.label_texts import permuted
from tests.conftest import run_cli

DEMO_TEXTS = ["this text is about sports", "this text is about cooking and food", "this text is about technology",
              "this text is about travel"]
PARAPHRASES = ["a text on games and athletes", "a text on recipes and meals", "a text on computers and software",
               "a text on trips and places"]


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def snapshot(folder: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.parametrize("kind", ["permuted", "meaningless"])
def test_a_run_records_and_reloads_the_label_texts_of_its_kind(trained_runs, kind):
    from ltune.commands.use import load_run
    from ltune.data.label_texts import token_count

    run = trained_runs("l_prefix", f"data.label_text_kind={kind}")
    metrics = metrics_of(run)
    used = list(metrics["label_texts_used"].values())
    assert metrics["label_text_kind"] == kind and isinstance(metrics["tied_labels"], list)
    cfg, method = load_run(run, device="cpu")
    assert list(metrics["label_texts_used"]) == [str(n) for n in cfg.data.label_names]
    assert method.label_texts == used  # eval / predict / explain encode what the run was trained with
    if kind == "permuted":
        assert used == permuted(DEMO_TEXTS)
    else:
        tok = method.backbone.tokenizer
        assert [token_count(tok, t) for t in used] == [token_count(tok, t) for t in DEMO_TEXTS]
        assert not set(used) & set(DEMO_TEXTS)


def test_the_report_shows_the_kind_as_the_variant_and_pairs_it_with_configured(trained_runs, tmp_path):
    import csv
    import shutil

    for kind in ("configured", "permuted"):
        run = trained_runs("l_prefix", f"data.label_text_kind={kind}")
        shutil.copytree(run, tmp_path / "runs" / kind)
    code, out, err = run_cli(["report", str(tmp_path / "runs")], tmp_path)
    assert code == 0, err
    found = next(tmp_path.rglob("runs.csv"))
    rows = {r["label_text_kind"]: r for r in csv.DictReader(found.open())}
    assert set(rows) == {"configured", "permuted"} and "tied_labels" in rows["configured"]
    assert rows["permuted"]["variant"] == "data.label_text_kind=permuted" and rows["configured"]["variant"] == ""
    (pair,) = csv.DictReader(next(tmp_path.rglob("paired.csv")).open())
    assert pair["kind"] == "data.label_text_kind changed (B: default)"
    assert pair["a"] == "l_prefix [data.label_text_kind=permuted]" and pair["b"] == "l_prefix"


def test_eval_label_texts_scores_dev_under_another_wording_with_an_interval(trained_runs, tmp_path):
    run = trained_runs("l_prefix")
    before = (run / "metrics.json").read_bytes()
    out = tmp_path / "same.json"
    code, stdout, err = run_cli(["eval", f"run={run}", f"label_texts={json.dumps(DEMO_TEXTS)}", f"out={out}"], tmp_path)
    assert code == 0, err
    same = json.loads(out.read_text())
    # The trained wording given explicitly reproduces the run's own dev figure.
    assert same["metrics"]["accuracy"] == pytest.approx(metrics_of(run)["dev"]["accuracy"])
    low, high = same["accuracy_ci95"]
    assert low <= same["metrics"]["accuracy"] <= high and high - low > 0
    assert same["tied_labels"] == metrics_of(run)["tied_labels"]  # the same texts tie as in training
    assert "95% interval" in stdout

    out2 = tmp_path / "paraphrase.json"
    code, stdout, err = run_cli(["eval", f"run={run}", f"label_texts={json.dumps(PARAPHRASES)}", f"out={out2}"],
                                tmp_path)
    assert code == 0, err
    result = json.loads(out2.read_text())
    assert list(result["label_texts"].values()) == PARAPHRASES
    assert (run / "metrics.json").read_bytes() == before  # the run's own figures stay


def test_eval_label_texts_default_file_is_beside_other_evals_never_in_the_run(trained_runs, tmp_path):
    run = trained_runs("l_prefix")
    before = snapshot(run)
    code, stdout, err = run_cli(["eval", f"run={run}", f"label_texts={json.dumps(PARAPHRASES)}"], tmp_path)
    assert code == 0, err
    (written,) = (tmp_path / "evals").rglob("*.json")
    assert "label_texts" in written.name and snapshot(run) == before


@pytest.mark.parametrize("method, texts, message", [
    ("prefix", json.dumps(PARAPHRASES), "method=prefix has a head trained for the run's 4 labels"),
    ("l_prefix", json.dumps(PARAPHRASES[:2]), "label_texts= gives 2 label texts but the run has 4 labels"),
    ("l_prefix", "[not json", "label_texts= takes a JSON list"),
    ("l_prefix", '{"a": "b"}', "label_texts= takes a JSON list of label texts"),
])
def test_eval_label_texts_refusals_are_one_line_and_write_nothing(trained_runs, tmp_path, method, texts, message):
    run = trained_runs(method)
    before = snapshot(run)
    code, out, err = run_cli(["eval", f"run={run}", f"label_texts={texts}"], tmp_path)
    assert code == 2 and err.count("\n") == 1 and err.startswith("ltune: ") and message in err, err
    assert not (tmp_path / "evals").exists() and snapshot(run) == before


def test_the_paraphrase_step_scores_configured_replicates_only_and_resumes(trained_runs, tmp_path, monkeypatch):
    import csv
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location(
        "label_paraphrases", Path(__file__).parents[2] / "studies" / "label_semantics" / "scripts" / "label_paraphrases.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sweep = tmp_path / "sweep"
    shutil.copytree(trained_runs("l_prefix"), sweep / "final" / "configured_s42")
    shutil.copytree(trained_runs("l_prefix", "data.label_text_kind=permuted"), sweep / "final" / "permuted_s42")
    shutil.copytree(trained_runs("l_prefix"), sweep / "search" / "configured_lr_s42")
    wordings = tmp_path / "wordings.json"
    wordings.write_text(json.dumps({"demo": {"paraphrase": PARAPHRASES}}))
    out = tmp_path / "paraphrases.csv"
    script.main([str(sweep), "--out", str(out), "--wordings", str(wordings)])
    rows = list(csv.DictReader(out.open()))
    runs = [r for r in rows if r["row"] == "run"]
    assert {r["run"] for r in runs} == {"final/configured_s42"}  # permuted and search runs left out
    assert {r["wording"] for r in runs} == {"trained", "paraphrase"}
    means = {r["wording"]: r for r in rows if r["row"] == "mean"}
    assert set(means) == {"trained", "paraphrase"} and means["paraphrase"]["runs"] == "1"
    assert all("tied_labels" in r for r in runs) and means["trained"]["runs_with_tied_labels"] in ("0", "1")
    (evaluated,) = (sweep / "paraphrases").iterdir()
    stamp = evaluated.stat().st_mtime_ns
    script.main([str(sweep), "--out", str(out), "--wordings", str(wordings)])
    assert evaluated.stat().st_mtime_ns == stamp  # read back, not evaluated again
    # A run trained on another machine comes without its weights: what was scored there still counts.
    (sweep / "final" / "configured_s42" / "trainable.safetensors").unlink()
    script.main([str(sweep), "--out", str(out), "--wordings", str(wordings)])
    rows = list(csv.DictReader(out.open()))
    assert {r["run"] for r in rows if r["row"] == "run"} == {"final/configured_s42"}
