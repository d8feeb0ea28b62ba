"""The published versions a deployed environment keeps (`pipeline versions`, `pipeline versions prune`).

Every deploy publishes a version of the worker, of the failures function and (when the definition
changed) of the state machine, and keeps the versions it replaces: a job runs start to finish on the
versions it was accepted on. Old versions are kept as long as a job needs them, and not forever:

- the current versions (what the ingest pins new jobs to: the stack's outputs) always stay;
- a version named by the pin of a PENDING or RUNNING job stays (a FAILED job never needs an old one: its
  redrive runs the deployed code, or is refused);
- a version replaced less than `grace` ago stays: during a deploy the ingest that is being replaced may
  still pin a job to it, and the job's record may not be in the status index yet.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline_cli.aws import Pipeline
from pipeline_cli.errors import CliError
from pipeline_cli.records import query_status
from pipeline_contract import ACTIVE

WORKER, FAILURES, STATE_MACHINE = "worker", "failures", "state machine"
KINDS = (WORKER, FAILURES, STATE_MACHINE)
# The key of each kind in a job's `code_pin`.
PIN_KEYS = {WORKER: "worker", FAILURES: "failures", STATE_MACHINE: "state_machine"}
DEFAULT_GRACE_MINUTES = 15
# Active jobs read per status: more than any pipeline runs at once; a page limit, not a cap on jobs.
ACTIVE_JOBS_PAGE = 10_000


@dataclass
class PublishedVersion:
    kind: str
    arn: str
    version: str
    created: dt.datetime
    current: bool = False
    # When the next version of the same resource was published (None: none newer).
    replaced_at: dt.datetime | None = None
    jobs: list[str] = field(default_factory=list)

    def keep_reason(self, *, now: dt.datetime, grace: dt.timedelta) -> str | None:
        """Why prune must keep this version, or None when nothing needs it."""
        if self.current:
            return "current"
        if self.jobs:
            return f"pinned by {len(self.jobs)} active job(s)"
        if self.replaced_at is not None and now - self.replaced_at < grace:
            return f"replaced less than {int(grace.total_seconds() // 60)} minutes ago"
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "arn": self.arn,
            "version": self.version,
            "created": self.created.isoformat(),
            "current": self.current,
            "replaced_at": self.replaced_at.isoformat() if self.replaced_at else None,
            "active_jobs": self.jobs,
        }


def _unqualified(arn: str) -> str:
    return arn.rsplit(":", 1)[0]


def current_versions(pipeline: Pipeline) -> dict[str, str]:
    outputs = pipeline.outputs
    current = {
        WORKER: outputs.worker_version_arn,
        FAILURES: outputs.failures_version_arn,
        STATE_MACHINE: outputs.state_machine_version_arn,
    }
    missing = [kind for kind, arn in current.items() if not arn]
    if missing:
        raise CliError(
            f"environment {pipeline.env} was deployed before its code was published in versions (no "
            f"{', '.join(missing)} version in the stack's outputs): redeploy it first"
        )
    return {kind: str(arn) for kind, arn in current.items()}


def _lambda_versions(lambda_client: Any, function_arn: str, kind: str) -> Iterator[PublishedVersion]:
    for page in lambda_client.get_paginator("list_versions_by_function").paginate(FunctionName=function_arn):
        for version in page.get("Versions", []):
            if version["Version"] == "$LATEST":
                continue
            yield PublishedVersion(
                kind=kind,
                arn=str(version["FunctionArn"]),
                version=str(version["Version"]),
                created=_moment(version.get("LastModified")),
            )


def _state_machine_versions(sfn: Any, state_machine_arn: str) -> Iterator[PublishedVersion]:
    request: dict[str, Any] = {"stateMachineArn": state_machine_arn}
    while True:
        response = sfn.list_state_machine_versions(**request)
        for version in response.get("stateMachineVersions", []):
            arn = str(version["stateMachineVersionArn"])
            yield PublishedVersion(
                kind=STATE_MACHINE,
                arn=arn,
                version=arn.rsplit(":", 1)[1],
                created=_moment(version.get("creationDate")),
            )
        if not response.get("nextToken"):
            return
        request["nextToken"] = response["nextToken"]


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value or "")
    try:
        # Lambda's LastModified: `2026-12-07T01:02:03.456+0000`.
        moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        moment = dt.datetime.fromisoformat(text) if text else dt.datetime.min
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def active_pins(pipeline: Pipeline) -> dict[str, list[str]]:
    """Version ARN -> the PENDING and RUNNING jobs pinned to it."""
    # By job: a job started between the PENDING and the RUNNING query is in both answers (its pin is the
    # same in both), and is named once.
    active = {
        str(record["job_id"]): record
        for status in ACTIVE
        for record in query_status(pipeline, status, limit=ACTIVE_JOBS_PAGE)
    }
    pinned: dict[str, list[str]] = {}
    for job_id, record in active.items():
        pin = record.get("code_pin")
        if not isinstance(pin, Mapping):
            continue
        for key in PIN_KEYS.values():
            if pin.get(key):
                pinned.setdefault(str(pin[key]), []).append(job_id)
    return pinned


def _with_replacement_times(versions: Sequence[PublishedVersion]) -> None:
    ordered = sorted(versions, key=lambda version: int(version.version))
    for older, newer in itertools.pairwise(ordered):
        older.replaced_at = newer.created


def deployed_versions(pipeline: Pipeline) -> list[PublishedVersion]:
    """Every published version of the pipeline's own functions and state machine, oldest first per kind,
    with what uses it."""
    current = current_versions(pipeline)
    found: dict[str, list[PublishedVersion]] = {
        WORKER: list(_lambda_versions(pipeline.lambda_, _unqualified(current[WORKER]), WORKER)),
        FAILURES: list(_lambda_versions(pipeline.lambda_, _unqualified(current[FAILURES]), FAILURES)),
        STATE_MACHINE: list(
            _state_machine_versions(pipeline.stepfunctions, _unqualified(current[STATE_MACHINE]))
        ),
    }
    pins = active_pins(pipeline)
    versions: list[PublishedVersion] = []
    for kind in KINDS:
        _with_replacement_times(found[kind])
        for version in sorted(found[kind], key=lambda v: int(v.version)):
            version.current = version.arn == current[kind]
            version.jobs = sorted(pins.get(version.arn, []))
            versions.append(version)
    return versions


@dataclass(frozen=True)
class PruneResult:
    deleted: list[PublishedVersion]
    kept: list[tuple[PublishedVersion, str]]


def prune(
    pipeline: Pipeline,
    versions: Iterable[PublishedVersion],
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    dry_run: bool = False,
) -> PruneResult:
    deleted: list[PublishedVersion] = []
    kept: list[tuple[PublishedVersion, str]] = []
    for version in versions:
        reason = version.keep_reason(now=now, grace=grace)
        if reason is not None:
            kept.append((version, reason))
            continue
        if not dry_run:
            if version.kind == STATE_MACHINE:
                pipeline.stepfunctions.delete_state_machine_version(stateMachineVersionArn=version.arn)
            else:
                pipeline.lambda_.delete_function(
                    FunctionName=_unqualified(version.arn), Qualifier=version.version
                )
        deleted.append(version)
    return PruneResult(deleted=deleted, kept=kept)
