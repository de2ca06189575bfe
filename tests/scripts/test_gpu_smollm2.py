"""scripts/gpu_smollm2.sh merge: what came back from a GPU host joins the committed sweep, finished runs only."""

import gzip
import json
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_smollm2.sh"


def run_folder(root: Path, name: str, status: str | None, predictions: str) -> None:
    run = root / "runs" / "final" / name
    run.mkdir(parents=True)
    if status:
        (run / "metrics.json").write_text(json.dumps({"status": status}))
    (run / "predictions.jsonl").write_text(predictions)


def test_merge_takes_finished_runs_compressed_and_never_overwrites_one(tmp_path):
    host = tmp_path / "host"
    run_folder(host, "smollm2_sst2_prompt_s1", "finished", '{"id": 0, "prediction": 1}\n')
    run_folder(host, "smollm2_sst2_prompt_s2", None, '{"id": 0, "prediction": 0}\n')  # unfinished on the host
    run_folder(host, "smollm2_sst2_prompt_s3", "finished", '{"id": 0, "prediction": 0}\n')
    (host / "runs" / "tuning.json").write_text("{}")
    archive = tmp_path / "smollm2.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(host, arcname=".")
    here = tmp_path / "docs"
    run_folder(here, "smollm2_sst2_prompt_s3", "finished", '{"id": 0, "prediction": 1}\n')  # finished here first

    subprocess.run(["bash", str(SCRIPT), "merge", str(archive)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "SMOLLM2_DIR": str(here)},
                   cwd=SCRIPT.parents[1])

    final = here / "runs" / "final"
    merged = final / "smollm2_sst2_prompt_s1"
    assert gzip.decompress((merged / "predictions.jsonl.gz").read_bytes()) == b'{"id": 0, "prediction": 1}\n'
    assert not (final / "smollm2_sst2_prompt_s2").exists()
    assert gzip.decompress((final / "smollm2_sst2_prompt_s3" / "predictions.jsonl.gz").read_bytes()) == \
        b'{"id": 0, "prediction": 1}\n'  # the run finished here is kept, not the host's
    assert (here / "runs" / "tuning.json").is_file()
