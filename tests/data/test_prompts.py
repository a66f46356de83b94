"""The prompt texts of SPEC §6: counts, exact spot checks (typos included) and the VIG target."""

from __future__ import annotations

from vigc.data import prompts


def test_instruction_counts() -> None:
    counts = {name: len(texts) for name, texts in prompts.VIG_INSTRUCTIONS.items()}
    assert counts == {
        "llava_comp": 10,
        "llava_conv": 10,
        "llava_desc": 10,
        "okvqa": 9,
        "a_okvqa": 9,
        "coco_pseudo": 9,
        "vqav2": 10,
    }
    assert len(prompts.VQA_TEMPLATES) == 10
    assert len(prompts.VQG_TEMPLATES) == 6
    assert prompts.LLAVA_VQA_TEMPLATES == ("{q}",)


def test_original_typos_are_kept() -> None:
    assert (
        "Taking the image into account, generate an reasoning question along with the answer."
        in prompts.VIG_INSTRUCTIONS_LLAVA_COMP
    )
    assert prompts.VQG_TEMPLATES[-1] == (
        "Taking the image into account, generate an question that has the answer: {a}. Question:"
    )
    assert "Brainstorm a query associated to the image and provide the response." in prompts.VIG_INSTRUCTIONS_LLAVA_CONV


def test_spot_checks() -> None:
    assert prompts.VIG_INSTRUCTIONS_LLAVA_DESC[1] == (
        "Considering the picture, come up with a question to describe the image content in detail "
        "along with the answer."
    )
    assert prompts.VIG_INSTRUCTIONS_KNOWLEDGE[-1] == (
        "Invent an inquiry derived from the pictured material that calls for the use of different knowledge types "
        "like commonsense and subsequently summarize the solution with brevity."
    )
    assert prompts.VIG_INSTRUCTIONS_VQAV2[0] == (
        "Generate a question based on the content of the given image and then briefly answer it."
    )
    assert prompts.VQA_TEMPLATES[6] == "Based on the image, respond to this question with a short answer: {q}. Answer:"
    assert prompts.VQA_TEMPLATES[8] == 'What is the answer to the following question? "{q}"'
    assert (
        prompts.VQG_TEMPLATES[2] == 'Given the visual representation, create a question for which the answer is "{a}".'
    )
    assert all("{q}" in t for t in prompts.VQA_TEMPLATES)
    assert all("{a}" in t for t in prompts.VQG_TEMPLATES)


def test_generation_instructions_are_the_first_training_instructions() -> None:
    assert prompts.GENERATION_INSTRUCTIONS["conv"] == prompts.VIG_INSTRUCTIONS_LLAVA_CONV[0]
    assert prompts.GENERATION_INSTRUCTIONS["desc"] == prompts.VIG_INSTRUCTIONS_LLAVA_DESC[0]
    assert prompts.GENERATION_INSTRUCTIONS["comp"] == prompts.VIG_INSTRUCTIONS_LLAVA_COMP[0]
    assert prompts.GQ_INSTRUCTION == (
        "Based on the content of the given image, generate a question that requires reasoning using a variety of "
        "knowledge types such as commonsense and then briefly answer it."
    )


def test_question_start_words() -> None:
    okvqa, aokvqa = prompts.QUESTION_START_WORDS["okvqa"], prompts.QUESTION_START_WORDS["a_okvqa"]
    assert len(okvqa) == len(aokvqa) == 21
    assert okvqa[0] == ("what", 5919) and okvqa[-1] == ("do", 15) and ("what's", 55) in okvqa
    assert aokvqa[0] == ("what", 10943) and aokvqa[-1] == ("during", 18) and ("based", 18) in aokvqa
    assert sum(c for _, c in okvqa) == 8810
    for words in (okvqa, aokvqa):
        counts = [c for _, c in words]
        assert counts == sorted(counts, reverse=True)
        assert len({w for w, _ in words}) == 21


def test_vig_target() -> None:
    assert prompts.vig_target("What is it?", "A cat.") == " Question: What is it? Answer: A cat."
