"""CloudWatch alarm evaluation for the local cloud: the deployed alarms, evaluated on live values, with their
SNS actions (moto's CloudWatch stores alarms but never evaluates them).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicescloudwatchalarm_evaluatorpy
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from moto.sqs.models import sqs_backends

from localcloud.core.state import dummy_session
from localcloud.core.stopping import Stopping, without_retries_when
from localcloud.services.cloudwatch import metric_math
from localcloud.services.iam import policy

logger = logging.getLogger(__name__)

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
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


# -- alarms as DescribeAlarms returns them ---------------------------------------------------------------


class NotEvaluable(ValueError):
    """An alarm this evaluator cannot evaluate (an unsupported comparison or metric-math function)."""


@dataclass(frozen=True)
class MetricQuery:
    """One entry of a metric-math alarm's `Metrics`: a metric (MetricStat) or an expression over others."""

    id: str
    return_data: bool
    expression: metric_math.Node | None = None
    namespace: str = ""
    metric_name: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()
    stat: str = ""
    period: int = 0
    unit: str | None = None

    @classmethod
    def from_api(cls, described: Mapping[str, Any]) -> MetricQuery:
        query_id = str(described.get("Id", ""))
        return_data = described.get("ReturnData")
        # CloudWatch's default: ReturnData is true unless it says false.
        returned = return_data is None or str(return_data).lower() == "true"
        if described.get("Expression"):
            try:
                expression = metric_math.parse(str(described["Expression"]))
            except metric_math.MathError as error:
                raise NotEvaluable(f"metric-math query {query_id}: {error}") from error
            return cls(id=query_id, return_data=returned, expression=expression)
        stat = described.get("MetricStat") or {}
        metric = stat.get("Metric") or {}
        if not metric.get("MetricName"):
            raise NotEvaluable(f"metric-math query {query_id} has neither an Expression nor a MetricStat")
        return cls(
            id=query_id,
            return_data=returned,
            namespace=str(metric.get("Namespace", "")),
            metric_name=str(metric["MetricName"]),
            dimensions=tuple((str(d["Name"]), str(d["Value"])) for d in metric.get("Dimensions", [])),
            stat=str(stat.get("Stat", "Average")),
            period=int(stat.get("Period", 60)),
            unit=stat.get("Unit"),
        )


def _math_queries(described: Mapping[str, Any]) -> tuple[tuple[MetricQuery, ...], int]:
    """The queries of a metric-math alarm and their period; NotEvaluable when CloudWatch would refuse them
    (not exactly one returned query, periods that differ, a reference to no query) or this module cannot
    evaluate them."""
    queries = tuple(MetricQuery.from_api(q) for q in described.get("Metrics", []))
    ids = {q.id for q in queries}
    returned = [q for q in queries if q.return_data]
    if len(returned) != 1:
        raise NotEvaluable(f"a metric-math alarm returns exactly one query, not {len(returned)}")
    periods = {q.period for q in queries if q.expression is None}
    if len(periods) != 1:
        raise NotEvaluable(f"the metrics of a metric-math alarm share one period, not {sorted(periods)}")
    for query in queries:
        if query.expression is not None and (unknown := metric_math.references(query.expression) - ids):
            raise NotEvaluable(
                f"metric-math query {query.id} reads {', '.join(sorted(unknown))}: no such query"
            )
    return queries, periods.pop()


@dataclass(frozen=True)
class MetricAlarm:
    """One metric alarm, as DescribeAlarms returns it: on one metric, or on metric math (`queries`)."""

    name: str
    arn: str
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
    configured_at: datetime | None = None
    queries: tuple[MetricQuery, ...] = ()
    # The `Metrics` entries as described: a metric-math alarm's notification repeats them.
    metrics_described: tuple[Mapping[str, Any], ...] = ()

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def statistic_label(self) -> str:
        return self.extended_statistic or self.statistic or "Average"

    @classmethod
    def from_api(cls, described: Mapping[str, Any]) -> MetricAlarm:
        """From one DescribeAlarms `MetricAlarms` entry; raises NotEvaluable for what cannot be evaluated."""
        comparison = str(described.get("ComparisonOperator", ""))
        if comparison not in COMPARISONS:
            raise NotEvaluable(f"ComparisonOperator {comparison} is not supported locally")
        queries: tuple[MetricQuery, ...] = ()
        if not described.get("MetricName"):
            if not described.get("Metrics"):
                raise NotEvaluable("the alarm has neither a MetricName nor Metrics")
            queries, period = _math_queries(described)
        else:
            period = int(described["Period"])
        datapoints = described.get("DatapointsToAlarm")
        return cls(
            name=str(described["AlarmName"]),
            arn=str(described["AlarmArn"]),
            namespace=str(described.get("Namespace") or ""),
            metric_name=str(described.get("MetricName") or ""),
            dimensions=tuple((str(d["Name"]), str(d["Value"])) for d in described.get("Dimensions", [])),
            statistic=described.get("Statistic"),
            extended_statistic=described.get("ExtendedStatistic"),
            period=period,
            evaluation_periods=int(described["EvaluationPeriods"]),
            datapoints_to_alarm=int(datapoints) if datapoints is not None else None,
            threshold=float(described["Threshold"]),
            comparison=comparison,
            treat_missing_data=str(described.get("TreatMissingData") or "missing"),
            description=described.get("AlarmDescription"),
            unit=described.get("Unit"),
            alarm_actions=tuple(described.get("AlarmActions", [])),
            ok_actions=tuple(described.get("OKActions", [])),
            insufficient_data_actions=tuple(described.get("InsufficientDataActions", [])),
            actions_enabled=bool(described.get("ActionsEnabled", True)),
            configured_at=described.get("AlarmConfigurationUpdatedTimestamp"),
            queries=queries,
            metrics_described=tuple(described.get("Metrics", [])) if queries else (),
        )

    def metric_of(self, query: MetricQuery) -> MetricAlarm:
        """This alarm narrowed to one metric of its math: read the way a single-metric alarm reads it."""
        percentile = query.stat.startswith("p")
        return replace(
            self,
            namespace=query.namespace,
            metric_name=query.metric_name,
            dimensions=query.dimensions,
            statistic=None if percentile else query.stat,
            extended_statistic=query.stat if percentile else None,
            period=query.period,
            unit=query.unit,
            queries=(),
            metrics_described=(),
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
    alarm: MetricAlarm, datapoints: list[Datapoint | None], current_state: str, now: datetime
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
    # A metric-math alarm has no statistic of its own (each of its metrics has one).
    statistic = (
        {}
        if alarm.queries
        else {("extendedStatistic" if alarm.extended_statistic else "statistic"): alarm.statistic_label}
    )
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _iso(now),
            "startDate": _iso(now - timedelta(seconds=alarm.period * periods)),
            **statistic,
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


def _resolve(
    query_id: str,
    values: dict[str, float | None],
    expressions: Mapping[str, metric_math.Node],
    resolving: set[str],
) -> float | None:
    """One query's value in one period: a metric's as read, an expression's from the queries it reads."""
    if query_id in values:
        return values[query_id]
    if query_id in resolving:
        raise NotEvaluable(f"metric-math query {query_id} depends on itself")
    expression = expressions[query_id]
    inputs = {
        ref: _resolve(ref, values, expressions, resolving | {query_id})
        for ref in metric_math.references(expression)
    }
    values[query_id] = metric_math.evaluate(expression, inputs)
    return values[query_id]


def _trigger_of_math(alarm: MetricAlarm) -> dict[str, Any]:
    """The notification's Trigger for a metric-math alarm: its queries instead of one metric."""
    return {
        "Period": alarm.period,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
        "ComparisonOperator": alarm.comparison,
        "Threshold": alarm.threshold,
        "TreatMissingData": alarm.treat_missing_data,
        "EvaluateLowSampleCountPercentile": "",
        "Metrics": [dict(query) for query in alarm.metrics_described],
    }


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


@dataclass(frozen=True)
class _Seen:
    """What the evaluator last saw of an alarm: its configuration, and the state it last set or saw."""

    configured_at: datetime | None
    state: str


class AlarmEvaluator:
    """Evaluates the alarms in CloudWatch every `interval_seconds`, in one background thread.

    `alarm_name_prefix` limits it to the alarms whose name starts with it (DescribeAlarms'
    AlarmNamePrefix): tests sharing one moto evaluate only their own stack's alarms, which CloudFormation
    names `<stack>-<logical id>-<suffix>`.
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        *,
        interval_seconds: float = 3.0,
        publish_interval_seconds: float = 60.0,
        alarm_name_prefix: str = "",
        clock: Callable[[], datetime] | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        self._endpoint = endpoint
        # The evaluation's "now" (ages, windows, timestamps): injectable so a test can let time pass.
        self._clock = clock or (lambda: datetime.now(UTC))
        self._region = region
        self._interval = interval_seconds
        self._publish_interval = publish_interval_seconds
        self._alarm_name_prefix = alarm_name_prefix
        session = session or dummy_session(region)
        config = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=30)
        self._stop = threading.Event()
        guarded = functools.partial(without_retries_when, self._stop)
        self._cw = guarded(session.client("cloudwatch", endpoint_url=endpoint, config=config))
        self._sqs = guarded(session.client("sqs", endpoint_url=endpoint, config=config))
        self._sns = guarded(session.client("sns", endpoint_url=endpoint, config=config))

        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, _Seen] = {}
        self._warned: set[str] = set()
        self._history: dict[MetricKey, deque[tuple[float, float]]] = {}
        self._published: dict[MetricKey, tuple[float, float]] = {}
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

    def stopping(self) -> None:
        """Evaluate no further alarm; `stop` waits for the thread."""
        self._stop.set()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            if self._thread.is_alive():
                logger.warning("alarm evaluator still busy after stop(); left to finish on its own")
        self._thread = None
        logger.info("alarm evaluator stopped")

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                self.evaluate()
                backoff = 0.0
                self._stop.wait(self._interval)
            except Stopping:
                return
            except Exception:
                # Never let a hiccup of the emulator end alarm evaluation for good.
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.exception("alarm evaluation failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)

    def action_history(self, alarm_name: str | None = None) -> list[ActionHistoryItem]:
        """The alarm actions run so far (all alarms, or one), oldest first; failed ones included."""
        with self._lock:
            return [i for i in self._action_history if alarm_name is None or i.alarm_name == alarm_name]

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    # -- evaluation ------------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, str]:
        """Evaluate every alarm once; set the states that changed and run their actions. Returns the
        state of each alarm evaluated."""
        with self._lock:
            now = self._clock()
            described = self._describe_alarms()
            present = {entry["AlarmName"] for entry in described}
            for name in [n for n in self._seen if n not in present]:
                del self._seen[name]
            pass_cache: dict[Any, Any] = {}
            metric_data: list[dict[str, Any]] = []
            result: dict[str, str] = {}
            for entry in described:
                if self._stop.is_set():
                    break  # stopped: its server may be gone, and each call would fail slowly
                try:
                    alarm = MetricAlarm.from_api(entry)
                except NotEvaluable as error:
                    name = entry["AlarmName"]
                    self._warn_once(f"skip/{name}", "alarm %s is skipped: %s", name, error)
                    continue
                state = self._evaluate_one(alarm, entry, now, pass_cache, metric_data)
                self._seen[alarm.name] = _Seen(alarm.configured_at, state)
                result[alarm.name] = state
            self._put_metric_data(metric_data)
            return result

    def _evaluate_one(
        self,
        alarm: MetricAlarm,
        entry: Mapping[str, Any],
        now: datetime,
        cache: dict[Any, Any],
        metric_data: list[dict[str, Any]],
    ) -> str:
        """The alarm's state after this pass (set in CloudWatch, with its actions run, if it changed)."""
        state = str(entry["StateValue"])
        seen = self._seen.get(alarm.name)
        if seen is not None and seen.configured_at == alarm.configured_at and seen.state != state:
            # Set from outside (`aws cloudwatch set-alarm-state`, the usual way to test the wiring):
            # CloudWatch runs the new state's actions, then the next evaluation decides.
            logger.info("alarm %s: set to %s from outside; running its actions", alarm.name, state)
            reason, reason_data = (
                str(entry.get("StateReason") or ""),
                str(entry.get("StateReasonData") or "{}"),
            )
            self._notify(alarm, seen.state, Evaluation(state, reason, reason_data), now)
            return state
        try:
            points = self._datapoints(alarm, now, cache, metric_data)
            evaluation = evaluate_alarm(alarm, points, state, now)
            if evaluation is None or evaluation.state == state:
                return state
            self._cw.set_alarm_state(
                AlarmName=alarm.name,
                StateValue=evaluation.state,
                StateReason=evaluation.reason,
                StateReasonData=evaluation.reason_data,
            )
        except Exception:
            logger.exception("evaluating alarm %s failed", alarm.name)
            return state
        logger.info("alarm %s: %s -> %s: %s", alarm.name, state, evaluation.state, evaluation.reason)
        self._notify(alarm, state, evaluation, now)
        return evaluation.state

    def _describe_alarms(self) -> list[dict[str, Any]]:
        alarms: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"]}
        if self._alarm_name_prefix:
            kwargs["AlarmNamePrefix"] = self._alarm_name_prefix
        while True:
            page = self._cw.describe_alarms(**kwargs)
            alarms += page.get("MetricAlarms", [])
            if not page.get("NextToken"):
                return alarms
            kwargs["NextToken"] = page["NextToken"]

    def _datapoints(
        self,
        alarm: MetricAlarm,
        now: datetime,
        cache: dict[Any, Any],
        metric_data: list[dict[str, Any]],
    ) -> list[Datapoint | None]:
        if alarm.queries:
            return self._math_windows(alarm, now, cache, metric_data)
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
        if (alarm.namespace, alarm.metric_name) in ALWAYS_ZERO:
            if ("gauge", key) not in cache:
                cache[("gauge", key)] = 0.0
                self._record_gauge(key, 0.0, now, "Count", metric_data)
            return self._gauge_windows(alarm, key, now, 0.0)
        return self._cloudwatch_windows(alarm, now)

    # SQS gauges: the most recent period is the live value; older periods come from recorded samples.

    def _sample_sqs(
        self,
        alarm: MetricAlarm,
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
        self, alarm: MetricAlarm, key: MetricKey, now: datetime, live: float | None
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

    # Metric math: each metric read as a single-metric alarm would read it, then the expressions per period.

    def _math_windows(
        self,
        alarm: MetricAlarm,
        now: datetime,
        cache: dict[Any, Any],
        metric_data: list[dict[str, Any]],
    ) -> list[Datapoint | None]:
        series = {
            query.id: self._datapoints(alarm.metric_of(query), now, cache, metric_data)
            for query in alarm.queries
            if query.expression is None
        }
        expressions = {query.id: query.expression for query in alarm.queries if query.expression is not None}
        (returned,) = [query.id for query in alarm.queries if query.return_data]
        points: list[Datapoint | None] = []
        for index in range(alarm.evaluation_periods):
            values: dict[str, float | None] = {}
            counts: list[float] = []
            for query_id, points_of_query in series.items():
                point = points_of_query[index]
                values[query_id] = point.value if point is not None else None
                counts.append(point.sample_count if point is not None else 0.0)
            value = _resolve(returned, values, expressions, set())
            start = now - timedelta(seconds=alarm.period * (index + 1))
            points.append(Datapoint(start, value, max(counts, default=0.0)) if value is not None else None)
        return points

    # Everything else: read from CloudWatch, where its one publisher put it (sfn, the Lambda runner, events).

    def _cloudwatch_windows(self, alarm: MetricAlarm, now: datetime) -> list[Datapoint | None]:
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

    def _notify(self, alarm: MetricAlarm, old_state: str, evaluation: Evaluation, now: datetime) -> None:
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
        alarm_arn = alarm.arn
        message = json.dumps(
            {
                "AlarmName": alarm.name,
                "AlarmDescription": alarm.description,
                "AWSAccountId": alarm.account,
                "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configured_at or now),
                "NewStateValue": evaluation.state,
                "NewStateReason": evaluation.reason,
                "StateChangeTime": _iso(now),
                "Region": region_name,
                "AlarmArn": alarm_arn,
                "OldStateValue": old_state,
                "OKActions": list(alarm.ok_actions),
                "AlarmActions": list(alarm.alarm_actions),
                "InsufficientDataActions": list(alarm.insufficient_data_actions),
                "Trigger": _trigger_of_math(alarm)
                if alarm.queries
                else {
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
        self, alarm: MetricAlarm, alarm_arn: str, topic_arn: str, now: datetime
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
        alarm: MetricAlarm,
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
