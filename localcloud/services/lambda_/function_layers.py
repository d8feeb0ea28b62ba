"""A function's layers as CloudFormation declares them. moto 5.2.5's CloudFormation drops a function's
`Layers` (its model copies a fixed list of properties), and a `Ref` to an `AWS::Lambda::LayerVersion` is the
model object itself rather than the layer version's ARN, as CloudFormation returns it. The Lambda runner
puts the layers on the function's path (`/opt/python`), so what the template declares is what the code sees.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceslambda_runnerpy
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.awslambda.models import LambdaFunction, LayerVersion


def install() -> Callable[[], None]:
    """Apply the patches; returns the undo."""
    original_create = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    had_id = "physical_resource_id" in vars(LayerVersion)

    def create(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        function = original_create(cls, resource_name, cloudformation_json, *args, **kwargs)
        layers = cloudformation_json.get("Properties", {}).get("Layers") or []
        if layers:
            # Lambda refuses a layer version it does not hold, and so does moto's own check here.
            function.layers = function._get_layers_data([str(layer) for layer in layers])
        return function

    LambdaFunction.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]
    LayerVersion.physical_resource_id = property(lambda self: self.arn)  # type: ignore[attr-defined]

    def undo() -> None:
        LambdaFunction.create_from_cloudformation_json = classmethod(original_create)  # type: ignore[method-assign,assignment]
        if not had_id:
            del LayerVersion.physical_resource_id  # type: ignore[attr-defined]

    return undo
