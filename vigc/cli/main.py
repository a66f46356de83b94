"""vigc: generate instruction data with VIG + VIC, train VIGC models, and look at the results.

examples:
  vigc generate --cfg-path vigc/projects/default/generate_qa.yaml
  vigc train --cfg-path vigc/projects/default/train_shapes.yaml --print-config
  vigc demo --device0 cpu
  vigc merge output/default/<run id>
  vigc export output/default/<run id> --format parquet --out data/default
  vigc export-hf --cfg-path vigc/projects/default/generate_qa.yaml --out export/default
  vigc report --records output/default/<run id> --ground-truth vigc/assets/sample_images
  vigc check-parity ../shared/fixtures/vigc_reference

`vigc COMMAND --help` describes a command. Packaged configs (vigc/projects/...) are found from any folder.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from vigc.cli.common import describe, summary

# Command → its module. Each module imports nothing heavy at the top (torch, transformers: inside `run`), so that
# parsing, and `--help`, take well under a second. A module has `add_arguments(parser)` and `run(args) -> int`,
# or `PASS_THROUGH = True` and `main(argv) -> int` when it parses its own arguments.
COMMANDS: dict[str, str] = {
    "generate": "vigc.cli.generate",
    "train": "vigc.cli.train",
    "demo": "vigc.cli.demo",
    "merge": "vigc.cli.merge",
    "export": "vigc.cli.export",
    "export-hf": "vigc.cli.export_hf",
    "report": "vigc.cli.report",
    "check-parity": "vigc.cli.check_parity",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vigc")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``vigc`` parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="vigc", **describe(__doc__))
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        if getattr(module, "PASS_THROUGH", False):  # listed here; `main` hands it its arguments before parsing
            commands.add_parser(name, help=summary(module.__doc__), add_help=False)
            continue
        command = commands.add_parser(name, help=summary(module.__doc__), **describe(module.__doc__))
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def _pass_through(argv: Sequence[str]) -> ModuleType | None:
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]])
        return module if getattr(module, "PASS_THROUGH", False) else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``vigc`` console command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    module = _pass_through(args_list)
    if module is not None:
        return int(module.main(args_list[1:]))
    args = build_parser().parse_args(args_list)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
