"""Differential tests of our tokenizers against the original's, run by transformers 4.33.3 (slow tokenizers).

Random texts (unicode, combining marks, whitespace runs, special-token literals inside text, digits, very long
inputs) through both LLM tokenizers (after the LAVIS bos/eos/pad surgery: encode, batches truncated from the left
or right, decode as `llm_tokenizer` and as `llm_tokenizer_for_generate`) and both Q-Former tokenizers (`[DEC]`
added, truncation from the left), for the parity fixture's tokenizers and the embedded default model's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.oracle.conftest import run_reference
from vigc.models.tokenizers import LavisLlamaTokenizer, QFormerTokenizer

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO.parent / "shared" / "fixtures" / "vigc_reference"
DEFAULT_MODEL = REPO / "vigc" / "assets" / "default_model"

WORDS = (
    "What color is the image Question: Answer: a an of there are three objects in top left corner large small red "
    "purple circle triangle square describe detail Based on content given generate question that requires reasoning"
).split()
PIECES = [
    *WORDS,
    *"é ü ß Å ñ ç ø 中文 日本語 한국어 🙂 👍🏽 € £ ° µ".split(),
    "e\u0301",
    "\u00a0",
    "\u3000",
    "\u200b",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    " \n ",
    "</s>",
    "<s>",
    "<unk>",
    "[PAD]",
    "[DEC]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[UNK]",
    "3.5",
    "1234",
    "0",
    *",.!?;:'\"()-/",
    "don't",
    "U.S.A.",
    "...",
]
NUM_TEXTS = 400
NUM_BATCHES = 80


def _text(rng: random.Random) -> str:
    length = rng.choice([0, 1, 2, rng.randint(3, 20), rng.randint(20, 80)])
    parts = []
    for _ in range(length):
        piece = rng.choice(PIECES)
        parts.append(piece if rng.random() < 0.3 else (" " + piece if rng.random() < 0.8 else piece.upper()))
    text = "".join(parts)
    if rng.random() < 0.05:
        text = (text + " ") * rng.randint(10, 40)  # very long inputs
    if rng.random() < 0.2:
        text = rng.choice([" ", "  ", "\n", "\t"]) + text + rng.choice(["", " ", "\n"])
    return text


def _tokenizer_dirs() -> tuple[list[Path], list[Path]]:
    llm = [d for d in (FIXTURE / "llm", DEFAULT_MODEL / "llm") if (d / "tokenizer.model").is_file()]
    bert = [d for d in (FIXTURE / "bert_base_uncased_tiny", DEFAULT_MODEL / "qformer_tokenizer") if d.is_dir()]
    return llm, bert


@pytest.fixture(scope="module")
def reference(oracle_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = random.Random(433)
    llm_dirs, bert_dirs = _tokenizer_dirs()
    if not llm_dirs or not bert_dirs:
        pytest.skip("no tokenizer folders (parity fixture or default model assets) found")
    texts = [_text(rng) for _ in range(NUM_TEXTS)]
    batches = [
        {
            "texts": rng.sample(texts, rng.randint(1, 6)),
            "max_length": rng.choice([None, 3, 5, 16, 128]),
            "side": rng.choice(["left", "right"]),
        }
        for _ in range(NUM_BATCHES)
    ]
    llm_ids = {}
    for directory in llm_dirs:
        size = len(LavisLlamaTokenizer.from_directory(directory))
        llm_ids[str(directory)] = [[rng.randrange(size) for _ in range(rng.randint(0, 30))] for _ in range(200)]
    request = {
        "texts": texts,
        "batches": batches,
        "llm_dirs": [str(d) for d in llm_dirs],
        "bert_dirs": [str(d) for d in bert_dirs],
        "llm_ids": llm_ids,
    }
    folder = tmp_path_factory.mktemp("oracle_tokenize")
    (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
    run_reference(oracle_python, "tokenize", folder / "request.json", folder / "result.json")
    return {"request": request, "result": json.loads((folder / "result.json").read_text(encoding="utf-8"))}


def _report(problems: list[str], total: int, what: str) -> None:
    assert not problems, f"{len(problems)} of {total} {what} differ from 4.33:\n" + "\n".join(problems[:8])


def test_llm_encode_and_batches_equal_433(reference: dict[str, Any]) -> None:
    request, result = reference["request"], reference["result"]
    problems, total = [], 0
    for directory, expected in result["llm"].items():
        tok = LavisLlamaTokenizer.from_directory(directory)
        for text, ids in zip(request["texts"], expected["encode"], strict=True):
            total += 1
            if tok.encode(text) != ids:
                problems.append(f"{directory} encode {text!r}: ours {tok.encode(text)} 4.33 {ids}")
        for batch, want in zip(request["batches"], expected["batches"], strict=True):
            total += 1
            ids, mask = tok.batch(batch["texts"], max_length=batch["max_length"], truncation_side=batch["side"])
            if ids.tolist() != want["input_ids"] or mask.tolist() != want["attention_mask"]:
                problems.append(f"{directory} batch {batch}: ours {ids.tolist()} 4.33 {want['input_ids']}")
    _report(problems, total, "LLM encodings")


def test_llm_decode_equals_433(reference: dict[str, Any]) -> None:
    request, result = reference["request"], reference["result"]
    problems, total = [], 0
    for directory, expected in result["llm"].items():
        tok = LavisLlamaTokenizer.from_directory(directory)
        pairs = zip(request["llm_ids"][directory], expected["decode"], expected["decode_generate"], strict=True)
        for ids, text, generate_text in pairs:
            total += 2
            if tok.decode(ids) != text:
                problems.append(f"{directory} decode {ids}: ours {tok.decode(ids)!r} 4.33 {text!r}")
            if tok.decode(ids, for_generation=True) != generate_text:
                ours = tok.decode(ids, for_generation=True)
                problems.append(f"{directory} decode (generate) {ids}: ours {ours!r} 4.33 {generate_text!r}")
    _report(problems, total, "LLM decodings")


def test_qformer_batches_equal_433(reference: dict[str, Any]) -> None:
    request, result = reference["request"], reference["result"]
    problems, total = [], 0
    for directory, expected in result["qformer"].items():
        tok = QFormerTokenizer.from_directory(directory)
        for batch, want in zip(request["batches"], expected["batches"], strict=True):
            total += 1
            ids, mask = tok(batch["texts"], max_length=batch["max_length"] or 128)
            if ids.tolist() != want["input_ids"] or mask.tolist() != want["attention_mask"]:
                problems.append(f"{directory} {batch}: ours {ids.tolist()} 4.33 {want['input_ids']}")
    _report(problems, total, "Q-Former batches")
