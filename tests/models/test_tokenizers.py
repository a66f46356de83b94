"""Tokenizers: exact parity with the original (transformers 4.33) ids, the generic HF path, the errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from vigc.errors import TokenizerError
from vigc.models.tokenizers import (
    HFCausalLMTokenizer,
    LavisLlamaTokenizer,
    LLMTokenizer,
    QFormerTokenizer,
    collate,
    load_llm_tokenizer,
    load_qformer_tokenizer,
)

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared/fixtures/vigc_reference"
NUM_QUERY_TOKENS = 8


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURE / "goldens" / "j_tokenization.json").is_file():
        pytest.skip(f"parity fixture not found at {FIXTURE}")
    return FIXTURE


@pytest.fixture(scope="module")
def llm_tok(fixture_dir: Path) -> LLMTokenizer:
    return load_llm_tokenizer(fixture_dir / "llm")


@pytest.fixture(scope="module")
def qformer_tok(fixture_dir: Path) -> QFormerTokenizer:
    return load_qformer_tokenizer(fixture_dir / "bert_base_uncased_tiny")


@pytest.fixture(scope="module")
def golden(fixture_dir: Path) -> dict[str, Any]:
    return json.loads((fixture_dir / "goldens" / "j_tokenization.json").read_text())


def _load_pt(fixture_dir: Path, name: str) -> dict[str, Any]:
    return torch.load(fixture_dir / "goldens" / name, map_location="cpu", weights_only=True)


# ---- LLM tokenizer against j_tokenization.json -------------------------------------------------------------
def test_llm_tokenizer_is_the_sentencepiece_one_with_lavis_special_ids(
    llm_tok: LLMTokenizer, golden: dict[str, Any]
) -> None:
    assert isinstance(llm_tok, LavisLlamaTokenizer)
    assert isinstance(llm_tok, LLMTokenizer)
    table = golden["llm"]
    assert len(llm_tok) == table["len"] == 501
    assert llm_tok.vocab_size == table["vocab_size"] == 500
    assert [llm_tok.pad_token, llm_tok.pad_token_id] == table["pad"] == ["[PAD]", 500]
    assert [llm_tok.eos_token, llm_tok.eos_token_id] == table["eos"] == ["</s>", 2]
    assert llm_tok.bos_token_id == table["bos"][1] == 2
    assert llm_tok.unk_token_id == table["unk"][1] == 2


def test_llm_single_texts_encode_and_decode_like_the_original(llm_tok: LLMTokenizer, golden: dict[str, Any]) -> None:
    for single in golden["llm"]["single"]:
        assert llm_tok.encode(single["text"]) == single["input_ids"], single["text"]
        assert llm_tok.decode(single["input_ids"]) == single["decode_skip_special"], single["text"]


def test_generation_decode_examples(llm_tok: LLMTokenizer, golden: dict[str, Any]) -> None:
    key = "llm_tokenizer_for_generate.batch_decode(skip_special_tokens=True)"
    for example in golden["decode_examples"]:
        assert llm_tok.batch_decode([example["ids"]], for_generation=True) == [example[key]]
        assert llm_tok.batch_decode(torch.tensor([example["ids"]]), for_generation=True) == [example[key]]
    # The training tokenizer treats `[PAD]` as special, so it is skipped there.
    assert llm_tok.decode([2, 1, 0, 13, 13, 500]) == " ⁇ \n\n"


def _assert_batch(got: tuple[torch.Tensor, torch.Tensor], call: dict[str, Any]) -> None:
    input_ids, attention_mask = got
    assert input_ids.dtype == attention_mask.dtype == torch.long
    assert input_ids.tolist() == call["input_ids"]
    assert attention_mask.tolist() == call["attention_mask"]


def test_forward_text_input_batch_truncates_left_keeping_bos(llm_tok: LLMTokenizer, golden: dict[str, Any]) -> None:
    call = golden["batch_calls"]["forward_text_input"]
    got = llm_tok.batch(call["texts"], max_length=call["max_length"], truncation_side=call["truncation_side"])
    _assert_batch(got, call)
    long_ids = llm_tok.encode(call["texts"][3])
    assert got[0][3].tolist() == [2] + long_ids[-127:]


def test_forward_text_output_batch(llm_tok: LLMTokenizer, golden: dict[str, Any]) -> None:
    call = golden["batch_calls"]["forward_text_output"]
    texts = [text + call["appended"] for text in call["texts_before_eos"]]
    _assert_batch(llm_tok.batch(texts, max_length=call["max_length"], truncation_side=call["truncation_side"]), call)


def test_generate_prompt_batch_pads_with_eos(llm_tok: LLMTokenizer, golden: dict[str, Any]) -> None:
    call = golden["batch_calls"]["generate_prompt"]
    _assert_batch(llm_tok.batch(call["texts"], pad_token_id=llm_tok.eos_token_id), call)


# Reference values computed with transformers 4.33.3's slow LlamaTokenizer after the LAVIS surgery, on the
# fixture's `llm/tokenizer.model`: `<s>` and `<unk>` stay "no split" tokens, and whitespace around every
# no-split token is eaten.
@pytest.mark.parametrize(
    ("text", "ids"),
    [
        (" </s> ", [2, 2]),
        ("a</s>b", [2, 265, 2, 270]),
        ("a <s> b", [2, 265, 1, 270]),
        (" <unk>x", [2, 0, 455, 123]),
        (" [PAD] x", [2, 500, 455, 123]),
        ("a  </s>  </s>  b", [2, 265, 2, 2, 270]),
        ("Hé\tthe</s>\n", [2, 455, 75, 198, 172, 12, 392, 2]),
    ],
)
def test_literal_special_tokens_match_transformers_4_33(llm_tok: LLMTokenizer, text: str, ids: list[int]) -> None:
    assert llm_tok.encode(text) == ids


@pytest.mark.parametrize(
    ("ids", "training", "generation", "raw"),
    [
        (
            [2, 455, 303, 2, 262, 500, 13],
            "Question the\n",
            "Question the [PAD] \n",
            "</s>  Question</s>the [PAD] \n",
        ),
        ([1, 0, 500, 468, 2, 2], " ⁇ .", " ⁇  [PAD] .", " ⁇  [PAD]  .</s></s>"),
        ([500, 500, 262], "the", "[PAD] [PAD] the", "[PAD] [PAD] the"),
    ],
)
def test_decode_matches_transformers_4_33(
    llm_tok: LLMTokenizer, ids: list[int], training: str, generation: str, raw: str
) -> None:
    assert llm_tok.decode(ids) == training
    assert llm_tok.decode(ids, for_generation=True) == generation
    assert llm_tok.decode(ids, skip_special_tokens=False) == raw
    assert llm_tok.decode(ids, skip_special_tokens=False, for_generation=True) == raw


def test_decode_rejects_ids_outside_the_vocabulary(llm_tok: LLMTokenizer) -> None:
    with pytest.raises(ValueError, match="501"):
        llm_tok.decode([2, 501])


# ---- LLM ids inside the forward golden ---------------------------------------------------------------------
def test_forward_llm_input_ids_compose_from_the_two_tokenizations(fixture_dir: Path, llm_tok: LLMTokenizer) -> None:
    meta = json.loads((fixture_dir / "goldens" / "c_forward.json").read_text())
    gold = _load_pt(fixture_dir, "c_forward.pt")
    in_ids, in_mask = llm_tok.batch(meta["text_input"], max_length=128, truncation_side="left")
    outputs = [text + llm_tok.eos_token for text in meta["text_output"]]
    out_ids, out_mask = llm_tok.batch(outputs, max_length=256, truncation_side="right")
    rows, masks = [], []
    for i in range(in_ids.shape[0]):
        n_in = int(in_mask[i].sum())
        # [valid input tokens][output tokens without their bos][output pads][input pads]
        rows.append(torch.cat([in_ids[i, :n_in], out_ids[i, 1:], in_ids[i, n_in:]]))
        masks.append(torch.cat([in_mask[i, :n_in], out_mask[i, 1:], in_mask[i, n_in:]]))
    assert torch.equal(torch.stack(rows), gold["llm_input_ids"])
    assert torch.equal(torch.stack(masks), gold["attention_mask"][:, NUM_QUERY_TOKENS:])
    assert torch.stack(rows).tolist() == meta["llm_input_ids"]


# ---- Q-Former tokenizer ------------------------------------------------------------------------------------
def test_qformer_tokenizer_adds_dec(qformer_tok: QFormerTokenizer, golden: dict[str, Any]) -> None:
    table = golden["qformer"]
    assert len(qformer_tok) == table["len"] == 269
    assert qformer_tok.vocab_size == table["vocab_size"] == 268
    assert qformer_tok.bos_token_id == table["bos"][1] == 268
    assert qformer_tok.pad_token_id == table["pad"][1] == 0
    assert qformer_tok.cls_token_id == table["cls"][1]
    assert qformer_tok.sep_token_id == table["sep"][1]


def test_qformer_singles_and_batch(qformer_tok: QFormerTokenizer, golden: dict[str, Any]) -> None:
    call = golden["batch_calls"]["qformer"]
    for single in golden["qformer"]["single"]:
        assert qformer_tok([single["text"]], max_length=call["max_length"])[0][0].tolist() == single["input_ids"]
    _assert_batch(qformer_tok(call["texts"], max_length=call["max_length"]), call)


def test_qformer_truncation_keeps_cls_last_tokens_and_sep(
    qformer_tok: QFormerTokenizer, golden: dict[str, Any]
) -> None:
    long_text = golden["batch_calls"]["qformer"]["texts"][4]
    full = qformer_tok([long_text], max_length=4096)[0][0].tolist()
    truncated = qformer_tok([long_text], max_length=128)[0][0].tolist()
    assert len(full) > 128
    assert truncated == [full[0], *full[-127:-1], full[-1]]


def test_qformer_ids_of_vision_feats_golden(fixture_dir: Path, qformer_tok: QFormerTokenizer) -> None:
    prompts = json.loads((fixture_dir / "goldens" / "b_vision_feats_prompts.json").read_text())
    gold = _load_pt(fixture_dir, "b_vision_feats.pt")
    for name, prompt in prompts.items():
        texts = [prompt] * 4 if isinstance(prompt, str) else prompt
        input_ids, attention_mask = qformer_tok(texts, max_length=128)
        assert torch.equal(input_ids, gold[name]["qformer_input_ids"]), name
        assert torch.equal(attention_mask, gold[name]["qformer_attention_mask"][:, NUM_QUERY_TOKENS:]), name


def test_qformer_ids_of_forward_golden(fixture_dir: Path, qformer_tok: QFormerTokenizer) -> None:
    meta = json.loads((fixture_dir / "goldens" / "c_forward.json").read_text())
    gold = _load_pt(fixture_dir, "c_forward.pt")
    input_ids, attention_mask = qformer_tok(meta["text_input"], max_length=128)
    assert torch.equal(input_ids, gold["qformer_input_ids"])
    assert torch.equal(attention_mask, gold["qformer_attention_mask"][:, NUM_QUERY_TOKENS:])


# ---- collate -----------------------------------------------------------------------------------------------
def test_collate_truncates_after_bos_and_pads_either_side() -> None:
    seqs = [[9, 1, 2, 3, 4, 5], [9, 7]]
    ids, mask = collate(seqs, pad_token_id=0, max_length=4, truncation_side="left", padding_side="left")
    assert ids.tolist() == [[9, 3, 4, 5], [0, 0, 9, 7]]
    assert mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    ids, mask = collate(seqs, pad_token_id=-1, max_length=4, truncation_side="right")
    assert ids.tolist() == [[9, 1, 2, 3], [9, 7, -1, -1]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert collate(seqs, pad_token_id=0, max_length=1, truncation_side="left")[0].tolist() == [[9], [9]]
    assert collate([], pad_token_id=0)[0].shape == (0, 0)
    with pytest.raises(ValueError, match="max_length"):
        collate(seqs, pad_token_id=0, max_length=0)


# ---- generic transformers tokenizer ------------------------------------------------------------------------
WORDS = ["<unk>", "</s>", "what", "color", "is", "the", "circle", "?", "red", ".", "question", ":", "answer"]


@pytest.fixture()
def word_level_dir(tmp_path: Path) -> Path:
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(tmp_path)
    return tmp_path


def test_hf_tokenizer_follows_lavis_conventions(word_level_dir: Path) -> None:
    tok = load_llm_tokenizer(word_level_dir)
    assert isinstance(tok, HFCausalLMTokenizer)
    assert isinstance(tok, LLMTokenizer)
    assert tok.vocab_size == len(WORDS)
    assert len(tok) == len(WORDS) + 1  # `[PAD]` appended
    assert tok.pad_token == "[PAD]" and tok.pad_token_id == len(WORDS)
    assert tok.bos_token_id == tok.eos_token_id == 1 and tok.eos_token == "</s>"
    assert tok.unk_token_id == 0
    assert tok.encode("what color is the circle ?") == [1, 2, 3, 4, 5, 6, 7]
    assert tok.encode("") == [1]


def test_hf_tokenizer_batch_and_decode(word_level_dir: Path) -> None:
    tok = load_llm_tokenizer(word_level_dir)
    ids, mask = tok.batch(["what color is the circle ?", "red ."], max_length=4, truncation_side="left")
    assert ids.tolist() == [[1, 5, 6, 7], [1, 8, 9, tok.pad_token_id]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    ids, _ = tok.batch(["red .", "the"], padding_side="left", pad_token_id=tok.eos_token_id)
    assert ids.tolist() == [[1, 8, 9], [1, 1, 5]]
    pad = tok.pad_token_id
    assert tok.decode([1, 5, 6, pad, 4, 8, 1]) == "the circle is red"
    assert tok.batch_decode(torch.tensor([[1, 5, pad, 8]]), for_generation=True) == ["the [PAD] red"]


# ---- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["", "   "])
def test_empty_llm_path_names_the_config_key(path: str) -> None:
    with pytest.raises(TokenizerError, match="model.llm_model"):
        load_llm_tokenizer(path)


def test_missing_llm_dir_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="model.llm_model"):
        load_llm_tokenizer(tmp_path / "missing")


def test_llm_dir_without_tokenizer_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="model.llm_model"):
        load_llm_tokenizer(tmp_path)


def test_missing_qformer_dir_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="model.qformer_tokenizer"):
        load_qformer_tokenizer("")
    with pytest.raises(TokenizerError, match="model.qformer_tokenizer"):
        load_qformer_tokenizer(tmp_path / "missing")
    with pytest.raises(TokenizerError, match="model.qformer_tokenizer"):
        load_qformer_tokenizer(tmp_path)  # exists, but holds no vocab.txt


def test_broken_sentencepiece_model_raises_tokenizer_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(TokenizerError, match="model.llm_model"):
        load_llm_tokenizer(tmp_path)
