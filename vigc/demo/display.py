"""The demo page's HTML for results and messages. Every model-written or user-written text is escaped.

A result that is still being made (`DemoResult.done` False) shows what exists so far and what comes next.
"""

from __future__ import annotations

import html

from vigc.demo.diff import compare_words
from vigc.demo.engine import DemoResult, StepView
from vigc.demo.settings import TASK_LABELS, DemoSettings

__all__ = ["format_message", "format_pending", "format_result", "format_timing", "placeholder", "progress_text"]

STOP_REASONS = {
    "eos": "the model ended the answer",
    "empty": "a step added nothing",
    "max_sentences": "the step limit was reached",
    "max_tokens": "a step reached the max length",
    "steps": "all steps of the original loop ran",
    "vic_off": "VIC is off",
    "invalid_vig": "the model wrote no usable question and answer",
    "answers": "short answers scored",
}


def _text(value: str | None, empty: str = "(empty)") -> str:
    """Escaped text, or a dimmed placeholder when there is none."""
    if value is None or not value.strip():
        return f'<span class="vigc-dim">{html.escape(empty)}</span>'
    return html.escape(value.strip())


def format_message(text: str, kind: str = "info") -> str:
    """A message box: `kind` is "info", "ok" or "error"."""
    return f'<div class="vigc-message vigc-{html.escape(kind)}" role="status">{html.escape(text)}</div>'


def placeholder(model_name: str) -> str:
    """The result panel before anything was generated."""
    return (
        f'<div class="vigc-result"><h3>{html.escape(model_name)}</h3>'
        '<p class="vigc-dim">Upload, paste or pick an image, then press Generate.</p></div>'
    )


def format_pending(model_name: str, settings: DemoSettings, waiting: bool = False) -> str:
    """The result panel of a model that has not reported yet (`waiting`: another model runs first)."""
    work = "waiting for the model before it" if waiting else progress_text(None, settings)
    return (
        f'<div class="vigc-result"><h3>{html.escape(model_name)}</h3>'
        f'<div class="vigc-progress" role="status">{html.escape(work)}</div></div>'
    )


def progress_text(result: DemoResult | None, settings: DemoSettings) -> str:
    """What the model is doing now, given what it has made so far (None: nothing yet)."""
    if settings.task == "okvqa":
        return "writing a question…" if result is None else "scoring short answers to the question…"
    if result is None:
        return "reading the image and writing an answer…" if settings.own_question else "writing a question…"
    if result.qa is not None and result.qa.stop_reason:
        return "writing the answer without VIC, for comparison…" if settings.own_question else "finishing…"
    limit = "" if settings.vic_mode == "compat" else "at most "
    return f"VIC step {len(result.steps) + 1} of {limit}{settings.steps}…"


def format_timing(result: DemoResult) -> str:
    """One line: total seconds, then each part, then decoded tokens per second."""
    parts = [f"total {result.timings.get('total', 0.0):.2f} s"]
    names = {"image": "image", "generation": "generation", "comparison": "one-pass comparison"}
    parts += [f"{label} {result.timings[key]:.2f} s" for key, label in names.items() if key in result.timings]
    seconds = result.timings.get("total", 0.0)
    if result.decoded_tokens and seconds > 0:
        parts.append(f"{result.decoded_tokens} tokens decoded ({result.decoded_tokens / seconds:.0f}/s, all beams)")
    return " · ".join(parts)


def _field(label: str, css: str, body: str) -> str:
    """A labelled block; `body` is HTML already escaped."""
    return f'<div class="vigc-label">{html.escape(label)}</div><div class="{css}">{body}</div>'


def _steps_html(steps: list[StepView]) -> str:
    items = []
    for step in steps:
        kept = _text(step.kept, "(nothing kept: VIC ended here)")
        details = _field("prompt (also the Q-Former text)", "vigc-pre", _text(step.prompt))
        details += _field("output", "vigc-pre", _text(step.output))
        items.append(
            f'<li class="vigc-step"><span class="vigc-kept">{kept}</span>'
            f"<details><summary>prompt and output of step {step.index}</summary>{details}</details></li>"
        )
    return f'<ol class="vigc-steps">{"".join(items)}</ol>'


def _beams_html(result: DemoResult) -> str:
    rows = "".join(
        f"<tr><td>{_text(beam.answer)}</td><td>{beam.weight:.1f}</td><td>{beam.score:.3f}</td></tr>"
        for beam in result.beams
    )
    return f'<table class="vigc-beams"><tr><th>answer</th><th>weight</th><th>score</th></tr>{rows}</table>'


def _header(result: DemoResult) -> str:
    s = result.settings
    source = "your question" if s.own_question else "question written by the model"
    if s.task == "okvqa":
        vic = "no VIC (it does not apply to knowledge questions)"
    elif s.vic_mode == "off":
        vic = "VIC off"
    else:
        mode = "original loop" if s.vic_mode == "compat" else "VIC"
        vic = f"{mode}, one {'paragraph' if s.paragraphs else 'sentence'} per step"
    meta = f"{TASK_LABELS[s.task]} · {source} · {vic}"
    return f'<h3>{html.escape(result.model_name)}</h3><div class="vigc-meta">{html.escape(meta)}</div>'


def _comparison_label(result: DemoResult) -> str:
    """What the answer without VIC is, or "" when there is none to show."""
    s = result.settings
    if s.task == "okvqa":
        return "" if s.own_question else "Short answer written with the question, for comparison"
    if s.vic_mode == "off":
        return ""
    return "Answer in one pass, without VIC (for comparison)" if s.own_question else "Answer before VIC (VIG)"


def _final_answer(result: DemoResult) -> str:
    """The answer field: with VIC, the words it added, removed or replaced are marked against the answer without."""
    s = result.settings
    if s.task == "okvqa":
        return _field("Answer (the best-weighted short answer)", "vigc-answer vigc-pre", _text(result.answer))
    if s.vic_mode == "off":
        return _field("Answer", "vigc-answer vigc-pre", _text(result.answer))
    label = "Answer after VIC" + ("" if result.done else " (so far)")
    if not result.answer.strip() or not result.vig_answer or not result.done:
        return _field(
            label, "vigc-answer vigc-pre", _text(result.answer, "(no sentence yet)" if not result.done else "(empty)")
        )
    changes = compare_words(result.vig_answer, result.answer)
    against = "the one-pass answer" if s.own_question else "the answer before VIC"
    if not changes.changed:
        note = f"VIC kept {against} word for word."
    else:
        legend = '<ins class="vigc-added">added</ins>, <del class="vigc-removed">removed</del>, '
        legend += '<span class="vigc-replaced"><del>old</del> <ins>new</ins></span>'
        note = f"Marked against {html.escape(against)}: {legend} ({html.escape(changes.summary())})."
    body = f'<div class="vigc-answer vigc-pre vigc-marked">{changes.html}</div><div class="vigc-legend">{note}</div>'
    return f'<div class="vigc-label">{html.escape(label)}</div>{body}'


def format_result(result: DemoResult) -> str:
    """The result panel: question, final answer, every VIC step (or answer beam), the answer without VIC, timing."""
    parts = [_header(result)]
    if not result.done:
        parts.append(
            f'<div class="vigc-progress" role="status">{html.escape(progress_text(result, result.settings))}</div>'
        )
    elif not result.valid:
        reason = STOP_REASONS.get(result.stop_reason, result.stop_reason)
        parts.append(format_message(f"Not usable as data: {reason}.", "error"))
    parts.append(_field("Question", "vigc-question", _text(result.question)))
    parts.append(_final_answer(result))
    if result.steps:
        why = f"stopped: {STOP_REASONS.get(result.stop_reason, result.stop_reason)}" if result.done else "going on"
        parts.append(_field(f"VIC steps ({len(result.steps)}; {why})", "", _steps_html(result.steps)))
    if result.beams:
        parts.append(
            _field("Short answers the model considered (weight: how much it favours each)", "", _beams_html(result))
        )
    label = _comparison_label(result)
    if label:
        parts.append(_field(label, "vigc-vig-answer vigc-pre", _text(result.vig_answer)))
    if result.raw_output:
        raw = f'<div class="vigc-pre">{_text(result.raw_output)}</div>'
        parts.append(f"<details><summary>raw model output</summary>{raw}</details>")
    if result.done:
        parts.append(f'<div class="vigc-timing">{html.escape(format_timing(result))}</div>')
    return f'<div class="vigc-result">{"".join(parts)}</div>'
