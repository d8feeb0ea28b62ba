"""The installed `pipeline` command has every package it imports: pyproject.toml lists its packages one by
one (`[tool.setuptools] packages`), so a new subpackage (a service under localcloud/services/, say) that is
not listed there works in the checkout and is missing from an install."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return set(tomllib.load(file)["tool"]["setuptools"]["packages"])


def test_every_subpackage_of_a_listed_checkout_package_is_listed() -> None:
    listed = _listed()
    # The listed packages that live at the checkout's top level (lambda_src's are mapped by package-dir).
    tops = sorted(name for name in listed if "." not in name and (ROOT / name / "__init__.py").is_file())
    assert "localcloud" in tops
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in tops
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_every_directory_with_python_modules_in_localcloud_is_a_package() -> None:
    # A folder of modules without __init__.py would be a namespace package: not installed either.
    folders = {path.parent for path in (ROOT / "localcloud").rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(
        str(folder.relative_to(ROOT)) for folder in folders if not (folder / "__init__.py").is_file()
    )
    assert missing == []


def test_every_file_beside_the_modules_is_package_data() -> None:
    # The console's script and stylesheet are files, not modules: without a package-data entry the
    # installed console serves 404s for them.
    with (ROOT / "pyproject.toml").open("rb") as file:
        setuptools = tomllib.load(file)["tool"]["setuptools"]
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    tops = sorted(name for name in setuptools["packages"] if "." not in name and (ROOT / name).is_dir())
    unlisted = []
    for top in tops:
        for path in (ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            package_dir = next(p for p in path.parents if (p / "__init__.py").is_file())
            package = ".".join(package_dir.relative_to(ROOT).parts)
            relative = path.relative_to(package_dir)
            if not any(relative.match(pattern) for pattern in package_data.get(package, [])):
                unlisted.append(str(path.relative_to(ROOT)))
    assert (ROOT / "pipeline_cli" / "console" / "static" / "console.js").is_file()
    assert unlisted == [], "add these to [tool.setuptools.package-data] in pyproject.toml"
