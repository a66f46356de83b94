"""Decoding from a visual prefix: greedy, sampling and beam search over a causal LM with a KV cache.

We decode with our own loop instead of `generate()` because the released VIGC outputs depend on details of
transformers 4.33's generate-from-embeddings that transformers 5 changed (fixture README §8):

* 4.33 put a hidden BOS id (`generation_config.bos_token_id`, 1 for LLaMA) in front of the generated ids. It is
  never fed to the model, but it counts in `max_length`/`min_length`, is penalised by the repetition penalty and
  counts in the length that normalises beam scores. `DecodingSettings.hidden_bos_id` reproduces this.
* 4.33's beam search (`BeamSearchScorer` with `early_stopping=False`, the original's) scores a finished hypothesis
  by `sum_logprobs / len(ids_before_eos) ** length_penalty` and stops a batch row with the `cur_len` heuristic.
  `DecodingSettings.early_stopping` gives 4.33's `early_stopping=True` instead: a row stops as soon as it holds
  `num_beams` finished hypotheses.

Two things differ from 4.33 for speed, not for the output (the oracle tests compare 1200 cases with 4.33): the
prompt's forward runs once per input before its rows are repeated for beams or returned sequences, and the beams of
inputs already done leave the LM batch. Everything here is plain torch; the LM is only called through `LMStep`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import torch

from vigc.errors import ConfigError

if TYPE_CHECKING:  # text_generation imports the settings from here
    from vigc.models.text_generation import StopRule


@dataclass(frozen=True)
class DecodingSettings:
    """How to decode. Every default lives here.

    Args:
        num_beams: beam width; 1 is greedy (or sampling with `do_sample`).
        do_sample: sample instead of taking the arg-max (only with `num_beams=1`).
        temperature: softmax temperature for sampling.
        top_p: nucleus-sampling mass (1.0 keeps every token).
        top_k: keep only the k most likely tokens when sampling (0 keeps all).
        max_new_tokens: most tokens to generate (the hidden BOS, if any, not counted).
        min_new_tokens: EOS is forbidden before this many tokens (the hidden BOS, if any, counted, as in 4.33).
        repetition_penalty: CTRL-style penalty on ids already generated (1.0 is off).
        length_penalty: exponent of the length that divides beam scores.
        num_return_sequences: sequences returned per input (at most `num_beams` for beam search).
        hidden_bos_id: when set, reproduce transformers 4.33: this id starts every sequence without being fed.
        early_stopping: beam search only (greedy and sampling ignore it): an input is done as soon as it holds
            `num_beams` finished hypotheses, as transformers 4.33's `generate(..., early_stopping=True)`. False (the
            original's) runs on until no live beam can still beat the worst kept hypothesis by its score at the
            current length, so a later, longer hypothesis can still win: fewer LM calls with True, and sometimes
            a different output.
    """

    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    num_return_sequences: int = 1
    hidden_bos_id: int | None = None
    early_stopping: bool = False

    def __post_init__(self) -> None:
        if self.num_beams < 1 or self.max_new_tokens < 1 or self.num_return_sequences < 1:
            raise ConfigError("num_beams, max_new_tokens and num_return_sequences must be at least 1.")
        if self.do_sample and self.num_beams > 1:
            raise ConfigError("Sampling with beams is not supported: set num_beams=1 to sample, or do_sample=false.")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise ConfigError(
                f"num_return_sequences ({self.num_return_sequences}) cannot exceed num_beams ({self.num_beams})."
            )
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ConfigError("temperature and repetition_penalty must be > 0 and top_p in (0, 1].")

    @classmethod
    def from_lavis(
        cls,
        *,
        use_nucleus_sampling: bool = False,
        num_beams: int = 5,
        max_length: int = 256,
        min_length: int = 1,
        top_p: float = 0.9,
        repetition_penalty: float = 1.5,
        length_penalty: float = 1.0,
        num_captions: int = 1,
        temperature: float = 1.0,
        hidden_bos_id: int = 1,
    ) -> DecodingSettings:
        """Settings equal to the original `generate(...)` arguments under transformers 4.33.

        `max_length`/`min_length` counted the hidden BOS there, so `max_length=30` allows 29 new tokens.
        """
        return cls(
            num_beams=num_beams,
            do_sample=use_nucleus_sampling,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_length - 1,
            min_new_tokens=max(0, min_length - 1),
            repetition_penalty=repetition_penalty,
            length_penalty=length_penalty,
            num_return_sequences=num_captions,
            hidden_bos_id=hidden_bos_id,
        )

    def with_changes(self, **changes: Any) -> DecodingSettings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass
class DecodingOutput:
    """Generated ids, `num_return_sequences` rows per input, in input order.

    Attributes:
        sequences: (N * R, T) ids; starts with the hidden BOS when set; padded with `pad_token_id`.
        scores: (N * R,) length-normalised sum of log-probabilities (beam scores for beam search).
        num_steps: how many decoding steps ran (LM calls after the prompt).
    """

    sequences: torch.Tensor
    scores: torch.Tensor
    num_steps: int


class LMStep(Protocol):
    """One forward of the language model on new input embeddings, extending the cache.

    The cache is a transformers `Cache`: `reorder_cache(index)` selects (and repeats) its rows in place.
    """

    def __call__(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
    ) -> tuple[torch.Tensor, Any]:
        """Returns the last position's logits (N, V) in float32 and the updated cache."""
        ...


@dataclass
class DecodingInputs:
    """What the decoder needs besides the settings.

    Attributes:
        inputs_embeds: (N, L, H) left-padded prompt embeddings.
        attention_mask: (N, L) 1 on real positions.
        embed: maps ids (N, 1) to embeddings (N, 1, H).
        step: the LM call.
        eos_token_id: end-of-sequence id.
        pad_token_id: id written after a sequence ended.
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    embed: Callable[[torch.Tensor], torch.Tensor]
    step: LMStep
    eos_token_id: int
    pad_token_id: int


def prompt_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions of a left-padded batch: real tokens count from 0; padded slots get 1 (as VIGC's LLaMA did)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def apply_repetition_penalty(scores: torch.Tensor, generated: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL repetition penalty on the ids in `generated` (N, T): negative scores x penalty, positive / penalty."""
    if penalty == 1.0 or generated.shape[1] == 0:
        return scores
    picked = torch.gather(scores, 1, generated)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores.scatter(1, generated, picked)


def _process_scores(
    scores: torch.Tensor, generated: torch.Tensor, settings: DecodingSettings, eos: int
) -> torch.Tensor:
    """Logits processors in 4.33's order: repetition penalty, then the minimum length."""
    scores = apply_repetition_penalty(scores, generated, settings.repetition_penalty)
    if generated.shape[1] < settings.min_new_tokens + (settings.hidden_bos_id is not None):
        scores = scores.clone()
        scores[:, eos] = -float("inf")
    return scores


def _warp_for_sampling(scores: torch.Tensor, settings: DecodingSettings) -> torch.Tensor:
    """Temperature, top-k and top-p (nucleus) filtering of next-token scores (N, V)."""
    scores = scores / settings.temperature
    if settings.top_k > 0:
        kth = torch.topk(scores, min(settings.top_k, scores.shape[-1])).values[:, -1:]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if settings.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(-1).cumsum(-1)
        remove_sorted = cumulative <= (1 - settings.top_p)
        remove_sorted[:, -1] = False  # always keep the most likely token
        remove = remove_sorted.scatter(1, order, remove_sorted)
        scores = scores.masked_fill(remove, -float("inf"))
    return scores


def _start_ids(n: int, settings: DecodingSettings, device: torch.device) -> torch.Tensor:
    if settings.hidden_bos_id is None:
        return torch.empty(n, 0, dtype=torch.long, device=device)
    return torch.full((n, 1), settings.hidden_bos_id, dtype=torch.long, device=device)


def decode(
    inputs: DecodingInputs,
    settings: DecodingSettings,
    stop: StopRule | None = None,
    generator: torch.Generator | None = None,
) -> DecodingOutput:
    """Decode with `settings`; greedy/sampling when `num_beams == 1`, beam search otherwise.

    Args:
        inputs: prompt embeddings, mask and the LM.
        settings: decoding settings.
        stop: optional extra stopping rule evaluated after every step (greedy/sampling rows stop; beam
            hypotheses are finished as if EOS had come).
        generator: RNG for sampling.
    """
    if settings.num_beams == 1:
        return _sample_or_greedy(inputs, settings, stop, generator)
    return _beam_search(inputs, settings, stop)


def _prefill(inputs: DecodingInputs, times: int) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """The prompt's forward, then its logits, cache and mask repeated `times` times per input (N → N * times rows).

    4.33 repeated the prompt before this forward; its copies are identical rows, so one forward per input gives the
    same logits and cache (bitwise on CPU, the oracle tests check it) for 1/times of the prompt's cost, which is
    most of a short VIC step's."""
    mask = inputs.attention_mask
    logits, cache = inputs.step(inputs.inputs_embeds, mask, prompt_position_ids(mask), None)
    if times == 1:
        return logits, cache, mask
    index = torch.arange(mask.shape[0], device=mask.device).repeat_interleave(times)
    cache.reorder_cache(index)
    return logits[index], cache, mask[index]


def _sample_or_greedy(
    inputs: DecodingInputs,
    settings: DecodingSettings,
    stop: StopRule | None,
    generator: torch.Generator | None,
) -> DecodingOutput:
    """4.33 `greedy_search`/`sample`: processors on raw logits; finished rows are padded."""
    logits, cache, mask = _prefill(inputs, settings.num_return_sequences)
    n, device = mask.shape[0], mask.device
    ids = _start_ids(n, settings, device)
    unfinished = torch.ones(n, dtype=torch.bool, device=device)
    logprob_sum = torch.zeros(n, device=device)
    num_new = torch.zeros(n, device=device)
    steps = 0
    for step in range(settings.max_new_tokens):
        scores = _process_scores(logits, ids, settings, inputs.eos_token_id)
        if settings.do_sample:
            probs = _warp_for_sampling(scores, settings).softmax(-1)
            next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            next_ids = scores.argmax(-1)
        chosen = logits.log_softmax(-1).gather(1, next_ids[:, None]).squeeze(1)
        logprob_sum += torch.where(unfinished, chosen, torch.zeros_like(chosen))
        num_new += unfinished.float()
        next_ids = torch.where(unfinished, next_ids, torch.full_like(next_ids, inputs.pad_token_id))
        ids = torch.cat([ids, next_ids[:, None]], dim=1)
        unfinished &= next_ids != inputs.eos_token_id
        if stop is not None:
            unfinished &= ~stop(ids)
        if not bool(unfinished.any()) or step == settings.max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(n, 1)], dim=1)
        position = mask.long().sum(-1, keepdim=True) - 1
        logits, cache = inputs.step(inputs.embed(next_ids[:, None]), mask, position, cache)
        steps += 1
    scores_out = logprob_sum / num_new.clamp(min=1) ** settings.length_penalty
    return DecodingOutput(sequences=ids, scores=scores_out, num_steps=steps + 1)


class _Hypotheses:
    """The n best finished hypotheses of one input (4.33 `BeamHypotheses` with a boolean `early_stopping`)."""

    def __init__(self, num_beams: int, length_penalty: float, early_stopping: bool = False) -> None:
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.beams: list[tuple[float, torch.Tensor]] = []
        self.worst_score = 1e9

    def add(self, ids: torch.Tensor, sum_logprobs: float, length: int) -> None:
        score = sum_logprobs / (length**self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, ids))
            if len(self.beams) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        """4.33: done with `num_beams` hypotheses when early stopping; otherwise only when also no live beam (the best
        scores `best_sum_logprobs`) can beat the worst of them at `cur_len`."""
        if len(self.beams) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        return self.worst_score >= best_sum_logprobs / cur_len**self.length_penalty


@dataclass
class _BeamState:
    ids: torch.Tensor  # (N*K, T)
    scores: torch.Tensor  # (N*K,)
    hyps: list[_Hypotheses]
    done: list[bool]


def _select_beams(
    state: _BeamState,
    top_scores: torch.Tensor,
    top_ids: torch.Tensor,
    ended: torch.Tensor,
    settings: DecodingSettings,
    eos: int,
    pad: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4.33 `BeamSearchScorer.process` for one step; returns next scores, tokens and source rows (N*K,).

    Args:
        state: the search so far (hypotheses and `done` are updated).
        top_scores: (N, W) best candidate scores per input, sorted.
        top_ids: (N, W, 2) their (token, source row).
        ended: (N, W) candidates that end a hypothesis: EOS, or the stop rule.
        settings: decoding settings.
        eos: end-of-sequence id.
        pad: id of the done inputs' rows.
    """
    k = settings.num_beams
    n = len(state.hyps)
    next_scores = [[0.0] * k for _ in range(n)]
    next_tokens = [[pad] * k for _ in range(n)]
    next_rows = [[0] * k for _ in range(n)]
    # A hypothesis ended by EOS is scored by its length without the EOS: `ids` already counts the hidden BOS
    # when there is one; without it, the EOS slot takes its place.
    bonus = 0 if settings.hidden_bos_id is not None else 1
    # 4.33 `process`: `cur_len = input_ids.shape[-1] + 1`, the length the candidate scores were computed on,
    # whether or not `input_ids` holds the hidden BOS. A smaller value ends rows too early (the late VIC steps).
    cur_len = state.ids.shape[1] + 1
    # Python lists: element access on tensors costs microseconds each, and this runs for every candidate.
    scores_by_input, ids_by_input, ended_by_input = top_scores.tolist(), top_ids.tolist(), ended.tolist()
    for b in range(n):
        if state.done[b]:
            continue
        filled = 0
        for rank, (score, (token, row), is_end) in enumerate(
            zip(scores_by_input[b], ids_by_input[b], ended_by_input[b], strict=True)
        ):
            if is_end:
                if rank >= k:
                    continue
                kept = state.ids[row] if token == eos else torch.cat([state.ids[row], state.ids.new_tensor([token])])
                state.hyps[b].add(kept, score, kept.shape[0] + (bonus if token == eos else 0))
            else:
                next_scores[b][filled], next_tokens[b][filled], next_rows[b][filled] = score, token, row
                filled += 1
            if filled == k:
                break
        if filled < k:  # a stop rule ended every candidate: the empty slots are dead beams, never picked
            next_scores[b][filled:] = [-1e9] * (k - filled)
        state.done[b] = state.hyps[b].is_done(scores_by_input[b][0], cur_len)  # the best score: topk sorts
    return (
        torch.tensor(next_scores, dtype=top_scores.dtype).view(-1),
        torch.tensor(next_tokens, dtype=torch.long).view(-1),
        torch.tensor(next_rows, dtype=torch.long).view(-1),
    )


def _beam_search(inputs: DecodingInputs, settings: DecodingSettings, stop: StopRule | None) -> DecodingOutput:
    """4.33 `beam_search`: processors on log-softmax scores, 2K candidates, `cur_len` stopping heuristic.

    The LM runs only on the beams of inputs not yet done (4.33 ran every row to the end of the batch): a done input's
    logits are never read, and the other rows' do not depend on them.
    """
    k = settings.num_beams
    logits, cache, mask = _prefill(inputs, k)
    n_rows, device = mask.shape[0], mask.device
    n = n_rows // k
    beam_scores = torch.zeros(n, k, device=device)
    beam_scores[:, 1:] = -1e9
    state = _BeamState(
        ids=_start_ids(n_rows, settings, device),
        scores=beam_scores.view(-1),
        hyps=[_Hypotheses(k, settings.length_penalty, settings.early_stopping) for _ in range(n)],
        done=[False] * n,
    )
    running = torch.arange(n_rows, device=device)  # the full-layout rows the LM batch (and the cache) holds
    steps = 0
    for step in range(settings.max_new_tokens):
        logprobs = _process_scores(logits.log_softmax(-1), state.ids, settings, inputs.eos_token_id)
        vocab = logprobs.shape[-1]
        candidates = (logprobs + state.scores[:, None]).view(n, k * vocab)
        top_scores, top_ids, ended = _top_candidates(state, candidates, stop, k, inputs.eos_token_id)
        scores, tokens, source = _select_beams(
            state, top_scores, top_ids, ended, settings, inputs.eos_token_id, inputs.pad_token_id
        )
        state.ids = torch.cat([state.ids[source.to(device)], tokens.to(device)[:, None]], dim=1)
        state.scores = scores.to(device)
        if all(state.done) or step == settings.max_new_tokens - 1:
            break
        open_rows, keep = _open_rows(state.done, k, running, source.to(device))
        cache.reorder_cache(keep)
        mask = torch.cat([mask[keep], mask.new_ones(keep.shape[0], 1)], dim=1)
        position = mask.long().sum(-1, keepdim=True) - 1
        step_logits, cache = inputs.step(inputs.embed(tokens.to(device)[open_rows, None]), mask, position, cache)
        logits = step_logits.new_zeros(n_rows, step_logits.shape[-1]).index_copy(0, open_rows, step_logits)
        running = open_rows
        steps += 1
    return _finalize(state, settings, inputs.eos_token_id, inputs.pad_token_id, steps + 1)


def _open_rows(
    done: list[bool], k: int, running: torch.Tensor, source: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The beams (full-layout rows) of the inputs still open, and where each one's source row is in the LM batch
    (`running`: the full-layout rows the batch and its cache hold now)."""
    open_rows = torch.tensor([row for row in range(len(done) * k) if not done[row // k]], device=running.device)
    at = torch.full((len(done) * k,), -1, dtype=torch.long, device=running.device)
    at[running] = torch.arange(running.shape[0], device=running.device)
    return open_rows, at[source[open_rows]]


def _top_candidates(
    state: _BeamState, candidates: torch.Tensor, stop: StopRule | None, k: int, eos: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best candidates of each input (N, W): scores, (token, source row) pairs (N, W, 2) and whether each ends
    a hypothesis (EOS or the stop rule), on the CPU.

    With EOS alone at most k of the 2k best end, so k live beams remain; a stop rule can end every extension of a
    beam (after a sentence end, any word confirms it), so the ranking is read further down until each open input
    has k live candidates."""
    n, width = candidates.shape[0], 2 * k
    vocab = candidates.shape[1] // k
    open_rows = [row for row in range(n * k) if not state.done[row // k]]  # a done input's candidates are not read
    row_ends = _row_ends(stop, state.ids, open_rows)  # the same whatever the candidates: once per step
    open_inputs = ~torch.tensor(state.done)
    while True:
        top_scores, top_flat = torch.topk(candidates, width, dim=1, largest=True, sorted=True)
        rows = top_flat // vocab + torch.arange(n, device=candidates.device)[:, None] * k
        top_ids = torch.stack([top_flat % vocab, rows], dim=-1).cpu()
        ended = top_ids[..., 0] == eos
        if stop is None:
            break
        may_stop = stop.may_stop(top_ids[..., 0].reshape(-1)).view(n, width)
        if row_ends is not None:  # the rule knows per row: no candidate to decode
            ended |= may_stop & row_ends[top_ids[..., 1]]
        else:
            ended |= _candidates_ending(stop, state.ids, top_ids, may_stop & open_inputs[:, None])
        if width >= k * vocab or bool(((~ended).sum(1)[open_inputs] >= k).all()):
            break
        width = min(4 * width, k * vocab)
    return top_scores.cpu(), top_ids, ended


def _row_ends(stop: StopRule | None, ids: torch.Tensor, open_rows: list[int]) -> torch.Tensor | None:
    """(N*K,) rows of which every `may_stop` token ends the hypothesis, when the rule says so per row
    (`StopRule.extension_ends`, e.g. the sentence rule); None otherwise. Only `open_rows` are asked."""
    if stop is None:
        return None
    ends = stop.extension_ends(ids[open_rows])
    if ends is None:
        return None
    rows = torch.zeros(ids.shape[0], dtype=torch.bool)
    rows[open_rows] = ends.cpu()
    return rows


def _candidates_ending(stop: StopRule, ids: torch.Tensor, top_ids: torch.Tensor, asked: torch.Tensor) -> torch.Tensor:
    """(N, W) which candidates (token, source row) in `top_ids` (N, W, 2) end a hypothesis by the stop rule; only
    the `asked` ones (those the rule's `may_stop` lets through, of open inputs) are decoded."""
    ended = torch.zeros(asked.shape, dtype=torch.bool)
    where = asked.nonzero()
    if where.shape[0] == 0:
        return ended
    tokens, rows = top_ids[where[:, 0], where[:, 1], 0], top_ids[where[:, 0], where[:, 1], 1]
    extended = torch.cat([ids[rows.to(ids.device)], tokens.to(ids.device)[:, None]], dim=1)
    ended[where[:, 0], where[:, 1]] = stop(extended).cpu()
    return ended


def _finalize(state: _BeamState, settings: DecodingSettings, eos: int, pad: int, num_steps: int) -> DecodingOutput:
    """4.33 `BeamSearchScorer.finalize`: add unfinished beams, keep the best, pad and close with EOS."""
    k = settings.num_beams
    for b, hyps in enumerate(state.hyps):
        if state.done[b]:
            continue
        for j in range(k):
            row = b * k + j
            hyps.add(state.ids[row], float(state.scores[row]), state.ids.shape[1])
    best: list[torch.Tensor] = []
    best_scores: list[float] = []
    for hyps in state.hyps:
        ranked = sorted(hyps.beams, key=lambda item: item[0])
        for _ in range(settings.num_return_sequences):
            score, ids = ranked.pop()
            best.append(ids)
            best_scores.append(score)
    max_total = settings.max_new_tokens + (settings.hidden_bos_id is not None)
    width = min(max(len(ids) for ids in best) + 1, max_total)
    out = torch.full((len(best), width), pad, dtype=torch.long, device=state.ids.device)
    for i, ids in enumerate(best):
        out[i, : len(ids)] = ids
        if len(ids) < max_total:
            out[i, len(ids)] = eos
    return DecodingOutput(sequences=out, scores=torch.tensor(best_scores, dtype=torch.float32), num_steps=num_steps)
