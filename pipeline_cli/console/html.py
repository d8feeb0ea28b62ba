"""HTML that is escaped by construction: every value put into markup goes through `escape`, unless it is
`Html` already (markup this module or a page built). Pages are built from literal templates with `render`,
so a job id, an error message or a DLQ body can never become markup."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


class Html(str):
    """A string that is safe markup: escaping it again returns it as it is."""

    __slots__ = ()


def escape(value: Any) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def render(template: str, *args: Any, **kwargs: Any) -> Html:
    """`template.format(...)` with every argument escaped (an `Html` argument goes in as it is). The
    template itself must be a literal: it is the only markup."""
    return Html(
        template.format(
            *(escape(arg) for arg in args), **{key: escape(value) for key, value in kwargs.items()}
        )
    )


def join(parts: Iterable[Any], separator: str = "") -> Html:
    return Html(escape(separator).join(escape(part) for part in parts))
