"""`AWS::SNS::TopicPolicy` for moto's CloudFormation, which has no model for it (moto 5.2.5): a topic's
`Policy` attribute is what the template says, so whoever reads it sees what AWS would enforce.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicessnstopic_policypy
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.sns.exceptions import TopicNotFound
from moto.sns.models import Topic, sns_backends

LOG = logging.getLogger(__name__)

TYPE = "AWS::SNS::TopicPolicy"
Undo = Callable[[], None]


def _topic(arn: str) -> Topic:
    """The topic in moto's SNS backend of the ARN's own account and region; raises TopicNotFound."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "sns":
        raise TopicNotFound
    topic: Topic = sns_backends[parts[4]][parts[3]].get_topic(arn)
    return topic


def _document(properties: dict[str, Any]) -> dict[str, Any]:
    document = properties.get("PolicyDocument")
    if isinstance(document, str):  # CloudFormation accepts the document as a JSON string too
        document = json.loads(document)
    if not isinstance(document, dict):
        raise ValueError("AWS::SNS::TopicPolicy needs a PolicyDocument object")
    return document


def _topic_arns(properties: dict[str, Any]) -> tuple[str, ...]:
    topics = properties.get("Topics")
    if not isinstance(topics, list) or not topics:
        raise ValueError("AWS::SNS::TopicPolicy needs a non-empty Topics list")
    return tuple(str(t) for t in topics)


def restore_default_policy(arns: Iterable[str]) -> None:
    """SNS's default policy on each topic that still exists (what a new topic gets from moto)."""
    for arn in arns:
        try:
            topic = _topic(arn)
        except TopicNotFound:
            continue
        # moto's own default (private method, moto 5.2.5): a restored topic is indistinguishable from a new one.
        topic._policy_json = topic._create_default_topic_policy(
            topic.sns_backend.region_name, topic.account_id, topic.name
        )
        LOG.info("topic %s: default policy restored", arn)


class SNSTopicPolicyResource(CloudFormationModel):
    """One deployed TopicPolicy: the topics it governs and the document it put on them."""

    # Set by moto's CloudFormation on every model it creates (declared for the type checker).
    cf_resource_type: str = TYPE
    logical_resource_id: str = ""

    def __init__(self, physical_id: str, topic_arns: tuple[str, ...], document: dict[str, Any]) -> None:
        self.physical_id = physical_id
        self.topic_arns = topic_arns
        self.document = document

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""  # no name property: CloudFormation generates the id

    @staticmethod
    def cloudformation_type() -> str:
        return TYPE

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    def apply(self) -> None:
        policy = json.dumps(self.document)
        for arn in self.topic_arns:
            _topic(arn).policy = policy  # TopicNotFound fails the stack operation, as on AWS
        LOG.info("topic policy %s applied to %s", self.physical_id, ", ".join(self.topic_arns))

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SNSTopicPolicyResource:
        properties = cloudformation_json.get("Properties") or {}
        resource = cls(resource_name, _topic_arns(properties), _document(properties))
        resource.apply()
        return resource

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> SNSTopicPolicyResource:
        properties = cloudformation_json.get("Properties") or {}
        # Both properties update in place on AWS: the physical id stays.
        resource = cls(original_resource.physical_id, _topic_arns(properties), _document(properties))
        restore_default_policy(a for a in original_resource.topic_arns if a not in resource.topic_arns)
        resource.apply()
        return resource

    def delete(self, account_id: str, region_name: str) -> None:
        restore_default_policy(self.topic_arns)


def _reapply_after_update(resource_map: Any) -> None:
    for logical_id, resource_json in resource_map._resource_json_map.items():
        current = resource_map._parsed_resources.get(logical_id)
        if resource_json.get("Type") != TYPE or not isinstance(current, SNSTopicPolicyResource):
            continue
        resolved = cfn_parsing.clean_json(copy.deepcopy(resource_json), resource_map)
        refreshed = SNSTopicPolicyResource.update_from_cloudformation_json(
            current, current.physical_id, resolved, resource_map._account_id, resource_map._region_name
        )
        refreshed.cf_resource_type = TYPE
        refreshed.logical_resource_id = logical_id
        resource_map._parsed_resources[logical_id] = refreshed


def install() -> Undo:
    """Make moto's CloudFormation use the model, and re-apply topic policies after each stack update."""
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    if cfn_parsing.get_model_map().get(TYPE) is not SNSTopicPolicyResource:
        raise RuntimeError(f"moto did not pick up the {TYPE} model")

    original = cfn_parsing.ResourceMap.update

    def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        original(self, template, parameters)
        _reapply_after_update(self)

    cfn_parsing.ResourceMap.update = update  # type: ignore[method-assign]

    def undo() -> None:
        cfn_parsing.ResourceMap.update = original  # type: ignore[method-assign]

    return undo
