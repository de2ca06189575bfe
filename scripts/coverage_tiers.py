"""Line coverage of ltune/ by the fast tier (make test) and by both tiers together.

    python scripts/coverage_tiers.py FAST_DATA SLOW_DATA

FAST_DATA and SLOW_DATA are coverage.py data files of the two tiers (``make coverage`` writes them).
Prints each total and the share of the lines both tiers cover that the fast tier covers alone, and
lists the files where the fast tier misses most of what the slow tier adds."""

from __future__ import annotations

import sys
from pathlib import Path

import coverage


def executed_lines(data_file: str) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """(executed lines, statements) per measured file of one data file."""
    cov = coverage.Coverage(data_file=data_file)
    cov.load()
    data = cov.get_data()
    executed, statements = {}, {}
    for name in data.measured_files():
        _, lines, _, _ = cov.analysis(name)
        statements[name] = set(lines)
        executed[name] = set(data.lines(name) or ()) & statements[name]
    return executed, statements


def main(fast_file: str, slow_file: str) -> None:
    fast, statements = executed_lines(fast_file)
    slow, more_statements = executed_lines(slow_file)
    statements = {**more_statements, **statements}
    both = {name: fast.get(name, set()) | slow.get(name, set()) for name in statements}
    total = sum(len(lines) for lines in statements.values())
    covered_fast = sum(len(lines) for lines in fast.values())
    covered_both = sum(len(lines) for lines in both.values())
    print(f"statements in ltune/: {total}")
    print(f"fast tier (make test): {covered_fast} lines, {100 * covered_fast / total:.1f}%")
    print(f"both tiers: {covered_both} lines, {100 * covered_both / total:.1f}%")
    print(f"the fast tier covers {100 * covered_fast / covered_both:.1f}% of the lines both tiers cover")
    only_slow = sorted(((len(both[n] - fast.get(n, set())), n) for n in both), reverse=True)
    print("lines only the slow tier covers, by file:")
    for count, name in only_slow[:8]:
        if count:
            print(f"  {count:4d}  {Path(name).relative_to(Path.cwd()) if Path(name).is_relative_to(Path.cwd()) else name}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
