"""Each UpdateExpression text parsed once (localcloud.services.dynamodb.update_expressions), on an in-process
moto server: the same items either way, one parse per text, and a bad text refused at every request."""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

from localcloud.services.dynamodb import update_expressions
from tests.localcloud.support import client, moto_server

# The kinds of action a checkpoint uses, and nested paths: each text several times with other values.
UPDATES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("SET #c = :c, bytes_in = if_not_exists(bytes_in, :zero) + :n", {"#c": "cursor"}, {":c": 1, ":n": 10}),
    ("SET #c = :c, bytes_in = if_not_exists(bytes_in, :zero) + :n", {"#c": "cursor"}, {":c": 2, ":n": 5}),
    ("ADD records_in :n SET shards.#s = :v", {"#s": "s0"}, {":n": 3, ":v": "done"}),
    ("ADD records_in :n SET shards.#s = :v", {"#s": "s1"}, {":n": 4, ":v": "running"}),
    ("SET events = list_append(if_not_exists(events, :empty), :e) REMOVE doomed", {}, {":e": ["a"]}),
    ("SET events = list_append(if_not_exists(events, :empty), :e) REMOVE doomed", {}, {":e": ["b"]}),
    ("SET #c = :c, bytes_in = if_not_exists(bytes_in, :zero) + :n", {"#c": "cursor"}, {":c": 3, ":n": 1}),
]
TEXTS = {text for text, _, _ in UPDATES}


def _value(python: Any) -> dict[str, Any]:
    if isinstance(python, int):
        return {"N": str(python)}
    if isinstance(python, list):
        return {"L": [_value(item) for item in python]}
    return {"S": python}


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    with moto_server() as endpoint:
        dynamodb = client(endpoint, "dynamodb")
        for table in ("cached", "plain"):
            dynamodb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield dynamodb


def apply_updates(ddb: Any, table: str) -> dict[str, Any]:
    ddb.put_item(TableName=table, Item={"pk": {"S": "job"}, "doomed": {"S": "x"}, "shards": {"M": {}}})
    for text, names, values in UPDATES:
        arguments: dict[str, Any] = {
            "TableName": table,
            "Key": {"pk": {"S": "job"}},
            "UpdateExpression": text,
            "ExpressionAttributeValues": {k: _value(v) for k, v in values.items()}
            | ({":zero": {"N": "0"}} if ":zero" in text else {})
            | ({":empty": {"L": []}} if ":empty" in text else {}),
        }
        if names:
            arguments["ExpressionAttributeNames"] = names
        ddb.update_item(**arguments)
    item: dict[str, Any] = ddb.get_item(TableName=table, Key={"pk": {"S": "job"}})["Item"]
    return item


def test_the_same_items_with_one_parse_per_text(ddb: Any) -> None:
    parsed: Counter[str] = Counter()
    moto_make = UpdateExpressionParser.make

    def counting(text: str) -> Any:
        parsed[text] += 1
        return moto_make(text)

    undo = update_expressions.install(parse=counting)
    try:
        cached = apply_updates(ddb, "cached")
    finally:
        undo()
    plain = apply_updates(ddb, "plain")
    assert cached == plain
    assert cached["cursor"] == {"N": "3"} and cached["bytes_in"] == {"N": "16"}
    assert cached["records_in"] == {"N": "7"} and cached["events"] == {"L": [{"S": "a"}, {"S": "b"}]}
    assert "doomed" not in cached
    # Seven requests, each parsed twice by moto (handler and backend) without the cache.
    assert parsed == Counter(dict.fromkeys(TEXTS, 1))


def test_a_text_that_does_not_parse_is_refused_at_every_request(ddb: Any) -> None:
    undo = update_expressions.install()
    try:
        for _ in range(2):
            with pytest.raises(ClientError) as refused:
                ddb.update_item(
                    TableName="cached",
                    Key={"pk": {"S": "job"}},
                    UpdateExpression="SET = :broken",
                    ExpressionAttributeValues={":broken": {"N": "1"}},
                )
            assert refused.value.response["Error"]["Code"] == "ValidationException"
            assert "Invalid UpdateExpression" in refused.value.response["Error"]["Message"]
    finally:
        undo()


def test_the_validator_copies_a_cached_tree_from_its_pickle_and_leaves_the_tree_as_parsed(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's validator deep-copies the tree per request (its copy is then filled with the request's names
    # and values); `copy.deepcopy` of a checkpoint's tree was 5% of the server's GIL in a burst.
    copied: list[str] = []
    moto_deepcopy = validators.deepcopy

    def counting(value: Any, memo: Any = None) -> Any:
        copied.append(type(value).__name__)
        return moto_deepcopy(value, memo)

    monkeypatch.setattr(validators, "deepcopy", counting)
    control = apply_updates(ddb, "plain")
    assert copied.count("UpdateExpression") == len(UPDATES)  # the control: one generic copy per request
    copied.clear()

    trees: dict[str, bytes] = {}
    undo = update_expressions.install()
    try:
        cached = apply_updates(ddb, "cached")
        for text in TEXTS:
            # The cached tree, pickled after every request used it: as parsed.
            trees[text] = pickle.dumps(UpdateExpressionParser.make(text))
    finally:
        undo()
    assert cached == control
    assert "UpdateExpression" not in copied
    assert trees == {text: pickle.dumps(UpdateExpressionParser.make(text)) for text in TEXTS}
