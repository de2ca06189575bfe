"""studies/offline_table_smollm2/scripts/pilot_budget.py: the step budget a pilot's held-out curves give, by its fixed rule."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "offline_table_smollm2" / "scripts" / "pilot_budget.py"
spec = importlib.util.spec_from_file_location("pilot_budget", SCRIPT)
pilot_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pilot_budget)


def fake_run(root: Path, name: str, curve: dict[int, float], status: str = "finished") -> None:
    run = root / name
    run.mkdir(parents=True)
    steps = max(curve)
    lines = [{"step": s, "loss": 0.5} | ({"heldout": {"accuracy": curve[s]}} if s in curve else {})
             for s in range(1, steps + 1)]
    (run / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (run / "metrics.json").write_text(json.dumps({"status": status, "method": name, "steps": steps}))


def test_the_budget_is_the_factor_times_the_latest_flattening_rounded_up(tmp_path, capsys):
    fake_run(tmp_path, "fast", {25: 0.80, 50: 0.86, 75: 0.865, 100: 0.86, 400: 0.866})  # flat from 50
    fake_run(tmp_path, "slow", {25: 0.5, 100: 0.7, 150: 0.82, 175: 0.85, 400: 0.852})  # flat from 175
    fake_run(tmp_path, "broken", {25: 0.9, 400: 0.99}, status="failed")  # not read
    assert pilot_budget.main([str(tmp_path), "--override"]) == 0
    assert capsys.readouterr().out.strip() == "trainer.max_steps=300"  # 1.5 x 175 = 262.5 -> 300
    record = json.loads((tmp_path / "budget.json").read_text())
    assert {row["run"]: row["flat_from"] for row in record["runs"]} == {"fast": 50, "slow": 175}


@pytest.mark.parametrize("flat, expected", [(30, 200), (600, 400)])  # the floor; the pilot's own length
def test_the_budget_stays_between_the_floor_and_what_the_pilot_trained(tmp_path, capsys, flat, expected):
    curve = {step: 0.5 for step in range(25, 401, 25)} | {flat: 0.9} if flat < 400 else {25: 0.5, 400: 0.9}
    fake_run(tmp_path, "run", curve)
    pilot_budget.main([str(tmp_path), "--override", "--no-write"])
    assert capsys.readouterr().out.strip() == f"trainer.max_steps={expected}"
    assert not (tmp_path / "budget.json").exists()


def test_no_finished_run_is_an_error(tmp_path, capsys):
    fake_run(tmp_path, "broken", {25: 0.9}, status="failed")
    assert pilot_budget.main([str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_a_compressed_log_gives_the_same_budget(tmp_path, capsys):
    import gzip

    fake_run(tmp_path, "slow", {25: 0.5, 100: 0.7, 150: 0.82, 175: 0.85, 400: 0.852})
    log = tmp_path / "slow" / "log.jsonl"
    (tmp_path / "slow" / "log.jsonl.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    pilot_budget.main([str(tmp_path), "--override", "--no-write"])
    assert capsys.readouterr().out.strip() == "trainer.max_steps=300"
