"""`AWS::Lambda::EventInvokeConfig` for moto's CloudFormation, which has no model for it (moto 5.2.5).

Without one, moto skips the resource: a function's asynchronous-invocation settings (retries, maximum
event age, OnSuccess/OnFailure destinations) as the template declares them never exist locally, and an
event that fails all its retries vanishes where AWS would deliver it to the OnFailure destination. With
it, the settings go into moto's Lambda backend (as PutFunctionEventInvokeConfig would put them), where the
Lambda runner's asynchronous path reads them (`runner.async_config_from_moto`).
"""

from __future__ import annotations

from typing import Any

from moto.awslambda.models import lambda_backends
from moto.core.common_models import CloudFormationModel

TYPE = "AWS::Lambda::EventInvokeConfig"
_FIELDS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")


def _function_name(properties: dict[str, Any]) -> str:
    # FunctionName may be a name or an ARN; moto's backend takes either.
    return str(properties["FunctionName"])


class LambdaEventInvokeConfigResource(CloudFormationModel):
    """One function's asynchronous-invocation configuration (the `$LATEST` qualifier is what CDK writes)."""

    # moto files models by the second component of the module name ("services" here), and pickle finds the
    # class by the whole name: spelled out, so that both hold under `python -m` too.
    __module__ = "localcloud.services.lambda_.event_invoke_config"

    def __init__(self, function_name: str, account_id: str, region_name: str) -> None:
        self.function_name = function_name
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return TYPE

    @property
    def physical_resource_id(self) -> str:
        return self.function_name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaEventInvokeConfigResource:
        properties = cloudformation_json.get("Properties", {})
        name = _function_name(properties)
        backend = lambda_backends[account_id][region_name]
        config = {key: properties[key] for key in _FIELDS if key in properties}
        # Replace, never append: the runner reads the first config, and an update must not leave the old one.
        backend.get_function(name).event_invoke_config = []
        backend.put_function_event_invoke_config(name, config)
        return cls(name, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> LambdaEventInvokeConfigResource:
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        properties = cloudformation_json.get("Properties", {})
        backend = lambda_backends[account_id][region_name]
        try:
            backend.get_function(_function_name(properties)).event_invoke_config = []
        except Exception:  # noqa: BLE001 - the function went first: nothing left to clear
            return
