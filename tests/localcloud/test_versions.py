"""Published versions on the local cloud server, as AWS has them: Lambda versions and Step Functions state
machine versions created by CloudFormation, invoked and started by their qualified ARNs, kept across
stack updates when the template retains them, and published in CloudFormation's update order (a new version
of a function runs the function's new code, not the previous deploy's).

Each behaviour here failed on moto 5.2.5 alone: a Version's Ref was its logical id; a stack update published
the new Version before updating the function's code; StateMachineVersion was skipped; StartExecution on a
version ARN raised; ListStateMachineVersions and DeleteStateMachineVersion did not exist."""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.core import cloud
from tests.localcloud.support import allow_eventbridge, client, role_and_function, wait_until

STACK = "versions-fixture"
CODE_BUCKET = "versions-fixture-code"


def handler(tag: str) -> str:
    return (
        f"def handler(event, context):\n    return {{'tag': {tag!r}, 'version': context.function_version}}\n"
    )


def definition(tag: str) -> dict[str, Any]:
    return {"StartAt": "Tag", "States": {"Tag": {"Type": "Pass", "Result": {"tag": tag}, "End": True}}}


def upload_code(endpoint: str, tag: str) -> dict[str, str]:
    """The handler as a zip in a bucket, as CDK's assets arrive (moto cannot update inline ZipFile code)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", handler(tag))
    s3 = client(endpoint, "s3")
    if CODE_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=CODE_BUCKET)
    s3.put_object(Bucket=CODE_BUCKET, Key=f"{tag}.zip", Body=buffer.getvalue())
    return {"S3Bucket": CODE_BUCKET, "S3Key": f"{tag}.zip"}


def template(endpoint: str, tag: str, *, version_id: str) -> str:
    """A function and its Version (a new logical id per deploy, as CDK's currentVersion), a state machine and
    its StateMachineVersion (one logical id, a new version whenever the definition's revision changes),
    every version retained when the template replaces it."""
    resources = role_and_function(handler(tag))
    resources["Function"]["Properties"]["Code"] = upload_code(endpoint, tag)
    resources[version_id] = {
        "Type": "AWS::Lambda::Version",
        "Properties": {"FunctionName": {"Ref": "Function"}},
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
    }
    resources["Machine"] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": "versions-machine",
            "DefinitionString": json.dumps(definition(tag)),
            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
        },
    }
    resources["MachineVersion"] = {
        "Type": "AWS::StepFunctions::StateMachineVersion",
        "Properties": {
            "StateMachineArn": {"Ref": "Machine"},
            "StateMachineRevisionId": {"Fn::GetAtt": ["Machine", "StateMachineRevisionId"]},
        },
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
    }
    return json.dumps(
        {
            "Resources": resources,
            "Outputs": {
                "FunctionVersion": {"Value": {"Ref": version_id}},
                "VersionNumber": {"Value": {"Fn::GetAtt": [version_id, "Version"]}},
                "Machine": {"Value": {"Ref": "Machine"}},
                "MachineVersion": {"Value": {"Ref": "MachineVersion"}},
            },
        }
    )


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("versions")
    port = cloud.free_port()
    process = cloud.start_server(port=port, home=home, log_path=home / "server.log")
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while not cloud.answers(url, timeout=1):
        assert process.poll() is None, (home / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def deploy(endpoint: str, body: str, *, update: bool) -> dict[str, str]:
    cfn = client(endpoint, "cloudformation")
    (cfn.update_stack if update else cfn.create_stack)(StackName=STACK, TemplateBody=body)

    def complete() -> bool:
        status = str(cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"])
        assert not status.endswith("_FAILED"), status
        return status.endswith("_COMPLETE")

    wait_until(complete, timeout=30, message="the stack")
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def invoke(endpoint: str, function: str) -> dict[str, Any]:
    response = client(endpoint, "lambda").invoke(FunctionName=function, Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    return answer


def run(endpoint: str, state_machine: str, name: str) -> dict[str, Any]:
    sfn = client(endpoint, "stepfunctions")
    arn = sfn.start_execution(stateMachineArn=state_machine, name=name, input="{}")["executionArn"]
    wait_until(
        lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", message=f"execution {name}"
    )
    described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    return described


@pytest.fixture(scope="module")
def deploys(endpoint: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Three deploys: v1; v2 (new code and definition); v2 again with nothing changed."""
    first = deploy(endpoint, template(endpoint, "v1", version_id="VersionA"), update=False)
    second = deploy(endpoint, template(endpoint, "v2", version_id="VersionB"), update=True)
    third = deploy(endpoint, template(endpoint, "v2", version_id="VersionB"), update=True)
    return first, second, third


def test_a_function_version_is_its_qualified_arn_and_runs_its_own_code(
    endpoint: str, deploys: tuple[dict[str, str], ...]
) -> None:
    first, second, _ = deploys
    assert first["FunctionVersion"].endswith(":1") and ":function:" in first["FunctionVersion"]
    assert second["FunctionVersion"].endswith(":2")
    assert second["VersionNumber"] == "2"
    # The update published the new version after it updated the code: version 2 runs v2.
    assert invoke(endpoint, second["FunctionVersion"]) == {"tag": "v2", "version": "2"}
    # The version the template dropped is retained, and still runs the code it was published with.
    assert invoke(endpoint, first["FunctionVersion"]) == {"tag": "v1", "version": "1"}
    assert invoke(endpoint, first["FunctionVersion"].rsplit(":", 1)[0])["tag"] == "v2"


def test_a_deleted_version_number_is_never_reused(endpoint: str, deploys: tuple[dict[str, str], ...]) -> None:
    _, second, _ = deploys
    lam = client(endpoint, "lambda")
    function = second["FunctionVersion"].rsplit(":", 1)[0]
    lam.delete_function(FunctionName=function, Qualifier="2")
    lam.update_function_configuration(FunctionName=function, Description="changed")
    wait_until(lambda: lam.get_function(FunctionName=function)["Configuration"]["Description"] == "changed")
    published = lam.publish_version(FunctionName=function)["Version"]
    assert published == "3"
    listed = [v["Version"] for v in lam.list_versions_by_function(FunctionName=function)["Versions"]]
    assert listed == ["$LATEST", "1", "3"]


def test_state_machine_versions_follow_the_definition(
    endpoint: str, deploys: tuple[dict[str, str], ...]
) -> None:
    first, second, third = deploys
    machine = first["Machine"]
    assert first["MachineVersion"] == f"{machine}:1"
    assert second["MachineVersion"] == f"{machine}:2", "a changed definition publishes a new version"
    assert third["MachineVersion"] == f"{machine}:2", "an unchanged one publishes none"
    sfn = client(endpoint, "stepfunctions")
    listed = sfn.list_state_machine_versions(stateMachineArn=machine)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [f"{machine}:2", f"{machine}:1"]


def test_an_execution_of_a_version_runs_that_version_and_belongs_to_the_state_machine(
    endpoint: str, deploys: tuple[dict[str, str], ...]
) -> None:
    first, second, _ = deploys
    machine = first["Machine"]
    old = run(endpoint, first["MachineVersion"], "on-version-1")
    new = run(endpoint, second["MachineVersion"], "on-version-2")
    latest = run(endpoint, machine, "on-latest")
    assert (old["status"], json.loads(old["output"])) == ("SUCCEEDED", {"tag": "v1"})
    assert json.loads(new["output"]) == {"tag": "v2"}
    assert json.loads(latest["output"]) == {"tag": "v2"}
    # As AWS answers: the state machine's ARN (the execution ARN has no version), and the version run.
    assert old["stateMachineArn"] == machine
    assert old["stateMachineVersionArn"] == first["MachineVersion"]
    assert old["executionArn"].endswith(":execution:versions-machine:on-version-1")
    assert "stateMachineVersionArn" not in latest
    sfn = client(endpoint, "stepfunctions")
    names = {e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    assert {"on-version-1", "on-version-2", "on-latest"} <= names
    of_version = sfn.list_executions(stateMachineArn=first["MachineVersion"])["executions"]
    assert [e["name"] for e in of_version] == ["on-version-1"]
    # One name per state machine, whichever version runs it.
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=second["MachineVersion"], name="on-version-1", input='{"x": 1}')


def test_a_state_machine_version_can_be_published_and_deleted(
    endpoint: str, deploys: tuple[dict[str, str], ...]
) -> None:
    first, _, _ = deploys
    sfn = client(endpoint, "stepfunctions")
    machine = first["Machine"]
    published = sfn.publish_state_machine_version(stateMachineArn=machine)["stateMachineVersionArn"]
    assert published == f"{machine}:3"
    sfn.delete_state_machine_version(stateMachineVersionArn=first["MachineVersion"])
    listed = [
        v["stateMachineVersionArn"]
        for v in sfn.list_state_machine_versions(stateMachineArn=machine)["stateMachineVersions"]
    ]
    assert listed == [f"{machine}:3", f"{machine}:2"]
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=first["MachineVersion"], name="gone", input="{}")


def test_the_status_change_event_of_a_version_execution_names_both_arns(
    endpoint: str, deploys: tuple[dict[str, str], ...]
) -> None:
    """What the execution watchdog's rule matches (the state machine's ARN, or any version's by prefix)."""
    first, second, _ = deploys
    machine = first["Machine"]
    sqs, events = client(endpoint, "sqs"), client(endpoint, "events")
    queue = sqs.create_queue(QueueName="versions-events")["QueueUrl"]
    queue_arn = allow_eventbridge(endpoint, queue)
    pattern = {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["SUCCEEDED"], "stateMachineArn": [machine, {"prefix": f"{machine}:"}]},
    }
    events.put_rule(Name="versions-watch", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="versions-watch", Targets=[{"Id": "q", "Arn": queue_arn}])
    run(endpoint, second["MachineVersion"], "watched")

    received: list[dict[str, Any]] = []

    def delivered() -> bool:
        received.extend(
            json.loads(m["Body"])
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        )
        return any(event["detail"]["name"] == "watched" for event in received)

    wait_until(delivered, message="the status change event")
    (event,) = (e for e in received if e["detail"]["name"] == "watched")
    assert event["detail"]["stateMachineArn"] == machine
    assert event["detail"]["stateMachineVersionArn"] == second["MachineVersion"]
