"""DynamoDB's attribute values written to the wire directly, with the answer moto's generic serializer gives.

moto 5.2.5 serializes every response against its botocore model: for each member of a structure it asks an
attribute picker for the value under six alias rules and their snake_case forms. An `AttributeValue` has ten
members (S, N, B, SS, NS, BS, M, L, NULL, BOOL) and holds exactly one, so each attribute of each item costs
about a hundred lookups that find nothing. DynamoDB's and DynamoDB Streams' answers are mostly attribute
values (GetItem, UpdateItem's ALL_NEW, BatchGetItem, a stream record's two images): in a burst of small jobs
they were a quarter of the server's time.

An attribute value moto hands the serializer is a plain dict keyed by its type tag (`dynamo_to_dict`, a stream
record's `to_json`). For such a dict no alias of a missing member can be one of its keys (the aliases are the
members' shape names, `AttributeValue`-prefixed names and lower-case forms), so the picker's answer for each
member is the dict's own entry. This path takes that entry and serializes it with moto's own method for the
member's shape (strings, base64 for binaries, nested maps and lists through here again); anything else (a
model object, a dict with another key, a picker with response transformers) goes the generic way.
tests/localcloud/test_attribute_values.py holds both ways equal on generated and hostile values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.serialize import BaseJSONSerializer

Undo = Callable[[], None]

SHAPE = "AttributeValue"
TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def _is_plain(serializer: BaseJSONSerializer, value: Any, shape: Any) -> bool:
    return (
        shape.name == SHAPE
        and type(value) is dict
        and value.keys() <= TAGS
        and shape.members.keys() == TAGS
        and not getattr(serializer._value_picker, "response_transformers", None)
    )


def install() -> Undo:
    """Route plain attribute values around the picker in every JSON-protocol answer; returns the undo."""
    generic = BaseJSONSerializer._serialize_type_structure

    def serialize_type_structure(
        self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if not _is_plain(self, value, shape):
            generic(self, serialized, value, shape, key)
            return
        wrapper: Any = self.MAP_TYPE() if key else serialized
        # The model's member order, as the generic loop writes them.
        for member_key, member_shape in shape.members.items():
            member_value = value.get(member_key)
            if member_value is not None:
                member_shape.parent = shape
                self._serialize(wrapper, member_value, member_shape, member_key)
        if key:
            self._default_serialize(serialized, wrapper, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_type_structure  # type: ignore[method-assign]

    def undo() -> None:
        BaseJSONSerializer._serialize_type_structure = generic  # type: ignore[method-assign]

    return undo
