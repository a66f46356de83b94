"""The page's settings controls: plain-word labels with short help, and which of them apply to a choice.

A setting that does not apply to the current choice (VIC for knowledge questions, beams when sampling, ...) is
disabled, and its help line says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from vigc.demo.settings import TASK_LABELS, DemoSettings

__all__ = ["SETTING_FIELDS", "Controls", "applicable", "settings_controls", "task_control"]

# Settings fields fed by the page's controls, in the order the handler receives them.
SETTING_FIELDS = (
    "task",
    "question",
    "vic_mode",
    "paragraphs",
    "last_infer_all",
    "steps",
    "question_only_prompt",
    "sampling",
    "num_beams",
    "top_p",
    "temperature",
    "min_length",
    "max_length",
    "repetition_penalty",
    "length_penalty",
    "seed",
)

HELP = {
    "vic_mode": (
        "VIC rewrites the answer a step at a time, looking at the image again before each step; "
        "'check each sentence' keeps the first answer's sentences unless the re-read clearly prefers its own."
    ),
    "paragraphs": "How much of the answer each VIC step writes.",
    "steps": "Original loop: exactly this many steps; sentence by sentence: at most this many.",
    "last_infer_all": "The last step keeps everything it wrote (the original demo's 'No Truncation').",
    "question_only_prompt": "Each VIC step sees the question alone, without the task instruction.",
    "num_beams": "Beam search keeps this many candidate texts (1: greedy).",
    "top_p": "Sampling draws from the most likely words that make up this share of probability.",
    "temperature": "Sampling: above 1 gives more varied words, below 1 safer ones.",
}
NOT_FOR_KNOWLEDGE = "Does not apply to knowledge questions: the model asks, then scores short answers."
NOT_FOR_KNOWLEDGE_SHORT = "Not for knowledge questions (no VIC)."
VIC_OFF = "Does not apply: VIC is off."


@dataclass
class Controls:
    """The settings controls, by name (`SETTING_FIELDS` order in `inputs`)."""

    task: Any
    question: Any
    vic_mode: Any
    paragraphs: Any
    last_infer_all: Any
    steps: Any
    question_only_prompt: Any
    sampling: Any
    num_beams: Any
    top_p: Any
    temperature: Any
    min_length: Any
    max_length: Any
    repetition_penalty: Any
    length_penalty: Any
    seed: Any

    @property
    def inputs(self) -> list[Any]:
        """The controls in `SETTING_FIELDS` order (what the Generate handler receives)."""
        return [getattr(self, name) for name in SETTING_FIELDS]

    @property
    def dependent(self) -> list[Any]:
        """The controls `applicable` updates, in its order."""
        return [
            self.vic_mode,
            self.paragraphs,
            self.steps,
            self.last_infer_all,
            self.question_only_prompt,
            self.num_beams,
            self.top_p,
            self.temperature,
        ]


def _update(active: bool, help_text: str, reason: str) -> dict[str, Any]:
    """A control enabled with its help, or disabled with the reason as its help."""
    return gr.update(interactive=active, info=help_text if active else reason)


def applicable(task: str, vic_mode: str, method: str) -> list[dict[str, Any]]:
    """Updates of `Controls.dependent`: enabled where the setting applies, else disabled with the reason."""
    knowledge = task == "okvqa"
    vic = not knowledge and vic_mode != "off"
    why_vic = NOT_FOR_KNOWLEDGE_SHORT if knowledge else VIC_OFF
    sampling = method == "sampling"
    return [
        _update(not knowledge, HELP["vic_mode"], NOT_FOR_KNOWLEDGE),
        _update(vic and vic_mode != "verify", HELP["paragraphs"], why_vic if not vic else "Sentences only."),
        _update(vic, HELP["steps"], why_vic),
        _update(vic and vic_mode == "compat", HELP["last_infer_all"], why_vic if not vic else "Original loop only."),
        _update(vic, HELP["question_only_prompt"], why_vic),
        _update(not sampling, HELP["num_beams"], "Beam search only; sampling draws one text."),
        _update(sampling, HELP["top_p"], "Sampling only."),
        _update(sampling, HELP["temperature"], "Sampling only."),
    ]


def task_control(defaults: DemoSettings) -> Any:
    """The task choice (on the first screen, next to Generate)."""
    return gr.Radio(
        [(label, key) for key, label in TASK_LABELS.items()],
        value=defaults.task,
        label="Task",
        info="What the model writes about the image: a question, then its answer.",
        elem_id="vigc-task",
    )


def settings_controls(task: Any, defaults: DemoSettings) -> Controls:
    """Every other setting, folded below the first screen in two accordions."""
    question, vic, unit, steps, last_all, question_only = _question_and_vic_controls(defaults)
    method, beams, top_p, temperature, min_length, max_length, repetition, length, seed = _decoding_controls(defaults)
    return Controls(
        task, question, vic, unit, last_all, steps, question_only, method, beams, top_p, temperature,
        min_length, max_length, repetition, length, seed,
    )  # fmt: skip


def _question_and_vic_controls(defaults: DemoSettings) -> tuple[Any, ...]:
    """Own question and VIC: question, VIC mode, unit, steps, keep-last-whole, question-only prompts."""
    with gr.Accordion("More settings: your own question, answer correction (VIC)", open=False):
        question = gr.Textbox(
            label="Your own question (optional)",
            info="Then the model only answers it.",
            placeholder="e.g. What is on the left of the picture?",
            lines=1,
            elem_id="vigc-question-input",
        )
        vic = gr.Radio(
            [
                ("off", "off"),
                ("sentence by sentence", "default"),
                ("check each sentence (verify)", "verify"),
                ("original loop (compat)", "compat"),
            ],
            value=defaults.vic_mode,
            label="Answer correction (VIC)",
            info=HELP["vic_mode"],
            elem_id="vigc-vic",
        )
        with gr.Row():
            unit = gr.Radio(
                ["sentences", "paragraphs"],
                value="paragraphs" if defaults.paragraphs else "sentences",
                label="Each step writes",
                info=HELP["paragraphs"],
            )
            steps = gr.Slider(1, 12, value=defaults.steps, step=1, label="VIC steps", info=HELP["steps"])
        with gr.Row():
            last_all = gr.Checkbox(value=defaults.last_infer_all, label="Keep the last step whole")
            question_only = gr.Checkbox(value=defaults.question_only_prompt, label="Question-only VIC prompts")
    return question, vic, unit, steps, last_all, question_only


def _decoding_controls(defaults: DemoSettings) -> tuple[Any, ...]:
    """Decoding: method, beams, top-p, temperature, shortest/longest output, penalties, seed."""
    with gr.Accordion("Decoding: how the words are chosen", open=False):
        method = gr.Radio(
            [("beam search", "beam"), ("sampling", "sampling")],
            value="sampling" if defaults.sampling else "beam",
            label="Method",
            info="Beam search: the most likely text. Sampling: varied text (set the seed to repeat one).",
        )
        with gr.Row():
            beams = gr.Slider(1, 10, value=defaults.num_beams, step=1, label="Beams", info=HELP["num_beams"])
            top_p = gr.Slider(0.1, 1.0, value=defaults.top_p, step=0.05, label="Top-p", info=HELP["top_p"])
            temperature = gr.Slider(
                0.1, 2.0, value=defaults.temperature, step=0.05, label="Temperature", info=HELP["temperature"]
            )
        with gr.Row():
            min_length = gr.Slider(0, 50, value=defaults.min_length, step=1, label="Shortest output (tokens)")
            max_length = gr.Slider(10, 500, value=defaults.max_length, step=5, label="Longest output (tokens)")
        with gr.Row():
            repetition = gr.Slider(
                0.5,
                3.0,
                value=defaults.repetition_penalty,
                step=0.05,
                label="Repetition penalty",
                info="Above 1 discourages repeating words.",
            )
            length = gr.Slider(
                -1.0,
                2.0,
                value=defaults.length_penalty,
                step=0.1,
                label="Length penalty",
                info="Beam search: above 0 favours longer texts.",
            )
            seed = gr.Number(
                value=defaults.seed,
                precision=0,
                label="Seed",
                info="For sampling and the knowledge question's first word.",
            )
    return method, beams, top_p, temperature, min_length, max_length, repetition, length, seed
