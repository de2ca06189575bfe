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
  report FOLDER [compare=A:B,...]
                      tables (report.md, results.csv) and plots from every run under FOLDER;
                      compare= tests method pairs besides the twins, e.g. compare=peft_lora:prefix
  eval run=DIR [data=NAME split=SPLIT glue_dir=DIR max_samples=N|all precision=fp32|bf16 device=cpu|cuda]
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if argv[0] in ("--version", "-V", "version"):
        from ltune import versions

        print("  ".join(f"{name} {version}" for name, version in versions().items()))
        return
    command, args = argv[0], argv[1:]
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
