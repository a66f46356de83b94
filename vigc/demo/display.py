"""The demo page's HTML for results and messages. Every model-written or user-written text is escaped."""

from __future__ import annotations

import html

from vigc.demo.engine import DemoResult, StepView
from vigc.demo.settings import TASK_LABELS

__all__ = ["format_message", "format_result", "format_timing", "placeholder"]

STOP_REASONS = {
    "eos": "the model ended the answer",
    "empty": "a step added nothing",
    "max_sentences": "the step limit was reached",
    "max_tokens": "a step reached the max length",
    "steps": "all compat steps ran",
    "vic_off": "VIC is off",
    "invalid_vig": "VIG wrote no usable Question/Answer pair",
    "answers": "answer beams scored",
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
        '<p class="vigc-dim">Upload or pick an image, then press Generate.</p></div>'
    )


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
    source = "your question" if s.own_question else ("gq" if s.task == "okvqa" else "VIG")
    if s.task == "okvqa":
        vic = "VIC not used (OKVQA-style)"
    else:
        vic = f"VIC {s.vic_mode}" + (
            "" if s.vic_mode == "off" else f" ({'paragraphs' if s.paragraphs else 'sentences'})"
        )
    meta = f"{TASK_LABELS[s.task]} · question from {source} · {vic}"
    return f'<h3>{html.escape(result.model_name)}</h3><div class="vigc-meta">{html.escape(meta)}</div>'


def _comparison_label(result: DemoResult) -> str:
    """What the answer without VIC is, or "" when there is none to show."""
    s = result.settings
    if s.task == "okvqa":
        return "" if s.own_question else "Short answer written with the question (gq), for comparison"
    if s.vic_mode == "off":
        return ""
    return "One-pass answer to your question (no VIC), for comparison" if s.own_question else "VIG answer, before VIC"


def format_result(result: DemoResult) -> str:
    """The result panel: question, final answer, every VIC step (or answer beam), the answer without VIC, timing."""
    s = result.settings
    parts = [_header(result)]
    if not result.valid:
        reason = STOP_REASONS.get(result.stop_reason, result.stop_reason)
        parts.append(format_message(f"Not usable as data: {reason}.", "error"))
    parts.append(_field("Question", "vigc-question", _text(result.question)))
    final = "Answer (best-weighted beam)" if s.task == "okvqa" else "Answer"
    final += " after VIC" if s.task != "okvqa" and s.vic_mode != "off" else ""
    parts.append(_field(final, "vigc-answer vigc-pre", _text(result.answer)))
    if result.steps:
        why = STOP_REASONS.get(result.stop_reason, result.stop_reason)
        parts.append(_field(f"VIC steps ({len(result.steps)}; stopped: {why})", "", _steps_html(result.steps)))
    if result.beams:
        parts.append(_field("Answer beams (ga pass)", "", _beams_html(result)))
    label = _comparison_label(result)
    if label:
        parts.append(_field(label, "vigc-vig-answer vigc-pre", _text(result.vig_answer)))
    if result.raw_output:
        raw = f'<div class="vigc-pre">{_text(result.raw_output)}</div>'
        parts.append(f"<details><summary>raw model output</summary>{raw}</details>")
    parts.append(f'<div class="vigc-timing">{html.escape(format_timing(result))}</div>')
    return f'<div class="vigc-result">{"".join(parts)}</div>'
