"""EventBridge in the local cloud: events that services emit and clients put, delivered to targets as AWS does
(Step Functions status-change events, rule matching, delivery with retries and dead-letter queues, metrics).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceseventseventspy
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
import itertools
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.awslambda.models import lambda_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.exceptions import ServiceException
from moto.events.models import EventPattern, Rule, events_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.responses import get_backend as stepfunctions_backend
from moto.utilities.arns import parse_arn
from werkzeug.exceptions import HTTPException

from localcloud.services.iam import enforcement
from localcloud.services.iam.authorization import Check
from localcloud.services.iam.policy import Principal, Request
from localcloud.services.iam.policy import evaluate as evaluate_policy
from localcloud.services.stepfunctions import sfn
from localcloud.services.stepfunctions import versions as sfn_versions

LOG = logging.getLogger(__name__)

Undo = Callable[[], None]

ENABLED_STATES = frozenset({"ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"})
# A target's RetryPolicy when it has none (EventBridge's defaults).
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 185
DEFAULT_MAXIMUM_EVENT_AGE_SECONDS = 86_400
# EventBridge does not publish its backoff schedule; these keep retries visible on a laptop.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
DELIVERY_WORKERS = 2

STATES_SOURCE = "aws.states"
STATES_DETAIL_TYPE = "Step Functions Execution Status Change"
# Targets delivered here; any other kind is left to moto's own code.
NATIVE_TARGET_SERVICES = frozenset({"sqs", "sns", "lambda", "states"})


# -- what a target receives -------------------------------------------------------------------------------


def aws_time(moment: dt.datetime | float | str | None) -> str:
    """An event's `time` as EventBridge writes it: `2026-11-22T15:04:05Z` (UTC, whole seconds)."""
    if moment is None:
        moment = time.time()
    if isinstance(moment, str):
        return moment
    if isinstance(moment, dt.datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.datetime.fromtimestamp(float(moment), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def aws_event(moto_event: dict[str, Any]) -> dict[str, Any]:
    """The event as a target receives it, from the message moto's PutEvents builds (`time` as epoch
    seconds, plus an internal `ingestion-time`)."""
    event = {key: value for key, value in moto_event.items() if key != "ingestion-time"}
    event["time"] = aws_time(moto_event.get("time"))
    return event


_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def json_path(document: Any, path: str) -> Any:
    """EventBridge's JSON paths (`$`, `$.detail.status`, `$.resources[0]`); None when absent."""
    if not path.startswith("$"):
        raise ValueError(f"not a JSON path: {path!r}")
    rest = path[1:]
    value = document
    position = 0
    while position < len(rest):
        step = _PATH_STEP.match(rest, position)
        if step is None:
            raise ValueError(f"unsupported JSON path: {path!r}")
        key, index, quoted, double_quoted = step.groups()
        name = key if key is not None else quoted if quoted is not None else double_quoted
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            value = value.get(name) if isinstance(value, dict) else None
        position = step.end()
    return value


def _inside_json_string(template: str, position: int) -> bool:
    quotes = 0
    escaped = False
    for char in template[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quotes += 1
    return quotes % 2 == 1


def render_input_template(template: str, values: dict[str, Any]) -> str:
    """`InputTemplate` with each `<name>` replaced: inside a JSON string as escaped text, elsewhere as a
    JSON value (null when its path matched nothing), as EventBridge does."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        if _inside_json_string(template, match.start()):
            text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
            return json.dumps(text)[1:-1]
        return json.dumps(value)

    return re.sub(r"<([A-Za-z0-9_.\-]+)>", replace, template)


def target_input(
    target: dict[str, Any], event: dict[str, Any], *, rule_arn: str, rule_name: str, ingested_at: float
) -> str:
    """The text a target receives for `event`: the whole event, or its Input, InputPath or
    InputTransformer."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        return json.dumps(json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if transformer:
        values: dict[str, Any] = {
            name: json_path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        values.update(
            {
                "aws.events.rule-arn": rule_arn,
                "aws.events.rule-name": rule_name,
                "aws.events.event.ingestion-time": aws_time(ingested_at),
                "aws.events.event": event,
                "aws.events.event.json": event,
            }
        )
        return render_input_template(str(transformer.get("InputTemplate", "")), values)
    return json.dumps(event)


# -- matching ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RuleRef:
    """The rule a delivery came from (moto's Rule may change or vanish while a delivery is pending)."""

    arn: str
    name: str
    bus_name: str
    account_id: str
    region: str

    @classmethod
    def of(cls, rule: Any) -> RuleRef:
        return cls(
            arn=str(rule.arn),
            name=str(rule.name),
            bus_name=str(rule.event_bus_name),
            account_id=str(rule.account_id),
            region=str(rule.region_name),
        )


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    maximum_retry_attempts: int = DEFAULT_MAXIMUM_RETRY_ATTEMPTS
    maximum_event_age_seconds: float = DEFAULT_MAXIMUM_EVENT_AGE_SECONDS

    @classmethod
    def of(cls, target: dict[str, Any]) -> RetryPolicy:
        policy = target.get("RetryPolicy") or {}
        return cls(
            maximum_retry_attempts=int(policy.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)),
            maximum_event_age_seconds=float(
                policy.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE_SECONDS)
            ),
        )


@dataclass(kw_only=True)
class Delivery:
    """One event for one target of one rule, with its attempts so far."""

    rule: RuleRef
    target: dict[str, Any]
    event: dict[str, Any]
    # Epoch seconds when EventBridge took the event: MaximumEventAgeInSeconds counts from here.
    ingested_at: float
    attempts: int = 0

    @property
    def target_arn(self) -> str:
        return str(self.target["Arn"])

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.of(self.target)

    @property
    def dead_letter_arn(self) -> str | None:
        arn = (self.target.get("DeadLetterConfig") or {}).get("Arn")
        return str(arn) if arn else None


def pattern_matches(pattern: str, document: dict[str, Any]) -> bool:
    """Whether an event pattern (EventBridge's syntax; moto's matcher, as for rules) matches `document`:
    also what Lambda's event filtering (FilterCriteria) applies to a record."""
    return bool(EventPattern.load(pattern).matches_event(document))  # type: ignore[arg-type]


def matching_deliveries(rule: Any, moto_event: dict[str, Any]) -> list[Delivery]:
    """The deliveries `moto_event` makes through `rule`: one per target if the rule is enabled and its
    pattern matches, else none. The only place that decides whether a rule matches."""
    if rule.state not in ENABLED_STATES or not rule.event_pattern.matches_event(moto_event):
        return []
    ingested = moto_event.get("ingestion-time")
    event = aws_event(moto_event)
    reference = RuleRef.of(rule)
    return [
        Delivery(
            rule=reference,
            target=copy.deepcopy(target),
            event=event,
            ingested_at=float(ingested) if ingested is not None else time.time(),
        )
        for target in rule.targets
    ]


# -- sending to one target --------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """A target refused or could not take the event; `code` is one of EventBridge's DLQ error codes."""

    def __init__(self, code: str, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


def _failure(error: Exception) -> DeliveryFailed:
    """Classify an exception from a target's service the way EventBridge treats the API error."""
    if isinstance(error, DeliveryFailed):
        return error
    name = type(error).__name__
    # moto raises ServiceException (`code` an AWS error code) or werkzeug HTTPException (`code` a status).
    code = getattr(error, "code", None)
    labels = f"{name} {code}"
    message = str(getattr(error, "message", None) or getattr(error, "description", None) or error) or name
    if any(word in labels for word in ("NotFound", "DoesNotExist", "NonExistent", "UnknownFunction")):
        return DeliveryFailed("NO_RESOURCE", message, retriable=False)
    if "Throttl" in labels or "TooManyRequests" in labels or code == 429:
        return DeliveryFailed("THROTTLING", message, retriable=True)
    client_error = isinstance(error, ServiceException) or (
        isinstance(error, HTTPException) and isinstance(code, int) and code < 500
    )
    if client_error:
        return DeliveryFailed("INVALID_PARAMETER", message, retriable=False)
    return DeliveryFailed("INTERNAL_ERROR", f"{name}: {message}", retriable=True)


EVENTS_PRINCIPAL = "events.amazonaws.com"
# The session EventBridge assumes a target's RoleArn as (its name is EventBridge's business on AWS).
EVENTS_SESSION = "EventBridge"


def lambda_permits(function: Any, rule: RuleRef) -> bool:
    """Whether the function's resource policy (AWS::Lambda::Permission, AddPermission) lets EventBridge
    invoke it for `rule`, as AWS requires of a Lambda target: the policy evaluator's answer for the request
    EventBridge makes (principal events.amazonaws.com, aws:SourceArn the rule, aws:SourceAccount its
    account). The deliveries ask `enforcement` instead, which answers the same and can be switched off."""
    statements = list(function.policy.statements)
    if not statements:
        return False
    request = Request(
        Principal.service(EVENTS_PRINCIPAL), "lambda:InvokeFunction", "*", _delivery_context(rule)
    )
    # A permission's Resource is the function's ARN (unqualified, or with the qualifier it was added for):
    # the question is whether one lets EventBridge in for this rule, whichever it names.
    return evaluate_policy({"Statement": [{**s, "Resource": "*"} for s in statements]}, request).allowed


def _delivery_context(rule: RuleRef) -> dict[str, str]:
    return {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id, "aws:SecureTransport": "true"}


def _authorized(delivery: Delivery, action: str, resource: str) -> None:
    """EventBridge's right to deliver to the target (raises DeliveryFailed NO_PERMISSIONS): the target's
    resource policy for events.amazonaws.com (SQS queue, SNS topic, Lambda function), or, with a RoleArn
    (a Step Functions target), the role's own policies."""
    active = enforcement.active()
    role_arn = delivery.target.get("RoleArn")
    check = Check(action, resource)
    operation = f"events:deliver rule={delivery.rule.name}"
    if role_arn:
        denial = active.authorize_role(
            str(role_arn), EVENTS_SESSION, [check], operation=operation, region=delivery.rule.region
        )
    elif action == "states:StartExecution":
        # EventBridge starts an execution only with a role it can assume: there is no resource policy.
        if not active.enabled:
            return
        raise DeliveryFailed(
            "NO_PERMISSIONS",
            f"the target {resource} has no RoleArn for EventBridge to start it",
            retriable=False,
        )
    else:
        denial = active.authorize_service(
            EVENTS_PRINCIPAL,
            check,
            source_arn=delivery.rule.arn,
            source_account=delivery.rule.account_id,
            operation=operation,
        )
    if denial is not None:
        raise DeliveryFailed("NO_PERMISSIONS", denial.message, retriable=False)


def _require_json(text: str, what: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        raise DeliveryFailed("INVALID_JSON", f"{what} is not valid JSON", retriable=False) from None


def send_to_target(delivery: Delivery) -> None:
    """Deliver once (raises DeliveryFailed); what EventBridge does for one attempt."""
    arn = parse_arn(delivery.target_arn)
    try:
        text = target_input(
            delivery.target,
            delivery.event,
            rule_arn=delivery.rule.arn,
            rule_name=delivery.rule.name,
            ingested_at=delivery.ingested_at,
        )
    except ValueError as error:  # an InputPath EventBridge would have refused at PutTargets
        raise DeliveryFailed("INVALID_PARAMETER", str(error), retriable=False) from error
    try:
        if arn.service == "sqs":
            # A missing target is NO_RESOURCE, whatever its (absent) policy would say.
            sqs_backends[arn.account][arn.region].get_queue(arn.resource_id)
            _authorized(delivery, "sqs:SendMessage", delivery.target_arn)
            group_id = (delivery.target.get("SqsParameters") or {}).get("MessageGroupId")
            sqs_backends[arn.account][arn.region].send_message(
                queue_name=arn.resource_id, message_body=text, group_id=group_id
            )
        elif arn.service == "sns":
            sns_backends[arn.account][arn.region].get_topic(delivery.target_arn)
            _authorized(delivery, "sns:Publish", delivery.target_arn)
            sns_backends[arn.account][arn.region].publish(message=text, arn=delivery.target_arn)
        elif arn.service == "lambda":
            _invoke_function(delivery, text)
        elif arn.service == "states":
            _authorized(delivery, "states:StartExecution", delivery.target_arn)
            _require_json(text, "the state machine input")
            stepfunctions_backend(arn.account, arn.region).start_execution(
                delivery.target_arn, name=str(uuid.uuid4()), execution_input=text
            )
        else:
            raise DeliveryFailed(
                "INVALID_PARAMETER", f"unsupported target {delivery.target_arn}", retriable=False
            )
    except Exception as error:
        raise _failure(error) from error


def _invoke_function(delivery: Delivery, text: str) -> None:
    arn = parse_arn(delivery.target_arn)
    function = lambda_backends[arn.account][arn.region].get_function(delivery.target_arn)
    # The function's resource policy (AWS::Lambda::Permission for events.amazonaws.com, scoped to the rule).
    _authorized(delivery, "lambda:InvokeFunction", delivery.target_arn)
    _require_json(text, "the Lambda payload")
    # Asynchronous, as EventBridge invokes: accepted at once, run by the Lambda runner in the background
    # (with Lambda's own retries of function errors); a function error is not a delivery failure.
    function.invoke(text, {"X-Amz-Invocation-Type": "Event"}, {})


# -- metrics ----------------------------------------------------------------------------------------------


def put_rule_metrics(rule: RuleRef, names: Iterable[str]) -> None:
    """Count 1 for each metric name in AWS/Events (EventBridge publishes non-zero values only)."""
    names = list(names)
    if not names:
        return
    dimensions = [{"Name": "RuleName", "Value": rule.name}]
    if rule.bus_name != "default":
        dimensions.insert(0, {"Name": "EventBusName", "Value": rule.bus_name})
    try:
        # No Timestamp: moto stamps the datum itself, in the naive UTC its queries compare against.
        cloudwatch_backends[rule.account_id][rule.region].put_metric_data(
            "AWS/Events",
            [{"MetricName": name, "Value": 1.0, "Unit": "Count", "Dimensions": dimensions} for name in names],
        )
    except Exception:  # metrics must never break a delivery
        LOG.exception("publishing AWS/Events metrics failed")


# -- delivering, with retries and the dead-letter queue ---------------------------------------------------


@dataclass(order=True)
class _Scheduled:
    due: float
    sequence: int
    delivery: Delivery = field(compare=False)


class EventDeliverer:
    """Delivers queued events on its own threads: retries within each target's RetryPolicy with
    exponential backoff and jitter, then the target's dead-letter queue. Start it to deliver; deliveries
    submitted before that wait."""

    def __init__(
        self,
        *,
        send: Callable[[Delivery], None] = send_to_target,
        publish_metrics: Callable[[RuleRef, Iterable[str]], None] = put_rule_metrics,
        workers: int = DELIVERY_WORKERS,
        backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
        backoff_cap_seconds: float = BACKOFF_CAP_SECONDS,
    ) -> None:
        self._send = send
        self._publish_metrics = publish_metrics
        self._workers = workers
        self._backoff_base = backoff_base_seconds
        self._backoff_cap = backoff_cap_seconds
        self._queue: list[_Scheduled] = []
        self._sequence = itertools.count()
        self._in_flight = 0
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._stopped = False
            self._threads = [
                threading.Thread(target=self._run, name=f"events-delivery-{n}", daemon=True)
                for n in range(self._workers)
            ]
        for thread in self._threads:
            thread.start()

    def stopping(self) -> None:
        """Take no further delivery (a send in flight ends on its own); `stop` waits for the workers."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def stop(self) -> None:
        """Stop delivering; pending deliveries (and retries not yet due) are dropped, as the process ends."""
        with self._lock:
            self._stopped = True
            threads, self._threads = self._threads, []
            self._lock.notify_all()
        for thread in threads:
            thread.join(timeout=5)

    def submit(self, delivery: Delivery) -> None:
        self._schedule(delivery, time.monotonic())

    def idle(self) -> bool:
        """Nothing queued, waiting for a retry or being sent."""
        with self._lock:
            return not self._queue and self._in_flight == 0

    # -- workers --------------------------------------------------------------------------------------

    def _schedule(self, delivery: Delivery, due: float) -> None:
        with self._lock:
            heapq.heappush(self._queue, _Scheduled(due, next(self._sequence), delivery))
            self._lock.notify()

    def _take(self) -> Delivery | None:
        with self._lock:
            while not self._stopped:
                if self._queue:
                    wait = self._queue[0].due - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._queue).delivery
                    self._lock.wait(wait)
                else:
                    self._lock.wait()
            return None

    def _run(self) -> None:
        while (delivery := self._take()) is not None:
            try:
                self._attempt(delivery)
            except Exception:  # a bug here must not kill the worker
                LOG.exception("delivering to %s failed unexpectedly", delivery.target_arn)
            finally:
                with self._lock:
                    self._in_flight -= 1

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        self._publish_metrics(delivery.rule, ["InvocationAttempts"])
        try:
            self._send(delivery)
        except Exception as error:  # noqa: BLE001 - every failure is classified, retried or dead-lettered
            failure = _failure(error)
        else:
            self._publish_metrics(delivery.rule, ["Invocations"])
            return
        retries = delivery.attempts - 1
        policy = delivery.retry_policy
        exhausted: str | None = None
        if failure.retriable:
            if retries >= policy.maximum_retry_attempts:
                exhausted = "MaximumRetryAttempts"
            else:
                delay = self._backoff(retries)
                if time.time() + delay - delivery.ingested_at > policy.maximum_event_age_seconds:
                    exhausted = "MaximumEventAgeInSeconds"
                else:
                    LOG.info(
                        "delivery of event %s to %s failed (%s), retry %d in %.1f s",
                        delivery.event.get("id"),
                        delivery.target_arn,
                        failure.code,
                        retries + 1,
                        delay,
                    )
                    self._schedule(delivery, time.monotonic() + delay)
                    return
        self._give_up(delivery, failure, exhausted)

    def _backoff(self, retries: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2**retries)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography

    def _give_up(self, delivery: Delivery, failure: DeliveryFailed, exhausted: str | None) -> None:
        metrics = ["Invocations", "FailedInvocations"]
        dead_letter = delivery.dead_letter_arn
        LOG.warning(
            "event %s not delivered to %s (rule %s): %s %s%s",
            delivery.event.get("id"),
            delivery.target_arn,
            delivery.rule.name,
            failure.code,
            failure,
            f"; sending it to {dead_letter}" if dead_letter else "; dropped (no dead-letter queue)",
        )
        if dead_letter:
            try:
                _send_to_dead_letter_queue(dead_letter, delivery, failure, exhausted)
            except Exception:
                LOG.exception(
                    "sending event %s to the dead-letter queue %s failed",
                    delivery.event.get("id"),
                    dead_letter,
                )
                metrics.append("InvocationsFailedToBeSentToDlq")
            else:
                metrics.append("InvocationsSentToDLQ")
        self._publish_metrics(delivery.rule, metrics)


def _send_to_dead_letter_queue(
    queue_arn: str, delivery: Delivery, failure: DeliveryFailed, exhausted: str | None
) -> None:
    """The event as it was matched (not as transformed for the target), with EventBridge's attributes."""
    attributes = {
        "RULE_ARN": delivery.rule.arn,
        "TARGET_ARN": delivery.target_arn,
        "ERROR_CODE": failure.code,
        "ERROR_MESSAGE": str(failure)[:256],
        "RETRY_ATTEMPTS": str(delivery.attempts - 1),
    }
    if exhausted:
        attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
    arn = parse_arn(queue_arn)
    # The queue's policy must let EventBridge send for this rule, as for a target.
    _authorized(delivery, "sqs:SendMessage", queue_arn)
    sqs_backends[arn.account][arn.region].send_message(
        queue_name=arn.resource_id,
        message_body=json.dumps(delivery.event),
        message_attributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )


# -- Step Functions execution status changes --------------------------------------------------------------

_REDRIVE = {
    "RUNNING": ("NOT_REDRIVABLE", "Execution is RUNNING and cannot be redriven"),
    "SUCCEEDED": ("NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven"),
}


def _epoch_ms(moment: dt.datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return int(aware.timestamp() * 1000)


def execution_status_detail(execution: Any, status: str) -> dict[str, Any]:
    """The `detail` of Step Functions' "Execution Status Change" event for `execution` in `status`."""
    ended = status != "RUNNING"
    succeeded = status == "SUCCEEDED"
    redrive_status, redrive_reason = _REDRIVE.get(status, ("REDRIVABLE", None))
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date) if ended else None,
        "input": execution.execution_input,
        "output": to_json_str(execution.output, separators=(",", ":")) if succeeded else None,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if succeeded else None,
        "error": execution.error if ended else None,
        "cause": execution.cause if ended else None,
        # The version the execution runs, when it was started on one (services.stepfunctions.versions).
        "stateMachineVersionArn": getattr(execution, sfn_versions.VERSION_ARN, None),
        "stateMachineAliasArn": None,
        "redriveCount": 0,
        "redriveDate": None,
        "redriveStatus": redrive_status,
        "redriveStatusReason": redrive_reason,
    }


def _emit_execution_status(execution: Any, status: str) -> None:
    # Step Functions sends these for Standard workflows only.
    if str(getattr(execution.state_machine, "type", "STANDARD")).upper() != "STANDARD":
        return
    moment = execution.start_date if status == "RUNNING" else execution.stop_date
    entry = {
        "Source": STATES_SOURCE,
        "DetailType": STATES_DETAIL_TYPE,
        "Detail": json.dumps(execution_status_detail(execution, status)),
        "Resources": [execution.exec_arn],
        "Time": (moment or dt.datetime.now(dt.UTC)).timestamp(),
    }
    events_backends[execution.account_id][execution.region_name].put_events([entry])


# -- moto glue --------------------------------------------------------------------------------------------


def install(deliverer: EventDeliverer) -> Undo:
    """Route moto's events through `deliverer`, emit Step Functions status changes (the latter needs
    `localcloud.services.stepfunctions.sfn.install()`) and update CloudFormation rules in place; returns a
    function that restores moto."""
    original_send = Rule.send_to_targets
    original_cfn_update = Rule.__dict__["update_from_cloudformation_json"]

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        deliveries = matching_deliveries(self, original_event)
        if not deliveries:
            return
        put_rule_metrics(deliveries[0].rule, ["TriggeredRules", "MatchedEvents"])
        for delivery in deliveries:
            if parse_arn(delivery.target_arn).service in NATIVE_TARGET_SERVICES:
                deliverer.submit(delivery)
            else:
                _send_with_moto(original_send, self, delivery.target, original_event, transform_input)

    def update_from_cloudformation_json(  # noqa: PLR0917 - moto's classmethod signature
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        updated = _update_rule_in_place(original_resource, cloudformation_json, account_id, region_name)
        if updated is not None:
            return updated
        return original_cfn_update.__func__(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
    Rule.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[assignment,method-assign]
    remove_listener = sfn.add_status_listener(_emit_execution_status)

    def undo() -> None:
        remove_listener()
        Rule.send_to_targets = original_send  # type: ignore[method-assign]
        Rule.update_from_cloudformation_json = original_cfn_update  # type: ignore[method-assign]

    return undo


def _update_rule_in_place(rule: Any, cloudformation_json: Any, account_id: str, region_name: str) -> Any:
    """CloudFormation updates a rule's pattern, state, schedule, description, role and targets in place;
    only a new Name or EventBusName replaces it. moto always replaces it, under a newly generated name:
    the rule ARN changes, and a Lambda permission whose SourceArn is that ARN (unchanged in the template,
    so never updated) no longer lets the rule invoke its target. Returns None when replacement is due."""
    properties = dict(cloudformation_json.get("Properties") or {})
    bus = str(properties.get("EventBusName") or "default").split("/")[-1]
    if properties.get("Name", rule.name) != rule.name or bus != rule.event_bus_name:
        return None
    pattern = properties.get("EventPattern")
    backend = events_backends[account_id][region_name]
    updated = backend.put_rule(  # keeps the rule's targets
        rule.name,
        description=properties.get("Description"),
        event_bus_arn=bus,
        event_pattern=json.dumps(pattern) if isinstance(pattern, dict) else pattern,
        role_arn=properties.get("RoleArn"),
        scheduled_expression=properties.get("ScheduleExpression"),
        state=properties.get("State"),
    )
    targets = list(properties.get("Targets") or [])
    kept = {target["Id"] for target in targets}
    updated.remove_targets([target["Id"] for target in updated.targets if target["Id"] not in kept])
    if targets:
        backend.put_targets(updated.name, bus, targets)
    return updated


def _send_with_moto(
    original: Any, rule: Any, target: dict[str, Any], event: Any, transform_input: bool
) -> None:
    one_target = copy.copy(rule)
    one_target.targets = [target]
    try:
        original(one_target, copy.deepcopy(event), transform_input)
    except Exception:
        LOG.exception("moto could not deliver to %s", target.get("Arn"))
