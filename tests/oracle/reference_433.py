"""The reference side of the differential tests: runs inside the transformers 4.33.3 oracle environment.

    <oracle python> tests/oracle/reference_433.py decode REQUEST.pt RESULT.pt
    <oracle python> tests/oracle/reference_433.py tokenize REQUEST.json RESULT.json

`decode`: for every case, `LlamaForCausalLM.generate(inputs_embeds=..., attention_mask=...)` of 4.33 on the
request's models (config + weights made by the test), exactly as the original VIGC called it.
`tokenize`: the original's tokenizers (slow `LlamaTokenizer` after the LAVIS bos/eos/pad surgery, and the
Q-Former's `BertTokenizer` with `[DEC]`) on the request's texts.

This file imports only torch and transformers 4.33 (never `vigc`): it is the code none of us wrote, run as is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch
import transformers
from transformers import BertTokenizer, LlamaConfig, LlamaForCausalLM, LlamaTokenizer


def _llama(spec: dict[str, Any]) -> LlamaForCausalLM:
    model = LlamaForCausalLM(LlamaConfig(**spec["config"])).eval()
    missing, unexpected = model.load_state_dict(spec["state_dict"], strict=False)
    missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise SystemExit(f"weights do not fit the 4.33 LLaMA: missing {missing}, unexpected {unexpected}")
    return model


@torch.no_grad()
def decode(request_path: str, result_path: str) -> None:
    request = torch.load(request_path, weights_only=True)
    models = [_llama(spec) for spec in request["models"]]
    results = []
    for case in request["cases"]:
        torch.manual_seed(case["seed"])  # 4.33 samples from the global generator
        out = models[case["model"]].generate(
            inputs_embeds=case["inputs_embeds"],
            attention_mask=case["attention_mask"],
            return_dict_in_generate=True,
            output_scores=True,
            **case["kwargs"],
        )
        scores = getattr(out, "sequences_scores", None)
        results.append({"sequences": out.sequences, "scores": scores})
    torch.save(results, result_path)


def _lavis_llama(directory: str, for_generate: bool) -> LlamaTokenizer:
    """`Blip2VicunaInstruct.__init__`'s LLM tokenizer (and `llm_tokenizer_for_generate`, pad := eos)."""
    tok = LlamaTokenizer.from_pretrained(directory, use_fast=False, truncation_side="left")
    tok.padding_side = "right"  # as LAVIS sets it before every call
    tok.add_special_tokens({"pad_token": "[PAD]"})
    tok.add_special_tokens({"bos_token": "</s>"})
    tok.add_special_tokens({"eos_token": "</s>"})
    tok.add_special_tokens({"unk_token": "</s>"})
    if for_generate:
        tok.pad_token = tok.eos_token
    return tok


def _qformer_bert(directory: str) -> BertTokenizer:
    """LAVIS `init_tokenizer`."""
    tok = BertTokenizer.from_pretrained(directory, truncation_side="left")
    tok.add_special_tokens({"bos_token": "[DEC]"})
    return tok


def _batch(tok: Any, texts: list[str], max_length: int | None, side: str) -> dict[str, list[list[int]]]:
    tok.truncation_side = side
    kwargs: dict[str, Any] = {"padding": "longest"}
    if max_length is not None:
        kwargs.update(truncation=True, max_length=max_length)
    enc = tok(texts, **kwargs)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def tokenize(request_path: str, result_path: str) -> None:
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    texts: list[str] = request["texts"]
    result: dict[str, Any] = {"llm": {}, "qformer": {}}
    for directory in request["llm_dirs"]:
        tok, gen = _lavis_llama(directory, False), _lavis_llama(directory, True)
        result["llm"][directory] = {
            "encode": [tok(text)["input_ids"] for text in texts],
            "batches": [_batch(tok, b["texts"], b["max_length"], b["side"]) for b in request["batches"]],
            "decode": [tok.decode(ids, skip_special_tokens=True) for ids in request["llm_ids"][directory]],
            "decode_generate": [gen.decode(ids, skip_special_tokens=True) for ids in request["llm_ids"][directory]],
        }
    for directory in request["bert_dirs"]:
        tok = _qformer_bert(directory)
        result["qformer"][directory] = {
            "batches": [_batch(tok, b["texts"], b["max_length"] or 128, "left") for b in request["batches"]],
        }
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    if transformers.__version__ != "4.33.3":
        raise SystemExit(f"the oracle must run on transformers 4.33.3, not {transformers.__version__}")
    command, request_file, result_file = sys.argv[1:4]
    {"decode": decode, "tokenize": tokenize}[command](request_file, result_file)
