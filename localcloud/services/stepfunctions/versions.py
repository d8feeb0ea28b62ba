"""Step Functions state machine versions in the local cloud, as AWS has them (moto 5.2.5 holds versions but
cannot run or manage them).

What moto lacks, and this adds:
- `AWS::StepFunctions::StateMachineVersion` for CloudFormation (moto skips it silently): a version is
  published from the state machine's definition when the resource is created or replaced; `Ref` and
  `GetAtt Arn` are the version's ARN; a replaced version is kept when the template says
  `UpdateReplacePolicy: Retain`. The state machine's `StateMachineRevisionId` attribute, which the
  version resource names so that a changed definition publishes a new version, is a digest of what a
  version snapshots (definition and role): it changes exactly when they do.
- StartExecution on a version ARN (moto raises AttributeError): the execution runs the version's own
  definition, belongs to the state machine (execution names are unique across its versions, as on AWS;
  DescribeExecution, ListExecutions and a save and restore of the local cloud find it) and says which
  version it runs (`stateMachineVersionArn` in DescribeExecution, as AWS answers; the execution ARN is the
  state machine's, without the version).
- PublishStateMachineVersion, ListStateMachineVersions and DeleteStateMachineVersion (missing in moto).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesstepfunctionsversionspy
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.stepfunctions.exceptions import InvalidExecutionInput, ResourceNotFound
from moto.stepfunctions.models import StateMachine, StateMachineVersion
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

Undo = Callable[[], None]
TYPE = "AWS::StepFunctions::StateMachineVersion"
# Set on an execution started on a version (moto's Execution has no such field).
VERSION_ARN = "state_machine_version_arn"


def revision_id(state_machine: Any) -> str:
    """What identifies a state machine's publishable content: a new value exactly when a version published
    now would differ from one published before."""
    content = json.dumps([state_machine.definition, state_machine.roleArn], sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()[:32]


def _backend(account_id: str, region_name: str) -> Any:
    from localcloud.services.stepfunctions.sfn import executing_backend  # noqa: PLC0415 - no cycle at import

    return executing_backend(account_id, region_name)


def _split(version_arn: str) -> tuple[str, int]:
    base, _, number = version_arn.rpartition(":")
    return base, int(number)


def publish(backend: Any, state_machine_arn: str, description: str | None = None) -> StateMachineVersion:
    """Publish the state machine's current definition as its next version (numbers are never reused)."""
    state_machine = backend.describe_state_machine(state_machine_arn)
    state_machine.publish(description)
    version: StateMachineVersion = state_machine.latest_version
    return version


def delete_version(backend: Any, version_arn: str) -> None:
    base, number = _split(version_arn)
    state_machine = backend.describe_state_machine(base)
    state_machine.versions.pop(number, None)
    if state_machine.latest_version is not None and state_machine.latest_version.version == number:
        remaining = sorted(state_machine.versions)
        state_machine.latest_version = state_machine.versions[remaining[-1]] if remaining else None


class StateMachineVersionResource(CloudFormationModel):
    """One published version of a state machine, as CloudFormation manages it."""

    # moto files models by the second component of the module name; keep it stable under `python -m`.
    __module__ = "localcloud.services.stepfunctions.versions"

    def __init__(self, arn: str, state_machine_arn: str) -> None:
        self.arn = arn
        self.state_machine_arn = state_machine_arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return TYPE

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException  # noqa: PLC0415

        if attribute_name == "Arn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> StateMachineVersionResource:
        properties = cloudformation_json.get("Properties", {})
        machine = str(properties["StateMachineArn"])
        version = publish(_backend(account_id, region_name), machine, properties.get("Description"))
        return cls(version.arn, machine)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> StateMachineVersionResource:
        # Every property of a version requires a replacement: publish anew; the old one stays only if the
        # template says so (UpdateReplacePolicy: Retain), as CloudFormation's cleanup would leave it.
        replacement = cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        if cloudformation_json.get("UpdateReplacePolicy") != "Retain":
            delete_version(_backend(account_id, region_name), original_resource.arn)
        return replacement

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        delete_version(_backend(account_id, region_name), resource_name)


def _start_execution(original: Callable[..., Any]) -> Callable[..., Any]:
    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: Any = None,
    ) -> Any:
        target = self.describe_state_machine(state_machine_arn)
        if not isinstance(target, StateMachineVersion):
            return original(self, state_machine_arn, name, execution_input, trace_header)
        # moto's own start, for the version's definition, on behalf of the state machine it belongs to.
        base = self.describe_state_machine(target.source_arn)
        existing = base._handle_name_input_idempotency(name, execution_input)
        if existing is not None:
            return existing
        input_data = "{}" if execution_input is None else execution_input
        try:
            json.loads(input_data)
        except ValueError as error:
            raise InvalidExecutionInput(str(error)) from None
        snapshot: Any = copy.deepcopy(target, {id(target.executions): []})
        execution = Execution(
            name=str(name),
            sm_type=snapshot.sm_type,
            role_arn=snapshot.roleArn,
            exec_arn=f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:execution:"
            f"{base.name}:{name}",
            account_id=self.account_id,
            region_name=self.region_name,
            state_machine=snapshot,
            start_date=dt.datetime.now(tz=dt.UTC),
            cloud_watch_logging_session=None,
            input_data=input_data,
            trace_header=trace_header,
            activity_store={},
        )
        # The state machine's execution (its ARN in DescribeExecution, events and metrics), of this version.
        execution.state_machine_arn = base.arn
        setattr(execution, VERSION_ARN, target.arn)
        base.executions.append(execution)
        execution.start()
        return execution

    return start_execution


def _list_executions(original: Callable[..., Any]) -> Callable[..., Any]:
    def list_executions(self: Any, state_machine_arn: str, **kwargs: Any) -> Any:
        target = self.describe_state_machine(state_machine_arn)
        if not isinstance(target, StateMachineVersion):
            return original(self, state_machine_arn, **kwargs)
        # A version's executions are the state machine's that run it.
        executions, token = original(self, target.source_arn, **kwargs)
        return [e for e in executions if getattr(e, VERSION_ARN, None) == target.arn], token

    return list_executions


def _describe_execution(original: Callable[..., Any]) -> Callable[..., Any]:
    def describe_execution(self: Any) -> Any:
        result = original(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        version = getattr(execution, VERSION_ARN, None)
        if version is not None:
            result.result["stateMachineVersionArn"] = version
        return result

    return describe_execution


def _publish_state_machine_version(self: Any) -> Any:
    from moto.core.responses import ActionResult  # noqa: PLC0415

    version = publish(
        self.stepfunction_backend, self._get_param("stateMachineArn"), self._get_param("description")
    )
    return ActionResult({"stateMachineVersionArn": version.arn, "creationDate": version.creation_date})


def _list_state_machine_versions(self: Any) -> Any:
    from moto.core.responses import ActionResult  # noqa: PLC0415

    state_machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
    # Newest first, as AWS lists them; one page holds them all (a state machine keeps at most 1,000).
    versions = sorted(state_machine.versions.values(), key=lambda v: v.version, reverse=True)
    return ActionResult(
        {
            "stateMachineVersions": [
                {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions
            ]
        }
    )


def _delete_state_machine_version(self: Any) -> Any:
    from moto.core.responses import ActionResult  # noqa: PLC0415

    arn = self._get_param("stateMachineVersionArn")
    base, number = _split(arn)
    state_machine = self.stepfunction_backend.describe_state_machine(base)
    for alias in state_machine.aliases.values():
        if any(route.get("stateMachineVersionArn") == arn for route in alias.routing_configuration):
            raise ResourceNotFound(
                f"Version {arn} is referenced by alias {alias.arn}: update the alias first"
            )
    if number in state_machine.versions:
        delete_version(self.stepfunction_backend, arn)
    return ActionResult({})


def _state_machine_attribute(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "StateMachineRevisionId":
            return revision_id(self)
        return original(self, attribute_name)

    return get_cfn_attribute


def install() -> Undo:
    """Patch moto; returns the function that restores it."""
    patches: list[tuple[Any, str, Any]] = [
        (StepFunctionsParserBackend, "start_execution", _start_execution),
        (StepFunctionsParserBackend, "list_executions", _list_executions),
        (StepFunctionResponse, "describe_execution", _describe_execution),
        (StateMachine, "get_cfn_attribute", _state_machine_attribute),
    ]
    # What each class itself held (None: it inherited the name), to put back.
    originals: list[tuple[Any, str, Any]] = []
    for owner, name, wrap in patches:
        originals.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, wrap(getattr(owner, name)))
    added = {
        "publish_state_machine_version": _publish_state_machine_version,
        "list_state_machine_versions": _list_state_machine_versions,
        "delete_state_machine_version": _delete_state_machine_version,
    }
    for name, handler in added.items():
        setattr(StepFunctionResponse, name, handler)
    original_has_attr = StateMachine.__dict__["has_cfn_attr"]
    StateMachine.has_cfn_attr = classmethod(  # type: ignore[assignment,method-assign]
        lambda cls, attr: attr == "StateMachineRevisionId" or original_has_attr.__func__(cls, attr)
    )
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    if cfn_parsing.get_model_map().get(TYPE) is not StateMachineVersionResource:
        raise RuntimeError(f"moto did not pick up the {TYPE} model")

    def undo() -> None:
        for owner, name, original in originals:
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        for name in added:
            delattr(StepFunctionResponse, name)
        StateMachine.has_cfn_attr = original_has_attr  # type: ignore[method-assign]

    return undo
