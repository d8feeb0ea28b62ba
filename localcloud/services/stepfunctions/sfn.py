"""Step Functions fixes applied inside the local cloud's server process (moto 5.2.5), so that the deployed
segmented-job definition runs; also the one hook for execution status changes (`add_status_listener`).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesstepfunctionssfnpy
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

from botocore import xform_name
from botocore.model import ServiceModel, StructureShape
from botocore.session import get_session
from moto.cloudwatch.models import cloudwatch_backends
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.state import state as asl_state
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
from moto.stepfunctions.parser.models import stepfunctions_parser_backends
from moto.stepfunctions.utils import cfn_to_api_tags

LOG = logging.getLogger(__name__)

Undo = Callable[[], None]


def install() -> Undo:
    """Apply every fix; the returned function restores moto as it was."""
    undos = [
        _route_cloudformation_to_executing_backend(),
        _normalise_sfn_task_parameters(),
        _aws_entered_time(),
        _execution_lifecycle(),
        add_status_listener(_publish_execution_metrics),
    ]

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


# -- 1. CloudFormation -> executing backend ------------------------------------------------------------


def executing_backend(account_id: str, region_name: str) -> Any:
    return stepfunctions_parser_backends[account_id][region_name]


def _definition(properties: dict[str, Any]) -> str:
    # CDK emits DefinitionString; CloudFormation also allows a Definition object with substitutions.
    definition = properties.get("DefinitionString")
    if definition is None and "Definition" in properties:
        definition = json.dumps(properties["Definition"])
    text = str(definition or "")
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        text = text.replace("${" + key + "}", str(value))
    return text


def _create_from_cloudformation_json(
    cls: type[StateMachine],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> StateMachine:
    properties = cloudformation_json["Properties"]
    state_machine: StateMachine = executing_backend(account_id, region_name).create_state_machine(
        name=properties.get("StateMachineName", resource_name),
        definition=_definition(properties),
        roleArn=properties.get("RoleArn", ""),
        tags=cfn_to_api_tags(properties.get("Tags", [])),
        sm_type=properties.get("StateMachineType"),
    )
    return state_machine


def _delete_from_cloudformation_json(
    cls: type[StateMachine],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> None:
    executing_backend(account_id, region_name).delete_state_machine(resource_name)


def _update_from_cloudformation_json(  # noqa: PLR0917 - moto's classmethod signature
    cls: type[StateMachine],
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> StateMachine:
    properties = cloudformation_json.get("Properties", {})
    name = properties.get("StateMachineName", original_resource.name)
    if name != original_resource.name:
        # A new name is a replacement, as in CloudFormation.
        cloudformation_json["Properties"] = original_resource.get_cfn_properties(properties)
        replacement = _create_from_cloudformation_json(
            cls, name, cloudformation_json, account_id, region_name
        )
        _delete_from_cloudformation_json(
            cls, original_resource.arn, cloudformation_json, account_id, region_name
        )
        return replacement
    backend = executing_backend(account_id, region_name)
    state_machine: StateMachine = backend.update_state_machine(
        original_resource.arn, definition=_definition(properties) or None, role_arn=properties.get("RoleArn")
    )
    backend.tagger.tag_resource(state_machine.arn, cfn_to_api_tags(properties.get("Tags", [])))
    return state_machine


def _route_cloudformation_to_executing_backend() -> Undo:
    originals = {
        name: StateMachine.__dict__[name]
        for name in (
            "create_from_cloudformation_json",
            "delete_from_cloudformation_json",
            "update_from_cloudformation_json",
        )
    }
    StateMachine.create_from_cloudformation_json = classmethod(_create_from_cloudformation_json)  # type: ignore[assignment,method-assign]
    StateMachine.delete_from_cloudformation_json = classmethod(_delete_from_cloudformation_json)  # type: ignore[assignment,method-assign]
    StateMachine.update_from_cloudformation_json = classmethod(_update_from_cloudformation_json)  # type: ignore[assignment,method-assign]

    def undo() -> None:
        for name, original in originals.items():
            setattr(StateMachine, name, original)

    return undo


# -- 2. startExecution parameters -----------------------------------------------------------------------


@cache
def _service_model(service_name: str) -> ServiceModel:
    return get_session().get_service_model(service_name)


@cache
def _operation_shapes(service_name: str, action: str) -> tuple[StructureShape | None, StructureShape | None]:
    """Input and output shapes of `action` (snake_case, e.g. start_execution) in botocore's model."""
    model = _service_model(service_name)
    for operation_name in model.operation_names:
        if xform_name(operation_name) == action:
            operation = model.operation_model(operation_name)
            return operation.input_shape, operation.output_shape
    return None, None


def _normalise_sfn_task_parameters() -> Undo:
    original_parameters = StateTaskServiceSfn._normalise_parameters
    original_response = StateTaskServiceSfn._normalise_response

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        input_shape, _ = _operation_shapes(
            self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name)
        )
        if input_shape is not None:
            # StateMachineArn -> stateMachineArn, Name -> name, Input -> input (matched by snake_case).
            self._to_boto_request(parameters, input_shape)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_response(self, response, boto_service_name, service_action_name)
        _, output_shape = _operation_shapes(
            self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name)
        )
        if output_shape is not None and isinstance(response, dict):
            # executionArn -> ExecutionArn, startDate -> StartDate: the task result as AWS returns it.
            self._from_boto_response(response, output_shape)
            # A datetime in the state would make DescribeExecution fail to serialize the output.
            for key, value in response.items():
                if isinstance(value, dt.datetime):
                    response[key] = aws_timestamp(value.isoformat())

    StateTaskServiceSfn._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = normalise_response  # type: ignore[method-assign]

    def undo() -> None:
        StateTaskServiceSfn._normalise_parameters = original_parameters  # type: ignore[method-assign]
        StateTaskServiceSfn._normalise_response = original_response  # type: ignore[method-assign]

    return undo


# -- 3. $$.State.EnteredTime ----------------------------------------------------------------------------


def aws_timestamp(value: str) -> str:
    """`2026-11-22T15:04:05.123456+00:00` -> `2026-11-22T15:04:05.123Z` (milliseconds, UTC, Z)."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _aws_entered_time() -> Undo:
    original = asl_state.StateData

    def state_data(**fields: Any) -> Any:
        if isinstance(fields.get("EnteredTime"), str):
            fields["EnteredTime"] = aws_timestamp(fields["EnteredTime"])
        return original(**fields)

    asl_state.StateData = state_data  # type: ignore[assignment,misc]

    def undo() -> None:
        asl_state.StateData = original  # type: ignore[misc]

    return undo


# -- 4. Execution status changes: one hook, any number of listeners ---------------------------------------

StatusListener = Callable[[Any, str], None]
"""Called with (execution, status) once with RUNNING, then once with its terminal status."""

_listeners: list[StatusListener] = []
# Guards the terminal transition, which the worker thread (end, failure, timeout) and a StopExecution
# request can race for: whichever comes first decides the status, and only it notifies.
_terminal_lock = threading.Lock()
_TERMINAL_MARK = "_localcloud_terminal_status"
# Set by `hold_running_for_final_save` on the executions RUNNING when the server's last save began.
_RUNNING_AT_FINAL_SAVE = "_localcloud_running_at_final_save"


def add_status_listener(listener: StatusListener) -> Undo:
    """Call `listener` on every execution status change (needs `install()`); returns its removal."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def _notify(execution: Any, status: str) -> None:
    if getattr(execution, _RUNNING_AT_FINAL_SAVE, False) and status != ExecutionStatus.SUCCEEDED.value:
        return  # the server is stopping: it is saved RUNNING and resumed, so it has not ended (no event, metric)
    for listener in list(_listeners):
        try:
            listener(execution, status)
        except Exception:  # a listener must never break an execution
            LOG.exception("execution status listener %r failed for %s", listener, status)


def status_of(execution: Any) -> str:
    return str(getattr(execution.exec_status, "value", execution.exec_status))


def _execution_lifecycle() -> Undo:
    """RUNNING once at start, the terminal status exactly once, ABORTED as soon as StopExecution returns.

    moto sets the terminal status only when the worker thread's program returns
    (`BaseExecutionWorkerCommunication.terminated`). StopExecution just flags the program as stopped: a
    Wait state notices at once, but a Task (a Lambda call, a `.waitForTaskToken` callback) keeps the
    execution RUNNING until it returns, which for a callback may be never. On AWS the execution is ABORTED
    when StopExecution returns, so the stop itself is reflected here, and the later `terminated` call of
    that execution is ignored (also when the interrupted task then failed: moto would overwrite ABORTED
    with FAILED). moto's StopExecution drops the request's `error` and `cause`; they stay unset.
    """
    original_start = Execution.start
    original_stop = Execution.stop
    original_terminated = BaseExecutionWorkerCommunication.terminated

    def start(self: Any) -> None:
        # moto refuses a second start; a resumed execution (`resume_saved_executions`) was announced
        # before the state was saved.
        started = self.exec_worker is None and not getattr(self, _RESUME_MARK, False)
        if started:
            # Before the worker thread exists, so that RUNNING is always announced before the end.
            _notify(self, ExecutionStatus.RUNNING.value)
        original_start(self)

    def stop(self: Any, stop_date: dt.datetime, error: str | None, cause: str | None) -> None:
        original_stop(self, stop_date, error, cause)
        env = getattr(self.exec_worker, "env", None)
        with _terminal_lock:
            if getattr(self, _TERMINAL_MARK, None) is not None or env is None:
                return
            if not isinstance(env.program_state(), ProgramStopped):
                return  # it had already ended: StopExecution changes nothing
            self.exec_status = ExecutionStatus.ABORTED
            # moto's StopExecution passes a naive UTC time; start_date is aware (ExecutionTime subtracts).
            self.stop_date = stop_date if stop_date.tzinfo else stop_date.replace(tzinfo=dt.UTC)
            setattr(self, _TERMINAL_MARK, ExecutionStatus.ABORTED.value)
        _notify(self, ExecutionStatus.ABORTED.value)

    def terminated(self: Any) -> None:
        execution = self.execution
        with _terminal_lock:
            if getattr(execution, _TERMINAL_MARK, None) is not None:
                return
            original_terminated(self)
            status = status_of(execution)
            setattr(execution, _TERMINAL_MARK, status)
        _notify(execution, status)

    Execution.start = start  # type: ignore[method-assign]
    Execution.stop = stop  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]

    def undo() -> None:
        Execution.start = original_start  # type: ignore[method-assign]
        Execution.stop = original_stop  # type: ignore[method-assign]
        BaseExecutionWorkerCommunication.terminated = original_terminated  # type: ignore[method-assign]

    return undo


# -- 5. AWS/States metrics ------------------------------------------------------------------------------

_END_METRICS = {
    "SUCCEEDED": "ExecutionsSucceeded",
    "FAILED": "ExecutionsFailed",
    "TIMED_OUT": "ExecutionsTimedOut",
    "ABORTED": "ExecutionsAborted",
}


def _put_states_metrics(execution: Any, data: list[tuple[str, float, str]]) -> None:
    try:
        backend = cloudwatch_backends[execution.account_id][execution.region_name]
        dimensions = [{"Name": "StateMachineArn", "Value": execution.state_machine_arn}]
        # No Timestamp: moto stamps the datum itself, in the naive UTC its queries compare against.
        backend.put_metric_data(
            "AWS/States",
            [
                {"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dimensions}
                for name, value, unit in data
            ],
        )
    except Exception:  # metrics must never break an execution
        LOG.exception("publishing AWS/States metrics failed")


def _publish_execution_metrics(execution: Any, status: str) -> None:
    if status == ExecutionStatus.RUNNING.value:
        _put_states_metrics(execution, [("ExecutionsStarted", 1.0, "Count")])
        return
    data = []
    if status in _END_METRICS:
        data.append((_END_METRICS[status], 1.0, "Count"))
    if execution.stop_date is not None and execution.start_date is not None:
        elapsed_ms = (execution.stop_date - execution.start_date).total_seconds() * 1000
        data.append(("ExecutionTime", elapsed_ms, "Milliseconds"))
    _put_states_metrics(execution, data)


# -- 6. Executions across a save and a restore (`localcloud.core.persistence`) -------------------------------

# Set on an execution that was RUNNING when the state was saved: it is started again after a restore.
_RESUME_MARK = "_localcloud_resume"
# What a run sets when it ends; a resumed execution has none of it (moto's Execution.__init__ values).
_END_ATTRIBUTES = {"stop_date": None, "output": None, "error": None, "cause": None}


class _NoCallbacks:
    """A saved execution waits for no task token and runs no map run."""

    def heartbeat(self, callback_id: str) -> bool:
        return False

    def notify(self, callback_id: str, outcome: Any) -> bool:
        return False

    def get(self, arn: str) -> None:
        return None

    def get_all(self) -> list[Any]:
        return []


class SavedEnvironment:
    """What a finished execution's worker still answers after a restore: its history and its end."""

    def __init__(self, history: list[Any], program_state: Any) -> None:
        self.history = history
        self.saved_program_state = program_state
        self.callback_pool_manager = _NoCallbacks()
        self.map_run_record_pool_manager = _NoCallbacks()

    @property
    def event_manager(self) -> SavedEnvironment:
        return self

    def get_event_history(self) -> list[Any]:
        return list(self.history)

    def program_state(self) -> Any:
        return self.saved_program_state


class SavedWorker:
    """Stands in for a finished execution's worker (a thread and its interpreter) in saved state."""

    def __init__(self, env: SavedEnvironment | None) -> None:
        self.env = env

    def stop(self, stop_date: dt.datetime, cause: str | None, error: str | None) -> None:
        pass  # it has ended


def execution_state_to_save(execution: Any) -> dict[str, Any]:
    """The attributes of a Step Functions execution (the executing backend's) to save, without its thread.

    A finished execution keeps its history and how it ended. One still RUNNING keeps only what it was
    started with, and is marked to be started again by `resume_saved_executions` after a restore."""
    state = dict(execution.__dict__)
    worker = state.pop("exec_worker", None)
    running_at_final_save = state.pop(_RUNNING_AT_FINAL_SAVE, False)
    running = _is_running(execution)
    if running or (running_at_final_save and execution.exec_status != ExecutionStatus.SUCCEEDED):
        if not running:
            # It ended while the server was stopping: the final save answers every request 503, so its next
            # call failed (seen: a Lambda task's 503 without a request id, a KeyError in moto's task, the
            # execution FAILED) while nothing it did is kept. Saved as it was when the save began: RUNNING.
            state.update(_END_ATTRIBUTES)
            state.pop(_TERMINAL_MARK, None)
            state["exec_status"] = ExecutionStatus.RUNNING
        state["exec_worker"] = None
        state[_RESUME_MARK] = True
        return state
    env = getattr(worker, "env", None)
    if env is None:
        state["exec_worker"] = SavedWorker(None)
    else:
        state["exec_worker"] = SavedWorker(
            SavedEnvironment(env.event_manager.get_event_history(), env.program_state())
        )
    state.pop(_RESUME_MARK, None)
    return state


def _is_running(execution: Any) -> bool:
    """RUNNING, and no terminal transition claimed yet (see `_execution_lifecycle`)."""
    return bool(
        execution.exec_status == ExecutionStatus.RUNNING and getattr(execution, _TERMINAL_MARK, None) is None
    )


def hold_running_for_final_save(of: Iterable[Any] | None = None) -> int:
    """Mark the executions RUNNING now (`of`: these instead of every execution), as the server's final save
    begins: whatever ends them from here on is the shutdown, and they are saved to be resumed
    (`execution_state_to_save`). Returns how many."""
    running = [execution for execution in (executions() if of is None else of) if _is_running(execution)]
    for execution in running:
        setattr(execution, _RUNNING_AT_FINAL_SAVE, True)
    return len(running)


def executions() -> Iterator[Any]:
    """Every execution of the executing backend, in every account and region."""
    for _account, _region, backend in stepfunctions_parser_backends.iter_backends():
        machines: list[Any] = getattr(backend, "state_machines", [])
        for state_machine in machines:
            yield from state_machine.executions


def resume_saved_executions() -> list[Any]:
    """Start again, from their original input and under their own name and ARN, the executions that were
    RUNNING when the restored state was saved; returns them. No RUNNING event or ExecutionsStarted metric:
    they were announced when they first started."""
    resumed = [
        execution
        for execution in executions()
        if getattr(execution, _RESUME_MARK, False) and execution.exec_worker is None
    ]
    for execution in resumed:
        execution.start()
        LOG.info("resumed execution %s from its input", execution.exec_arn)
    return resumed
