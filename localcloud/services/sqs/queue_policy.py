"""`AWS::SQS::QueuePolicy` for moto's CloudFormation, which has no model for it (moto 5.2.5): a queue's
`Policy` attribute is what the template says, so that IAM enforcement (`localcloud.services.iam.enforcement`)
evaluates what AWS would. Also: moto's SetQueueAttributes without `Policy` cleared the queue's policy.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicessqsqueue_policypy
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import Queue, sqs_backends

LOG = logging.getLogger(__name__)

TYPE = "AWS::SQS::QueuePolicy"
Undo = Callable[[], None]


def _queue(url: str, region_name: str) -> Queue:
    """The queue of a queue URL (`http://HOST/ACCOUNT/NAME`, what `Ref` of a queue gives); raises
    QueueDoesNotExist."""
    parts = [part for part in urlsplit(url).path.split("/") if part]
    if len(parts) < 2:
        raise QueueDoesNotExist
    account, name = parts[-2], parts[-1]
    queue: Queue = sqs_backends[account][region_name].get_queue(name)
    return queue


def _document(properties: dict[str, Any]) -> dict[str, Any]:
    document = properties.get("PolicyDocument")
    if isinstance(document, str):  # CloudFormation accepts the document as a JSON string too
        document = json.loads(document)
    if not isinstance(document, dict):
        raise ValueError(f"{TYPE} needs a PolicyDocument object")
    return document


def _queue_urls(properties: dict[str, Any]) -> tuple[str, ...]:
    queues = properties.get("Queues")
    if not isinstance(queues, list) or not queues:
        raise ValueError(f"{TYPE} needs a non-empty Queues list")
    return tuple(str(q) for q in queues)


def _clear(urls: Iterable[str], region_name: str) -> None:
    for url in urls:
        try:
            queue = _queue(url, region_name)
        except QueueDoesNotExist:
            continue
        queue.policy = None  # moto's setter: back to the empty policy a new queue has
        LOG.info("queue %s: policy removed", url)


class SQSQueuePolicyResource(CloudFormationModel):
    """One deployed QueuePolicy: the queues it governs and the document it put on them."""

    # Set by moto's CloudFormation on every model it creates (declared for the type checker).
    cf_resource_type: str = TYPE
    logical_resource_id: str = ""

    def __init__(
        self, physical_id: str, region_name: str, queue_urls: tuple[str, ...], document: dict[str, Any]
    ) -> None:
        self.physical_id = physical_id
        self.region_name = region_name
        self.queue_urls = queue_urls
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
        for url in self.queue_urls:
            # QueueDoesNotExist fails the stack operation, as on AWS. The document replaces the queue's policy.
            _queue(url, self.region_name).policy = policy
        LOG.info("queue policy %s applied to %s", self.physical_id, ", ".join(self.queue_urls))

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SQSQueuePolicyResource:
        properties = cloudformation_json.get("Properties") or {}
        resource = cls(resource_name, region_name, _queue_urls(properties), _document(properties))
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
    ) -> SQSQueuePolicyResource:
        properties = cloudformation_json.get("Properties") or {}
        # Both properties update in place on AWS: the physical id stays.
        resource = cls(
            original_resource.physical_id, region_name, _queue_urls(properties), _document(properties)
        )
        _clear((u for u in original_resource.queue_urls if u not in resource.queue_urls), region_name)
        resource.apply()
        return resource

    def delete(self, account_id: str, region_name: str) -> None:
        _clear(self.queue_urls, self.region_name)


def _reapply_after_update(resource_map: Any) -> None:
    # An unchanged QueuePolicy over a queue moto replaced or re-attributed (moto's queue update goes through
    # SetQueueAttributes) is applied again, as CloudFormation keeps a dependent in step with its queue.
    for logical_id, resource_json in resource_map._resource_json_map.items():
        current = resource_map._parsed_resources.get(logical_id)
        if resource_json.get("Type") != TYPE or not isinstance(current, SQSQueuePolicyResource):
            continue
        resolved = cfn_parsing.clean_json(copy.deepcopy(resource_json), resource_map)
        refreshed = SQSQueuePolicyResource.update_from_cloudformation_json(
            current, current.physical_id, resolved, resource_map._account_id, resource_map._region_name
        )
        refreshed.cf_resource_type = TYPE
        refreshed.logical_resource_id = logical_id
        resource_map._parsed_resources[logical_id] = refreshed


def install() -> Undo:
    """Make moto's CloudFormation use the model, re-apply queue policies after each stack update, and keep a
    queue's policy when SetQueueAttributes does not name it (moto 5.2.5 cleared it)."""
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    if cfn_parsing.get_model_map().get(TYPE) is not SQSQueuePolicyResource:
        raise RuntimeError(f"moto did not pick up the {TYPE} model")

    original_update = cfn_parsing.ResourceMap.update
    original_set = Queue._set_attributes

    def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        original_update(self, template, parameters)
        _reapply_after_update(self)

    def set_attributes(self: Queue, attributes: dict[str, Any], now: Any = None) -> None:
        kept = getattr(self, "_policy_json", None) if "Policy" not in attributes else None
        original_set(self, attributes, now)
        if kept is not None:
            self._policy_json = kept

    cfn_parsing.ResourceMap.update = update  # type: ignore[method-assign]
    Queue._set_attributes = set_attributes  # type: ignore[method-assign]

    def undo() -> None:
        cfn_parsing.ResourceMap.update = original_update  # type: ignore[method-assign]
        Queue._set_attributes = original_set  # type: ignore[method-assign]

    return undo
