"""EventBridge in the local cloud: Step Functions status-change events and PutEvents, matched by rules and
delivered to SQS and Lambda targets as AWS does (asynchronously, with permissions, retries, dead-letter
queues and metrics).

moto runs in this process with the patches the server installs (`sfn`, the Lambda runner, `events`); the
Lambda runner retries failed asynchronous invocations after 0.2 s instead of Lambda's minutes.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from moto.core.config import default_user_config
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

from localcloud.services.events import events
from localcloud.services.events.events import Delivery, DeliveryFailed, EventDeliverer, RuleRef
from localcloud.services.lambda_ import runner as lambda_runner
from localcloud.services.lambda_.runner import LambdaRunner
from localcloud.services.stepfunctions import sfn
from tests.localcloud.support import allow_eventbridge, client, grant, moto_server, wait_until

ACCOUNT = "123456789012"
REGION = "us-east-1"
STATUS_CHANGE = "Step Functions Execution Status Change"
AWS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# moto's CloudFormation has no model for the CDK's queue policy: skipped, as on every local deploy.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..SQS..QueuePolicy:UserWarning")

HANDLERS = """
import json
import time


def record(event, context):
    time.sleep(event.get("detail", {}).get("sleep", 0))
    print("EVENT " + json.dumps(event), flush=True)
    return {"seen": event.get("id")}


def fail(event, context):
    print("EVENT " + json.dumps(event), flush=True)
    raise RuntimeError("watchdog broke")
"""


@dataclass
class Cloud:
    endpoint: str
    runner: LambdaRunner
    deliverer: EventDeliverer

    def client(self, service: str) -> Any:
        return client(self.endpoint, service)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    home = tmp_path_factory.mktemp("events")
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as patch:
        # As the server process does: executing Step Functions that reach moto at localhost:$MOTO_PORT.
        patch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
        patch.setenv("MOTO_PORT", endpoint.rsplit(":", 1)[1])
        undo = [sfn.install()]
        runner = LambdaRunner(home=home, endpoint=endpoint, async_retry_delays=(0.2, 0.2))
        undo.append(lambda_runner.install(runner))
        deliverer = EventDeliverer(backoff_base_seconds=0.1)
        undo.append(events.install(deliverer))
        deliverer.start()
        try:
            yield Cloud(endpoint, runner, deliverer)
        finally:
            deliverer.stop()
            runner.shutdown()
            for step in reversed(undo):
                step()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Inbox:
    """An SQS queue whose messages are received (and deleted) as they arrive and kept here."""

    def __init__(self, cloud: Cloud, name: str | None = None) -> None:
        self.sqs = cloud.client("sqs")
        self.url = self.sqs.create_queue(QueueName=name or unique("inbox"))["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # What CDK's SqsQueue target (and a DeadLetterConfig) adds: without it EventBridge cannot deliver
        # to the queue, on AWS as here.
        allow_eventbridge(cloud.endpoint, self.url)
        self.messages: list[dict[str, Any]] = []

    def collect(self) -> list[dict[str, Any]]:
        while batch := self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            for message in batch:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            self.messages += batch
        return self.messages

    def bodies(self) -> list[Any]:
        return [json.loads(message["Body"]) for message in self.collect()]

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Any]:
        wait_until(
            lambda: len(self.collect()) >= count, timeout=timeout, message=f"{count} message(s) in {self.url}"
        )
        return self.bodies()

    def attributes(self, message: dict[str, Any]) -> dict[str, str]:
        return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


def settled(cloud: Cloud) -> None:
    """Every event matched so far has been sent (or dead-lettered)."""
    wait_until(cloud.deliverer.idle, message="the deliverer to be idle")


def rule_to(cloud: Cloud, pattern: dict[str, Any], target: dict[str, Any], **rule: Any) -> str:
    name = unique("rule")
    arn = cloud.client("events").put_rule(Name=name, EventPattern=json.dumps(pattern), **rule)["RuleArn"]
    bus = {"EventBusName": rule["EventBusName"]} if "EventBusName" in rule else {}
    cloud.client("events").put_targets(Rule=name, Targets=[{"Id": "t0", **target}], **bus)
    return str(arn)


def state_machine(cloud: Cloud, definition: dict[str, Any]) -> str:
    role = cloud.client("iam").create_role(RoleName=unique("sfn"), AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    return str(
        cloud.client("stepfunctions").create_state_machine(
            name=unique("machine"), roleArn=role, definition=json.dumps(definition)
        )["stateMachineArn"]
    )


def status_changes_of(cloud: Cloud, machine: str) -> Inbox:
    inbox = Inbox(cloud)
    rule_to(
        cloud,
        {"source": ["aws.states"], "detail-type": [STATUS_CHANGE], "detail": {"stateMachineArn": [machine]}},
        {"Arn": inbox.arn},
    )
    return inbox


def statuses(bodies: list[dict[str, Any]]) -> Counter[str]:
    return Counter(body["detail"]["status"] for body in bodies)


def terminal(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    (event,) = [body for body in bodies if body["detail"]["status"] != "RUNNING"]
    return event


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def function(cloud: Cloud, handler: str) -> tuple[str, str]:
    """A function of HANDLERS (record or fail); returns its name and ARN."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handlers.py", HANDLERS)
    role = cloud.client("iam").create_role(RoleName=unique("fn"), AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    name = unique(handler)
    created = cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler=f"handlers.{handler}",
        Code={"ZipFile": code.getvalue()},
        Timeout=5,
    )
    return name, str(created["FunctionArn"])


def logged_events(cloud: Cloud, function_name: str) -> list[dict[str, Any]]:
    log = cloud.runner.log_path(function_name)
    if not log.exists():
        return []
    return [
        json.loads(line[len("EVENT ") :])
        for line in log.read_text().splitlines()
        if line.startswith("EVENT ")
    ]


def metric_sum(cloud: Cloud, metric: str, rule_name: str, bus: str | None = None) -> float:
    dimensions = [{"Name": "RuleName", "Value": rule_name}]
    if bus:
        dimensions.insert(0, {"Name": "EventBusName", "Value": bus})
    now = datetime.now(UTC)
    points = cloud.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Events",
        MetricName=metric,
        Dimensions=dimensions,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(point["Sum"] for point in points))


def rule_name(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


# -- Step Functions execution status changes -------------------------------------------------------------


def test_succeeded_execution_emits_running_then_succeeded_in_the_aws_shape(cloud: Cloud) -> None:
    machine = state_machine(
        cloud, {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"rows": 3}, "End": True}}}
    )
    inbox = status_changes_of(cloud, machine)
    sfn_client = cloud.client("stepfunctions")
    execution = sfn_client.start_execution(
        stateMachineArn=machine, name="job-1", input='{"job_id": "job-1"}'
    )["executionArn"]

    bodies = inbox.wait_for(2)
    settled(cloud)
    assert statuses(inbox.bodies()) == {"RUNNING": 1, "SUCCEEDED": 1}
    described = sfn_client.describe_execution(executionArn=execution)
    event = terminal(bodies)
    assert list(event) == [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    assert event["version"] == "0"
    assert uuid.UUID(event["id"])
    assert (event["detail-type"], event["source"]) == (STATUS_CHANGE, "aws.states")
    assert (event["account"], event["region"], event["resources"]) == (ACCOUNT, REGION, [execution])
    assert AWS_TIME.fullmatch(event["time"]), event["time"]
    assert event["detail"] == {
        "executionArn": execution,
        "stateMachineArn": machine,
        "name": "job-1",
        "status": "SUCCEEDED",
        "startDate": epoch_ms(described["startDate"]),
        "stopDate": epoch_ms(described["stopDate"]),
        "input": '{"job_id": "job-1"}',
        "output": '{"rows":3}',
        "inputDetails": {"included": True},
        "outputDetails": {"included": True},
        "error": None,
        "cause": None,
        "stateMachineVersionArn": None,
        "stateMachineAliasArn": None,
        "redriveCount": 0,
        "redriveDate": None,
        "redriveStatus": "NOT_REDRIVABLE",
        "redriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
    }
    running = next(body for body in bodies if body["detail"]["status"] == "RUNNING")
    assert running["detail"]["stopDate"] is None
    assert running["detail"]["output"] is None
    assert running["detail"]["outputDetails"] is None
    assert running["detail"]["startDate"] == event["detail"]["startDate"]


def test_failed_execution_carries_error_and_cause(cloud: Cloud) -> None:
    machine = state_machine(
        cloud,
        {
            "StartAt": "Boom",
            "States": {"Boom": {"Type": "Fail", "Error": "JobFailed", "Cause": "see the DLQ"}},
        },
    )
    inbox = status_changes_of(cloud, machine)
    cloud.client("stepfunctions").start_execution(stateMachineArn=machine, name="job-2")

    inbox.wait_for(2)
    settled(cloud)
    bodies = inbox.bodies()
    assert statuses(bodies) == {"RUNNING": 1, "FAILED": 1}
    detail = terminal(bodies)["detail"]
    assert (detail["error"], detail["cause"]) == ("JobFailed", "see the DLQ")
    assert (detail["output"], detail["outputDetails"]) == (None, None)
    assert isinstance(detail["stopDate"], int)
    assert (detail["redriveStatus"], detail["redriveStatusReason"]) == ("REDRIVABLE", None)


def test_execution_timeout_emits_timed_out_once(cloud: Cloud) -> None:
    machine = state_machine(
        cloud,
        {
            "TimeoutSeconds": 1,
            "StartAt": "Sleep",
            "States": {"Sleep": {"Type": "Wait", "Seconds": 30, "End": True}},
        },
    )
    inbox = status_changes_of(cloud, machine)
    sfn_client = cloud.client("stepfunctions")
    execution = sfn_client.start_execution(stateMachineArn=machine, name="job-3")["executionArn"]

    inbox.wait_for(2)
    # The Wait state notices the timeout and its history event follows: the execution is over here.
    wait_until(
        lambda: any(
            e["type"] == "ExecutionTimedOut"
            for e in sfn_client.get_execution_history(executionArn=execution)["events"]
        ),
        message="ExecutionTimedOut in the history",
    )
    settled(cloud)
    bodies = inbox.bodies()
    assert statuses(bodies) == {"RUNNING": 1, "TIMED_OUT": 1}
    assert sfn_client.describe_execution(executionArn=execution)["status"] == "TIMED_OUT"
    detail = terminal(bodies)["detail"]
    assert detail["stopDate"] - detail["startDate"] >= 1000


@pytest.mark.parametrize("state", ["wait", "callback"])
def test_stop_execution_is_aborted_at_once_and_emitted_once(
    cloud: Cloud, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = Inbox(cloud)
    states: dict[str, Any] = {
        # A Wait state notices StopExecution at once ...
        "wait": {"Type": "Wait", "Seconds": 30, "End": True},
        # ... a task does not: moto would keep the execution RUNNING until the callback came.
        "callback": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": tokens.url, "MessageBody": {"token.$": "$$.Task.Token"}},
            "End": True,
        },
    }
    machine = state_machine(cloud, {"StartAt": "Work", "States": {"Work": states[state]}})
    inbox = status_changes_of(cloud, machine)
    ended: list[str] = []
    hook = BaseExecutionWorkerCommunication.terminated

    def spy(self: Any) -> None:
        hook(self)
        ended.append(self.execution.exec_arn)

    monkeypatch.setattr(BaseExecutionWorkerCommunication, "terminated", spy)
    sfn_client = cloud.client("stepfunctions")
    execution = sfn_client.start_execution(stateMachineArn=machine, name="job-4")["executionArn"]
    if state == "callback":
        token = tokens.wait_for(1)[0]["token"]
    else:
        inbox.wait_for(1)  # RUNNING; the Wait state has begun

    sfn_client.stop_execution(executionArn=execution)
    described = sfn_client.describe_execution(executionArn=execution)
    assert described["status"] == "ABORTED"
    assert "stopDate" in described

    if state == "callback":
        # Let the interrupted task end (with an error): moto's worker then reports its end, which must
        # neither change the status nor emit a second event.
        sfn_client.send_task_failure(taskToken=token, error="Late", cause="after the stop")
    wait_until(lambda: execution in ended, message="the execution's worker to end")
    settled(cloud)
    bodies = inbox.bodies()
    assert statuses(bodies) == {"RUNNING": 1, "ABORTED": 1}
    assert sfn_client.describe_execution(executionArn=execution)["status"] == "ABORTED"
    detail = terminal(bodies)["detail"]
    assert detail["stopDate"] == epoch_ms(described["stopDate"])
    assert (detail["error"], detail["output"]) == (None, None)


# -- matching ------------------------------------------------------------------------------------------


def test_a_pattern_that_does_not_match_and_a_disabled_rule_deliver_nothing(cloud: Cloud) -> None:
    source = unique("resilient-pipeline")
    inbox = Inbox(cloud)
    disabled = Inbox(cloud)
    pattern = {
        "source": [source],
        "detail-type": ["Job Failed"],
        "detail": {"attempt": [{"numeric": [">", 1]}]},
    }
    rule_to(cloud, pattern, {"Arn": inbox.arn})
    rule_to(cloud, pattern, {"Arn": disabled.arn}, State="DISABLED")
    put = cloud.client("events").put_events

    put(Entries=[{"Source": source, "DetailType": "Job Succeeded", "Detail": '{"job": "no", "attempt": 2}'}])
    put(Entries=[{"Source": source, "DetailType": "Job Failed", "Detail": '{"job": "no", "attempt": 1}'}])
    put(
        Entries=[
            {"Source": "someone-else", "DetailType": "Job Failed", "Detail": '{"job": "no", "attempt": 2}'}
        ]
    )
    put(
        Entries=[{"Source": source, "DetailType": "Job Failed", "Detail": '{"job": "control", "attempt": 2}'}]
    )

    inbox.wait_for(1)
    settled(cloud)
    assert [body["detail"]["job"] for body in inbox.bodies()] == ["control"]
    assert disabled.collect() == []


# -- PutEvents ---------------------------------------------------------------------------------------------


def test_put_events_with_a_custom_source_on_a_named_bus_reaches_sqs_targets(cloud: Cloud) -> None:
    bus = unique("pipeline")
    eventbridge = cloud.client("events")
    eventbridge.create_event_bus(Name=bus)
    whole, detail, shaped = Inbox(cloud), Inbox(cloud), Inbox(cloud)
    name = unique("rule")
    rule_arn = eventbridge.put_rule(
        Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["resilient-pipeline"]})
    )["RuleArn"]
    eventbridge.put_targets(
        Rule=name,
        EventBusName=bus,
        Targets=[
            {"Id": "whole", "Arn": whole.arn},
            {"Id": "detail", "Arn": detail.arn, "InputPath": "$.detail"},
            {
                "Id": "shaped",
                "Arn": shaped.arn,
                "InputTransformer": {
                    "InputPathsMap": {
                        "job": "$.detail.job_id",
                        "kind": "$.detail-type",
                        "rows": "$.detail.rows",
                    },
                    "InputTemplate": '{"text": "<kind>: <job>", "rows": <rows>, "rule": "<aws.events.rule-name>"}',
                },
            },
        ],
    )
    detail_doc = {"job_id": "job-7", "rows": 1200}
    put = eventbridge.put_events(
        Entries=[
            {
                "Source": "resilient-pipeline",
                "DetailType": "Job Succeeded",
                "Detail": json.dumps(detail_doc),
                "Resources": ["arn:aws:dynamodb:us-east-1:123456789012:table/jobs"],
                "EventBusName": bus,
            }
        ]
    )
    assert put["FailedEntryCount"] == 0

    (event,) = whole.wait_for(1)
    assert event["id"] == put["Entries"][0]["EventId"]
    assert list(event) == [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    assert (event["source"], event["detail-type"], event["account"]) == (
        "resilient-pipeline",
        "Job Succeeded",
        ACCOUNT,
    )
    assert event["resources"] == ["arn:aws:dynamodb:us-east-1:123456789012:table/jobs"]
    assert event["detail"] == detail_doc
    assert AWS_TIME.fullmatch(event["time"])
    assert detail.wait_for(1) == [detail_doc]
    assert shaped.wait_for(1) == [{"text": "Job Succeeded: job-7", "rows": 1200, "rule": name}]
    assert str(rule_arn).endswith(f":rule/{bus}/{name}")
    wait_until(lambda: metric_sum(cloud, "Invocations", name, bus) == 3, message="3 Invocations")
    assert metric_sum(cloud, "TriggeredRules", name, bus) == 1
    assert metric_sum(cloud, "FailedInvocations", name, bus) == 0


def test_a_missing_queue_is_not_retried_and_goes_to_the_dead_letter_queue(cloud: Cloud) -> None:
    dead_letters = Inbox(cloud)
    missing = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{unique('deleted')}"
    source = unique("source")
    arn = rule_to(
        cloud,
        {"source": [source]},
        {
            "Arn": missing,
            "RetryPolicy": {"MaximumRetryAttempts": 5},
            "DeadLetterConfig": {"Arn": dead_letters.arn},
        },
    )
    cloud.client("events").put_events(Entries=[{"Source": source, "DetailType": "Ping", "Detail": "{}"}])

    dead_letters.wait_for(1)
    (message,) = dead_letters.collect()
    assert json.loads(message["Body"])["source"] == source
    attributes = dead_letters.attributes(message)
    assert attributes["RULE_ARN"] == arn
    assert attributes["TARGET_ARN"] == missing
    assert (attributes["ERROR_CODE"], attributes["RETRY_ATTEMPTS"]) == ("NO_RESOURCE", "0")
    assert "EXHAUSTED_RETRY_CONDITION" not in attributes
    wait_until(
        lambda: metric_sum(cloud, "InvocationsSentToDLQ", rule_name(arn)) == 1, message="InvocationsSentToDLQ"
    )
    assert metric_sum(cloud, "FailedInvocations", rule_name(arn)) == 1
    assert metric_sum(cloud, "InvocationAttempts", rule_name(arn)) == 1


# -- Lambda targets ----------------------------------------------------------------------------------------


def test_a_lambda_target_is_invoked_asynchronously_with_the_event(cloud: Cloud) -> None:
    name, function_arn = function(cloud, "record")
    source = unique("source")
    arn = rule_to(cloud, {"source": [source]}, {"Arn": function_arn})
    cloud.client("lambda").add_permission(
        FunctionName=name,
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=arn,
    )
    put = cloud.client("events").put_events(
        Entries=[{"Source": source, "DetailType": "Job Failed", "Detail": '{"job_id": "job-9", "sleep": 2}'}]
    )
    # PutEvents did not wait for the function, which is still asleep.
    assert logged_events(cloud, name) == []

    wait_until(lambda: bool(logged_events(cloud, name)), message="the handler to run")
    (event,) = logged_events(cloud, name)
    assert event["id"] == put["Entries"][0]["EventId"]
    assert (event["source"], event["detail"]) == (source, {"job_id": "job-9", "sleep": 2})
    wait_until(lambda: metric_sum(cloud, "Invocations", rule_name(arn)) == 1, message="Invocations")


def test_a_lambda_target_without_permission_for_the_rule_is_not_invoked(cloud: Cloud) -> None:
    name, function_arn = function(cloud, "record")
    dead_letters = Inbox(cloud)
    source = unique("source")
    arn = rule_to(
        cloud, {"source": [source]}, {"Arn": function_arn, "DeadLetterConfig": {"Arn": dead_letters.arn}}
    )
    # A permission for another rule does not count.
    cloud.client("lambda").add_permission(
        FunctionName=name,
        StatementId="other-rule",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=arn + "-other",
    )
    cloud.client("events").put_events(Entries=[{"Source": source, "DetailType": "Ping", "Detail": "{}"}])

    dead_letters.wait_for(1)
    attributes = dead_letters.attributes(dead_letters.collect()[0])
    assert (attributes["ERROR_CODE"], attributes["RETRY_ATTEMPTS"]) == ("NO_PERMISSIONS", "0")
    settled(cloud)
    assert not cloud.runner.log_path(name).exists()  # never started
    assert metric_sum(cloud, "FailedInvocations", rule_name(arn)) == 1


def test_a_failing_function_is_retried_by_lambda_and_ends_in_its_on_failure_destination(cloud: Cloud) -> None:
    """On AWS a function error is not a delivery failure: EventBridge's asynchronous invoke succeeded, so
    the rule target's DLQ stays empty; Lambda retries the event twice and then hands it to the function's
    OnFailure destination."""
    name, function_arn = function(cloud, "fail")
    target_dlq, on_failure = Inbox(cloud), Inbox(cloud)
    lam = cloud.client("lambda")
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": on_failure.arn}},
    )
    # Lambda sends to a destination with the function's role: it needs the grant, on AWS as here.
    role = lam.get_function_configuration(FunctionName=name)["Role"]
    grant(cloud.endpoint, role.rsplit("/", 1)[1], {"Action": "sqs:SendMessage", "Resource": on_failure.arn})
    source = unique("source")
    arn = rule_to(
        cloud, {"source": [source]}, {"Arn": function_arn, "DeadLetterConfig": {"Arn": target_dlq.arn}}
    )
    lam.add_permission(
        FunctionName=name,
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=arn,
    )
    put = cloud.client("events").put_events(
        Entries=[{"Source": source, "DetailType": "Ping", "Detail": '{"n": 1}'}]
    )

    (record,) = on_failure.wait_for(1)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == f"{function_arn}:$LATEST"
    assert record["requestPayload"]["id"] == put["Entries"][0]["EventId"]
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert [event["id"] for event in logged_events(cloud, name)] == [put["Entries"][0]["EventId"]] * 3
    settled(cloud)
    assert target_dlq.collect() == []
    assert metric_sum(cloud, "Invocations", rule_name(arn)) == 1
    assert metric_sum(cloud, "FailedInvocations", rule_name(arn)) == 0


# -- retries and the dead-letter queue, with a target that fails on demand ----------------------------------


def test_retriable_failures_back_off_then_go_to_the_dead_letter_queue(cloud: Cloud) -> None:
    dead_letters = Inbox(cloud)
    attempts: list[float] = []
    metrics: list[str] = []

    def throttled(delivery: Delivery) -> None:
        attempts.append(time.monotonic())
        raise DeliveryFailed("THROTTLING", "Rate exceeded", retriable=True)

    deliverer = EventDeliverer(
        send=throttled,
        publish_metrics=lambda _rule, names: metrics.extend(names),
        backoff_base_seconds=0.1,
    )
    rule = RuleRef(
        arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/flaky",
        name="flaky",
        bus_name="default",
        account_id=ACCOUNT,
        region=REGION,
    )
    event = {"version": "0", "id": str(uuid.uuid4()), "source": "test", "detail": {}}
    target = {
        "Id": "t",
        "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:flaky",
        "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
        "DeadLetterConfig": {"Arn": dead_letters.arn},
    }
    deliverer.start()
    try:
        deliverer.submit(Delivery(rule=rule, target=target, event=event, ingested_at=time.time()))
        dead_letters.wait_for(1)
        (message,) = dead_letters.collect()
        assert json.loads(message["Body"]) == event
        attributes = dead_letters.attributes(message)
        assert attributes["ERROR_CODE"] == "THROTTLING"
        assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
        assert attributes["RETRY_ATTEMPTS"] == "3"
        assert len(attempts) == 4
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        # Exponential backoff with jitter: each wait is at least half of 0.1 s, 0.2 s, 0.4 s.
        assert [gap >= floor for gap, floor in zip(gaps, (0.05, 0.1, 0.2), strict=True)] == [True] * 3, gaps
        assert Counter(metrics) == {
            "InvocationAttempts": 4,
            "Invocations": 1,
            "FailedInvocations": 1,
            "InvocationsSentToDLQ": 1,
        }

        # An event too old for another retry is given up at once.
        attempts.clear()
        aged = dict(target, RetryPolicy={"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 60})
        deliverer.submit(Delivery(rule=rule, target=aged, event=event, ingested_at=time.time() - 59.99))
        wait_until(lambda: len(dead_letters.collect()) == 2, message="the aged event in the DLQ")
        assert dead_letters.attributes(dead_letters.collect()[1])["EXHAUSTED_RETRY_CONDITION"] == (
            "MaximumEventAgeInSeconds"
        )
        assert len(attempts) == 1
    finally:
        deliverer.stop()


# -- rules deployed by CloudFormation, as the CDK synthesizes them -----------------------------------------

WATCHDOG = """
import json


def handler(event, context):
    print("EVENT " + json.dumps(event), flush=True)
"""


def watchdog_template(retries: int = 4) -> str:
    failing = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "JobFailed", "Cause": "boom"}}}
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        },
    }
    return json.dumps(
        {
            "Resources": {
                "Role": role,
                "Watchdog": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Code": {"ZipFile": WATCHDOG},
                        "Handler": "index.handler",
                        "Runtime": "python3.12",
                        "Timeout": 5,
                        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    },
                },
                "Machine": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                        "DefinitionString": json.dumps(failing),
                    },
                },
                "WatchdogDlq": {"Type": "AWS::SQS::Queue"},
                "WatchdogRule": {
                    "Type": "AWS::Events::Rule",
                    "Properties": {
                        "EventPattern": {
                            "source": ["aws.states"],
                            "detail-type": [STATUS_CHANGE],
                            "detail": {
                                "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                                "stateMachineArn": [{"Ref": "Machine"}],
                            },
                        },
                        "State": "ENABLED",
                        "Targets": [
                            {
                                "Arn": {"Fn::GetAtt": ["Watchdog", "Arn"]},
                                "Id": "Target0",
                                "RetryPolicy": {
                                    "MaximumEventAgeInSeconds": 3600,
                                    "MaximumRetryAttempts": retries,
                                },
                                "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["WatchdogDlq", "Arn"]}},
                            }
                        ],
                    },
                },
                "WatchdogPermission": {
                    "Type": "AWS::Lambda::Permission",
                    "Properties": {
                        "Action": "lambda:InvokeFunction",
                        "FunctionName": {"Fn::GetAtt": ["Watchdog", "Arn"]},
                        "Principal": "events.amazonaws.com",
                        "SourceArn": {"Fn::GetAtt": ["WatchdogRule", "Arn"]},
                    },
                },
                "WatchdogDlqPolicy": {
                    "Type": "AWS::SQS::QueuePolicy",
                    "Properties": {
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"Service": "events.amazonaws.com"},
                                    "Action": "sqs:SendMessage",
                                    "Resource": {"Fn::GetAtt": ["WatchdogDlq", "Arn"]},
                                    "Condition": {
                                        "ArnEquals": {
                                            "aws:SourceArn": {"Fn::GetAtt": ["WatchdogRule", "Arn"]}
                                        }
                                    },
                                }
                            ],
                        },
                        "Queues": [{"Ref": "WatchdogDlq"}],
                    },
                },
            },
            "Outputs": {
                "MachineArn": {"Value": {"Ref": "Machine"}},
                "FunctionName": {"Value": {"Ref": "Watchdog"}},
                "RuleName": {"Value": {"Ref": "WatchdogRule"}},
            },
        }
    )


def stack_status(cfn: Any, name: str) -> str:
    try:
        return str(cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
    except cfn.exceptions.ClientError:
        return "DELETE_COMPLETE"


def deploy(cfn: Any, stack: str, template: str, *, update: bool = False) -> dict[str, str]:
    (cfn.update_stack if update else cfn.create_stack)(StackName=stack, TemplateBody=template)
    wait_until(lambda: stack_status(cfn, stack).endswith("_COMPLETE"), message="the stack")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == ("UPDATE_COMPLETE" if update else "CREATE_COMPLETE"), described
    return {output["OutputKey"]: output["OutputValue"] for output in described["Outputs"]}


def test_a_cloudformation_rule_runs_the_watchdog_when_an_execution_fails(cloud: Cloud) -> None:
    cfn = cloud.client("cloudformation")
    sfn_client = cloud.client("stepfunctions")
    stack = unique("watchdog")
    outputs = deploy(cfn, stack, watchdog_template())
    targets = cloud.client("events").list_targets_by_rule(Rule=outputs["RuleName"])["Targets"]
    assert targets[0]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 4}

    first = sfn_client.start_execution(stateMachineArn=outputs["MachineArn"], name="job-w1")["executionArn"]
    wait_until(lambda: bool(logged_events(cloud, outputs["FunctionName"])), message="the watchdog to run")
    (event,) = logged_events(cloud, outputs["FunctionName"])
    assert (event["detail"]["executionArn"], event["detail"]["status"]) == (first, "FAILED")

    # A changed target updates the rule in place: same name and ARN, so the permission still applies.
    assert deploy(cfn, stack, watchdog_template(retries=2), update=True)["RuleName"] == outputs["RuleName"]
    targets = cloud.client("events").list_targets_by_rule(Rule=outputs["RuleName"])["Targets"]
    assert targets[0]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}
    second = sfn_client.start_execution(stateMachineArn=outputs["MachineArn"], name="job-w2")["executionArn"]
    wait_until(lambda: len(logged_events(cloud, outputs["FunctionName"])) == 2, message="the watchdog again")
    assert logged_events(cloud, outputs["FunctionName"])[1]["detail"]["executionArn"] == second

    cfn.delete_stack(StackName=stack)
    wait_until(
        lambda: stack_status(cfn, stack) in ("DELETE_COMPLETE", "DELETE_FAILED"), message="the deletion"
    )
    assert stack_status(cfn, stack) == "DELETE_COMPLETE"
    assert outputs["RuleName"] not in [r["Name"] for r in cloud.client("events").list_rules()["Rules"]]


# -- what targets receive (no cloud) -----------------------------------------------------------------------

EVENT = {
    "version": "0",
    "id": "e-1",
    "detail-type": "Job Failed",
    "source": "resilient-pipeline",
    "account": ACCOUNT,
    "time": "2026-11-22T15:04:05Z",
    "region": REGION,
    "resources": ["arn:aws:states:us-east-1:123456789012:execution:m:job-1"],
    "detail": {"job_id": "job-1", "attempt": 2, "reason": 'quote " here', "tags": ["a"]},
}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({}, json.dumps(EVENT)),
        ({"Input": '{"fixed": true}'}, '{"fixed": true}'),
        ({"InputPath": "$.detail"}, json.dumps(EVENT["detail"])),
        ({"InputPath": "$.resources[0]"}, '"arn:aws:states:us-east-1:123456789012:execution:m:job-1"'),
        ({"InputPath": "$.detail.missing"}, "null"),
        (
            {
                "InputTransformer": {
                    "InputPathsMap": {
                        "job": "$.detail.job_id",
                        "n": "$.detail.attempt",
                        "why": "$.detail.reason",
                    },
                    "InputTemplate": '{"job": <job>, "n": <n>, "text": "<job> failed (<why>)"}',
                }
            },
            '{"job": "job-1", "n": 2, "text": "job-1 failed (quote \\" here)"}',
        ),
        (
            {
                "InputTransformer": {
                    "InputPathsMap": {"job": "$.detail.job_id"},
                    "InputTemplate": '"Job <job> failed"',
                }
            },
            '"Job job-1 failed"',
        ),
        (
            {
                "InputTransformer": {
                    "InputTemplate": '{"rule": "<aws.events.rule-arn>", "event": <aws.events.event>}'
                }
            },
            json.dumps({"rule": "arn:r", "event": EVENT}),
        ),
    ],
)
def test_target_input(target: dict[str, Any], expected: str) -> None:
    assert events.target_input(target, EVENT, rule_arn="arn:r", rule_name="r", ingested_at=0.0) == expected


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        ({"Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction"}, True),
        (
            {
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "lambda:InvokeFunction",
                "Condition": {
                    "ArnLike": {"AWS:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/watch*"}
                },
            },
            True,
        ),
        (
            {
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "lambda:InvokeFunction",
                "Condition": {
                    "ArnLike": {"AWS:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/other"}
                },
            },
            False,
        ),
        (
            {
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "lambda:InvokeFunction",
                "Condition": {"StringEquals": {"AWS:SourceAccount": "210987654321"}},
            },
            False,
        ),
        ({"Principal": {"Service": "sns.amazonaws.com"}, "Action": "lambda:InvokeFunction"}, False),
        ({"Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:GetFunction"}, False),
        ({"Principal": "*", "Action": "lambda:*"}, True),
    ],
)
def test_lambda_resource_policy_for_eventbridge(statement: dict[str, Any], allowed: bool) -> None:
    rule = RuleRef(
        arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/watchdog",
        name="watchdog",
        bus_name="default",
        account_id=ACCOUNT,
        region=REGION,
    )

    function = SimpleNamespace(policy=SimpleNamespace(statements=[{"Effect": "Allow", **statement}]))
    assert events.lambda_permits(function, rule) is allowed
