"""evaluate.py as users run it: records, resume after SIGKILL, torchrun, shards, bad images, gq → ga, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = {
    "arch": "vigc_model",
    "image_size": 56,
    "vit_width": 64,
    "vit_depth": 2,
    "vit_heads": 4,
    "vit_mlp_hidden": 279,
    "num_query_token": 8,
    "qformer_hidden": 64,
    "qformer_layers": 2,
    "qformer_heads": 4,
    "qformer_intermediate": 256,
}


def make_images(folder: Path, fixture: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((fixture / "images").glob("*.png"))
    for i in range(count):
        image = Image.open(sources[i % len(sources)]).convert("RGB")
        image = ImageOps.mirror(image) if (i // len(sources)) % 2 else image
        image.save(folder / f"photo {i:02d}.png")
    return folder


def write_config(tmp: Path, fixture: Path, images: Path, run: dict[str, object], dataset: dict | None = None) -> Path:
    model = {
        **TINY_MODEL,
        "llm_model": str(fixture / "llm"),
        "qformer_tokenizer": str(fixture / "bert_base_uncased_tiny"),
        "vit_model": str(fixture / "eva_vit_tiny.pth"),
        "pretrained": str(fixture / "lavis_trimmed.pth"),
    }
    vis = {"eval": {"name": "blip_image_eval", "image_size": 56}}
    datasets = dataset or {
        "instruct_blip_coco2017_vig_test": {"vis_processor": vis, "build_info": {"images": str(images)}}
    }
    base_run = {"output_dir": str(tmp / "out"), "batch_size_eval": 2, "device": "cpu", "fsync": False}
    config = {"model": model, "datasets": datasets, "run": {**base_run, **run}}
    path = tmp / f"cfg_{len(list(tmp.glob('cfg_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# One image per batch: batched decoding on CPU is not bitwise batch-invariant (padding changes float summation
# order, and the tiny model has near-ties), and resumed or sharded runs batch their remaining images differently.
LLAVA_RUN = {
    "batch_size_eval": 1,
    "task": "instruct_blip_llava_vig",
    "llava_task": "conv",
    "max_sentences": 3,
    "generate_cfg": {"max_len": 20, "min_len": 1, "num_beams": 2},
}


def evaluate(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def merged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "merged.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(reference_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("gen")
    images = make_images(tmp / "images", reference_fixture, 8)
    return tmp, images, write_config(tmp, reference_fixture, images, LLAVA_RUN)


@pytest.fixture(scope="module")
def baseline(setup: tuple[Path, Path, Path]) -> list[dict]:
    tmp, _, cfg = setup
    evaluate("--cfg-path", str(cfg), "--run-id", "baseline")
    return merged(tmp / "out" / "baseline")


def test_a_run_writes_records_original_files_and_llava_export(
    setup: tuple[Path, Path, Path], baseline: list[dict]
) -> None:
    tmp = setup[0]
    run_dir = tmp / "out" / "baseline"
    assert [r["key"] for r in baseline] == sorted(f"photo {i:02d}.png#conv#0" for i in range(8))
    for record in baseline:
        assert record["image_id"] == int(record["image"][6:8])  # "photo 05.png" -> 5, as the original derived ids
        assert record["task"] == "conv" and record["provenance"]["model"]["arch"] == "vigc_model"
        assert record["vic_step_prompts"][0] == record["instruction"]
        assert record["provenance"]["vic"]["mode"] == "default"
        assert record["original_answer"] is None  # VIG stops at its question (run.vig_answer: false)
    original = json.loads((run_dir / "llava_qa_result.json").read_text())
    assert len(original) == sum(r["valid"] for r in baseline)
    result = json.loads((run_dir / "result" / "eval_epochbest.json").read_text())  # the original's file
    assert [e["image"] for e in result] == [r["image"] for r in baseline if r["valid"]]
    assert [e["image_id"] for e in result] == sorted({e["image_id"] for e in result})  # one per image_id
    assert all(list(e)[:3] == ["image", "instruction", "image_id"] and "key" not in e for e in result)
    llava = json.loads((run_dir / "llava_train.json").read_text())
    assert llava and llava[0]["conversations"][0]["value"].startswith("<image>\n")
    assert json.loads((run_dir / "run.json").read_text())["task"] == "llava_vig"


def test_sigkill_and_resume_gives_each_record_exactly_once(
    setup: tuple[Path, Path, Path], baseline: list[dict]
) -> None:
    tmp, _, cfg = setup
    run_dir = tmp / "out" / "killed"
    for kill_after in (1, 3, 6):
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "evaluate.py"), "--cfg-path", str(cfg), "--run-id", "killed"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        records = run_dir / "records.rank0.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if records.exists() and records.read_text().count("\n") >= kill_after:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with records.open("a") as handle:  # and a torn last line, as a kill mid-write leaves
            handle.write('{"key": "photo 07.png#conv#0", "answ')
    evaluate("--cfg-path", str(cfg), "--run-id", "killed")
    assert merged(run_dir) == baseline
    result = "result/eval_epochbest.json"
    assert (run_dir / result).read_text() == (tmp / "out" / "baseline" / result).read_text()


def test_torchrun_two_processes_give_the_same_records(setup: tuple[Path, Path, Path], baseline: list[dict]) -> None:
    tmp, _, cfg = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533"]
    result = subprocess.run(
        [*command, str(REPO / "evaluate.py"), "--cfg-path", str(cfg), "--run-id", "ddp"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp / "out" / "ddp"
    assert sorted(p.name for p in run_dir.glob("records.*.jsonl")) == ["records.rank0.jsonl", "records.rank1.jsonl"]
    assert merged(run_dir) == baseline


def test_shards_then_merge_tool(setup: tuple[Path, Path, Path], baseline: list[dict]) -> None:
    tmp, _, cfg = setup
    for shard in ("0/2", "1/2"):
        evaluate("--cfg-path", str(cfg), "--run-id", "sharded", "--shard", shard)
    run_dir = tmp / "out" / "sharded"
    tool = subprocess.run(
        [sys.executable, "-m", "vigc.tools.merge_records", str(run_dir)], capture_output=True, text=True, cwd=REPO
    )
    assert tool.returncode == 0, tool.stderr
    assert merged(run_dir) == baseline


def test_bad_images_go_to_the_errors_file(reference_fixture: Path, tmp_path: Path) -> None:
    images = make_images(tmp_path / "images", reference_fixture, 2)
    (images / "empty.png").write_bytes(b"")
    (images / "notes.jpg").write_text("not an image")
    Image.new("CMYK", (40, 30), (0, 128, 0, 0)).save(images / "cmyk.jpg")
    Image.new("LA", (30, 30), (90, 128)).save(images / "gray_alpha.png")
    Image.new("I;16", (30, 30), 40000).save(images / "sixteen.png")
    cfg = write_config(tmp_path, reference_fixture, images, LLAVA_RUN)
    result = evaluate("--cfg-path", str(cfg), "--run-id", "bad")
    run_dir = tmp_path / "out" / "bad"
    errors = [json.loads(line) for line in (run_dir / "errors.rank0.jsonl").read_text().splitlines()]
    assert sorted(e["image"] for e in errors) == ["empty.png", "notes.jpg"]
    assert all(e["reason"] for e in errors)
    assert len(merged(run_dir)) == 5
    assert "2 image errors" in result.stderr


def test_question_pass_then_answer_pass(reference_fixture: Path, tmp_path: Path) -> None:
    images = make_images(tmp_path / "images", reference_fixture, 3)
    gq = {
        "task": "instruct_blip_vqg",
        "generate_task": "gq",
        "data_type": "okvqa",
        "weighted_sample": True,
        "generate_cfg": {"max_len": 30, "min_len": 1, "num_beams": 3},
    }
    evaluate("--cfg-path", str(write_config(tmp_path, reference_fixture, images, gq)), "--run-id", "gq")
    questions = json.loads((tmp_path / "out" / "gq" / "question.json").read_text())
    assert questions and all(set(q) >= {"image", "question", "ori_answer"} for q in questions)
    original = json.loads((tmp_path / "out" / "gq" / "result" / "question.json").read_text())
    assert original == [{k: q[k] for k in ("image", "question", "ori_answer")} for q in questions]
    gq_result = json.loads((tmp_path / "out" / "gq" / "result" / "eval_epochbest.json").read_text())
    assert len(gq_result) == 3 and all(e["question_answer"].startswith("Question: ") for e in gq_result)
    ga = {"task": "instruct_blip_vqg", "generate_task": "ga", "generate_cfg": {"max_len": 10, "num_beams": 3}}
    dataset = {
        "instruct_blip_given_q_coco2017_vig_test": {
            "annotation": str(tmp_path / "out" / "gq" / "question.json"),
            "build_info": {"images": str(images)},
            "vis_processor": {"eval": {"name": "blip_image_eval", "image_size": 56}},
            "text_processor": {"eval": {"name": "blip_caption", "max_words": 100}},
        }
    }
    evaluate("--cfg-path", str(write_config(tmp_path, reference_fixture, images, ga, dataset)), "--run-id", "ga")
    answers = json.loads((tmp_path / "out" / "ga" / "question_answer.json").read_text())
    assert len(answers) == len(questions)
    original_answers = json.loads((tmp_path / "out" / "ga" / "result" / "question_answer.json").read_text())
    assert original_answers == answers  # one question per image here, so de-duplication changes nothing
    for entry in answers:
        assert len(entry["answer"]) == len(entry["weight"]) == 3
        assert entry["weight"] == sorted(entry["weight"], reverse=True)


def test_bad_configs_exit_2_with_one_message(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, cfg = setup
    result = evaluate("--cfg-path", str(cfg), "--options", "run.answer_lenght=3", check=False)
    assert result.returncode == 2 and "answer_length" in result.stderr and "Traceback" not in result.stderr
    train_cfg = REPO / "vigc/projects/instruct_blip_vicuna7b/vigc/okvqa/normal_vigc.yaml"
    result = evaluate("--cfg-path", str(train_cfg), check=False)
    assert result.returncode == 2 and "train.py" in result.stderr


GENERATION_CONFIGS = sorted((REPO / "vigc" / "projects").glob("*/generate_qa/*/*.yaml"))


def test_all_sixteen_generation_configs_exist() -> None:
    assert len(GENERATION_CONFIGS) == 16


@pytest.mark.parametrize("path", GENERATION_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "vigc" / "projects")))
def test_generation_configs_stop_at_once_naming_the_keys_to_set(
    path: Path, reference_fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vigc.builtins import register_all
    from vigc.config import load_config, validate_builder_kwargs, validate_config
    from vigc.generation.runner import split_run_section
    from vigc.registry import DATASETS, TASKS

    register_all()
    cfg = load_config(path)
    validate_config(cfg, source=str(path))
    task, _, run = split_run_section(dict(cfg.run))
    validate_builder_kwargs(TASKS.get(task), run, section="run", source=str(path))
    ((name, entry),) = dict(cfg.datasets).items()
    validate_builder_kwargs(DATASETS.get(name), dict(entry), section=f"datasets.{name}", source=str(path))
    images = str(reference_fixture / "images")
    options = [f"datasets.{name}.build_info.images={images}"]
    if "given_q" in name:
        options.append(f"datasets.{name}.annotation={REPO / 'tests/assets/question.json'}")
    code = _evaluate_module().main(["--cfg-path", str(path), "--options", *options])
    assert code == 2
    assert "model.llm_model" in capsys.readouterr().err


def _evaluate_module():  # type: ignore[no-untyped-def]
    """evaluate.py imported in-process (it is a script at the repository root)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vigc_evaluate_script", REPO / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("diversity", ["instructions", "sampling"])
def test_several_qa_per_image_have_their_own_keys(
    diversity: str, parity_model: object, reference_fixture: Path, tmp_path: Path
) -> None:
    from vigc.generation.sources import image_folder
    from vigc.tasks.generate_llava import instruct_blip_llava_vig

    task = instruct_blip_llava_vig(
        samples_per_image=3,
        diversity=diversity,
        max_sentences=2,
        batch_size_eval=2,
        output_dir=str(tmp_path),
        fsync=False,
        generate_cfg={"max_len": 20, "num_beams": 2},
    )
    source = image_folder(images=str(reference_fixture / "images"), image_size=56)
    ctx = task.run(parity_model, source, config={}, run_id="diverse")  # type: ignore[arg-type]
    records = merged(ctx.paths.run_dir)
    assert len(records) == 12
    assert {r["key"].rsplit("#", 1)[1] for r in records} == {"0", "1", "2"}
    by_image: dict[str, list[dict]] = {}
    for record in records:
        by_image.setdefault(record["image"], []).append(record)
    for samples in by_image.values():
        samples.sort(key=lambda r: r["sample_index"])
        if diversity == "instructions":
            assert len({r["instruction"] for r in samples}) == 3
        else:
            assert len({r["instruction"] for r in samples}) == 1
            assert len({r["vig_output"] for r in samples}) > 1  # sampled, not three copies of the beam output


def test_sampled_samples_ask_new_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    """With `diversity: sampling` only VIG is sampled (VIC keeps the configured beams), and an image whose sampled
    question repeats an earlier sample's is drawn again, up to REDRAWS times."""
    import torch

    from vigc.generation.vic import QAResult
    from vigc.tasks import generate_llava

    task = generate_llava.instruct_blip_llava_vig(samples_per_image=3, generate_cfg={"num_beams": 5})
    sampled = task.settings(1)
    assert sampled.vig_decoding.do_sample and sampled.vig_decoding.num_beams == 1
    assert sampled.vic_decoding is not None and not sampled.vic_decoding.do_sample
    assert sampled.vic_decoding.num_beams == 5
    assert task.settings(0) == task.vic

    draws = iter(["same", "same", "new", "same", "same", "same", "same"])
    calls: list[int] = []

    def fake_vig_vic(model, pixels, instructions, settings, stats=None, question_starts=None):  # type: ignore[no-untyped-def]
        calls.append(pixels.shape[0])
        return [QAResult(instruction=i, question=next(draws)) for i in instructions]

    monkeypatch.setattr(generate_llava, "vig_vic", fake_vig_vic)
    results = [QAResult(instruction="i", question="same"), QAResult(instruction="i", question="other")]
    stats = generate_llava.GenerationStats()
    task._redraw_repeats(None, torch.zeros(2, 3, 4, 4), results, [{"same"}, {"same"}], 1, stats, None)  # type: ignore[arg-type]
    assert [r.question for r in results] == ["new", "other"]  # redrawn twice, then new; the other row untouched
    assert calls == [1, 1, 1]
    stuck = [QAResult(instruction="i", question="same")]
    task._redraw_repeats(None, torch.zeros(1, 3, 4, 4), stuck, [{"same"}], 1, stats, None)  # type: ignore[arg-type]
    assert stuck[0].question == "same" and len(calls) == 3 + generate_llava.REDRAWS


def test_vig_answer_is_a_run_setting() -> None:
    from vigc.tasks.generate_llava import instruct_blip_llava_vig

    assert not instruct_blip_llava_vig().vic.keeps_vig_answer
    assert instruct_blip_llava_vig(vig_answer=True).vic.keeps_vig_answer
    assert instruct_blip_llava_vig(vic_mode="compat").vic.keeps_vig_answer  # the original's output, always
    assert instruct_blip_llava_vig(vic_mode="verify").vic.keeps_vig_answer  # the sentences verify checks
    beams = {"num_beams": 5}
    assert instruct_blip_llava_vig(generate_cfg=beams).vic.vig_stops_at_question  # the default, beams too
    assert instruct_blip_llava_vig(generate_cfg=beams, vig_answer=True).vic.continues_vig_answer
    whole = instruct_blip_llava_vig(generate_cfg=beams, vig_question_only=False).vic
    assert not whole.vig_stops_at_question  # the answer ranks questions
    assert instruct_blip_llava_vig(generate_cfg={"num_beams": 1}, vig_question_only=False).vic.vig_stops_at_question
    for mode in ("compat", "verify"):  # VIG's whole output, whatever the key says
        assert not instruct_blip_llava_vig(vic_mode=mode, vig_question_only=True).vic.vig_stops_at_question


def test_question_starts_are_drawn_per_image_and_checked() -> None:
    """`run.question_starts` draws each (image, sample)'s question start by weight, the same on every resume."""
    from vigc.errors import ConfigError
    from vigc.tasks.generate_llava import instruct_blip_llava_vig

    task = instruct_blip_llava_vig(llava_task="comp", question_starts={"How many": 3.0, "Is the": 1.0})
    keys = [f"img{i}.png" for i in range(400)]
    drawn = task.question_starts_for(keys, 0)
    assert drawn == task.question_starts_for(keys, 0) and drawn != task.question_starts_for(keys, 1)
    assert (
        drawn is not None
        and 0.65 < drawn.count("How many") / len(drawn) < 0.85
        and set(drawn) == {"How many", "Is the"}
    )
    assert instruct_blip_llava_vig(llava_task="comp").question_starts_for(keys, 0) is None
    with pytest.raises(ConfigError, match="use vic_mode default or verify"):
        instruct_blip_llava_vig(vic_mode="compat", question_starts={"How many": 1.0})
    with pytest.raises(ConfigError, match="weights above 0; got 'Is the': 0"):
        instruct_blip_llava_vig(question_starts={"How many": 1.0, "Is the": 0})


def test_generation_tasks_are_told_from_training_tasks_by_their_protocol() -> None:
    from vigc.builtins import register_all
    from vigc.registry import TASKS
    from vigc.tasks.generate import GenerationTask

    register_all()
    generates = {name: isinstance(TASKS.get(name)(), GenerationTask) for name in TASKS.names()}
    assert generates == {
        "instruct_blip_caption": False,
        "instruct_blip_llava_vig": True,
        "instruct_blip_vqa": False,
        "instruct_blip_vqg": True,
    }


def test_vic_early_stopping_is_a_run_setting() -> None:
    from vigc.tasks.generate_llava import instruct_blip_llava_vig

    assert instruct_blip_llava_vig(vic_early_stopping=True).vic.vic_early_stopping
    assert not instruct_blip_llava_vig(vic_early_stopping=False).vic.vic_early_stopping
