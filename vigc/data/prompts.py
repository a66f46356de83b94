"""Every prompt text of the original project, as data (SPEC §6).

The texts are exactly the original's, typos included ("generate an reasoning question", "generate an
question"): the released checkpoints were trained on these strings, so a "fixed" wording would be a different
prompt to the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

__all__ = [
    "GA_PROMPT",
    "GENERATION_INSTRUCTIONS",
    "GQ_INSTRUCTION",
    "LLAVA_VQA_TEMPLATES",
    "QUESTION_START_WORDS",
    "VIG_INSTRUCTIONS",
    "VIG_INSTRUCTIONS_KNOWLEDGE",
    "VIG_INSTRUCTIONS_LLAVA_COMP",
    "VIG_INSTRUCTIONS_LLAVA_CONV",
    "VIG_INSTRUCTIONS_LLAVA_DESC",
    "VIG_INSTRUCTIONS_VQAV2",
    "VIG_QUESTION_PROMPT",
    "VIG_TARGET_TEMPLATE",
    "VQA_TEMPLATES",
    "VQG_TEMPLATES",
    "join_units",
    "vic_base_prompt",
    "vic_step_prompt",
    "vig_target",
]

# §6.1 VIG instructions for training, one tuple per dataset family.
VIG_INSTRUCTIONS_LLAVA_COMP: tuple[str, ...] = (
    "Based on the given image, generate an in-depth reasoning question and then answer it.",
    "Given the image, generate an in-depth reasoning question and answer.",
    "Taking the image into account, generate an reasoning question along with the answer.",
    "Can you come up with a reasoning question based on the image and then provide the answer?",
    "After looking at the image, devise a reasoning question and provide the answer to it.",
    "Contemplate the image and create a reasoning question with the answer provided.",
    "Analyze the image and provide a reasoning question as well as the answer.",
    "Compose a reasoning question using the image with its answer.",
    "Evaluate the image and create a comprehensive reasoning question and its answer.",
    "Analyze the image and craft an effective reasoning question and its response.",
)

VIG_INSTRUCTIONS_LLAVA_CONV: tuple[str, ...] = (
    "Generate a question based on the content of the given image and then answer it.",
    "Given the image, generate a question along with the answer.",
    "From the image provided, craft a question and answer it.",
    "Come up with a question related to the content of the image and provide the answer.",
    "Brainstorm a query associated to the image and provide the response.",
    "Construct a question based on the information presented in the image and answer it.",
    "Ask yourself a question about the content of the image and respond to it.",
    "Establish a query related to the content of the image and give the answer.",
    "Ask a question derived from the image and then answer it.",
    "Create a question about the image and answer it.",
)

VIG_INSTRUCTIONS_LLAVA_DESC: tuple[str, ...] = (
    "Generate a question to describe the image content in detail and then answer it.",
    "Considering the picture, come up with a question to describe the image content in detail along with the answer.",
    "Describe the image content with a question and give the response.",
    "Come up with a creative question to express the image content and then provide the answer.",
    "Draft a query to address the image content and give the reply.",
    "Create a question to reveal the image content and give the resolution.",
    "Given the photo, state a question that reveals the details of the image and then answer it.",
    "Ask a question about what is depicted in the image and then answer it.",
    "Make up a query to explain the photo in more detail and answer it.",
    "Compose a question describing the subject of the image, followed by the answer.",
)

# OKVQA, A-OKVQA and COCO pseudo share this list.
VIG_INSTRUCTIONS_KNOWLEDGE: tuple[str, ...] = (
    "Based on the content of the given image, generate a question that requires common sense to answer and then "
    "briefly answer it.",
    "Explain the content of the image in a question and then provide a short answer using knowledge types such as "
    "commonsense and facts.",
    "Generate a query that requires reasoning on the information depicted in the image, utilizing a variety of "
    "knowledge types like commonsense, and then offer a concise answer.",
    "Develop a query to demonstrate the knowledge types such as commonsense and facts related to the given image and "
    "then provide a brief answer.",
    "Based on knowledge types such as commonsense and facts, come up with a query related to the given image and then "
    "briefly answer it.",
    "Come up with a question related to the content shown in the image that requires reasoning using a variety of "
    "knowledge types such as commonsense and then succinctly answer it.",
    "Brainstorm a question about the content of the given image that requires reasoning with a variety of knowledge "
    "types such as common sense and then state the answer briefly.",
    "Construct a query that requires logic based on the contents of the given image and involves a variety of "
    "knowledge types such as commonsense, and then deliver a brief response.",
    "Invent an inquiry derived from the pictured material that calls for the use of different knowledge types like "
    "commonsense and subsequently summarize the solution with brevity.",
)

VIG_INSTRUCTIONS_VQAV2: tuple[str, ...] = (
    "Generate a question based on the content of the given image and then briefly answer it.",
    "Given the image, generate a question along with the short answer.",
    "From the image provided, craft a question and briefly answer it.",
    "Come up with a question related to the content of the image and provide the brief answer.",
    "Brainstorm a query associated to the image and provide the brief response.",
    "Construct a question based on the information presented in the image and briefly answer it.",
    "Ask yourself a question about the content of the image and briefly respond to it.",
    "Establish a query related to the content of the image and give the short answer.",
    "Ask a question derived from the image and then briefly answer it.",
    "Create a question about the image and briefly answer it.",
)

# Dataset family → its VIG instruction list.
VIG_INSTRUCTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "llava_comp": VIG_INSTRUCTIONS_LLAVA_COMP,
        "llava_conv": VIG_INSTRUCTIONS_LLAVA_CONV,
        "llava_desc": VIG_INSTRUCTIONS_LLAVA_DESC,
        "okvqa": VIG_INSTRUCTIONS_KNOWLEDGE,
        "a_okvqa": VIG_INSTRUCTIONS_KNOWLEDGE,
        "coco_pseudo": VIG_INSTRUCTIONS_KNOWLEDGE,
        "vqav2": VIG_INSTRUCTIONS_VQAV2,
    }
)

# §6.2 the VIG target, and the question-only prefix of the VIG evaluation prompts.
VIG_TARGET_TEMPLATE = " Question: {q} Answer: {a}"
VIG_QUESTION_PROMPT = " Question: {q}"

# §6.3 VQA templates of VIC samples (OKVQA, A-OKVQA, VQAv2, COCO pseudo); LLaVA uses only the first.
VQA_TEMPLATES: tuple[str, ...] = (
    "{q}",
    "Question: {q}",
    "{q} A short answer to the question is",
    "Q: {q} A:",
    "Question: {q} Short answer:",
    "Given the image, answer the following question with no more than three words. {q}",
    "Based on the image, respond to this question with a short answer: {q}. Answer:",
    "Use the provided image to answer the question: {q} Provide your answer as short as possible:",
    'What is the answer to the following question? "{q}"',
    'The question "{q}" can be answered using the image. A short answer is',
)
LLAVA_VQA_TEMPLATES: tuple[str, ...] = VQA_TEMPLATES[:1]

# §6.3 VQG templates (answer → question).
VQG_TEMPLATES: tuple[str, ...] = (
    "Given the image, generate a question whose answer is: {a}. Question:",
    "Based on the image, provide a question with the answer: {a}. Question:",
    'Given the visual representation, create a question for which the answer is "{a}".',
    "From the image provided, craft a question that leads to the reply: {a}. Question:",
    "Considering the picture, come up with a question where the answer is: {a}.",
    "Taking the image into account, generate an question that has the answer: {a}. Question:",
)

# §6.4 the fixed instruction per LLaVA task at generation time (each is the first of its training list).
GENERATION_INSTRUCTIONS: Mapping[str, str] = MappingProxyType(
    {
        "conv": "Generate a question based on the content of the given image and then answer it.",
        "desc": "Generate a question to describe the image content in detail and then answer it.",
        "comp": "Based on the given image, generate an in-depth reasoning question and then answer it.",
    }
)

# §5.2 the question-generation (gq) instruction of OKVQA / A-OKVQA generation and VIG evaluation, and the
# answer-generation (ga) prompt.
GQ_INSTRUCTION = (
    "Based on the content of the given image, generate a question that requires reasoning using a variety of "
    "knowledge types such as commonsense and then briefly answer it."
)
GA_PROMPT = "Question: {q} Short answer:"

# §6.5 question-start words with their counts in the training questions, most frequent first.
QUESTION_START_WORDS: Mapping[str, tuple[tuple[str, int], ...]] = MappingProxyType(
    {
        "okvqa": (
            ("what", 5919),
            ("how", 580),
            ("is", 397),
            ("which", 335),
            ("where", 315),
            ("why", 246),
            ("who", 236),
            ("the", 132),
            ("when", 95),
            ("name", 86),
            ("in", 82),
            ("are", 79),
            ("can", 62),
            ("this", 59),
            ("what's", 55),
            ("if", 28),
            ("does", 28),
            ("would", 24),
            ("a", 20),
            ("these", 17),
            ("do", 15),
        ),
        "a_okvqa": (
            ("what", 10943),
            ("why", 1342),
            ("how", 971),
            ("which", 757),
            ("the", 731),
            ("where", 692),
            ("who", 428),
            ("in", 220),
            ("this", 149),
            ("what's", 83),
            ("if", 76),
            ("when", 63),
            ("these", 53),
            ("from", 43),
            ("for", 42),
            ("at", 33),
            ("to", 30),
            ("a", 20),
            ("on", 19),
            ("based", 18),
            ("during", 18),
        ),
    }
)


def vig_target(q: str, a: str) -> str:
    """Return the VIG training target for a question and its answer.

    Args:
        q: The question.
        a: The answer.

    Returns:
        ``" Question: {q} Answer: {a}"`` (note the leading space).
    """
    return VIG_TARGET_TEMPLATE.format(q=q, a=a)


def vig_prompt(instruction: str, question_start: str | None = None) -> str:
    """The VIG prompt: the instruction, then ``" Question: {start}"`` when the question's first words are given
    (the original's OKVQA question pass; here also LLaVA-style tasks with `run.question_starts`)."""
    return f"{instruction} Question: {question_start}" if question_start else instruction


def vig_output(question_start: str | None, generated: str) -> str:
    """The whole VIG text: the given question start, then what the model wrote after it."""
    return f"Question: {question_start} {generated}".strip() if question_start else generated


def vic_base_prompt(instruction: str, question: str, gen_style: str) -> str:
    """The prompt the first VIC step continues: instruction + question ("vig"), or the question alone ("vic")."""
    return f"{instruction} Question: {question} Answer:" if gen_style == "vig" else question


def join_units(units: Sequence[str], paragraphs: bool) -> str:
    """Accepted units joined as the original did: " " for sentences, " \\n\\n" for paragraphs."""
    return (" \n\n" if paragraphs else " ").join(units)


def vic_step_prompt(base: str, units: Sequence[str], paragraphs: bool = False) -> str:
    """The prompt of a VIC step (both the Q-Former text and the LLM prompt): the base and the units kept so far.

    VIC generation builds every step's prompt with this function, and the `vic_step` training samples build
    theirs with it too, so a model trained on them sees exactly the text it is given at inference.

    Args:
        base: `vic_base_prompt` of the sample.
        units: The sentences (or paragraphs) accepted so far.
        paragraphs: Units are paragraphs (joined with " \\n\\n").
    """
    return f"{base} {join_units(units, paragraphs)}".strip() if units else base
