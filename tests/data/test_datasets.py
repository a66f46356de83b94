"""Datasets from tiny annotation files and PNGs written here: items, batches, determinism, errors, builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from vigc.data.annotations import AnnotationError
from vigc.data.datasets import (
    ImageLoadError,
    QATrainDataset,
    VIGEvalDataset,
    build_dataset,
    collate_train,
    collate_vig_eval,
)
from vigc.data.prompts import (
    GENERATION_INSTRUCTIONS,
    GQ_INSTRUCTION,
    VIG_INSTRUCTIONS,
    VIG_INSTRUCTIONS_LLAVA_COMP,
)
from vigc.errors import ConfigError, VIGCError
from vigc.registry import DATASETS

SIZE = 16
TRAIN_PROCESSORS = {
    "vis_processor": {"train": {"name": "blip2_image_train", "image_size": SIZE}},
    "text_processor": {"train": {"name": "blip_caption", "max_words": 100}},
}
EVAL_PROCESSORS = {
    "vis_processor": {"eval": {"name": "blip_image_eval", "image_size": SIZE}},
    "text_processor": {"eval": {"name": "blip_caption_instruct", "max_words": 256}},
}
NAMES = ["my photo (1).png", "sub dir/ünïcode #2.png", "123.png"]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for number, name in enumerate(NAMES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24 + 8 * number, 20), (40 * number, 100, 200)).save(root / name)
    return root


def write(tmp_path: Path, records: list[dict[str, Any]], name: str = "ann.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return str(path)


def okvqa_records(count: int) -> list[dict[str, Any]]:
    return [
        {"image": NAMES[i], "question": f"What Is Thing {i}?", "answer": ["Red."] * 6 + ["blue"] * 4, "question_id": i}
        for i in range(count)
    ]


def entry(tmp_path: Path, images: Path, records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"build_info": {"annotation": write(tmp_path, records), "images": str(images)}, **extra}


@pytest.mark.parametrize("count", [1, 2, 3])
def test_tiny_training_sets_give_tensors(tmp_path: Path, images: Path, count: int) -> None:
    dataset = build_dataset(
        "instruct_blip_okvqa_vig", entry(tmp_path, images, okvqa_records(count), **TRAIN_PROCESSORS)
    )
    assert isinstance(dataset, QATrainDataset) and len(dataset) == count
    items = [dataset[i] for i in range(count)]
    for i, item in enumerate(items):
        assert item.image.shape == (3, SIZE, SIZE) and item.image.dtype == torch.float32
        assert item.text_output in (
            f" Question: what is thing {i}? Answer: red",
            f" Question: what is thing {i}? Answer: blue",
        )
        assert item.image_path == str(images / NAMES[i])
    batch = collate_train(items)
    assert batch.images.shape == (count, 3, SIZE, SIZE)
    assert batch.text_input == [item.text_input for item in items]
    assert batch.text_output == [item.text_output for item in items]


def test_items_depend_only_on_seed_epoch_index(tmp_path: Path, images: Path) -> None:
    config = entry(tmp_path, images, okvqa_records(3), **TRAIN_PROCESSORS)
    first = build_dataset("instruct_blip_okvqa_vic", config, seed=42)
    resumed = build_dataset("instruct_blip_okvqa_vic", config, seed=42)
    assert isinstance(first, QATrainDataset) and isinstance(resumed, QATrainDataset)
    for epoch in (0, 5):
        for index in (2, 0, 1):  # any order: no hidden state
            a, b = first.item(index, epoch), resumed.item(index, epoch)
            assert (a.text_input, a.text_output) == (b.text_input, b.text_output)
            assert torch.equal(a.image, b.image)
    resumed.set_epoch(5)
    assert torch.equal(resumed[1].image, first.item(1, 5).image)
    texts = {(first.item(0, e).text_input, first.item(0, e).text_output) for e in range(40)}
    assert len(texts) > 3  # epochs redraw template and answer
    other_seed = build_dataset("instruct_blip_okvqa_vic", config, seed=7)
    assert isinstance(other_seed, QATrainDataset)
    assert [other_seed.item(0, e).text_input for e in range(20)] != [first.item(0, e).text_input for e in range(20)]


def test_llava_vic_sample_and_instruct_processor(tmp_path: Path, images: Path) -> None:
    records = [{"image": NAMES[0], "question": "What is unusual here?", "answer": ["A man irons. On a taxi!\n"]}]
    processors = {
        "vis_processor": TRAIN_PROCESSORS["vis_processor"],
        "text_processor": {"train": {"name": "blip_caption_instruct", "max_words": 256}},
    }
    vic = build_dataset("instruct_blip_llava_comp_vic", entry(tmp_path, images, records, **processors))
    vig = build_dataset("instruct_blip_llava_comp_vig", entry(tmp_path, images, records, **processors))
    assert (vic[0].text_input, vic[0].text_output) == ("What is unusual here?", "A man irons. On a taxi!")
    assert vig[0].text_input in VIG_INSTRUCTIONS_LLAVA_COMP
    assert vig[0].text_output == " Question: What is unusual here? Answer: A man irons. On a taxi!"


def test_missing_and_broken_images_name_the_file(tmp_path: Path, images: Path) -> None:
    (images / "broken.png").write_bytes(b"not a png")
    records = okvqa_records(1) + [
        {"image": "nowhere.png", "question": "q", "answer": ["a"]},
        {"image": "broken.png", "question": "q", "answer": ["a"]},
    ]
    unchecked = entry(tmp_path, images, records, check_images=False, **TRAIN_PROCESSORS)
    dataset = build_dataset("instruct_blip_okvqa_vig", unchecked)
    with pytest.raises(ImageLoadError, match=r"nowhere\.png"):
        dataset[1]
    with pytest.raises(ImageLoadError, match=r"broken\.png.*Training data must be clean"):
        dataset[2]
    with pytest.raises(ImageLoadError, match=r"1 of 3 image files do not exist: .*nowhere\.png.*skip_missing"):
        build_dataset("instruct_blip_okvqa_vig", entry(tmp_path, images, records))


def test_missing_images_are_counted_up_front_or_skipped(tmp_path: Path, images: Path) -> None:
    records = okvqa_records(2) + [{"image": f"gone_{i}.png", "question": "q", "answer": ["a"]} for i in range(7)]
    expected = r"7 of 9 image files do not exist: '[^']*gone_0\.png'.*and 2 more"
    with pytest.raises(ImageLoadError, match=expected) as info:
        build_dataset("instruct_blip_okvqa_vig", entry(tmp_path, images, records, **TRAIN_PROCESSORS))
    assert "gone_4" in str(info.value) and "gone_5" not in str(info.value)
    kept = build_dataset("instruct_blip_okvqa_vig", entry(tmp_path, images, records, skip_missing_images=True))
    assert len(kept) == 2 and all("gone" not in kept.image_path(i) for i in range(2))
    with pytest.raises(ImageLoadError, match="no record would be left"):
        build_dataset("instruct_blip_okvqa_vig", entry(tmp_path, images, records[2:], skip_missing_images=True))


def test_training_images_larger_than_max_pixels_are_refused_before_decoding(tmp_path: Path, images: Path) -> None:
    dataset = build_dataset("instruct_blip_okvqa_vig", entry(tmp_path, images, okvqa_records(1), max_pixels=100))
    with pytest.raises(ImageLoadError, match="exceeds max_pixels=100"):
        dataset[0]


def test_aokvqa_eval_items(tmp_path: Path, images: Path) -> None:
    records = [
        {
            "image_path": NAMES[1],
            "question": "What Sport: is this?",
            "direct_answers": ["tennis"] * 3 + ["golf"],
            "image_id": 9,
        }
    ]
    dataset = build_dataset("instruct_blip_aokvqa_vig_eval", entry(tmp_path, images, records, **EVAL_PROCESSORS))
    assert isinstance(dataset, VIGEvalDataset) and len(dataset) == 1
    item = dataset[0]
    assert item.image.shape == (3, SIZE, SIZE)
    assert item.prompt == GQ_INSTRUCTION + " Question: What Sport: is this?"
    reference = item.reference
    assert reference.gt_answers == ["tennis", "golf"] and reference.gt_answer_weights == [0.75, 0.25]
    assert reference.answers == ["tennis", "tennis", "tennis", "golf"]
    assert reference.image_id == 9 and reference.question_id is None and reference.instruction == item.prompt
    batch = collate_vig_eval([item, item])
    assert batch.images.shape == (2, 3, SIZE, SIZE) and batch.prompts == [item.prompt] * 2
    assert batch.references == [reference, reference]


def test_okvqa_eval_processes_the_question_like_the_original(tmp_path: Path, images: Path) -> None:
    processors = {**EVAL_PROCESSORS, "text_processor": {"eval": {"name": "blip_caption", "max_words": 100}}}
    dataset = build_dataset("instruct_blip_okvqa_vig_eval", entry(tmp_path, images, okvqa_records(2), **processors))
    assert dataset[1].prompt == GQ_INSTRUCTION + " Question: what is thing 1?"
    assert dataset[1].reference.question == "What Is Thing 1?"


def test_llava_eval_instruction_per_subset(tmp_path: Path, images: Path) -> None:
    subsets = ["complex_reasoning_77k.json", "conversation_58k.json", "detail_23k.json"]
    records = [{"image": NAMES[i], "question": "Q?", "answer": ["A."], "dataset": s} for i, s in enumerate(subsets)]
    dataset = build_dataset("instruct_blip_llava_vig_eval", entry(tmp_path, images, records, **EVAL_PROCESSORS))
    prompts = [dataset[i].prompt for i in range(3)]
    assert prompts == [GENERATION_INSTRUCTIONS[t] + " Question: Q?" for t in ("comp", "conv", "desc")]
    records[0].pop("dataset")
    with pytest.raises(AnnotationError, match="expected the LLaVA file it came from"):
        build_dataset("instruct_blip_llava_vig_eval", entry(tmp_path, images, records))


def test_vqav2_eval_keeps_every_20th_record_by_default(tmp_path: Path, images: Path) -> None:
    records = [{"image": NAMES[0], "question": f"q{i}", "answer": ["a"]} for i in range(45)]
    dataset = build_dataset("instruct_blip_vqav2_vig_eval", entry(tmp_path, images, records))
    assert [dataset[i].reference.question for i in range(len(dataset))] == ["q0", "q20", "q40"]
    every = build_dataset("instruct_blip_vqav2_vig_eval", entry(tmp_path, images, records, every_nth=1))
    assert len(every) == 45


def test_coco_pseudo_builder(tmp_path: Path, images: Path) -> None:
    records = [
        {"image": NAMES[0], "image_id": 1, "question": "q1", "answer": ["x", "y"], "weight": [90.0, 10.0]},
        {"image": NAMES[1], "image_id": 2, "question": "q2", "answer": ["x"], "weight": [5.0]},
        {"image": NAMES[2], "image_id": 3, "question": "q3", "answer": "z"},
    ]
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"llava": [3], "okvqa": []}))
    config = {
        "annotation": write(tmp_path, records),
        "build_info": {"images": str(images), "image_ids": str(ids)},
        "filter": ["llava"],
        "score_thr": 50.0,
        "topk": 1,
        **TRAIN_PROCESSORS,
    }
    dataset = build_dataset("instruct_blip_coco_pseudo_vic", config)
    assert isinstance(dataset, QATrainDataset) and len(dataset) == 1
    assert dataset[0].text_output == "x"
    # The default file's image_ids placeholder is merged in when the project gives none.
    with pytest.raises(AnnotationError, match="Image-id file 'path/to/image_ids.json' does not exist"):
        build_dataset("instruct_blip_coco_pseudo_vig", {**config, "build_info": {"images": str(images)}})
    builder = DATASETS.get("instruct_blip_coco_pseudo_vig")  # without defaults
    with pytest.raises(ConfigError, match="needs build_info.image_ids"):
        builder(**{**config, "build_info": {"images": str(images)}})


def test_config_errors(tmp_path: Path, images: Path) -> None:
    with pytest.raises(ConfigError, match=r"annotation file 'path/to/okvqa_train.json' does not exist"):
        build_dataset("instruct_blip_okvqa_vig", {"sample_ratio": 300})  # the default file's placeholder
    good = entry(tmp_path, images, okvqa_records(1))
    with pytest.raises(ConfigError, match="image folder 'nowhere' does not exist"):
        build_dataset("instruct_blip_okvqa_vig", {"build_info": {**good["build_info"], "images": "nowhere"}})
    with pytest.raises(ConfigError, match=r"unknown keys \['annotations_path'\]"):
        build_dataset("instruct_blip_okvqa_vig", {"build_info": {**good["build_info"], "annotations_path": "x"}})
    with pytest.raises(ConfigError, match="unknown key 'sample_rate'"):
        build_dataset("instruct_blip_okvqa_vig", {**good, "sample_ratio": 1, "sample_rate": 2})
    with pytest.raises(ConfigError, match="needs a 'train' entry"):
        build_dataset("instruct_blip_okvqa_vig", {**good, **EVAL_PROCESSORS})
    with pytest.raises(VIGCError, match="has no records"):
        build_dataset("instruct_blip_okvqa_vig", entry(tmp_path, images, []))


def test_several_annotation_files_are_concatenated(tmp_path: Path, images: Path) -> None:
    files = [write(tmp_path, okvqa_records(2), "a.json"), write(tmp_path, okvqa_records(3), "b.json")]
    dataset = build_dataset("instruct_blip_okvqa_vig", {"build_info": {"annotation": files, "images": str(images)}})
    assert len(dataset) == 5


def test_sample_ratio_and_seed_reach_the_dataset(tmp_path: Path, images: Path) -> None:
    dataset = build_dataset(
        "instruct_blip_aokvqa_vic",
        {
            "build_info": {
                "annotation": write(tmp_path, [{"image_path": NAMES[0], "question": "q", "direct_answers": ["a"]}]),
                "images": str(images),
            },
            "sample_ratio": 131,
        },
        seed=42,
    )
    assert isinstance(dataset, QATrainDataset)
    assert (dataset.sample_ratio, dataset.seed, dataset.name) == (131, 42, "instruct_blip_aokvqa_vic")


def test_registered_builders() -> None:
    families = ["llava_comp", "llava_desc", "llava_conv", "aokvqa", "okvqa", "vqav2", "coco_pseudo"]
    expected = {f"instruct_blip_{f}_{t}" for f in families for t in ("vig", "vic", "vqg")}
    expected |= {f"instruct_blip_{f}_vic_step" for f in families if f != "coco_pseudo"}
    expected |= {f"instruct_blip_{f}_vig_eval" for f in ("okvqa", "aokvqa", "vqav2", "llava")}
    assert expected <= set(DATASETS.names())
    for name in expected:
        assert DATASETS.get(name).__name__ == name


def test_evaluation_sets_check_their_images_up_front_too(tmp_path: Path, images: Path) -> None:
    records = okvqa_records(2) + [{"image": "gone.png", "question": "q", "answer": ["a"]}]
    with pytest.raises(ImageLoadError, match=r"1 of 3 image files do not exist: '[^']*gone\.png'"):
        build_dataset("instruct_blip_okvqa_vig_eval", entry(tmp_path, images, records, **EVAL_PROCESSORS))
    kept = build_dataset(
        "instruct_blip_okvqa_vig_eval", entry(tmp_path, images, records, skip_missing_images=True, **EVAL_PROCESSORS)
    )
    assert len(kept) == 2


def test_vic_step_samples_from_a_config_entry(tmp_path: Path, images: Path) -> None:
    """The prompt is what a VIC step sees (instruction, question, the first j sentences); the target the rest."""
    answer = "There are two objects. At the top there is a red circle. On the left there is a blue square."
    records = [{"image": NAMES[0], "question": "Describe the image.", "answer": [answer]}]
    processors = {"vis_processor": TRAIN_PROCESSORS["vis_processor"]}
    config = entry(tmp_path, images, records, **processors, sample_ratio=2)
    vig_style = build_dataset("instruct_blip_llava_desc_vic_step", config, seed=1)
    question_only = build_dataset("instruct_blip_llava_desc_vic_step", {**config, "gen_style": "vic"}, seed=1)
    assert isinstance(vig_style, QATrainDataset) and vig_style.sample_ratio == 2
    sentences = answer.replace(". ", ".|").split("|")
    seen = set()
    for epoch in range(40):
        item, bare = vig_style.item(0, epoch), question_only.item(0, epoch)
        j = len(sentences) - len(item.text_output.replace(". ", ".|").split("|"))
        assert item.text_output == " ".join(sentences[j:])
        instruction = item.text_input.split(" Question: ")[0]
        assert instruction in VIG_INSTRUCTIONS["llava_desc"]
        assert item.text_input == " ".join([instruction, "Question: Describe the image. Answer:", *sentences[:j]])
        assert bare.text_input in {" ".join(["Describe the image.", *sentences[:k]]) for k in range(3)}
        seen.add(j)
    assert seen == {0, 1, 2}
    with pytest.raises(ConfigError, match=r"key 'gen_style' expects Literal\['vig', 'vic'\], got 'both'"):
        build_dataset("instruct_blip_llava_desc_vic_step", {**config, "gen_style": "both"})
    with pytest.raises(ConfigError, match="unknown key 'gen_style'"):
        build_dataset("instruct_blip_llava_desc_vic", {**config, "gen_style": "vig"})
