"""Export the model of a VIGC config as a transformers InstructBLIP folder: `export`, run by ``vigc export-hf``.

    vigc export-hf --cfg-path vigc/projects/default/generate_qa.yaml --out export/default
    python -m vigc.tools.export_hf --cfg-path CFG --out DIR --options model.finetuned=/ckpt/vigc.pth   # the same

The folder (config.json, safetensors with every weight including the LLM, generation_config.json, the processor
with both tokenizers) loads with `InstructBlipForConditionalGeneration.from_pretrained(DIR)` and
`InstructBlipProcessor.from_pretrained(DIR)`, and back into VIGC as `model.pretrained=DIR` (no
`model.llm_model`). A model with LoRA adapters (`model.lora_config`) gets its adapters as a PEFT folder in
`DIR/lora_adapter`, or folded into the LLM weights with `--merge-lora`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from vigc.builtins import register_all
from vigc.config import build_model, load_config, validate_config
from vigc.data.processors import CLIP_MEAN, CLIP_STD
from vigc.errors import VIGCError
from vigc.models.hf_interop import ExportReport, export_instructblip
from vigc.models.vigc_model import VIGCModel

logger = logging.getLogger(__name__)


def export(cfg_path: str, out_dir: Path, options: list[str], merge_lora: bool = False) -> ExportReport:
    """Build the config's model (weights loaded as for generation) and write it to `out_dir`.

    Raises:
        VIGCError: A bad config, weight path or checkpoint (one message).
    """
    register_all()
    cfg = load_config(cfg_path, options)
    validate_config(cfg, source=cfg_path)
    model = build_model(cfg.model, source=cfg_path)
    if not isinstance(model, VIGCModel):
        raise VIGCError(f"{cfg_path}: model.arch builds a {type(model).__name__}, not a VIGC model")
    # The image processor normalises as the data pipeline does (LAVIS's CLIP statistics).
    return export_instructblip(model, out_dir, image_mean=CLIP_MEAN, image_std=CLIP_STD, merge_lora=merge_lora)


if __name__ == "__main__":  # the command line is the top layer: imported only when run as a program
    from vigc.cli.export_hf import main

    sys.exit(main())
