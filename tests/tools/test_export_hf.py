"""`vigc export-hf`: transformers InstructBLIP folders out of VIGC models, and back in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import InstructBlipForConditionalGeneration, InstructBlipProcessor

from vigc.builtins import register_all
from vigc.cli.export_hf import main
from vigc.config import build_model
from vigc.data.processors import EvalImageProcessor
from vigc.errors import ConfigError
from vigc.models.builders import vigc_model
from vigc.models.decoding import DecodingSettings
from vigc.models.default_model import vigc_default
from vigc.models.hf_interop import export_instructblip
from vigc.models.vigc_model import VIGCModel

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CFG = str(REPO_ROOT / "vigc" / "projects" / "default" / "generate_qa.yaml")
PROMPTS = ["<Instruction> Describe the image in detail. <Question>", "What is on the left?"]
# transformers' single `layer_norm_eps` serves the ViT blocks (1e-6, kept) and ln_vision (1e-5 in LAVIS).
LOGITS_ATOL = 1e-4


@pytest.fixture(scope="module")
def default_model() -> VIGCModel:
    register_all()
    return vigc_default()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hf") / "default"
    assert main(["--cfg-path", DEFAULT_CFG, "--out", str(out)]) == 0
    return out


def _ours_and_hf_inputs(
    model: VIGCModel, pixels: torch.Tensor, prompts: list[str], image_token_id: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Our LLM logits on `[prefix][bos prompt]` and the same inputs in transformers' InstructBLIP form."""
    prefix = model.visual_prefix(model.encode_images(pixels), prompts)
    ids, mask = model.llm_tokenizer.batch(prompts)
    batch, queries = ids.shape[0], prefix.embeds.shape[1]
    full_mask = torch.cat([torch.ones(batch, queries, dtype=torch.long), mask], dim=1)
    embeds = torch.cat([prefix.embeds, model.input_embeddings()(ids)], dim=1)
    logits = model.language_model(inputs_embeds=embeds, attention_mask=full_mask).logits
    image_ids = torch.full((batch, queries), image_token_id)
    hf_inputs = {
        "pixel_values": pixels,
        "qformer_input_ids": prefix.qformer_input_ids,
        "qformer_attention_mask": prefix.qformer_attention_mask[:, queries:],
        "input_ids": torch.cat([image_ids, ids], dim=1),
        "attention_mask": full_mask,
    }
    assert prefix.qformer_input_ids is not None
    return logits, hf_inputs


def _assert_same_logits(model: VIGCModel, hf: Any, pixels: torch.Tensor, prompts: list[str]) -> None:
    with torch.no_grad():
        image_token_id = hf.config.image_token_index
        ours, inputs = _ours_and_hf_inputs(model, pixels, prompts, image_token_id)
        theirs = hf(**inputs).logits
    assert theirs.shape[:2] == ours.shape[:2] and theirs.shape[2] == image_token_id + 1
    torch.testing.assert_close(theirs[..., : ours.shape[2]], ours, atol=LOGITS_ATOL, rtol=0)
    assert torch.all(theirs[..., image_token_id] == 0)  # the exported `<image>` row of lm_head is zero


def test_export_loads_in_transformers_with_every_key(exported: Path) -> None:
    model, info = InstructBlipForConditionalGeneration.from_pretrained(exported, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    processor = InstructBlipProcessor.from_pretrained(exported)
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index == 641
    assert processor.qformer_tokenizer.truncation_side == "left"
    assert processor.qformer_tokenizer.bos_token == "[DEC]"
    generation = json.loads((exported / "generation_config.json").read_text())
    assert generation["suppress_tokens"] == [641] and generation["eos_token_id"] == 2


def test_exported_logits_equal_ours(default_model: VIGCModel, exported: Path) -> None:
    hf = InstructBlipForConditionalGeneration.from_pretrained(exported).eval()
    torch.manual_seed(0)
    _assert_same_logits(default_model, hf, torch.randn(2, 3, 96, 96), PROMPTS)


def test_parity_fixture_model_exports_with_equal_logits(parity_model: VIGCModel, tmp_path: Path) -> None:
    export_instructblip(parity_model, tmp_path, image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    hf = InstructBlipForConditionalGeneration.from_pretrained(tmp_path).eval()
    size = parity_model.vision_model.config.image_size
    torch.manual_seed(1)
    _assert_same_logits(parity_model, hf, torch.randn(2, 3, size, size), ["a photo of", "what is this? answer:"])
    settings = [
        DecodingSettings(max_new_tokens=20, num_beams=b, repetition_penalty=r) for b in (1, 5) for r in (1, 1.5)
    ]
    with torch.no_grad():
        pixels = torch.randn(1, 3, size, size)
        _, inputs = _ours_and_hf_inputs(parity_model, pixels, ["a photo of"], hf.config.image_token_index)
        for s in settings:
            ours = parity_model.generate(parity_model.encode_images(pixels), "a photo of", s).sequences[0]
            theirs = hf.generate(
                **inputs, max_new_tokens=20, num_beams=s.num_beams, repetition_penalty=s.repetition_penalty
            )[0, inputs["input_ids"].shape[1] :]
            assert theirs.tolist()[: len(ours)] == ours.tolist(), s


def test_processor_gives_our_pixels_and_ids(default_model: VIGCModel, exported: Path) -> None:
    processor = InstructBlipProcessor.from_pretrained(exported)
    image = Image.open(REPO_ROOT / "vigc" / "assets" / "sample_images" / "shapes_123_000001.png")
    encoded = processor(images=image, text=PROMPTS[0], return_tensors="pt")
    torch.testing.assert_close(encoded["pixel_values"][0], EvalImageProcessor(image_size=96)(image), atol=1e-6, rtol=0)
    queries = default_model.query_tokens.shape[1]
    assert encoded["input_ids"][0].tolist() == [641] * queries + default_model.llm_tokenizer.encode(PROMPTS[0])
    qformer_ids, _ = default_model.qformer_tokenizer([PROMPTS[0]])
    assert torch.equal(encoded["qformer_input_ids"], qformer_ids)


def test_exported_greedy_generation_equals_ours(default_model: VIGCModel, exported: Path) -> None:
    """A left-padded batch of two images and prompts of different lengths, through the processor."""
    hf = InstructBlipForConditionalGeneration.from_pretrained(exported).eval()
    processor = InstructBlipProcessor.from_pretrained(exported)
    processor.tokenizer.padding_side = "left"
    folder = REPO_ROOT / "vigc" / "assets" / "sample_images"
    images = [Image.open(folder / f"shapes_123_00000{i}.png") for i in (2, 3)]
    encoded = processor(images=images, text=PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeds = default_model.encode_images(encoded["pixel_values"])
        ours = [
            texts[0] for texts in default_model.generate(embeds, PROMPTS, DecodingSettings(max_new_tokens=40)).texts
        ]
        ids = hf.generate(**encoded, max_new_tokens=40, do_sample=False)[:, encoded["input_ids"].shape[1] :]
    assert [text.strip() for text in processor.batch_decode(ids, skip_special_tokens=True)] == ours
    assert all(len(text.split()) > 3 for text in ours)


def test_exported_folder_is_a_whole_model_for_our_configs(default_model: VIGCModel, exported: Path) -> None:
    back = build_model({"arch": "vigc_model", "pretrained": str(exported)}, source="test")
    (report,) = back.load_reports  # the folder is read once, LLM included
    assert report.format == "hf_instructblip" and not report.missing and not report.unexpected
    ours, theirs = default_model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert back.vision_model.post_layernorm.eps == 1e-5 and len(back.llm_tokenizer) == 641
    torch.manual_seed(2)
    embeds = default_model.encode_images(torch.randn(1, 3, 96, 96))
    settings = DecodingSettings(max_new_tokens=30, num_beams=5)
    assert (
        back.generate(embeds, PROMPTS[1], settings).texts == default_model.generate(embeds, PROMPTS[1], settings).texts
    )


def test_folder_written_by_transformers_loads_sharded(default_model: VIGCModel, exported: Path, tmp_path: Path) -> None:
    """The layout of the published checkpoints: sharded safetensors, tokenizer.json without tokenizer.model."""
    hf = InstructBlipForConditionalGeneration.from_pretrained(exported).eval()
    hf.save_pretrained(tmp_path, max_shard_size="4MB")
    InstructBlipProcessor.from_pretrained(exported).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors.index.json").is_file() and not (tmp_path / "tokenizer.model").exists()
    back = vigc_model(pretrained=str(tmp_path))
    # Without tokenizer.model the folder's transformers tokenizer is used; it knows `<image>`, so its row stays.
    assert len(back.llm_tokenizer) == 642 and back.input_embeddings().weight.shape[0] == 642
    torch.manual_seed(3)
    pixels = torch.randn(1, 3, 96, 96)
    _assert_same_logits(back, hf, pixels, [PROMPTS[1]])
    again = export_instructblip(back, tmp_path / "again", image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    assert again.image_token_id == 641  # the tokenizer's own `<image>`, no second one
    _assert_same_logits(back, InstructBlipForConditionalGeneration.from_pretrained(again.out_dir), pixels, [PROMPTS[1]])


def test_lora_adapters_as_peft_folder_and_merged(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    model = vigc_default(lora_config={"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0})
    torch.manual_seed(4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_B." in name:  # zero at initialisation: make the adapters change the logits
                param.normal_(0.0, 0.05)
    report = export_instructblip(model, tmp_path / "a", image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    assert report.lora == "adapter" and report.adapter_dir is not None
    assert {p.name for p in report.adapter_dir.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    pixels = torch.randn(1, 3, 96, 96)
    base = InstructBlipForConditionalGeneration.from_pretrained(tmp_path / "a").eval()
    with pytest.raises(AssertionError):  # without the adapters the logits are not ours
        _assert_same_logits(model, base, pixels, [PROMPTS[1]])
    _assert_same_logits(model, peft.PeftModel.from_pretrained(base, str(report.adapter_dir)), pixels, [PROMPTS[1]])
    merged = export_instructblip(model, tmp_path / "m", image_mean=(0.5,) * 3, image_std=(0.5,) * 3, merge_lora=True)
    assert merged.lora == "merged" and not (tmp_path / "m" / "lora_adapter").exists()
    hf = InstructBlipForConditionalGeneration.from_pretrained(tmp_path / "m").eval()
    _assert_same_logits(model, hf, pixels, [PROMPTS[1]])


def test_lora_on_a_folder_model_is_one_clear_error(exported: Path) -> None:
    with pytest.raises(ConfigError, match="lora_config cannot be combined"):
        vigc_model(pretrained=str(exported), lora_config={"lora_r": 4})


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cfg-path", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.yaml" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("text", "same"),
    [
        ("Describe the image in detail.", True),
        ("Question: what? Answer: a red circle.</s>", True),
        ("Café ünïcode 漢字 a  b\nc", True),
        (" leading space", False),  # transformers 5 drops the `▁` of a leading space (module docstring)
    ],
)
def test_exported_llm_tokenizer_ids(default_model: VIGCModel, text: str, same: bool) -> None:
    tokenizer = default_model.llm_tokenizer.to_transformers()
    assert (tokenizer(text)["input_ids"] == default_model.llm_tokenizer.encode(text)) is same
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 640
