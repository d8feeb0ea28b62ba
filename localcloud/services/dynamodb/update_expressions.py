"""Each UpdateExpression text parsed once, instead of twice per UpdateItem.

moto 5.2.5 tokenizes and parses an UpdateItem's expression in the handler (to list the placeholders it uses)
and again in the backend (to validate and apply it): a job's checkpoints send the same few texts thousands
of times, and the two parses were 5% of the server's time in a burst of small jobs. The parsed tree is only
read: the handler looks for placeholders, and the backend's validator works on its own deep copy (moto's
`Validator.__init__`), so one parse serves every request with the same text. A text that does not parse is
not cached and fails with its ValidationException at every request, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

Undo = Callable[[], None]
Parse = Callable[[str], Any]

# Distinct expression texts held at once: the pipeline sends a handful; tests make more.
MAX_EXPRESSIONS = 1024


def install(*, parse: Parse | None = None) -> Undo:
    """`UpdateExpressionParser.make` cached by text (`parse`: the parse to cache, moto's by default);
    returns the undo."""
    original = UpdateExpressionParser.__dict__["make"]
    cached = functools.lru_cache(maxsize=MAX_EXPRESSIONS)(parse or UpdateExpressionParser.make)
    UpdateExpressionParser.make = staticmethod(cached)

    def undo() -> None:
        UpdateExpressionParser.make = original

    return undo
