"""moto's list of its service packages read once, instead of from the disk at every request.

moto 5.2.5's server finds the backend of each request by checking the service name against
`list_of_moto_modules()`, which lists moto's package directory and stats each of its ~150 entries, inside the
dispatcher's lock: in a burst of small jobs that was 3.4% of the server's time, and every other request
waited for it. The installed package does not change while the server runs, so the list is read at the
first request and kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from moto import backends

Undo = Callable[[], None]


def install(*, modules: Callable[[], Iterable[str]] | None = None) -> Undo:
    """`backends.list_of_moto_modules` read once (`modules`: the listing, moto's by default); returns the undo."""
    original = backends.list_of_moto_modules
    listing = modules or original

    @functools.cache
    def once() -> tuple[str, ...]:
        return tuple(listing())

    backends.list_of_moto_modules = once

    def undo() -> None:
        backends.list_of_moto_modules = original

    return undo
