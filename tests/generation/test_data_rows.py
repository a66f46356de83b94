"""Rows of one type for every generation task, and the conversation and preference formats built from them."""

from __future__ import annotations

import dataclasses
from typing import Any

from test_export import _llava_record

from vigc.generation.data_rows import (
    COLUMNS,
    QARow,
    conversations,
    dataset_row,
    dpo_pairs,
    llava_entries,
    sharegpt_entries,
)

PROVENANCE = {"model": {"arch": "vigc_model"}, "vic": {"mode": "compat"}}


def _row(record: dict[str, Any], task: str = "llava_vig") -> QARow | None:
    return dataset_row(record, "run-1", task, PROVENANCE)


def test_columns_are_the_row_fields_in_order() -> None:
    assert [name for name, *_ in COLUMNS] == [f.name for f in dataclasses.fields(QARow)]


def test_llava_row_keeps_vic_and_vig_answers_and_run_provenance() -> None:
    row = _row(_llava_record("img/001.jpg", task="conv", sample_index=2, answer_lst=["a", "b"]))
    assert row is not None
    assert (row.id, row.task, row.sample_index, row.image_id) == ("img/001.jpg", "conv", 2, "7")
    assert (row.answer, row.original_answer, row.answer_lst) == ("A red cup. It is full.", "A cup.", ["a", "b"])
    assert (row.answers, row.weights, row.vic_mode, row.model) == ([], [], "compat", "vigc_model")


def test_answer_lst_is_always_a_list_of_strings() -> None:
    for given, expected in [([], []), ("one unit", ["one unit"]), ("", []), (None, [])]:
        row = _row(_llava_record("a.jpg", answer_lst=given))
        assert row is not None and row.answer_lst == expected


def test_question_and_answer_passes_map_onto_the_same_fields() -> None:
    gq_record = {"key": "x.jpg", "image": "x.jpg", "prompt": "P", "question": "what?", "ori_answer": " cat "}
    gq = _row(gq_record, "vqg_question")
    assert gq is not None and (gq.task, gq.answer, gq.original_answer, gq.instruction) == ("gq", "cat", "cat", "P")
    assert gq.image_id is None  # no id and no digits in the file name
    ga_record = {"key": "k", "image": "000000082363.jpg", "question": "what?", "ori_answer": "cat"}
    ga = _row(ga_record | {"answer": ["dog", "a cat"], "weight": [1.0, 9]}, "vqg_answer")
    assert ga is not None and (ga.task, ga.answer, ga.original_answer, ga.image_id) == ("ga", "a cat", "cat", "82363")
    assert (ga.answers, ga.weights) == (["dog", "a cat"], [1.0, 9.0])


def test_unusable_records_give_no_row() -> None:
    assert _row(_llava_record("a.jpg", valid=False)) is None
    assert _row(_llava_record("a.jpg", question=None)) is None
    assert _row(_llava_record("a.jpg", answer="  ")) is None
    assert _row({"key": "k", "image": "i", "question": "q?", "ori_answer": None}, "vqg_question") is None


def _rows() -> list[QARow]:
    records = [
        _llava_record("b.jpg#conv#0", image="b.jpg", sample_index=0, question="Q1?", answer="A1."),
        _llava_record("a.jpg#conv#1", image="a.jpg", sample_index=1, question="Q2?", answer="A2."),
        _llava_record("a.jpg#conv#0", image="a.jpg", sample_index=0, question="Q1?", answer="A1."),
        _llava_record("a.jpg#conv#2", image="a.jpg", sample_index=2, question="Q1?", answer="A1."),  # a repeat
    ]
    return [row for record in records if (row := _row(record)) is not None]


def test_grouped_conversations_have_one_entry_per_image_and_the_image_token_once() -> None:
    llava = llava_entries(conversations(_rows(), group=True))
    assert [entry["id"] for entry in llava] == ["b.jpg", "a.jpg"]
    assert llava[1]["conversations"] == [
        {"from": "human", "value": "<image>\nQ1?"},
        {"from": "gpt", "value": "A1."},
        {"from": "human", "value": "Q2?"},
        {"from": "gpt", "value": "A2."},
    ]
    sharegpt = sharegpt_entries(conversations(_rows(), group=True))
    assert sharegpt[1]["images"] == ["a.jpg"]
    assert [m["role"] for m in sharegpt[1]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in sharegpt[1]["messages"]] == ["<image>\nQ1?", "A1.", "Q2?", "A2."]


def test_ungrouped_conversations_have_one_entry_per_qa() -> None:
    llava = llava_entries(conversations(_rows(), group=False))
    assert [entry["id"] for entry in llava] == ["b.jpg#conv#0", "a.jpg#conv#1", "a.jpg#conv#0", "a.jpg#conv#2"]
    assert all(entry["conversations"][0]["value"].startswith("<image>\n") for entry in llava)


def test_dpo_pairs_only_where_vic_changed_the_answer() -> None:
    records = [
        _llava_record("changed", original_answer="A cup.", answer="A red cup. It is full."),
        _llava_record("spaces", original_answer=" A red  cup.\nIt is full. ", answer="A red cup. It is full."),
        _llava_record("no vig answer", original_answer=None),
    ]
    rows = [row for record in records if (row := _row(record)) is not None]
    pairs, counts = dpo_pairs(rows)
    assert (counts.pairs, counts.unchanged, counts.incomplete) == (1, 1, 1)
    assert pairs == [
        {
            "id": "changed",
            "conversations": [{"from": "human", "value": "<image>\nWhat is on the table?"}],
            "chosen": {"from": "gpt", "value": "A red cup. It is full."},
            "rejected": {"from": "gpt", "value": "A cup."},
            "images": ["changed"],
        }
    ]
