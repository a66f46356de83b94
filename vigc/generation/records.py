"""Generation output that survives failure: append-only JSON Lines per writer, resumable, merged exactly once.

The original kept results in memory and wrote them once at the end (a crash lost everything) into a folder named
by a 10-minute job id (two jobs collided). Here each writer (a torchrun rank, a ``--shard i/N`` array job, or
both) appends one line per record, flushed and fsync-ed, to its own file of a run folder::

    <output_dir>/<run_id>/
        run.json                          task, config and provenance; written at start by rank 0
        records.rank0.jsonl ...           one JSON object per line, each with a unique "key"
        records.shard2of8.jsonl           (--shard 2/8; "records.shard2of8.rank0.jsonl" with torchrun too)
        errors.rank0.jsonl ...            {"key", "image", "reason", "time"}: images that failed
        merged.jsonl                      every record once, sorted by key (`merge_run`)
        llava_qa_result.json | question.json | question_answer.json   original-style exports (`vigc.generation.export`)
        result/eval_epochbest.json ...    the original's own files (`vigc.generation.result_files`)

Run ids are ``YYYYmmdd-HHMMSS-<6 hex>`` (`new_run_id`); pass the id of an earlier run (``--run-id`` /
``run.run_id``) to resume it. In a torchrun job rank 0 chooses the id and the caller broadcasts it
(``vigc.dist.broadcast_object``) before any rank builds its `RunPaths`.

Exactly once: a writer skips the keys in `RecordWriter.done_keys` — read from *every* records file of the run, so
a resumed run may use another world size or shard count — and a crash leaves at most one half-written last line,
which readers ignore and the writer truncates away before appending. Failed images are only logged to the errors
file, so a resumed run retries them.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from vigc.errors import VIGCError, output_error_message
from vigc.generation.json_files import (
    atomic_write_json_array,
    atomic_write_lines,
    fsync_dir,
    json_line,
    remove_stale_temporaries,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer per file is then on the user
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ERRORS_GLOB",
    "MERGED_FILE",
    "RECORDS_GLOB",
    "RUN_INFO_FILE",
    "RecordWriter",
    "RecordsError",
    "RunPaths",
    "atomic_write_json_array",
    "busy_record_files",
    "atomic_write_lines",
    "json_line",
    "remove_stale_temporaries",
    "merge_run",
    "new_run_id",
    "read_errors",
    "read_records",
    "read_run_info",
    "read_run_records",
    "write_run_info",
    "writer_tag",
]

logger = logging.getLogger(__name__)

RECORDS_GLOB = "records.*.jsonl"
ERRORS_GLOB = "errors.*.jsonl"
RUN_INFO_FILE = "run.json"
MERGED_FILE = "merged.jsonl"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RECORDS_NAME = re.compile(r"^records\.(?P<tag>[A-Za-z0-9._-]+)\.jsonl$")
_PACKAGES = ("vigc", "torch", "transformers", "pillow")


class RecordsError(VIGCError):
    """A run folder, run id or records file cannot be used (bad id, another writer, unreadable file)."""


def new_run_id() -> str:
    """A fresh run id: local time to the second plus 24 random bits (``20240131-235959-a1b2c3``)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def writer_tag(rank: int = 0, world_size: int = 1, shard: tuple[int, int] | None = None) -> str:
    """The name part of a writer's files: ``rank{R}``, ``shard{i}of{N}``, or ``shard{i}of{N}.rank{R}`` for both."""
    if shard is None:
        return f"rank{rank}"
    index, count = shard
    return f"shard{index}of{count}" + (f".rank{rank}" if world_size > 1 else "")


@dataclass(frozen=True)
class RunPaths:
    """Where one generation run keeps its files (see the module docstring for the layout).

    Args:
        output_dir: The folder holding runs (``run.output_dir``).
        run_id: This run's id: letters, digits, ``.``, ``_``, ``-``; use `RunPaths.create` for a new one.
    """

    output_dir: Path
    run_id: str

    def __post_init__(self) -> None:
        if not _RUN_ID.match(self.run_id) or self.run_id in (".", ".."):
            raise RecordsError(
                f"Run id {self.run_id!r} is not usable as a folder name: use letters, digits, '.', '_' and '-' "
                "(at most 128 characters), e.g. the id of the run to resume."
            )
        object.__setattr__(self, "output_dir", Path(self.output_dir))

    @classmethod
    def create(cls, output_dir: str | os.PathLike[str], run_id: str | None = None) -> RunPaths:
        """Paths of run `run_id` (to resume it), or of a new run with a fresh id when None."""
        return cls(Path(output_dir), run_id if run_id else new_run_id())

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.run_id

    @property
    def run_info(self) -> Path:
        return self.run_dir / RUN_INFO_FILE

    @property
    def merged(self) -> Path:
        return self.run_dir / MERGED_FILE

    def records(self, tag: str) -> Path:
        """The records file of the writer named `tag` (see `writer_tag`)."""
        return self.run_dir / f"records.{tag}.jsonl"

    def errors(self, tag: str) -> Path:
        """The errors file of the writer named `tag`."""
        return self.run_dir / f"errors.{tag}.jsonl"


class RecordWriter:
    """Append records of one writer to ``records.<tag>.jsonl`` of a run folder, durably and exactly once.

    Use as a context manager. Opening takes an exclusive advisory lock (two jobs with the same rank/shard in one
    run would interleave lines) and truncates a half-written last line left by a crash.

    Args:
        path: The records file, named ``records.<tag>.jsonl`` inside the run folder.
        errors_path: Where `write_error` appends; default ``errors.<tag>.jsonl`` beside `path`.
        fsync: fsync after every line (a record costs seconds of GPU time; an fsync, milliseconds).
    """

    def __init__(self, path: str | os.PathLike[str], *, errors_path: Path | None = None, fsync: bool = True) -> None:
        self.path = Path(path)
        match = _RECORDS_NAME.match(self.path.name)
        if match is None:
            raise ValueError(f"Records file {self.path} must be named records.<tag>.jsonl (see RunPaths.records).")
        self.errors_path = errors_path or self.path.with_name(f"errors.{match['tag']}.jsonl")
        self.fsync = fsync
        self._records: IO[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self._seen: set[str] = set()

    def __enter__(self) -> RecordWriter:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Create the run folder and files, lock the records file and repair a torn last line of each file."""
        if self._records is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            records = _open_append(self.path)
        except OSError as exc:
            raise RecordsError(output_error_message(exc, self.path.parent, run_id=self.path.parent.name)) from None
        try:
            _lock(records, self.path)
            _repair_tail(records, self.path)
            self._errors = _open_append(self.errors_path)
            _repair_tail(self._errors, self.errors_path)
        except BaseException:
            records.close()
            raise
        self._records = records
        fsync_dir(self.path.parent)

    def close(self) -> None:
        """Close the files (releasing the lock); safe to call twice."""
        for handle in (self._records, self._errors):
            if handle is not None:
                handle.close()
        self._records = self._errors = None

    def done_keys(self) -> set[str]:
        """Keys of every complete record in any records file of the run folder (every rank and shard)."""
        keys: set[str] = set()
        for path in sorted(self.path.parent.glob(RECORDS_GLOB)):
            keys.update(str(record["key"]) for record in read_records(path))
        self._seen |= keys
        return keys

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (one JSON line), then flush and (by default) fsync.

        Raises:
            ValueError: When the record has no non-empty string ``key``, or the key was written already (skip
                `done_keys` before generating).
        """
        key = record.get("key") if isinstance(record, Mapping) else None
        if not isinstance(key, str) or not key:
            raise ValueError(f"Every record needs a non-empty string 'key'; got {key!r}.")
        if key in self._seen:
            raise ValueError(f"Record {key!r} is already in the run; skip done_keys() before generating.")
        self._append(self._handle(self._records), json_line(record))
        self._seen.add(key)

    def write_error(self, key: str, image: str, reason: str) -> None:
        """Log that `image` (item `key`) failed with `reason`; the item stays undone, so a resumed run retries it."""
        entry = {"key": key, "image": image, "reason": reason, "time": _now()}
        self._append(self._handle(self._errors), json_line(entry))

    def _handle(self, handle: IO[bytes] | None) -> IO[bytes]:
        if handle is None:
            raise RuntimeError("RecordWriter is not open; use it as a context manager or call open().")
        return handle

    def _append(self, handle: IO[bytes], line: str) -> None:
        try:
            handle.write(line.encode("utf-8") + b"\n")
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk: the next resume truncates the torn line and goes on
            raise RecordsError(output_error_message(exc, self.path.parent, run_id=self.path.parent.name)) from None


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete records of a records file, in file order.

    A last line without a newline (a write cut by a crash) and lines that are not JSON objects with a string
    ``key`` are skipped with a warning.
    """
    records: list[dict[str, Any]] = []
    skipped = 0
    for line, _ in _complete_lines(path):
        value = _parse(line)
        if value is None or not isinstance(value.get("key"), str):
            skipped += 1
        else:
            records.append(value)
    if skipped:
        logger.warning("%s: skipped %d line(s) that are not complete records", path, skipped)
    return records


def read_errors(run_dir: Path) -> list[dict[str, Any]]:
    """Every entry of the run's errors files (all writers), in file order."""
    entries: list[dict[str, Any]] = []
    for path in sorted(Path(run_dir).glob(ERRORS_GLOB)):
        entries.extend(value for line, _ in _complete_lines(path) if (value := _parse(line)) is not None)
    return entries


def busy_record_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Records files of the run that a live `RecordWriter` still holds (merging them now gives a partial result).

    Always empty where advisory locks are unavailable.
    """
    busy = []
    for path in sorted(Path(run_dir).glob(RECORDS_GLOB)) if fcntl is not None else []:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    busy.append(path)
    return busy


def merge_run(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Merge every records file of a run into ``merged.jsonl``: each key once (the first seen), sorted by key.

    Files are read in name order and tolerate a torn last line, so merging works on a crashed run too.

    Returns:
        The merged records.

    Raises:
        RecordsError: When the folder has no records file.
    """
    run_dir = Path(run_dir)
    merged = read_run_records(run_dir)
    atomic_write_lines(run_dir / MERGED_FILE, (json_line(r) for r in merged))
    logger.info("merged %d record(s) into %s", len(merged), run_dir / MERGED_FILE)
    return merged


def read_run_records(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records `merge_run` merges (each key once, the first seen; sorted by key), without writing anything.

    For readers of a run that must not change it (exports of a finished run on read-only storage).

    Raises:
        RecordsError: When the folder has no records file.
    """
    run_dir = Path(run_dir)
    files = sorted(run_dir.glob(RECORDS_GLOB))
    if not files:
        raise RecordsError(f"No {RECORDS_GLOB} files in {run_dir}; is it a generation run folder?")
    by_key: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for path in files:
        for record in read_records(path):
            if record["key"] in by_key:
                duplicates += 1
            else:
                by_key[record["key"]] = record
    if duplicates:
        logger.warning("%s: dropped %d duplicate record(s) (same key)", run_dir, duplicates)
    logger.debug("read %d record(s) from %d file(s) of %s", len(by_key), len(files), run_dir)
    return [by_key[key] for key in sorted(by_key)]


def write_run_info(
    paths: RunPaths, *, task: str, config: Mapping[str, Any], provenance: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``run.json`` at the start of a run (rank 0 only): task, config and provenance.

    Resuming keeps the first start's time and appends this start to ``starts``; a changed config is allowed
    (e.g. more images) but logged, since it may mix settings within one run.

    Args:
        paths: The run's paths.
        task: The generation task: "llava_vig", "vqg_question" or "vqg_answer" (the merge tool dispatches on it).
        config: The resolved config, JSON-serialisable (values that are not are written with `str`).
        provenance: Model, checkpoint and decoding settings; host, command line and package versions are added.

    Raises:
        RecordsError: When resuming a run of another task.
    """
    now = _now()
    start = {"time": now, "host": socket.gethostname(), "argv": list(sys.argv)}
    info: dict[str, Any] = {"run_id": paths.run_id, "task": task, "created": now, "starts": [start]}
    if paths.run_info.exists():
        previous = read_run_info(paths.run_dir)
        if previous.get("task") != task:
            raise RecordsError(
                f"Run {paths.run_id} in {paths.output_dir} is a {previous.get('task')!r} run; it cannot be resumed "
                f"as {task!r}. Use another run id."
            )
        if json.loads(json.dumps(config, default=str)) != previous.get("config"):
            logger.warning("resuming run %s with a changed config; its records may mix settings", paths.run_id)
        info["created"] = previous.get("created", now)
        info["starts"] = [*previous.get("starts", []), start]
    info["config"] = dict(config)
    info["provenance"] = {**_environment(), **(provenance or {})}
    atomic_write_lines(paths.run_info, [json_line(info, indent=2, default=str)])
    return json.loads(json.dumps(info, default=str))


def read_run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``run.json`` of a run folder.

    Raises:
        RecordsError: When it is missing or not a JSON object with a string ``task``.
    """
    path = Path(run_dir) / RUN_INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordsError(f"{path} does not exist; is {run_dir} a generation run folder?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordsError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(info, dict) or not isinstance(info.get("task"), str):
        raise RecordsError(f"{path} has no 'task' field; it was not written by a generation run.")
    return info


def _complete_lines(path: Path) -> Iterator[tuple[bytes, int]]:
    """Each newline-terminated line of a file with the offset just after it; an unterminated tail is left out."""
    offset = 0
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield line, offset


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _open_append(path: Path) -> IO[bytes]:
    return open(path, "ab")  # closed by RecordWriter.close


def _lock(handle: IO[bytes], path: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise RecordsError(
                f"Another process is writing {path}: two jobs with the same rank or --shard in one run? "
                "Give each job its own shard, or wait for the other to finish."
            ) from None
        logger.warning("%s: cannot lock (%s); make sure no other job writes this file", path, exc)


def _repair_tail(handle: IO[bytes], path: Path) -> None:
    """Truncate what follows the last complete, valid line (a torn write), so appends start on a fresh line."""
    size = os.fstat(handle.fileno()).st_size
    valid_end = 0
    for line, end in _complete_lines(path):
        if _parse(line) is not None:
            valid_end = end
    if valid_end < size:
        logger.warning("%s: removing %d byte(s) of a torn last record left by a crash", path, size - valid_end)
        os.ftruncate(handle.fileno(), valid_end)
        os.fsync(handle.fileno())


def _environment() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {"python": sys.version.split()[0], "packages": versions}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
