"""A team's own transforms (`-c userCode=DIR`): checked at synth, then bundled into the functions' asset.

The check imports the directory in a subprocess, the way the functions will at cold start (the Lambda
source on the path, `jobcore.plugins.load_user_code`), so that a module that does not import, or a
transform name registered twice, fails `cdk synth` with the file and the error instead of failing every
cold start in production. It also yields the registry (built-ins and the team's names), which the stack
exports for the CLI (`pipeline submit --transform` checks names against what is deployed).

The bundling copies the Lambda source and the user code (as `user_code/`) into the asset, locally (no
Docker), and hashes the output, so that any change to the user code is a new asset.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii

LAMBDA_SOURCE_DIR = Path(__file__).resolve().parents[1] / "lambda_src"
# Never shipped to Lambda: tests, caches and editor droppings would change the asset hash for nothing.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "tests", "**/.pytest_cache", "**/.mypy_cache", "**/.DS_Store"]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".pytest_cache", ".mypy_cache", ".DS_Store")
# jobcore.plugins.ASSET_DIR_NAME: where the functions look for user code in their asset.
ASSET_DIR_NAME = "user_code"
# 64 bits of the code digest: enough that two deploys of different code never share one.
CODE_DIGEST_CHARS = 16

_INSPECT = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from jobcore.plugins import load_user_code
from jobcore.transforms import TRANSFORMS
try:
    modules = load_user_code(Path(sys.argv[2])) if sys.argv[2] else []
except Exception as error:
    print(json.dumps({"error": str(error)}))
    sys.exit(0)
print(json.dumps({"modules": modules, "transforms": sorted(TRANSFORMS)}))
"""


class UserCodeError(ValueError):
    """The user code cannot be deployed; the message names the directory or file and the error."""


@dataclass(frozen=True)
class UserCode:
    directory: Path | None
    modules: tuple[str, ...]
    transforms: tuple[str, ...]  # every registered name: the built-ins and the team's


def resolve_directory(value: str | None, *, app_dir: Path) -> Path | None:
    """`-c userCode=DIR` (or config): absolute, or relative to the app directory."""
    if not value:
        return None
    path = Path(value)
    path = path if path.is_absolute() else app_dir / path
    if not path.is_dir():
        raise UserCodeError(f"userCode {value!r}: {path} is not a directory")
    return path.resolve()


@functools.cache
def inspect_user_code(directory: Path | None) -> UserCode:
    """Import the user code as the functions will, in a fresh interpreter; raises UserCodeError."""
    completed = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _INSPECT, str(LAMBDA_SOURCE_DIR), str(directory or "")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    try:
        answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise UserCodeError(
            f"userCode {directory}: loading it crashed the interpreter (exit {completed.returncode}):\n"
            f"{completed.stderr.strip()[-2000:]}"
        ) from None
    if "error" in answer:
        raise UserCodeError(f"userCode {directory}: {answer['error']}")
    return UserCode(directory, tuple(answer["modules"]), tuple(answer["transforms"]))


@jsii.implements(cdk.ILocalBundling)
class _CopyWithUserCode:
    """Local bundling: the Lambda source, then the user code under `user_code/`. No Docker involved."""

    def __init__(self, user_code: Path) -> None:
        self._user_code = user_code

    def try_bundle(self, output_dir: str, _options: Any = None) -> bool:  # jsii passes the options struct
        shutil.copytree(LAMBDA_SOURCE_DIR, output_dir, ignore=_IGNORE, dirs_exist_ok=True)
        shutil.copytree(
            self._user_code, Path(output_dir) / ASSET_DIR_NAME, ignore=_IGNORE, dirs_exist_ok=True
        )
        return True


def _asset_files(root: Path, *, under: str = "") -> Iterator[tuple[str, Path]]:
    """(name in the asset, file) for every file the asset takes from `root`, sorted."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        # What the copy into the asset ignores (a directory's name or a file's): _IGNORE takes names.
        if path.is_file() and not any(_IGNORE("", [part]) for part in relative.parts):
            yield f"{under}{relative.as_posix()}", path


def code_digest(user_code: UserCode) -> str:
    """A digest of the code the functions run (the Lambda source, with its built-in transforms, and the
    team's user code): the same files give the same digest on any machine, and any change gives another.
    Jobs record it (`code_version`) and the worker writes it on every part, beside its version number."""
    digest = hashlib.sha256()
    files = list(_asset_files(LAMBDA_SOURCE_DIR))
    if user_code.directory is not None:
        files += _asset_files(user_code.directory, under=f"{ASSET_DIR_NAME}/")
    for name, path in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:CODE_DIGEST_CHARS]


def function_code(user_code: UserCode) -> cdk.aws_lambda.Code:
    """The functions' asset: the Lambda source alone, or with the user code bundled in."""
    if user_code.directory is None:
        return cdk.aws_lambda.Code.from_asset(str(LAMBDA_SOURCE_DIR), exclude=ASSET_EXCLUDES)
    return cdk.aws_lambda.Code.from_asset(
        str(LAMBDA_SOURCE_DIR),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            # Never pulled: local bundling always succeeds, and synth needs no Docker.
            image=cdk.DockerImage.from_registry("resilient-pipeline/local-bundling-only"),
            # jsii.implements declares the interface to jsii; mypy needs telling.
            local=typing.cast(cdk.ILocalBundling, _CopyWithUserCode(user_code.directory)),
        ),
    )
