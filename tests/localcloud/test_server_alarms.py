"""Alarms and metrics in the local cloud's server process (`python -m localcloud.core.server`), started as
`pipeline local up` starts it: every patch at once (Step Functions, Lambda runner, chaos, EventBridge,
topic policy, event invoke config, SQS poller, alarm evaluator).

One stack, deployed through CloudFormation: a function that always fails, a state machine that invokes it
(so one execution fails once), an SQS queue, an alarm topic whose CDK policy lets CloudWatch publish, an
inbox subscribed to it, and three alarms (ExecutionsFailed, the function's Errors, the queue's depth). The
server evaluates the alarms every 3 s on its own; the tests only watch through the API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from localcloud.core import cloud
from localcloud.core.state import LocalCloudState
from tests.localcloud.support import cdk_topic_policy, client, role_and_function, wait_until

ALARM, OK = "ALARM", "OK"
# The server evaluates every 3 s; a transition takes at most two evaluations.
EVALUATION_TIMEOUT = 30.0

FAILING_HANDLER = """
class InputNotFoundError(Exception):
    pass


def handler(event, context):
    raise InputNotFoundError("no input for " + event["job_id"])
"""


def alarm(
    metric: str, namespace: str, dimension: tuple[str, Any], *, statistic: str, threshold: float = 0
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmActions": [{"Ref": "Topic"}],
            "OKActions": [{"Ref": "Topic"}],
            "AlarmDescription": f"{metric} is over {threshold}",
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
            "EvaluationPeriods": 1,
            "MetricName": metric,
            "Namespace": namespace,
            "Period": 60,
            "Statistic": statistic,
            "Threshold": threshold,
            "TreatMissingData": "notBreaching",
        },
    }


def template(*, failed_threshold: float = 0) -> str:
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${Function.Arn}", "Payload": {"job_id.$": "$.job_id"}},
                "End": True,
            }
        },
    }
    return json.dumps(
        {
            "Resources": {
                **role_and_function(
                    FAILING_HANDLER,
                    {"Action": "lambda:InvokeFunction", "Resource": {"Fn::GetAtt": ["Function", "Arn"]}},
                ),
                "Machine": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                        "DefinitionString": {"Fn::Sub": json.dumps(definition)},
                    },
                },
                "Watched": {"Type": "AWS::SQS::Queue"},
                "Inbox": {"Type": "AWS::SQS::Queue"},
                "Topic": {
                    "Type": "AWS::SNS::Topic",
                    "Properties": {
                        "Subscription": [{"Protocol": "sqs", "Endpoint": {"Fn::GetAtt": ["Inbox", "Arn"]}}]
                    },
                },
                "TopicPolicy": {
                    "Type": "AWS::SNS::TopicPolicy",
                    "Properties": {
                        "PolicyDocument": cdk_topic_policy(allow_cloudwatch=True),
                        "Topics": [{"Ref": "Topic"}],
                    },
                },
                "ExecutionsFailedAlarm": alarm(
                    "ExecutionsFailed",
                    "AWS/States",
                    ("StateMachineArn", {"Ref": "Machine"}),
                    statistic="Sum",
                    threshold=failed_threshold,
                ),
                "FunctionErrorsAlarm": alarm(
                    "Errors", "AWS/Lambda", ("FunctionName", {"Ref": "Function"}), statistic="Sum"
                ),
                "WatchedNotEmptyAlarm": alarm(
                    "ApproximateNumberOfMessagesVisible",
                    "AWS/SQS",
                    ("QueueName", {"Fn::GetAtt": ["Watched", "QueueName"]}),
                    statistic="Maximum",
                ),
            },
            "Outputs": {
                "MachineArn": {"Value": {"Ref": "Machine"}},
                "FunctionName": {"Value": {"Ref": "Function"}},
                "InboxName": {"Value": {"Fn::GetAtt": ["Inbox", "QueueName"]}},
            },
        }
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("server-alarms")
    yield path
    cloud.down(path)


@pytest.fixture(scope="module")
def server(home: Path) -> LocalCloudState:
    return cloud.up(home=home)


@dataclass
class Stack:
    endpoint: str
    name: str
    outputs: dict[str, str]
    alarm_names: dict[str, str]
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return client(self.endpoint, service)

    def alarm(self, logical_id: str) -> dict[str, Any]:
        (found,) = self.client("cloudwatch").describe_alarms(AlarmNames=[self.alarm_names[logical_id]])[
            "MetricAlarms"
        ]
        return dict(found)

    def state(self, logical_id: str) -> str:
        return str(self.alarm(logical_id)["StateValue"])

    def notified(self, logical_id: str) -> list[str]:
        """The states notified so far for one alarm, oldest first (SNS envelopes read from the inbox)."""
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=self.outputs["InboxName"])["QueueUrl"]
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                self.notifications.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        name = self.alarm_names[logical_id]
        return [n["NewStateValue"] for n in self.notifications if n["AlarmName"] == name]

    def wait_for_state(self, logical_id: str, state: str) -> None:
        wait_until(
            lambda: self.state(logical_id) == state,
            timeout=EVALUATION_TIMEOUT,
            message=f"{logical_id} in {state}",
        )

    def two_evaluations(self) -> None:
        """Return once the server has run at least two whole evaluation passes from now on.

        A state set by hand runs its actions at the next pass and is evaluated again (back to OK: the
        queue is empty) at the pass after: by then every pass before has finished, metrics included.
        """
        self.client("cloudwatch").set_alarm_state(
            AlarmName=self.alarm_names["WatchedNotEmptyAlarm"],
            StateValue=ALARM,
            StateReason="Testing the wiring",
        )
        self.wait_for_state("WatchedNotEmptyAlarm", OK)

    def metric_sum(self, namespace: str, metric: str, dimension: dict[str, str]) -> float:
        now = datetime.now(UTC)
        points = self.client("cloudwatch").get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[dimension],
            StartTime=now - timedelta(minutes=30),
            EndTime=now + timedelta(minutes=5),
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        return float(sum(point["Sum"] for point in points))


@pytest.fixture(scope="module")
def stack(server: LocalCloudState) -> Stack:
    cfn = client(server.endpoint, "cloudformation")
    name = f"Alarms-{uuid.uuid4().hex[:8]}"
    cfn.create_stack(StackName=name, TemplateBody=template())
    described = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    return Stack(
        endpoint=server.endpoint,
        name=name,
        outputs={o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]},
        alarm_names={
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in resources
            if r["ResourceType"] == "AWS::CloudWatch::Alarm"
        },
    )


@pytest.fixture(scope="module")
def failed_once(stack: Stack) -> str:
    """One execution that failed (its only task's function raised), and the alarms that saw it."""
    for logical_id in ("ExecutionsFailedAlarm", "FunctionErrorsAlarm"):
        stack.wait_for_state(logical_id, OK)
    sfn = stack.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=stack.outputs["MachineArn"], name="job-1", input=json.dumps({"job_id": "job-1"})
    )["executionArn"]
    wait_until(
        lambda: sfn.describe_execution(executionArn=execution)["status"] != "RUNNING",
        timeout=30,
        message="the execution to end",
    )
    assert sfn.describe_execution(executionArn=execution)["status"] == "FAILED"
    stack.wait_for_state("ExecutionsFailedAlarm", ALARM)
    stack.wait_for_state("FunctionErrorsAlarm", ALARM)
    return str(execution)


def test_alarms_come_from_the_template_and_notify_their_first_evaluation(stack: Stack) -> None:
    assert set(stack.alarm_names) == {"ExecutionsFailedAlarm", "FunctionErrorsAlarm", "WatchedNotEmptyAlarm"}
    for logical_id, name in stack.alarm_names.items():
        assert name.startswith(f"{stack.name}-{logical_id}-")
    executions = stack.alarm("ExecutionsFailedAlarm")
    assert executions["Dimensions"] == [{"Name": "StateMachineArn", "Value": stack.outputs["MachineArn"]}]
    assert executions["AlarmActions"] == executions["OKActions"]
    assert executions["AlarmActions"][0].startswith("arn:aws:sns:")
    for logical_id in stack.alarm_names:
        stack.wait_for_state(logical_id, OK)
    wait_until(
        lambda: all(stack.notified(logical_id) == [OK] for logical_id in stack.alarm_names),
        timeout=EVALUATION_TIMEOUT,
        message="one OK notification per alarm (INSUFFICIENT_DATA -> OK)",
    )


def test_one_failed_execution_is_counted_once(stack: Stack, failed_once: str) -> None:
    stack.two_evaluations()
    machine = {"Name": "StateMachineArn", "Value": stack.outputs["MachineArn"]}
    function = {"Name": "FunctionName", "Value": stack.outputs["FunctionName"]}
    assert stack.metric_sum("AWS/States", "ExecutionsStarted", machine) == 1.0
    assert stack.metric_sum("AWS/States", "ExecutionsFailed", machine) == 1.0
    assert stack.metric_sum("AWS/Lambda", "Errors", function) == 1.0
    executions = stack.alarm("ExecutionsFailedAlarm")
    assert executions["StateValue"] == ALARM
    assert "1 datapoint [1.0" in executions["StateReason"]
    assert stack.notified("ExecutionsFailedAlarm") == [OK, ALARM]
    assert stack.notified("FunctionErrorsAlarm") == [OK, ALARM]


def test_a_state_set_by_hand_runs_its_actions_then_evaluation_resumes(stack: Stack) -> None:
    before = stack.notified("WatchedNotEmptyAlarm")
    stack.two_evaluations()
    assert stack.notified("WatchedNotEmptyAlarm") == [*before, ALARM, OK]
    by_hand = [n for n in stack.notifications if n["NewStateReason"] == "Testing the wiring"]
    assert by_hand[-1]["AlarmName"] == stack.alarm_names["WatchedNotEmptyAlarm"]


def test_a_redeploy_keeps_the_alarm_state_and_runs_no_action(stack: Stack, failed_once: str) -> None:
    cfn = stack.client("cloudformation")
    notified = stack.notified("ExecutionsFailedAlarm")
    cfn.update_stack(StackName=stack.name, TemplateBody=template(failed_threshold=0.5))
    assert cfn.describe_stacks(StackName=stack.name)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    updated = stack.alarm("ExecutionsFailedAlarm")
    # CloudWatch keeps an updated alarm's state; the new threshold still has 1 failure over it.
    assert (updated["Threshold"], updated["StateValue"]) == (0.5, ALARM)
    stack.two_evaluations()
    assert stack.state("ExecutionsFailedAlarm") == ALARM
    assert stack.notified("ExecutionsFailedAlarm") == notified


def test_server_log_has_no_tracebacks(home: Path, stack: Stack) -> None:
    # Kept last: nothing above may have failed inside the server (the evaluator logs its failures).
    assert "Traceback" not in (home / "server.log").read_text()
