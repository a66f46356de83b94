"""peft is optional: LoRA configs say in one line that they need it; nothing else imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from vigc.config import check_model_inputs
from vigc.errors import ConfigError
from vigc.models import builders as _builders  # noqa: F401  (registers the model builders)
from vigc.models.lora import PEFT_MISSING, LoraSettings, apply_lora

REPO = Path(__file__).resolve().parents[2]


def _section(fixture: Path, **extra: Any) -> dict[str, Any]:
    return {
        "arch": "vigc_model",
        "llm_model": str(fixture / "llm"),
        "qformer_tokenizer": str(fixture / "bert_base_uncased_tiny"),
        "random_init": True,
        **extra,
    }


def test_lora_configs_without_peft_stop_at_validation_in_one_line(
    reference_fixture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_model_inputs(_section(reference_fixture, lora_config={"lora_r": 4}), source="lora.yaml")  # peft here
    monkeypatch.setitem(sys.modules, "peft", None)  # as if it were not installed
    with pytest.raises(ConfigError) as error:
        check_model_inputs(_section(reference_fixture, lora_config={"lora_r": 4}), source="lora.yaml")
    assert PEFT_MISSING in str(error.value) and "\n" not in str(error.value)
    assert 'pip install "vigc[lora]"' in PEFT_MISSING
    with pytest.raises(ConfigError, match="needs peft"):
        apply_lora(nn.Linear(2, 2), LoraSettings())
    check_model_inputs(_section(reference_fixture), source="plain.yaml")  # no LoRA: peft is not asked for


def test_generation_training_and_export_modules_import_without_peft() -> None:
    code = (
        "import sys; sys.modules['peft'] = None\n"
        "import vigc.builtins, vigc.tasks.generate_llava, vigc.tasks.generate_vqa, vigc.tasks.train\n"
        "import vigc.training.state, vigc.models.hf_interop, vigc.generation.data_export\n"
        "vigc.builtins.register_all()"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
