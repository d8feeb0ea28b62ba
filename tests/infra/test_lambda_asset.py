"""What the functions import, as Lambda will find it: the prod asset opened and every import of the handlers
resolved against what python3.14 on arm64 has there (the asset, the Powertools layer's pinned packages, the
runtime's boto3, the standard library), and every compiled module built for arm64 and CPython 3.14. Nothing
is executed: only the files and their tags are read, so no arm64 machine is needed."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import sys
import zipfile
from pathlib import Path

import pytest

from localcloud.services.lambda_.runner import RUNTIME_DISTRIBUTIONS
from stacks import lambda_deps, user_code
from tests.infra.conftest import Synthesized
from tests.infra.test_user_code import _asset_dir

# Standard-library modules Python 3.11 has and 3.14 no longer ships (PEP 594, PEP 632, 3.12's and 3.13's
# removals): an import of one of these works here and fails on Lambda.
REMOVED_BY_PYTHON_314 = frozenset(
    {
        "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt", "distutils", "imghdr",
        "imp", "lib2to3", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "smtpd", "sndhdr",
        "spwd", "sunau", "telnetlib", "uu", "xdrlib",
    }
)  # fmt: skip
STDLIB_314 = frozenset(sys.stdlib_module_names) - REMOVED_BY_PYTHON_314


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside `try: ... except ImportError` is optional: the code runs without it."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            for handler in parent.handlers:
                names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
                if any(
                    isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names
                ):
                    return True
        node = parent
    return False


def imported_modules(source: str) -> set[str]:
    """Top-level names of the absolute, unguarded imports of a module."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and not _guarded(node, parents):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and not _guarded(node, parents)
        ):
            names.add(node.module.split(".")[0])
    return names


def top_level_names(directory: Path) -> set[str]:
    """What `import NAME` finds at the top of a directory on sys.path."""
    names = set()
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", ".data")):
            names.add(entry.name)
        elif entry.suffix in (".py", ".so"):
            names.add(entry.name.split(".")[0])
    return names


def runtime_names() -> set[str]:
    names = set()
    for distribution in lambda_deps.RUNTIME_PROVIDED:
        for file in importlib.metadata.distribution(distribution).files or []:
            top = Path(str(file)).parts[0]
            if not top.startswith("..") and not top.endswith(".dist-info") and top != "__pycache__":
                names.add(top.split(".")[0])
    return names


@pytest.fixture(scope="module")
def prod_asset(synthesized: dict[str, Synthesized]) -> Path:
    synth = synthesized["prod"]
    return _asset_dir(synth.outdir, synth.pipeline)


@pytest.fixture(scope="module")
def arm64_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Powertools layer's packages as the lock pins them, for arm64/cp314 (what /opt/python holds)."""
    layer = tmp_path_factory.mktemp("layer")
    lambda_deps.install(lambda_deps.LAYER, lambda_deps.ARM64, layer)
    return layer


def _handler_sources(asset: Path) -> list[Path]:
    """The project's own code in the asset (handlers, jobcore, the contract, user code): not the bundled
    third-party packages, whose own optional imports are theirs to guard."""
    bundled = {
        name
        for info in asset.glob("*.dist-info")
        for name in (info / "top_level.txt").read_text().split()
        if (info / "top_level.txt").exists()
    }
    return [
        path
        for path in sorted(asset.rglob("*.py"))
        if path.relative_to(asset).parts[0] not in bundled and ".dist-info" not in str(path)
    ]


def test_every_import_of_the_handlers_resolves_on_lambda_python314_arm64(
    prod_asset: Path, arm64_layer: Path
) -> None:
    available = STDLIB_314 | top_level_names(prod_asset) | top_level_names(arm64_layer) | runtime_names()
    sources = _handler_sources(prod_asset)
    assert any(path.name == "worker.py" for path in sources)
    missing = {
        f"{path.relative_to(prod_asset)}: import {name}"
        for path in sources
        for name in imported_modules(path.read_text())
        if name not in available
    }
    assert not missing, f"imports that would fail on Lambda: {sorted(missing)}"


@pytest.mark.parametrize("where", ["asset", "layer"])
def test_every_compiled_module_is_built_for_arm64_and_cpython_314(
    where: str, prod_asset: Path, arm64_layer: Path
) -> None:
    root = prod_asset if where == "asset" else arm64_layer
    for extension in root.rglob("*.so"):
        assert "cpython-314-aarch64-linux-gnu" in extension.name or extension.name.endswith(".abi3.so"), (
            extension
        )
    for wheel in root.rglob("*.dist-info/WHEEL"):
        tags = [
            line.split(":", 1)[1].strip()
            for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")
        ]
        assert tags, wheel
        # A wheel installs where any one of its tags is supported.
        assert any(lambda_deps.ARM64.accepts(f"x-1-{tag}.whl") for tag in tags), (wheel, tags)
    if where == "layer":
        # wrapt (through aws-xray-sdk) is compiled: the check above has something to check.
        assert list(root.rglob("*cpython-314-aarch64-linux-gnu.so"))


def test_the_runtime_the_local_cloud_provides_is_the_one_the_asset_leaves_out() -> None:
    assert set(RUNTIME_DISTRIBUTIONS) == lambda_deps.RUNTIME_PROVIDED


# -- the wheel cache and the lock -------------------------------------------------------------------------


def _wheel(name: str, version: str, tag: str, files: dict[str, str]) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{name}-{version}.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
    return f"{name}-{version}-{tag}.whl", buffer.getvalue()


def _lock(path: Path, name: str, version: str, *files: bytes) -> Path:
    """A lock with one pin of the extra, hashed for each of its distribution files."""
    hashes = " \\\n".join(f"    --hash=sha256:{hashlib.sha256(data).hexdigest()}" for data in files)
    path.write_text(f"{name}=={version} \\\n{hashes}\n    # via -\n")
    return path


def test_synth_bundles_a_locked_package_for_the_target_from_the_cache_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arm, arm_data = _wheel(
        "fastcodec",
        "1.0",
        "cp314-cp314-manylinux_2_17_aarch64",
        {"fastcodec/_c.cpython-314-aarch64-linux-gnu.so": "elf"},
    )
    x86, x86_data = _wheel(
        "fastcodec",
        "1.0",
        "cp314-cp314-manylinux_2_17_x86_64",
        {"fastcodec/_c.cpython-314-x86_64-linux-gnu.so": "elf"},
    )
    monkeypatch.setattr(lambda_deps, "CACHE", tmp_path / "cache")
    lock = _lock(tmp_path / "lambda.lock", "fastcodec", "1.0", arm_data, x86_data)
    monkeypatch.setattr(lambda_deps, "LOCK", lock)
    (pin,) = lambda_deps.pins_in(lambda_deps.BUNDLED, lock)

    # Nothing cached: synth says what to run, and does not go to the network itself.
    with pytest.raises(
        lambda_deps.LambdaDependencyError, match=r"fastcodec==1\.0 for arm64-cp314.*make install"
    ):
        lambda_deps.wheel_for(pin, lambda_deps.ARM64)

    # Only an x86_64 wheel: still missing for arm64, never bundled in its place.
    lambda_deps.ARM64.wheel_dir.mkdir(parents=True)
    (lambda_deps.ARM64.wheel_dir / x86).write_bytes(x86_data)
    with pytest.raises(lambda_deps.LambdaDependencyError, match="make install"):
        lambda_deps.wheel_for(pin, lambda_deps.ARM64)

    (lambda_deps.ARM64.wheel_dir / arm).write_bytes(arm_data)
    out = tmp_path / "asset"
    lambda_deps.install(lambda_deps.BUNDLED, lambda_deps.ARM64, out, lock=lock)
    assert (out / "fastcodec" / "_c.cpython-314-aarch64-linux-gnu.so").is_file()
    assert not (out / "fastcodec" / "_c.cpython-314-x86_64-linux-gnu.so").exists()

    # A cached wheel that is not the locked one is refused.
    (lambda_deps.ARM64.wheel_dir / arm).write_bytes(arm_data + b"tampered")
    with pytest.raises(lambda_deps.LambdaDependencyError, match=r"does not match requirements-lambda\.lock"):
        lambda_deps.wheel_for(pin, lambda_deps.ARM64)


def test_the_code_digest_covers_the_bundled_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = user_code.inspect_user_code(None)
    before = user_code.code_digest(code)
    monkeypatch.setattr(lambda_deps, "LOCK", _lock(tmp_path / "lambda.lock", "fastcodec", "1.0", b"v1"))
    with_codec = user_code.code_digest(code)
    monkeypatch.setattr(lambda_deps, "LOCK", _lock(tmp_path / "lambda.lock", "fastcodec", "1.1", b"v2"))
    upgraded = user_code.code_digest(code)
    assert len({before, with_codec, upgraded}) == 3


def test_the_lock_sorts_runtime_layer_and_bundled_pins() -> None:
    places = lambda_deps.classify(lambda_deps.parse_lock())
    assert places["aws-lambda-powertools"] == lambda_deps.LAYER
    assert places["botocore"] == lambda_deps.RUNTIME
    assert places["wrapt"] == lambda_deps.LAYER  # only aws-xray-sdk (the layer's) needs it


def test_the_local_environment_gets_its_own_bundles_for_this_machine(
    synthesized: dict[str, Synthesized],
) -> None:
    # CDK caches bundles per source and options for the whole process: the local functions' asset and the
    # Powertools stand-in (both bundled from lambda_src) once came out as one and the same.
    synth = synthesized["local"]
    asset = _asset_dir(synth.outdir, synth.pipeline)
    assert (asset / "handlers" / "worker.py").is_file()
    (layer,) = [
        resource
        for resource in synth.pipeline["Resources"].values()
        if resource["Type"] == "AWS::Lambda::LayerVersion"
    ]
    key = layer["Properties"]["Content"]["S3Key"]
    key = key if isinstance(key, str) else key["Fn::Sub"]
    layer_dir = synth.outdir / f"asset.{key.split('.')[0].rsplit('/', 1)[-1]}"
    assert (layer_dir / "python" / "aws_lambda_powertools" / "__init__.py").is_file()
    host = lambda_deps.host_target()
    extensions = [path.name for path in layer_dir.rglob("*.so")]
    assert extensions
    assert all(f"-{host.machine}-" in name for name in extensions), extensions
