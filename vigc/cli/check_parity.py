"""Compare against the golden outputs of the original VIGC code (a parity fixture).

examples:
  vigc check-parity ../shared/fixtures/vigc_reference
  vigc check-parity ../shared/fixtures/vigc_reference --only d_generate f_vic_loop

The model is built from the fixture's files through the normal loading path (vigc_model with the EVA ViT file,
the trimmed LAVIS checkpoint, the LLM directory and the BERT tokenizer directory); the full LAVIS file must give
the same weights. One line is printed per golden with its largest difference; the exit status is 1 when a tensor
differs beyond the manifest's tolerances or any text or token id differs at all, 2 for a folder that is not a
fixture. `python -m vigc.tools.check_parity` is the same.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from vigc.cli.common import exit_on_error, standalone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fixture folder, which goldens, and the thread count the goldens were made with."""
    parser.add_argument("fixture_dir", type=Path, help="the fixture folder (manifest.json, goldens/, inputs)")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only these checks (the names a full run prints; a wrong one lists all)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the goldens used 1)")


def run(args: argparse.Namespace) -> int:
    """Run the checks and print one line each; exit 1 if any failed."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return exit_on_error(lambda: _check(args), os_error=str)


def _check(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from vigc.tools.check_parity import run_checks

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    results = run_checks(args.fixture_dir, args.only)
    for check in results:
        status = "ok  " if check.ok else "FAIL"
        print(f"{status} {check.name:<60} diff={check.diff:.3g} tol={check.tolerance:g} {check.detail}")
    failed = [c for c in results if not c.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """This command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
