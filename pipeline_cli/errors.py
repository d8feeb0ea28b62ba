"""The one exception type the CLI turns into `error: ...` and a non-zero exit, never a traceback."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can act on. The message says what is wrong and what to do."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
