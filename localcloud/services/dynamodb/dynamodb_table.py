"""`AWS::DynamoDB::Table` updates for moto's CloudFormation, which has none (moto 5.2.5).

Without one, moto's UpdateStack leaves a changed table as it was and loses it from the stack's resources
(its Ref and GetAtt then fail): a table that gains a stream in an update (StreamSpecification added) has
none, and nothing that reads the stream can be deployed. CloudFormation updates a table's stream and its
deletion protection in place (the table and its items stay); a new TableName or KeySchema replaces it.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesdynamodbdynamodb_tablepy
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table

LOG = logging.getLogger(__name__)
Undo = Callable[[], None]


def _update(  # noqa: PLR0917 - moto's classmethod signature
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Any:
    properties = cloudformation_json.get("Properties") or {}
    table: Table = original_resource
    name = properties.get("TableName") or table.name
    if name != table.name or properties.get("KeySchema", table.schema) != table.schema:
        # Replacement, as CloudFormation does it: the new table first, then the old one goes.
        replacement = cls.create_from_cloudformation_json(
            properties.get("TableName") or new_resource_name, cloudformation_json, account_id, region_name
        )
        dynamodb_backends[account_id][region_name].delete_table(name=table.name)
        return replacement
    _update_stream(table, properties.get("StreamSpecification"))
    table.deletion_protection_enabled = bool(properties.get("DeletionProtectionEnabled", False))
    return table


def _update_stream(table: Table, wanted: dict[str, Any] | None) -> None:
    enabled = bool((table.stream_specification or {}).get("StreamEnabled"))
    view_type = (table.stream_specification or {}).get("StreamViewType")
    if wanted and (wanted.get("StreamEnabled", True) is not False):
        if not enabled or wanted.get("StreamViewType") != view_type:
            # A new stream (a new label, so a new StreamArn), as DynamoDB makes for any change of view type.
            table.set_stream_specification(dict(wanted))
            LOG.info("table %s: stream %s enabled in place", table.name, wanted.get("StreamViewType"))
    elif enabled:
        table.set_stream_specification(None)
        table.stream_shard = None
        LOG.info("table %s: stream disabled in place", table.name)


def install() -> Undo:
    """Give moto's Table an in-place CloudFormation update; returns a function that removes it."""
    had_own = "update_from_cloudformation_json" in Table.__dict__
    original = Table.__dict__.get("update_from_cloudformation_json")
    Table.update_from_cloudformation_json = classmethod(_update)  # type: ignore[assignment,method-assign]

    def undo() -> None:
        if had_own:
            Table.update_from_cloudformation_json = original  # type: ignore[assignment,method-assign]
        else:
            del Table.update_from_cloudformation_json

    return undo
