"""Executions the server's final save catches: one RUNNING when the save began is saved RUNNING and resumed,
even when the save's 503s end it before it is written (localcloud.services.stepfunctions.sfn).

Found under load (tests/integration/test_persistence.py, 2 runs in 5 with two test workers): at `down` the
final save closed the gate and waited for a Lambda invocation in flight; meanwhile the execution's next call
got the gate's 503 (no request id: a KeyError in moto's Lambda task), the execution FAILED and was saved so,
and after `up` the job stayed RUNNING with nothing to run it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from moto.stepfunctions.parser.api import ExecutionStatus

from localcloud.services.stepfunctions import sfn

RESUME = "_localcloud_resume"


def execution(status: ExecutionStatus, **ended: Any) -> Any:
    fields: dict[str, Any] = {"stop_date": None, "output": None, "error": None, "cause": None}
    return SimpleNamespace(exec_status=status, exec_worker=None, **(fields | ended))


def test_one_running_at_the_final_save_and_failed_by_it_is_saved_running_to_resume() -> None:
    caught = execution(ExecutionStatus.RUNNING)
    finished = execution(ExecutionStatus.SUCCEEDED, _localcloud_terminal_status="SUCCEEDED")
    assert sfn.hold_running_for_final_save(of=[caught, finished]) == 1
    # The save's 503 ends it before it is written.
    caught.exec_status = ExecutionStatus.FAILED
    caught.stop_date, caught.error, caught.cause = "2026-12-07", "States.Runtime", "KeyError('RequestId')"
    caught._localcloud_terminal_status = "FAILED"

    saved = sfn.execution_state_to_save(caught)
    assert saved["exec_status"] == ExecutionStatus.RUNNING and saved[RESUME] is True
    assert (saved["stop_date"], saved["error"], saved["cause"], saved["exec_worker"]) == (
        None,
        None,
        None,
        None,
    )
    assert "_localcloud_terminal_status" not in saved
    assert "_localcloud_running_at_final_save" not in saved


def test_one_that_succeeded_during_the_save_and_one_failed_before_it_are_kept_as_they_ended() -> None:
    succeeded = execution(ExecutionStatus.RUNNING)
    sfn.hold_running_for_final_save(of=[succeeded])
    succeeded.exec_status = ExecutionStatus.SUCCEEDED
    succeeded._localcloud_terminal_status = "SUCCEEDED"
    failed_before = execution(ExecutionStatus.FAILED, _localcloud_terminal_status="FAILED", error="Boom")
    assert sfn.hold_running_for_final_save(of=[failed_before]) == 0

    for ended, status in ((succeeded, ExecutionStatus.SUCCEEDED), (failed_before, ExecutionStatus.FAILED)):
        saved = sfn.execution_state_to_save(ended)
        assert saved["exec_status"] == status and RESUME not in saved
    assert sfn.execution_state_to_save(failed_before)["error"] == "Boom"


def test_no_event_for_an_end_the_shutdown_caused_and_one_for_a_success() -> None:
    heard: list[str] = []
    remove = sfn.add_status_listener(lambda _execution, status: heard.append(status))
    try:
        caught, done = execution(ExecutionStatus.RUNNING), execution(ExecutionStatus.RUNNING)
        sfn.hold_running_for_final_save(of=[caught, done])
        sfn._notify(caught, "FAILED")
        sfn._notify(done, "SUCCEEDED")
        sfn._notify(execution(ExecutionStatus.RUNNING), "FAILED")  # not caught by a final save: heard
    finally:
        remove()
    assert heard == ["SUCCEEDED", "FAILED"]
