"""One parse of a state machine's definition for all its executions, instead of one per execution.

moto 5.2.5's `ExecutionWorker._get_evaluation_entrypoint` runs the ANTLR parser over the whole ASL definition
for every execution it starts: in a burst of small jobs that was half of the interpreter's time and a fifth of
the server's (benchmarks/README.md, "Local cloud job rate"). The parsed program can be shared because it
holds no state of an execution: its components are built once by the preprocessor (`from_state_props`) and
evaluate against the execution's `Environment`, which holds the stack, the heap, the context object and the
event history. moto itself already evaluates one set of state components from several threads at once: a
Map state's iterations run its `ItemProcessor` states concurrently, each in a frame of the environment.

The one attribute a component sets after construction is its `heap_key` (a uid drawn on first use, under
which retry attempts and backoff are kept in the environment's heap). Drawn lazily, two executions reading
it for the first time at once could each draw one and keep the other's, so every component's key is drawn
here, before the program is shared.

Keyed by the definition's text: an updated definition (a new version) is parsed afresh, and what was parsed
for the old text is never served for the new one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

Undo = Callable[[], None]
Parse = Callable[[str], EvalComponent]

# Definitions held at once: a deployment has a handful; tests create many short-lived ones.
DEFAULT_MAX_DEFINITIONS = 64


def parse_program(definition: str) -> EvalComponent:
    """moto's parse, as `_get_evaluation_entrypoint` does it (the program without the parse tree)."""
    return AmazonStateLanguageParser.parse(definition)[0]


def draw_heap_keys(program: Component) -> int:
    """Draw the heap key of every evaluable component reachable from `program`; returns how many."""
    drawn = 0
    seen: set[int] = set()
    pending: list[Any] = [program]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Component):
            if isinstance(item, EvalComponent):
                _ = item.heap_key
                drawn += 1
            pending.extend(vars(item).values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return drawn


class ProgramCache:
    """Parsed programs by definition text, the least recently used dropped past `max_definitions`."""

    def __init__(self, parse: Parse = parse_program, max_definitions: int = DEFAULT_MAX_DEFINITIONS) -> None:
        self._parse = parse
        self._max = max_definitions
        self._programs: OrderedDict[str, EvalComponent] = OrderedDict()
        self._lock = threading.Lock()

    def program(self, definition: str) -> EvalComponent:
        with self._lock:
            program = self._programs.get(definition)
            if program is not None:
                self._programs.move_to_end(definition)
                return program
        # Parsed outside the lock: a slow parse of one definition must not hold up the others' executions.
        # Two threads missing at once both parse; either result serves. A definition that does not parse
        # raises here every time, as before.
        program = self._parse(definition)
        draw_heap_keys(program)
        with self._lock:
            program = self._programs.setdefault(definition, program)
            self._programs.move_to_end(definition)
            while len(self._programs) > self._max:
                self._programs.popitem(last=False)
        return program


def install(cache: ProgramCache | None = None) -> Undo:
    """Executions take their program from `cache` (a new one by default); returns the undo."""
    programs = cache or ProgramCache()
    original = ExecutionWorker.__dict__["_get_evaluation_entrypoint"]

    def get_evaluation_entrypoint(self: ExecutionWorker) -> EvalComponent:
        return programs.program(self._evaluation_details.state_machine_details.definition)

    ExecutionWorker._get_evaluation_entrypoint = get_evaluation_entrypoint  # type: ignore[method-assign]

    def undo() -> None:
        ExecutionWorker._get_evaluation_entrypoint = original  # type: ignore[method-assign]

    return undo
