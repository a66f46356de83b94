"""Reliability edges of both entry points, run in this process: every bad config is one message (exit 2) before a
run folder is made or a weight is read, and no input (odd file names, bombs, a full disk, a kill mid-merge, a
code-running pickle) stops a run for good.

The embedded default model (16 MB, CPU) does the real runs; the bad-config cases never reach it: the builders are
replaced by a function that fails the test if called.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import yaml

import vigc
import vigc.tasks.generate
import vigc.tasks.train
from vigc.generation import records as records_module

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(vigc.__file__).resolve().parent
DEFAULT_CFG = "vigc/projects/default/generate_qa.yaml"
SAMPLES = PACKAGE / "assets" / "sample_images"
FAST = ["run.generate_cfg.max_len=16", "run.generate_cfg.num_beams=1", "run.max_sentences=2", "run.fsync=false"]
UNDECODABLE = b"caf\xe9 \xff.png"  # Latin-1 bytes: not valid UTF-8


def _load_entry(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"vigc_entry_{name}", REPO / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def entries() -> dict[str, ModuleType]:
    return {"evaluate": _load_entry("evaluate"), "train": _load_entry("train")}


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """train.py's main reconfigures the root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (a bomb's header; no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


# ---- bad configs: one message, exit 2, nothing heavy, no run folder ---------------------------------------------


def _write(tmp: Path, name: str, data: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _train_config(tmp: Path, *, missing_images: int = 0) -> Path:
    """A training config for the default model on three sample scenes (plus `missing_images` absent ones)."""
    names = [p.name for p in sorted(SAMPLES.glob("*.png"))[:3]] + [f"gone_{i}.png" for i in range(missing_images)]
    records = [{"image": n, "question": "what is there?", "answer": ["a red circle."]} for n in names]
    annotation = _write(tmp, "train.json", json.dumps(records))
    entry = {
        "build_info": {"annotation": str(annotation), "images": str(SAMPLES)},
        "vis_processor": {"train": {"name": "blip_image_eval", "image_size": 96}},
    }
    run = {
        "task": "instruct_blip_caption",
        "max_iters": 1,
        "batch_size_train": 2,
        "num_workers": 0,
        "amp": False,
        "device": "cpu",
        "valid_splits": [],
        "output_dir": str(tmp / "out"),
    }
    config = {"model": {"arch": "vigc_default"}, "datasets": {"instruct_blip_llava_conv_vig": entry}, "run": run}
    return _write(tmp, "train.yaml", yaml.safe_dump(config))


Case = Callable[[Path], list[str]]


def _gen(*options: str, args: tuple[str, ...] = ()) -> Case:
    return lambda tmp: ["--cfg-path", DEFAULT_CFG, *args, "--options", f"run.output_dir={tmp / 'out'}", *options]


def _gen_file(text: bytes | str) -> Case:
    return lambda tmp: ["--cfg-path", str(_write(tmp, "bad.yaml", text))]


def _train(*options: str, args: tuple[str, ...] = (), missing_images: int = 0) -> Case:
    tail = ["--options", *options] if options else []
    return lambda tmp: ["--cfg-path", str(_train_config(tmp, missing_images=missing_images)), *args, *tail]


def _coco_config(tmp: Path, **build_info: str) -> str:
    """The default config reading the sample images through the original's COCO builder."""
    config = yaml.safe_load((PACKAGE / "projects" / "default" / "generate_qa.yaml").read_text())
    config["run"]["output_dir"] = str(tmp / "out")
    info = {"images": str(SAMPLES), **build_info}
    config["datasets"] = {"instruct_blip_coco2017_vig_test": {"build_info": info, "filter": ["llava"]}}
    return yaml.safe_dump(config)


def _training_dataset_config(tmp: Path) -> str:
    """The default generation config reading a training dataset (an annotation of QA to learn from)."""
    config = yaml.safe_load((PACKAGE / "projects" / "default" / "generate_qa.yaml").read_text())
    config["run"]["output_dir"] = str(tmp / "out")
    config["datasets"] = yaml.safe_load(_train_config(tmp).read_text())["datasets"]
    return yaml.safe_dump(config)


def _broken_json(tmp: Path) -> Path:
    return _write(tmp, "bad.json", b'[{"image": "\xff')


def _file_output(tmp: Path) -> str:
    return str(_write(tmp, "taken", "a file"))


GENERATION_CASES: dict[str, tuple[Case, str]] = {
    "missing config": (lambda tmp: ["--cfg-path", str(tmp / "nope.yaml")], "does not exist"),
    "non-UTF-8 byte": (_gen_file(b"model:\n  arch: vigc_default # caf\xe9\n"), "not UTF-8 text (byte 0xe9"),
    "YAML syntax": (_gen_file("model: [vigc\n"), "not a valid YAML config"),
    "top-level list": (_gen_file("- model\n"), "top level must be a mapping"),
    "unknown section": (_gen_file("modle:\n  arch: x\n"), "unknown top-level section 'modle'"),
    "option syntax": (_gen("run.seed"), "Bad --options entry"),
    "option section": (_gen("runn.seed=1"), "names section 'runn'"),
    "model arch": (_gen("model.arch=vigc_defualt"), "Did you mean 'vigc_default'"),
    "model key": (_gen("model.image_sise=96"), "unknown key 'image_sise'"),
    "model type": (_gen("model.num_query_token=many"), "expects int"),
    "model device": (_gen("model.device=gpu"), "model.device = 'gpu' is not a device"),
    "precision": (_gen("model.precision=fp8"), "model.precision must be one of"),
    "lora key": (_gen("model.lora_config={lora_rank: 8}"), "unknown key 'lora_rank' (did you mean 'lora_r'?)"),
    "lora range": (_gen("model.lora_config={lora_r: 0}"), "model.lora_config.lora_r must be at least 1"),
    "llm path": (
        _gen("model.llm_model=/nonexistent/vicuna"),
        "'/nonexistent/vicuna' is not a directory",
    ),
    "images path": (_gen("datasets.image_folder.images=/nonexistent/images"), "does not exist"),
    "image size": (_gen("datasets.image_folder.image_size=0"), "image_size must be at least 1"),
    "max pixels": (_gen("datasets.image_folder.max_pixels=0"), "max_pixels must be a positive"),
    "task name": (_gen("run.task=instruct_blip_llava_vigg"), "Unknown task 'instruct_blip_llava_vigg'"),
    "max_sentences": (_gen("run.max_sentences=-1"), "run.max_sentences must be at least 1, got -1"),
    "batch size": (_gen("run.batch_size_eval=0"), "run.batch_size_eval must be at least 1"),
    "num_beams": (_gen("run.generate_cfg.num_beams=0"), "run.generate_cfg.num_beams must be at least 1"),
    "top_p": (_gen("run.generate_cfg.top_p=1.5"), "run.generate_cfg.top_p must be in (0, 1]"),
    "min over max": (_gen("run.generate_cfg.min_len=30", "run.generate_cfg.max_len=20"), "must not exceed"),
    "decoding key": (_gen("run.generate_cfg.beams=2"), "unknown key 'beams' (did you mean 'num_beams'?)"),
    "output is a file": (lambda tmp: _gen(f"run.output_dir={_file_output(tmp)}")(tmp), "is a file, not a folder"),
    "output below a file": (lambda tmp: _gen(f"run.output_dir={_file_output(tmp)}/x")(tmp), "lies below the file"),
    "output in package": (_gen(f"run.output_dir={PACKAGE}/out"), "inside the installed package"),
    "shard": (_gen(args=("--shard", "3/2")), "the index is 0-based"),
    "run id": (_gen(args=("--run-id", "../escape")), "not usable as a folder name"),
    "llava task": (_gen("run.llava_task=story"), "run.llava_task must be one of"),
    "vic mode": (_gen("run.vic_mode=fast"), "VIC mode must be one of"),
    "run device": (_gen("run.device=tpu"), "run.device = 'tpu' is not a device"),
    "samples": (_gen("run.samples_per_image=0"), "run.samples_per_image must be at least 1"),
    "sample top_p": (_gen("run.sample_top_p=0"), "run.sample_top_p must be in (0, 1]"),
    "image_ids not JSON": (
        lambda tmp: [
            "--cfg-path",
            str(_write(tmp, "coco.yaml", _coco_config(tmp, image_ids=str(_write(tmp, "ids.json", "{oops"))))),
        ],
        "is not readable JSON",
    ),
    "training dataset": (
        lambda tmp: ["--cfg-path", str(_write(tmp, "mixed.yaml", _training_dataset_config(tmp)))],
        "datasets.instruct_blip_llava_conv_vig is a training dataset",
    ),
    "training config": (
        lambda tmp: ["--cfg-path", "vigc/projects/instruct_blip_vicuna7b/vigc/okvqa/normal_vigc.yaml"],
        "train.py",
    ),
    "all at once": (
        _gen("run.max_sentences=0", "model.device=gpu", "datasets.image_folder.images=/nonexistent/images"),
        "3 problems, fix them all before running",
    ),
}
if not torch.cuda.is_available():
    GENERATION_CASES["cuda on a CPU torch"] = (_gen("model.device=cuda"), "has no usable CUDA")

TRAINING_CASES: dict[str, tuple[Case, str]] = {
    "dataset key typo": (
        _train("datasets.instruct_blip_llava_conv_vig.sample_ration=2"),
        "did you mean 'sample_ratio'",
    ),
    "annotation missing": (
        _train("datasets.instruct_blip_llava_conv_vig.build_info.annotation=/nonexistent.json"),
        "annotation file '/nonexistent.json' does not exist",
    ),
    "missing images": (_train(missing_images=7), "7 of 10 image files do not exist"),
    "annotation not JSON": (
        lambda tmp: _train(f"datasets.instruct_blip_llava_conv_vig.build_info.annotation={_broken_json(tmp)}")(tmp),
        "bad.json",
    ),
    "init_lr": (_train("run.init_lr=-1"), "run.init_lr must be positive, got -1"),
    "batch size": (_train("run.batch_size_train=0"), "run.batch_size_train must be at least 1"),
    "crop scale": (
        _train("datasets.instruct_blip_llava_conv_vig.vis_processor.train={name: blip2_image_train, min_scale: 0}"),
        "blip2_image_train.min_scale must be in (0, 1]",
    ),
    "max_iters": (_train("run.max_iters=0"), "run.max_iters must be at least 1"),
    "amp dtype": (_train("run.amp_dtype=fp8"), "key 'amp_dtype' expects"),
    "validation top_p": (_train("run.generate_cfg={top_p: 0}"), "run.generate_cfg.top_p must be in (0, 1]"),
    "output is a file": (lambda tmp: _train(f"run.output_dir={_file_output(tmp)}")(tmp), "is a file, not a folder"),
    "resume nowhere": (_train(args=("--resume", "/nonexistent/run")), "No training checkpoint at"),
    "generation config": (lambda tmp: ["--cfg-path", DEFAULT_CFG], "is not a training task"),
    "device": (_train("run.device=cuda0"), "is not a device"),
    "non-UTF-8 byte": (_gen_file(b"run:\n  task: x # \xff\n"), "not UTF-8 text"),
    "all at once": (
        _train("run.init_lr=0", "run.output_dir=/dev/null", missing_images=1),
        "3 problems, fix them all before running",
    ),
}


def _forbid_heavy(monkeypatch: pytest.MonkeyPatch) -> None:
    def heavy(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was built before the config was fully checked")

    monkeypatch.setattr(vigc.tasks.generate, "build_model", heavy)
    monkeypatch.setattr(vigc.tasks.train, "build_training_model", heavy)


def _assert_one_message(rc: int, err: str, expected: str, tmp: Path) -> None:
    assert rc == 2, err
    assert "Traceback" not in err and expected in err, err
    assert not (tmp / "out").exists() or not any((tmp / "out").iterdir()), "a run folder was made"


@pytest.mark.parametrize("case", list(GENERATION_CASES), ids=list(GENERATION_CASES))
def test_bad_generation_configs_are_one_message_before_anything_heavy(
    case: str,
    entries: dict[str, ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make, expected = GENERATION_CASES[case]
    _forbid_heavy(monkeypatch)
    monkeypatch.chdir(REPO)
    rc = entries["evaluate"].main(make(tmp_path))
    _assert_one_message(rc, capsys.readouterr().err, expected, tmp_path)


@pytest.mark.parametrize("case", list(TRAINING_CASES), ids=list(TRAINING_CASES))
def test_bad_training_configs_are_one_message_before_anything_heavy(
    case: str,
    entries: dict[str, ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make, expected = TRAINING_CASES[case]
    _forbid_heavy(monkeypatch)
    monkeypatch.chdir(REPO)
    rc = entries["train"].main(make(tmp_path))
    _assert_one_message(rc, capsys.readouterr().err, expected, tmp_path)


# ---- inputs that must not stop a run: odd names, bad files, bombs, a kill mid-merge, a full disk ----------------


def _bad_image_folder(root: Path) -> dict[bytes, bool]:
    """A folder of good and bad images; name (bytes) → whether it should give a record."""
    root.mkdir(parents=True)
    scene = sorted(SAMPLES.glob("*.png"))[0]
    files = {
        b"good.png": scene.read_bytes(),
        UNDECODABLE: scene.read_bytes(),
        b"empty.png": b"",
        b"text.png": b"not an image at all",
        b"truncated.png": scene.read_bytes()[:300],
    }
    for name, data in files.items():
        with open(os.path.join(os.fsencode(root), name), "wb") as handle:
            handle.write(data)
    _png_header_only(root / "bomb.png", 13_000, 13_000)  # 169 Mpx: under PIL's own limit, over max_pixels
    os.symlink("nowhere.png", root / "dangling.png")
    folder = os.path.join(os.fsencode(root), b"sub \xff")  # an undecodable folder name too
    os.mkdir(folder)
    shutil.copyfile(scene, os.path.join(folder, b"x.png"))
    good = (b"good.png", UNDECODABLE, b"sub \xff/x.png")
    return {name: name in good for name in [*files, b"bomb.png", b"dangling.png", b"sub \xff/x.png"]}


def _only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bad_image_folder_with_undecodable_names_completes_and_resumes(
    entries: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _bad_image_folder(tmp_path / "images")
    monkeypatch.chdir(tmp_path)  # the packaged config is found from any working directory
    argv = ["--cfg-path", DEFAULT_CFG, "--options", *FAST, f"datasets.image_folder.images={tmp_path / 'images'}"]
    argv.append(f"run.output_dir={tmp_path / 'out'}")
    assert entries["evaluate"].main(argv) == 0
    run = _only_run(tmp_path / "out")
    records = _lines(run / "merged.jsonl")
    errors = {os.fsencode(e["image"]): e["reason"] for e in _lines(run / "errors.rank0.jsonl")}
    recorded = {os.fsencode(r["image"]) for r in records}
    assert recorded == {name for name, ok in expected.items() if ok}  # the undecodable name comes back byte-exact
    assert set(errors) == {name for name, ok in expected.items() if not ok}
    assert "max_pixels=64000000" in errors[b"bomb.png"] and "13000x13000" in errors[b"bomb.png"]
    llava = json.loads((run / "llava_train.json").read_text(encoding="utf-8"))
    assert UNDECODABLE in {os.fsencode(e["image"]) for e in llava}
    assert "\\udce9" in (run / "merged.jsonl").read_text(encoding="utf-8")  # the documented escaped form
    listed = tmp_path / "list.txt"  # a list file naming it in its own bytes reaches the same image
    listed.write_bytes(b"good.png\n" + UNDECODABLE + b"\n")
    list_argv = [*argv, f"datasets.image_folder.annotation={listed}", f"run.output_dir={tmp_path / 'listed'}"]
    assert entries["evaluate"].main(list_argv) == 0
    from_list = _lines(_only_run(tmp_path / "listed") / "merged.jsonl")
    assert {os.fsencode(r["image"]) for r in from_list} == {b"good.png", UNDECODABLE}

    # a merge killed mid-write left its temporary file; a live process's one is kept
    stale = run / f".merged.jsonl.{2**31 - 2}.0badf00d.tmp"
    live = run / f".llava_train.json.{os.getppid()}.0badf00d.tmp"
    stale.write_text("half"), live.write_text("busy")
    assert entries["evaluate"].main([*argv, "--run-id", run.name]) == 0
    assert not stale.exists() and live.exists()
    assert [r["key"] for r in _lines(run / "merged.jsonl")] == [r["key"] for r in records]


def test_a_full_disk_is_one_line_and_the_resume_completes(
    entries: dict[str, ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--cfg-path", DEFAULT_CFG, "--options", *FAST, "run.fsync=true", f"run.output_dir={tmp_path / 'out'}"]
    real_fsync, calls = os.fsync, []

    def full_disk(fd: int) -> None:
        if "records." in os.readlink(f"/proc/self/fd/{fd}"):
            calls.append(fd)
            if len(calls) == 3:  # the third record: half a line reaches the disk, then the disk is full
                os.write(fd, b'{"key": "shapes_123_0000')
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(records_module.os, "fsync", full_disk)
    assert entries["evaluate"].main(argv) == 2
    err = capsys.readouterr().err
    run = _only_run(tmp_path / "out")
    assert "Traceback" not in err and f"cannot write in {run}: No space left on device" in err
    assert f"--run-id {run.name}" in err
    monkeypatch.setattr(records_module.os, "fsync", real_fsync)
    assert entries["evaluate"].main([*argv, "--run-id", run.name]) == 0
    keys = [r["key"] for r in _lines(run / "records.rank0.jsonl")]  # every line parses: the torn one is gone
    assert len(keys) == len(set(keys)) == len(list(SAMPLES.glob("*.png")))


def test_a_code_running_pickle_as_the_llm_weights_is_refused_in_one_line(
    entries: dict[str, ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PYTEST_TMP", str(tmp_path))
    llm = tmp_path / "llm"
    shutil.copytree(PACKAGE / "assets" / "default_model" / "llm", llm)
    (llm / "model.safetensors").unlink()
    torch.save({"weight": _Exploit()}, llm / "pytorch_model.bin")
    argv = ["--cfg-path", DEFAULT_CFG, "--options", f"model.llm_model={llm}", f"run.output_dir={tmp_path / 'out'}"]
    assert entries["evaluate"].main(argv) == 2
    err = capsys.readouterr().err
    assert "could run code" in err and "GLOBAL" in err
    assert "Traceback" not in err and "weights_only=False" not in err and not (tmp_path / "pwned").exists()


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {Path(os.environ.get('PYTEST_TMP', '/tmp')) / 'pwned'}",))


@pytest.mark.parametrize("victim", ["training_state.pt", "rng_rank0.pt"])
def test_resume_refuses_a_code_running_pickle_in_one_line(
    victim: str,
    entries: dict[str, ModuleType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PYTEST_TMP", str(tmp_path))
    cfg = str(_train_config(tmp_path))
    assert entries["train"].main(["--cfg-path", cfg]) == 0
    (checkpoint,) = _only_run(tmp_path / "out").glob("checkpoint_*")
    torch.save({"progress": _Exploit()}, checkpoint / victim)
    (checkpoint.parent / "checkpoint_00000002.tmp").mkdir()  # a save killed half-way
    capsys.readouterr()
    assert entries["train"].main(["--cfg-path", cfg, "--resume", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert f"{checkpoint / victim} holds Python objects that could run code" in err
    assert "Traceback" not in err and "weights_only=False" not in err and not (tmp_path / "pwned").exists()
    assert not (checkpoint.parent / "checkpoint_00000002.tmp").exists()
