"""Each UpdateExpression text parsed once, instead of twice per UpdateItem, and its tree copied from a
pickle instead of by `copy.deepcopy`.

moto 5.2.5 tokenizes and parses an UpdateItem's expression in the handler (to list the placeholders it uses)
and again in the backend (to validate and apply it): a job's checkpoints send the same few texts thousands
of times, and the two parses were 5% of the server's time in a burst of small jobs. The parsed tree is only
read: the handler looks for placeholders, and the backend's validator works on its own deep copy (moto's
`Validator.__init__`), so one parse serves every request with the same text. A text that does not parse is
not cached and fails with its ValidationException at every request, as before.

That deep copy was then 5% of the server's GIL in a 300-job burst (`copy.deepcopy` walks the tree's nodes,
parents and children, through its generic memo: 290 us for a checkpoint's expression). Each cached tree is
pickled once, and the validator's copy of it is `pickle.loads` of those bytes (58 us): the same deep copy, an
independent tree with the same nodes and the same parent links. Anything else the validators copy (a tree
not from the cache, a list of values) goes to `copy.deepcopy` as before.
"""

from __future__ import annotations

import functools
import pickle
import weakref
from collections.abc import Callable
from typing import Any

from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

Undo = Callable[[], None]
Parse = Callable[[str], Any]

# Distinct expression texts held at once: the pipeline sends a handful; tests make more.
MAX_EXPRESSIONS = 1024


def install(*, parse: Parse | None = None) -> Undo:
    """`UpdateExpressionParser.make` cached by text (`parse`: the parse to cache, moto's by default), and
    the validators' copy of a cached tree made from its pickle; returns the undo."""
    original_make = UpdateExpressionParser.__dict__["make"]
    original_deepcopy = validators.deepcopy
    parse = parse or UpdateExpressionParser.make
    # A tree's pickle lives as long as the tree does (the cache evicts the least recently used text).
    pickled: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()

    @functools.lru_cache(maxsize=MAX_EXPRESSIONS)
    def parse_once(text: str) -> Any:
        tree = parse(text)
        pickled[tree] = pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
        return tree

    def copy_tree(value: Any, memo: dict[int, Any] | None = None) -> Any:
        try:
            blob = pickled.get(value)
        except TypeError:  # not weakly referenceable: no tree of ours
            blob = None
        return pickle.loads(blob) if blob is not None else original_deepcopy(value, memo)  # noqa: S301 - our own bytes

    UpdateExpressionParser.make = staticmethod(parse_once)
    # deepcopy is generic in its argument; copy_tree keeps its contract (a deep copy of what it is given).
    validators.deepcopy = copy_tree  # type: ignore[assignment]

    def undo() -> None:
        UpdateExpressionParser.make = original_make
        validators.deepcopy = original_deepcopy

    return undo
