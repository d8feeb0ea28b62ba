"""A team's own transforms (`-c userCode=DIR`): checked at synth, then bundled into the functions' asset.

The check imports the directory in a subprocess, the way the functions will at cold start (the Lambda
source on the path, `jobcore.plugins.load_user_code`), so that a module that does not import, or a
transform name registered twice, fails `cdk synth` with the file and the error instead of failing every
cold start in production. It also yields the registry (built-ins and the team's names), which the stack
exports for the CLI (`pipeline submit --transform` checks names against what is deployed).

The bundling copies the Lambda source, the user code (as `user_code/`) and the third-party packages the
functions import (`stacks.lambda_deps`: unpacked from hash-checked wheels for the target's runtime and
architecture) into the asset, locally (no Docker), and hashes the output, so that any change to any of
them is a new asset.
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

from stacks import lambda_deps

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
class _FunctionBundle:
    """Local bundling: the Lambda source, the user code under `user_code/`, and the bundled packages for
    the target at the top (where Lambda's /var/task puts them first on the path). No Docker involved."""

    def __init__(self, user_code: Path | None, target: lambda_deps.Target) -> None:
        self._user_code = user_code
        self._target = target

    def try_bundle(self, output_dir: str, _options: Any = None) -> bool:  # jsii passes the options struct
        shutil.copytree(LAMBDA_SOURCE_DIR, output_dir, ignore=_IGNORE, dirs_exist_ok=True)
        if self._user_code is not None:
            shutil.copytree(
                self._user_code, Path(output_dir) / ASSET_DIR_NAME, ignore=_IGNORE, dirs_exist_ok=True
            )
        lambda_deps.install(lambda_deps.BUNDLED, self._target, Path(output_dir))
        return True


@jsii.implements(cdk.ILocalBundling)
class _LayerBundle:
    """Local bundling of a layer: the locked packages of `place` under `python/` (Lambda's /opt/python)."""

    def __init__(self, place: str, target: lambda_deps.Target) -> None:
        self._place = place
        self._target = target

    def try_bundle(self, output_dir: str, _options: Any = None) -> bool:
        lambda_deps.install(self._place, self._target, Path(output_dir) / "python")
        return True


def _local_bundling(local: Any, *, what: list[str]) -> cdk.BundlingOptions:
    return cdk.BundlingOptions(
        # Never pulled: local bundling always succeeds, and synth needs no Docker.
        image=cdk.DockerImage.from_registry("resilient-pipeline/local-bundling-only"),
        # Never run either. CDK caches a bundle per source directory and bundling options for the whole
        # process, and sees nothing of `local`: this is what tells two bundles of lambda_src apart (the
        # functions and the layer, each target, each user code directory).
        command=what,
        # jsii.implements declares the interface to jsii; mypy needs telling.
        local=typing.cast(cdk.ILocalBundling, local),
    )


def _asset_files(root: Path, *, under: str = "") -> Iterator[tuple[str, Path]]:
    """(name in the asset, file) for every file the asset takes from `root`, sorted."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        # What the copy into the asset ignores (a directory's name or a file's): _IGNORE takes names.
        if path.is_file() and not any(_IGNORE("", [part]) for part in relative.parts):
            yield f"{under}{relative.as_posix()}", path


def code_digest(user_code: UserCode) -> str:
    """A digest of the code the functions run (the Lambda source, with its built-in transforms, the team's
    user code and the bundled packages): the same files give the same digest on any machine, and any
    change gives another.
    Jobs record it (`code_version`) and the worker writes it on every part, beside its version number."""
    digest = hashlib.sha256()
    # The bundled packages by their pins and hashes: the same on every machine and for every target.
    digest.update(lambda_deps.bundled_digest(lambda_deps.LOCK))
    files = list(_asset_files(LAMBDA_SOURCE_DIR))
    if user_code.directory is not None:
        files += _asset_files(user_code.directory, under=f"{ASSET_DIR_NAME}/")
    for name, path in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:CODE_DIGEST_CHARS]


def function_code(user_code: UserCode, target: lambda_deps.Target) -> cdk.aws_lambda.Code:
    """The functions' asset for `target`: the Lambda source, the user code if any, the bundled packages.
    Raises lambda_deps.LambdaDependencyError (naming `make install`) when a wheel is not in the cache."""
    # Checked here, outside jsii's callback, so that the error reaches the user as it is.
    for pin in lambda_deps.pins_in(lambda_deps.BUNDLED):
        lambda_deps.wheel_for(pin, target)
    return cdk.aws_lambda.Code.from_asset(
        str(LAMBDA_SOURCE_DIR),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=_local_bundling(
            _FunctionBundle(user_code.directory, target),
            what=["functions", target.name, str(user_code.directory or "")],
        ),
    )


def powertools_standin_code(target: lambda_deps.Target) -> cdk.aws_lambda.Code:
    """The Powertools layer's packages from the lock, for environments that cannot use the public layer
    (the local cloud): the same pins the functions are tested with."""
    for pin in lambda_deps.pins_in(lambda_deps.LAYER):
        lambda_deps.wheel_for(pin, target)
    return cdk.aws_lambda.Code.from_asset(
        str(LAMBDA_SOURCE_DIR),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=_local_bundling(_LayerBundle(lambda_deps.LAYER, target), what=["layer", target.name]),
    )
