import pytest
import torch

from ltune import run_files


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / run_files.CHECKPOINT
    run_files.save_checkpoint(path, {"step": 2, "weights": torch.ones(3)})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_files.save_checkpoint(path, {"step": 4, "weights": torch.zeros(3)})
    assert run_files.load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [run_files.CHECKPOINT]  # no temporary file left


def test_a_failed_json_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    run_files.write_json(path, {"dev": 1})
    monkeypatch.setattr(run_files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        run_files.write_json(path, {"dev": 2})
    assert path.read_text().strip().startswith("{") and '"dev": 1' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_gguf_model_without_the_gguf_package(monkeypatch):
    import importlib.util

    from ltune.backbone import load_backbone
    from ltune.errors import LtuneError
    from tests.conftest import compose

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(LtuneError, match="model=smollm2 is a GGUF file and needs the 'gguf' package: pip install gguf"):
        load_backbone(compose("model=smollm2").model)


def test_json_lines_read_the_same_plain_or_compressed_and_stop_at_a_cut_line(tmp_path):
    import gzip

    from ltune.run_files import read_json_lines

    text = '{"step": 1}\n{"step": 2}\n{"step": 3, "lo'  # a crash cut the last line
    (tmp_path / "plain.jsonl").write_text(text)
    (tmp_path / "packed.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    assert read_json_lines(tmp_path / "plain.jsonl") == [{"step": 1}, {"step": 2}]
    assert read_json_lines(tmp_path / "packed.jsonl") == [{"step": 1}, {"step": 2}]
    assert read_json_lines(tmp_path / "missing.jsonl") == []


def test_a_compressed_file_cut_short_keeps_its_complete_lines_and_a_broken_one_is_one_error(tmp_path):
    import gzip

    from ltune.run_files import read_json_lines

    packed = gzip.compress(("".join(f'{{"step": {i}}}\n' for i in range(1000))).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    cut = read_json_lines(tmp_path / "cut.jsonl")
    assert 0 < len(cut) < 1000 and cut == [{"step": i} for i in range(len(cut))]
    with pytest.raises(ValueError, match="broken.jsonl.gz is not a readable gzip file"):
        read_json_lines(tmp_path / "broken.jsonl")
