import json
from collections import Counter

import pytest
from omegaconf import OmegaConf

from ltune.data import load_task
from ltune.errors import LtuneError
from tests.conftest import compose


def data_cfg(name, **overrides):
    cfg = compose(f"data={name}", "data.glue_dir=null").data
    OmegaConf.set_struct(cfg, False)
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


@pytest.mark.parametrize(
    "name,train,dev,dev_counts",
    [
        ("cola", 8551, 1043, {1: 721, 0: 322}),
        ("rte", 2490, 277, {0: 146, 1: 131}),  # entailment = 0, as on the hub
        ("sst2", 67349, 872, {1: 444, 0: 428}),
    ],
)
def test_glue_tsv_folder(glue, name, train, dev, dev_counts):
    task = load_task(data_cfg(name, glue_dir=str(glue), max_heldout_samples=500), seed=0)
    assert len(task.train) + len(task.heldout) == train
    assert len(task.heldout) == min(round(0.1 * train), 500)
    assert len(task.dev) == dev
    assert Counter(e.label for e in task.dev) == dev_counts
    assert len(task.dev[0].texts) == (2 if name == "rte" else 1)


def test_heldout_is_disjoint_seeded_and_caps_are_seeded(glue):
    cfg = data_cfg("rte", glue_dir=str(glue), max_train_samples=100, max_eval_samples=50)
    a, b, c = load_task(cfg, seed=1), load_task(cfg, seed=1), load_task(cfg, seed=2)
    assert a.train == b.train and a.heldout == b.heldout and a.dev == b.dev
    assert a.heldout != c.heldout
    assert a.dev == c.dev  # seed replicates are scored on the same dev examples (data.eval_sample_seed)
    assert load_task(data_cfg("rte", glue_dir=str(glue), max_eval_samples=50, eval_sample_seed=7), seed=1).dev != a.dev
    assert len(a.train) == 100 and len(a.dev) == 50
    train_ids = {e.id for e in a.train}
    assert not any(e.id in train_ids for e in a.heldout)  # (RTE's train file repeats some pairs: compare rows)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_hub_code_path_with_a_local_dataset(tmp_path):
    """The same datasets.load_dataset call that reads nyu-mll/glue, pointed at a local folder."""
    rows = [{"sentence": f"text number {i}", "label": i % 2, "idx": i} for i in range(40)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "validation.jsonl", rows[:10])
    task = load_task(data_cfg("sst2", hub_path=str(tmp_path), hub_name=None), seed=0)
    assert len(task.train) == 36 and len(task.heldout) == 4 and len(task.dev) == 10
    assert task.label_texts[1] == "the sentiment of this review is positive"


@pytest.mark.parametrize(
    "rows,overrides,message",
    [
        ([{"sentence": "a", "label": 0}], {"label_texts": ["only one"]}, "2 label_names but 1 label_texts"),
        ([{"sentence": "a", "label": 5}] * 20, {}, "has label 5, which is not in data.label_names"),
        ([{"text": "a", "label": 0}] * 20, {}, "has no column(s) ['sentence']"),
        ([], {}, "train.jsonl is empty; every split needs examples"),
    ],
)
def test_bad_data_gets_a_clear_error(tmp_path, rows, overrides, message):
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "validation.jsonl", rows or [{"sentence": "x", "label": 0}])
    cfg = data_cfg("sst2", files={"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "validation.jsonl")},
                   format="json", **overrides)
    with pytest.raises(LtuneError) as info:
        load_task(cfg, seed=0)
    assert message in str(info.value)


def test_demo_data_is_shipped_and_balanced():
    task = load_task(data_cfg("demo"), seed=0)
    assert len(task.train) + len(task.heldout) == 320 and len(task.dev) == 80
    assert Counter(e.label for e in task.dev) == {0: 20, 1: 20, 2: 20, 3: 20}


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")


def test_glue_tsv_layouts_whose_columns_differ_from_the_hub(tmp_path):
    """MRPC, QQP and MNLI name their TSV columns differently from nyu-mll/glue; MNLI has two dev files."""
    mrpc = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(tmp_path / "MRPC" / "train.tsv", mrpc, [[str(i % 2), "1", "2", f"a {i}", f"b {i}"] for i in range(20)])
    write_tsv(tmp_path / "MRPC" / "dev.tsv", mrpc, [["1", "1", "2", "same", "same"]])
    task = load_task(data_cfg("mrpc", glue_dir=str(tmp_path)), seed=0)
    assert task.dev[0].texts == ("same", "same") and task.dev[0].label == 1 and task.metrics == ["accuracy", "f1"]

    mnli = ["index", "promptID", "pairID", "genre", "sentence1", "sentence2", "label1", "gold_label"]
    rows = [[str(i), "0", "0", "fiction", f"p {i}", f"h {i}", "x", ["entailment", "neutral", "contradiction"][i % 3]]
            for i in range(30)]
    write_tsv(tmp_path / "MNLI" / "train.tsv", mnli, rows)
    write_tsv(tmp_path / "MNLI" / "dev_matched.tsv", mnli, rows[:3])
    write_tsv(tmp_path / "MNLI" / "dev_mismatched.tsv", mnli, rows[3:5])
    matched = load_task(data_cfg("mnli", glue_dir=str(tmp_path)), seed=0)
    mismatched = load_task(data_cfg("mnli_mismatched", glue_dir=str(tmp_path)), seed=0)
    assert [e.label for e in matched.dev] == [0, 1, 2] and len(mismatched.dev) == 2


def test_unlabeled_rows_are_skipped_where_configured(tmp_path):
    rows = [{"premise": f"p{i}", "hypothesis": "h", "label": (i % 4) - 1} for i in range(40)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "validation.jsonl", rows[:8])
    task = load_task(data_cfg("snli", hub_path=str(tmp_path)), seed=0)
    assert len(task.train) + len(task.heldout) == 30 and len(task.dev) == 6


# -- issue 9: defects that made results silently wrong ---------------------------------------

def local_cfg(tmp_path, train_rows, dev_rows, suffix="jsonl", **overrides):
    for split, rows in (("train", train_rows), ("validation", dev_rows)):
        write_jsonl(tmp_path / f"{split}.{suffix}", rows)
    files = {"train": str(tmp_path / f"train.{suffix}"), "validation": str(tmp_path / f"validation.{suffix}")}
    return data_cfg("sst2", files=files, format=None, **{"labels_are_indices": False, **overrides})


@pytest.mark.parametrize("names,values", [([-1, 1], [-1, 1]), ([1, 0], [1, 0]), (["1", "0"], ["1", "0"])])
def test_numeric_label_values_are_matched_as_names_first(tmp_path, names, values):
    rows = [{"sentence": f"text {i}", "label": values[i % 2]} for i in range(40)]
    task = load_task(local_cfg(tmp_path, rows, rows[:6], label_names=names), seed=0)
    # Row i carries label value values[i % 2], which is label_names[i % 2]: index i % 2.
    assert [e.label for e in task.dev] == [i % 2 for i in range(6)]


def test_label_indices_only_where_the_config_says_so(tmp_path):
    rows = [{"sentence": f"text {i}", "label": i % 2} for i in range(40)]
    with pytest.raises(LtuneError, match="has label 0, which is not in data.label_names"):
        load_task(local_cfg(tmp_path, rows, rows[:6], label_names=["neg", "pos"]), seed=0)
    task = load_task(local_cfg(tmp_path, rows, rows[:6], label_names=["neg", "pos"], labels_are_indices=True), seed=0)
    assert [e.label for e in task.dev] == [0, 1, 0, 1, 0, 1]


def test_utf8_byte_order_mark_is_read_in_tsv_csv_and_jsonl(tmp_path):
    bom = "\ufeff"
    mrpc = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    rows = [[str(i % 2), "1", "2", f"a {i}", f"b {i}"] for i in range(20)]
    for split in ("train", "dev"):
        path = tmp_path / "MRPC" / f"{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(bom + "\n".join("\t".join(r) for r in [mrpc, *rows]) + "\n", encoding="utf-8")
    assert len(load_task(data_cfg("mrpc", glue_dir=str(tmp_path)), seed=0).dev) == 20

    (tmp_path / "t.csv").write_text(bom + "sentence,label\n" + "".join(f"s {i},{i % 2}\n" for i in range(20)))
    (tmp_path / "t.jsonl").write_text(bom + "".join(json.dumps({"sentence": f"s {i}", "label": i % 2}) + "\n"
                                                   for i in range(20)))
    for name in ("t.csv", "t.jsonl"):
        cfg = data_cfg("sst2", files={"train": str(tmp_path / name), "validation": str(tmp_path / name)}, format=None)
        assert len(load_task(cfg, seed=0).dev) == 20


def test_dev_sample_does_not_depend_on_the_train_cap(tmp_path):
    rows = [{"sentence": f"text {i}", "label": i % 2} for i in range(300)]
    dev = [{"sentence": f"dev {i}", "label": i % 2} for i in range(100)]
    small = load_task(local_cfg(tmp_path, rows, dev, labels_are_indices=True, max_train_samples=20, max_eval_samples=30), seed=3)
    large = load_task(local_cfg(tmp_path, rows, dev, labels_are_indices=True, max_train_samples=200, max_eval_samples=30), seed=3)
    assert small.dev == large.dev and small.heldout == large.heldout
    assert len(small.train) == 20 and len(large.train) == 200


def test_glue_folder_reads_the_split_it_is_asked_for(tmp_path):
    header = ["index", "sentence1", "sentence2", "label"]
    for split, n in (("train", 30), ("dev", 5), ("test", 7)):
        write_tsv(tmp_path / "RTE" / f"{split}.tsv", header,
                  [[str(i), f"{split} {i}", "h", "entailment"] for i in range(n)])
    assert len(load_task(data_cfg("rte", glue_dir=str(tmp_path)), seed=0).dev) == 5
    task = load_task(data_cfg("rte", glue_dir=str(tmp_path), eval_split="test"), seed=0)
    assert len(task.dev) == 7 and task.dev[0].texts[0].startswith("test")
    with pytest.raises(LtuneError, match="no split 'dev_typo'; valid splits: train, validation, test"):
        load_task(data_cfg("rte", glue_dir=str(tmp_path), eval_split="dev_typo"), seed=0)


def test_a_glue_tsv_row_with_a_stray_tab_is_refused_not_shifted(tmp_path):
    """Bug: a GLUE TSV row with an extra tab was read with its columns shifted (zip dropped the
    last field): here the hypothesis became "entailment" and the label "junk". Now one line names
    the file and row. Rows whose text holds a Unicode line separator stay one row."""
    header = ["index", "sentence1", "sentence2", "label"]
    write_tsv(tmp_path / "RTE" / "dev.tsv", header, [[str(i), f"p\u2028{i}", "h", "entailment"] for i in range(5)])
    rows = [[str(i), "p", "h", "not_entailment"] for i in range(30)]
    rows[6] = ["6", "a premise", "with a tab", "entailment", "junk"]
    write_tsv(tmp_path / "RTE" / "train.tsv", header, rows)
    with pytest.raises(LtuneError, match=r"train.tsv line 8: 5 tab-separated fields where there should be 4"):
        load_task(data_cfg("rte", glue_dir=str(tmp_path)), seed=0)
    rows[6] = ["6", "a premise", "h", "entailment"]
    write_tsv(tmp_path / "RTE" / "train.tsv", header, rows)
    task = load_task(data_cfg("rte", glue_dir=str(tmp_path)), seed=0)
    assert [e.texts[0] for e in task.dev] == [f"p\u2028{i}" for i in range(5)]


@pytest.mark.parametrize("rows,overrides,message", [
    ([{"sentence": "a", "label": 0}] * 20, {"label_names": ["neg", "neg"], "labels_are_indices": True},
     "lists label name(s) ['neg'] more than once"),
    ([{"sentence": None, "label": 0}] * 20, {"labels_are_indices": True}, "has no text in column 'sentence' (null)"),
])
def test_phantom_classes_and_null_texts_are_refused(tmp_path, rows, overrides, message):
    with pytest.raises(LtuneError) as info:
        load_task(local_cfg(tmp_path, rows, rows, **overrides), seed=0)
    assert message in str(info.value)


def test_a_files_own_repeated_ids_never_pair_or_reorder_rows(tmp_path):
    """Issue 43, item 7: a data file's own id column is not what ltune pairs or orders by. Every example's id
    is its row's position in the split's source, unique whatever the file says, so predictions, pairing
    between runs and predict's order go to the right rows even when the file repeats its ids."""
    import torch

    from ltune.evaluation import Predictions, in_given_order

    rows = [{"sentence": f"text {i}", "label": i % 2, "id": 7} for i in range(40)]
    dev = [{"sentence": f"dev {i}", "label": i % 2, "idx": 0} for i in range(12)]
    task = load_task(local_cfg(tmp_path, rows, dev, labels_are_indices=True), seed=0)
    assert sorted(e.id for e in task.dev) == list(range(12))
    assert [e.texts[0] for e in sorted(task.dev, key=lambda e: e.id)] == [f"dev {i}" for i in range(12)]
    ids = [e.id for e in task.train + task.heldout]
    assert len(set(ids)) == len(ids) == 40
    # predictions come back in length order; each row goes to the example whose id it carries
    order = torch.tensor([3, 0, 2, 1])
    scores = torch.arange(8, dtype=torch.float).view(4, 2)
    placed = in_given_order(Predictions(scores, torch.zeros(4), order))
    assert torch.equal(placed[order], scores)


def test_a_quoted_newline_in_a_csv_field_stays_in_the_text(tmp_path):
    """Issue 44, item 1: 'What is the capital\\nof Australia ?' kept its words apart by the newline; reading
    the CSV line by line glued them ('capitalof'). The reader that training, evaluation and predict share
    keeps the newline, and error line numbers stay the file's own."""
    from ltune.data.files import read_rows

    path = tmp_path / "q.csv"
    path.write_text('text,label\n"What is the capital\nof Australia ?",LOC\nplain,HUM\n')
    rows = read_rows(path, "csv")
    assert [r["text"] for r in rows] == ["What is the capital\nof Australia ?", "plain"]
    path.write_text('text,label\n"two\nlines",LOC\nbad,row,extra\n')
    with pytest.raises(LtuneError, match="q.csv line 4: 3 fields where the header has 2"):
        read_rows(path, "csv")
