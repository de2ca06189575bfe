"""The ``ltune`` command: picks the subcommand and turns an ``LtuneError`` into one line."""

from __future__ import annotations

import importlib
import sys

from ltune.errors import LtuneError

USAGE = """usage: ltune COMMAND [ARGS]

commands:
  train [OVERRIDES]   train one run (or a sweep with -m); ARGS go to Hydra unchanged,
                      e.g. ltune train method=l_prefix model=llama2 data=rte
                      ltune train --help   lists the config groups and options
  report FOLDER [compare=A:B,...] [with=FOLDER,...] [balance=TEXT]
                      tables (report.md, results.csv) and plots from every run under FOLDER;
                      compare= tests method pairs besides the twins, e.g. compare=peft_lora:prefix;
                      with= reads other sweeps' runs too; balance= lists the seeds to run again so
                      that every group shares the run conditions TEXT names (e.g. a CPU)
  eval run=DIR [data=NAME|FILE.yaml config_dir=DIR split=SPLIT glue_dir=DIR max_samples=N|all precision=fp32|bf16 device=cpu|cuda]
       [label_texts='["a","b"]']
                      evaluate a trained run on any split or data set with the same labels;
                      label_texts= scores it under other label texts (L-methods), with a 95% interval
  predict run=DIR [text=... | file=F.txt|.jsonl|.csv | stdin] [labels='["a","b"]'] [format=table|jsonl]
                      label and every label's score; labels= gives open label texts (L-methods)
  explain run=DIR text='...' [text_pair='...'] [out=F.png]
                      every label's score for one text; L-prefix: the pooling weights over label tokens
  bench [KEY=VALUE]   step and evaluation speed of every method on one model (model=minilm|smollm2|...,
                      batch_size=16 seq_len=128 steps=20 warmup=3 precision=fp32|bf16 methods=a,b
                      attn=eager|sdpa|... compile=false|true fused=auto|true|false)
  --version           ltune's version and the versions of the stack it runs on

Config groups: model, data, method, trainer, logger, experiment (see README.md and conf/).
"""

#: command -> (module, function); modules are imported only for the command that runs.
COMMANDS = {
    "train": ("ltune.commands.train", "train_command"),
    "report": ("ltune.commands.report", "report_command"),
    "bench": ("ltune.commands.bench", "bench_command"),
    "eval": ("ltune.commands.use", "eval_command"),
    "predict": ("ltune.commands.use", "predict_command"),
    "explain": ("ltune.commands.use", "explain_command"),
}


def command_help(command: str) -> str:
    """``ltune COMMAND --help``: the command's lines of USAGE and every option it takes with its default."""
    import dataclasses

    lines, keep = [], False
    for line in USAGE.splitlines():
        if line.startswith(f"  {command} ") or line == f"  {command}":
            keep = True
        elif keep and line.startswith("  ") and not line.startswith("   "):
            keep = False
        if keep:
            lines.append(line)
    options = {}
    if command in ("eval", "predict", "explain"):
        from ltune.commands import use

        schema = {"eval": use.EvalOptions, "predict": use.PredictOptions, "explain": use.ExplainOptions}[command]
        for field in dataclasses.fields(schema):
            default = field.default if field.default is not dataclasses.MISSING else (
                field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
            options[field.name] = "(required)" if str(default) == "???" else getattr(default, "value", default)
    elif command == "bench":
        from ltune.commands.bench import DEFAULTS

        options = dict(DEFAULTS)
    elif command == "report":
        options = {"compare": "A:B[,C:D...]", "with": "FOLDER[,FOLDER...]", "balance": "TEXT"}
    listed = [f"  {key}={value}" for key, value in options.items()]
    return "\n".join([f"usage: ltune {command} [KEY=VALUE ...]", "", *lines, "", "options (defaults):", *listed])


#: Libraries whose log records ltune shows once each (the same line every batch crowds out ltune's own).
LIBRARY_LOGGERS = ("transformers", "peft", "accelerate", "matplotlib", "datasets", "huggingface_hub")


class OncePerMessage:
    """A logging filter that lets each distinct message through once per process."""

    def __init__(self):
        self.seen: set[str] = set()

    def filter(self, record) -> bool:
        text = f"{record.name}:{record.levelno}:{record.getMessage()}"
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def show_library_warnings_once() -> None:
    """Each Python warning and each library log line once per process, wherever it is raised from."""
    import logging
    import warnings

    warnings.simplefilter("once")
    once = OncePerMessage()
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerMessage) for f in logger.filters):
            logger.addFilter(once)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    show_library_warnings_once()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if argv[0] in ("--version", "-V", "version"):
        from ltune import versions

        print("  ".join(f"{name} {version}" for name, version in versions().items()))
        return
    command, args = argv[0], argv[1:]
    if command in COMMANDS and command != "train" and any(a in ("-h", "--help") for a in args):
        print(command_help(command))  # train's --help is Hydra's (config groups and every option)
        return
    try:
        if command not in COMMANDS:
            raise LtuneError(f"unknown command '{command}'; valid commands: {', '.join(COMMANDS)}")
        module, function = COMMANDS[command]
        getattr(importlib.import_module(module), function)(args)
    except LtuneError as err:
        print(f"ltune: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        # Ctrl-C outside a run's training loop (which checkpoints and exits 130 itself): between the
        # jobs of a sweep, while composing or loading. No traceback; the exit code of an interrupt.
        print("ltune: interrupted (Ctrl-C); run the same command again to continue: finished runs are kept "
              "and a sweep skips them", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (ltune predict ... | head): stop quietly, as other shell tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
