import json

from ltune.commands.bench import bench_command as main, markdown, parse


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
    with pytest.raises(LtuneError, match="bad bench option 'compile=yes'; valid: compile=true or compile=false"):
        parse(["compile=yes"])


def test_bench_records_the_speed_settings_it_ran_with(tmp_path):
    folder = main(["steps=1", "warmup=1", "seq_len=8", "batch_size=2", "methods=prompt", "attn=eager", "fused=false",
                   f"out={tmp_path}"])
    report = json.loads((folder / "bench.json").read_text())
    assert (report["attn_implementation"], report["fused_optimizer"], report["compile"]) == ("eager", False, False)
    assert "attention eager, compile False, fused AdamW False" in (folder / "bench.md").read_text()


def shrunk_7b(layers: int) -> list[str]:
    """The Llama-2-7B-shaped preset, shrunk to run on a CPU: random weights, no download."""
    return ["model=llama2_7b_random", f"model.random_init.num_hidden_layers={layers}", "model.random_init.hidden_size=64",
            "model.random_init.intermediate_size=128", "model.random_init.num_attention_heads=4",
            "model.random_init.num_key_value_heads=4", "model.dtype=float32"]


def test_gpu_preset_shape_built_from_config_reports_model_flops_utilisation(tmp_path):
    folder = main([*shrunk_7b(1), "steps=2", "warmup=1", "seq_len=8", "batch_size=2",
                   "methods=prefix,l_prefix", "peak_tflops=0.5", f"out={tmp_path}"])
    report = json.loads((folder / "bench.json").read_text())
    assert report["peak_tflops"] == 0.5 and report["backbone_params"] > 32000 * 64
    for r in report["results"]:
        expected = 4 * report["backbone_params"] * 2 * 8 / r["step_seconds"] / 1e12
        assert abs(r["model_tflops_per_second"] - expected) < 1e-9 and abs(r["mfu"] - expected / 0.5) < 1e-9


def test_profile_says_where_each_methods_step_time_goes(tmp_path):
    folder = main([*shrunk_7b(2), "steps=2", "warmup=1", "seq_len=8", "batch_size=2",
                   "methods=prefix,prompt", "profile=true", f"out={tmp_path}"])
    report = json.loads((folder / "bench.json").read_text())
    assert set(report["profiles"]) == {"prefix", "prompt"}
    for name, profile in report["profiles"].items():
        ms = {(row["part"], row["pass"]): row["ms"] for row in profile["parts"]}
        # The blocks of a frozen model still run forward and pass the gradient back to the prefix/prompt.
        for part in ("attention", "mlp"):
            assert ms[(part, "forward")] > 0 and ms[(part, "backward")] > 0, (name, part, ms)
        assert ms[("optimizer", "step")] > 0
        assert sum(ms.values()) <= profile["profiled_step_ms"] * 1.05  # the parts do not overlap
        assert f"**{name}**:" in (folder / "bench.md").read_text()


def test_profile_option_is_checked():
    import pytest

    from ltune.errors import LtuneError

    with pytest.raises(LtuneError, match="bad bench option 'profile=yes'; valid: profile=true or profile=false"):
        parse(["profile=yes"])


def test_the_benchmarks_folder_follows_ltune_output_dir(tmp_path, monkeypatch):
    """Issue 44, item 8: `ltune bench ... profile=true` wrote ./outputs/bench whatever LTUNE_OUTPUT_DIR said."""
    from ltune.commands.bench import out_folder, parse

    monkeypatch.setenv("LTUNE_OUTPUT_DIR", str(tmp_path / "mine"))
    assert out_folder(parse(["profile=true"])) == tmp_path / "mine" / "bench"
    assert out_folder(parse([f"out={tmp_path / 'here'}"])) == tmp_path / "here"
    monkeypatch.delenv("LTUNE_OUTPUT_DIR")
    assert out_folder(parse([])) == __import__("pathlib").Path("outputs") / "bench"


def test_packed_bench_times_a_pack_against_the_same_runs_one_after_another(tmp_path):
    folder = main(["model=minilm", "data=sst2", "batch_size=2", "seq_len=8", "steps=1", "warmup=1",
                   "methods=prefix,l_prompt", "packed=1,2", f"out={tmp_path}"])
    report = json.loads((folder / "bench.json").read_text())
    assert [(r["method"], r["runs"]) for r in report["results"]] == [("prefix", 1), ("prefix", 2), ("l_prompt", 1),
                                                                      ("l_prompt", 2)]
    assert all(r["pack_seconds"] > 0 and r["alone_seconds"] > 0 for r in report["results"])
    assert "| prefix | 2 |" in (folder / "bench.md").read_text()
