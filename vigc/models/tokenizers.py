"""Tokenizers with the conventions of the original VIGC/LAVIS stack (transformers 4.33), on transformers 5.

Two tokenizers feed the model:

* the LLM tokenizer. LAVIS loads the slow `LlamaTokenizer` (legacy=True), then performs a "surgery": it adds
  a new `[PAD]` token (id = sentencepiece vocab size) and sets bos = eos = unk = `</s>`. Every LLM sequence
  therefore starts with the eos id (2 for LLaMA), not with `<s>`. transformers 5's `LlamaTokenizer` is
  tokenizers-backed and does not reproduce these ids (it keeps prepending `<s>` and drops the extra `▁` of a
  leading space), so `LavisLlamaTokenizer` re-implements the 4.33 slow tokenizer on `sentencepiece`.
  `HFCausalLMTokenizer` applies the same conventions to other causal LMs through `transformers.AutoTokenizer`.
* the Q-Former tokenizer: `bert-base-uncased` with `[DEC]` added as bos and left truncation. transformers 5's
  `BertTokenizer` reproduces the 4.33 ids, so `QFormerTokenizer` only wraps it.

Both produce `(input_ids, attention_mask)` LongTensors of shape (B, T), padded to the longest sequence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import sentencepiece as spm
import torch
from transformers import AutoTokenizer, BertTokenizer, PreTrainedTokenizerBase

from vigc.errors import TokenizerError

logger = logging.getLogger(__name__)

Side = Literal["left", "right"]

PAD_TOKEN = "[PAD]"
DEC_TOKEN = "[DEC]"
SPIECE_UNDERLINE = "▁"
LLM_CONFIG_KEY = "model.llm_model"
QFORMER_CONFIG_KEY = "model.qformer_tokenizer"


@runtime_checkable
class LLMTokenizer(Protocol):
    """What the VIGC model needs from an LLM tokenizer (LAVIS conventions: every sequence starts with bos).

    * `encode(text)`: ids of one text, `[bos, ...]`.
    * `batch(texts, ...)`: (B, T) ids and attention mask; truncation keeps the bos; pads with `pad_token_id`.
    * `decode(ids, ...)` / `batch_decode(...)`: text; `for_generation=True` decodes as the generation
      tokenizer of the original, whose pad is eos (so `[PAD]` is not a special token there).
    """

    bos_token_id: int
    eos_token_id: int
    pad_token_id: int
    unk_token_id: int
    eos_token: str
    pad_token: str
    vocab_size: int  # without the added tokens; `len()` counts them

    def __len__(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def batch(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        truncation_side: Side = "right",
        padding_side: Side = "right",
        pad_token_id: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True, for_generation: bool = False) -> str: ...

    def batch_decode(
        self,
        sequences: Sequence[Sequence[int]] | torch.Tensor,
        *,
        skip_special_tokens: bool = True,
        for_generation: bool = False,
    ) -> list[str]: ...

    def to_transformers(self) -> PreTrainedTokenizerBase: ...


def collate(
    sequences: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    max_length: int | None = None,
    truncation_side: Side = "right",
    padding_side: Side = "right",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncate sequences that start with bos, then pad them to the longest, as the 4.33 tokenizer call did.

    Truncation keeps the leading bos: left truncation gives `[bos] + last max_length-1 tokens`, right
    truncation `[bos] + first max_length-1 tokens` (4.33 truncated the text ids to `max_length - 1`, then
    added the bos).

    Args:
        sequences: token ids, each starting with its bos.
        pad_token_id: id written into padded positions (attention 0 there).
        max_length: longest allowed sequence, bos included; None disables truncation.
        truncation_side: which end loses tokens.
        padding_side: which end receives the pads.

    Returns:
        `input_ids` and `attention_mask`, both (B, T) int64 with T the longest truncated length.
    """
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be at least 1 (room for the bos), got {max_length}.")
    rows = [list(seq) for seq in sequences]
    if max_length is not None:
        rows = [_truncate(row, max_length, truncation_side) for row in rows]
    width = max((len(row) for row in rows), default=0)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        start = 0 if padding_side == "right" else width - len(row)
        input_ids[i, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, start : start + len(row)] = 1
    return input_ids, attention_mask


def _truncate(row: list[int], max_length: int, side: Side) -> list[int]:
    if len(row) <= max_length:
        return row
    if side == "right" or max_length == 1:
        return row[:max_length]
    return row[:1] + row[len(row) - (max_length - 1) :]


def _as_id_lists(sequences: Sequence[Sequence[int]] | torch.Tensor) -> list[list[int]]:
    if isinstance(sequences, torch.Tensor):
        return [[int(i) for i in row] for row in sequences.tolist()]
    return [[int(i) for i in row] for row in sequences]


class LavisLlamaTokenizer:
    """transformers 4.33's slow `LlamaTokenizer` (legacy=True) after the LAVIS surgery, on `sentencepiece`.

    * `[PAD]` is a new token with id = sentencepiece vocab size; bos = eos = unk = `</s>`.
    * `encode` splits the text on the literal no-split tokens (`</s>`, `<s>`, `<unk>`, `[PAD]`), strips the
      whitespace around each of them (4.33 did so for special tokens given as plain strings) and returns
      `[bos] + sp.encode(chunk) / token id ...`.
    * `decode` follows 4.33's `_decode` and `convert_tokens_to_string`, quirks included.

    Args:
        model_file: the sentencepiece `tokenizer.model`.

    Attributes:
        bos_token_id, eos_token_id, unk_token_id: all the `</s>` id.
        pad_token_id: the `[PAD]` id (the sentencepiece vocab size).
        eos_token, pad_token: `</s>` and `[PAD]`.
        vocab_size: the sentencepiece vocab size, without `[PAD]`.
    """

    def __init__(self, model_file: str | Path) -> None:
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.Load(str(model_file))
        except (OSError, RuntimeError) as error:
            raise TokenizerError(
                f"Cannot load the sentencepiece model {model_file}: {error}. Point `{LLM_CONFIG_KEY}` at "
                "an LLM directory whose tokenizer.model is a sentencepiece model."
            ) from error
        if self._sp.eos_id() < 0:
            raise TokenizerError(f"The sentencepiece model {model_file} has no eos piece; LAVIS uses it as bos.")
        self._eos_id = int(self._sp.eos_id())
        self._eos = str(self._sp.id_to_piece(self._eos_id))
        self.vocab_size = int(self._sp.get_piece_size())
        existing_pad = int(self._sp.piece_to_id(PAD_TOKEN))
        # 4.33 only appended `[PAD]` when the vocab lacked it (piece_to_id gives the unk id for unknowns).
        self._pad_is_added = existing_pad == self._sp.unk_id()
        self._pad_id = self.vocab_size if self._pad_is_added else existing_pad
        self.bos_token_id = self.eos_token_id = self.unk_token_id = self._eos_id
        self.eos_token = self._eos
        self.pad_token_id, self.pad_token = self._pad_id, PAD_TOKEN
        # 4.33 made every special token of the loaded tokenizer "no split" (`sanitize_special_tokens`), and
        # `add_special_tokens` added `[PAD]`. `<s>` and `<unk>` stay no-split after the surgery.
        self._no_split = {PAD_TOKEN: self._pad_id, self._eos: self._eos_id}
        for piece_id in (self._sp.bos_id(), self._sp.unk_id()):
            if piece_id >= 0:
                self._no_split[str(self._sp.id_to_piece(piece_id))] = int(piece_id)
        alternatives = sorted(self._no_split, key=len, reverse=True)
        self._split_pattern = re.compile("(" + "|".join(re.escape(token) for token in alternatives) + ")")

    @classmethod
    def from_directory(cls, path: str | Path) -> LavisLlamaTokenizer:
        """Load from an LLM directory that contains `tokenizer.model`."""
        return cls(Path(path) / "tokenizer.model")

    def __len__(self) -> int:
        """Vocab size including `[PAD]`: the number of LLM embedding rows."""
        return self.vocab_size + int(self._pad_is_added)

    # ---- encoding ----------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, starting with bos, as 4.33's `tokenizer(text)["input_ids"]`."""
        parts = self._split_pattern.split(text)  # [chunk, token, chunk, token, ..., chunk]
        ids = [self.bos_token_id]
        for j, part in enumerate(parts):
            if j % 2 == 1:
                ids.append(self._no_split[part])
                continue
            # Whitespace next to a no-split token is eaten by it (4.33 default for plain-string specials).
            if j > 0:
                part = part.lstrip()
            if j < len(parts) - 1:
                part = part.rstrip()
            if part:
                ids.extend(int(i) for i in self._sp.encode(part))
        return ids

    def batch(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        truncation_side: Side = "right",
        padding_side: Side = "right",
        pad_token_id: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize a batch as `tokenizer(texts, padding="longest", truncation=..., max_length=...)` did.

        Args:
            texts: B strings.
            max_length: truncate to this many tokens (bos included); None for no truncation.
            truncation_side: "left" keeps the end of long texts (instructions), "right" the start (targets).
            padding_side: where the pads go.
            pad_token_id: pad id; defaults to `[PAD]` (generation pads with eos).

        Returns:
            `input_ids` and `attention_mask`, both (B, T) int64.
        """
        return collate(
            [self.encode(text) for text in texts],
            pad_token_id=self.pad_token_id if pad_token_id is None else pad_token_id,
            max_length=max_length,
            truncation_side=truncation_side,
            padding_side=padding_side,
        )

    # ---- decoding ----------------------------------------------------------------------------------------
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True, for_generation: bool = False) -> str:
        """Text of `ids`, as 4.33's slow `decode` (no clean-up of tokenization spaces).

        Args:
            ids: token ids.
            skip_special_tokens: drop special ids (eos; and `[PAD]` unless `for_generation`).
            for_generation: decode as LAVIS's `llm_tokenizer_for_generate`, whose pad token is eos, so
                `[PAD]` is not special there and decodes literally.
        """
        special_ids = {self._eos_id} if for_generation else {self._eos_id, self._pad_id}
        special_tokens = {self._eos} if for_generation else {self._eos, PAD_TOKEN}
        tokens = [self._id_to_token(i) for i in ids if not (skip_special_tokens and int(i) in special_ids)]
        # Added tokens (`[PAD]`) become sub-texts of their own, joined with spaces (4.33's
        # `spaces_between_special_tokens=True`).
        sub_texts: list[str] = []
        current: list[str] = []
        for token in tokens:
            if self._pad_is_added and token == PAD_TOKEN:
                if current:
                    sub_texts.append(self._tokens_to_string(current, special_tokens))
                    current = []
                sub_texts.append(token)
            else:
                current.append(token)
        if current:
            sub_texts.append(self._tokens_to_string(current, special_tokens))
        return " ".join(sub_texts)

    def batch_decode(
        self,
        sequences: Sequence[Sequence[int]] | torch.Tensor,
        *,
        skip_special_tokens: bool = True,
        for_generation: bool = False,
    ) -> list[str]:
        """`decode` of each row of a (B, T) tensor or a list of id lists."""
        return [
            self.decode(row, skip_special_tokens=skip_special_tokens, for_generation=for_generation)
            for row in _as_id_lists(sequences)
        ]

    def save_model_file(self, directory: str | Path) -> Path:
        """Write the sentencepiece model as `directory/tokenizer.model` (what `from_directory` reads)."""
        path = Path(directory) / "tokenizer.model"
        path.write_bytes(self._sp.serialized_model_proto())
        return path

    def to_transformers(self) -> PreTrainedTokenizerBase:
        """The same vocabulary as a transformers 5 `LlamaTokenizer` with the LAVIS specials (bos = eos = `</s>`).

        Built from the sentencepiece pieces (BPE merges regenerated from the vocabulary; no protobuf needed).
        Its ids equal `encode`'s except after leading or repeated spaces, where transformers 5 drops a `▁`.
        """
        from transformers import LlamaTokenizer
        from transformers.convert_slow_tokenizer import generate_merges

        vocab = {str(self._sp.id_to_piece(i)): i for i in range(self.vocab_size)}
        unk = str(self._sp.id_to_piece(self._sp.unk_id())) if self._sp.unk_id() >= 0 else self.eos_token
        tokenizer = LlamaTokenizer(
            vocab=vocab,
            merges=generate_merges(vocab),
            bos_token=self.eos_token,
            eos_token=self.eos_token,
            unk_token=unk,  # the BPE model's unknown piece; LAVIS's unk = `</s>` never reached the ids
            legacy=True,
            add_bos_token=True,
            add_eos_token=False,
        )
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        if int(tokenizer.pad_token_id) != self.pad_token_id:
            raise TokenizerError(
                f"{PAD_TOKEN} got id {tokenizer.pad_token_id} in transformers, not {self.pad_token_id}"
            )
        return tokenizer

    def _id_to_token(self, index: int) -> str:
        index = int(index)
        if self._pad_is_added and index == self._pad_id:
            return PAD_TOKEN
        if not 0 <= index < self.vocab_size:
            raise ValueError(f"Token id {index} is outside the LLM vocabulary (size {len(self)}).")
        return str(self._sp.id_to_piece(index))

    def _tokens_to_string(self, tokens: list[str], special_tokens: set[str]) -> str:
        # 4.33 `LlamaTokenizer.convert_tokens_to_string` (legacy): it drops the `▁` of the first token, keeps
        # special tokens literally and puts a space before a special token that follows normal text.
        tokens = list(tokens)
        if tokens[0].startswith(SPIECE_UNDERLINE):
            tokens[0] = tokens[0][1:]
        out = ""
        pending: list[str] = []
        prev_is_special = False
        for i, token in enumerate(tokens):
            if token in special_tokens:
                if not prev_is_special and i != 0:
                    out += " "
                out += str(self._sp.decode(pending)) + token
                prev_is_special = True
                pending = []
            else:
                pending.append(token)
                prev_is_special = False
        return out + str(self._sp.decode(pending))


class HFCausalLMTokenizer:
    """LAVIS conventions on a `transformers` tokenizer, for causal LMs shipped without `tokenizer.model`.

    `[PAD]` is added when the tokenizer has no pad token, and bos := eos when it has no bos (as LAVIS does
    with `</s>`). Every sequence is `[bos] + tokens(text)`, whether or not the wrapped tokenizer would add a
    bos itself, because the model drops the target's leading bos.

    Args:
        tokenizer: a loaded tokenizer; it is modified in place (pad and bos added when missing).

    Attributes:
        bos_token_id, eos_token_id, unk_token_id, pad_token_id, eos_token, pad_token: after the additions.
        vocab_size: the base vocab size, without added tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if tokenizer.eos_token is None:
            raise TokenizerError(
                f"The tokenizer {type(tokenizer).__name__} has no eos token; VIGC needs one to end targets "
                "and stop generation. Set `eos_token` in the tokenizer directory's tokenizer_config.json."
            )
        if tokenizer.pad_token is None:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        if tokenizer.bos_token is None:
            tokenizer.add_special_tokens({"bos_token": tokenizer.eos_token})
        self._tok = tokenizer
        self.bos_token_id = int(tokenizer.bos_token_id)
        self.eos_token_id = int(tokenizer.eos_token_id)
        # LAVIS sets unk = eos; keep a real unk token when there is one.
        self.unk_token_id = self.eos_token_id if tokenizer.unk_token_id is None else int(tokenizer.unk_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.eos_token, self.pad_token = str(tokenizer.eos_token), str(tokenizer.pad_token)
        self.vocab_size = int(tokenizer.vocab_size)

    @classmethod
    def from_directory(cls, path: str | Path) -> HFCausalLMTokenizer:
        """Load with `AutoTokenizer` from a local directory (no download)."""
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as error:
            raise TokenizerError(
                f"Cannot load a tokenizer from {path}: {error}. Point `{LLM_CONFIG_KEY}` at a directory with "
                "`tokenizer.model` (LLaMA/Vicuna) or a transformers tokenizer (tokenizer.json)."
            ) from error
        return cls(tokenizer)

    def __len__(self) -> int:
        """Vocab size including added tokens: the number of LLM embedding rows."""
        return len(self._tok)

    def encode(self, text: str) -> list[int]:
        """`[bos] + ids(text)` without the wrapped tokenizer's own special tokens."""
        ids = self._tok(text, add_special_tokens=False)["input_ids"]
        return [self.bos_token_id, *(int(i) for i in ids)]

    def batch(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        truncation_side: Side = "right",
        padding_side: Side = "right",
        pad_token_id: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize, truncate (keeping bos) and pad a batch; see `LavisLlamaTokenizer.batch`."""
        return collate(
            [self.encode(text) for text in texts],
            pad_token_id=self.pad_token_id if pad_token_id is None else pad_token_id,
            max_length=max_length,
            truncation_side=truncation_side,
            padding_side=padding_side,
        )

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True, for_generation: bool = False) -> str:
        """Text of `ids`; with `for_generation` the pad token is not special (pad := eos while generating)."""
        special = set(self._tok.all_special_ids) if skip_special_tokens else set()
        if for_generation and self.pad_token_id != self.eos_token_id:
            special.discard(self.pad_token_id)
        kept = [int(i) for i in ids if int(i) not in special]
        return str(self._tok.decode(kept, skip_special_tokens=False))

    def batch_decode(
        self,
        sequences: Sequence[Sequence[int]] | torch.Tensor,
        *,
        skip_special_tokens: bool = True,
        for_generation: bool = False,
    ) -> list[str]:
        """`decode` of each row of a (B, T) tensor or a list of id lists."""
        return [
            self.decode(row, skip_special_tokens=skip_special_tokens, for_generation=for_generation)
            for row in _as_id_lists(sequences)
        ]

    def to_transformers(self) -> PreTrainedTokenizerBase:
        """The wrapped transformers tokenizer (with the pad and bos added here)."""
        return self._tok


class QFormerTokenizer:
    """The Q-Former's `bert-base-uncased` tokenizer, `[DEC]` as bos, left truncation (LAVIS `init_tokenizer`).

    Args:
        tokenizer: a transformers 5 `BertTokenizer`; `[DEC]` is added to it in place.

    Attributes:
        pad_token_id, cls_token_id, sep_token_id: `[PAD]`, `[CLS]`, `[SEP]` (0, 101, 102 in bert-base-uncased).
        bos_token_id: `[DEC]`, the id after the base vocab.
        vocab_size: the `vocab.txt` size, without `[DEC]`.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        tokenizer.truncation_side = "left"
        tokenizer.add_special_tokens({"bos_token": DEC_TOKEN})
        self._tok = tokenizer
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.bos_token_id = int(tokenizer.bos_token_id)
        self.cls_token_id = int(tokenizer.cls_token_id)
        self.sep_token_id = int(tokenizer.sep_token_id)
        self.vocab_size = int(tokenizer.vocab_size)

    @classmethod
    def from_directory(cls, path: str | Path) -> QFormerTokenizer:
        """Load a local `bert-base-uncased` style directory (`vocab.txt`, `tokenizer_config.json`)."""
        try:
            tokenizer = BertTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, TypeError) as error:
            raise TokenizerError(
                f"Cannot load the Q-Former BERT tokenizer from {path}: {error}. "
                f"Point `{QFORMER_CONFIG_KEY}` at a local bert-base-uncased directory "
                "(vocab.txt, tokenizer_config.json)."
            ) from error
        return cls(tokenizer)

    def __call__(self, texts: Sequence[str], max_length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """`[CLS] text [SEP]` ids and mask, padded to the longest; long texts keep their end.

        Returns:
            `input_ids` and `attention_mask`, both (B, T) int64 with T <= max_length.
        """
        encoded = self._tok(list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
        return encoded["input_ids"].long(), encoded["attention_mask"].long()

    def __len__(self) -> int:
        """Vocab size including `[DEC]`: the Q-Former's word-embedding rows."""
        return len(self._tok)

    def to_transformers(self) -> PreTrainedTokenizerBase:
        """The wrapped `BertTokenizer` (with `[DEC]` and left truncation)."""
        return self._tok


def _existing_dir(path: str | Path | None, key: str, what: str) -> Path:
    if path is None or (isinstance(path, str) and not path.strip()):
        raise TokenizerError(f"No {what} directory given. Set `{key}` to a local directory (--options {key}=/path).")
    resolved = Path(path).expanduser()
    if not resolved.is_dir():
        raise TokenizerError(f"`{key}` = {str(path)!r} is not a directory. Point `{key}` at a local {what} directory.")
    return resolved


def load_llm_tokenizer(path: str | Path) -> LLMTokenizer:
    """The LLM tokenizer of a local LLM directory.

    A directory with `tokenizer.model` (LLaMA, Vicuna) gets `LavisLlamaTokenizer`, which reproduces the
    original ids exactly; any other gets `HFCausalLMTokenizer`.

    Raises:
        TokenizerError: the path is empty, not a directory, or holds no usable tokenizer.
    """
    directory = _existing_dir(path, LLM_CONFIG_KEY, "LLM")
    tokenizer: LLMTokenizer
    if (directory / "tokenizer.model").is_file():
        tokenizer = LavisLlamaTokenizer.from_directory(directory)
    else:
        tokenizer = HFCausalLMTokenizer.from_directory(directory)
    logger.info(
        "LLM tokenizer %s from %s: %d ids (bos %d, eos %d, pad %d)",
        type(tokenizer).__name__,
        directory,
        len(tokenizer),
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    return tokenizer


def load_qformer_tokenizer(path: str | Path) -> QFormerTokenizer:
    """The Q-Former tokenizer of a local `bert-base-uncased` style directory.

    Raises:
        TokenizerError: the path is empty, not a directory, or holds no BERT vocabulary.
    """
    directory = _existing_dir(path, QFORMER_CONFIG_KEY, "bert-base-uncased tokenizer")
    if not (directory / "vocab.txt").is_file() and not (directory / "tokenizer.json").is_file():
        raise TokenizerError(
            f"{directory} has no vocab.txt or tokenizer.json. Point `{QFORMER_CONFIG_KEY}` at a local "
            "bert-base-uncased directory."
        )
    tokenizer = QFormerTokenizer.from_directory(directory)
    logger.info("Q-Former tokenizer from %s: %d ids ([DEC] = %d)", directory, len(tokenizer), tokenizer.bos_token_id)
    return tokenizer
