"""Train a VIGC model from a config: ``python train.py --cfg-path CONFIG [--options key=value ...]``.

Runs in one process, or in several under ``torchrun --nproc_per_node=N train.py ...`` (DDP on NCCL or gloo).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from tqdm import tqdm

from vigc.config import load_config
from vigc.errors import VIGCError, output_error_message

logger = logging.getLogger("train")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (the original's ``--cfg-path`` and ``--options``, plus ``--resume``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg-path", required=True, help="path of the YAML config")
    parser.add_argument(
        "--options",
        nargs="+",
        default=[],
        help="overrides section.key=value, e.g. run.max_iters=100 model.llm_model=/models/vicuna-7b",
    )
    parser.add_argument("--resume", default=None, help="checkpoint folder (or run folder) to continue exactly from")
    return parser.parse_args(argv)


class _TqdmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines printed above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logging() -> None:
    """INFO on rank 0, warnings only on the other ranks."""
    rank = int(os.environ.get("RANK", "0"))
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Load the config, train, and return the exit status (2 for a configuration or data error)."""
    args = parse_args(argv)
    setup_logging()
    from vigc.builtins import register_all
    from vigc.tasks.train import run_training

    register_all()
    try:
        cfg = load_config(args.cfg_path, args.options)
        result = run_training(cfg, source=args.cfg_path, resume=args.resume)
    except VIGCError as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:  # a full disk or a folder gone mid-run: the checkpoints written so far are kept
        logger.error("%s", output_error_message(exc))
        return 2
    logger.info("done: %s (last checkpoint %s)", result.run_dir, result.checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
