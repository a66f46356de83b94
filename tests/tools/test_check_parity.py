"""check_parity on the shared fixture: every golden passes, and a corrupted golden is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vigc.cli.check_parity import main
from vigc.tools import check_parity


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_golden_passes(reference_fixture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(reference_fixture)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    for golden in ("a_vision", "b_vision_feats", "c_forward", "d_generate", "e_generate_multi", "h_predict_by_rank"):
        assert f"ok   {golden}." in out
    assert "0 failed" in out


def test_a_changed_golden_text_fails(reference_fixture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "fixture"
    shutil.copytree(reference_fixture, copy)
    path = copy / "goldens" / "d_generate.json"
    path.chmod(0o644)
    data = json.loads(path.read_text())
    data["beams5_rp1.5"]["output"][0] += " extra"
    path.write_text(json.dumps(data))
    results = check_parity.run_checks(copy, only=["d_generate"])
    failed = [c.name for c in results if not c.ok]
    assert failed == ["d_generate.beams5_rp1.5.output"]


def test_a_shifted_tensor_fails(reference_fixture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "fixture"
    shutil.copytree(reference_fixture, copy)
    path = copy / "goldens" / "a_vision.pt"
    path.chmod(0o644)
    gold = torch.load(path, weights_only=True)
    gold["image_embeds"] = gold["image_embeds"] + 1e-3
    torch.save(gold, path)
    results = {c.name: c for c in check_parity.run_checks(copy, only=["a_vision"])}
    assert results["a_vision.visual_encoder_out"].ok
    assert not results["a_vision.image_embeds"].ok


def test_not_a_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert "not a parity fixture" in capsys.readouterr().err
    assert main([str(tmp_path), "--only", "a_vision", "z_nothing"]) == 2
    assert "no check named z_nothing; the checks are: load_routes, pixels, a_vision" in capsys.readouterr().err
