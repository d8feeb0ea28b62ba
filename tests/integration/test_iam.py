"""IAM end to end on the local cloud: the synthesized app, deployed with the real CDK CLI, runs the demo's
jobs with IAM enforced and not one call refused; the same app with one statement removed from the worker's
role (PutObject on the output location), deployed through CloudFormation, fails a job with AccessDenied
naming the action and the resource."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localcloud.core import cloud
from localcloud.core.state import LocalCloudState
from pipeline_cli.aws import Pipeline
from pipeline_cli.records import build_request, get_record, send_request, upload_input
from pipeline_cli.scenarios import ScenarioRun
from pipeline_contract import TERMINAL, stack_name

pytestmark = pytest.mark.integration

STACK = stack_name("local", "Pipeline")


def test_the_demo_ran_with_iam_enforced_and_nothing_was_refused(
    local_cloud: LocalCloudState, demo_runs: dict[str, ScenarioRun]
) -> None:
    status = cloud.iam_status(local_cloud.endpoint)
    assert status["enforced"] is True
    # Every call of the demo's jobs (functions, state machine integrations, event source mappings, event
    # deliveries) was authorized against the synthesized grants: a missing one would be listed here.
    assert status["denials"] == []
    assert {run.status for run in demo_runs.values()} >= {"SUCCEEDED"}


def _template(cfn: Any) -> dict[str, Any]:
    body = cfn.get_template(StackName=STACK)["TemplateBody"]
    if isinstance(body, dict):
        return body
    try:
        return dict(json.loads(body))
    except ValueError:
        return dict(yaml.safe_load(body))


def _without_worker_output_write(template: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The template with the worker role's `s3:PutObject` statement removed; and that statement's logical
    policy id."""
    changed = copy.deepcopy(template)
    for logical_id, resource in changed["Resources"].items():
        if resource["Type"] != "AWS::IAM::Policy" or not logical_id.startswith("WorkerRoleDefaultPolicy"):
            continue
        statements = resource["Properties"]["PolicyDocument"]["Statement"]
        kept = [s for s in statements if s["Action"] != "s3:PutObject"]
        assert len(kept) == len(statements) - 1, statements
        resource["Properties"]["PolicyDocument"]["Statement"] = kept
        return changed, logical_id
    raise AssertionError("no WorkerRoleDefaultPolicy in the deployed template")


def _update(cfn: Any, template: dict[str, Any]) -> None:
    cfn.update_stack(StackName=STACK, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    deadline = time.monotonic() + 60
    while True:
        status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
            assert status == "UPDATE_COMPLETE", status
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


@pytest.fixture
def worker_without_output_grant(pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]) -> Iterator[None]:
    """The deployed app, less one statement of the worker's role, deployed through CloudFormation (as a deploy
    of a template that lacks it would); the deployed template is put back afterwards."""
    cfn = pipeline.client("cloudformation")
    original = _template(cfn)
    changed, _ = _without_worker_output_write(original)
    _update(cfn, changed)
    try:
        yield
    finally:
        _update(cfn, original)


def _wait_terminal(pipeline: Pipeline, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = get_record(pipeline, job_id)
        if record and record["status"] in TERMINAL:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{job_id} not finished after {timeout}s: {get_record(pipeline, job_id)}")


def _run_job(pipeline: Pipeline, tmp_path: Any, job_id: str) -> dict[str, Any]:
    path = tmp_path / f"{job_id}.jsonl"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(200)))
    uri = upload_input(pipeline, path, job_id)
    send_request(pipeline, build_request(job_id=job_id, input_uri=uri, transform="passthrough"))
    return _wait_terminal(pipeline, job_id)


def test_a_job_fails_with_access_denied_when_the_worker_may_not_write_its_output(
    pipeline: Pipeline, local_cloud: LocalCloudState, worker_without_output_grant: None, tmp_path: Any
) -> None:
    job_id = "it-iam-no-output-grant"
    record = _run_job(pipeline, tmp_path, job_id)
    assert record["status"] == "FAILED", record
    error = record["error"]
    assert error["type"] == "AccessDeniedError", error
    bucket = pipeline.outputs.data_bucket_name
    assert "s3:PutObject" in error["message"], error
    assert f"on resource: arn:aws:s3:::{bucket}/out/{job_id}/part-" in error["message"], error
    assert "because no identity-based policy allows the s3:PutObject action" in error["message"], error
    denials = cloud.iam_status(local_cloud.endpoint)["denials"]
    assert any(
        d["action"] == "s3:PutObject" and d["resource"].startswith(f"arn:aws:s3:::{bucket}/out/{job_id}/")
        for d in denials
    ), denials


def test_with_the_grant_back_the_same_job_succeeds(
    pipeline: Pipeline, demo_runs: dict[str, ScenarioRun], tmp_path: Any
) -> None:
    # Control for the test above (the deployed template was put back): the same request succeeds.
    record = _run_job(pipeline, tmp_path, "it-iam-grant-back")
    assert (record["status"], record["records_out"]) == ("SUCCEEDED", 200), record
