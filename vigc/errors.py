"""Errors a user can cause. Each carries one clear message saying what was wrong and how to fix it."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class VIGCError(Exception):
    """Base class of every error VIGC raises on purpose (bad config, bad checkpoint, bad input)."""


class ConfigError(VIGCError):
    """A config file, a `--options` override or a builder argument is wrong."""


class CheckpointError(VIGCError):
    """A checkpoint file cannot be read, is of an unknown format, or leaves required weights uninitialised."""


class TokenizerError(VIGCError):
    """A tokenizer directory is missing or unusable."""


class EvalInputError(VIGCError):
    """An evaluation input (annotations, synonym list, captions, records, images) is missing or malformed."""


class OutputError(VIGCError):
    """A run's output (records, exports, checkpoints) cannot be written: a full disk, a missing folder, ..."""


def output_error_message(exc: OSError, folder: Path | None = None, *, run_id: str | None = None) -> str:
    """One line for an OS error while writing a run's output: where, why, and how to go on.

    Args:
        exc: The error (``ENOSPC``, ``EDQUOT``, ``EACCES``, ...).
        folder: The folder being written (default: that of the error's file name).
        run_id: The run's id, for the resume command.
    """
    if folder is None and exc.filename:
        folder = Path(os.fsdecode(exc.filename)).parent
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space there (or set run.output_dir to a folder on another disk)"
    else:
        advice = "make sure the folder exists and is writable"
    resume = f"--run-id {run_id}" if run_id else "the same --run-id (or --resume)"
    return (
        f"cannot write in {folder if folder is not None else 'the output folder'}: {reason}. What was written so far "
        f"is kept; {advice}, then run the same command with {resume} to continue."
    )
