"""The alarm evaluator: alarms created by CloudFormation (`localcloud.services.cloudwatch.cloudwatch_alarm`)
in a real moto server, read back with DescribeAlarms and evaluated on live SQS / Step Functions / Lambda
values, with SNS notifications on transitions only."""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core.config import default_user_config

from localcloud.services.cloudwatch import cloudwatch_alarm
from localcloud.services.cloudwatch.alarm_evaluator import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmEvaluator,
    Datapoint,
    MetricAlarm,
    NotEvaluable,
    evaluate_alarm,
)
from localcloud.services.stepfunctions import sfn
from tests.localcloud import support
from tests.localcloud.support import client, moto_server

REGION = "us-east-1"
ACCOUNT = "123456789012"
# The evaluator ticks every 0.2 s here: 10 s is fifty evaluations.
wait_until = functools.partial(support.wait_until, timeout=10.0)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # CloudFormation creates the alarms, as in the server process.
    undo = cloudwatch_alarm.install()
    try:
        with moto_server() as url:
            yield url
    finally:
        undo()


def alarm_resource(
    metric: str, namespace: str, dimension: tuple[str, Any], threshold: float
) -> dict[str, Any]:
    """An alarm in the shape the CDK app synthesizes (see stacks/constructs/alarms.py)."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmActions": [{"Ref": "Topic"}],
            "OKActions": [{"Ref": "Topic"}],
            "AlarmDescription": f"{metric} is over {threshold}. First: look at it.",
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
            "EvaluationPeriods": 1,
            "MetricName": metric,
            "Namespace": namespace,
            "Period": 60,
            "Statistic": "Maximum" if namespace == "AWS/SQS" else "Sum",
            "Threshold": threshold,
            "TreatMissingData": "notBreaching",
            "Tags": [{"Key": "environment", "Value": "local"}],
        },
    }


def error_rate_resource(function: Any, *, threshold: float = 10) -> dict[str, Any]:
    """A metric-math alarm in the shape the CDK app synthesizes: Errors per 100 Invocations, 3 of 5."""

    def stat(metric_id: str, metric: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Lambda",
                    "MetricName": metric,
                    "Dimensions": [{"Name": "FunctionName", "Value": function}],
                },
                "Period": 60,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmActions": [{"Ref": "Topic"}],
            "OKActions": [{"Ref": "Topic"}],
            "AlarmDescription": "Over 10% of the worker's invocations failed. First: its logs.",
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 5,
            "DatapointsToAlarm": 3,
            "Metrics": [
                {
                    "Id": "expr_1",
                    "Expression": "100 * FILL(errors, 0) / invocations",
                    "Label": "rate",
                    "ReturnData": True,
                },
                stat("errors", "Errors"),
                stat("invocations", "Invocations"),
            ],
            "Threshold": threshold,
            "TreatMissingData": "notBreaching",
        },
    }


def pipeline_template(*, age_threshold: float = 1, dlq_threshold: float = 0) -> dict[str, Any]:
    duration = alarm_resource("Duration", "AWS/Lambda", ("FunctionName", {"Ref": "WorkerFunctionName"}), 8000)
    del duration["Properties"]["Statistic"]
    duration["Properties"]["ExtendedStatistic"] = "p99"
    return {
        "Parameters": {
            "StateMachineArn": {"Type": "String"},
            "WorkerFunctionName": {"Type": "String", "Default": "worker-fn"},
        },
        "Resources": {
            "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "VisibilityTimeout": 1,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                        "maxReceiveCount": 1,
                    },
                },
            },
            "Topic": {"Type": "AWS::SNS::Topic"},
            "DeadLetterQueueNotEmpty": alarm_resource(
                "ApproximateNumberOfMessagesVisible",
                "AWS/SQS",
                ("QueueName", {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}),
                dlq_threshold,
            ),
            "QueueBacklogAge": alarm_resource(
                "ApproximateAgeOfOldestMessage",
                "AWS/SQS",
                ("QueueName", {"Fn::GetAtt": ["Queue", "QueueName"]}),
                age_threshold,
            ),
            "StateMachineExecutionsFailed": alarm_resource(
                "ExecutionsFailed", "AWS/States", ("StateMachineArn", {"Ref": "StateMachineArn"}), 0
            ),
            "WorkerErrors": alarm_resource(
                "Errors", "AWS/Lambda", ("FunctionName", {"Ref": "WorkerFunctionName"}), 0
            ),
            "WorkerDurationNearTimeout": duration,
            "WorkerErrorRate": error_rate_resource({"Ref": "WorkerFunctionName"}),
        },
        "Outputs": {
            "AlarmTopicArn": {"Value": {"Ref": "Topic"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "IngestQueueUrl": {"Value": {"Ref": "Queue"}},
        },
    }


ALARM_LOGICAL_IDS = (
    "DeadLetterQueueNotEmpty",
    "QueueBacklogAge",
    "StateMachineExecutionsFailed",
    "WorkerErrors",
    "WorkerDurationNearTimeout",
    "WorkerErrorRate",
)


class Deployed:
    """One stack of the shape above, an SQS inbox subscribed to its alarm topic, and an evaluator of the
    stack's alarms only (CloudFormation names them `<stack>-<logical id>-<suffix>`)."""

    def __init__(
        self,
        endpoint: str,
        *,
        state_machine_arn: str = "arn:aws:states:us-east-1:123456789012:stateMachine:none",
    ) -> None:
        self.endpoint = endpoint
        self.cfn = client(endpoint, "cloudformation")
        self.cw = client(endpoint, "cloudwatch")
        self.sqs = client(endpoint, "sqs")
        self.name = f"Test-{uuid.uuid4().hex[:8]}-Pipeline"
        self.function_name = f"worker-{uuid.uuid4().hex[:8]}"
        self.cfn.create_stack(
            StackName=self.name,
            TemplateBody=json.dumps(pipeline_template()),
            Parameters=[
                {"ParameterKey": "StateMachineArn", "ParameterValue": state_machine_arn},
                {"ParameterKey": "WorkerFunctionName", "ParameterValue": self.function_name},
            ],
        )
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in self.cfn.describe_stacks(StackName=self.name)["Stacks"][0]["Outputs"]
        }
        self.topic_arn = outputs["AlarmTopicArn"]
        # Outputs carry moto's canonical URLs; talk to the queues through this endpoint.
        self.dlq_url = self.local_url(outputs["DeadLetterQueueUrl"])
        self.queue_url = self.local_url(outputs["IngestQueueUrl"])
        self.inbox_url = self.sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        inbox_arn = self.sqs.get_queue_attributes(QueueUrl=self.inbox_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        client(endpoint, "sns").subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=inbox_arn)
        # The evaluator's clock runs with the real one, plus whatever a test lets pass (`later`).
        self.ahead = timedelta(0)
        self.evaluator = AlarmEvaluator(
            endpoint,
            REGION,
            interval_seconds=0.2,
            publish_interval_seconds=0,
            alarm_name_prefix=f"{self.name}-",
            clock=lambda: datetime.now(UTC) + self.ahead,
        )
        self.notifications: list[dict[str, Any]] = []

    def local_url(self, url: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"])

    def alarm_name(self, logical_id: str) -> str:
        """The alarm's name as CloudFormation records it (its physical id)."""
        resources = self.cfn.describe_stack_resources(StackName=self.name)["StackResources"]
        (resource,) = [r for r in resources if r["LogicalResourceId"] == logical_id]
        assert resource["ResourceType"] == "AWS::CloudWatch::Alarm"
        return str(resource["PhysicalResourceId"])

    def alarm(self, logical_id: str) -> dict[str, Any]:
        alarms = self.cw.describe_alarms(AlarmNames=[self.alarm_name(logical_id)])["MetricAlarms"]
        assert len(alarms) == 1
        return dict(alarms[0])

    def state(self, logical_id: str) -> str:
        return str(self.alarm(logical_id)["StateValue"])

    def read_inbox(self) -> list[dict[str, Any]]:
        """Every notification received so far (SNS envelopes unwrapped), oldest first."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return self.notifications
            for message in messages:
                envelope = json.loads(message["Body"])
                notification = json.loads(envelope["Message"])
                notification["_subject"] = envelope.get("Subject")
                self.notifications.append(notification)
                self.sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def notified(self, logical_id: str) -> list[str]:
        name = self.alarm_name(logical_id)
        return [n["NewStateValue"] for n in self.read_inbox() if n["AlarmName"] == name]


@pytest.fixture
def deployed(endpoint: str) -> Iterator[Deployed]:
    stack = Deployed(endpoint)
    try:
        yield stack
    finally:
        stack.evaluator.stop()
        stack.cfn.delete_stack(StackName=stack.name)


# -- alarms from CloudFormation ----------------------------------------------------------------------------


def test_alarms_are_created_from_the_template(deployed: Deployed) -> None:
    assert deployed.state("DeadLetterQueueNotEmpty") == INSUFFICIENT_DATA  # a new alarm, as in CloudWatch
    deployed.evaluator.evaluate()
    name = deployed.alarm_name("DeadLetterQueueNotEmpty")
    assert re.fullmatch(rf"{deployed.name}-DeadLetterQueueNotEmpty-[0-9A-Z]{{12}}", name)
    alarm = deployed.alarm("DeadLetterQueueNotEmpty")
    dlq_name = deployed.dlq_url.rsplit("/", 1)[1]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
    assert alarm["AlarmActions"] == [deployed.topic_arn]
    assert alarm["OKActions"] == [deployed.topic_arn]
    assert alarm["AlarmDescription"].startswith("ApproximateNumberOfMessagesVisible is over")
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["Statistic"]) == (
        0.0,
        "GreaterThanThreshold",
        "Maximum",
    )
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (60, 1, "notBreaching")
    assert deployed.state("DeadLetterQueueNotEmpty") == OK
    # A second pass finds the same alarms and changes nothing.
    assert deployed.evaluator.evaluate() == {deployed.alarm_name(a): OK for a in ALARM_LOGICAL_IDS}
    assert deployed.alarm_name("DeadLetterQueueNotEmpty") == name


def test_an_alarm_name_from_the_template_is_kept(endpoint: str) -> None:
    cfn, cw = client(endpoint, "cloudformation"), client(endpoint, "cloudwatch")
    name = f"Named-{uuid.uuid4().hex[:8]}"
    resource = alarm_resource("ApproximateNumberOfMessagesVisible", "AWS/SQS", ("QueueName", "q"), 0)
    resource["Properties"]["AlarmName"] = {"Fn::Sub": "${AWS::StackName}-dlq"}
    resource["Properties"]["AlarmActions"] = resource["Properties"]["OKActions"] = []
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": {"DlqAlarm": resource}}))
    try:
        (alarm,) = cw.describe_alarms(AlarmNames=[f"{name}-dlq"])["MetricAlarms"]
        assert alarm["StateValue"] == INSUFFICIENT_DATA
        (described,) = cfn.describe_stack_resources(StackName=name)["StackResources"]
        assert described["PhysicalResourceId"] == f"{name}-dlq"
    finally:
        cfn.delete_stack(StackName=name)
    assert cw.describe_alarms(AlarmNames=[f"{name}-dlq"])["MetricAlarms"] == []


def test_stack_update_keeps_state_and_stack_delete_removes_alarms(deployed: Deployed) -> None:
    deployed.evaluator.evaluate()
    deployed.sqs.send_message(QueueUrl=deployed.dlq_url, MessageBody="x")
    deployed.evaluator.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == ALARM

    deployed.cfn.update_stack(
        StackName=deployed.name,
        TemplateBody=json.dumps(pipeline_template(dlq_threshold=5)),
        Parameters=[
            {"ParameterKey": "StateMachineArn", "UsePreviousValue": True},
            {"ParameterKey": "WorkerFunctionName", "UsePreviousValue": True},
        ],
    )
    alarm = deployed.alarm("DeadLetterQueueNotEmpty")
    assert alarm["Threshold"] == 5.0
    assert alarm["StateValue"] == ALARM  # an update keeps the state, as in CloudWatch
    deployed.evaluator.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == OK  # 1 message is not over 5

    name = deployed.alarm_name("DeadLetterQueueNotEmpty")
    deployed.cfn.delete_stack(StackName=deployed.name)
    assert deployed.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    assert deployed.evaluator.evaluate() == {}


def test_every_stack_update_is_seen_not_only_the_first(deployed: Deployed) -> None:
    # moto gives stacks no LastUpdatedTime, and the status stays UPDATE_COMPLETE from the first update on.
    for threshold in (5.0, 7.0, 9.0):
        deployed.cfn.update_stack(
            StackName=deployed.name,
            TemplateBody=json.dumps(pipeline_template(dlq_threshold=threshold)),
            Parameters=[
                {"ParameterKey": "StateMachineArn", "UsePreviousValue": True},
                {"ParameterKey": "WorkerFunctionName", "UsePreviousValue": True},
            ],
        )
        assert deployed.alarm("DeadLetterQueueNotEmpty")["Threshold"] == threshold


# -- the DLQ alarm ---------------------------------------------------------------------------------------


def test_dlq_alarm_goes_to_alarm_and_back_with_notifications_on_transitions_only(deployed: Deployed) -> None:
    ev = deployed.evaluator
    ev.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == OK
    assert deployed.notified("DeadLetterQueueNotEmpty") == [OK]  # INSUFFICIENT_DATA -> OK, as in AWS

    # A request lands in the DLQ through the queue's own redrive (maxReceiveCount 1).
    deployed.sqs.send_message(QueueUrl=deployed.queue_url, MessageBody='{"job_id": "j1"}')
    deployed.sqs.receive_message(QueueUrl=deployed.queue_url, VisibilityTimeout=0, WaitTimeSeconds=0)
    assert (
        deployed.sqs.receive_message(QueueUrl=deployed.queue_url, WaitTimeSeconds=0).get("Messages") is None
    )
    ev.evaluate()
    alarm = deployed.alarm("DeadLetterQueueNotEmpty")
    assert alarm["StateValue"] == ALARM
    assert re.fullmatch(
        r"Threshold Crossed: 1 datapoint \[1\.0 \(\d\d/\d\d/\d\d \d\d:\d\d:\d\d\)\] was greater than the "
        r"threshold \(0\.0\)\.",
        alarm["StateReason"],
    )
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [1.0]
    ev.evaluate()  # still ALARM: no second notification
    assert deployed.notified("DeadLetterQueueNotEmpty") == [OK, ALARM]
    alarm_message = deployed.notifications[-1]
    assert alarm_message["OldStateValue"] == OK
    assert alarm_message["NewStateReason"] == alarm["StateReason"]
    assert alarm_message["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm_message["_subject"].startswith(f'ALARM: "{deployed.alarm_name("DeadLetterQueueNotEmpty")}')

    # The datapoint the alarm saw is in CloudWatch too.
    now = datetime.now(UTC)
    stats = deployed.cw.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": deployed.dlq_url.rsplit("/", 1)[1]}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert max(d["Maximum"] for d in stats) == 1.0

    deployed.sqs.purge_queue(QueueUrl=deployed.dlq_url)
    ev.evaluate()
    alarm = deployed.alarm("DeadLetterQueueNotEmpty")
    assert alarm["StateValue"] == OK
    assert "was not greater than the threshold (0.0)" in alarm["StateReason"]
    ev.evaluate()
    assert deployed.notified("DeadLetterQueueNotEmpty") == [OK, ALARM, OK]


def test_background_thread_raises_the_alarm(deployed: Deployed) -> None:
    deployed.evaluator.start()
    wait_until(lambda: deployed.state("DeadLetterQueueNotEmpty") == OK, message="first evaluation")
    deployed.sqs.send_message(QueueUrl=deployed.dlq_url, MessageBody="x")
    wait_until(lambda: deployed.state("DeadLetterQueueNotEmpty") == ALARM, message="ALARM")
    started = time.monotonic()
    deployed.evaluator.stop()
    assert time.monotonic() - started < 3


def test_a_stopped_evaluator_ends_its_pass_between_alarms(deployed: Deployed) -> None:
    """Its server may be gone: a pass over every alarm (each call failing slowly, with retries) would
    outlive the stop, logging failures after the cloud stopped. It stops before the next alarm instead."""
    evaluated: list[str] = []
    evaluator = deployed.evaluator
    original = evaluator._evaluate_one

    def evaluate_one(alarm: Any, *args: Any) -> str:
        evaluated.append(alarm.name)
        evaluator._stop.set()  # stop() called while this alarm was evaluated
        return str(original(alarm, *args))

    evaluator._evaluate_one = evaluate_one  # type: ignore[method-assign]
    try:
        result = evaluator.evaluate()
    finally:
        del evaluator._evaluate_one
        evaluator._stop.clear()
    assert len(evaluated) == 1 and list(result) == evaluated


# -- the queue age alarm ---------------------------------------------------------------------------------


def test_queue_age_alarm_without_disturbing_the_queue(deployed: Deployed) -> None:
    ev = deployed.evaluator
    deployed.sqs.send_message(QueueUrl=deployed.queue_url, MessageBody="waiting")
    ev.evaluate()
    assert deployed.state("QueueBacklogAge") == OK  # younger than the 1 s threshold
    deployed.ahead = timedelta(seconds=1.3)
    ev.evaluate()
    alarm = deployed.alarm("QueueBacklogAge")
    assert alarm["StateValue"] == ALARM
    assert float(json.loads(alarm["StateReasonData"])["recentDatapoints"][0]) > 1.0
    # Measuring the age neither received the message nor hid it.
    attributes = deployed.sqs.get_queue_attributes(QueueUrl=deployed.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert (
        attributes["ApproximateNumberOfMessages"],
        attributes["ApproximateNumberOfMessagesNotVisible"],
    ) == (
        "1",
        "0",
    )
    message = deployed.sqs.receive_message(
        QueueUrl=deployed.queue_url, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"][0]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    deployed.sqs.delete_message(QueueUrl=deployed.queue_url, ReceiptHandle=message["ReceiptHandle"])
    ev.evaluate()
    assert deployed.state("QueueBacklogAge") == OK


def test_set_alarm_state_by_hand_runs_the_actions_then_evaluation_resumes(deployed: Deployed) -> None:
    deployed.evaluator.evaluate()
    name = deployed.alarm_name("DeadLetterQueueNotEmpty")
    deployed.cw.set_alarm_state(AlarmName=name, StateValue=ALARM, StateReason="Testing the wiring")
    deployed.evaluator.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == ALARM  # kept until the next evaluation
    assert deployed.notified("DeadLetterQueueNotEmpty") == [OK, ALARM]
    assert deployed.notifications[-1]["NewStateReason"] == "Testing the wiring"
    deployed.evaluator.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == OK  # the DLQ is empty
    assert deployed.notified("DeadLetterQueueNotEmpty") == [OK, ALARM, OK]


def test_a_re_put_keeps_the_state_silently(deployed: Deployed) -> None:
    # CloudWatch keeps an updated alarm's state and runs no action, whether CloudFormation updates it or a
    # client puts it again (moto alone would reset it to OK).
    deployed.sqs.send_message(QueueUrl=deployed.dlq_url, MessageBody="x")
    deployed.evaluator.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == ALARM

    deployed.cfn.update_stack(
        StackName=deployed.name,
        TemplateBody=json.dumps(pipeline_template(dlq_threshold=0.5)),
        Parameters=[
            {"ParameterKey": "StateMachineArn", "UsePreviousValue": True},
            {"ParameterKey": "WorkerFunctionName", "UsePreviousValue": True},
        ],
    )
    alarm = deployed.alarm("DeadLetterQueueNotEmpty")
    assert (alarm["Threshold"], alarm["StateValue"]) == (0.5, ALARM)
    deployed.cw.put_metric_alarm(
        **{
            k: alarm[k]
            for k in (
                "AlarmName",
                "Namespace",
                "MetricName",
                "Dimensions",
                "Period",
                "EvaluationPeriods",
                "Threshold",
                "ComparisonOperator",
                "Statistic",
                "AlarmActions",
                "OKActions",
            )
        }
    )
    assert deployed.state("DeadLetterQueueNotEmpty") == ALARM
    deployed.evaluator.evaluate()
    assert deployed.state("DeadLetterQueueNotEmpty") == ALARM
    assert deployed.notified("DeadLetterQueueNotEmpty") == [ALARM]


# -- Lambda metrics, as the local runner publishes them --------------------------------------------------


def test_lambda_alarms_read_published_metrics(deployed: Deployed) -> None:
    def publish(metric: str, *values: float) -> None:
        deployed.cw.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "FunctionName", "Value": deployed.function_name}],
                    "Value": value,
                    "Unit": "Milliseconds" if metric == "Duration" else "Count",
                }
                for value in values
            ],
        )

    deployed.evaluator.evaluate()
    assert deployed.state("WorkerErrors") == OK  # no data: notBreaching
    publish("Errors", 0.0, 0.0)
    publish("Duration", 120.0, 300.0)
    deployed.evaluator.evaluate()
    assert (deployed.state("WorkerErrors"), deployed.state("WorkerDurationNearTimeout")) == (OK, OK)
    publish("Errors", 1.0)
    publish("Duration", 9500.0)
    deployed.evaluator.evaluate()
    assert deployed.state("WorkerErrors") == ALARM
    errors = deployed.alarm("WorkerErrors")
    assert "1 datapoint [1.0" in errors["StateReason"]  # Sum of 0, 0, 1
    duration = deployed.alarm("WorkerDurationNearTimeout")
    assert duration["StateValue"] == ALARM  # p99 read as the Maximum: 9500 > 8000
    assert duration["ExtendedStatistic"] == "p99"


# -- metric math ------------------------------------------------------------------------------------------


def test_a_metric_math_alarm_keeps_its_queries_and_is_evaluated_m_of_n(deployed: Deployed) -> None:
    """Errors / Invocations over five one-minute periods, 3 of 5 over 10%: a burst of two bad minutes is
    not enough, three are."""
    alarm = deployed.alarm("WorkerErrorRate")
    assert "MetricName" not in alarm
    queries = {query["Id"]: query for query in alarm["Metrics"]}
    assert queries["expr_1"]["Expression"] == "100 * FILL(errors, 0) / invocations"
    assert queries["expr_1"]["ReturnData"] is True and queries["errors"]["ReturnData"] is False
    assert queries["errors"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": deployed.function_name}
    ]
    now = datetime.now(UTC)
    deployed.ahead = timedelta(0)

    def minutes(*rates: tuple[int, int]) -> None:
        """(invocations, errors) per minute, most recent first, each in the middle of its window."""
        data = []
        for age, (invocations, errors) in enumerate(rates):
            when = now - timedelta(seconds=60 * age + 30)
            dimensions = [{"Name": "FunctionName", "Value": deployed.function_name}]
            data += [
                {
                    "MetricName": "Invocations",
                    "Dimensions": dimensions,
                    "Timestamp": when,
                    "Value": invocations,
                },
                {"MetricName": "Errors", "Dimensions": dimensions, "Timestamp": when, "Value": errors},
            ]
        deployed.cw.put_metric_data(Namespace="AWS/Lambda", MetricData=data)

    deployed.evaluator.evaluate()
    assert deployed.state("WorkerErrorRate") == OK  # no invocations: no datapoints, notBreaching
    minutes((10, 0), (10, 10), (10, 5), (10, 0), (10, 0))  # 0%, 100%, 50%, 0%, 0%
    deployed.evaluator.evaluate()
    assert deployed.state("WorkerErrorRate") == OK
    minutes((0, 10))  # the latest minute again: 10 more errors, all of its 10 invocations failed
    deployed.evaluator.evaluate()
    alarm = deployed.alarm("WorkerErrorRate")
    assert alarm["StateValue"] == ALARM
    assert "3 out of the last 5 datapoints [100.0 (" in alarm["StateReason"]
    assert "), 100.0 (" in alarm["StateReason"] and "), 50.0 (" in alarm["StateReason"]
    assert "(minimum 3 datapoints for OK -> ALARM transition)" in alarm["StateReason"]
    reason_data = json.loads(alarm["StateReasonData"])
    assert "statistic" not in reason_data and reason_data["recentDatapoints"] == [
        0.0,
        0.0,
        50.0,
        100.0,
        100.0,
    ]
    (notification,) = [
        n
        for n in deployed.read_inbox()
        if n["AlarmName"] == alarm["AlarmName"] and n["NewStateValue"] == ALARM
    ]
    assert notification["Trigger"]["Metrics"] == alarm["Metrics"]
    assert (notification["Trigger"]["EvaluationPeriods"], notification["Trigger"]["DatapointsToAlarm"]) == (
        5,
        3,
    )


def test_metric_math_the_evaluator_cannot_read_is_skipped_with_a_reason() -> None:
    described = {
        "AlarmName": "a",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a",
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 1,
        "Threshold": 0,
        "Metrics": [
            {"Id": "e1", "Expression": "ANOMALY_DETECTION_BAND(m1)", "ReturnData": True},
            {
                "Id": "m1",
                "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "M"}, "Period": 60, "Stat": "Sum"},
                "ReturnData": False,
            },
        ],
    }
    with pytest.raises(NotEvaluable, match="ANOMALY_DETECTION_BAND is not supported locally"):
        MetricAlarm.from_api(described)
    described["Metrics"][0]["Expression"] = "m1 + m2"
    with pytest.raises(NotEvaluable, match="reads m2: no such query"):
        MetricAlarm.from_api(described)


# -- the state machine alarm -----------------------------------------------------------------------------


def test_state_machine_executions_failed_alarm(endpoint: str) -> None:
    # As in the server process: executing Step Functions, whose execution metrics
    # `localcloud.services.stepfunctions.sfn` publishes (their only publisher), read back by the evaluator
    # from CloudWatch.
    stack: Deployed | None = None
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
        undo = sfn.install()
        try:
            sfn_client = client(endpoint, "stepfunctions")
            role = client(endpoint, "iam").create_role(
                RoleName=f"sfn-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"]
            machine = sfn_client.create_state_machine(
                name=f"jobs-{uuid.uuid4().hex[:8]}",
                roleArn=role,
                definition=json.dumps(
                    {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "PermanentError"}}}
                ),
            )["stateMachineArn"]
            stack = Deployed(endpoint, state_machine_arn=machine)
            stack.evaluator.evaluate()
            assert stack.state("StateMachineExecutionsFailed") == OK

            execution = sfn_client.start_execution(stateMachineArn=machine, name="job-1-a1-e0")[
                "executionArn"
            ]
            wait_until(
                lambda: sfn_client.describe_execution(executionArn=execution)["status"] == "FAILED",
                message="FAILED",
            )
            stack.evaluator.evaluate()
            alarm = stack.alarm("StateMachineExecutionsFailed")
            assert alarm["StateValue"] == ALARM
            assert "1 datapoint [1.0" in alarm["StateReason"]
            assert stack.notified("StateMachineExecutionsFailed") == [OK, ALARM]
            now = datetime.now(UTC)

            def failed_executions_published() -> float:
                stats = stack.cw.get_metric_statistics(
                    Namespace="AWS/States",
                    MetricName="ExecutionsFailed",
                    Dimensions=[{"Name": "StateMachineArn", "Value": machine}],
                    StartTime=now - timedelta(minutes=5),
                    EndTime=now + timedelta(minutes=1),
                    Period=300,
                    Statistics=["Sum"],
                )["Datapoints"]
                return float(sum(d["Sum"] for d in stats))

            assert failed_executions_published() == 1.0
            stack.evaluator.evaluate()  # the same failed execution is not published twice
            assert failed_executions_published() == 1.0
        finally:
            undo()
            if stack is not None:
                stack.cfn.delete_stack(StackName=stack.name)


# -- evaluation rules (no server) ------------------------------------------------------------------------


def _definition(**overrides: Any) -> MetricAlarm:
    fields: dict[str, Any] = {
        "name": "a",
        "arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:a",
        "namespace": "AWS/SQS",
        "metric_name": "ApproximateNumberOfMessagesVisible",
        "dimensions": (("QueueName", "q"),),
        "statistic": "Maximum",
        "extended_statistic": None,
        "period": 60,
        "evaluation_periods": 1,
        "datapoints_to_alarm": None,
        "threshold": 0.0,
        "comparison": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching",
    }
    fields.update(overrides)
    return MetricAlarm(**fields)


NOW = datetime(2026, 11, 22, 15, 4, 5, tzinfo=UTC)


def _point(value: float) -> Datapoint:
    return Datapoint(NOW, value)


def test_single_datapoint_reasons_read_like_cloudwatch() -> None:
    alarm = _definition()
    breach = evaluate_alarm(alarm, [_point(3.0)], OK, NOW)
    assert breach is not None and breach.state == ALARM
    assert breach.reason == (
        "Threshold Crossed: 1 datapoint [3.0 (22/11/26 15:04:05)] was greater than the threshold (0.0)."
    )
    fine = evaluate_alarm(alarm, [_point(0.0)], ALARM, NOW)
    assert fine is not None and fine.state == OK
    assert "was not greater than the threshold (0.0)" in fine.reason


@pytest.mark.parametrize(
    ("treat", "current", "expected"),
    [
        ("notBreaching", ALARM, OK),
        ("breaching", OK, ALARM),
        ("missing", OK, INSUFFICIENT_DATA),
        ("ignore", ALARM, None),
    ],
)
def test_missing_data_follows_treat_missing_data(treat: str, current: str, expected: str | None) -> None:
    result = evaluate_alarm(_definition(treat_missing_data=treat), [None], current, NOW)
    assert (result.state if result else None) == expected
    if treat == "notBreaching":
        assert result is not None
        assert result.reason == (
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was "
            "treated as [NonBreaching]."
        )


def test_m_out_of_n_datapoints() -> None:
    alarm = _definition(evaluation_periods=3, datapoints_to_alarm=2, threshold=5.0)
    two = evaluate_alarm(alarm, [_point(6.0), _point(1.0), _point(7.0)], OK, NOW)
    assert two is not None and two.state == ALARM
    assert two.reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [6.0 (")
    assert two.reason.endswith(
        "were greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )
    one = evaluate_alarm(alarm, [_point(6.0), _point(1.0), None], OK, NOW)
    assert one is not None and one.state == OK
