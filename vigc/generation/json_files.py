"""Files of a run written whole: JSON text that is always valid UTF-8 (undecodable file names included), written
atomically through a temporary file, and the removal of temporaries that a killed process left behind."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vigc.errors import OutputError, output_error_message

__all__ = ["atomic_write_json_array", "atomic_write_lines", "fsync_dir", "json_line", "remove_stale_temporaries"]

logger = logging.getLogger(__name__)

_TEMPORARY_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")  # see atomic_write_lines
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write `lines` (each followed by a newline) to `path` through a temporary file and `os.replace`.

    Readers see the old file or the complete new one, never a part.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(output_error_message(exc, path.parent)) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    fsync_dir(path.parent)


def json_line(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` for the run's files: UTF-8 text, with undecodable file-name bytes kept losslessly.

    A file name that is not valid UTF-8 reaches Python as a str holding lone surrogates (``os.fsdecode``'s
    surrogateescape: byte 0xff becomes U+DCFF), which cannot be written as UTF-8. Each is written as its JSON
    escape ``\\udcff`` instead, so the line stays valid JSON and UTF-8; ``json.loads`` gives the same str back
    and ``os.fsencode`` of it the original bytes.

    Args:
        value: A JSON-serialisable value.
        **kwargs: Passed to ``json.dumps`` (``indent``, ``default``).
    """
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def remove_stale_temporaries(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of `atomic_write_lines` that a killed merge or export left in a run folder.

    A file is removed only when the process named in it (``.<name>.<pid>.<hex>.tmp``) no longer runs on this
    machine, so a merge in progress beside this process keeps its file.

    Returns:
        The removed files.
    """
    removed = []
    for path in sorted(Path(run_dir).glob(".*.tmp")):
        match = _TEMPORARY_NAME.match(path.name)
        if match is None or not path.is_file() or _process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    if removed:
        logger.info("%s: removed %d temporary file(s) of an interrupted merge or export", run_dir, len(removed))
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process writes no temporary file while a run starts
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def atomic_write_json_array(path: Path, values: Iterable[Any]) -> None:
    """Write a JSON array, one element per line, atomically (see `atomic_write_lines`)."""
    atomic_write_lines(path, _array_lines(values))


def _array_lines(values: Iterable[Any]) -> Iterator[str]:
    previous: str | None = None
    yield "["
    for value in values:
        if previous is not None:
            yield previous + ","
        previous = json_line(value)
    if previous is not None:
        yield previous
    yield "]"


def fsync_dir(folder: Path) -> None:
    """Make a file's creation or rename durable (a no-op where folders cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
