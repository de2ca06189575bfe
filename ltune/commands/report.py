"""``ltune report FOLDER [with=OTHER,...] [compare=A:B,...]``: tables and plots from every run under FOLDER.

``with`` adds the runs of other sweeps' folders (the report is still written in FOLDER), e.g. an arm
run later beside the table it is compared with. ``compare`` asks for method pairs besides the
L-method/twin pairs and ablations, e.g. ``compare=peft_lora:prefix``: each pair is tested like the
twins (over runs first), whatever each group departs from its method's defaults. ``balance`` names a
set of run conditions (e.g. ``balance=EPYC``) and prints which seeds of which groups would have to
run again under it for every group to share it."""

from __future__ import annotations

from pathlib import Path

from ltune.errors import LtuneError

USAGE = ("usage: ltune report <sweep or outputs folder> [with=FOLDER[,FOLDER...]] [compare=A:B[,C:D...]] "
         "[balance=TEXT] (A, B: method names; TEXT: names the run conditions, e.g. a CPU, to balance the table on)")


def parse_compare(value: str) -> list[tuple[str, str]]:
    """``peft_lora:prefix,l_prompt:prefix`` -> [(peft_lora, prefix), (l_prompt, prefix)], names checked."""
    from ltune.methods import METHODS

    pairs = []
    for item in value.split(","):
        a, sep, b = item.strip().partition(":")
        if not sep or not a or not b or a == b:
            raise LtuneError(f"bad compare pair '{item}'; give two different methods as A:B, e.g. compare=peft_lora:prefix")
        for name in (a, b):
            if name not in METHODS:
                raise LtuneError(f"unknown method '{name}' in compare=; valid: {', '.join(sorted(METHODS))}")
        pairs.append((a, b))
    return pairs


def report_command(args: list[str]) -> None:
    folders = [a for a in args if not a.startswith(("compare=", "with=", "balance="))]
    compares = [a.removeprefix("compare=") for a in args if a.startswith("compare=")]
    withs = [a.removeprefix("with=") for a in args if a.startswith("with=")]
    balances = [a.removeprefix("balance=") for a in args if a.startswith("balance=")]
    if (len(folders) != 1 or len(compares) > 1 or len(withs) > 1 or (withs and not withs[0].strip(","))
            or len(balances) > 1 or (balances and not balances[0].strip())):
        raise LtuneError(USAGE)
    compare = parse_compare(compares[0]) if compares else []
    others = [Path(item.strip()) for item in withs[0].split(",") if item.strip()] if withs else []
    from ltune.report import report

    path = report(Path(folders[0]), compare=compare, others=others, balance=balances[0] if balances else None)
    print(f"ltune: wrote {path}, results.csv and plots beside it")
