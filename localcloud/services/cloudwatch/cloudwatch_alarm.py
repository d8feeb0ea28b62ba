"""`AWS::CloudWatch::Alarm` for moto's CloudFormation, which has no model for it (moto 5.2.5), and the
alarm state CloudWatch documents: CloudFormation is the one creator of the template's alarms.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicescloudwatchcloudwatch_alarmpy
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudwatch.models import Alarm, Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel

LOG = logging.getLogger(__name__)

TYPE = "AWS::CloudWatch::Alarm"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
# What an alarm keeps when it is put again; CloudWatch keeps its state and history.
_STATE_FIELDS = ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history")
Undo = Callable[[], None]


class CloudWatchAlarmResource(CloudFormationModel):
    """One deployed alarm, with the resolved properties it was put with (to see when they change)."""

    # Set by moto's CloudFormation on every model it creates (declared for the type checker).
    cf_resource_type: str = TYPE
    logical_resource_id: str = ""

    def __init__(self, alarm: Any, properties: dict[str, Any]) -> None:
        self.alarm = alarm
        self.properties = properties

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return TYPE

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Arn":
            return self.alarm.alarm_arn
        raise UnformattedGetAttTemplateException()

    @property
    def physical_resource_id(self) -> str:
        return str(self.alarm.name)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CloudWatchAlarmResource:
        properties: Any = copy.deepcopy(cloudformation_json.get("Properties") or {})
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=properties.get("AlarmName", resource_name),
            namespace=properties.get("Namespace"),
            metric_name=properties.get("MetricName"),
            metric_data_queries=_metric_data_queries(properties.get("Metrics")),
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            period=int(properties["Period"]) if "Period" in properties else 60,
            threshold=float(properties.get("Threshold", 0)),
            statistic=properties.get("Statistic"),
            description=properties.get("AlarmDescription", ""),
            dimensions=list(properties.get("Dimensions", [])),
            alarm_actions=list(properties.get("AlarmActions", [])),
            datapoints_to_alarm=int(properties["DatapointsToAlarm"])
            if "DatapointsToAlarm" in properties
            else None,
            extended_statistic=properties.get("ExtendedStatistic"),
            ok_actions=list(properties.get("OKActions", [])),
            insufficient_data_actions=list(properties.get("InsufficientDataActions", [])),
            unit=properties.get("Unit"),
            actions_enabled=_cfn_bool(properties.get("ActionsEnabled", True)),
            treat_missing_data=properties.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=properties.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=properties.get("ThresholdMetricId"),
            tags=list(properties.get("Tags", [])),
        )
        return cls(alarm, properties)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> CloudWatchAlarmResource:
        properties = cloudformation_json.get("Properties") or {}
        name = properties.get("AlarmName", original_resource.physical_resource_id)
        if name != original_resource.physical_resource_id:
            cls.delete_from_cloudformation_json(
                original_resource.physical_resource_id, cloudformation_json, account_id, region_name
            )
        # Putting an existing name again replaces its configuration and keeps its state (see _put_keeps_state).
        return cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])


def _metric_data_queries(metrics: Any) -> list[MetricDataQuery] | None:
    """A metric-math alarm's `Metrics`, as moto's PutMetricAlarm builds them from the API's parameters (so
    that DescribeAlarms returns them as CloudWatch does)."""
    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat.get("Metric") or {}
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=str(metric.get("MetricName")),
                    namespace=str(metric.get("Namespace")),
                    dimensions=[
                        Dimension(d.get("Name"), d.get("Value")) for d in metric.get("Dimensions", [])
                    ],
                ),
                period=stat.get("Period"),
                stat=stat.get("Stat"),
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=query.get("Id"),
                label=query.get("Label"),
                period=query.get("Period"),
                # Absent means true (CloudWatch's default), as the API would have received it.
                return_data=_cfn_bool(query.get("ReturnData", True)),  # type: ignore[arg-type]
                expression=query.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


def _cfn_bool(value: Any) -> bool:
    return str(value).lower() != "false"


def _put_keeps_state() -> Undo:
    """A new alarm starts in INSUFFICIENT_DATA; one put again keeps the state of the alarm it replaces.

    moto's PutMetricAlarm builds a new `Alarm` (state OK) and then stores it under its name. The state is
    decided in the constructor, while the alarm being replaced is still the stored one, so that the new
    alarm is never visible with moto's OK.
    """
    original = Alarm.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        account_id = self.alarm_arn.split(":")[4]
        replaced = cloudwatch_backends[account_id][self.region_name].alarms.get(self.name)
        if replaced is None:
            self.state_value = INSUFFICIENT_DATA
            return
        for name in _STATE_FIELDS:
            setattr(self, name, getattr(replaced, name))

    Alarm.__init__ = init  # type: ignore[method-assign]

    def undo() -> None:
        Alarm.__init__ = original  # type: ignore[method-assign]

    return undo


def _refresh_after_update(resource_map: Any) -> None:
    for logical_id, resource_json in resource_map._resource_json_map.items():
        current = resource_map._parsed_resources.get(logical_id)
        if resource_json.get("Type") != TYPE or not isinstance(current, CloudWatchAlarmResource):
            continue
        resolved = cfn_parsing.clean_json(copy.deepcopy(resource_json), resource_map)
        if (resolved.get("Properties") or {}) == current.properties:
            continue
        refreshed = CloudWatchAlarmResource.update_from_cloudformation_json(
            current,
            current.physical_resource_id,
            resolved,
            resource_map._account_id,
            resource_map._region_name,
        )
        refreshed.cf_resource_type = TYPE
        refreshed.logical_resource_id = logical_id
        resource_map._parsed_resources[logical_id] = refreshed
        LOG.info("alarm %s put again: a resource it refers to was replaced", refreshed.physical_resource_id)


def _refresh_on_stack_update() -> Undo:
    original = cfn_parsing.ResourceMap.update

    def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        original(self, template, parameters)
        _refresh_after_update(self)

    cfn_parsing.ResourceMap.update = update  # type: ignore[method-assign]

    def undo() -> None:
        cfn_parsing.ResourceMap.update = original  # type: ignore[method-assign]

    return undo


def install() -> Undo:
    """Make moto's CloudFormation use the model, with CloudWatch's alarm state; returns the undo."""
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    if cfn_parsing.get_model_map().get(TYPE) is not CloudWatchAlarmResource:
        raise RuntimeError(f"moto did not pick up the {TYPE} model")
    undos = [_put_keeps_state(), _refresh_on_stack_update()]

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo
