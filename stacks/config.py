"""Per-environment configuration: one frozen, typed object per environment carries every knob.

Configuration flows one way: `-c env=NAME` -> `load_config(NAME)` -> stacks -> constructs. Nothing here
reads `os.environ` or calls AWS, so `cdk synth` works offline. `validate()` enforces the resilience rules
that must hold before anything is deployed; each violation names the numbers involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pipeline_contract import DEFAULT_TRANSFORM, ENVIRONMENTS, LOCAL_ACCOUNT, LOCAL_REGION, OUTPUT_PREFIX
from stacks import rules

ENVIRONMENT_NAMES = ENVIRONMENTS
DEFAULT_ENVIRONMENT = "dev"


class ConfigError(ValueError):
    """A configuration that would deploy an unsafe or impossible pipeline."""


@dataclass(frozen=True, kw_only=True)
class FunctionConfig:
    memory_mb: int
    timeout_seconds: int
    # None = unreserved (shares the account pool). A number caps the function and protects the rest.
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class Location:
    """An S3 location: `bucket` None is the environment's data bucket (its name is known at deploy only)."""

    bucket: str | None
    prefix: str = ""


DATA_BUCKET = None


@dataclass(frozen=True, kw_only=True)
class LocationsConfig:
    """The single source of where jobs may read and write: the ingest validates `input` against `inputs`,
    and the same locations become the worker's (and the ingest's HEAD) IAM grants."""

    inputs: tuple[Location, ...] = (Location(DATA_BUCKET),)
    output: Location = Location(DATA_BUCKET, OUTPUT_PREFIX)


# What a trigger's `compression` may say (jobcore.formats.COMPRESSIONS; `auto` goes by the first bytes).
TRIGGER_COMPRESSIONS = ("auto", "none", "gzip", "zstd")


@dataclass(frozen=True, kw_only=True)
class TriggerConfig:
    """Objects created under `prefix` (and ending in `suffix`) in `bucket` become jobs with these settings
    (docs/jobs.md, "Start a job when an object arrives"): S3 sends "Object Created" to EventBridge (enabled on
    the data bucket by the stack; on another bucket by its owner), a rule puts it on the ingest queue."""

    bucket: str | None = DATA_BUCKET
    prefix: str = ""
    suffix: str = ""
    transform: str = DEFAULT_TRANSFORM
    transform_options: tuple[tuple[str, object], ...] = ()
    shards: int | None = None
    compression: str = "auto"

    def problems(
        self, *, name: str, inputs: tuple[Location, ...], output: Location, max_shards: int
    ) -> list[str]:
        where = f"s3://{self.bucket or 'DATA_BUCKET'}/{self.prefix}*{self.suffix}"
        problems: list[str] = []
        if not any(loc.bucket == self.bucket and self.prefix.startswith(loc.prefix) for loc in inputs):
            problems.append(
                f"{name} ({where}) is outside locations.inputs: its jobs could not read their input"
            )
        if self.bucket == output.bucket and (
            self.prefix.startswith(output.prefix) or output.prefix.startswith(self.prefix)
        ):
            problems.append(
                f"{name} ({where}) overlaps the output location s3://{output.bucket or 'DATA_BUCKET'}/"
                f"{output.prefix}: every part a job writes would start another job, without end"
            )
        if self.compression not in TRIGGER_COMPRESSIONS:
            problems.append(
                f"{name}.compression is {self.compression!r}: one of {', '.join(TRIGGER_COMPRESSIONS)}"
            )
        if self.shards is not None:
            problems += rules.check_range(f"{name}.shards", self.shards, 1, max_shards)
        return problems


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    function: FunctionConfig
    batch_size: int
    max_batching_window_seconds: int
    # Caps concurrent ingest invocations from the SQS poller (minimum 2, an AWS rule).
    max_concurrency: int
    # When None, derived as the smallest value the visibility-timeout rule allows.
    visibility_timeout_seconds: int | None = None
    max_receive_count: int = 5
    queue_retention_days: int = 4
    # A zstd input of one frame (what `zstd` writes by default) has no restart point: every resumed segment
    # decompresses it from its start. Accepted up to this size (compressed bytes); a larger one is REJECTED
    # with how to recompress it in frames (docs/jobs.md, "Compressed inputs", has the measured cost).
    zstd_single_frame_max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    function: FunctionConfig
    safety_margin_ms: int
    default_chunk_bytes: int
    # 0 = segments bounded by time only. A cap makes small inputs span many segments (local demo).
    max_chunks_per_segment: int = 0
    # The environment's ceiling; a job may lower it with `max_reject_ratio` in its request.
    max_reject_ratio: float = 0.05
    # A longer line is a reject (memory holds at most one range plus one line of this size).
    max_line_bytes: int = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class StateMachineConfig:
    # Worker segments (of all shards together) per execution before continue-as-new; checked against the
    # history quota with max_shards segments in the last round.
    segment_budget: int
    execution_timeout_minutes: int
    retry_interval_seconds: int
    retry_max_attempts: int
    retry_backoff_rate: float
    retry_max_delay_seconds: int
    # Continue-as-new once an execution has run this long, whatever its segment count: the execution
    # timeout must cover this plus one whole worst-case pass (rules.check_execution_timeout).
    handover_after_minutes: int
    # A worker whose environment died (Runtime.ExitError, OOM, Sandbox.Timedout) is retried from its
    # checkpoint this many times, with the same full-jitter backoff, before the job fails.
    crash_retry_max_attempts: int = 3
    # A job's input may be cut into up to this many shards, processed in parallel (request field
    # `shards`; `default_shards` when it has none). Each round of the loop runs one segment per shard, at
    # most max_concurrent_shards at once (the Map's MaxConcurrency).
    max_shards: int = 1
    default_shards: int = 1
    max_concurrent_shards: int = 1


@dataclass(frozen=True, kw_only=True)
class AlarmConfig:
    """Critical alarms page (a DLQ not empty, failed executions, an old backlog): they fire on the first
    datapoint. Warnings (error rates, throttles) fire when sustained: `sustained_datapoints` of the last
    `sustained_periods` periods."""

    queue_age_threshold_seconds: int
    # The e-mail subscribed to each severity's topic (`-c alarmEmail=` sets both).
    critical_email: str | None = None
    warning_email: str | None = None
    evaluation_period_seconds: int = 60
    # A function's Errors / Invocations (%) above which it warns.
    error_rate_percent: float = 10.0
    sustained_datapoints: int = 3
    sustained_periods: int = 5


@dataclass(frozen=True, kw_only=True)
class EventsConfig:
    """Job lifecycle events (docs/job-events.md: subscribing to job events)."""

    # The EventBridge bus they go to; None: the account's default bus. A named bus must exist already (the
    # stack neither creates nor deletes it); `-c eventBus=NAME` sets it per deploy.
    bus_name: str | None = None
    function: FunctionConfig = FunctionConfig(memory_mb=256, timeout_seconds=30)
    # Stream records per invocation.
    batch_size: int = 100
    # A batch the function cannot publish (the bus refuses or throttles) is retried, bisected, until its
    # records are `max_record_age_hours` old, then described in the events' dead-letter queue: an outage
    # shorter than that delays the events and loses none. None: no count of retries on top of the age (a
    # count runs out fast: each partial batch response uses one). The stream keeps records 24 h.
    retry_attempts: int | None = None
    max_record_age_hours: int = 6
    # Warn (JobEventsDelayed) when the oldest change not yet published is this old.
    delay_warning_minutes: int = 15

    def problems(self) -> list[str]:
        problems = [
            *rules.check_event_bus_name(self.bus_name),
            *rules.check_range("events.batch_size", self.batch_size, 1, 10_000),
            *rules.check_range("events.max_record_age_hours", self.max_record_age_hours, 1, 24),
            *rules.check_range("events.delay_warning_minutes", self.delay_warning_minutes, 1, 24 * 60),
        ]
        if self.retry_attempts is not None:
            problems += rules.check_range("events.retry_attempts", self.retry_attempts, 0, 10_000)
        if self.delay_warning_minutes * 60 >= self.max_record_age_hours * 3600:
            problems.append(
                f"events.delay_warning_minutes is {self.delay_warning_minutes}: must be under "
                f"events.max_record_age_hours ({self.max_record_age_hours} h), or the warning comes after "
                "the events are given up"
            )
        return problems


DEFAULT_PROFILE = "default"
STRICT_PROFILE = "strict"
COMPLIANCE_PROFILES = (DEFAULT_PROFILE, STRICT_PROFILE)


@dataclass(frozen=True, kw_only=True)
class GivenVpc:
    """A VPC the account already has, for the functions under `strict`. Given by ids, not looked up: `cdk
    synth` stays offline and needs no credentials (`Vpc.from_lookup` would need both). Its subnets must
    reach S3, DynamoDB, SQS, Step Functions and EventBridge (endpoints or a NAT): the stack adds none to a
    VPC it does not own."""

    vpc_id: str
    # One subnet per zone, in the same order (Vpc.from_vpc_attributes pairs them).
    availability_zones: tuple[str, ...]
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class FunctionReservations:
    """The reserved concurrency `strict` gives each function whose own config reserves none."""

    ingest: int
    worker: int
    failures: int
    events: int


@dataclass(frozen=True, kw_only=True)
class ComplianceConfig:
    """`profile` "strict": the controls of NIST 800-53 R5, HIPAA Security and PCI DSS 3.2.1
    (docs/compliance.md), checked by those cdk-nag packs at every synth. "default": the AwsSolutions and
    Serverless packs only. `-c compliance=strict` sets it per deploy."""

    profile: str = DEFAULT_PROFILE
    # None: the stack creates a VPC of `vpc_cidr` (an isolated subnet in each of the region's first two
    # zones, endpoints for the services the functions call, no NAT, no internet gateway).
    vpc: GivenVpc | None = None
    vpc_cidr: str = "10.64.0.0/20"
    # Lambda concurrency this account has for this pipeline in the region: its quota (1,000 unless raised)
    # minus what other workloads reserve. Reservations must leave Lambda's unreserved minimum of it.
    account_concurrency: int = 1000
    reservations: FunctionReservations = FunctionReservations(ingest=5, worker=32, failures=5, events=4)
    # Where the account cannot afford a reservation for every function (a new account's quota is 10):
    # why. Functions whose own config reserves none then stay unreserved, acknowledged with this reason.
    unreserved_reason: str | None = None
    # Principals (IAM role or user ARNs) that submit jobs and read results, so may use the key through
    # S3, SQS and DynamoDB; the pipeline's own roles need no entry.
    key_users: tuple[str, ...] = ()
    backup_retention_days: int = 35
    access_log_retention_days: int = 365

    @property
    def strict(self) -> bool:
        return self.profile == STRICT_PROFILE

    def problems(self, region: str) -> list[str]:
        problems: list[str] = []
        if self.profile not in COMPLIANCE_PROFILES:
            return [
                f"compliance.profile is {self.profile!r}: must be one of {', '.join(COMPLIANCE_PROFILES)}"
            ]
        problems += rules.check_range(
            "compliance.backup_retention_days", self.backup_retention_days, 1, 36_500
        )
        problems += rules.check_range(
            "compliance.access_log_retention_days", self.access_log_retention_days, 1, 36_500
        )
        problems += rules.check_range(
            "compliance.account_concurrency", self.account_concurrency, 10, 1_000_000
        )
        problems += rules.check_vpc_cidr(self.vpc_cidr)
        if self.vpc is not None:
            problems += rules.check_given_vpc(
                vpc_id=self.vpc.vpc_id,
                availability_zones=self.vpc.availability_zones,
                subnet_ids=self.vpc.subnet_ids,
                region=region,
            )
        problems += rules.check_principal_arns("compliance.key_users", self.key_users)
        if self.unreserved_reason is not None and len(self.unreserved_reason.strip()) < 20:
            problems.append(
                "compliance.unreserved_reason must say why the account cannot reserve concurrency for "
                "every function (it becomes the acknowledgment a reviewer reads)"
            )
        return problems


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    name: str
    account: str | None
    region: str
    # Stateful resources survive `cdk destroy` and cannot be deleted by accident.
    protect_stateful: bool
    log_retention_days: int
    dlq_retention_days: int
    job_ttl_days: int
    output_expiration_days: int
    # None: the public layer is left out (the local cloud cannot hold it; see docs): a stand-in layer built
    # from requirements-lambda.lock takes its place where the functions run on this machine.
    powertools_layer_version: int | None
    # Powertools Tracer: subsegments for AWS calls and the handler, job_id annotated. Off where there is no
    # X-Ray (the local cloud's trace headers are never sampled and no daemon listens: every subsegment would be
    # dropped with a warning), or where its cold-start cost is not worth it: off, the functions get
    # POWERTOOLS_TRACE_DISABLED=true and the handlers neither construct the Tracer nor import the X-Ray SDK
    # (handlers.observability; measured by benchmarks/bench_coldstart.py, priced in docs/cost.md). Lambda's
    # own active tracing stays on.
    powertools_tracer: bool
    # Synthesized without the CDK bootstrap-version rule (moto cannot update that parameter).
    bootstrap_version_rule: bool
    # The local cloud runs the functions on this machine's Python: their bundled packages and the Powertools
    # stand-in are built for it (elsewhere: for Lambda's python3.14 on arm64).
    functions_run_locally: bool = False
    ingest: IngestConfig
    worker: WorkerConfig
    state_machine: StateMachineConfig
    alarms: AlarmConfig
    # Records job failures for the state machine and the execution watchdog.
    failures: FunctionConfig = FunctionConfig(memory_mb=256, timeout_seconds=30)
    locations: LocationsConfig = LocationsConfig()
    # Objects that start jobs when they arrive (none by default).
    triggers: tuple[TriggerConfig, ...] = ()
    events: EventsConfig = EventsConfig()
    # A directory of the team's own transforms (absolute, or relative to the app); `-c userCode=DIR`
    # overrides it per deploy.
    user_code: str | None = None
    compliance: ComplianceConfig = ComplianceConfig()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ingest_visibility_timeout_seconds(self) -> int:
        if self.ingest.visibility_timeout_seconds is not None:
            return self.ingest.visibility_timeout_seconds
        return rules.minimum_visibility_timeout(
            function_timeout_seconds=self.ingest.function.timeout_seconds,
            batching_window_seconds=self.ingest.max_batching_window_seconds,
        )

    @property
    def longest_pass_seconds(self) -> rules.PassTime:
        """One worst-case pass of the segment loop, as the execution-timeout rule counts it."""
        sm = self.state_machine
        return rules.longest_pass(
            worker_timeout_seconds=self.worker.function.timeout_seconds,
            recorder_timeout_seconds=self.failures.timeout_seconds,
            retry=rules.RetryShape(
                interval_seconds=sm.retry_interval_seconds,
                backoff_rate=sm.retry_backoff_rate,
                max_delay_seconds=sm.retry_max_delay_seconds,
            ),
            transient_attempts=sm.retry_max_attempts,
            crash_attempts=sm.crash_retry_max_attempts,
            max_shards=sm.max_shards,
            max_concurrent_shards=sm.max_concurrent_shards,
        )

    @property
    def functions(self) -> dict[str, FunctionConfig]:
        """Every function's config, by the label the messages and the reservations use."""
        return {
            "ingest": self.ingest.function,
            "worker": self.worker.function,
            "failures": self.failures,
            "events": self.events.function,
        }

    def resolved(self) -> EnvironmentConfig:
        """This config with its compliance profile applied: under `strict`, a function whose own config
        reserves no concurrency gets the profile's reservation (unless the account cannot afford them:
        `compliance.unreserved_reason`). Idempotent; the default profile is returned unchanged."""
        compliance = self.compliance
        if not compliance.strict or compliance.unreserved_reason is not None:
            return self

        def reserve(function: FunctionConfig, label: str) -> FunctionConfig:
            if function.reserved_concurrency is not None:
                return function
            return replace(function, reserved_concurrency=getattr(compliance.reservations, label))

        return replace(
            self,
            ingest=replace(self.ingest, function=reserve(self.ingest.function, "ingest")),
            worker=replace(self.worker, function=reserve(self.worker.function, "worker")),
            failures=reserve(self.failures, "failures"),
            events=replace(self.events, function=reserve(self.events.function, "events")),
        )

    def _input_problems(self) -> list[str]:
        """Triggers (inside the inputs, away from the output) and the zstd single-frame limit."""
        problems: list[str] = []
        for index, trigger in enumerate(self.triggers):
            problems += trigger.problems(
                name=f"triggers[{index}]",
                inputs=self.locations.inputs,
                output=self.locations.output,
                max_shards=self.state_machine.max_shards,
            )
        problems += rules.check_range(
            "ingest.zstd_single_frame_max_bytes", self.ingest.zstd_single_frame_max_bytes, 0, 2**40
        )
        return problems

    def validate(self) -> EnvironmentConfig:  # noqa: PLR0915 - one statement per rule, all in one place
        """Fail fast, with the numbers, on any rule a deployed pipeline would break."""
        problems: list[str] = []
        problems += rules.check_visibility_timeout(
            visibility_timeout_seconds=self.ingest_visibility_timeout_seconds,
            function_timeout_seconds=self.ingest.function.timeout_seconds,
            batching_window_seconds=self.ingest.max_batching_window_seconds,
        )
        problems += rules.check_segment_budget(
            self.state_machine.segment_budget,
            retry_max_attempts=self.state_machine.retry_max_attempts
            + self.state_machine.crash_retry_max_attempts,
            max_shards=self.state_machine.max_shards,
        )
        problems += rules.check_execution_timeout(
            execution_timeout_minutes=self.state_machine.execution_timeout_minutes,
            handover_after_minutes=self.state_machine.handover_after_minutes,
            pass_seconds=self.longest_pass_seconds,
        )
        problems += rules.check_max_receive_count(self.ingest.max_receive_count)
        problems += rules.check_log_retention(self.log_retention_days)
        problems += rules.check_worker_margin(
            safety_margin_ms=self.worker.safety_margin_ms,
            timeout_seconds=self.worker.function.timeout_seconds,
        )
        problems += rules.check_range("ingest.batch_size", self.ingest.batch_size, 1, 10_000)
        if self.ingest.max_batching_window_seconds == 0 and self.ingest.batch_size > 10:
            problems.append(
                f"ingest.batch_size is {self.ingest.batch_size}: above 10 SQS needs "
                "max_batching_window_seconds >= 1"
            )
        problems += rules.check_range(
            "ingest.max_batching_window_seconds", self.ingest.max_batching_window_seconds, 0, 300
        )
        problems += rules.check_range("ingest.max_concurrency", self.ingest.max_concurrency, 2, 1000)
        problems += rules.check_range("ingest.queue_retention_days", self.ingest.queue_retention_days, 1, 14)
        problems += rules.check_range("dlq_retention_days", self.dlq_retention_days, 1, 14)
        if self.dlq_retention_days < self.ingest.queue_retention_days:
            problems.append(
                f"dlq_retention_days ({self.dlq_retention_days}) is shorter than the ingest queue's "
                f"retention ({self.ingest.queue_retention_days}): SQS keeps a message's original enqueue "
                "time when it moves to the DLQ, so it would expire there early"
            )
        problems += rules.check_range(
            "worker.default_chunk_bytes", self.worker.default_chunk_bytes, 64 * 1024, 64 * 1024 * 1024
        )
        problems += rules.check_range(
            "worker.max_chunks_per_segment", self.worker.max_chunks_per_segment, 0, 1_000_000
        )
        problems += rules.check_range(
            "worker.max_line_bytes", self.worker.max_line_bytes, 1024, 64 * 1024 * 1024
        )
        problems += rules.check_range(
            "state_machine.crash_retry_max_attempts", self.state_machine.crash_retry_max_attempts, 0, 10
        )
        problems += rules.check_range(
            "state_machine.handover_after_minutes", self.state_machine.handover_after_minutes, 1, 525_600
        )
        sm = self.state_machine
        problems += rules.check_range("state_machine.max_shards", sm.max_shards, 1, 1000)
        problems += rules.check_range("state_machine.default_shards", sm.default_shards, 1, sm.max_shards)
        # An inline Map runs at most 40 iterations at once, whatever its MaxConcurrency says.
        problems += rules.check_range(
            "state_machine.max_concurrent_shards", sm.max_concurrent_shards, 1, min(sm.max_shards, 40)
        )
        if sm.max_concurrent_shards > 1 and self.worker.function.reserved_concurrency is not None:
            problems += rules.check_range(
                "state_machine.max_concurrent_shards",
                sm.max_concurrent_shards,
                1,
                self.worker.function.reserved_concurrency,
            )
        problems += rules.check_locations(
            inputs=[(loc.bucket, loc.prefix) for loc in self.locations.inputs],
            output=(self.locations.output.bucket, self.locations.output.prefix),
        )
        problems += self.events.problems()
        problems += self._input_problems()
        if not 0.0 <= self.worker.max_reject_ratio <= 1.0:
            problems.append(f"worker.max_reject_ratio is {self.worker.max_reject_ratio}: must be within 0..1")
        for label, fn in self.functions.items():
            problems += rules.check_range(f"{label}.function.timeout_seconds", fn.timeout_seconds, 1, 900)
            problems += rules.check_range(f"{label}.function.memory_mb", fn.memory_mb, 128, 10_240)
            if fn.reserved_concurrency is not None:
                problems += rules.check_range(
                    f"{label}.function.reserved_concurrency", fn.reserved_concurrency, 1, 1000
                )
        if (
            self.ingest.function.reserved_concurrency is not None
            and self.ingest.function.reserved_concurrency < self.ingest.max_concurrency
        ):
            problems.append(
                f"ingest.function.reserved_concurrency ({self.ingest.function.reserved_concurrency}) is below "
                f"ingest.max_concurrency ({self.ingest.max_concurrency}): the SQS poller would be throttled "
                "and messages would burn receives towards the DLQ"
            )
        sm = self.state_machine
        problems += rules.check_range(
            "state_machine.retry_interval_seconds", sm.retry_interval_seconds, 1, 3600
        )
        problems += rules.check_range(
            "state_machine.retry_max_attempts", sm.retry_max_attempts, 0, 99_999_999
        )
        problems += rules.check_range(
            "state_machine.retry_max_delay_seconds",
            sm.retry_max_delay_seconds,
            sm.retry_interval_seconds,
            31_622_400,
        )
        if sm.retry_backoff_rate < 1.0:
            problems.append(f"state_machine.retry_backoff_rate is {sm.retry_backoff_rate}: must be >= 1.0")
        problems += _check_alarms(self.alarms)
        problems += self.compliance.problems(self.region)
        reservations = {
            label: fn.reserved_concurrency
            for label, fn in self.functions.items()
            if fn.reserved_concurrency is not None
        }
        problems += rules.check_account_concurrency(
            reservations, account_concurrency=self.compliance.account_concurrency
        )
        unreserved = [label for label, fn in self.functions.items() if fn.reserved_concurrency is None]
        if self.compliance.strict and self.compliance.unreserved_reason is None and unreserved:
            problems.append(
                f"compliance.profile is strict but {', '.join(unreserved)} reserve no concurrency: give them "
                "a reservation (compliance.reservations), or say why the account cannot afford it "
                "(compliance.unreserved_reason)"
            )
        if self.name in ("staging", "prod") and not self.protect_stateful:
            problems.append(f"protect_stateful is off in {self.name}: its table and bucket must be retained")
        if problems:
            raise ConfigError(
                f"invalid configuration for environment '{self.name}':\n  - " + "\n  - ".join(problems)
            )
        return self


def _check_alarms(alarms: AlarmConfig) -> list[str]:
    problems: list[str] = []
    if not 0 < alarms.error_rate_percent < 100:
        problems.append(f"alarms.error_rate_percent is {alarms.error_rate_percent}: must be within 0..100")
    problems += rules.check_range(
        "alarms.sustained_datapoints", alarms.sustained_datapoints, 1, alarms.sustained_periods
    )
    # CloudWatch evaluates at most one day of periods.
    problems += rules.check_range(
        "alarms.sustained_periods",
        alarms.sustained_periods,
        1,
        86_400 // max(alarms.evaluation_period_seconds, 1),
    )
    return problems


_PROD_LIKE_ALARMS = AlarmConfig(queue_age_threshold_seconds=300)
# Where failures are tried on purpose (local: the fault matrix's chaos rules crash or fail up to 30% of the
# worker's invocations, each retried; dev: teams break things there), a worker error-rate warning means most
# invocations fail, not a few injected ones.
_NOISY_ERROR_RATE_PERCENT = 50.0

_CONFIGS: dict[str, EnvironmentConfig] = {
    "local": EnvironmentConfig(
        name="local",
        # The local cloud's fixed dummy account, so that synthesized ARNs match what moto serves.
        account=LOCAL_ACCOUNT,
        region=LOCAL_REGION,
        protect_stateful=False,
        log_retention_days=1,
        dlq_retention_days=14,
        job_ttl_days=1,
        output_expiration_days=1,
        powertools_layer_version=None,
        powertools_tracer=False,
        bootstrap_version_rule=False,
        functions_run_locally=True,
        ingest=IngestConfig(
            function=FunctionConfig(memory_mb=256, timeout_seconds=10),
            batch_size=10,
            max_batching_window_seconds=0,
            max_concurrency=2,
            max_receive_count=3,
            queue_retention_days=4,
        ),
        worker=WorkerConfig(
            function=FunctionConfig(memory_mb=512, timeout_seconds=10),
            safety_margin_ms=2_000,
            default_chunk_bytes=64 * 1024,
            # Small cap: the demo's few-MiB input spans dozens of segments in seconds.
            max_chunks_per_segment=1,
            max_reject_ratio=0.5,
        ),
        state_machine=StateMachineConfig(
            segment_budget=20,
            execution_timeout_minutes=30,
            retry_interval_seconds=1,
            retry_max_attempts=6,
            retry_backoff_rate=1.5,
            retry_max_delay_seconds=2,
            handover_after_minutes=10,
            max_shards=8,
            max_concurrent_shards=8,
        ),
        alarms=AlarmConfig(
            queue_age_threshold_seconds=60,
            evaluation_period_seconds=60,
            error_rate_percent=_NOISY_ERROR_RATE_PERCENT,
        ),
        failures=FunctionConfig(memory_mb=256, timeout_seconds=10),
        # Something to try: an object put under incoming/ in the data bucket becomes a passthrough job.
        triggers=(TriggerConfig(bucket=DATA_BUCKET, prefix="incoming/", transform="passthrough"),),
        tags={"project": "resilient-pipeline", "environment": "local"},
    ),
    "dev": EnvironmentConfig(
        name="dev",
        account=None,
        region="us-east-1",
        protect_stateful=False,
        log_retention_days=14,
        dlq_retention_days=14,
        job_ttl_days=7,
        output_expiration_days=7,
        powertools_layer_version=38,
        powertools_tracer=True,
        bootstrap_version_rule=True,
        ingest=IngestConfig(
            function=FunctionConfig(memory_mb=256, timeout_seconds=30),
            batch_size=10,
            max_batching_window_seconds=1,
            max_concurrency=5,
            max_receive_count=5,
        ),
        worker=WorkerConfig(
            function=FunctionConfig(memory_mb=1024, timeout_seconds=300),
            safety_margin_ms=20_000,
            default_chunk_bytes=8 * 1024 * 1024,
        ),
        state_machine=StateMachineConfig(
            # 360 + 63 shard segments in the last round of a prod execution stay under the history budget.
            segment_budget=360,
            execution_timeout_minutes=24 * 60,
            retry_interval_seconds=2,
            retry_max_attempts=6,
            retry_backoff_rate=2.0,
            retry_max_delay_seconds=60,
            handover_after_minutes=12 * 60,
            max_shards=32,
            max_concurrent_shards=32,
        ),
        alarms=AlarmConfig(queue_age_threshold_seconds=600, error_rate_percent=_NOISY_ERROR_RATE_PERCENT),
        tags={"project": "resilient-pipeline", "environment": "dev"},
    ),
}
_CONFIGS["staging"] = replace(
    _CONFIGS["dev"],
    name="staging",
    protect_stateful=True,
    log_retention_days=30,
    job_ttl_days=30,
    output_expiration_days=30,
    alarms=_PROD_LIKE_ALARMS,
    tags={"project": "resilient-pipeline", "environment": "staging"},
)
_CONFIGS["prod"] = replace(
    _CONFIGS["staging"],
    name="prod",
    log_retention_days=90,
    job_ttl_days=90,
    output_expiration_days=90,
    ingest=replace(
        _CONFIGS["dev"].ingest,
        max_concurrency=20,
        function=FunctionConfig(memory_mb=256, timeout_seconds=30, reserved_concurrency=20),
    ),
    worker=replace(
        _CONFIGS["dev"].worker,
        function=FunctionConfig(memory_mb=2048, timeout_seconds=900, reserved_concurrency=100),
        safety_margin_ms=60_000,
        default_chunk_bytes=16 * 1024 * 1024,
    ),
    # Up to 64 shards, 32 at a time (the worker's reserved concurrency of 100 leaves room for other jobs).
    state_machine=replace(_CONFIGS["dev"].state_machine, max_shards=64, max_concurrent_shards=32),
    alarms=_PROD_LIKE_ALARMS,
    tags={"project": "resilient-pipeline", "environment": "prod"},
)


def load_config(name: str | None) -> EnvironmentConfig:
    """The validated configuration for `name` (default dev); unknown names list the valid ones."""
    env_name = name or DEFAULT_ENVIRONMENT
    if env_name not in _CONFIGS:
        raise ConfigError(
            f"unknown environment '{env_name}': valid environments are {', '.join(ENVIRONMENT_NAMES)}"
        )
    return _CONFIGS[env_name].resolved().validate()


def with_overrides(
    config: EnvironmentConfig,
    *,
    alarm_email: str | None = None,
    critical_email: str | None = None,
    warning_email: str | None = None,
    account: str | None = None,
    user_code: str | None = None,
    event_bus: str | None = None,
    compliance: str | None = None,
) -> EnvironmentConfig:
    """Values a deployer supplies per deploy (`-c alarmEmail=...` for both severities, `-c criticalEmail=...`
    and `-c warningEmail=...` for one, `-c account=...`, `-c userCode=...`, `-c eventBus=...`,
    `-c compliance=strict`), re-validated."""
    updated = config
    critical, warning = critical_email or alarm_email, warning_email or alarm_email
    if critical or warning:
        updated = replace(
            updated,
            alarms=replace(
                updated.alarms,
                critical_email=critical or updated.alarms.critical_email,
                warning_email=warning or updated.alarms.warning_email,
            ),
        )
    if account:
        updated = replace(updated, account=account)
    if user_code:
        updated = replace(updated, user_code=user_code)
    if event_bus:
        updated = replace(updated, events=replace(updated.events, bus_name=event_bus))
    if compliance:
        if updated.compliance.strict and compliance != STRICT_PROFILE:
            raise ConfigError(
                f"-c compliance={compliance}: environment '{updated.name}' is strict in its configuration, "
                "and a deploy cannot relax it"
            )
        updated = replace(updated, compliance=replace(updated.compliance, profile=compliance))
    return updated.resolved().validate()
