import json

from ltune.bench import main, markdown, parse


def test_bench_measures_every_requested_method(tmp_path):
    folder = main(["steps=2", "warmup=1", "seq_len=8", "batch_size=2", "methods=prefix,l_prefix,l_prefix+reencode",
                   f"out={tmp_path}"])
    report = json.loads((folder / "bench.json").read_text())
    assert [r["method"] for r in report["results"]] == ["prefix", "l_prefix", "l_prefix+reencode"]
    for r in report["results"]:
        assert r["step_seconds"] > 0 and r["eval_seconds_per_example"] > 0 and r["trainable_params"] > 0
        assert r["step_time_vs_prefix"] > 0
    assert report["results"][0]["step_time_vs_prefix"] == 1.0
    assert "| l_prefix+reencode |" in (folder / "bench.md").read_text() == markdown(report) + "\n"


def test_bench_rejects_unknown_options():
    import pytest

    from ltune.errors import LtuneError

    with pytest.raises(LtuneError, match="bad bench option 'stepz=3'"):
        parse(["stepz=3"])
