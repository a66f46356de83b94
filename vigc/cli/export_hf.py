"""Export a config's model as a transformers InstructBLIP folder.

examples:
  vigc export-hf --cfg-path vigc/projects/default/generate_qa.yaml --out export/default
  vigc export-hf --cfg-path CFG --out DIR --options model.finetuned=/ckpt/vigc.pth
  vigc export-hf --cfg-path CFG --out DIR --merge-lora
      LoRA adapters folded into the LLM weights

The folder (config.json, safetensors with every weight including the LLM, generation_config.json, the processor
with both tokenizers) loads with InstructBlipForConditionalGeneration.from_pretrained(DIR) and
InstructBlipProcessor.from_pretrained(DIR), and back into VIGC as model.pretrained=DIR (no model.llm_model). A
model with LoRA adapters (model.lora_config) gets its adapters as a PEFT folder in DIR/lora_adapter, or folded
into the LLM weights with --merge-lora. `python -m vigc.tools.export_hf` is the same.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from vigc.cli.common import exit_on_error, standalone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The config whose model to export, the destination and the LoRA choice."""
    parser.add_argument(
        "--cfg-path", required=True, metavar="YAML", help="a VIGC config whose `model` section to export"
    )
    parser.add_argument("--out", required=True, type=Path, help="destination folder")
    parser.add_argument(
        "--options", nargs="+", default=[], metavar="KEY=VALUE", help="overrides: section.key=value ..."
    )
    parser.add_argument("--merge-lora", action="store_true", help="fold LoRA adapters into the LLM weights")


def run(args: argparse.Namespace) -> int:
    """Build the model as generation would and write the folder; one ``error:`` line (exit 2) on bad input."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return exit_on_error(lambda: _export(args), os_error=str)  # OSError: an unwritable destination


def _export(args: argparse.Namespace) -> int:
    from vigc.tools.export_hf import export

    report = export(args.cfg_path, args.out, args.options, merge_lora=args.merge_lora)
    adapter = f"; LoRA adapters in {report.adapter_dir}" if report.adapter_dir else ""
    print(f"exported {report.num_tensors} tensors to {report.out_dir} (LoRA: {report.lora}{adapter})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """This command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
