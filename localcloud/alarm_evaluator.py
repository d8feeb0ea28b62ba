"""CloudWatch alarms for the local cloud: created from the deployed templates, evaluated on live values.

moto's CloudFormation silently skips `AWS::CloudWatch::Alarm`, and moto's CloudWatch never evaluates an
alarm. This module does both jobs, talking to the emulator only through its APIs (boto3 on the endpoint),
except for one read-only peek at moto's SQS backend (see `_oldest_message_age`).

Invariants:
- Every `AWS::CloudWatch::Alarm` of every stable stack exists in CloudWatch with the template's settings
  (name: `AlarmName`, else `<StackName>-<LogicalId>-<12 upper-case alphanumerics>` like CloudFormation,
  the suffix derived from the stack id so a restart finds the same alarm). Alarms whose resource leaves
  the template, or whose stack is deleted, are deleted. A new alarm starts in INSUFFICIENT_DATA and an
  updated one keeps its state, as CloudFormation documents.
- An alarm changes state only through an evaluation, and only a change of state runs its actions: the
  SNS topics of AlarmActions / OKActions / InsufficientDataActions get CloudWatch's JSON notification.
- A notification is published only if the topic's policy (GetTopicAttributes `Policy`, evaluated by
  `localcloud.policy`) lets `cloudwatch.amazonaws.com` publish for this alarm, as SNS decides on AWS.
  Otherwise nothing is published, a warning names the alarm, the topic and why, and the attempt is
  recorded like CloudWatch's alarm history "Action" item (`action_history()`; moto has no
  DescribeAlarmHistory).
- The values evaluated are also published with PutMetricData (on change, and at least every
  `publish_interval_seconds`), so `get-metric-statistics` shows what the alarm saw.

Where the values come from (moto has no metrics of its own for these):
- AWS/SQS ApproximateNumberOfMessages{Visible,NotVisible,Delayed}: GetQueueAttributes, live.
- AWS/SQS ApproximateAgeOfOldestMessage: the oldest SentTimestamp among the queue's messages, read from
  moto's in-process SQS backend. Reading through the API would need ReceiveMessage, which increments
  receive counts (pushing messages towards the DLQ) and hides them for the visibility timeout.
- AWS/States ExecutionsFailed/TimedOut/Aborted/Succeeded: ListExecutions, counted by stopDate within each
  period. ExecutionThrottled and AWS/DynamoDB throttle events are 0: moto never throttles.
- Anything else (AWS/Lambda from the local runner, custom metrics): GetMetricStatistics over the period.
  moto ignores ExtendedStatistics, so a percentile statistic (p99) is read as the Maximum: exact up to
  100 samples per period (nearest rank), an upper bound beyond.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

from localcloud import policy
from localcloud.state import DUMMY_CREDENTIALS

logger = logging.getLogger(__name__)

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
STABLE_STACK_STATUSES = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
SQS_GAUGE_ATTRIBUTES = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
OLDEST_MESSAGE_AGE = "ApproximateAgeOfOldestMessage"
EXECUTION_STATUS_METRICS = {
    "ExecutionsFailed": "FAILED",
    "ExecutionsTimedOut": "TIMED_OUT",
    "ExecutionsAborted": "ABORTED",
    "ExecutionsSucceeded": "SUCCEEDED",
}
# Metrics whose value is 0 in the local cloud: moto never throttles.
ALWAYS_ZERO = frozenset(
    {
        ("AWS/States", "ExecutionThrottled"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/DynamoDB", "ThrottledRequests"),
    }
)
# SQS: a message received more than this many times no longer counts for the age of the oldest message.
POISON_RECEIVE_COUNT = 3
HISTORY_SECONDS = 24 * 3600
# The reason moto gives an alarm on every PutMetricAlarm (it resets the state to OK).
INITIAL_REASON = "Unchecked: Initial alarm creation"
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ca-central-1": "Canada (Central)",
    "sa-east-1": "South America (Sao Paulo)",
}
MAX_BACKOFF_SECONDS = 30.0
CLOUDWATCH_PRINCIPAL = policy.Principal.service("cloudwatch.amazonaws.com")
# Action history items kept per evaluator (newest last).
ACTION_HISTORY_LIMIT = 1000
_SUFFIX_ALPHABET = string.digits + string.ascii_uppercase


# -- alarm definitions from templates --------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmDefinition:
    """One metric alarm as the template defines it, with every reference resolved."""

    name: str
    stack_name: str
    stack_id: str
    logical_id: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str | None
    extended_statistic: str | None
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int | None
    threshold: float
    comparison: str
    treat_missing_data: str
    description: str | None = None
    unit: str | None = None
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    actions_enabled: bool = True
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def account(self) -> str:
        return self.stack_id.split(":")[4]

    @property
    def statistic_label(self) -> str:
        return self.extended_statistic or self.statistic or "Average"

    def put_metric_alarm_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "AlarmName": self.name,
            "Namespace": self.namespace,
            "MetricName": self.metric_name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            "Period": self.period,
            "EvaluationPeriods": self.evaluation_periods,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison,
            "TreatMissingData": self.treat_missing_data,
            "ActionsEnabled": self.actions_enabled,
            "AlarmActions": list(self.alarm_actions),
            "OKActions": list(self.ok_actions),
            "InsufficientDataActions": list(self.insufficient_data_actions),
        }
        if self.extended_statistic:
            kwargs["ExtendedStatistic"] = self.extended_statistic
        else:
            kwargs["Statistic"] = self.statistic or "Average"
        if self.description is not None:
            kwargs["AlarmDescription"] = self.description
        if self.datapoints_to_alarm is not None:
            kwargs["DatapointsToAlarm"] = self.datapoints_to_alarm
        if self.unit:
            kwargs["Unit"] = self.unit
        if self.tags:
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in self.tags]
        return kwargs


class Unresolvable(ValueError):
    """A template value this resolver cannot turn into a string (unsupported intrinsic, unknown ref)."""


def generated_alarm_name(stack_name: str, stack_id: str, logical_id: str) -> str:
    """CloudFormation's `<stack>-<logical id>-<12 upper-case alphanumerics>`; the suffix is derived from
    the stack id (random in AWS) so every discovery, and a restarted evaluator, gives the same name."""
    digest = int.from_bytes(hashlib.sha256(f"{stack_id}/{logical_id}".encode()).digest(), "big")
    suffix = ""
    for _ in range(12):
        digest, index = divmod(digest, len(_SUFFIX_ALPHABET))
        suffix += _SUFFIX_ALPHABET[index]
    return f"{stack_name}-{logical_id}-{suffix}"[:255]


_NO_VALUE = object()


@dataclass
class StackContext:
    """What a template's intrinsic functions can refer to in one deployed stack."""

    stack_name: str
    stack_id: str
    parameters: dict[str, str] = field(default_factory=dict)
    # logical id -> (resource type, physical id)
    resources: dict[str, tuple[str, str]] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return self.stack_id.split(":")[3]

    @property
    def account(self) -> str:
        return self.stack_id.split(":")[4]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if isinstance(value, dict):
            if len(value) == 1:
                (key, argument), *_ = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, argument)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        return value

    def resolve_str(self, value: Any) -> str:
        resolved = self.resolve(value)
        if isinstance(resolved, (dict, list)) or resolved is _NO_VALUE:
            raise Unresolvable(f"expected a string, got {resolved!r}")
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        return str(resolved)

    def _intrinsic(self, key: str, argument: Any) -> Any:  # noqa: PLR0911 (one return per function)
        if key == "Ref":
            return self.ref(str(argument))
        if key == "Fn::GetAtt":
            logical, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
            return self.get_att(str(logical), str(self.resolve(attribute)))
        if key == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(self.resolve_str(item) for item in self.resolve(items))
        if key == "Fn::ImportValue":
            name = self.resolve_str(argument)
            if name not in self.exports:
                raise Unresolvable(f"no export named {name}")
            return self.exports[name]
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve_str(index))]
        if key == "Fn::Split":
            delimiter, text = argument
            return self.resolve_str(text).split(str(delimiter))
        if key == "Fn::Sub":
            return self._sub(argument)
        if key == "Fn::FindInMap":
            name, top, second = (self.resolve_str(a) for a in argument)
            try:
                return self.mappings[name][top][second]
            except KeyError as error:
                raise Unresolvable(f"Fn::FindInMap {name}/{top}/{second} not found") from error
        raise Unresolvable(f"{key} is not supported by the local alarm evaluator")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = str(argument[0]), dict(argument[1])
        else:
            text, variables = str(argument), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self.resolve_str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name][1]
        raise Unresolvable(f"Ref {name}: no such parameter or deployed resource")

    def get_att(self, logical: str, attribute: str) -> str:
        if logical not in self.resources:
            raise Unresolvable(f"Fn::GetAtt {logical}.{attribute}: no such deployed resource")
        resource_type, physical = self.resources[logical]
        region, account = self.region, self.account
        last = physical.rstrip("/").rsplit("/", 1)[-1]
        derived: dict[tuple[str, str], str] = {
            ("AWS::SQS::Queue", "QueueName"): last,
            ("AWS::SQS::Queue", "QueueUrl"): physical,
            ("AWS::SQS::Queue", "Arn"): f"arn:aws:sqs:{region}:{account}:{last}",
            ("AWS::SNS::Topic", "TopicArn"): physical,
            ("AWS::SNS::Topic", "TopicName"): physical.rsplit(":", 1)[-1],
            ("AWS::Lambda::Function", "Arn"): f"arn:aws:lambda:{region}:{account}:function:{physical}",
            ("AWS::StepFunctions::StateMachine", "Arn"): physical,
            ("AWS::StepFunctions::StateMachine", "Name"): physical.rsplit(":", 1)[-1],
            ("AWS::DynamoDB::Table", "Arn"): f"arn:aws:dynamodb:{region}:{account}:table/{physical}",
            ("AWS::S3::Bucket", "Arn"): f"arn:aws:s3:::{physical}",
            ("AWS::IAM::Role", "Arn"): f"arn:aws:iam::{account}:role/{physical}",
            ("AWS::Logs::LogGroup", "Arn"): f"arn:aws:logs:{region}:{account}:log-group:{physical}:*",
        }
        if (resource_type, attribute) in derived:
            return derived[(resource_type, attribute)]
        if attribute == "Arn" and physical.startswith("arn:"):
            return physical
        raise Unresolvable(f"Fn::GetAtt {logical}.{attribute} ({resource_type}) is not supported")


def alarm_from_resource(
    context: StackContext, logical_id: str, resource: Mapping[str, Any]
) -> AlarmDefinition:
    """Resolve one AWS::CloudWatch::Alarm resource; raises Unresolvable for what cannot be evaluated."""
    if "Condition" in resource:
        raise Unresolvable("alarms with a Condition are not supported")
    props = dict(resource.get("Properties") or {})
    if "Metrics" in props:
        raise Unresolvable("metric-math alarms (Metrics) are not supported")
    comparison = context.resolve_str(props.get("ComparisonOperator", ""))
    if comparison not in COMPARISONS:
        raise Unresolvable(f"ComparisonOperator {comparison} is not supported")
    deployed = context.resources.get(logical_id)
    if deployed is not None and deployed[0] == "AWS::CloudWatch::Alarm":
        # CloudFormation itself created it (the server process registers a model for alarms): adopt its name.
        name = deployed[1]
    elif "AlarmName" in props:
        name = context.resolve_str(props["AlarmName"])
    else:
        name = generated_alarm_name(context.stack_name, context.stack_id, logical_id)

    def strings(key: str) -> tuple[str, ...]:
        return tuple(context.resolve_str(v) for v in context.resolve(props.get(key) or []))

    def optional(key: str) -> str | None:
        return context.resolve_str(props[key]) if key in props else None

    datapoints = optional("DatapointsToAlarm")
    return AlarmDefinition(
        name=name,
        stack_name=context.stack_name,
        stack_id=context.stack_id,
        logical_id=logical_id,
        namespace=context.resolve_str(props["Namespace"]),
        metric_name=context.resolve_str(props["MetricName"]),
        dimensions=tuple(
            (context.resolve_str(d["Name"]), context.resolve_str(d["Value"]))
            for d in context.resolve(props.get("Dimensions") or [])
        ),
        statistic=optional("Statistic"),
        extended_statistic=optional("ExtendedStatistic"),
        period=int(context.resolve_str(props.get("Period", 60))),
        evaluation_periods=int(context.resolve_str(props["EvaluationPeriods"])),
        datapoints_to_alarm=int(datapoints) if datapoints is not None else None,
        threshold=float(context.resolve_str(props["Threshold"])),
        comparison=comparison,
        treat_missing_data=optional("TreatMissingData") or "missing",
        description=optional("AlarmDescription"),
        unit=optional("Unit"),
        alarm_actions=strings("AlarmActions"),
        ok_actions=strings("OKActions"),
        insufficient_data_actions=strings("InsufficientDataActions"),
        actions_enabled=str(context.resolve(props.get("ActionsEnabled", True))).lower() != "false",
        tags=tuple(
            (context.resolve_str(t["Key"]), context.resolve_str(t["Value"]))
            for t in context.resolve(props.get("Tags") or [])
        ),
    )


# -- evaluation (pure) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Datapoint:
    timestamp: datetime
    value: float
    sample_count: float = 1.0


@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    reason_data: str


def _fmt_point(point: Datapoint) -> str:
    return f"{point.value!r} ({point.timestamp.strftime('%d/%m/%y %H:%M:%S')})"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def evaluate_alarm(
    alarm: AlarmDefinition, datapoints: list[Datapoint | None], current_state: str, now: datetime
) -> Evaluation | None:
    """The state `datapoints` (most recent period first, None = no data) put the alarm in, with a reason
    worded like CloudWatch's; None when TreatMissingData=ignore and there is nothing to go on."""
    compare, words = COMPARISONS[alarm.comparison]
    periods = len(datapoints)
    needed = min(alarm.datapoints_to_alarm or periods, periods)
    present = [p for p in datapoints if p is not None]
    missing = periods - len(present)
    treat = alarm.treat_missing_data
    breaching = [p for p in present if compare(p.value, alarm.threshold)]
    fine = [p for p in present if not compare(p.value, alarm.threshold)]
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _iso(now),
            "startDate": _iso(now - timedelta(seconds=alarm.period * periods)),
            ("extendedStatistic" if alarm.extended_statistic else "statistic"): alarm.statistic_label,
            "period": alarm.period,
            "recentDatapoints": [p.value for p in reversed(present)],
            "threshold": alarm.threshold,
            "evaluatedDatapoints": [
                {"timestamp": _iso(p.timestamp), "sampleCount": p.sample_count, "value": p.value}
                for p in present
            ],
        }
    )
    threshold = repr(alarm.threshold)

    if not present and treat in ("missing", "ignore"):
        if treat == "ignore":
            return None
        was = "was" if periods == 1 else "were"
        return Evaluation(
            INSUFFICIENT_DATA,
            f"Insufficient Data: {_plural(periods, 'datapoint')} {was} unknown.",
            reason_data,
        )

    missing_breaching = missing if treat == "breaching" else 0
    if len(breaching) + missing_breaching >= needed:
        state, shown, negation = ALARM, breaching, ""
        treated_as = "Breaching"
    else:
        state, shown, negation = OK, fine, "not "
        treated_as = "NonBreaching"

    if not shown:
        counted = missing
        reason = (
            f"Threshold Crossed: no datapoints were received for {_plural(periods, 'period')} and "
            f"{_plural(counted, 'missing datapoint')} {'was' if counted == 1 else 'were'} treated as "
            f"[{treated_as}]."
        )
    elif periods == 1:
        reason = (
            f"Threshold Crossed: 1 datapoint [{_fmt_point(shown[0])}] was {negation}{words} the threshold "
            f"({threshold})."
        )
    else:
        points = ", ".join(_fmt_point(p) for p in shown)
        was = "was" if len(shown) == 1 else "were"
        transition = f"{current_state} -> {state}" if current_state != state else f"{state}"
        minimum = needed if state == ALARM else 1
        reason = (
            f"Threshold Crossed: {len(shown)} out of the last {periods} datapoints [{points}] {was} "
            f"{negation}{words} the threshold ({threshold}) (minimum {_plural(minimum, 'datapoint')} for "
            f"{transition} transition)."
        )
    return Evaluation(state, reason, reason_data)


def aggregate(values: list[float], statistic: str) -> float | None:
    """One statistic over raw samples. Percentiles (pNN) are approximated by the maximum."""
    if not values:
        return None
    if statistic == "Sum":
        return float(sum(values))
    if statistic == "SampleCount":
        return float(len(values))
    if statistic == "Average":
        return float(sum(values) / len(values))
    if statistic == "Minimum":
        return float(min(values))
    return float(max(values))  # Maximum, pNN


def combine_statistics(buckets: list[Mapping[str, Any]], statistic: str) -> tuple[float, float] | None:
    """(value, sample count) for one period from GetMetricStatistics buckets, which moto does not align
    to the query's start: several buckets may cover one alarm period."""
    if not buckets:
        return None
    count = float(sum(b.get("SampleCount", 0.0) for b in buckets))
    total = float(sum(b.get("Sum", 0.0) for b in buckets))
    if statistic == "Sum":
        return total, count
    if statistic == "SampleCount":
        return count, count
    if statistic == "Average":
        return (total / count if count else 0.0), count
    if statistic == "Minimum":
        return float(min(b["Minimum"] for b in buckets if "Minimum" in b)), count
    return float(max(b["Maximum"] for b in buckets if "Maximum" in b)), count


# -- the evaluator ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionHistoryItem:
    """One alarm action run, as CloudWatch's alarm history records it (HistoryItemType "Action")."""

    alarm_name: str
    timestamp: datetime
    action: str
    state: str
    succeeded: bool
    summary: str
    # Why it failed, in the local cloud's words (the policy decision, or the error).
    detail: str = ""

    def as_alarm_history_item(self) -> dict[str, Any]:
        """One DescribeAlarmHistory `AlarmHistoryItems` entry (HistoryData's fields approximate CloudWatch's)."""
        data: dict[str, Any] = {
            "actionState": "Succeeded" if self.succeeded else "Failed",
            "notificationResource": self.action,
            "stateUpdateTimestamp": int(self.timestamp.timestamp() * 1000),
        }
        if self.detail:
            data["error"] = self.detail
        return {
            "AlarmName": self.alarm_name,
            "AlarmType": "MetricAlarm",
            "Timestamp": self.timestamp,
            "HistoryItemType": "Action",
            "HistorySummary": self.summary,
            "HistoryData": json.dumps(data),
        }


MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass
class _Managed:
    definition: AlarmDefinition
    configured_at: datetime
    # The state this evaluator last set or saw; a different state in CloudWatch was set by someone else.
    last_state: str


class AlarmEvaluator:
    """Discovers the alarms of deployed stacks and evaluates them, in one background thread.

    `interval_seconds` between evaluations, `discovery_interval_seconds` between template scans (a scan
    only resolves again a stack whose template, parameters, status, update time or the account's exports
    changed).
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        *,
        interval_seconds: float = 3.0,
        discovery_interval_seconds: float = 10.0,
        publish_interval_seconds: float = 60.0,
        stack_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._region = region
        self._interval = interval_seconds
        self._discovery_interval = discovery_interval_seconds
        self._publish_interval = publish_interval_seconds
        # Lets a caller (tests sharing one in-process moto) evaluate only the stacks it owns.
        self._stack_filter = stack_filter
        # Dummy credentials on purpose: whatever the host environment holds never leaves for the emulator.
        session = boto3.session.Session(
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=region,
        )
        config = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=30)
        self._cfn = session.client("cloudformation", endpoint_url=endpoint, config=config)
        self._cw = session.client("cloudwatch", endpoint_url=endpoint, config=config)
        self._sqs = session.client("sqs", endpoint_url=endpoint, config=config)
        self._sfn = session.client("stepfunctions", endpoint_url=endpoint, config=config)
        self._sns = session.client("sns", endpoint_url=endpoint, config=config)

        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._managed: dict[str, _Managed] = {}
        self._stack_cache: dict[str, tuple[tuple[str, ...], list[AlarmDefinition]]] = {}
        self._warned: set[str] = set()
        self._history: dict[MetricKey, deque[tuple[float, float]]] = {}
        self._published: dict[MetricKey, tuple[float, float]] = {}
        self._published_executions: dict[str, float] = {}
        self._queue_urls: dict[str, str] = {}
        self._action_history: deque[ActionHistoryItem] = deque(maxlen=ACTION_HISTORY_LIMIT)

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="localcloud-alarms", daemon=True)
        self._thread.start()
        logger.info("alarm evaluator started on %s", self._endpoint)

    def stop(self, timeout_seconds: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            if self._thread.is_alive():
                logger.warning("alarm evaluator still busy after stop(); left to finish on its own")
        self._thread = None
        logger.info("alarm evaluator stopped")

    def _run(self) -> None:
        next_discovery = 0.0
        backoff = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_discovery:
                    self.discover()
                    next_discovery = time.monotonic() + self._discovery_interval
                self.evaluate()
                backoff = 0.0
                self._stop.wait(self._interval)
            except Exception:
                # Never let a bad template or a hiccup of the emulator end alarm evaluation for good.
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.exception("alarm evaluation failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)

    def run_once(self) -> dict[str, str]:
        """Discover, then evaluate once; returns each managed alarm's state (for tests and tools)."""
        self.discover()
        return self.evaluate()

    @property
    def alarm_names(self) -> dict[tuple[str, str], str]:
        """(stack name, logical id) -> alarm name, for the alarms this evaluator manages."""
        with self._lock:
            return {(m.definition.stack_name, m.definition.logical_id): n for n, m in self._managed.items()}

    def action_history(self, alarm_name: str | None = None) -> list[ActionHistoryItem]:
        """The alarm actions run so far (all alarms, or one), oldest first; failed ones included."""
        with self._lock:
            return [i for i in self._action_history if alarm_name is None or i.alarm_name == alarm_name]

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # -- discovery -------------------------------------------------------------------------------------

    def discover(self) -> list[AlarmDefinition]:
        """Create, update and delete alarms so that CloudWatch matches the deployed templates."""
        with self._lock:
            stacks = self._describe_stacks()
            exports = self._list_exports()
            exports_key = hashlib.sha256(json.dumps(sorted(exports.items())).encode()).hexdigest()
            desired: dict[str, AlarmDefinition] = {}
            for stack in stacks:
                stack_id, status = stack["StackId"], stack["StackStatus"]
                if self._stack_filter is not None and not self._stack_filter(stack["StackName"]):
                    continue
                if status in STABLE_STACK_STATUSES:
                    for definition in self._stack_alarms(stack, exports, exports_key):
                        desired[definition.name] = definition
                elif status.endswith("_IN_PROGRESS") and not status.startswith("DELETE"):
                    # Mid-deployment: keep what exists until the stack settles.
                    for name, managed in self._managed.items():
                        if managed.definition.stack_id == stack_id:
                            desired[name] = managed.definition
            for definition in desired.values():
                self._ensure(definition)
            gone = [name for name in self._managed if name not in desired]
            for start in range(0, len(gone), 100):
                self._cw.delete_alarms(AlarmNames=gone[start : start + 100])
            for name in gone:
                logger.info("alarm %s deleted: its resource or stack is gone", name)
                del self._managed[name]
            return list(desired.values())

    def _describe_stacks(self) -> list[dict[str, Any]]:
        stacks: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self._cfn.describe_stacks(**kwargs)
            stacks += page.get("Stacks", [])
            if not page.get("NextToken"):
                return stacks
            kwargs = {"NextToken": page["NextToken"]}

    def _list_exports(self) -> dict[str, str]:
        exports: dict[str, str] = {}
        kwargs: dict[str, Any] = {}
        while True:
            page = self._cfn.list_exports(**kwargs)
            exports.update({e["Name"]: e["Value"] for e in page.get("Exports", [])})
            if not page.get("NextToken"):
                return exports
            kwargs = {"NextToken": page["NextToken"]}

    def _stack_alarms(
        self, stack: Mapping[str, Any], exports: dict[str, str], exports_key: str
    ) -> list[AlarmDefinition]:
        stack_id = stack["StackId"]
        template = self._template(stack_id)
        # moto sets no LastUpdatedTime, and a second update leaves the status at UPDATE_COMPLETE: what
        # was deployed (template and parameters) tells one update from the next.
        deployed = json.dumps([template, stack.get("Parameters") or []], sort_keys=True, default=str)
        cache_key = (
            str(stack.get("LastUpdatedTime") or stack.get("CreationTime")),
            stack["StackStatus"],
            exports_key,
            hashlib.sha256(deployed.encode()).hexdigest(),
        )
        cached = self._stack_cache.get(stack_id)
        if cached is not None and cached[0] == cache_key:
            return cached[1]

        alarm_resources = {
            logical: resource
            for logical, resource in (template.get("Resources") or {}).items()
            if isinstance(resource, dict) and resource.get("Type") == "AWS::CloudWatch::Alarm"
        }
        if not alarm_resources:
            self._stack_cache[stack_id] = (cache_key, [])
            return []
        context = StackContext(
            stack_name=stack["StackName"],
            stack_id=stack_id,
            parameters={
                p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", ""))
                for p in stack.get("Parameters", [])
            },
            resources={
                r["LogicalResourceId"]: (r.get("ResourceType", ""), r.get("PhysicalResourceId", ""))
                for r in self._cfn.describe_stack_resources(StackName=stack_id).get("StackResources", [])
                if r.get("LogicalResourceId") and r.get("PhysicalResourceId")
            },
            exports=exports,
            mappings=dict(template.get("Mappings") or {}),
        )
        definitions: list[AlarmDefinition] = []
        complete = True
        for logical, resource in sorted(alarm_resources.items()):
            try:
                definitions.append(alarm_from_resource(context, logical, resource))
            except (Unresolvable, KeyError, TypeError, ValueError, IndexError) as error:
                complete = False
                self._warn_once(
                    f"{stack_id}/{logical}/{error}",
                    "alarm %s in stack %s cannot be evaluated locally: %s",
                    logical,
                    stack["StackName"],
                    error,
                )
                # Keep an alarm that already exists rather than deleting it over a passing problem.
                definitions += [
                    m.definition
                    for m in self._managed.values()
                    if m.definition.stack_id == stack_id and m.definition.logical_id == logical
                ]
        if complete:
            self._stack_cache[stack_id] = (cache_key, definitions)
        return definitions

    def _template(self, stack_id: str) -> dict[str, Any]:
        body = self._cfn.get_template(StackName=stack_id).get("TemplateBody") or {}
        if isinstance(body, dict):
            return body
        try:
            parsed = json.loads(body)
        except ValueError:
            import yaml  # noqa: PLC0415 (only YAML templates need it; CDK writes JSON)

            parsed = yaml.safe_load(body)
        return parsed if isinstance(parsed, dict) else {}

    def _ensure(self, definition: AlarmDefinition) -> None:
        managed = self._managed.get(definition.name)
        if managed is not None and managed.definition == definition:
            return
        existing = self._describe_states([definition.name]).get(definition.name)
        self._cw.put_metric_alarm(**definition.put_metric_alarm_kwargs())
        # moto's PutMetricAlarm resets the state to OK; CloudWatch keeps it on update and starts a new
        # alarm in INSUFFICIENT_DATA. No actions run for either.
        # An alarm CloudFormation has just created (moto's initial reason) counts as new.
        if existing is not None and existing.get("StateReason") != INITIAL_REASON:
            state, reason = existing["StateValue"], existing.get("StateReason") or "Configuration updated"
            verb = "updated"
        else:
            state, reason = INSUFFICIENT_DATA, INITIAL_REASON
            verb = "created" if existing is None else "adopted from CloudFormation"
        self._cw.set_alarm_state(AlarmName=definition.name, StateValue=state, StateReason=reason)
        self._managed[definition.name] = _Managed(definition, datetime.now(UTC), state)
        logger.info(
            "alarm %s %s (%s %s %s %s)",
            definition.name,
            verb,
            definition.metric_name,
            definition.statistic_label,
            definition.comparison,
            definition.threshold,
        )

    def _describe_states(self, names: list[str]) -> dict[str, dict[str, Any]]:
        states: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), 100):
            response = self._cw.describe_alarms(
                AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm"]
            )
            states.update({a["AlarmName"]: a for a in response.get("MetricAlarms", [])})
        return states

    # -- evaluation ------------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, str]:
        """Evaluate every managed alarm once; set states that changed and run their actions."""
        with self._lock:
            if not self._managed:
                return {}
            now = datetime.now(UTC)
            pass_cache: dict[Any, Any] = {}
            metric_data: list[dict[str, Any]] = []
            current = self._describe_states(list(self._managed))
            result: dict[str, str] = {}
            for name, managed in list(self._managed.items()):
                alarm = managed.definition
                if name not in current:
                    # Deleted behind our back (or moto was reset): put it back at the next discovery.
                    del self._managed[name]
                    self._stack_cache.pop(alarm.stack_id, None)
                    continue
                state = current[name]["StateValue"]
                if state != managed.last_state and current[name].get("StateReason") == INITIAL_REASON:
                    # Re-put by a CloudFormation update, which resets the state in moto; CloudWatch keeps
                    # an updated alarm's state, so put it back without running any action.
                    self._cw.set_alarm_state(
                        AlarmName=name, StateValue=managed.last_state, StateReason="Configuration updated"
                    )
                    state = managed.last_state
                elif state != managed.last_state:
                    # Set from outside (`aws cloudwatch set-alarm-state`, the usual way to test the
                    # wiring): CloudWatch runs the new state's actions, then the next evaluation decides.
                    logger.info("alarm %s: set to %s from outside; running its actions", name, state)
                    outside = Evaluation(
                        state,
                        str(current[name].get("StateReason") or ""),
                        str(current[name].get("StateReasonData") or "{}"),
                    )
                    self._notify(managed, managed.last_state, outside, now)
                    managed.last_state = state
                    result[name] = state
                    continue
                try:
                    points = self._datapoints(alarm, now, pass_cache, metric_data)
                    evaluation = evaluate_alarm(alarm, points, state, now)
                    if evaluation is not None and evaluation.state != state:
                        self._cw.set_alarm_state(
                            AlarmName=name,
                            StateValue=evaluation.state,
                            StateReason=evaluation.reason,
                            StateReasonData=evaluation.reason_data,
                        )
                        logger.info(
                            "alarm %s: %s -> %s: %s", name, state, evaluation.state, evaluation.reason
                        )
                        managed.last_state = evaluation.state
                        self._notify(managed, state, evaluation, now)
                        state = evaluation.state
                except Exception:
                    logger.exception("evaluating alarm %s failed", name)
                result[name] = state
            self._put_metric_data(metric_data)
            return result

    def _datapoints(
        self,
        alarm: AlarmDefinition,
        now: datetime,
        cache: dict[Any, Any],
        metric_data: list[dict[str, Any]],
    ) -> list[Datapoint | None]:
        dims = dict(alarm.dimensions)
        key: MetricKey = (alarm.namespace, alarm.metric_name, tuple(sorted(alarm.dimensions)))
        if (
            alarm.namespace == "AWS/SQS"
            and "QueueName" in dims
            and (alarm.metric_name in SQS_GAUGE_ATTRIBUTES or alarm.metric_name == OLDEST_MESSAGE_AGE)
        ):
            if ("gauge", key) not in cache:
                cache[("gauge", key)] = self._sample_sqs(alarm, dims["QueueName"], now, key, metric_data)
            return self._gauge_windows(alarm, key, now, cache[("gauge", key)])
        if (
            alarm.namespace == "AWS/States"
            and alarm.metric_name in EXECUTION_STATUS_METRICS
            and ("StateMachineArn" in dims)
        ):
            status = EXECUTION_STATUS_METRICS[alarm.metric_name]
            cache_key = ("executions", dims["StateMachineArn"], status)
            if cache_key not in cache:
                cache[cache_key] = self._stopped_executions(
                    dims["StateMachineArn"], status, key, now, metric_data
                )
            return self._count_windows(alarm, now, cache[cache_key])
        if (alarm.namespace, alarm.metric_name) in ALWAYS_ZERO:
            if ("gauge", key) not in cache:
                cache[("gauge", key)] = 0.0
                self._record_gauge(key, 0.0, now, "Count", metric_data)
            return self._gauge_windows(alarm, key, now, 0.0)
        return self._cloudwatch_windows(alarm, now)

    # SQS gauges: the most recent period is the live value; older periods come from recorded samples.

    def _sample_sqs(
        self,
        alarm: AlarmDefinition,
        queue_name: str,
        now: datetime,
        key: MetricKey,
        metric_data: list[dict[str, Any]],
    ) -> float | None:
        url = self._queue_url(queue_name, alarm.account)
        if url is None:
            return None
        value: float | None
        if alarm.metric_name == OLDEST_MESSAGE_AGE:
            value = self._oldest_message_age(alarm.account, queue_name, now)
            unit = "Seconds"
        else:
            attribute = SQS_GAUGE_ATTRIBUTES[alarm.metric_name]
            try:
                attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])
            except self._sqs.exceptions.QueueDoesNotExist:
                self._queue_urls.pop(queue_name, None)
                return None
            value = float(attributes["Attributes"].get(attribute, 0))
            unit = "Count"
        if value is not None:
            self._record_gauge(key, value, now, unit, metric_data)
        return value

    def _queue_url(self, queue_name: str, account: str) -> str | None:
        if queue_name not in self._queue_urls:
            try:
                response = self._sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)
            except self._sqs.exceptions.QueueDoesNotExist:
                return None
            self._queue_urls[queue_name] = str(response["QueueUrl"])
        return self._queue_urls[queue_name]

    def _oldest_message_age(self, account: str, queue_name: str, now: datetime) -> float | None:
        """Seconds since the oldest live message was sent, from moto's backend in this process.

        A read-only look at the queue's message list: no receive count, visibility or order changes.
        Messages received more than 3 times are skipped, as SQS does for this metric; expired ones too.
        """
        from moto.sqs.models import sqs_backends  # noqa: PLC0415 (moto only exists in the server process)

        queue = sqs_backends[account][self._region].queues.get(queue_name)
        if queue is None:
            self._warn_once(
                f"age/{queue_name}",
                "queue %s exists but not in this process's moto: %s is only computed when the evaluator "
                "runs inside the server process; treated as missing data",
                queue_name,
                OLDEST_MESSAGE_AGE,
            )
            return None
        with queue._messages_lock:
            messages = list(queue._messages)
        now_ms = now.timestamp() * 1000
        retention_ms = float(getattr(queue, "message_retention_period", 0) or 0) * 1000
        alive = [
            m
            for m in messages
            if m.sent_timestamp and (not retention_ms or m.sent_timestamp + retention_ms > now_ms)
        ]
        counted = [m for m in alive if m.approximate_receive_count <= POISON_RECEIVE_COUNT] or alive
        if not counted:
            return 0.0
        return max(0.0, (now_ms - min(float(m.sent_timestamp or 0) for m in counted)) / 1000)

    def _record_gauge(
        self, key: MetricKey, value: float, now: datetime, unit: str, metric_data: list[dict[str, Any]]
    ) -> None:
        epoch = now.timestamp()
        history = self._history.setdefault(key, deque(maxlen=20_000))
        history.append((epoch, value))
        while history and history[0][0] < epoch - HISTORY_SECONDS:
            history.popleft()
        last = self._published.get(key)
        if last is None or last[1] != value or epoch - last[0] >= self._publish_interval:
            self._published[key] = (epoch, value)
            metric_data.append(self._metric_datum(key, value, now, unit))

    def _gauge_windows(
        self, alarm: AlarmDefinition, key: MetricKey, now: datetime, live: float | None
    ) -> list[Datapoint | None]:
        points: list[Datapoint | None] = [Datapoint(now, live) if live is not None else None]
        end = now.timestamp() - alarm.period
        history = self._history.get(key, deque())
        statistic = alarm.statistic_label
        for _ in range(1, alarm.evaluation_periods):
            start = end - alarm.period
            values = [v for t, v in history if start <= t < end]
            value = aggregate(values, statistic)
            points.append(
                Datapoint(datetime.fromtimestamp(start, UTC), value, float(len(values)))
                if value is not None
                else None
            )
            end = start
        return points

    # Step Functions: terminal executions counted by stop time.

    def _stopped_executions(
        self,
        state_machine_arn: str,
        status: str,
        key: MetricKey,
        now: datetime,
        metric_data: list[dict[str, Any]],
    ) -> list[float]:
        stops: list[float] = []
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "statusFilter": status}
        try:
            for _ in range(20):  # at most 2,000 executions per status: plenty for a local cloud
                page = self._sfn.list_executions(**kwargs)
                for execution in page.get("executions", []):
                    stop = execution.get("stopDate")
                    if stop is None:
                        continue
                    epoch = stop.timestamp()
                    stops.append(epoch)
                    arn = execution["executionArn"]
                    if arn not in self._published_executions and epoch > now.timestamp() - HISTORY_SECONDS:
                        self._published_executions[arn] = epoch
                        metric_data.append(self._metric_datum(key, 1.0, stop, "Count"))
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except self._sfn.exceptions.StateMachineDoesNotExist:
            return []
        horizon = now.timestamp() - HISTORY_SECONDS
        for arn in [a for a, t in self._published_executions.items() if t < horizon]:
            del self._published_executions[arn]
        return stops

    def _count_windows(
        self, alarm: AlarmDefinition, now: datetime, stops: list[float]
    ) -> list[Datapoint | None]:
        points: list[Datapoint | None] = []
        # The current period includes this very second (a failure that just happened counts now).
        end = now.timestamp() + 1
        statistic = alarm.statistic_label
        for _ in range(alarm.evaluation_periods):
            start = end - alarm.period
            count = sum(1 for t in stops if start <= t < end)
            value = float(count) if statistic in ("Sum", "SampleCount") else (1.0 if count else 0.0)
            points.append(Datapoint(datetime.fromtimestamp(start, UTC), value, float(count)))
            end = start
        return points

    # Everything else: whatever has been published to CloudWatch (AWS/Lambda by the runner, ...).

    def _cloudwatch_windows(self, alarm: AlarmDefinition, now: datetime) -> list[Datapoint | None]:
        points: list[Datapoint | None] = []
        end = now + timedelta(seconds=1)
        statistic = alarm.extended_statistic or alarm.statistic or "Average"
        if alarm.extended_statistic:
            self._warn_once(
                f"pstat/{alarm.name}",
                "alarm %s uses %s: the local cloud evaluates it as the period's Maximum",
                alarm.name,
                alarm.extended_statistic,
            )
        for _ in range(alarm.evaluation_periods):
            start = end - timedelta(seconds=alarm.period)
            kwargs: dict[str, Any] = {
                "Namespace": alarm.namespace,
                "MetricName": alarm.metric_name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in alarm.dimensions],
                "StartTime": start,
                "EndTime": end,
                "Period": alarm.period,
                "Statistics": ["SampleCount", "Sum", "Minimum", "Maximum"],
            }
            if alarm.unit:
                kwargs["Unit"] = alarm.unit
            buckets = self._cw.get_metric_statistics(**kwargs).get("Datapoints", [])
            combined = combine_statistics(buckets, statistic)
            points.append(Datapoint(start, combined[0], combined[1]) if combined is not None else None)
            end = start
        return points

    # -- output ----------------------------------------------------------------------------------------

    @staticmethod
    def _metric_datum(key: MetricKey, value: float, timestamp: datetime, unit: str) -> dict[str, Any]:
        namespace, metric_name, dimensions = key
        return {
            "Namespace": namespace,
            "MetricName": metric_name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in dimensions],
            "Timestamp": timestamp,
            "Value": value,
            "Unit": unit,
        }

    def _put_metric_data(self, data: list[dict[str, Any]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for datum in data:
            by_namespace.setdefault(datum.pop("Namespace"), []).append(datum)
        for namespace, items in by_namespace.items():
            for start in range(0, len(items), 500):
                try:
                    self._cw.put_metric_data(Namespace=namespace, MetricData=items[start : start + 500])
                except Exception:
                    logger.exception("publishing %d %s datapoints failed", len(items), namespace)

    def _notify(self, managed: _Managed, old_state: str, evaluation: Evaluation, now: datetime) -> None:
        alarm = managed.definition
        if not alarm.actions_enabled:
            return
        actions = {
            ALARM: alarm.alarm_actions,
            OK: alarm.ok_actions,
            INSUFFICIENT_DATA: alarm.insufficient_data_actions,
        }[evaluation.state]
        if not actions:
            return
        region_name = REGION_NAMES.get(self._region, self._region)
        alarm_arn = f"arn:aws:cloudwatch:{self._region}:{alarm.account}:alarm:{alarm.name}"
        message = json.dumps(
            {
                "AlarmName": alarm.name,
                "AlarmDescription": alarm.description,
                "AWSAccountId": alarm.account,
                "AlarmConfigurationUpdatedTimestamp": _iso(managed.configured_at),
                "NewStateValue": evaluation.state,
                "NewStateReason": evaluation.reason,
                "StateChangeTime": _iso(now),
                "Region": region_name,
                "AlarmArn": alarm_arn,
                "OldStateValue": old_state,
                "OKActions": list(alarm.ok_actions),
                "AlarmActions": list(alarm.alarm_actions),
                "InsufficientDataActions": list(alarm.insufficient_data_actions),
                "Trigger": {
                    "MetricName": alarm.metric_name,
                    "Namespace": alarm.namespace,
                    "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
                    "Statistic": (alarm.extended_statistic or alarm.statistic or "Average").upper(),
                    "Unit": alarm.unit,
                    "Dimensions": [{"value": v, "name": n} for n, v in alarm.dimensions],
                    "Period": alarm.period,
                    "EvaluationPeriods": alarm.evaluation_periods,
                    "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
                    "ComparisonOperator": alarm.comparison,
                    "Threshold": alarm.threshold,
                    "TreatMissingData": alarm.treat_missing_data,
                    "EvaluateLowSampleCountPercentile": "",
                },
            }
        )
        # SNS subjects are ASCII and at most 100 characters; CloudWatch truncates long alarm names.
        subject = f'{evaluation.state}: "{alarm.name}" in {region_name}'
        subject = subject.encode("ascii", "replace").decode()[:100]
        for arn in actions:
            if not arn.startswith("arn:aws:sns:"):
                self._warn_once(f"action/{arn}", "alarm action %s is not supported locally; skipped", arn)
                continue
            try:
                denied = self._publish_denied(alarm, alarm_arn, arn, now)
                if denied is not None:
                    logger.warning(
                        "alarm %s: %s notification NOT published to %s: the topic policy does not let "
                        "cloudwatch.amazonaws.com publish for this alarm: %s",
                        alarm.name,
                        evaluation.state,
                        arn,
                        denied,
                    )
                    self._record_action(
                        alarm,
                        arn,
                        evaluation.state,
                        now,
                        error=f"Resource: {alarm_arn} is not authorized to perform: SNS:Publish on "
                        f"resource: {arn}",
                        detail=f"topic policy: {denied}",
                    )
                    continue
                self._sns.publish(TopicArn=arn, Subject=subject, Message=message)
                logger.info("alarm %s: %s notification sent to %s", alarm.name, evaluation.state, arn)
                self._record_action(alarm, arn, evaluation.state, now)
            except Exception as error:
                logger.exception("alarm %s: publishing to %s failed", alarm.name, arn)
                self._record_action(alarm, arn, evaluation.state, now, error=str(error), detail=str(error))

    def _publish_denied(
        self, alarm: AlarmDefinition, alarm_arn: str, topic_arn: str, now: datetime
    ) -> str | None:
        """Why SNS would refuse CloudWatch's publish of this alarm's notification (None: it would not).

        The request as CloudWatch makes it on AWS: service principal cloudwatch.amazonaws.com, over TLS,
        on behalf of the alarm (aws:SourceArn) and its account (aws:SourceAccount, and SNS's older
        aws:SourceOwner, which SNS's default topic policy checks: same-account alarms publish to a topic
        that has only the default policy).
        """
        attributes = self._sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        request = policy.Request(
            principal=CLOUDWATCH_PRINCIPAL,
            action="sns:Publish",
            resource=topic_arn,
            context={
                "aws:SourceAccount": alarm.account,
                "aws:SourceOwner": alarm.account,
                "aws:SourceArn": alarm_arn,
                "aws:SecureTransport": "true",
                "aws:PrincipalIsAWSService": "true",
                "aws:PrincipalServiceName": CLOUDWATCH_PRINCIPAL.identifier,
                "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "aws:EpochTime": str(int(now.timestamp())),
            },
        )
        try:
            decision = policy.evaluate(attributes.get("Policy") or "", request)
        except policy.PolicyError as error:
            # SNS refuses such a policy on AWS, so it can only be a hand-made one here. Fail closed.
            return f"the policy cannot be read: {error}"
        return None if decision.allowed else decision.reason

    def _record_action(
        self,
        alarm: AlarmDefinition,
        topic_arn: str,
        state: str,
        now: datetime,
        *,
        error: str | None = None,
        detail: str = "",
    ) -> None:
        # CloudWatch's own wording for the alarm history (AWS re:Post, "cloudwatch-receive-sns-for-alarm-trigger").
        if error is None:
            summary = f"Successfully executed action {topic_arn}"
        else:
            summary = f'Failed to execute action {topic_arn}. Received error: "{error}"'
        with self._lock:
            self._action_history.append(
                ActionHistoryItem(alarm.name, now, topic_arn, state, error is None, summary, detail)
            )
