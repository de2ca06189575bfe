import pytest
import torch

from ltune import run_files


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Issue 44, item 7: a disk that fills while a checkpoint is written said 'unexpected pos 606528 vs
    606416'; now it names the folder and keeps the checkpoint before."""
    from ltune.errors import LtuneError

    path = tmp_path / run_files.CHECKPOINT
    run_files.save_checkpoint(path, {"step": 2, "weights": torch.ones(3)})

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_files.os, "fsync", full_disk)
    with pytest.raises(LtuneError, match=f"no space left on {tmp_path} while writing checkpoint.pt .* the previous "
                                         "checkpoint is kept"):
        run_files.save_checkpoint(path, {"step": 4, "weights": torch.zeros(3)})
    monkeypatch.undo()
    assert run_files.load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [run_files.CHECKPOINT]  # no temporary file left


@pytest.mark.parametrize("damage", ["cut short", "2,000 bytes overwritten"])
def test_a_damaged_checkpoint_is_refused_by_its_checksum(tmp_path, damage):
    """Issue 44, item 6: a truncated checkpoint ended in a zip-reader traceback, and one with 2,000 bytes
    overwritten was accepted (the NaN that followed was blamed on the learning rate)."""
    from ltune.errors import LtuneError

    path = tmp_path / run_files.CHECKPOINT
    run_files.save_checkpoint(path, {"step": 40, "weights": torch.randn(4000)})
    raw = bytearray(path.read_bytes())
    if damage == "cut short":
        raw = raw[: len(raw) // 2]
    else:
        raw[3000:5000] = bytes(2000)
    path.write_bytes(bytes(raw))
    with pytest.raises(LtuneError, match="is damaged .* delete it to start the run again"):
        run_files.load_checkpoint(path)


def test_a_checkpoint_from_before_checksums_still_loads(tmp_path):
    path = tmp_path / run_files.CHECKPOINT
    torch.save({"step": 3}, path)
    assert run_files.load_checkpoint(path)["step"] == 3


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
