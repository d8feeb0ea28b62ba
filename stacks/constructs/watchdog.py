"""The execution watchdog: Step Functions' status-change events for the segmented-job state machine, routed
to the failures function."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# Step Functions' statuses that can leave a job RUNNING: the state machine's own Catch never saw them.
WATCHED_STATUSES = ["FAILED", "TIMED_OUT", "ABORTED"]


class ExecutionWatchdog(Construct):
    """Invariant: every execution of `state_machine_arn` that ends FAILED, TIMED_OUT or ABORTED reaches the
    failures function (which fails the job and dead-letters its request unless that happened already)
    within seconds; an event it cannot take after `retry_attempts` lands in `dead_letter_queue`, whose
    alarm is critical. Nothing here needs the job's own queue or state machine definition."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_arn: str,
        handler: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        retry_attempts: int = 20,
        max_event_age_hours: int = 24,
    ) -> None:
        super().__init__(scope, construct_id)
        self._rule = events.Rule(
            self,
            "Rule",
            description="Execution watchdog: executions that ended outside the state machine's own Catch",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                # Jobs run on published versions of the definition: match the state machine's own ARN
                # and any version's (AWS documents the event's stateMachineArn for neither case).
                detail={
                    "status": WATCHED_STATUSES,
                    "stateMachineArn": [state_machine_arn, {"prefix": f"{state_machine_arn}:"}],
                },
            ),
        )
        self._rule.add_target(
            targets.LambdaFunction(
                handler,
                retry_attempts=retry_attempts,
                max_event_age=Duration.hours(max_event_age_hours),
                dead_letter_queue=dead_letter_queue,
            )
        )

    @property
    def rule(self) -> events.IRule:
        return self._rule
