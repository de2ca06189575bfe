"""Bad input, broken files and concurrent runs (issue 12): every case ends with exactly one line
``ltune: <problem and fix>``, a non-zero exit, no traceback, and no new or changed file under
outputs/. The cases run in-process through ``ltune.cli.main`` (fast); the concurrency test runs two
real processes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltune import run_files
from tests.conftest import run_cli

SHORT = ["trainer.max_steps=2", "trainer.eval_every=2", "data.max_eval_samples=8", "model.max_length=32"]


def snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    # Files by size and time; folders by their existence (a folder made and removed again by a
    # failed run leaves nothing but its parent's time).
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "folder" for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def finished_run(trained_runs):
    """A finished short run of the default job (trained once per test session, shared)."""
    return trained_runs("l_prefix")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows(n=20, bad_line=None, label=None, text="a text"):
    lines = [json.dumps({"text": f"{text} {i}", "label": label or ["sports", "cooking"][i % 2]}) for i in range(n)]
    if bad_line is not None:
        lines[bad_line - 1] = '{"text": "cut in the mid'
    return "\n".join(lines) + "\n"


def data_files(tmp, train, dev=None):
    dev = dev or write(tmp / "dev.jsonl", rows(6))
    return [f"data.files.train={train}", f"data.files.validation={dev}", "data.format=null"]  # format from the suffix


TICKETS = """name: tickets
files: {train: TRAIN, validation: DEV}
text_fields: [text]
label_names: [sports, cooking]
label_texts: ["this text is about sports", "this text is about cooking and food"]
"""


NULL_TEXT = '{"text": null}\n'
EMPTY_CSV_TEXT = 'text\na\n""\n'


def damaged_run(tmp: Path, finished: Path) -> Path:
    """An unfinished run of the finished run's config whose checkpoint.pt was cut short."""
    import torch

    folder = tmp / "damaged_run"
    folder.mkdir()
    (folder / "config.yaml").write_text((finished / "config.yaml").read_text())
    run_files.save_checkpoint(folder / "checkpoint.pt", {"step": 40, "weights": torch.zeros(1000)})
    (folder / "checkpoint.pt").write_bytes((folder / "checkpoint.pt").read_bytes()[:2000])
    return folder


def nli_file(tmp: Path, split: str, n: int) -> Path:
    """SuperGLUE-style RTE rows (premise, hypothesis, label, idx) as JSONL."""
    return write(tmp / f"rte_{split}.jsonl", "".join(json.dumps({"premise": f"p {i}", "hypothesis": f"h {i}",
                                                                 "label": "entailment", "idx": i}) + "\n" for i in range(n)))


def user_conf(tmp: Path, name: str, text: str) -> Path:
    """A user's --config-dir with one data config (TRAIN/DEV: two small jsonl files)."""
    train, dev = write(tmp / "u_train.jsonl", rows()), write(tmp / "u_dev.jsonl", rows(6))
    write(tmp / "my_conf" / "data" / f"{name}.yaml", text.replace("TRAIN", str(train)).replace("DEV", str(dev)))
    return tmp / "my_conf"


def model_folder(tmp: Path, fault: str) -> Path:
    """A tiny BERT saved with save_pretrained, with one fault: 'empty' (nothing in it), 'no_tokenizer' (no
    tokenizer files), 'shapes' (config.json names another MLP width than the weights have), 'layers'
    (config.json has 4 layers, the checkpoint 2: the issue's checkpoint that lacks layers)."""
    folder = tmp / f"model_{fault}"
    folder.mkdir(parents=True)
    if fault == "empty":
        return folder
    from transformers import AutoModel

    from tests.tiny import tiny_config, tokenizer

    AutoModel.from_config(tiny_config("bert")).save_pretrained(folder)
    if fault == "small_vocab":  # a tokenizer of five special tokens: every word is [UNK]
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        raw = Tokenizer(models.WordLevel({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])},
                                         unk_token="[UNK]"))
        raw.pre_tokenizer = pre_tokenizers.Whitespace()
        PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                sep_token="[SEP]", mask_token="[MASK]").save_pretrained(folder)
    elif fault != "no_tokenizer":
        tokenizer().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    if fault == "shapes":
        config["intermediate_size"] += 8
    if fault == "layers":
        config["num_hidden_layers"] += 2
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def model_path(tmp: Path, fault: str) -> list[str]:
    return ["train", "model=bert", f"model.path={model_folder(tmp, fault)}", *SHORT]


# Each case: (id, function of tmp_path and the finished run giving the arguments, text the line must hold).
CASES = [
    # -- config values ------------------------------------------------------------------------
    ("unknown model", lambda t, r: ["train", "model=gpt9"], "unknown model 'gpt9'; valid options:"),
    ("unknown data", lambda t, r: ["train", "data=glue"], "unknown data 'glue'; valid options:"),
    ("unknown method in a sweep", lambda t, r: ["train", "-m", "method=l_prefix,lprompt"], "unknown method 'lprompt'"),
    ("unknown logger", lambda t, r: ["train", "logger=slack"], "unknown logger 'slack'"),
    ("misspelt key", lambda t, r: ["train", "trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'; valid keys"),
    ("misspelt method key", lambda t, r: ["train", "method=prefix", "method.prefix_len=3"],
     "unknown config key 'method.prefix_len'"),
    ("non-integer seed", lambda t, r: ["train", "seed=abc"], "seed: Value 'abc' of type 'str' could not be converted"),
    ("fractional epochs", lambda t, r: ["train", "trainer.epochs=1.5"], "trainer.epochs: Value '1.5'"),
    ("zero epochs", lambda t, r: ["train", "trainer.epochs=0"], "trainer.epochs must be a positive integer or null"),
    ("negative train cap", lambda t, r: ["train", "data.max_train_samples=-5"],
     "data.max_train_samples must be a positive integer or null, got -5"),
    ("zero dev cap", lambda t, r: ["train", "data.max_eval_samples=0"], "data.max_eval_samples must be a positive"),
    ("negative held-out cap", lambda t, r: ["train", "data.max_heldout_samples=-1"], "data.max_heldout_samples must"),
    ("held-out fraction above 1", lambda t, r: ["train", "data.heldout_fraction=1.5"],
     "data.heldout_fraction must be between 0 and 1"),
    ("zero learning rate", lambda t, r: ["train", "trainer.lr=0"], "trainer.lr must be positive"),
    ("zero batch", lambda t, r: ["train", "trainer.batch_size=0"], "trainer.batch_size must be a positive integer"),
    ("text batch", lambda t, r: ["train", "trainer.batch_size=abc"], "trainer.batch_size: Value 'abc'"),
    ("unknown precision", lambda t, r: ["train", "trainer.precision=fp8"], "expected one of [fp32, bf16]"),
    ("non-boolean compile", lambda t, r: ["train", "trainer.compile=maybe"], "is not a valid bool"),
    ("zero patience", lambda t, r: ["train", "trainer.patience=0"], "trainer.patience must be a positive integer"),
    ("negative minimum steps", lambda t, r: ["train", "trainer.min_steps=-1"], "trainer.min_steps must be an integer >= 0"),
    ("unknown selection metric", lambda t, r: ["train", "trainer.select_on=auc"],
     "trainer.select_on must be one of accuracy, matthews_corr, f1, macro_f1, got 'auc'"),
    ("selection metric the data set does not compute", lambda t, r: ["train", "data=sst2", "trainer.select_on=matthews_corr"],
     "trainer.select_on=matthews_corr is not computed for data=sst2 (its metrics: accuracy)"),
    ("warm-up above 1", lambda t, r: ["train", "trainer.warmup_ratio=2"], "trainer.warmup_ratio must be in [0, 1)"),
    ("unknown device", lambda t, r: ["train", "trainer.device=tpu"], "expected one of [auto, cpu, cuda]"),
    ("zero max length", lambda t, r: ["train", "model.max_length=0"], "model.max_length must be a positive integer"),
    ("unknown quantisation", lambda t, r: ["train", "model.quantization=3bit"], "unknown model.quantization '3bit'"),
    ("unknown attention", lambda t, r: ["train", "model.attn_implementation=fast"],
     "unknown model.attn_implementation 'fast'"),
    ("unknown dtype", lambda t, r: ["train", "model.dtype=float8"], "expected one of [float32, bfloat16, float16]"),
    ("zero virtual tokens", lambda t, r: ["train", "method=prefix", "method.num_virtual_tokens=0"],
     "method.num_virtual_tokens must be a positive integer, got 0"),
    ("unknown init", lambda t, r: ["train", "method=l_prompt", "method.init=sideways"], "expected one of [identity, random, text]"),
    ("empty lr search", lambda t, r: ["train", "method.lr_search=[]"], "method.lr_search needs at least one"),
    ("unknown metric", lambda t, r: ["train", "data.metrics=[accuracy,bleu]"], "unknown data.metrics ['bleu']"),
    ("binary F1 on four labels", lambda t, r: ["train", "data.metrics=[accuracy,f1]"],
     "data.metrics has f1 (binary) but data set demo has 4 labels; use macro_f1"),
    ("label text count", lambda t, r: ["train", "data.label_texts=[a,b]"], "has 4 label_names but 2 label_texts"),
    ("duplicate label names", lambda t, r: ["train", "data.label_names=[sports,sports,cooking,travel]"],
     "lists label name(s) ['sports'] more than once"),
    ("three text fields", lambda t, r: ["train", "data.text_fields=[a,b,c]"], "must name one column or two"),
    ("prompt longer than the positions", lambda t, r: ["train", "method=prefix", "model.max_length=500"],
     "plus 16 prefix/prompt positions exceeds the model's 512 positions"),
    ("resume of a non-run", lambda t, r: ["train", f"resume={t}"], "is not an unfinished ltune run"),
    ("resume of a finished run", lambda t, r: ["train", f"resume={r}"], "that run already finished"),
    ("resume from a damaged checkpoint", lambda t, r: ["train", f"resume={damaged_run(t, r)}"],
     "checkpoint.pt is damaged (cut short or overwritten: its checksum does not match)"),
    # -- sources that are not there (checked before any folder exists) ------------------------
    ("hub model offline", lambda t, r: ["train", "model=bert", *SHORT],
     "model=bert needs 'bert-base-uncased' from the Hugging Face hub, which is offline here (HF_HUB_OFFLINE) and not in "
     "the local cache"),
    ("hub data offline, no GLUE advice", lambda t, r: ["train", "data=cb", *SHORT],
     "give local files with data.files={train: ..., validation: ...}, or use data=demo"),
    ("missing GLUE folder", lambda t, r: ["train", "data=rte", f"data.glue_dir={t}"], "/RTE not found; data.glue_dir must hold RTE/train.tsv"),
    ("missing data file", lambda t, r: ["train", *data_files(t, t / "nope.jsonl")], "nope.jsonl not found; check the path"),
    ("folder as data file", lambda t, r: ["train", *data_files(t, t)], "is a folder; give the path of a file"),
    ("empty data file", lambda t, r: ["train", *data_files(t, write(t / "e.jsonl", ""))], "is empty; every split"),
    ("unknown data format", lambda t, r: ["train", *data_files(t, write(t / "d.xml", "<a/>"))],
     "cannot tell the format of"),
    # -- files that are not what they claim (read inside the run; its folder is removed) -----
    ("malformed JSONL line", lambda t, r: ["train", *SHORT, *data_files(t, write(t / "m.jsonl", rows(bad_line=3)))],
     "m.jsonl line 3: not valid JSON"),
    ("CSV row with extra fields", lambda t, r: ["train", *SHORT, *data_files(
        t, write(t / "c.csv", "text,label\na,sports\nb,cooking,extra\n"))], "c.csv line 3: 3 fields where the header has 2"),
    ("label outside the names", lambda t, r: ["train", *SHORT, *data_files(t, write(t / "l.jsonl", rows(label="golf")))],
     "has label 'golf', which is not in data.label_names"),
    ("null text", lambda t, r: ["train", *SHORT, *data_files(t, write(t / "n.jsonl", '{"text": null, "label": "sports"}\n' * 20))],
     "has no text in column 'text' (null)"),
    ("empty text", lambda t, r: ["train", *SHORT, *data_files(t, write(t / "e2.jsonl", rows(6) + '{"text": " ", "label": "sports"}\n'))],
     "row 7 has an empty text in column 'text'"),
    ("NLI columns under other names", lambda t, r: ["train", *SHORT, "data=rte", "data.glue_dir=null",
                                                     f"data.files={{train: {nli_file(t, 'train', 8)}, validation: {nli_file(t, 'dev', 2)}}}"],
     "its columns are: premise, hypothesis, label, idx; use data.text_fields=[premise,hypothesis]"),
    # -- run folders and inputs of eval / predict / explain / report --------------------------
    ("eval without parameters", lambda t, r: ["eval", f"run={t}"], "holds no trained parameters"),
    ("eval without run", lambda t, r: ["eval"], "give the trained run folder: run=<run dir>"),
    ("eval max_samples not a number", lambda t, r: ["eval", f"run={r}", "max_samples=abc"],
     "max_samples must be a positive number or all"),
    ("eval unknown option", lambda t, r: ["eval", f"run={r}", "splits=dev"], "bad option 'splits=dev'; valid:"),
    ("eval split the data lacks", lambda t, r: ["eval", f"run={r}", "split=test"], "has no file for split 'test'"),
    ("predict empty file", lambda t, r: ["predict", f"run={r}", f"file={write(t / 'p.jsonl', '')}"], "is empty"),
    ("predict malformed line", lambda t, r: ["predict", f"run={r}", f"file={write(t / 'q.jsonl', rows(4, bad_line=2))}"],
     "q.jsonl line 2: not valid JSON"),
    ("predict labels as one string", lambda t, r: ["predict", f"run={r}", "text=x", 'labels="sports"'],
     "labels= takes a JSON list of label texts"),
    ("predict one open label", lambda t, r: ["predict", f"run={r}", "text=x", 'labels=["sports"]'],
     "labels= needs at least two different label texts"),
    ("predict unknown format", lambda t, r: ["predict", f"run={r}", "text=x", "format=xml"], "expected one of [table, jsonl]"),
    ("predict nothing on stdin", lambda t, r: ["predict", f"run={r}"], "no texts to predict"),
    ("predict a null text", lambda t, r: ["predict", f"run={r}", f"file={write(t / 'n.jsonl', rows(3) + NULL_TEXT)}"],
     "n.jsonl row 4 has no text in 'text' (null)"),
    ("explain an empty text in a file", lambda t, r: ["explain", f"run={r}", "format=jsonl",
                                                     f"file={write(t / 'e.csv', EMPTY_CSV_TEXT)}"],
     "e.csv row 2 has an empty text in 'text'"),
    ("predict an empty text", lambda t, r: ["predict", f"run={r}", "text="], "text= is empty"),
    ("explain without text", lambda t, r: ["explain", f"run={r}"], "give the text to explain"),
    ("report of an empty folder", lambda t, r: ["report", str(t)], "no finished runs (metrics.json) under"),
    ("report of a file", lambda t, r: ["report", str(write(t / "x.txt", "x"))], "is not a folder"),
    ("report comparing a method without runs", lambda t, r: ["report", str(r.parent), "compare=peft_lora:l_prefix"],
     "compare=peft_lora:l_prefix: no finished peft_lora runs under"),
    ("unknown command", lambda t, r: ["fly"], "unknown command 'fly'; valid commands:"),
    # -- issue 21 -----------------------------------------------------------------------------
    ("negative seed", lambda t, r: ["train", "seed=-1"], "seed must be an integer from 0 to 4294967295, got -1"),
    ("seed above NumPy's range", lambda t, r: ["train", f"seed={2**32}"], "seed must be an integer from 0 to"),
    ("MNLI folder missing: the files it really reads", lambda t, r: ["train", "data=mnli", f"data.glue_dir={t}"],
     "data.glue_dir must hold MNLI/train.tsv and MNLI/dev_matched.tsv"),
    ("user data config named like a built-in one", lambda t, r: [
        "train", "--config-dir", str(user_conf(t, "cb", "name: cb\n")), "data=cb"],
     "data/cb.yaml has the name of ltune's own data config 'cb', which Hydra would use instead of yours"),
    ("misspelt key in a user's data yaml", lambda t, r: [
        "train", "--config-dir", str(user_conf(t, "tickets", TICKETS.replace("text_fields:", "text_field:"))),
        "data=tickets"], "data/tickets.yaml; valid keys under data: eval_sample_seed, eval_split, files,"),
    ("output root below a file", lambda t, r: ["train", f"output_root={write(t / 'f.txt', 'x')}/out"],
     "/f.txt, which is a file, not a folder; give a folder there"),
    ("train into a finished run's folder", lambda t, r: ["train", f"hydra.run.dir={r}", *SHORT],
     "already holds a finished run; it is never overwritten: give another hydra.run.dir"),
    # -- issues 43 and 44: model folders, read-only outputs ------------------------------------
    ("a learning-curve size outside its sweep", lambda t, r: ["train", "+train_size=n32"],
     "train_size=n32 is a size of the learning curve's tuning sweep (it sets hydra.sweeper.seeds)"),
    ("label texts of another kind for a method that reads none", lambda t, r: [
        "train", "method=prefix", "data.label_text_kind=permuted"],
     "data.label_text_kind=permuted has no effect with method=prefix: its K-way head reads no label text"),
    ("empty model folder", lambda t, r: model_path(t, "empty"),
     "lacks config.json, weights (*.safetensors or pytorch_model.bin), tokenizer files"),
    ("model folder without tokenizer files", lambda t, r: model_path(t, "no_tokenizer"), "lacks tokenizer files"),
    ("model weights of other shapes", lambda t, r: model_path(t, "shapes"),
     "check that its weights, config.json and tokenizer files belong together"),
    ("model checkpoint without some layers", lambda t, r: model_path(t, "layers"),
     "has no weights for 32 of the model's parameters (encoder.layer.2."),
    ("a tokenizer that is not the model's", lambda t, r: model_path(t, "small_vocab"),
     "has 5 tokens for the model's 30,522 embedding rows: it is not the model's tokenizer"),
    ("label texts of unknown tokens only", lambda t, r: ["train", "data.label_texts=['运动','烹饪','科技','旅行']", *SHORT],
     "are unknown tokens only for this model's tokenizer ([UNK])"),
    ("read-only output folder", lambda t, r: ["train", "output_root=/proc/ltune-outputs", *SHORT],
     "the output folder (LTUNE_OUTPUT_DIR or output_root) /proc/ltune-outputs cannot be written"),
    ("explain into a read-only folder", lambda t, r: ["explain", f"run={r}", "text=x", "out=/proc/ltune/x.png"],
     "the folder of out= /proc/ltune cannot be written"),
    ("report of a read-only folder", lambda t, r: ["report", "/proc/self"], "the report's folder /proc/self cannot be written"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path, finished_run, monkeypatch, capsys):
    _, arguments, expected = case
    outputs = tmp_path / "outputs"
    (outputs / "runs").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    args = arguments(work, finished_run)
    before, run_before = snapshot(outputs), snapshot(finished_run)
    code, out, err = run_cli(args, outputs, monkeypatch, capsys, stdin="")
    lines = [line for line in (out + err).splitlines() if line.startswith("ltune:")]
    assert code not in (0, None), (out + err)[-2000:]
    assert len(lines) == 1 and expected in lines[0], (out + err)[-2000:]
    assert "Traceback" not in out + err
    assert snapshot(outputs) == before and snapshot(finished_run) == run_before


def test_output_folder_below_a_file(tmp_path, finished_run, monkeypatch, capsys):
    """LTUNE_OUTPUT_DIR below a regular file: one line for train and eval (was a NotADirectoryError
    traceback), before any model is loaded."""
    from tests.conftest import run_cli as run

    blocker = write(tmp_path / "a_file", "x")
    for args in (["train", *SHORT], ["eval", f"run={finished_run}"]):
        before = snapshot(tmp_path)
        code, out, err = run(args, blocker / "outputs", monkeypatch, capsys)
        lines = [line for line in (out + err).splitlines() if line.startswith("ltune:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, (out + err)[-1500:]
        assert f"{blocker / 'outputs'} is below {blocker}, which is a file, not a folder" in lines[0]
        assert snapshot(tmp_path) == before


def test_a_refused_run_leaves_the_folder_another_process_trains_alone(tmp_path, monkeypatch, capsys):
    """A second ``ltune train hydra.run.dir=X`` while X is being trained stops with one line and
    changes nothing in X (it used to delete X's config.yaml, log.jsonl, .hydra/ and lock)."""
    run = tmp_path / "outputs" / "runs" / "busy"
    write(run / "config.yaml", "seed: 42\n")
    write(run / "log.jsonl", '{"step": 1, "loss": 0.7}\n')
    write(run / ".hydra" / "config.yaml", "seed: 42\n")
    with run_files.RunLock(run):  # "the first run": a lock held through another open file
        before = snapshot(run)
        code, out, err = run_cli(["train", f"hydra.run.dir={run}", *SHORT], tmp_path / "outputs", monkeypatch, capsys)
        assert snapshot(run) == before
    lines = [line for line in (out + err).splitlines() if line.startswith("ltune:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, (out + err)[-1500:]
    assert f"run folder {run} is being trained by pid {os.getpid()}" in lines[0]


def test_broken_run_files(tmp_path, finished_run, monkeypatch, capsys):
    """A cut trainable.safetensors or config.yaml: one line for eval, predict and explain."""
    import shutil

    for name, cut in (("trainable.safetensors", 100), ("config.yaml", 40)):
        run = tmp_path / name / finished_run.name
        shutil.copytree(finished_run, run)
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[:cut])
        for command in (["eval"], ["predict", "text=x"], ["explain", "text=x"]):
            before = snapshot(run)
            code, out, err = run_cli([command[0], f"run={run}", *command[1:]], tmp_path / "outputs", monkeypatch, capsys)
            lines = [line for line in (out + err).splitlines() if line.startswith("ltune:")]
            assert code == 2 and len(lines) == 1 and "Traceback" not in out + err, (out + err)[-1500:]
            assert ("is not a readable safetensors file" if name.endswith("safetensors")
                    else "is not a readable ltune run config") in lines[0]
            assert snapshot(run) == before


def test_predict_into_a_closed_pipe_stops_quietly(finished_run):
    """ltune predict ... | head -1: no BrokenPipeError traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    texts = [f"text=line {i}" for i in range(200)]
    shell = subprocess.run(f"{sys.executable} -m ltune.cli predict run={finished_run} format=jsonl "
                           + " ".join(f"'{t}'" for t in texts) + " | head -1", shell=True, capture_output=True,
                           text=True, env=env, timeout=600)
    assert len(shell.stdout.splitlines()) == 1 and "Traceback" not in shell.stderr and "Error" not in shell.stderr


def test_open_label_texts_print_as_separate_columns(finished_run, monkeypatch, capsys, tmp_path):
    labels = '["this text is about politics", "this text is about sports"]'
    code, out, err = run_cli(["predict", f"run={finished_run}", "text=The senate met.", f"labels={labels}"],
                             tmp_path, monkeypatch, capsys)
    assert code == 0 and "[1] this text is about politics" in out and "[2] this text is about sports" in out


def test_run_files_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        run_files.write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.slow  # two real processes: the lock held by a process that trains
def test_two_trainings_of_one_run_folder_cannot_both_proceed(tmp_path):
    """A trains and holds the folder's lock; B, resuming the same folder, stops with one line naming
    A, and changes nothing in it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LTUNE_OUTPUT_DIR": str(tmp_path)}
    args = [sys.executable, "-m", "ltune.cli", "train", "trainer.max_steps=400", "trainer.eval_every=200",
            "trainer.checkpoint_every=1", "model.max_length=32", "data.max_eval_samples=8"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and not list(tmp_path.glob("runs/*/checkpoint.pt")):
            time.sleep(0.1)
        (run,) = (tmp_path / "runs").iterdir()
        assert run_files.RunLock.holder(run) == run_files.RunLock.holder(run) and f"pid {first.pid}" in \
            run_files.RunLock.holder(run)
        hydra_before = snapshot(run / ".hydra")
        second = subprocess.run(args + [f"resume={run}"], env=env, capture_output=True, text=True, timeout=600)
        lines = [line for line in second.stderr.splitlines() if line.startswith("ltune:")]
        assert second.returncode == 2 and len(lines) == 1 and "Traceback" not in second.stderr
        assert f"is being trained by pid {first.pid}" in lines[0]
        assert snapshot(run / ".hydra") == hydra_before
        assert first.poll() is None  # A goes on
    finally:
        first.kill()
        first.wait()
    assert run_files.RunLock.holder(run) is None  # the kernel released the lock with the process
