"""The embedded default: a tiny VIGC model trained on synthetic scenes, shipped with the package.

`vigc_default` builds it from `vigc/assets/default_model/` with no path to set; any `vigc_model` argument can
be overridden (for example `finetuned` with your own checkpoint of the same size, trained from
`vigc/projects/default/train_shapes.yaml`). The sizes live here, once: the training config builds the same
architecture through this builder, only with freshly initialised weights and the tokenizers and LLM directory
made by `python -m vigc.tools.build_default_model prepare`.

    assets/default_model/
        llm/                 LlamaForCausalLM (save_pretrained) + the sentencepiece tokenizer.model
        qformer_tokenizer/   BERT-style vocab.txt (+ tokenizer_config.json)
        model.safetensors    vision encoder, Q-Former, query tokens, projection (format "vigc")
        README.md            how they were made, and what they score
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

from vigc.models.builders import check_vigc_model_inputs, vigc_model
from vigc.models.vigc_model import VIGCModel
from vigc.registry import MODELS

__all__ = ["DEFAULT_ASSETS", "DEFAULT_DIMS", "DEFAULT_LLM_DIMS", "default_model_paths", "vigc_default"]

DEFAULT_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "default_model"

# Vision encoder and Q-Former sizes (arguments of `vigc_model`): 96 px images in 3 x 3 patches of 32 px, one patch
# per cell of the scenes' grid, so that each patch holds at most one object (grounding is learnt in minutes).
DEFAULT_DIMS: dict[str, Any] = {
    "image_size": 96,
    "patch_size": 32,
    "vit_width": 128,
    "vit_depth": 4,
    "vit_heads": 4,
    "vit_mlp_hidden": 512,
    "num_query_token": 16,
    "qformer_hidden": 128,
    "qformer_layers": 2,
    "qformer_heads": 4,
    "qformer_intermediate": 512,
    "qformer_max_positions": 256,
    "cross_attention_freq": 1,
    "max_txt_len": 200,  # a VIC step prompt of a nine-object description: instruction, question, eight sentences
    "max_output_txt_len": 192,
}

# The LLM (`transformers.LlamaConfig` arguments; the vocabulary size comes from the tokenizer).
DEFAULT_LLM_DIMS: dict[str, Any] = {
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}


def default_model_paths(assets: Path = DEFAULT_ASSETS) -> dict[str, str]:
    """The `vigc_model` path arguments of the shipped model (`llm_model`, `qformer_tokenizer`, `pretrained`)."""
    return {
        "llm_model": str(assets / "llm"),
        "qformer_tokenizer": str(assets / "qformer_tokenizer"),
        "pretrained": str(assets / "model.safetensors"),
    }


# Everything is trained in this small model (no frozen parts), so fine-tuning it from a config needs no switches.
_DEFAULTS: dict[str, Any] = {**DEFAULT_DIMS, **default_model_paths(), "freeze_vit": False, "freeze_llm": False}


def vigc_default(**kwargs: Any) -> VIGCModel:
    """The tiny VIGC model shipped in `vigc/assets/default_model` (CPU-friendly; trained on synthetic scenes).

    Takes every `vigc_model` argument; the defaults point at the packaged weights and sizes. Override
    `pretrained` / `finetuned` to load other weights of the same size, or `llm_model` / `qformer_tokenizer` /
    `pretrained` to train it from scratch (see `vigc.tools.build_default_model`).
    """
    return vigc_model(**{**_DEFAULTS, **kwargs})


vigc_default.__signature__ = inspect.signature(functools.partial(vigc_model, **_DEFAULTS))  # type: ignore[attr-defined]
vigc_default.__annotations__ = dict(vigc_model.__annotations__)  # the config checks read the argument types
vigc_default.check_inputs = lambda **kwargs: check_vigc_model_inputs(**{**_DEFAULTS, **kwargs})  # type: ignore[attr-defined]
MODELS.register(vigc_default)
