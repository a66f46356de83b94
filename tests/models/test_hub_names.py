"""The README's Hugging Face names as weight paths, read from a local cache laid out as huggingface_hub lays it out."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from vigc.errors import CheckpointError, ConfigError
from vigc.models.builders import vigc_model
from vigc.models.hub_names import hub_cache_dir, parse_hub_name, resolve_weight_path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo_id: str, files: dict[str, Path | bytes]) -> Path:
    """A cached repository: ``models--owner--name/{blobs,refs/main,snapshots/<commit>}``, files linked to blobs."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    for name, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).symlink_to(blob)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def finetuned_file(tmp_path: Path, tiny_model_kwargs: dict[str, object]) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny VIGC fine-tuned checkpoint in the released files' layout: ``{"model": trainable tensors, ...}``."""
    torch.manual_seed(3)
    model = vigc_model(**tiny_model_kwargs)  # type: ignore[arg-type]
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    path = tmp_path / "vigc7b_minigpt4_llava.pth"
    torch.save({"model": trained, "optimizer": {}, "iters": 5}, path)
    return path, trained


def test_names_and_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_hub_name("wufan/vigc7b_instrucblip_a-okvqa") == ("wufan/vigc7b_instrucblip_a-okvqa", None)
    assert parse_hub_name("wufan/vigc7b_minigpt4_llava/sub/x.pth") == ("wufan/vigc7b_minigpt4_llava", "sub/x.pth")
    assert parse_hub_name("/ckpt/x.pth") is None and parse_hub_name("x.pth") is None
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "explicit"))
    assert hub_cache_dir() == tmp_path / "explicit"


def test_a_cached_repository_loads_as_model_finetuned(
    hub_cache: Path, finetuned_file: tuple[Path, dict[str, torch.Tensor]], tiny_model_kwargs: dict[str, object]
) -> None:
    path, trained = finetuned_file
    cache_repo(hub_cache, "wufan/vigc7b_minigpt4_llava", {"README.md": b"# VIGC", path.name: path})
    for name in ("wufan/vigc7b_minigpt4_llava", f"wufan/vigc7b_minigpt4_llava/{path.name}"):
        model = vigc_model(**tiny_model_kwargs, finetuned=name)  # type: ignore[arg-type]
        state = model.state_dict()
        assert all(torch.equal(state[key], tensor) for key, tensor in trained.items())
        report = model.load_reports[-1]  # type: ignore[attr-defined]
        assert report.source.startswith(f"model.finetuned={hub_cache}") and len(report.loaded) == len(trained)


def test_an_llm_repository_resolves_to_its_snapshot_folder(hub_cache: Path, reference_fixture: Path) -> None:
    files = {p.name: p for p in (reference_fixture / "llm").iterdir() if p.is_file()}
    snapshot = cache_repo(hub_cache, "lmsys/vicuna-7b-v1.1", files)
    assert resolve_weight_path("lmsys/vicuna-7b-v1.1", "model.llm_model", folder=True) == str(snapshot)


def test_not_cached_is_one_line_naming_the_cache(
    hub_cache: Path, tiny_model_kwargs: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as info:  # found by the model's input check, before anything loads
        vigc_model(**tiny_model_kwargs, finetuned="wufan/vigc13b_minigpt4_llava")  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and str(hub_cache) in message and "hf download wufan/vigc13b_minigpt4_llava" in message
    assert "`model.finetuned`" in message
    cache_repo(hub_cache, "wufan/vigc7b_instrucblip_okvqa", {"a.pth": b"x", "b/c.pth": b"y", "README.md": b"#"})
    with pytest.raises(CheckpointError, match=r"several checkpoint files \(a.pth, b/c.pth\); name one"):
        resolve_weight_path("wufan/vigc7b_instrucblip_okvqa", "model.finetuned")
    with pytest.raises(CheckpointError, match="the file 'nope.pth' of the Hugging Face repository"):
        resolve_weight_path("wufan/vigc7b_instrucblip_okvqa/nope.pth", "model.finetuned")
    (tmp_path / "wufan" / "vigc7b_instrucblip_okvqa").mkdir(parents=True)  # a local path of the same spelling wins
    monkeypatch.chdir(tmp_path)
    assert resolve_weight_path("wufan/vigc7b_instrucblip_okvqa", "model.finetuned") == "wufan/vigc7b_instrucblip_okvqa"
    monkeypatch.chdir(hub_cache.parent)
    shutil.rmtree(hub_cache)
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        resolve_weight_path("wufan/vigc7b_instrucblip_okvqa", "model.pretrained")
