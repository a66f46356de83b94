"""GPU: VIG decoding throughput of a 7B-sized random-weight VIGC model (bf16) against transformers' generate.

Builds EVA ViT-g (39 blocks), a BERT-base Q-Former and a LLaMA-7B-shaped LLM with random weights directly on the
GPU (no checkpoints needed), then for batch 1 / 8 / 32 times our VIG (`VIGCModel.generate`) and transformers'
`InstructBlipForConditionalGeneration.generate` on the same weights and inputs, both with 5 beams and a fixed
number of new tokens (random weights never emit EOS, so every row decodes `--new-tokens`).

    python bench/vig_speed_gpu.py [--batches 1 8 32] [--new-tokens 64] [--beams 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from transformers import (
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipQFormerConfig,
    InstructBlipVisionConfig,
    LlamaConfig,
)

from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel


class _Ids:
    """A stand-in tokenizer for random weights: ids in, ids out (texts are not looked at here)."""

    def __init__(self, vocab: int, qformer_vocab: int) -> None:
        self.vocab, self.qformer_vocab = vocab, qformer_vocab
        self.eos_token_id = self.bos_token_id = 2
        self.pad_token_id = vocab - 1

    def __len__(self) -> int:
        return self.vocab

    def batch(self, texts: list[str], **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([[2] + [100 + (ord(c) % 200) for c in t] for t in texts])
        return ids, torch.ones_like(ids)

    def __call__(self, texts: list[str], max_length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([[101] + [1000 + (ord(c) % 200) for c in t][: max_length - 2] + [102] for t in texts])
        return ids, torch.ones_like(ids)

    def batch_decode(self, ids: list[list[int]], **_: object) -> list[str]:
        return [" ".join(map(str, row)) for row in ids]


def build(device: torch.device, tiny: bool) -> tuple[VIGCModel, InstructBlipForConditionalGeneration]:
    """A 7B-shaped InstructBLIP in bf16 (`tiny`: a few small layers, for a CPU dry run of this script)."""
    width, depth, llm, layers = (64, 2, 64, 2) if tiny else (1408, 39, 4096, 32)
    vision = InstructBlipVisionConfig(
        hidden_size=width,
        intermediate_size=width * 4,
        num_hidden_layers=depth,
        num_attention_heads=16 if not tiny else 4,
        qkv_bias=True,
    )
    qformer = InstructBlipQFormerConfig(vocab_size=30523, encoder_hidden_size=width)
    text = LlamaConfig(
        vocab_size=32001,
        hidden_size=llm,
        intermediate_size=llm * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=32 if not tiny else 4,
    )
    config = InstructBlipConfig(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=32,
        image_token_index=32000,
    )
    with torch.device(device):
        hf = InstructBlipForConditionalGeneration(config).to(torch.bfloat16).eval()
    tokenizer = _Ids(32001, 30523)
    ours = VIGCModel(
        vision_model=hf.vision_model,
        qformer=hf.qformer,
        query_tokens=hf.query_tokens.data,
        language_projection=hf.language_projection,
        language_model=hf.language_model,
        llm_tokenizer=tokenizer,  # type: ignore[arg-type]
        qformer_tokenizer=tokenizer,  # type: ignore[arg-type]
    ).eval()
    return ours, hf


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object]) -> float:
    fn()  # warm-up
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="small random model on the CPU (checks the script)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny else "cuda")
    torch.manual_seed(0)
    ours, hf = build(device, args.tiny)
    name = "CPU (tiny dry run)" if args.tiny else torch.cuda.get_device_name()
    prompt = "Generate a question to describe the image content in detail and then answer it."
    settings = DecodingSettings(num_beams=args.beams, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    print(f"{name} torch {torch.__version__}; bf16; {args.beams} beams; {args.new_tokens} tokens")
    print(f"{'batch':>5} {'ours QA/s':>10} {'ours tok/s':>11} {'hf QA/s':>9} {'hf tok/s':>9} {'ours/hf':>8}")
    for batch in args.batches:
        pixels = torch.randn(batch, 3, 224, 224, device=device, dtype=torch.bfloat16)
        ids, mask = ours.llm_tokenizer.batch([prompt] * batch)
        q_ids, q_mask = ours.qformer_tokenizer([prompt] * batch)
        input_ids = torch.cat([torch.full((batch, 32), 32000), ids], dim=1).to(device)

        def run_ours(pixels: torch.Tensor = pixels) -> object:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                return ours.generate(ours.encode_images(pixels), [prompt] * pixels.shape[0], settings)

        def run_hf(
            pixels: torch.Tensor = pixels,
            input_ids: torch.Tensor = input_ids,
            q_ids: torch.Tensor = q_ids,
            q_mask: torch.Tensor = q_mask,
        ) -> object:
            with torch.no_grad():
                return hf.generate(
                    pixel_values=pixels,
                    qformer_input_ids=q_ids.to(device),
                    qformer_attention_mask=q_mask.to(device),
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    num_beams=args.beams,
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens,
                    do_sample=False,
                    eos_token_id=2,
                    pad_token_id=2,
                )

        t_ours, t_hf = timed(run_ours), timed(run_hf)
        tokens = batch * args.new_tokens
        print(
            f"{batch:>5} {batch / t_ours:>10.2f} {tokens / t_ours:>11.1f} {batch / t_hf:>9.2f} {tokens / t_hf:>9.1f}"
            f" {t_hf / t_ours:>8.2f}"
        )


if __name__ == "__main__":
    main()
