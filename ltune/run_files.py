"""The files of a run folder, by name, and how they are written.

Every write goes to a temporary file in the same folder that is renamed into place, so a crash or
a full disk never leaves a half-written or clobbered result; the file gets the permissions a
plain ``open()`` would give it under the user's umask (others on a shared machine can read
results as they can read any file the user writes).
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Callable


METRICS = "metrics.json"
CONFIG = "config.yaml"
LOG = "log.jsonl"
PARAMS = "trainable.safetensors"
CHECKPOINT = "checkpoint.pt"
PREDICTIONS = "predictions.jsonl"
FAILED = "failed.json"
LOCK = ".lock"
#: A finished run's JSON-lines files (LOG, PREDICTIONS) may be stored gzip-compressed under this
#: suffix (scripts/compact_runs.py does it for committed folders); readers take either.
COMPRESSED = ".gz"


def check_folder_path(path: Path, what: str, way_out: str = "give a folder there") -> None:
    """That ``path`` is a folder or can become one, and can be written: no part of it is an existing
    file, and its nearest existing folder takes a new file (a read-only file system, a folder without
    write permission). Checked before anything is written or loaded, so the problem is one line, not
    a NotADirectoryError or OSError halfway through; ``way_out`` ends the line."""
    from ltune.errors import LtuneError

    path = Path(path).expanduser()
    for part in [path, *path.parents]:
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "is a file" if part == path else f"is below {part}, which is a file"
                raise LtuneError(f"{what} {path} {where}, not a folder; give a folder there")
            try:  # a real write: permissions say nothing of a read-only mount, and root passes them all
                fd, probe = tempfile.mkstemp(dir=part, prefix=".ltune-write-check-")
                os.close(fd)
                os.unlink(probe)
            except OSError as err:
                raise LtuneError(f"{what} {path} cannot be written ({err.strerror or err}: {part}); "
                                 f"{way_out}") from None
            return


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write(temporary path)``, then rename the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write)


def write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_parameters(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


#: A checkpoint file starts with this tag and the SHA-256 of what follows (torch.save's bytes), so that
#: a resume can tell a checkpoint cut short or overwritten from a good one before it reads a value.
CHECKPOINT_TAG = b"ltune-checkpoint-sha256\n"


def save_checkpoint(path: Path, payload: dict) -> None:
    """Everything a resume needs, with its checksum; the previous checkpoint survives a failed write. A
    full disk is one line naming the folder (the write's partial file is removed)."""
    import hashlib
    import io

    import torch
    from ltune.errors import LtuneError

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    try:
        atomic_write_bytes(path, CHECKPOINT_TAG + hashlib.sha256(data).digest() + data)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise LtuneError(f"no space left on {Path(path).parent} while writing {Path(path).name} ({len(data):,} bytes); "
                         f"the previous checkpoint is kept: free some space, then resume={Path(path).parent}") from None


def _damaged(path: Path):
    from ltune.errors import LtuneError

    return LtuneError(f"{path} is damaged (cut short or overwritten: its checksum does not match); it cannot be "
                      f"resumed from: delete it to start the run again, or give resume= another run")


def checkpoint_bytes(path: Path) -> bytes:
    """torch.save's bytes of a checkpoint, its checksum verified (no torch needed: a resume checks this
    before anything loads). Files written before checkpoints carried a checksum are returned as they are."""
    import hashlib

    raw = Path(path).read_bytes()
    if raw.startswith(CHECKPOINT_TAG):
        digest, data = raw[len(CHECKPOINT_TAG):len(CHECKPOINT_TAG) + 32], raw[len(CHECKPOINT_TAG) + 32:]
        if hashlib.sha256(data).digest() != digest:
            raise _damaged(path)
        return data
    return raw


def load_checkpoint(path: Path) -> dict:
    """A checkpoint, its checksum verified first; a file cut short or changed is one line that says which
    file and what to do."""
    import io

    import torch

    raw = checkpoint_bytes(path)
    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an old checkpoint without a checksum that torch cannot read
        raise _damaged(path) from None


def read_metrics(run_dir: Path) -> dict | None:
    """A finished run's metrics.json, or None when the run has not finished."""
    try:
        return json.loads((Path(run_dir) / METRICS).read_text())
    except FileNotFoundError:
        return None


def stored_json_lines(path: Path) -> Path | None:
    """Where a run's JSON-lines file ``path`` is stored: ``path`` itself, else its compressed copy
    ``path.gz``; None when neither exists."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + COMPRESSED)):
        if candidate.is_file():
            return candidate
    return None


def read_json_lines(path: Path) -> list[dict]:
    """The complete JSON lines of a run's file, plain or compressed (see ``stored_json_lines``); a
    last line cut by a crash (or a compressed file cut short) is left out; [] when the file does not
    exist. A compressed file that is not gzip raises ValueError naming it."""
    stored = stored_json_lines(path)
    if stored is None:
        return []
    if stored.suffix == COMPRESSED:
        lines = []
        try:
            with gzip.open(stored, "rt", encoding="utf-8") as handle:
                for line in handle:
                    lines.append(line)
        except EOFError:
            pass  # cut short: the lines before the cut
        except OSError as err:
            raise ValueError(f"{stored} is not a readable gzip file ({err})") from None
    else:
        lines = stored.read_text().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


class JsonlLog:
    """Append-only per-step log (one JSON object per line, flushed every line)."""

    def __init__(self, path: Path):
        self.handle = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from."""
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        write_text(path, "".join(line + "\n" for line in lines))


class RunLock:
    """An exclusive lock on a run folder while a process trains it (``flock`` on ``.lock``; the
    kernel releases it when the process ends, however it ends). A second process that tries to
    train the same folder gets one line naming the holder."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.handle = None

    @staticmethod
    def holder(run_dir: Path) -> str | None:
        """Who holds the lock on ``run_dir`` ("pid N on host H since T"), or None when it is free."""
        import fcntl

        path = Path(run_dir) / LOCK
        if not path.is_file():
            return None
        with path.open("r+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "another process"
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def __enter__(self) -> "RunLock":
        import fcntl
        import socket
        import time

        from ltune.errors import LtuneError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            self.handle = None
            raise LtuneError(f"run folder {self.path.parent} is being trained by {holder}; wait for it to "
                             f"finish (or stop it) before resuming it") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self.handle is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
