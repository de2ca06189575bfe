"""Committed reports regenerate: `ltune report` on a study's committed runs prints the committed
report.md, results.csv, runs.csv and paired.csv (scripts/regenerate_reports.py --check), so a change to
the report code that changes what a committed report says shows up here and is committed with it."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "regenerate_reports.py"
spec = importlib.util.spec_from_file_location("regenerate_reports", SCRIPT)
regenerate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(regenerate)

EVERY = sorted({study for study, _ in regenerate.calls()})


def test_every_study_with_runs_lists_its_reports():
    studies = SCRIPT.parents[1] / "studies"
    with_runs = {p.relative_to(studies).parts[0] for p in studies.glob("*/**/metrics.json")}
    assert with_runs <= set(EVERY), f"studies with runs but no reports.txt: {sorted(with_runs - set(EVERY))}"


def test_one_studys_reports_regenerate_from_its_committed_runs():
    assert "label_semantics" in EVERY
    assert [d for _, call in regenerate.calls(["label_semantics"]) for d in regenerate.check(call)] == []


@pytest.mark.slow  # every study: about a minute on 2 cores
@pytest.mark.parametrize("study", EVERY)
def test_every_studys_reports_regenerate(study):
    ready = [call for _, call in regenerate.calls([study]) if (regenerate.ROOT / regenerate.report_folder(call)).is_dir()]
    assert [d for call in ready for d in regenerate.check(call)] == []  # a study in progress: its written folders


def test_a_changed_report_is_caught(tmp_path, monkeypatch):
    """A committed file that the report code no longer prints is a difference; the checkout is not written."""
    from ltune.report import report
    from tests.test_report import fake_run

    study = tmp_path / "studies" / "toy"
    for method in ("l_prefix", "prefix"):
        for seed in (1, 2, 3):
            fake_run(study / "runs", "minilm", "sst2", method, seed, 0.7 + 0.01 * seed)
    (study / "reports.txt").write_text("studies/toy/runs  # the only call\n")
    monkeypatch.setattr(regenerate, "ROOT", tmp_path)
    monkeypatch.setattr(regenerate, "STUDIES", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    report(Path("studies/toy/runs"))
    assert regenerate.main(["--check", "toy"]) == 0
    committed = (study / "runs" / "results.csv").read_text()
    (study / "runs" / "results.csv").write_text(committed.replace("0.7", "0.8", 1))
    assert regenerate.check(["studies/toy/runs"]) == ["studies/toy/runs/results.csv"]
    assert regenerate.main(["--check", "toy"]) == 1
    assert (study / "runs" / "results.csv").read_text() == committed.replace("0.7", "0.8", 1)  # left as it was
