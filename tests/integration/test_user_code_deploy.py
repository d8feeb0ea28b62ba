"""A team's own transforms deployed into a local cloud of their own with `pipeline local up --context
userCode=examples/user-code`, and run as jobs: options, records dropped, a fan-out, rejects, a sharded job,
and a bad option refused at the ingest naming it. Its own cloud, so the session's stays as it was."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline, connect_local
from pipeline_cli.main import main
from pipeline_cli.records import get_record, send_request, upload_input
from pipeline_contract import TERMINAL

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "user-code"


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("acme-cloud")
    previous = os.environ.get("LOCALCLOUD_HOME")
    os.environ["LOCALCLOUD_HOME"] = str(home)
    try:
        assert main(["local", "up", "--context", f"userCode={EXAMPLE}"]) == 0
        yield connect_local()
    finally:
        main(["local", "down"])
        if previous is None:
            os.environ.pop("LOCALCLOUD_HOME", None)
        else:
            os.environ["LOCALCLOUD_HOME"] = previous


def run_job(
    pipeline: Pipeline, tmp_path: Path, job_id: str, lines: list[Any], **fields: Any
) -> dict[str, Any]:
    source = tmp_path / f"{job_id}.jsonl"
    source.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    send_request(pipeline, {"job_id": job_id, "input": upload_input(pipeline, source, job_id), **fields})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        record = get_record(pipeline, job_id)
        if record and record["status"] in TERMINAL:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{job_id} did not finish: {get_record(pipeline, job_id)}")


def output(pipeline: Pipeline, job_id: str, *, rejects: bool = False) -> list[dict[str, Any]]:
    bucket = pipeline.outputs.data_bucket_name
    prefix = f"out/{job_id}/rejects/" if rejects else f"out/{job_id}/part-"
    keys = sorted(
        o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    )
    return [
        json.loads(line)
        for key in keys
        for line in pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]


def test_the_deployed_registry_lists_the_teams_transforms(acme: Pipeline) -> None:
    assert acme.outputs.transforms is not None
    assert {"mask_pii", "paid_orders", "order_lines", "normalize"} <= set(acme.outputs.transforms)


def test_options_drops_and_rejects(acme: Pipeline, tmp_path: Path) -> None:
    orders = [
        {"order_id": 1, "status": "paid", "amount": 120.0, "currency": "EUR"},
        {"order_id": 2, "status": "paid", "amount": 5.0, "currency": "EUR"},  # under min_amount: dropped
        {"order_id": 3, "status": "open", "amount": 500.0, "currency": "EUR"},  # not paid: dropped
        {"order_id": 4, "status": "paid", "amount": 80.0, "currency": "USD"},  # other currency: dropped
        {"order_id": 5, "status": "paid", "currency": "EUR"},  # no amount: a reject with its reason
        "not json",
    ]
    record = run_job(
        acme,
        tmp_path,
        "acme-paid",
        orders,
        transform="paid_orders",
        transform_options={"min_amount": 10, "currencies": ["EUR"]},
    )
    assert record["status"] == "SUCCEEDED", record.get("error")
    counters = ("records_in", "records_transformed", "records_filtered", "records_rejected", "records_out")
    assert [int(record[c]) for c in counters] == [6, 1, 3, 2, 1]
    assert [o["order_id"] for o in output(acme, "acme-paid")] == [1]
    reasons = [r["error"] for r in output(acme, "acme-paid", rejects=True)]
    assert len(reasons) == 2 and any("amount" in r for r in reasons)


def test_a_fan_out_job_in_shards(acme: Pipeline, tmp_path: Path) -> None:
    orders = [
        {
            "order_id": i,
            "items": [{"sku": f"S{i}-{k}", "quantity": k, "price": 2.5} for k in range(1, 1 + i % 4)],
        }
        for i in range(4_000)
    ]
    record = run_job(
        acme, tmp_path, "acme-lines", orders, transform="order_lines", chunk_bytes=65_536, shards=3
    )
    assert record["status"] == "SUCCEEDED", record.get("error")
    expected = sum(i % 4 for i in range(4_000))
    assert (int(record["records_in"]), int(record["records_out"])) == (4_000, expected)
    assert int(record["records_filtered"]) == sum(1 for i in range(4_000) if i % 4 == 0)  # no items: dropped
    lines = output(acme, "acme-lines")
    assert len(lines) == expected
    assert [(line["order_id"], line["line"]) for line in lines[:4]] == [(1, 1), (2, 1), (2, 2), (3, 1)]
    assert len(record["shards"]) == 3


def test_a_bad_option_is_rejected_naming_it(acme: Pipeline, tmp_path: Path) -> None:
    record = run_job(
        acme,
        tmp_path,
        "acme-badopt",
        [{"email": "a@b.co"}],
        transform="mask_pii",
        transform_options={"colour": 1},
    )
    assert record["status"] == "REJECTED"
    assert record["error"]["type"] == "ValidationError"
    assert record["error"]["message"].startswith(
        "transform_options.colour: unknown option of transform 'mask_pii'"
    )
