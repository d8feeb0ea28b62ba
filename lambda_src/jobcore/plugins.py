"""A team's own transforms: every module (`*.py`) and package directly in the user-code directory is
imported once, after the built-ins, so that their `@transform(...)` registrations join the registry.

In the Lambda asset the directory is `user_code/` beside `jobcore/` (the CDK app copies it there from
`-c userCode=DIR`); `pipeline try --user-code DIR` and the synth-time check load a directory the same way.
A module that does not import, or that registers a name twice, raises: on Lambda the cold start fails,
and the CDK app runs this same loader in a subprocess at synth so that it fails there first.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# Where the CDK app puts the user code inside the functions' asset.
ASSET_DIR_NAME = "user_code"


class UserCodeError(ImportError):
    """A user-code module could not be loaded; the message names the file and the error."""


def modules_in(directory: Path) -> list[str]:
    """The importable names directly in `directory`: modules (`x.py`) and packages (`x/__init__.py`)."""
    names = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_file() and entry.suffix == ".py":
            names.append(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            names.append(entry.name)
    return names


def load_user_code(directory: Path) -> list[str]:
    """Import every module and package directly in `directory` (nothing when it does not exist); returns
    their names. Appended to sys.path, so user code never shadows the runtime's or the pipeline's modules."""
    if not directory.is_dir():
        return []
    import jobcore.transforms  # noqa: F401, PLC0415 - the built-ins register first

    if str(directory) not in sys.path:
        sys.path.append(str(directory))
    loaded = []
    for name in modules_in(directory):
        path = directory / name
        shown = f"{path}.py" if (directory / f"{name}.py").is_file() else f"{path}/__init__.py"
        try:
            importlib.import_module(name)
        except Exception as error:
            raise UserCodeError(f"{shown}: {type(error).__name__}: {error}") from error
        loaded.append(name)
    return loaded


def load_bundled_user_code() -> list[str]:
    """The user code the CDK app bundled into this function's asset (none without `-c userCode`)."""
    return load_user_code(Path(__file__).resolve().parents[1] / ASSET_DIR_NAME)
