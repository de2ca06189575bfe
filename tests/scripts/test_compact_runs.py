"""scripts/compact_runs.py: finished runs' logs and predictions gzipped, read back the same by the report."""

import importlib.util
import json
from pathlib import Path

from ltune.report.collect import collect
from ltune.run_files import read_json_lines
from tests.test_report import fake_run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compact_runs.py"
spec = importlib.util.spec_from_file_location("compact_runs", SCRIPT)
compact_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compact_runs)


def folder_of_runs(root: Path) -> tuple[Path, Path]:
    """Two finished runs with predictions, and an unfinished run (a log, no metrics.json)."""
    for seed, accuracy in ((1, 0.8), (2, 0.7)):
        finished = fake_run(root, "minilm", "sst2", "prefix", seed, accuracy, predictions=[(1, 1), (0, 1), (0, 0)])
        metrics = json.loads((finished / "metrics.json").read_text())
        (finished / "metrics.json").write_text(json.dumps({**metrics, "status": "finished"}))
    unfinished = root / "minilm_sst2_prefix_3"
    (unfinished / ".hydra").mkdir(parents=True)
    (unfinished / "config.yaml").write_text("{}")
    (unfinished / "checkpoint.pt").write_bytes(b"")
    (unfinished / "log.jsonl").write_text('{"step": 1, "loss": 0.7}\n')
    return finished, unfinished


def comparable(runs: list[dict]) -> list[dict]:
    return sorted(json.dumps(run, sort_keys=True, default=str) for run in runs)


def test_finished_runs_are_compressed_and_the_report_reads_them_the_same(tmp_path):
    finished, unfinished = folder_of_runs(tmp_path)
    plain_log = (finished / "log.jsonl").read_text()
    before = collect(tmp_path)

    assert compact_runs.main([str(tmp_path)]) == 0

    assert not (finished / "log.jsonl").exists() and not (finished / "predictions.jsonl").exists()
    assert (finished / "log.jsonl.gz").is_file() and (finished / "predictions.jsonl.gz").is_file()
    assert read_json_lines(finished / "log.jsonl") == [json.loads(line) for line in plain_log.splitlines()]
    assert comparable(collect(tmp_path)[0]) == comparable(before[0])  # logs, predictions, settings: the same
    assert collect(tmp_path)[1] == before[1]  # the unfinished run is still listed as unfinished
    # the unfinished run keeps its plain log: a resume appends to it
    assert (unfinished / "log.jsonl").read_text() == '{"step": 1, "loss": 0.7}\n'
    assert not (unfinished / "log.jsonl.gz").exists()


def test_compressing_again_changes_nothing_and_check_says_what_is_pending(tmp_path, capsys):
    finished, _ = folder_of_runs(tmp_path)
    assert compact_runs.main([str(tmp_path), "--check"]) == 1
    assert f"{finished / 'predictions.jsonl'}" in capsys.readouterr().out
    compact_runs.main([str(tmp_path)])
    packed = (finished / "predictions.jsonl.gz").read_bytes()
    assert compact_runs.main([str(tmp_path), "--check"]) == 0
    compact_runs.main([str(tmp_path)])
    assert (finished / "predictions.jsonl.gz").read_bytes() == packed


def test_a_run_compresses_to_the_same_bytes_whenever_it_is_compressed(tmp_path):
    """No time or name in the gzip header: the committed file does not change with the machine or the day."""
    copies = []
    for name in ("a", "b"):
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"status": "finished"}))
        (run / "predictions.jsonl").write_text('{"id": 0, "label": 1, "prediction": 1}\n')
        compact_runs.compact(run)
        copies.append((run / "predictions.jsonl.gz").read_bytes())
    assert copies[0] == copies[1]
    assert copies[0][4:8] == b"\0\0\0\0"  # the gzip header's time field: zero, not the time of compressing


def test_a_missing_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert compact_runs.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_committed_runs_keep_what_the_report_reads_and_its_figures_stay_the_same(tmp_path):
    """Training-step lines of the log and the per-label scores of the predictions go (the report reads
    neither); results.csv, runs.csv and paired.csv are byte for byte those of the uncut runs. --full
    keeps every line."""
    from ltune.report import report

    for folder in ("cut", "full"):
        for method in ("l_prefix", "prefix"):
            for seed in (1, 2):
                run = fake_run(tmp_path / folder, "minilm", "sst2", method, seed, 0.7 + 0.01 * seed,
                               predictions=[(1, 1), (0, 1), (0, 0)])
                steps = "".join(json.dumps({"step": s, "loss": 0.5, "lr": 0.01, "elapsed": s / 10}) + "\n" for s in (1, 2, 3))
                (run / "log.jsonl").write_text(steps + (run / "log.jsonl").read_text())
                metrics = json.loads((run / "metrics.json").read_text())
                (run / "metrics.json").write_text(json.dumps({**metrics, "status": "finished"}))
    report(tmp_path / "cut")
    before = {name: (tmp_path / "cut" / name).read_text() for name in ("results.csv", "runs.csv", "paired.csv")}
    assert compact_runs.main([str(tmp_path / "cut")]) == 0
    assert compact_runs.main([str(tmp_path / "full"), "--full"]) == 0
    run = tmp_path / "cut" / "minilm_sst2_prefix_1"
    assert all("heldout" in record for record in read_json_lines(run / "log.jsonl"))
    assert len(read_json_lines(run / "log.jsonl")) == 3
    assert read_json_lines(run / "predictions.jsonl")[0] == {"id": 0, "label": 1, "prediction": 1}
    assert len(read_json_lines(tmp_path / "full" / "minilm_sst2_prefix_1" / "log.jsonl")) == 6
    assert "scores" in read_json_lines(tmp_path / "full" / "minilm_sst2_prefix_1" / "predictions.jsonl")[0]
    report(tmp_path / "cut")
    assert {name: (tmp_path / "cut" / name).read_text() for name in before} == before
    assert compact_runs.main([str(tmp_path / "cut"), "--check"]) == 0  # cut once: nothing left to change
