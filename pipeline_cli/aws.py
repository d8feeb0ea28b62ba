"""How the CLI reaches one environment: which endpoint and credentials, and where its resources are.

`local` is the embedded cloud started by `pipeline local up` (a moto server on loopback, found through the
local cloud state file); any other name is a real AWS deployment found through the default credential
chain and the CloudFormation outputs of its two stacks. Commands open a `Pipeline` with `open_pipeline()`,
which also turns every botocore failure raised inside the block into a `CliError` a person can act on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from botocore import exceptions as botocore_errors
from botocore.config import Config

from localcloud.core.state import LocalCloudState, dummy_session, read_state, state_path
from pipeline_cli.errors import CliError
from pipeline_cli.local_home import local_home
from pipeline_contract import ENVIRONMENTS, STACK_OUTPUTS, STACK_SUFFIXES, stack_name

ENV_VARIABLE = "PIPELINE_ENV"
DEFAULT_ENV = "local"
LOCAL_ENV = "local"

LOCAL_NOT_RUNNING = "the local cloud is not running: start it with `pipeline local up` (or `make demo`)"

# Output key -> the stack (suffix) that exports it. The alarm topics, Transforms and the published versions
# are optional, so an environment deployed before them still works.
VERSION_OUTPUTS = ("WorkerVersionArn", "FailuresVersionArn", "StateMachineVersionArn", "CodeDigest")
OPTIONAL_OUTPUTS = frozenset(
    {
        "AlarmTopicArn",
        "WarningAlarmTopicArn",
        "Transforms",
        "MaxShards",
        "JobTableStreamArn",
        *VERSION_OUTPUTS,
    }
)
REQUIRED_OUTPUTS: Mapping[str, str] = {k: v for k, v in STACK_OUTPUTS.items() if k not in OPTIONAL_OUTPUTS}
UNUSABLE_STACK_STATUS_PREFIXES = ("CREATE_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_", "DELETE_", "REVIEW_")

# Error codes with which AWS says the credentials themselves are the problem.
EXPIRED_CREDENTIAL_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
REJECTED_CREDENTIAL_CODES = frozenset(
    {"InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)
CREDENTIAL_ERRORS: tuple[type[Exception], ...] = (
    botocore_errors.NoCredentialsError,
    botocore_errors.PartialCredentialsError,
    botocore_errors.CredentialRetrievalError,
    botocore_errors.TokenRetrievalError,
    botocore_errors.SSOError,
    botocore_errors.UnauthorizedSSOTokenError,
)
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    botocore_errors.EndpointConnectionError,
    botocore_errors.ConnectTimeoutError,
    botocore_errors.ReadTimeoutError,
    botocore_errors.ConnectionClosedError,
)


@dataclass(frozen=True, kw_only=True)
class StackOutputs:
    """The resources of one deployed environment, by the names of the stack outputs."""

    ingest_queue_url: str
    dead_letter_queue_url: str
    state_machine_arn: str
    job_table_name: str
    data_bucket_name: str
    # The critical alarms' topic (it pages), and the warnings' (None before the severity split).
    alarm_topic_arn: str | None = None
    warning_alarm_topic_arn: str | None = None
    # The transforms the deployed functions register; None for a stack deployed before that output.
    transforms: tuple[str, ...] | None = None
    # The most shards a job may ask for; None for a stack deployed before that output.
    max_shards: int | None = None
    # What the deployed code pins new jobs to (published versions, the code's digest); None for a stack
    # deployed before jobs were pinned.
    worker_version_arn: str | None = None
    failures_version_arn: str | None = None
    state_machine_version_arn: str | None = None
    code_digest: str | None = None

    @classmethod
    def from_mapping(cls, outputs: Mapping[str, str], *, env: str, where: str) -> StackOutputs:
        missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
        if missing:
            stacks = sorted({stack_name(env, REQUIRED_OUTPUTS[key]) for key in missing})
            raise CliError(
                f"{where} lacks the output(s) {', '.join(missing)} of {' and '.join(stacks)}: "
                f"redeploy with `make deploy ENV={env}`"
            )
        return cls(
            ingest_queue_url=outputs["IngestQueueUrl"],
            dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
            state_machine_arn=outputs["StateMachineArn"],
            job_table_name=outputs["JobTableName"],
            data_bucket_name=outputs["DataBucketName"],
            alarm_topic_arn=outputs.get("AlarmTopicArn") or None,
            warning_alarm_topic_arn=outputs.get("WarningAlarmTopicArn") or None,
            transforms=tuple(outputs["Transforms"].split(",")) if outputs.get("Transforms") else None,
            max_shards=int(outputs["MaxShards"]) if outputs.get("MaxShards") else None,
            worker_version_arn=outputs.get("WorkerVersionArn") or None,
            failures_version_arn=outputs.get("FailuresVersionArn") or None,
            state_machine_version_arn=outputs.get("StateMachineVersionArn") or None,
            code_digest=outputs.get("CodeDigest") or None,
        )


class Pipeline:
    """One environment as the CLI sees it: its name, its resolved outputs, and lazily created clients
    (creating a boto3 client costs ~50 ms; `pipeline status` needs two of the four)."""

    def __init__(
        self,
        *,
        env: str,
        region: str,
        session: boto3.Session,
        outputs: StackOutputs,
        endpoint_url: str | None = None,
    ) -> None:
        self.env = env
        self.region = region
        self.session = session
        self.outputs = outputs
        self.endpoint_url = endpoint_url

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def client(self, service: str, *, max_attempts: int | None = None) -> Any:
        # Loopback either answers at once or is down: few retries, so a stopped local cloud fails fast.
        attempts = max_attempts or (2 if self.is_local else 5)
        config = Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"mode": "standard", "total_max_attempts": attempts},
        )
        return self.session.client(service, endpoint_url=self.endpoint_url, config=config)

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def s3(self) -> Any:
        return self.client("s3")

    @cached_property
    def stepfunctions(self) -> Any:
        return self.client("stepfunctions")

    @cached_property
    def lambda_(self) -> Any:
        return self.client("lambda")


def add_common_options(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """`--env`, `--region` and `--json`, on every operator command (after the sub-command name); a command
    whose output is data already (`pipeline output`) leaves `--json` out."""
    parser.add_argument(
        "--env",
        metavar="NAME",
        default=None,
        help=f"environment: {', '.join(ENVIRONMENTS)} (default: ${ENV_VARIABLE}, else {DEFAULT_ENV})",
    )
    parser.add_argument(
        "--region", default=None, help="AWS region (default: from the AWS configuration; ignored for local)"
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def resolve_env_name(env: str | None) -> str:
    name = env or os.environ.get(ENV_VARIABLE) or DEFAULT_ENV
    if name not in ENVIRONMENTS:
        source = "--env" if env else f"${ENV_VARIABLE}"
        raise CliError(
            f"{source}: unknown environment {name[:40]!r}; valid environments are {', '.join(ENVIRONMENTS)}"
        )
    return name


@contextlib.contextmanager
def open_pipeline(args: argparse.Namespace) -> Iterator[Pipeline]:
    """Connect to the environment named by `args.env` and translate AWS failures in the block."""
    env = resolve_env_name(getattr(args, "env", None))
    region: str | None = getattr(args, "region", None)
    try:
        pipeline = connect_local() if env == LOCAL_ENV else connect_aws(env, region)
        region = pipeline.region
        yield pipeline
    except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as error:
        raise translate_error(error, env=env, region=region) from error
    except Boto3Error as error:
        # e.g. S3UploadFailedError, which wraps the ClientError of a failed part in its message.
        raise CliError(f"request failed in environment {env}: {error}") from error


def connect_local() -> Pipeline:
    home = local_home()
    try:
        state = read_state(home)
    except (ValueError, TypeError) as error:
        # A half-written or foreign file: the cloud that wrote it cannot be trusted to be there.
        raise CliError(
            f"the local cloud state file {state_path(home)} is unreadable ({error}): {LOCAL_NOT_RUNNING}"
        ) from error
    if state is None or not port_answers(state.port):
        raise CliError(LOCAL_NOT_RUNNING)
    session = dummy_session(state.region)
    outputs = local_outputs(state, session)
    return Pipeline(
        env=LOCAL_ENV, region=state.region, session=session, outputs=outputs, endpoint_url=state.endpoint
    )


def local_outputs(state: LocalCloudState, session: boto3.Session) -> StackOutputs:
    if all(state.outputs.get(key) for key in REQUIRED_OUTPUTS):
        return StackOutputs.from_mapping(state.outputs, env=LOCAL_ENV, where="the local cloud state")
    # An older state file (or one written before the deploy finished): ask the emulator's CloudFormation.
    cloudformation = session.client("cloudformation", endpoint_url=state.endpoint)
    outputs = describe_outputs(cloudformation, env=LOCAL_ENV, region=state.region)
    return StackOutputs.from_mapping(outputs, env=LOCAL_ENV, where="the local cloud")


def connect_aws(env: str, region: str | None) -> Pipeline:
    try:
        session = boto3.Session(region_name=region) if region else boto3.Session()
    except botocore_errors.ProfileNotFound as error:
        raise CliError(
            f"{error}: set AWS_PROFILE to a configured profile (see `aws configure list-profiles`)"
        ) from error
    resolved = session.region_name
    if not resolved:
        raise CliError(f"no AWS region for environment {env}: pass --region or set AWS_REGION")
    # Resolving credentials first turns "none configured" into one clear message before any call.
    if session.get_credentials() is None:
        raise CliError(no_credentials_message(env))
    cloudformation = session.client("cloudformation", config=Config(retries={"mode": "standard"}))
    outputs = describe_outputs(cloudformation, env=env, region=resolved)
    return Pipeline(
        env=env,
        region=resolved,
        session=session,
        outputs=StackOutputs.from_mapping(outputs, env=env, where=f"environment {env} in {resolved}"),
    )


def describe_outputs(cloudformation: Any, *, env: str, region: str) -> dict[str, str]:
    """The outputs of both stacks of `env`, merged by output key."""
    merged: dict[str, str] = {}
    for suffix in STACK_SUFFIXES:
        name = stack_name(env, suffix)
        try:
            stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except botocore_errors.ClientError as error:
            if error_code(error) == "ValidationError" and "does not exist" in error_message(error):
                raise CliError(not_deployed_message(name, env=env, region=region)) from error
            raise
        if not stacks:
            raise CliError(not_deployed_message(name, env=env, region=region))
        status = str(stacks[0].get("StackStatus", ""))
        # An update in progress or rolled back still leaves working resources; these statuses do not.
        if status.startswith(UNUSABLE_STACK_STATUS_PREFIXES):
            raise CliError(
                f"stack {name} in {region} is {status}, not deployed: "
                f"see the CloudFormation console, then run `make deploy ENV={env}`"
            )
        for output in stacks[0].get("Outputs", []):
            merged[output["OutputKey"]] = output["OutputValue"]
    return merged


def port_answers(port: int, *, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=timeout):
            return True
    except OSError:
        return False


def error_code(error: botocore_errors.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: botocore_errors.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def not_deployed_message(name: str, *, env: str, region: str) -> str:
    if env == LOCAL_ENV:
        return f"stack {name} is not deployed in the local cloud: restart it with `pipeline local up`"
    return f"stack {name} is not deployed in {region}: run `make deploy ENV={env}`"


def no_credentials_message(env: str) -> str:
    return (
        f"no AWS credentials for environment {env}: configure them (`aws configure`, AWS_PROFILE, "
        "or `aws sso login`), or use `--env local` for the local cloud"
    )


def translate_error(
    error: botocore_errors.BotoCoreError | botocore_errors.ClientError,
    *,
    env: str,
    region: str | None,
) -> CliError:
    """One message per kind of failure, naming the environment and what to do; never a traceback."""
    if isinstance(error, CREDENTIAL_ERRORS):
        return CliError(f"{no_credentials_message(env)} ({error})")
    if isinstance(error, CONNECTION_ERRORS):
        if env == LOCAL_ENV:
            return CliError(f"{LOCAL_NOT_RUNNING} ({error})")
        return CliError(f"cannot reach AWS in {region} for environment {env}: {error}")
    if isinstance(error, botocore_errors.ClientError):
        return translate_client_error(error, env=env)
    return CliError(f"AWS request failed in environment {env}: {error}")


def translate_client_error(error: botocore_errors.ClientError, *, env: str) -> CliError:
    code, message = error_code(error), error_message(error)
    operation = error.operation_name
    if code in EXPIRED_CREDENTIAL_CODES:
        return CliError(
            f"the AWS credentials for environment {env} have expired ({code}): refresh them "
            "(e.g. `aws sso login`) and retry"
        )
    if code in REJECTED_CREDENTIAL_CODES:
        return CliError(f"AWS rejected the credentials for environment {env} ({code}: {message})")
    if code in {"AccessDenied", "AccessDeniedException"}:
        return CliError(f"access denied to {operation} in environment {env}: {message}")
    return CliError(f"{operation} failed in environment {env}: {code}: {message}")
