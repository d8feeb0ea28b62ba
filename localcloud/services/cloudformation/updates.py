"""Stack updates in moto's CloudFormation in CloudFormation's own order (moto 5.2.5 removes resources
first, then adds, then modifies, each in template order).

CloudFormation updates a stack as a graph: a resource is created or updated only after every resource it
references (Ref, Fn::GetAtt, Fn::Sub, DependsOn), a resource is updated when its properties *as resolved*
change (an unchanged template entry whose `Fn::GetAtt` now returns another value is updated too), and the
resources the new template no longer has are deleted last, in the cleanup phase, unless their
`DeletionPolicy` is `Retain`. moto's order breaks what depends on that:

- a new `AWS::Lambda::Version` was published before its function's code was updated, so it ran the
  previous deploy's code;
- a `AWS::StepFunctions::StateMachineVersion` naming the state machine's `StateMachineRevisionId` was never
  published again (its template entry does not change when the definition does);
- a version the new template dropped with `DeletionPolicy: Retain` (what a job pinned to it runs on) was
  deleted.

So updates here: create and update in dependency order, re-resolve every resource that references one
that changed, and delete removed resources last, keeping those marked Retain.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicescloudformationupdatespy
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import Any

from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation.parsing import ResourceMap

LOG = logging.getLogger(__name__)
Undo = Callable[[], None]
# The properties of each resource as last resolved, by logical id (kept on the ResourceMap, saved with it).
RESOLVED = "_localcloud_resolved"
_SUB_REFERENCE = "${"


def references(value: Any, names: Iterable[str]) -> set[str]:
    """The logical ids among `names` that `value` (a resource's JSON) references."""
    known = set(names)
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, inner in node.items():
                if key == "Ref" and isinstance(inner, str) and inner in known:
                    found.add(inner)
                elif key == "Fn::GetAtt":
                    target = inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]
                    if target in known:
                        found.add(target)
                elif key == "Fn::Sub":
                    text = inner[0] if isinstance(inner, list) else inner
                    if isinstance(text, str):
                        found.update(
                            name
                            for name in known
                            if f"{_SUB_REFERENCE}{name}}}" in text or f"{_SUB_REFERENCE}{name}." in text
                        )
                    walk(inner)
                else:
                    walk(inner)
        elif isinstance(node, list):
            for inner in node:
                walk(inner)

    walk(value)
    return found


def dependencies(resources: Mapping[str, Any]) -> dict[str, set[str]]:
    """Logical id -> the logical ids it must come after."""
    graph: dict[str, set[str]] = {}
    for name, resource in resources.items():
        depends_on = resource.get("DependsOn", [])
        depends = {depends_on} if isinstance(depends_on, str) else set(depends_on)
        graph[name] = (references(resource, resources) | depends) & set(resources) - {name}
    return graph


def _resolved(resource_map: ResourceMap, name: str) -> Any:
    resource_json = resource_map._resource_json_map[name]
    try:
        return cfn_parsing.clean_json(resource_json.get("Properties", {}), resource_map)
    except Exception:
        LOG.debug("could not resolve the properties of %s", name, exc_info=True)
        return None


def remember_resolved(resource_map: ResourceMap) -> None:
    """Record every resource's resolved properties: the next update compares against them."""
    setattr(
        resource_map,
        RESOLVED,
        {name: _resolved(resource_map, name) for name in resource_map._resource_json_map},
    )


def _order(resources: Mapping[str, Any], wanted: set[str]) -> list[str]:
    graph = dependencies(resources)
    try:
        ordered = list(TopologicalSorter(graph).static_order())
    except CycleError:
        # CloudFormation refuses such a template; keep moto's order rather than fail here.
        ordered = list(resources)
    return [name for name in ordered if name in wanted]


def update(self: ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
    """ResourceMap.update, in CloudFormation's order (see the module docstring)."""
    diff = self.build_resource_diff(template, parameters)
    old_resources = dict(self._resource_json_map)
    previous: dict[str, Any] = dict(getattr(self, RESOLVED, {}))

    self._template = template
    if parameters:
        self.input_parameters = parameters
    self.load_mapping()
    self.load_parameters()
    self.load_conditions()
    self._resource_json_map = template["Resources"]

    added, modified = set(diff["Add"]), set(diff["Modify"])
    resources = template["Resources"]
    changed: set[str] = set()
    for name in _order(resources, set(resources)):
        if name in added:
            _ = self[name]  # moto creates a resource when it is first looked up
            changed.add(name)
            continue
        if name not in modified:
            # Unchanged in the template: updated all the same if what it references now resolves otherwise.
            if (
                not references(resources[name], changed)
                or name not in previous
                or _resolved(self, name) == previous[name]
            ):
                continue
            LOG.info("updating %s: a resource it references changed", name)
        updated = cfn_parsing.parse_and_update_resource(
            name, resources[name], self, account_id=self._account_id, region_name=self._region_name
        )
        if updated is not None:  # a model without updates keeps the resource as it was
            self._parsed_resources[name] = updated
        changed.add(name)

    # Cleanup: removed resources, last, dependents before what they reference; Retain keeps them.
    for name in reversed(_order(old_resources, set(diff["Remove"]))):
        resource_json = old_resources[name]
        resource = self._parsed_resources.pop(name, None)
        if resource_json.get("DeletionPolicy") == "Retain":
            LOG.info("retaining %s (DeletionPolicy Retain): no longer in the stack", name)
            continue
        if resource is None:
            continue
        try:
            self._delete_resource(resource, resource_json)
        except Exception:
            LOG.warning("could not delete %s, removed from the stack", name, exc_info=True)
    remember_resolved(self)


def install() -> Undo:
    """Stack updates (and the resolved properties they compare against) in CloudFormation's order."""
    original_update = ResourceMap.update
    original_create = ResourceMap.create

    def create(self: ResourceMap, *args: Any, **kwargs: Any) -> Any:
        result = original_create(self, *args, **kwargs)
        remember_resolved(self)
        return result

    ResourceMap.update = update  # type: ignore[method-assign]
    ResourceMap.create = create  # type: ignore[method-assign]

    def undo() -> None:
        ResourceMap.update = original_update  # type: ignore[method-assign]
        ResourceMap.create = original_create  # type: ignore[method-assign]

    return undo
