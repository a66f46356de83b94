"""What every subcommand shares: help layout, a standalone parser (for the old scripts), logging, error exits.

Nothing here imports torch or transformers: `vigc --help` and every subcommand's ``--help`` stay fast because
each command imports its heavy modules inside its ``run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from vigc.errors import VIGCError, output_error_message

__all__ = [
    "HelpFormatter",
    "config_or_print",
    "describe",
    "exit_on_error",
    "setup_logging",
    "standalone",
    "summary",
]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples in the description and epilog keep their lines; an option's default is shown when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or default is None or default is False or default == argparse.SUPPRESS or default == []:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            text += " (default: " + shown.replace("%", "%%") + ")"
        return text


def describe(doc: str | None) -> dict[str, Any]:
    """A command module's docstring → ``ArgumentParser`` keywords, printed as written: the text before its
    ``examples:`` paragraph is the description, the rest the epilog.

    The docstring's first line is the command's summary in ``vigc --help`` (`summary`).
    """
    text = (doc or "").strip()
    head, marker, rest = text.partition("\n\nexamples:\n")
    return {"description": head, "epilog": marker.lstrip() + rest if marker else None, "formatter_class": HelpFormatter}


def summary(doc: str | None) -> str:
    """The first line of a command module's docstring: its one-line summary."""
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def standalone(
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
    prog: str | None = None,
) -> int:
    """Parse `argv` with one command's own parser and run it (``evaluate.py``, ``train.py``, ``vigc_demo.py``)."""
    parser = argparse.ArgumentParser(prog=prog, **describe(doc))
    add_arguments(parser)
    return run(parser.parse_args(argv))


class _TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines printed above a progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """`level` on rank 0, warnings only on the other ranks of a torchrun job; lines name their rank."""
    rank = int(os.environ.get("RANK", "0"))
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level if rank == 0 else logging.WARNING, handlers=[handler], force=True)


def exit_on_error(work: Callable[[], int], os_error: Callable[[OSError], str] = output_error_message) -> int:
    """Run `work`; a mistake the user can fix (`VIGCError`) or a file that cannot be read or written (`OSError`: a
    full disk, a folder gone mid-run) becomes one ``error:`` line on stderr and exit status 2, without a traceback.

    Args:
        work: The command's body; returns its exit status.
        os_error: The line for an `OSError` (default: where a run's output failed and how to resume).
    """
    try:
        return work()
    except VIGCError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error: {os_error(exc)}", file=sys.stderr)
    return 2


def config_or_print(args: argparse.Namespace) -> Any:
    """The config of ``--cfg-path`` with ``--options`` applied, every builder registered; None after printing it
    as YAML when ``--print-config`` asked for that instead (generate and train share this)."""
    from omegaconf import OmegaConf

    from vigc.builtins import register_all
    from vigc.config import load_config

    register_all()
    cfg = load_config(args.cfg_path, args.options)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return None
    return cfg
