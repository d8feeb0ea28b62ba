"""`pipeline try`: a transform on a local file through the real chunk loop, with no cloud; and `submit`
refusing a transform the deployed functions do not register."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobcore.transforms import TRANSFORMS

from .conftest import ROOT, Deployed, Result

Run = Callable[..., Result]
EXAMPLE = ROOT / "examples" / "user-code"


@pytest.fixture(autouse=True)
def built_ins_only() -> Iterator[None]:
    """Each `pipeline try` starts, as a fresh process does, from the built-in transforms only."""
    saved = dict(TRANSFORMS)
    for name in [name for name, entry in TRANSFORMS.items() if entry.module != "jobcore.transforms"]:
        del TRANSFORMS[name]
    # ... and imports the user code afresh (another test may have imported the example already).
    user_modules = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "acme_transforms"}
    for name in user_modules:
        del sys.modules[name]
    yield
    TRANSFORMS.clear()
    TRANSFORMS.update(saved)
    sys.modules.update(user_modules)


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_try_runs_a_user_transform_and_writes_parts_and_rejects(run: Run, tmp_path: Path) -> None:
    source = write(
        tmp_path / "orders.jsonl",
        json.dumps({"order_id": "a", "items": [{"sku": "X", "quantity": 2, "price": 3}, {"sku": "Y"}]}),
        json.dumps({"order_id": "b", "items": []}),
        "not json",
        "",
    )
    out = tmp_path / "out"
    result = run(
        "try",
        "--transform",
        "order_lines",
        "--input",
        str(source),
        "--user-code",
        str(EXAMPLE),
        "-o",
        str(out),
        "--json",
    )
    assert result.code == 0, result.err
    counts = json.loads(result.out)
    assert {
        k: counts[k]
        for k in (
            "records_in",
            "records_transformed",
            "records_filtered",
            "records_rejected",
            "records_out",
            "records_blank",
        )
    } == {
        "records_in": 3,
        "records_transformed": 1,
        "records_filtered": 1,
        "records_rejected": 1,
        "records_out": 2,
        "records_blank": 1,
    }
    (part,) = sorted(out.glob("part-*.jsonl"))
    assert [json.loads(line)["sku"] for line in part.read_text().splitlines()] == ["X", "Y"]
    (rejects,) = sorted((out / "rejects").glob("part-*.jsonl"))
    assert json.loads(rejects.read_text())["error"].startswith("not JSON")


def test_try_checks_options_like_the_ingest(run: Run, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", json.dumps({"email": "ada@example.com"}))
    result = run(
        "try",
        "--transform",
        "mask_pii",
        "--input",
        str(source),
        "--user-code",
        str(EXAMPLE),
        "--options",
        '{"keep_domain": "no"}',
    )
    assert result.code == 2
    assert result.err.strip() == "error: transform_options.keep_domain: must be true or false, not a string"


def test_try_names_the_registered_transforms_when_the_name_is_unknown(run: Run, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", "{}")
    result = run("try", "--transform", "mask_pii", "--input", str(source), "-o", str(tmp_path / "out"))
    assert result.code == 2
    assert "'mask_pii' is not registered here: compact, flatten, normalize, passthrough" in result.err
    assert "your own transforms need --user-code DIR" in result.err


def test_try_reports_a_broken_user_module_with_its_file(run: Run, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "oops.py").write_text("raise RuntimeError('boom at import')\n")
    result = run(
        "try",
        "--transform",
        "x",
        "--input",
        str(write(tmp_path / "in.jsonl", "{}")),
        "--user-code",
        str(code),
    )
    assert result.code == 2
    assert "oops.py: RuntimeError: boom at import" in result.err


def test_submit_refuses_a_transform_the_environment_does_not_deploy(
    deployed: Deployed, run: Run, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", "{}")
    result = run("submit", "--input", str(source), "--transform", "mask_pii", "--env", "dev")
    assert result.code == 2
    assert (
        "--transform 'mask_pii' is not deployed in environment dev: it registers compact, flatten, normalize, passthrough"
        in result.err
    )
    listing = deployed.s3.list_objects_v2(Bucket=deployed.outputs["DataBucketName"]).get("Contents", [])
    assert listing == [], "nothing was uploaded"


def test_try_reads_a_gzip_file_as_its_text_and_refuses_bzip2(run: Run, tmp_path: Path) -> None:
    import bz2
    import gzip

    text = "".join(json.dumps({"i": i}) + "\n" for i in range(500)).encode()
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress(text))
    result = run(
        "try",
        "--transform",
        "passthrough",
        "--input",
        str(tmp_path / "in.jsonl.gz"),
        "-o",
        str(tmp_path / "gz"),
        "--json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["records_out"] == 500
    assert b"".join(p.read_bytes() for p in sorted((tmp_path / "gz").glob("part-*"))) == text

    (tmp_path / "in.jsonl.bz2").write_bytes(bz2.compress(text))
    refused = run(
        "try",
        "--transform",
        "passthrough",
        "--input",
        str(tmp_path / "in.jsonl.bz2"),
        "-o",
        str(tmp_path / "bz"),
    )
    assert refused.code != 0
    assert "is bzip2, not JSON Lines: decompress it" in refused.err
