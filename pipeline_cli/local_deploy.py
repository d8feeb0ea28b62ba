"""The local cloud with this project's app in it: `up()` starts (or reuses) the local cloud and deploys
the CDK app's `local` environment into it with the real CDK CLI.

    cdk bootstrap aws://123456789012/us-east-1                 (once per cloud)
    cdk deploy --all --method=direct --require-approval never -c env=local -o OUTDIR

with AWS_ENDPOINT_URL pointing at the cloud and dummy credentials, then reads both stacks' outputs, which
the cloud's state file records. `--method=direct` because moto's change sets cannot update a CDK stack
(and, with change sets, the first stack is created without its Outputs/Exports, so the second one fails on
its ImportValue). A failed step raises DeployError carrying the tail of the CLI's own output; the full
output is in the log file (`<home>/logs/deploy.log`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localcloud.core import cloud
from localcloud.core.cloud import Progress
from localcloud.core.state import ACCOUNT_ID, DUMMY_CREDENTIALS, REGION, LocalCloudState
from pipeline_cli.local_home import local_home

PROJECT_DIR = Path(__file__).resolve().parents[1]
ENVIRONMENT = "local"
STACKS = (f"ResilientPipeline-{ENVIRONMENT}-Stateful", f"ResilientPipeline-{ENVIRONMENT}-Pipeline")
# The SSM parameter `cdk bootstrap` writes; its presence means the asset bucket and roles exist.
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
TAIL_LINES = 40


class DeployError(Exception):
    """A CDK CLI step failed. The message ends with the tail of the CLI's output."""


@dataclass(frozen=True, kw_only=True)
class DeployResult:
    outputs: dict[str, str]
    seconds: float
    bootstrapped: bool


def cdk_executable(project_dir: Path = PROJECT_DIR) -> Path:
    return project_dir / "node_modules" / ".bin" / "cdk"


def cli_environment(endpoint: str, *, region: str = REGION, validate: bool = False) -> dict[str, str]:
    """The CLI's environment: only the local cloud, as the local account, with the project's Python."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Real credentials, profiles or endpoints from the host must never reach this deploy.
        if not key.startswith("AWS_") and not key.startswith("CDK_")
    }
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            # cdk.json runs `python3 app.py`: that must be this interpreter's venv.
            "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "CI": "true",
        }
    )
    if not validate:
        # The synth-time validation plugins (cdk-nag) add ~3 s to every deploy and change nothing in the
        # template; `make synth` and the infra tests run them. Opt in with validate=True.
        env["CDK_VALIDATION"] = "false"
    return env


def _client(service: str, endpoint: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def is_bootstrapped(endpoint: str, *, region: str = REGION) -> bool:
    try:
        _client("ssm", endpoint, region).get_parameter(Name=BOOTSTRAP_PARAMETER)
    except ClientError:
        return False
    return True


def stack_outputs(endpoint: str, *, region: str = REGION, stacks: tuple[str, ...] = STACKS) -> dict[str, str]:
    """Every output of `stacks`, by OutputKey (IngestQueueUrl, JobTableName, ...)."""
    client = _client("cloudformation", endpoint, region)
    outputs: dict[str, str] = {}
    for stack_name in stacks:
        try:
            described = client.describe_stacks(StackName=stack_name)["Stacks"]
        except (ClientError, BotoCoreError) as error:
            raise DeployError(f"cannot read the outputs of {stack_name}: {error}") from error
        for stack in described:
            for output in stack.get("Outputs", []):
                outputs[output["OutputKey"]] = output["OutputValue"]
    return outputs


def run_cdk(
    args: list[str],
    *,
    env: Mapping[str, str],
    project_dir: Path,
    log_path: Path,
    progress: Progress | None = None,
) -> None:
    """Run the pinned CDK CLI; stream interesting lines to `progress`; raise DeployError on failure."""
    cdk = cdk_executable(project_dir)
    if not cdk.exists():
        raise DeployError(f"the pinned CDK CLI is missing ({cdk}): run `make install` (npm ci) first")
    command = [str(cdk), *args, "--no-notices"]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(  # noqa: S603 - the project's pinned CLI, arguments built here
            command,
            cwd=project_dir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        for raw in process.stdout or ():
            line = raw.rstrip("\n")
            log.write(raw)
            tail.append(line)
            if progress is not None and _is_progress_line(line):
                progress(line.strip())
        code = process.wait()
    if code != 0:
        output = "\n".join(f"    {line}" for line in tail)
        raise DeployError(
            f"`cdk {' '.join(args[:1])}` failed (exit {code}); full output in {log_path}. Last lines:\n{output}"
        )


def _is_progress_line(line: str) -> bool:
    # The CLI's per-stack milestones; resource-by-resource events stay in the log file.
    text = line.strip()
    return text.startswith(("✅", "❌", "✨")) or "Environment aws://" in text


def deploy(
    endpoint: str,
    *,
    outdir: Path,
    log_path: Path,
    region: str = REGION,
    project_dir: Path = PROJECT_DIR,
    progress: Progress | None = None,
    validate: bool = False,
    context: Mapping[str, str] | None = None,
) -> DeployResult:
    """Bootstrap (when needed) and deploy both stacks of the `local` environment, with the CDK `context`
    given (`-c KEY=VALUE`, e.g. userCode); return their outputs."""
    started = time.monotonic()
    env = cli_environment(endpoint, region=region, validate=validate)
    bootstrapped = False
    if not is_bootstrapped(endpoint, region=region):
        if progress:
            progress(f"cdk bootstrap aws://{ACCOUNT_ID}/{region}")
        run_cdk(
            ["bootstrap", f"aws://{ACCOUNT_ID}/{region}", "-c", f"env={ENVIRONMENT}", "-o", str(outdir)],
            env=env,
            project_dir=project_dir,
            log_path=log_path,
            progress=progress,
        )
        bootstrapped = True
    if progress:
        progress(f"cdk deploy --all --method=direct -c env={ENVIRONMENT}")
    run_cdk(
        [
            "deploy",
            "--all",
            "--method=direct",
            "--require-approval",
            "never",
            "--progress",
            "events",
            "-c",
            f"env={ENVIRONMENT}",
            *[arg for key, value in (context or {}).items() for arg in ("-c", f"{key}={value}")],
            "-o",
            str(outdir),
        ],
        env=env,
        project_dir=project_dir,
        log_path=log_path,
        progress=progress,
    )
    outputs = stack_outputs(endpoint, region=region)
    return DeployResult(outputs=outputs, seconds=time.monotonic() - started, bootstrapped=bootstrapped)


def up(
    *,
    port: int | None = None,
    home: Path | None = None,
    progress: Progress | None = None,
    context: Mapping[str, str] | None = None,
    iam: bool | None = None,
) -> LocalCloudState:
    """A running local cloud (started, or the one already running) with the `local` environment deployed
    again (with the CDK `context` given); its outputs are in the returned state. `iam`: IAM enforcement on
    or off (None: as it is; a new cloud enforces). Raises `cloud.LocalCloudError` saying what to do."""

    def deploy_step(state: LocalCloudState, home: Path, progress: Progress) -> dict[str, str]:
        return deploy_app(state, home, progress, context=context)

    return cloud.up(port=port, home=home or local_home(), deploy=deploy_step, progress=progress, iam=iam)


def deploy_app(
    state: LocalCloudState, home: Path, progress: Progress, *, context: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`cloud.up`'s deploy step: both stacks into the running cloud; returns their outputs."""
    progress("deploying the local environment with the CDK CLI (cdk deploy --all --method=direct)")
    try:
        result = deploy(
            state.endpoint,
            outdir=home / "cdk.out",
            log_path=home / "logs" / "deploy.log",
            region=state.region,
            progress=progress,
            context=context,
        )
    except DeployError as error:
        raise cloud.LocalCloudError(
            f"{error}\nThe local cloud is still running at {state.endpoint}: fix the cause and run "
            "`pipeline local up` again, or stop it with `pipeline local down`."
        ) from error
    progress(f"deployed in {result.seconds:.1f}s")
    return result.outputs
