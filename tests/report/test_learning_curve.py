"""The learning curve: dev accuracy against training size, and twins compared size by size."""

import csv

from ltune.report import report
from ltune.report.collect import collect, replicate_groups
from ltune.report.plots import LEARNING_CURVE, learning_curves
from tests.test_report import fake_run

#: Settings that go with a size (as conf/train_size sets them): the held-out slice and the batch.
LINKED = {32: (32, 8), 128: (128, 16), 512: (500, 32)}


def sized_run(folder, method, size, seed, accuracy, settings=None):
    heldout, batch = LINKED[size]
    variant = "_".join(f"{k}-{v}" for k, v in (settings or {}).items())
    return fake_run(folder, "minilm", "sst2", method, seed, accuracy, settings=settings,
                    name=f"{method}{variant}_n{size}_s{seed}",
                    data_settings={"max_train_samples": size, "max_heldout_samples": heldout},
                    trainer={"batch_size": batch},
                    predictions=[(seed % 2, 1), (1, 1), (0, 0), (size % 2, 0)])


def test_the_learning_curve_has_a_point_per_size_for_each_method_and_the_report_links_it(tmp_path):
    sizes = {"l_prefix": (32, 128, 512), "prefix": (32, 128, 512), "prompt": (32, 128)}
    for method, method_sizes in sizes.items():
        for size in method_sizes:
            for seed in (1, 2, 3):
                sized_run(tmp_path, method, size, seed, 0.6 + 0.05 * method_sizes.index(size) + 0.01 * seed)

    text = report(tmp_path).read_text()

    assert (tmp_path / LEARNING_CURVE).read_bytes()[:4] == b"\x89PNG"
    assert f"]({LEARNING_CURVE})" in text
    curves = learning_curves(replicate_groups(collect(tmp_path)[0]))
    lines = curves[("minilm", "sst2")]
    # One line per method: the settings that go with a size (held-out slice, batch) name no line.
    assert set(lines) == set(sizes)
    for method, method_sizes in sizes.items():
        assert [p["size"] for p in lines[method]] == list(method_sizes)
        assert all(p["runs"] == 3 and p["ci_low"] < p["mean"] < p["ci_high"] for p in lines[method])


def test_a_method_setting_apart_from_the_size_is_its_own_line(tmp_path):
    for size in (32, 128):
        for seed in (1, 2):
            sized_run(tmp_path, "l_prefix", size, seed, 0.7 + 0.01 * seed)
            sized_run(tmp_path, "l_prefix", size, seed, 0.6 + 0.01 * seed, settings={"z_input": "states"})

    lines = learning_curves(replicate_groups(collect(tmp_path)[0]))[("minilm", "sst2")]

    assert len(lines) == 2 and any("method.z_input=states" in name for name in lines)
    assert all([p["size"] for p in points] == [32, 128] for points in lines.values())


def test_no_learning_curve_where_every_group_has_the_same_training_size(tmp_path):
    for method in ("l_prefix", "prefix"):
        for seed in (1, 2):
            sized_run(tmp_path, method, 128, seed, 0.7 + 0.01 * seed)

    text = report(tmp_path).read_text()

    assert not (tmp_path / LEARNING_CURVE).exists() and LEARNING_CURVE not in text


def test_each_l_method_is_tested_against_its_twin_at_every_training_size(tmp_path, recwarn):
    for size in (32, 128, 512):
        for method in ("l_prefix", "prefix"):
            for seed in range(1, 7):
                sized_run(tmp_path, method, size, seed, 0.6 + 0.01 * seed + (0.02 if method == "prefix" else 0))

    text = report(tmp_path).read_text()

    twins = [r for r in csv.DictReader((tmp_path / "paired.csv").open()) if r["kind"] == "L-method vs vanilla twin"]
    assert len(twins) == 3
    paired_sizes = []
    for row in twins:
        size_a = [s for s in (32, 128, 512) if f"data.max_train_samples={s}" in row["a"]]
        size_b = [s for s in (32, 128, 512) if f"data.max_train_samples={s}" in row["b"]]
        assert size_a == size_b and len(size_a) == 1  # a pair never mixes sizes
        assert row["seeds_a"] == row["seeds_b"] == "1 2 3 4 5 6"  # the same seeds: the same data draws
        paired_sizes += size_a
    assert sorted(paired_sizes) == [32, 128, 512]
    assert "Twins not compared" not in text
    # The long group names of sizes wrap in the plot of differences instead of squeezing its axes away.
    assert not [w for w in recwarn if "Tight layout not applied" in str(w.message)]


def test_groups_at_each_size_are_named_by_the_size_alone_and_the_size_settings_are_listed_once(tmp_path):
    """The held-out slice and the batch go with the size (conf/train_size): they used to be in every
    group's name, making names of six settings; now the size names the group, in numeric order, and the
    report lists each size's settings in one table."""
    for size in (32, 128, 512):
        for seed in (1, 2):
            sized_run(tmp_path, "prefix", size, seed, 0.7 + 0.01 * seed)

    names = [key[3] for key in replicate_groups(collect(tmp_path)[0])]
    text = report(tmp_path).read_text()

    assert names == [f"data.max_train_samples={size}" for size in (32, 128, 512)]
    accuracy = text[text.index("## Accuracy (dev)"):]
    assert accuracy.index("max_train_samples=32]") < accuracy.index("max_train_samples=128]") \
        < accuracy.index("max_train_samples=512]")
    assert "| data.max_train_samples | data.max_heldout_samples | trainer.batch_size |" in text
    assert "| 512 | 500 | 32 |" in text and "| 32 | 32 | 8 |" in text
    # the csv files keep what the names leave out
    results = {r["variant"]: r["size_settings"] for r in csv.DictReader((tmp_path / "results.csv").open())}
    assert results["data.max_train_samples=512"] == "data.max_heldout_samples=500, trainer.batch_size=32"
    runs = {r["run"]: r["size_settings"] for r in csv.DictReader((tmp_path / "runs.csv").open())}
    assert runs["prefix_n32_s1"] == "data.max_heldout_samples=32, trainer.batch_size=8"


def test_names_sort_by_their_numbers():
    from ltune.report.collect import natural_key

    names = ["method.lr=0.1", "method.lr=0.05", "method.lr=9e-05", "method.lr=0.0001"]
    assert sorted(names, key=natural_key) == ["method.lr=9e-05", "method.lr=0.0001", "method.lr=0.05", "method.lr=0.1"]
    assert sorted(["n=128, z=states", "n=32, z=states", "n=32"], key=natural_key) == \
        ["n=32", "n=32, z=states", "n=128, z=states"]


def test_a_setting_that_varies_within_a_size_stays_in_the_names(tmp_path):
    for size in (32, 128):
        for seed in (1, 2):
            sized_run(tmp_path, "l_prefix", size, seed, 0.7 + 0.01 * seed)
            sized_run(tmp_path, "l_prefix", size, seed, 0.6 + 0.01 * seed, settings={"z_input": "states"})

    names = {key[3] for key in replicate_groups(collect(tmp_path)[0])}

    assert names == {"data.max_train_samples=32", "data.max_train_samples=128",
                     "data.max_train_samples=32, method.z_input=states",
                     "data.max_train_samples=128, method.z_input=states"}


def test_an_l_method_at_a_size_its_twin_lacks_is_one_line_not_a_list_of_other_sizes(tmp_path):
    for size in (32, 128):
        for seed in (1, 2):
            sized_run(tmp_path, "l_prefix", size, seed, 0.6 + 0.01 * seed)
            sized_run(tmp_path, "prefix", size, seed, 0.7 + 0.01 * seed)
    sized_run(tmp_path, "l_prefix", 512, 1, 0.8)

    text = report(tmp_path).read_text()

    assert "l_prefix [data.max_train_samples=512] has no prefix group at data.max_train_samples=512 yet" in text
    assert "vs prefix [data.max_train_samples=32] not paired" not in text
