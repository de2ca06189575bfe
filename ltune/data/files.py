"""Reading rows from local files: JSON lines, JSON, CSV, TSV (GLUE's layout included) and
Parquet. Text files are read as UTF-8 with an optional byte-order mark. A file that is not what
it claims gives one error naming the file, the line and what was expected."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ltune.errors import LtuneError

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


def format_of(path: str | Path, declared: str | None = None) -> str:
    if declared:
        if declared not in ("json", "csv", "tsv", "parquet"):
            raise LtuneError(f"unknown data.format '{declared}'; valid: json, csv, tsv, parquet")
        return declared
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise LtuneError(f"cannot tell the format of {path}; set data.format to one of json, csv, tsv, parquet")
    return FORMATS[suffix]


def check_file(path: Path, what: str = "data file") -> Path:
    if not path.exists():
        raise LtuneError(f"{what} {path} not found; check the path")
    if path.is_dir():
        raise LtuneError(f"{what} {path} is a folder; give the path of a file inside it")
    if path.stat().st_size == 0:
        raise LtuneError(f"{what} {path} is empty; every split needs examples")
    return path


def read_rows(path: Path, fmt: str) -> list[dict]:
    """Every row of one file as a dict keyed by column name."""
    check_file(path)
    if fmt == "parquet":
        return _read_parquet(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LtuneError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    if fmt == "json":
        return _parse_json(text, path)
    return _parse_delimited(text, path, "\t" if fmt == "tsv" else ",")


def _parse_json(text: str, path: Path) -> list[dict]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # one JSON array of objects
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise LtuneError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
        if not all(isinstance(r, dict) for r in rows):
            raise LtuneError(f"{path}: expected a JSON array of objects (one per example)")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise LtuneError(
                f"{path} line {number}: not valid JSON ({err.msg}); each line must be one JSON object"
            ) from None
        if not isinstance(row, dict):
            raise LtuneError(f"{path} line {number}: expected a JSON object like {{\"text\": ..., \"label\": ...}}")
        rows.append(row)
    return rows


def _parse_delimited(text: str, path: Path, delimiter: str) -> list[dict]:
    # The csv module reads the text with its line endings (newline=""), so a quoted field that holds a
    # newline keeps it; line numbers are the file's own (a row may span lines).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise LtuneError(f"{path} has no header row; the first line must name the columns")
    rows, start = [], reader.line_num + 1
    for values in reader:
        number, start = start, reader.line_num + 1
        if not values:
            continue
        if len(values) != len(header):
            raise LtuneError(
                f"{path} line {number}: {len(values)} fields where the header has {len(header)}; "
                f"quote fields that contain the delimiter"
            )
        rows.append(dict(zip(header, values)))
    return rows


def read_glue_tsv(path: Path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of one file of GLUE's original TSV layout (unquoted; ``columns`` for files without a
    header row, such as CoLA's)."""
    check_file(path, "GLUE file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LtuneError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    reader = csv.reader(text.split("\n"), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = columns or next(reader)
    rows = []
    for number, row in enumerate(reader, start=1 if columns else 2):
        if not row or row == [""] or row == ["\r"]:
            continue
        if row[-1].endswith("\r"):
            row[-1] = row[-1][:-1]
        if len(row) != len(header):  # a stray tab (or a missing field) shifts every later column
            raise LtuneError(f"{path} line {number}: {len(row)} tab-separated fields where there should be "
                             f"{len(header)} ({', '.join(header)}); fix or remove that line")
        rows.append(dict(zip(header, row)))
    return rows


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for a broken file
        raise LtuneError(f"{path} is not a readable Parquet file ({str(err).splitlines()[0]})") from None
