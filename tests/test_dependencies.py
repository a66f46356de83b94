"""Dependencies match use: what setup.py asks for, and the tokenizer path that must run without protobuf."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _setup_lists() -> dict[str, list[str]]:
    """setup.py's install_requires and extras, each as package names (version pins dropped)."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = ast.literal_eval(node.value)
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")

    def value(node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            return constants[node.id]
        if isinstance(node, ast.List):
            return [
                x for item in node.elts for x in (value(item.value) if isinstance(item, ast.Starred) else [value(item)])
            ]
        if isinstance(node, ast.Dict):
            return {ast.literal_eval(k): value(v) for k, v in zip(node.keys, node.values, strict=True) if k}
        return ast.literal_eval(node)

    keywords = {k.arg: value(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}
    lists = {"core": keywords["install_requires"], **keywords["extras_require"]}
    return {name: [r.split(">")[0].split("<")[0].split("=")[0] for r in reqs] for name, reqs in lists.items()}


def test_setup_extras_match_what_each_part_imports() -> None:
    lists = _setup_lists()
    assert "playwright" in lists["dev"] and "playwright" not in lists["demo"] + lists["core"]
    assert lists["demo"] == ["gradio"]  # the demo's runtime
    assert "peft" in lists["lora"] and "peft" in lists["dev"] and "peft" not in lists["core"]
    assert "pyarrow" in lists["core"]  # vigc export --format parquet after a plain install
    assert {"datasets", "tensorboard"} <= set(lists["dev"]) and not {"datasets", "tensorboard"} & set(lists["core"])
    assert "protobuf" not in lists["core"]


# Hides google.protobuf (as in an environment without it) before anything imports it, then runs the tokenizer path
# of generation and of the Hugging Face export: our LLaMA tokenizer, its transformers twin, saved and read back.
NO_PROTOBUF = """
import sys, tempfile
sys.modules["google.protobuf"] = None
from transformers import AutoTokenizer
from transformers.utils import is_protobuf_available
from vigc.models.tokenizers import load_llm_tokenizer, load_qformer_tokenizer
assert not is_protobuf_available()
llm = load_llm_tokenizer(sys.argv[1])
load_qformer_tokenizer(sys.argv[2])
twin = llm.to_transformers()
text = "Question: what color is the circle? Answer: blue."
with tempfile.TemporaryDirectory() as folder:
    twin.save_pretrained(folder)
    again = AutoTokenizer.from_pretrained(folder)
assert again(text).input_ids == twin(text).input_ids
assert twin(text).input_ids == llm.encode(text), (twin(text).input_ids, llm.encode(text))
assert "google.protobuf" not in {name for name, module in sys.modules.items() if module is not None}
"""


def test_the_tokenizer_path_runs_without_protobuf(reference_fixture: Path) -> None:
    args = [str(reference_fixture / "llm"), str(reference_fixture / "bert_base_uncased_tiny")]
    result = subprocess.run(
        [sys.executable, "-c", NO_PROTOBUF, *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
