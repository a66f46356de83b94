"""The package's layering (STYLE.md): a module imports only from its own layer or below, never upwards.

errors, registry, dist, config → models → data → generation → training, eval → tasks → tools, demo, builtins
(the programs, the demo and the registration of every builder) → cli (the ``vigc`` command). Imports inside
functions count too; those of an ``if __name__ == "__main__":`` block do not: it runs only when the module is run
as a program (``python -m vigc.tools.merge_records`` hands its arguments to `vigc.cli`), so it is the command
line's code, never imported with the module.
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
    "cli": 7,
}


def _is_main_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``"""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _imports(path: Path) -> list[str]:
    names = []
    module = ast.parse(path.read_text(encoding="utf-8"))
    module.body = [node for node in module.body if not _is_main_block(node)]
    for node in ast.walk(module):
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


def test_the_scan_sees_function_level_imports_but_not_the_main_block(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from vigc.tasks.train import run_training\n    import vigc.demo.app\n"
        'if __name__ == "__main__":\n    from vigc.cli.merge import main\n'
        'if __name__ == "vigc.x":\n    import vigc.cli.main\n'
    )
    assert _imports(module) == ["vigc.tasks.train", "vigc.demo.app", "vigc.cli.main"]
