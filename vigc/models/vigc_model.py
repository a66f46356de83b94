"""The VIGC model: EVA-ViT → ln_vision → instruction-aware Q-Former → projection → causal LM.

Parameter names are those of transformers' `InstructBlipForConditionalGeneration`, so its checkpoints load by
name; `vision_model.post_layernorm` plays LAVIS's `ln_vision` (with eps 1e-5, set by the builder).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import InstructBlipQFormerModel, InstructBlipVisionModel, PreTrainedModel

from vigc.models.checkpoints import LoadReport
from vigc.models.decoding import DecodingInputs, DecodingSettings, decode
from vigc.models.text_generation import (
    GeneratedText,
    PromptEmbeddings,
    StopRule,
    TextGenerator,
    decode_generated,
    group_texts,
)
from vigc.models.tokenizers import LLMTokenizer, QFormerTokenizer

IGNORE_INDEX = -100


@dataclass
class VisualPrefix:
    """Output of the Q-Former path for a batch.

    Attributes:
        embeds: (B, Q, H) projected query outputs, the LLM's visual prefix.
        qformer_input_ids: (B, T) Q-Former text ids, or None without text input.
        qformer_attention_mask: (B, Q + T) mask given to the Q-Former.
        qformer_hidden: (B, Q + T, D) last hidden state of the Q-Former.
    """

    embeds: torch.Tensor
    qformer_input_ids: torch.Tensor | None
    qformer_attention_mask: torch.Tensor
    qformer_hidden: torch.Tensor


@dataclass
class LMBatch:
    """A training-layout batch: `[prefix][valid input][output without bos][output pads][input pads]`.

    Attributes:
        input_ids: (B, L) text ids after the prefix.
        inputs_embeds: (B, Q + L, H) prefix and text embeddings.
        attention_mask: (B, Q + L).
        labels: (B, Q + L), -100 on the prefix, the instruction and the pads.
    """

    input_ids: torch.Tensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


@dataclass
class LossOutput:
    """Training loss and what produced it."""

    loss: torch.Tensor
    logits: torch.Tensor
    batch: LMBatch


@dataclass
class GenerationOutput(GeneratedText):
    """`GeneratedText` (texts, sequences, scores, num_steps) and the prompt it was generated from.

    Attributes:
        prompt_embeds: (B, L, H) left-padded prompt embeddings given to the LM.
        prompt_attention_mask: (B, L).
        prompt_input_ids: (B, T) right-padded prompt ids before the shift to the left.
    """

    prompt_embeds: torch.Tensor
    prompt_attention_mask: torch.Tensor
    prompt_input_ids: torch.Tensor


@dataclass
class RankOutput:
    """Candidate answers ranked by LM loss (lower is better).

    Attributes:
        best: index of the best candidate.
        losses: (C,) per-candidate loss with the requested reduction.
        lavis_losses: (C,) the original's value: token NLL summed, divided by every shifted position.
        batch: the LM batch that was scored.
        logits: (C, Q + L, V).
    """

    best: int
    losses: torch.Tensor
    lavis_losses: torch.Tensor
    batch: LMBatch
    logits: torch.Tensor


def _as_list(prompts: str | Sequence[str], batch_size: int) -> list[str]:
    """A str is broadcast to the batch (the original did this for the Q-Former only and then crashed)."""
    if isinstance(prompts, str):
        return [prompts] * batch_size
    prompts = list(prompts)
    if len(prompts) != batch_size:
        raise ValueError(f"Got {len(prompts)} prompts for {batch_size} images.")
    return prompts


def shift_padding_to_left(embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every masked position of each row to the front, keeping the order of the rest.

    Args:
        embeds: (B, L, H).
        mask: (B, L), 1 on real positions.
    """
    order = torch.argsort(mask, dim=1, stable=True)  # zeros first, each group in its original order
    return embeds.gather(1, order[..., None].expand_as(embeds)), mask.gather(1, order)


class CausalLMStep:
    """The `LMStep` of any transformers causal LM: one cached forward, the last position's logits.

    Logits come back in float32 at least (4.33's LLaMA cast fp16/bf16 logits to float32 too); a float64 model
    keeps float64, so exact-arithmetic comparisons with a reference stay exact.

    Args:
        language_model: a transformers `*ForCausalLM`.
    """

    def __init__(self, language_model: nn.Module) -> None:
        self.language_model = language_model
        # transformers renamed `past_key_values` to `cache` during 5.x; accept both.
        takes_cache = "cache" in inspect.signature(language_model.forward).parameters
        self._cache_arg = "cache" if takes_cache else "past_key_values"

    def __call__(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, cache: Any
    ) -> tuple[torch.Tensor, Any]:
        """Logits (N, V) of the last position and the extended cache."""
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_arg: cache},
        )
        logits = out.logits[:, -1, :]
        return logits.to(torch.promote_types(logits.dtype, torch.float32)), getattr(out, self._cache_arg)


class LoopTextGenerator:
    """Our decoding loop (`vigc.models.decoding.decode`, transformers 4.33's search) as a `TextGenerator`.

    Args:
        language_model: a transformers `*ForCausalLM`.
        tokenizer: its LLM tokenizer (EOS ends rows and pads them, as in the original's generation config).
    """

    def __init__(self, language_model: PreTrainedModel, tokenizer: LLMTokenizer) -> None:
        self.language_model = language_model
        self.tokenizer = tokenizer
        self._step = CausalLMStep(language_model)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        embeddings = cast(nn.Embedding, self.language_model.get_input_embeddings())
        return embeddings(ids.to(embeddings.weight.device))

    @torch.no_grad()
    def generate_text(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        settings: DecodingSettings,
        stop: StopRule | None = None,
        generator: torch.Generator | None = None,
    ) -> GeneratedText:
        """Decode with `settings` (see `TextGenerator.generate_text`)."""
        inputs = DecodingInputs(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            embed=self._embed,
            step=self._step,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.eos_token_id,
        )
        out = decode(inputs, settings, stop=stop, generator=generator)
        texts = group_texts(decode_generated(self.tokenizer, out.sequences), settings.num_return_sequences)
        return GeneratedText(texts, out.sequences, out.scores, out.num_steps)


class VIGCModel(nn.Module):
    """Vision encoder, Q-Former and LLM wired together; every method takes typed inputs.

    Args:
        vision_model: transformers `InstructBlipVisionModel`; its `post_layernorm` is `ln_vision`.
        qformer: transformers `InstructBlipQFormerModel`.
        query_tokens: (1, Q, D) learned queries.
        language_projection: Linear(D → H).
        language_model: causal LM taking `inputs_embeds`.
        llm_tokenizer: LLM tokenizer with the LAVIS conventions.
        qformer_tokenizer: BERT tokenizer with `[DEC]`.
        qformer_text_input: feed the instruction to the Q-Former (instruction-aware).
        max_txt_len: instruction truncation (from the left) in tokens.
        max_output_txt_len: target truncation (from the right) in tokens.
        prompt: default prompt when a caller gives none.
    """

    def __init__(
        self,
        *,
        vision_model: InstructBlipVisionModel,
        qformer: InstructBlipQFormerModel,
        query_tokens: torch.Tensor,
        language_projection: nn.Linear,
        language_model: PreTrainedModel,
        llm_tokenizer: LLMTokenizer,
        qformer_tokenizer: QFormerTokenizer,
        qformer_text_input: bool = True,
        max_txt_len: int = 128,
        max_output_txt_len: int = 256,
        prompt: str = "",
    ) -> None:
        super().__init__()
        self.vision_model = vision_model
        self.qformer = qformer
        self.query_tokens = nn.Parameter(query_tokens)
        self.language_projection = language_projection
        self.language_model = language_model
        self.llm_tokenizer = llm_tokenizer
        self.qformer_tokenizer = qformer_tokenizer
        self.qformer_text_input = qformer_text_input
        self.max_txt_len = max_txt_len
        self.max_output_txt_len = max_output_txt_len
        self.prompt = prompt
        self.load_reports: list[LoadReport] = []
        # The decoding engine of `generate` and of VIG/VIC; assign another `TextGenerator` to decode with it.
        self.text_generator: TextGenerator = LoopTextGenerator(language_model, llm_tokenizer)

    @property
    def device(self) -> torch.device:
        return self.query_tokens.device

    # ---- vision ---------------------------------------------------------------------------------------------
    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The ViT output before `ln_vision`: (B, 3, S, S) → (B, N, Dv)."""
        dtype = self.vision_model.embeddings.patch_embedding.weight.dtype
        hidden = self.vision_model.embeddings(pixel_values.to(self.device, dtype))
        return self.vision_model.encoder(inputs_embeds=hidden).last_hidden_state

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings after `ln_vision`, float32: (B, 3, S, S) → (B, N, Dv). Cache these across steps."""
        hidden = self.vision_features(pixel_values).float()
        ln = self.vision_model.post_layernorm
        return F.layer_norm(hidden, ln.normalized_shape, ln.weight.float(), ln.bias.float(), ln.eps)

    # ---- Q-Former -------------------------------------------------------------------------------------------
    def visual_prefix(self, image_embeds: torch.Tensor, prompts: str | Sequence[str]) -> VisualPrefix:
        """Q-Former over the image embeddings (conditioned on the prompts), projected to the LLM width."""
        batch = image_embeds.shape[0]
        queries = self.query_tokens.expand(batch, -1, -1)  # (B, Q, D)
        image_mask = torch.ones(image_embeds.shape[:2], dtype=torch.long, device=self.device)
        query_mask = torch.ones(queries.shape[:2], dtype=torch.long, device=self.device)
        input_ids: torch.Tensor | None = None
        attention_mask = query_mask
        if self.qformer_text_input:
            input_ids, text_mask = self.qformer_tokenizer(_as_list(prompts, batch), max_length=self.max_txt_len)
            input_ids, text_mask = input_ids.to(self.device), text_mask.to(self.device)
            attention_mask = torch.cat([query_mask, text_mask], dim=1)
        out = self.qformer(
            input_ids=input_ids,
            attention_mask=attention_mask,
            query_embeds=queries,
            encoder_hidden_states=image_embeds.to(queries.dtype),
            encoder_attention_mask=image_mask,
        )
        hidden = out.last_hidden_state  # (B, Q + T, D)
        embeds = self.language_projection(hidden[:, : queries.shape[1]])
        return VisualPrefix(embeds, input_ids, attention_mask, hidden)

    # ---- LLM helpers ----------------------------------------------------------------------------------------
    def input_embeddings(self) -> nn.Embedding:
        """The LLM's token embedding table."""
        return cast(nn.Embedding, self.language_model.get_input_embeddings())

    def _embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.input_embeddings()(ids.to(self.device))

    def _llm_dtype(self) -> torch.dtype:
        return self.input_embeddings().weight.dtype

    def build_lm_batch(self, prefix: torch.Tensor, text_input: Sequence[str], text_output: Sequence[str]) -> LMBatch:
        """Training layout of SPEC §2: targets are `text_output + eos`; only they carry labels."""
        tok = self.llm_tokenizer
        in_ids, in_mask = tok.batch(list(text_input), max_length=self.max_txt_len, truncation_side="left")
        eos = tok.eos_token
        out_ids, out_mask = tok.batch(
            [t + eos for t in text_output], max_length=self.max_output_txt_len, truncation_side="right"
        )
        rows, masks, labels = [], [], []
        for i in range(in_ids.shape[0]):
            n_in = int(in_mask[i].sum())
            ids = torch.cat([in_ids[i, :n_in], out_ids[i, 1:], in_ids[i, n_in:]])
            mask = torch.cat([in_mask[i, :n_in], out_mask[i, 1:], in_mask[i, n_in:]])
            label = ids.masked_fill(ids == tok.pad_token_id, IGNORE_INDEX)
            label[:n_in] = IGNORE_INDEX
            rows.append(ids)
            masks.append(mask)
            labels.append(label)
        input_ids = torch.stack(rows).to(self.device)
        prefix = prefix.to(self._llm_dtype())
        q = prefix.shape[1]
        prefix_labels = torch.full((input_ids.shape[0], q), IGNORE_INDEX, dtype=torch.long, device=self.device)
        return LMBatch(
            input_ids=input_ids,
            inputs_embeds=torch.cat([prefix, self._embed_ids(input_ids)], dim=1),
            attention_mask=torch.cat(
                [
                    torch.ones(prefix.shape[:2], dtype=torch.long, device=self.device),
                    torch.stack(masks).to(self.device),
                ],
                dim=1,
            ),
            labels=torch.cat([prefix_labels, torch.stack(labels).to(self.device)], dim=1),
        )

    def _lm_logits(self, batch: LMBatch) -> torch.Tensor:
        out = self.language_model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask)
        return out.logits

    # ---- public API -----------------------------------------------------------------------------------------
    def loss(self, image_embeds: torch.Tensor, text_input: Sequence[str], text_output: Sequence[str]) -> LossOutput:
        """Causal-LM cross-entropy on the target tokens only.

        Args:
            image_embeds: (B, N, Dv) from `encode_images`.
            text_input: B instructions (also the Q-Former text).
            text_output: B targets.
        """
        prefix = self.visual_prefix(image_embeds, text_input)
        batch = self.build_lm_batch(prefix.embeds, text_input, text_output)
        logits = self._lm_logits(batch)
        shift_logits = logits[:, :-1].float()
        shift_labels = batch.labels[:, 1:]
        loss = F.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
        )
        return LossOutput(loss=loss, logits=logits, batch=batch)

    def prompt_embeddings(
        self,
        image_embeds: torch.Tensor,
        prompts: str | Sequence[str],
        qformer_prompts: Sequence[str] | None = None,
    ) -> PromptEmbeddings:
        """Left-padded `[pads][prefix][bos prompt]` embeddings and mask, plus the right-padded prompt ids.

        The Q-Former reads `qformer_prompts` when given (e.g. VIG's prompt, while the LLM continues VIG's own
        text), else the prompts."""
        prompts = _as_list(prompts, image_embeds.shape[0])
        qformer_texts = prompts if qformer_prompts is None else list(qformer_prompts)
        prefix = self.visual_prefix(image_embeds, qformer_texts).embeds.to(self._llm_dtype())
        tok = self.llm_tokenizer
        ids, mask = tok.batch(prompts, pad_token_id=tok.eos_token_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        embeds = torch.cat([prefix, self._embed_ids(ids)], dim=1)
        full_mask = torch.cat([torch.ones(prefix.shape[:2], dtype=torch.long, device=self.device), mask], dim=1)
        embeds, full_mask = shift_padding_to_left(embeds, full_mask)
        return PromptEmbeddings(embeds, full_mask, ids)

    @torch.no_grad()
    def generate(
        self,
        image_embeds: torch.Tensor,
        prompts: str | Sequence[str] | None = None,
        settings: DecodingSettings | None = None,
        stop: StopRule | None = None,
        generator: torch.Generator | None = None,
    ) -> GenerationOutput:
        """Generate from `[visual prefix][prompt]`, batched with left padding, with `self.text_generator`.

        Args:
            image_embeds: (B, N, Dv) from `encode_images`.
            prompts: one per image, a single str for all, or None for the model's default prompt.
            settings: decoding settings (defaults: greedy, 256 new tokens).
            stop: optional stopping rule (see `vigc.models.text_generation.StopRule`).
            generator: RNG for sampling.
        """
        settings = settings or DecodingSettings()
        prompt = self.prompt_embeddings(image_embeds, self.prompt if prompts is None else prompts)
        out = self.text_generator.generate_text(prompt.inputs_embeds, prompt.attention_mask, settings, stop, generator)
        return GenerationOutput(
            texts=out.texts,
            sequences=out.sequences,
            scores=out.scores,
            num_steps=out.num_steps,
            prompt_embeds=prompt.inputs_embeds,
            prompt_attention_mask=prompt.attention_mask,
            prompt_input_ids=prompt.input_ids,
        )

    @torch.no_grad()
    def continuation_logprobs(
        self, image_embeds: torch.Tensor, prompts: Sequence[str], continuations: Sequence[str]
    ) -> torch.Tensor:
        """Mean log-probability per token of each continuation after `[visual prefix][prompt]` (no EOS counted).

        The layout is training's (`build_lm_batch`: the continuation tokenized on its own, the prompt truncated
        from the left to `max_txt_len`), i.e. how the model learnt to write the text after a prompt.

        Args:
            image_embeds: (B, N, Dv) from `encode_images`.
            prompts: B prompts (also the Q-Former text).
            continuations: B texts to score.

        Returns:
            (B,) float32 mean token log-probabilities.
        """
        prefix = self.visual_prefix(image_embeds, list(prompts))
        batch = self.build_lm_batch(prefix.embeds, list(prompts), list(continuations))
        labels = batch.labels[:, 1:].masked_fill(batch.labels[:, 1:] == self.llm_tokenizer.eos_token_id, IGNORE_INDEX)
        token_nll = F.cross_entropy(
            self._lm_logits(batch)[:, :-1].float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (B, T - 1), zero where ignored
        return -token_nll.sum(1) / (labels != IGNORE_INDEX).sum(1).clamp(min=1)

    @torch.no_grad()
    def rank_candidates(
        self, image_embeds: torch.Tensor, prompt: str, candidates: Sequence[str], reduction: str = "sum"
    ) -> RankOutput:
        """Score each candidate answer by the LM loss of `prompt → candidate</s>` for one image.

        Args:
            image_embeds: (1, N, Dv).
            prompt: the question prompt.
            candidates: C answers.
            reduction: "sum" of token NLL (the original's ranking), or "mean" over the candidate's tokens.
        """
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        count = len(candidates)
        embeds = image_embeds.expand(count, -1, -1)
        prefix = self.visual_prefix(embeds, [prompt] * count)
        batch = self.build_lm_batch(prefix.embeds, [prompt] * count, list(candidates))
        logits = self._lm_logits(batch)
        labels = batch.labels[:, 1:]
        token_nll = F.cross_entropy(
            logits[:, :-1].float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (C, Q + L - 1), zero where ignored
        summed = token_nll.sum(1)
        losses = summed if reduction == "sum" else summed / (labels != IGNORE_INDEX).sum(1).clamp(min=1)
        lavis = token_nll.mean(1)
        return RankOutput(int(torch.argsort(losses)[0]), losses, lavis, batch, logits)
