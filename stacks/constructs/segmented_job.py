"""The segmented-job state machine: drives one job through time-budgeted worker segments."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Arn, ArnComponents, ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

import pipeline_contract as contract
from pipeline_contract import (
    DEAD_LETTER_NOT_SENT,
    EXECUTION_NAME_TEMPLATE,
    FAILED,
    JOB_CANCELLED_ERROR,
    JOB_FAILED,
    RUNNING,
    SUCCEEDED,
    TRANSIENT_ERROR,
)
from stacks import rules
from stacks.constructs.pipeline_function import log_retention
from stacks.constructs.pipeline_key import grant_key_use
from stacks.constructs.roles import DEFAULT_ROLES, RoleStyle

# Error names the state machine matches: the contract's (the Lambda errorType is the exception's class).
TRANSIENT_ERRORS = [TRANSIENT_ERROR]
CANCELLED_ERRORS = [JOB_CANCELLED_ERROR]
LAMBDA_SERVICE_ERRORS = list(contract.LAMBDA_SERVICE_ERRORS)
# A worker killed mid-chunk lost at most one uncommitted chunk: its retry resumes from the last checkpoint.
CRASH_ERRORS = list(contract.CRASH_ERRORS)
DYNAMODB_TRANSIENT_ERRORS = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.ThrottlingException",
    "DynamoDB.InternalServerErrorException",
]
CONDITIONAL_CHECK_FAILED = "DynamoDB.ConditionalCheckFailedException"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    interval_seconds: int
    max_attempts: int
    backoff_rate: float
    max_delay_seconds: int
    crash_max_attempts: int

    def add_to(
        self, task: sfn.TaskStateBase | sfn.CustomState, errors: list[str], *, crash: bool = False
    ) -> None:
        task.add_retry(
            errors=errors,
            interval=Duration.seconds(self.interval_seconds),
            max_attempts=self.crash_max_attempts if crash else self.max_attempts,
            backoff_rate=self.backoff_rate,
            max_delay=Duration.seconds(self.max_delay_seconds),
            jitter_strategy=sfn.JitterType.FULL,
        )


def _invoke_pinned(
    scope: Construct,
    state_id: str,
    *,
    function: str,
    payload: dict[str, object],
    result_selector: dict[str, str],
    result_path: str | None = None,
) -> sfn.CustomState:
    """A Lambda invoke of the qualified ARN at JSONPath `function` (the job's pin): the version the job was
    accepted on, never the function's latest code. Written as ASL because CDK's LambdaInvoke takes a
    function, not a path; the role's grant is the state machine's (`function:NAME:*`)."""
    state: dict[str, object] = {
        "Type": "Task",
        "Resource": f"arn:{Stack.of(scope).partition}:states:::lambda:invoke",
        "Parameters": {"FunctionName.$": function, "Payload": payload},
        "ResultSelector": result_selector,
    }
    if result_path is not None:
        state["ResultPath"] = result_path
    return sfn.CustomState(scope, state_id, state_json=state)


def _key() -> dict[str, tasks.DynamoAttributeValue]:
    return {"job_id": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.job_id"))}


def _string(path: str) -> tasks.DynamoAttributeValue:
    return tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at(path))


def _number(path: str) -> tasks.DynamoAttributeValue:
    return tasks.DynamoAttributeValue.number_from_string(
        sfn.JsonPath.format("{}", sfn.JsonPath.string_at(path))
    )


def _literal(value: str) -> tasks.DynamoAttributeValue:
    return tasks.DynamoAttributeValue.from_string(value)


def _may_become(target: str) -> tuple[str, dict[str, tasks.DynamoAttributeValue]]:
    """`#status IN (...)` over the statuses the contract lets a job leave for `target`, and their values."""
    values = {f":from_{status.lower()}": _literal(status) for status in contract.sources(target)}
    return f"#status IN ({', '.join(values)})", values


class SegmentedJobStateMachine(Construct):
    """Invariant: every job execution ends SUCCEEDED (job SUCCEEDED), handed over to its next execution
    (continue-as-new before the history quota and before the execution timeout), Cancelled, or failed with
    the job marked FAILED and its request in the DLQ, recorded by the failures function (clean
    `{type, message}`), or by plain service integrations if that function cannot run. Transient errors and
    crashed environments are retried with full jitter, each a bounded number of times; nothing else is.
    Executions that end outside this definition's own Catch (timed out, aborted) are the watchdog's.

    The loop runs in rounds. A round is a Map over the job's shards (`$.shards`, one item each, written by
    the ingest): a shard not yet done runs one worker segment, at most `max_concurrent_shards` at once. Then
    Tally and Decide read the items back: all done -> MarkSucceeded; a worker asked to hand over (time), or
    the execution has run `segment_budget` segments -> ContinueAsNew, carrying the items; else the next
    round. A shard that fails fails the Map, which stops the other shards: the job fails once."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_name: str,
        worker: lambda_.IFunction,
        failures: lambda_.IFunction,
        table: dynamodb.ITable,
        dead_letter_queue: sqs.IQueue,
        segment_budget: int,
        max_shards: int,
        max_concurrent_shards: int,
        retry: RetryPolicy,
        execution_timeout: Duration,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
        encryption_key: kms.IKey | None = None,
        log_group_name: str | None = None,
        roles: RoleStyle = DEFAULT_ROLES,
    ) -> None:
        super().__init__(scope, construct_id)
        self._name = state_machine_name
        problems = rules.check_segment_budget(
            segment_budget,
            retry_max_attempts=retry.max_attempts + retry.crash_max_attempts,
            max_shards=max_shards,
        )
        if problems:
            raise ValueError("; ".join(problems))
        stack = Stack.of(self)
        # Continue-as-new starts this very state machine: a physical name lets the definition and the
        # role name their own ARN without a circular reference.
        self._arn = Arn.format(
            ArnComponents(
                service="states",
                resource="stateMachine",
                resource_name=state_machine_name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            stack,
        )
        record_failure = self._failure_path(failures, table, dead_letter_queue, retry)

        cancelled = sfn.Succeed(self, "Cancelled", comment="The job was cancelled or already finished")

        running_from, running_values = _may_become(RUNNING)
        mark_running = tasks.DynamoUpdateItem(
            self,
            "MarkRunning",
            table=table,
            key=_key(),
            update_expression=(
                "SET #status = :to, updated_at = :now, executions = if_not_exists(executions, :zero) + :one"
            ),
            condition_expression=f"{running_from} AND #attempt = :attempt",
            expression_attribute_names={"#status": "status", "#attempt": "attempt"},
            expression_attribute_values={
                ":to": _literal(RUNNING),
                **running_values,
                ":attempt": tasks.DynamoAttributeValue.number_from_string(
                    sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.attempt"))
                ),
                ":now": _string("$$.State.EnteredTime"),
                ":zero": tasks.DynamoAttributeValue.from_number(0),
                ":one": tasks.DynamoAttributeValue.from_number(1),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        retry.add_to(mark_running, DYNAMODB_TRANSIENT_ERRORS)
        mark_running.add_catch(cancelled, errors=[CONDITIONAL_CHECK_FAILED], result_path="$.error")
        mark_running.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")

        start_rounds = sfn.Pass(
            self,
            "StartRounds",
            result=sfn.Result.from_object({"iterations": 0}),
            result_path="$.progress",
        )

        process_segment = _invoke_pinned(
            self,
            "ProcessSegment",
            function="$.pin.worker",
            payload={
                "job_id.$": "$.job_id",
                "attempt.$": "$.attempt",
                "execution.$": "$.execution",
                "shard.$": "$.item.shard",
                "segments_in_execution.$": "$.iterations",
                "retry_count.$": "$$.State.RetryCount",
                "execution_started_at.$": "$$.Execution.StartTime",
            },
            # The iteration's output is the shard's next item: small, whatever the job's size.
            result_selector={
                "shard.$": "$.Payload.shard",
                "done.$": "$.Payload.done",
                "hand_over.$": "$.Payload.hand_over",
            },
        )
        retry.add_to(process_segment, TRANSIENT_ERRORS + LAMBDA_SERVICE_ERRORS)
        retry.add_to(process_segment, CRASH_ERRORS, crash=True)
        shard_finished = sfn.Pass(
            self,
            "ShardFinished",
            parameters={"shard": sfn.JsonPath.number_at("$.item.shard"), "done": True, "hand_over": False},
        )
        shard = (
            sfn.Choice(self, "ShardDone?")
            .when(sfn.Condition.boolean_equals("$.item.done", True), shard_finished)
            .otherwise(process_segment)
        )
        round_ = sfn.Map(
            self,
            "Round",
            comment="One segment for each shard not yet done",
            items_path="$.shards",
            item_selector={
                "job_id": sfn.JsonPath.string_at("$.job_id"),
                "attempt": sfn.JsonPath.number_at("$.attempt"),
                "execution": sfn.JsonPath.number_at("$.execution"),
                "iterations": sfn.JsonPath.number_at("$.progress.iterations"),
                "item": sfn.JsonPath.object_at("$$.Map.Item.Value"),
                "pin": sfn.JsonPath.object_at("$.pin"),
            },
            max_concurrency=max_concurrent_shards,
            result_path="$.shards",
        )
        round_.item_processor(shard)
        # A shard that fails fails the round (the other shards are stopped): the job fails once, its reason
        # naming the shard (the worker's message).
        round_.add_catch(cancelled, errors=CANCELLED_ERRORS, result_path="$.error")
        round_.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
        # Written as ASL: two steps because an intrinsic function takes reference paths only (no [*]).
        tally = sfn.Pass(
            self,
            "Tally",
            parameters={
                "done.$": "$.shards[*].done",
                "hand_over.$": "$.shards[*].hand_over",
                "iterations.$": "States.MathAdd($.progress.iterations, States.ArrayLength($.shards))",
            },
            result_path="$.progress",
        )
        decide = sfn.Pass(
            self,
            "Decide",
            parameters={
                "pending.$": "States.ArrayContains($.progress.done, false)",
                "hand_over.$": "States.ArrayContains($.progress.hand_over, true)",
                "iterations.$": "$.progress.iterations",
            },
            result_path="$.progress",
        )

        finish_job = self._finish_path(table, retry, cancelled=cancelled, record_failure=record_failure)

        next_execution = sfn.Pass(
            self,
            "NextExecution",
            parameters={"number.$": "States.MathAdd($.execution, 1)"},
            result_path="$.next",
        )
        handed_over = sfn.Succeed(self, "HandedOver", comment="The job continues in its next execution")
        # The next execution runs the job's pinned state machine version (never whatever is deployed now).
        continue_as_new = sfn.CustomState(
            self,
            "ContinueAsNew",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Stack.of(self).partition}:states:::states:startExecution",
                "Parameters": {
                    "StateMachineArn.$": "$.pin.state_machine",
                    "Name.$": f"States.Format('{EXECUTION_NAME_TEMPLATE}', $.job_id, $.attempt, $.next.number)",
                    "Input": {
                        "job_id.$": "$.job_id",
                        "attempt.$": "$.attempt",
                        "execution.$": "$.next.number",
                        "request.$": "$.request",
                        "source_message_id.$": "$.source_message_id",
                        # Each shard's item (done or not): a finished shard is not invoked again.
                        "shards.$": "$.shards",
                        "pin.$": "$.pin",
                    },
                },
                "ResultPath": None,
            },
        )
        retry.add_to(
            continue_as_new,
            ["StepFunctions.SdkClientException", "StepFunctions.ExecutionLimitExceededException"],
        )
        # A retried hand-over whose first try went through: the next execution already runs.
        continue_as_new.add_catch(
            handed_over, errors=["StepFunctions.ExecutionAlreadyExistsException"], result_path="$.error"
        )
        continue_as_new.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
        next_execution.next(continue_as_new)
        continue_as_new.next(handed_over)

        route = (
            sfn.Choice(self, "JobDone?")
            .when(sfn.Condition.boolean_equals("$.progress.pending", False), finish_job)
            .when(
                sfn.Condition.boolean_equals("$.progress.hand_over", True),
                next_execution,
                comment="Time-based hand-over keeps the execution inside its timeout",
            )
            .when(
                sfn.Condition.number_greater_than_equals("$.progress.iterations", segment_budget),
                next_execution,
                comment=f"Budget of {segment_budget} segments per execution keeps history under the quota",
            )
            .otherwise(round_)
        )
        definition = mark_running.next(start_rounds).next(round_).next(tally).next(decide).next(route)

        self._log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=log_group_name,
            encryption_key=encryption_key,
            retention=log_retention(log_retention_days),
            removal_policy=removal_policy,
        )
        self._state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=execution_timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self._log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            removal_policy=removal_policy,
            # CDK makes the state machine's role itself unless the profile makes roles its own way (strict).
            role=None
            if roles.is_default
            else roles.role(
                self,
                "Role",
                # The confused-deputy conditions CDK puts on the role it makes itself.
                assumed_by=iam.ServicePrincipal(
                    "states.amazonaws.com",
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {
                            "aws:SourceArn": stack.format_arn(
                                service="states",
                                resource="stateMachine",
                                resource_name="*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME,
                            )
                        },
                    },
                ),
                description=f"{state_machine_name}: the state machine's role",
            ),
        )
        # Every deploy publishes a version of the definition (kept when the next replaces it: running jobs
        # continue-as-new on theirs); the ingest pins each job to the one current when it is accepted.
        self._version = sfn.CfnStateMachineVersion(
            self,
            "Version",
            state_machine_arn=self._state_machine.state_machine_arn,
            state_machine_revision_id=self._state_machine.state_machine_revision_id,
        )
        self._version.apply_removal_policy(RemovalPolicy.RETAIN)
        self._grant(worker=worker, failures=failures, dead_letter_queue=dead_letter_queue, key=encryption_key)

    def _grant(
        self,
        *,
        worker: lambda_.IFunction,
        failures: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
        key: kms.IKey | None,
    ) -> None:
        # The pinned versions this definition invokes and starts, by name: its own functions and versions.
        self._state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[f"{function.function_arn}:*" for function in (worker, failures)],
            )
        )
        self._state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[self.versions_arn])
        )
        self._state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letter_queue.queue_arn])
        )
        if key is not None:
            # MarkRunning/MarkSucceeded/MarkFailed write the encrypted table; SendToDLQ the encrypted DLQ.
            grant_key_use(key, self._state_machine)

    def _finish_path(
        self,
        table: dynamodb.ITable,
        retry: RetryPolicy,
        *,
        cancelled: sfn.IChainable,
        record_failure: sfn.IChainable,
    ) -> sfn.CustomState:
        """FinishJob -> MarkSucceeded -> Succeeded: the end of a job whose shards are all done."""
        # The end of the job: the whole job's reject ratio, checked once every shard is done (jobcore.finish
        # says why here), by the pinned worker; MarkSucceeded then applies only to the counters it checked.
        finish_job = _invoke_pinned(
            self,
            "FinishJob",
            function="$.pin.worker",
            payload={"job_id.$": "$.job_id", "attempt.$": "$.attempt", "finish": True},
            result_selector={
                "records_in.$": "$.Payload.records_in",
                "records_rejected.$": "$.Payload.records_rejected",
            },
            result_path="$.finish",
        )
        retry.add_to(finish_job, TRANSIENT_ERRORS + LAMBDA_SERVICE_ERRORS)
        retry.add_to(finish_job, CRASH_ERRORS, crash=True)
        finish_job.add_catch(cancelled, errors=CANCELLED_ERRORS, result_path="$.error")
        finish_job.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")

        succeeded_from, succeeded_values = _may_become(SUCCEEDED)
        mark_succeeded = tasks.DynamoUpdateItem(
            self,
            "MarkSucceeded",
            table=table,
            key=_key(),
            update_expression="SET #status = :to, updated_at = :now",
            condition_expression=(
                f"{succeeded_from} AND records_in = :records_in AND records_rejected = :records_rejected"
            ),
            expression_attribute_names={"#status": "status"},
            expression_attribute_values={
                ":to": _literal(SUCCEEDED),
                **succeeded_values,
                ":now": _string("$$.State.EnteredTime"),
                ":records_in": _number("$.finish.records_in"),
                ":records_rejected": _number("$.finish.records_rejected"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        retry.add_to(mark_succeeded, DYNAMODB_TRANSIENT_ERRORS)
        mark_succeeded.add_catch(cancelled, errors=[CONDITIONAL_CHECK_FAILED], result_path="$.error")
        mark_succeeded.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
        finish_job.next(mark_succeeded)
        mark_succeeded.next(sfn.Succeed(self, "Succeeded"))
        return finish_job

    def _failure_path(
        self,
        failures: lambda_.IFunction,
        table: dynamodb.ITable,
        dead_letter_queue: sqs.IQueue,
        retry: RetryPolicy,
    ) -> sfn.IChainable:
        """Catch -> RecordFailure (the failures function: job FAILED, request in the DLQ, clean error) ->
        JobFailed. Should the function itself fail, plain service integrations still mark the job and send
        the request, with the raw error: a message in the DLQ matters more than its wording."""
        job_failed = sfn.Fail(
            self,
            JOB_FAILED,
            error_path="$.failure.type",
            cause_path="$.failure.message",
            comment="The job is marked FAILED and its request is in the DLQ",
        )
        fallback_failed = sfn.Fail(
            self,
            "JobFailedUnrecorded",
            error=JOB_FAILED,
            cause="The failures function could not run: the job was marked FAILED and its request sent to the "
            "DLQ by the fallback, with the raw error",
        )
        not_sent = sfn.Fail(
            self,
            DEAD_LETTER_NOT_SENT,
            error=DEAD_LETTER_NOT_SENT,
            cause="The request could not be sent to the DLQ; the execution watchdog sends it",
        )
        record = _invoke_pinned(
            self,
            "RecordFailure",
            function="$.pin.failures",
            payload={
                "job_id.$": "$.job_id",
                "attempt.$": "$.attempt",
                "execution.$": "$.execution",
                "error.$": "$.error",
            },
            result_selector={"type.$": "$.Payload.error.type", "message.$": "$.Payload.error.message"},
            result_path="$.failure",
        )
        retry.add_to(record, TRANSIENT_ERRORS + LAMBDA_SERVICE_ERRORS)
        retry.add_to(record, CRASH_ERRORS, crash=True)
        record.next(job_failed)

        send_to_dlq = self._send_to_dlq(dead_letter_queue, retry)
        send_to_dlq.add_catch(not_sent, errors=["States.ALL"], result_path="$.dlq_error")
        send_to_dlq.next(fallback_failed)
        failed_from, failed_values = _may_become(FAILED)
        mark_failed = tasks.DynamoUpdateItem(
            self,
            "MarkFailed",
            table=table,
            key=_key(),
            update_expression="SET #status = :to, #error = :error, updated_at = :now",
            condition_expression=f"{failed_from} AND #attempt = :attempt",
            expression_attribute_names={"#status": "status", "#error": "error", "#attempt": "attempt"},
            expression_attribute_values={
                ":to": _literal(FAILED),
                **failed_values,
                ":attempt": tasks.DynamoAttributeValue.number_from_string(
                    sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.attempt"))
                ),
                ":error": tasks.DynamoAttributeValue.from_map(
                    {"type": _string("$.error.Error"), "message": _string("$.error.Cause")}
                ),
                ":now": _string("$$.State.EnteredTime"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        retry.add_to(mark_failed, DYNAMODB_TRANSIENT_ERRORS)
        # The DLQ message matters more than the status write: on any failure here, still send it.
        mark_failed.add_catch(send_to_dlq, errors=["States.ALL"], result_path="$.mark_failed_error")
        mark_failed.next(send_to_dlq)
        record.add_catch(mark_failed, errors=["States.ALL"], result_path="$.record_error")
        return record

    def _send_to_dlq(self, dead_letter_queue: sqs.IQueue, retry: RetryPolicy) -> sfn.CustomState:
        # tasks.SqsSendMessage cannot set MessageAttributes; the reason must travel as attributes.
        attribute = {"DataType": "String"}
        state = sfn.CustomState(
            self,
            "SendToDLQ",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Stack.of(self).partition}:states:::sqs:sendMessage",
                "Parameters": {
                    "QueueUrl": dead_letter_queue.queue_url,
                    "MessageBody.$": "$.request",
                    "MessageAttributes": {
                        "error_type": {**attribute, "StringValue.$": "$.error.Error"},
                        "error_message": {**attribute, "StringValue.$": "$.error.Cause"},
                        "source_message_id": {**attribute, "StringValue.$": "$.source_message_id"},
                        "job_id": {**attribute, "StringValue.$": "$.job_id"},
                    },
                },
                "ResultPath": None,
            },
        )
        retry.add_to(
            state, ["SQS.SdkClientException", "SQS.AmazonSQSException", "SQS.RequestThrottledException"]
        )
        return state

    @property
    def state_machine(self) -> sfn.IStateMachine:
        return self._state_machine

    @property
    def role(self) -> iam.IRole:
        """The state machine's role (CDK's, or the profile's under strict)."""
        return self._state_machine.role

    @property
    def version_arn(self) -> str:
        """The version this deploy published: what jobs accepted now are pinned to."""
        return self._version.attr_arn

    @property
    def versions_arn(self) -> str:
        """Every published version of this state machine (an IAM resource)."""
        return f"{self._arn}:*"

    @property
    def state_machine_arn(self) -> str:
        """The formatted ARN (no token reference to the resource, usable where a cycle would form)."""
        return self._arn

    @property
    def state_machine_name(self) -> str:
        return self._name

    @property
    def log_group(self) -> logs.ILogGroup:
        return self._log_group
