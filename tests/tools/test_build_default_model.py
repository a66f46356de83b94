"""The default model's recipe end to end, tiny: prepare (data, tokenizers, initial weights) → train.py → export."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from vigc.data import prompts
from vigc.models.default_model import DEFAULT_DIMS, default_model_paths, vigc_default
from vigc.models.tokenizers import LavisLlamaTokenizer
from vigc.tools.build_default_model import (
    GRID_CELLS,
    export,
    main,
    prepare,
    train_llm_tokenizer,
    write_bert_vocab,
    write_initial_llm,
    write_initial_weights,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "vigc" / "projects" / "default" / "train_shapes.yaml"


def _train(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("vigc_train_entry", REPO / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(argv))


def test_prepare_train_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the config's paths are relative to the working directory
    out = Path("output/default_model")
    prepare(out, count=12, seed=0)

    sp = spm.SentencePieceProcessor(model_file=str(out / "init/llm/tokenizer.model"))
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    assert "[UNK]" not in (out / "init/qformer_tokenizer/vocab.txt").read_text().split("\n")[5:]
    tokenizer = LavisLlamaTokenizer(out / "init/llm/tokenizer.model")
    answer = json.loads((out / "data/llava_desc.json").read_text())[0]["answer"][0]
    ids = tokenizer.encode(answer)
    assert tokenizer.decode(ids) == answer and len(ids) < len(answer.split()) * 1.5  # whole words, no bytes

    options = ["run.max_iters=2", "run.batch_size_train=2", "run.num_workers=0", "run.warmup_steps=1"]
    assert _train(["--cfg-path", str(CONFIG), "--options", *options]) == 0
    (run,) = (out / "train").iterdir()
    assets = tmp_path / "assets"
    files = export(run, out / "init", assets)
    assert {p.relative_to(assets).as_posix() for p in files} >= {"model.safetensors", "llm/model.safetensors"}

    model = vigc_default(**default_model_paths(assets))
    (report,) = model.load_reports
    assert report.loaded and not report.unexpected
    # the file holds everything but the LLM, which loads from its own directory
    assert all(name.startswith("language_model.") for name in report.missing)


def test_initial_weights_wire_query_i_to_cell_i(tmp_path: Path) -> None:
    """At initialisation each query token reads one grid cell: drawing in a cell changes that query's output only."""
    init = tmp_path / "init"
    texts = ["There is a red circle.", "Describe the image in detail.", *prompts.GENERATION_INSTRUCTIONS.values()]
    write_initial_llm(init / "llm", train_llm_tokenizer(texts * 20, init / "llm", vocab_size=300), seed=0)
    write_bert_vocab(texts, init / "qformer_tokenizer")
    model = vigc_default(
        llm_model=str(init / "llm"),
        qformer_tokenizer=str(init / "qformer_tokenizer"),
        pretrained=str(write_initial_weights(init, seed=0)),
    ).eval()
    size, cell = DEFAULT_DIMS["image_size"], DEFAULT_DIMS["patch_size"]
    blank = torch.zeros(1, 3, size, size)
    for index in range(GRID_CELLS):
        drawn = blank.clone()
        row, col = divmod(index, 3)
        drawn[:, 0, row * cell + 8 : row * cell + 24, col * cell + 8 : col * cell + 24] = 2.0  # a red square
        with torch.no_grad():
            outputs = [model.visual_prefix(model.encode_images(x), texts[1]).embeds[0] for x in (drawn, blank)]
        change = (outputs[0] - outputs[1]).norm(dim=-1)
        assert change.argmax().item() == index
        assert change[index] > 100 * change[torch.arange(len(change)) != index].max()


def test_prepare_can_start_from_a_packaged_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--init-from` copies a packaged model into init/ (what the training config loads); a wrong folder is one line."""
    source = tmp_path / "previous"
    export_dir = default_model_paths()
    source.mkdir()
    for key, name in (("llm_model", "llm"), ("qformer_tokenizer", "qformer_tokenizer")):
        shutil.copytree(export_dir[key], source / name)
    shutil.copy(export_dir["pretrained"], source / "model.safetensors")
    out = tmp_path / "out"
    prepare(out, count=3, seed=0, init_from=source)
    assert (out / "data" / "llava_desc.json").is_file()
    model = vigc_default(**default_model_paths(out / "init"))
    assert model.load_reports[0].loaded and not model.load_reports[0].unexpected
    assert main(["prepare", "--out", str(out), "--count", "1", "--init-from", str(tmp_path / "nothing")]) == 2
    assert "is not a packaged model folder" in capsys.readouterr().err
