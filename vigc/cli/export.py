"""Export a run's records as a data set: Parquet, LLaVA, ShareGPT or DPO pairs.

examples:
  vigc export output/default/<run id> --format parquet --out data/default
  vigc export RUN --format llava --out DIR
  vigc export RUN --format dpo --out DIR
      preference pairs from VIC's corrections: VIG's answer rejected, VIC's chosen

`vigc export --help` lists every option. The command is `vigc.generation.data_export` (it parses its own
arguments).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# This command parses its own arguments: `vigc.cli.main` hands it everything after "export".
PASS_THROUGH = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run `vigc.generation.data_export` on `argv` (default: this process's arguments)."""
    try:
        from vigc.generation.data_export import main as export_main
    except ModuleNotFoundError as exc:  # this install lacks the exporter or a package it needs
        print(f"error: vigc export needs the module {exc.name!r}, which is not installed here", file=sys.stderr)
        return 2
    return export_main(list(sys.argv[1:] if argv is None else argv))
