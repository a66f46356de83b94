"""The decoding seam: what VIG and VIC need from a text generator, a stop rule and a model, as Protocols.

A `TextGenerator` takes left-padded prompt embeddings, their attention mask, `DecodingSettings` (what
`GenerateConfig.decoding()` makes of a `run.generate_cfg` section) and an optional `StopRule`, and returns
`GeneratedText`. Our decoding loop (`vigc.models.decoding.LoopTextGenerator`, transformers 4.33's search exactly)
is the first implementation; another engine (transformers' `generate`, vLLM, a compiled static-cache loop) is
another class with the same method, set as `VIGCModel.text_generator`. The generation layer (`vigc.generation.vic`)
sees only these Protocols and `VisualPromptModel`, the narrow part of the model it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from vigc.models.tokenizers import LLMTokenizer

if TYPE_CHECKING:  # decoding.py imports this module; the settings are only an annotation here
    from vigc.models.decoding import DecodingSettings

__all__ = [
    "GeneratedText",
    "PromptEmbeddings",
    "StopRule",
    "StopWhen",
    "TextGenerator",
    "VisualPromptModel",
    "decode_generated",
    "group_texts",
]


class StopRule(Protocol):
    """A rule that ends rows during decoding (e.g. at the end of a sentence, or of VIG's question).

    Greedy and sampled rows stop when `__call__` says so; under beam search, a candidate extension the rule ends
    becomes a finished hypothesis, as if EOS had come. `may_stop` and `extension_ends` let a beam search skip
    candidates that cannot end anything; `StopWhen` gives any plain function the neutral answers.
    """

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows to finish now: generated ids (N, T), the hidden BOS first when set → bool (N,)."""
        ...

    def may_stop(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Which new tokens (M,) could end a row (bool (M,)); a token marked False never does."""
        ...

    def extension_ends(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Rows (N, T) that every `may_stop` token would end, when that does not depend on the token (bool (N,));
        None when it does (then each candidate is asked)."""
        ...


@dataclass(frozen=True)
class StopWhen:
    """A `StopRule` from a plain function of the generated ids (N, T) → bool (N,); every token may stop a row."""

    condition: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """The function's answer."""
        return self.condition(ids)

    def may_stop(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Any token may end a row."""
        return torch.ones(token_ids.shape, dtype=torch.bool)

    def extension_ends(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Unknown without the token: every candidate is asked."""
        return None


@dataclass
class GeneratedText:
    """What a `TextGenerator` returns: `num_return_sequences` texts per input, in input order.

    Attributes:
        texts: B lists of R decoded, stripped texts (id 0 read as EOS, special tokens skipped, as the original).
        sequences: (B * R, T) generated ids; start with the hidden BOS when the settings set one; padded with
            the pad id after EOS.
        scores: (B * R,) length-normalised sums of log-probabilities (beam scores under beam search).
        num_steps: decoding steps run (LM calls after the prompt), for work counters.
    """

    texts: list[list[str]]
    sequences: torch.Tensor
    scores: torch.Tensor
    num_steps: int


def decode_generated(tokenizer: LLMTokenizer, sequences: torch.Tensor) -> list[str]:
    """Texts of generated ids (N, T) as the original decoded them: id 0 read as EOS, special tokens skipped,
    stripped. Every `TextGenerator` fills `GeneratedText.texts` this way."""
    ids = sequences.masked_fill(sequences == 0, tokenizer.eos_token_id)
    return [text.strip() for text in tokenizer.batch_decode(ids.tolist(), for_generation=True)]


def group_texts(texts: list[str], per_input: int) -> list[list[str]]:
    """`per_input` consecutive texts per input: (B * R) → B lists of R."""
    return [texts[i : i + per_input] for i in range(0, len(texts), per_input)]


class TextGenerator(Protocol):
    """Decodes text from prompt embeddings."""

    def generate_text(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        settings: DecodingSettings,
        stop: StopRule | None = None,
        generator: torch.Generator | None = None,
    ) -> GeneratedText:
        """Decode after the prompts.

        Args:
            inputs_embeds: (B, L, H) left-padded prompt embeddings.
            attention_mask: (B, L), 1 on real positions.
            settings: how to decode (beams, sampling, lengths, penalties, returned sequences, hidden BOS).
            stop: optional rule that ends rows early.
            generator: RNG for sampling.
        """
        ...


@dataclass
class PromptEmbeddings:
    """The LLM's input for a batch of prompts: `[pads][visual prefix][bos prompt]`.

    Attributes:
        inputs_embeds: (B, L, H) left-padded embeddings.
        attention_mask: (B, L), 1 on real positions.
        input_ids: (B, T) the prompts' right-padded ids (before the padding moved to the left).
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    input_ids: torch.Tensor


class VisualPromptModel(Protocol):
    """What VIG and VIC use of a model besides decoding: image encoding, prompt building, continuation scoring,
    the LLM tokenizer (for stop rules) and the text generator it decodes with."""

    @property
    def llm_tokenizer(self) -> LLMTokenizer:
        """The LLM tokenizer (LAVIS conventions)."""
        ...

    @property
    def text_generator(self) -> TextGenerator:
        """The engine that decodes this model's prompts."""
        ...

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) processed images → (B, N, Dv) image embeddings, to be reused by every step."""
        ...

    def prompt_embeddings(
        self, image_embeds: torch.Tensor, prompts: Sequence[str], qformer_prompts: Sequence[str] | None = None
    ) -> PromptEmbeddings:
        """The LLM input for one prompt per image: the visual prefix read with the prompt (or with
        `qformer_prompts`, when given), then the prompt."""
        ...

    def continuation_logprobs(
        self, image_embeds: torch.Tensor, prompts: Sequence[str], continuations: Sequence[str]
    ) -> torch.Tensor:
        """(B,) mean log-probability per token of each continuation after its prompt."""
        ...
