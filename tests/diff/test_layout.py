"""The dependency direction docs/infra-diff-design.md promises: the CLI depends on `infra_diff`, never the
reverse, and the synth driver (run inside a base ref that may predate both) imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.diff.conftest import ROOT

PACKAGE = ROOT / "infra_diff"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_infra_diff_does_not_import_the_cli(path: Path) -> None:
    assert "pipeline_cli" not in top_level(imported_modules(path))


def test_the_synth_driver_imports_neither_the_package_nor_the_cli() -> None:
    assert top_level(imported_modules(PACKAGE / "synth_driver.py")).isdisjoint({"infra_diff", "pipeline_cli"})


def test_the_cli_command_uses_the_package() -> None:
    assert "infra_diff" in top_level(imported_modules(ROOT / "pipeline_cli" / "commands" / "diff.py"))
    assert not (ROOT / "pipeline_cli" / "infra_diff").exists()
