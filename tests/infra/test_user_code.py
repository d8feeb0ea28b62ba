"""A team's own transforms at synth: bundled into the functions' asset, exported for the CLI, and a module
that would fail the cold start fails `cdk synth` first, naming the file and the error."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from stacks.user_code import UserCodeError, inspect_user_code
from tests.infra.conftest import ROOT, synthesize
from tests.infra.template_tools import resources

EXAMPLE = ROOT / "examples" / "user-code"


def _asset_dir(outdir: Path, template: dict[str, object]) -> Path:
    functions = resources(template, "AWS::Lambda::Function")  # type: ignore[arg-type]
    code = next(iter(functions.values()))["Properties"]["Code"]
    key = code["S3Key"] if isinstance(code["S3Key"], str) else code["S3Key"]["Fn::Sub"]
    asset_hash = key.split(".")[0].rsplit("/", 1)[-1]
    return outdir / f"asset.{asset_hash}"


def test_user_code_is_bundled_and_its_transforms_exported(tmp_path: Path) -> None:
    synth = synthesize("dev", tmp_path, {"userCode": str(EXAMPLE)})
    transforms = synth.pipeline["Outputs"]["Transforms"]["Value"].split(",")
    assert {"mask_pii", "paid_orders", "order_lines", "normalize", "passthrough", "compact"} <= set(
        transforms
    )
    asset = _asset_dir(tmp_path, synth.pipeline)
    assert (asset / "handlers" / "worker.py").is_file()
    assert (asset / "user_code" / "acme_transforms" / "pii.py").is_file()
    assert not (asset / "user_code" / "tests").exists(), "tests never travel to Lambda"


def test_a_relative_user_code_directory_is_read_from_the_app_directory(tmp_path: Path) -> None:
    synth = synthesize("dev", tmp_path, {"userCode": "examples/user-code"})
    assert "mask_pii" in synth.pipeline["Outputs"]["Transforms"]["Value"].split(",")


def test_without_user_code_only_the_built_ins_are_exported(tmp_path: Path) -> None:
    synth = synthesize("dev", tmp_path)
    assert synth.pipeline["Outputs"]["Transforms"]["Value"] == "compact,flatten,normalize,passthrough"


def test_a_module_that_does_not_import_fails_synth_naming_the_file(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "broken.py").write_text("from jobcore.transforms import transform\n\ndef oops(:\n")
    with pytest.raises(UserCodeError, match=r"broken\.py: SyntaxError"):
        synthesize("dev", tmp_path / "out", {"userCode": str(code)})


def test_a_name_registered_twice_fails_synth_naming_both_modules(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    for name in ("first", "second"):
        (code / f"{name}.py").write_text(
            "from jobcore.transforms import transform\n\n@transform('same')\ndef f(record):\n    return record\n"
        )
    with pytest.raises(
        UserCodeError,
        match=r"second\.py: RegistrationError: transform 'same' is registered twice: in first and in second",
    ):
        inspect_user_code(code)


def test_a_built_in_name_cannot_be_taken(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from jobcore.transforms import transform\n\n@transform('normalize')\ndef f(record):\n    return record\n"
    )
    with pytest.raises(
        UserCodeError, match=r"'normalize' is registered twice: in jobcore\.transforms and in mine"
    ):
        inspect_user_code(tmp_path)


def test_a_user_code_directory_that_does_not_exist_fails_synth(tmp_path: Path) -> None:
    with pytest.raises(UserCodeError, match="is not a directory"):
        synthesize("dev", tmp_path, {"userCode": "no/such/dir"})


def test_the_bundle_zips_like_the_plain_asset(tmp_path: Path) -> None:
    """The Lambda runtime imports `handlers.worker` from the asset root, with or without user code."""
    synth = synthesize("dev", tmp_path, {"userCode": str(EXAMPLE)})
    asset = _asset_dir(tmp_path, synth.pipeline)
    archive = tmp_path / "asset.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in asset.rglob("*"):
            zipped.write(path, path.relative_to(asset))
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"handlers/worker.py", "jobcore/plugins.py", "pipeline_contract/__init__.py"} <= names
    assert json.loads(json.dumps(sorted(names)))  # plain relative names, nothing absolute
