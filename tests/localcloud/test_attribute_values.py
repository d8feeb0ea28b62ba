"""DynamoDB attribute values serialized directly (localcloud.services.dynamodb.attribute_values): the same
answer as moto's generic serializer, on generated and hostile values and on a running server's answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core import serialize
from moto.core.utils import get_service_model

from localcloud.services.dynamodb import attribute_values
from tests.localcloud.support import client, moto_server

TEXT = st.text(max_size=12)
NUMBER = st.one_of(
    st.integers(min_value=-(10**38), max_value=10**38).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
)
BLOB = st.one_of(st.binary(max_size=12), st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()))

SCALARS = st.one_of(
    TEXT.map(lambda s: {"S": s}),
    NUMBER.map(lambda n: {"N": n}),
    BLOB.map(lambda b: {"B": b}),
    st.lists(TEXT, max_size=3).map(lambda v: {"SS": v}),
    st.lists(NUMBER, max_size=3).map(lambda v: {"NS": v}),
    st.lists(BLOB, max_size=3).map(lambda v: {"BS": v}),
    st.booleans().map(lambda b: {"NULL": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"S": None}),  # an entry with no value, left out as the generic serializer leaves it out
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.dictionaries(TEXT, inner, max_size=3).map(lambda m: {"M": m}),
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
    ),
    max_leaves=12,
)
# Not plain attribute values: they must take the generic way and still give its answer.
HOSTILE = st.one_of(
    st.just({"S": "a", "N": "1"}),  # two tags
    st.just({"s": "lower"}),  # a picker alias of S
    st.just({"S": "a", "Extra": 1}),
    st.just({}),
    st.just({"StringSetAttributeValue": ["x"]}),  # a shape-name alias of SS
)
ITEMS = st.dictionaries(TEXT, st.one_of(VALUES, HOSTILE), max_size=4)


def serialize_with(service: str, operation: str, result: dict[str, Any], *, fast: bool) -> Any:
    operation_model = get_service_model(service).operation_model(operation)
    undo = attribute_values.install() if fast else None
    try:
        serializer = serialize.JSONSerializer(
            operation_model=operation_model, value_picker=serialize.XFormedAttributePicker()
        )
        return json.loads(serializer.serialize(result)["body"])
    finally:
        if undo is not None:
            undo()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=ITEMS)
def test_get_item_answers_are_the_generic_serializers(item: dict[str, Any]) -> None:
    result = {"Item": item, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}
    assert serialize_with("dynamodb", "GetItem", result, fast=True) == serialize_with(
        "dynamodb", "GetItem", result, fast=False
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(new=ITEMS, old=ITEMS, keys=ITEMS)
def test_stream_records_are_the_generic_serializers(
    new: dict[str, Any], old: dict[str, Any], keys: dict[str, Any]
) -> None:
    record = {
        "eventID": "1",
        "eventName": "MODIFY",
        "dynamodb": {"Keys": keys, "NewImage": new, "OldImage": old, "SequenceNumber": "1", "SizeBytes": 10},
    }
    result = {"Records": [record, record], "NextShardIterator": "it"}
    assert serialize_with("dynamodbstreams", "GetRecords", result, fast=True) == serialize_with(
        "dynamodbstreams", "GetRecords", result, fast=False
    )


def test_a_plain_value_never_asks_the_picker_and_the_generic_way_does() -> None:
    """The control: without the install each AttributeValue member goes through the picker."""
    asked: list[str] = []

    class Counting(serialize.XFormedAttributePicker):
        def __call__(self, context: serialize.AttributePickerContext) -> Any:
            parent = getattr(context.shape, "parent", None)
            if parent is not None and parent.name == "AttributeValue":
                asked.append(context.key)
            return super().__call__(context)

    operation_model = get_service_model("dynamodb").operation_model("GetItem")
    result = {"Item": {"id": {"S": "a"}, "n": {"N": "1"}, "m": {"M": {"x": {"BOOL": True}}}}}
    serialize.JSONSerializer(operation_model=operation_model, value_picker=Counting()).serialize(result)
    assert len(asked) == 4 * 10  # four attribute values, ten members each
    asked.clear()
    undo = attribute_values.install()
    try:
        serialize.JSONSerializer(operation_model=operation_model, value_picker=Counting()).serialize(result)
    finally:
        undo()
    assert asked == []


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


ITEM = {
    "pk": {"S": "job-1"},
    "n": {"N": "12345678901234567890.5"},
    "b": {"B": b"\x00\xffbytes"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "m": {"M": {"nested": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}, {"M": {}}]}}},
    "empty": {"S": ""},
}


def test_a_servers_answers_are_the_same_either_way(endpoint: str) -> None:
    ddb = client(endpoint, "dynamodb")
    ddb.create_table(
        TableName="values",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.put_item(TableName="values", Item=ITEM)
    streams = client(endpoint, "dynamodbstreams")
    stream_arn = ddb.describe_table(TableName="values")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def answers() -> list[Any]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        return [
            ddb.get_item(TableName="values", Key={"pk": {"S": "job-1"}})["Item"],
            ddb.batch_get_item(RequestItems={"values": {"Keys": [{"pk": {"S": "job-1"}}]}})["Responses"],
            ddb.scan(TableName="values")["Items"],
            [record["dynamodb"] for record in records],
        ]

    def updated() -> Any:
        return ddb.update_item(
            TableName="values",
            Key={"pk": {"S": "job-1"}},
            UpdateExpression="SET c = :c",
            ExpressionAttributeValues={":c": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]

    undo = attribute_values.install()
    try:
        updated_fast = updated()
        fast = answers()
    finally:
        undo()
    updated_generic = updated()
    generic = answers()
    assert updated_fast == updated_generic
    assert updated_fast["b"] == {"B": b"\x00\xffbytes"} and updated_fast["bs"] == {"BS": [b"x", b"y"]}
    assert updated_fast["m"] == ITEM["m"] and updated_fast["empty"] == {"S": ""}
    assert fast[:3] == generic[:3]
    # The stream: the second UpdateItem added a record; the first records read the same either way.
    assert fast[3] == generic[3][: len(fast[3])]
    assert fast[3][0]["NewImage"]["b"] == {"B": b"\x00\xffbytes"}
