"""The package's layering (STYLE.md): a module imports only from its own layer or below, never upwards.

errors, registry, dist, config → models → data → generation → training, eval → tasks → tools, demo, builtins
(the command line, the demo and the registration of every builder). Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vigc"
LAYERS = {
    "errors": 0,
    "registry": 0,
    "dist": 0,
    "config": 0,
    "config_checks": 0,
    "models": 1,
    "data": 2,
    "generation": 3,
    "training": 4,
    "eval": 4,
    "tasks": 5,
    "tools": 6,
    "demo": 6,
    "builtins": 6,
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names if node.module == "vigc"]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [name for name in names if name.startswith("vigc.")]


def _layer_of(part: str, where: str) -> int:
    assert part in LAYERS, f"{where}: vigc.{part} has no layer; add it to LAYERS in tests/test_layering.py"
    return LAYERS[part]


def test_no_module_imports_from_a_higher_layer() -> None:
    upward, seen = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts == ("__init__.py",):
            continue
        own = _layer_of(relative.parts[0].removesuffix(".py"), str(relative))
        for name in _imports(path):
            seen += 1
            if _layer_of(name.split(".")[1], str(relative)) > own:
                upward.append(f"vigc/{relative} imports {name}")
    assert seen > 200, f"only {seen} vigc imports found: is the scan broken?"
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_the_scan_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from vigc.tasks.train import run_training\n    import vigc.demo.app\n")
    assert _imports(module) == ["vigc.tasks.train", "vigc.demo.app"]
