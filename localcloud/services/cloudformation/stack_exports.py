"""Stack exports kept current across UpdateStack in moto's CloudFormation (moto 5.2.5 registers a stack's
exports only when it creates the stack).

Without this, an output export added by an update (or a changed export value) is not there for other
stacks: a later stack that imports it fails with "No export named ... found", and one that imported a
changed value keeps reading the old one. So a local cloud deployed before a template added an export
(the job table's stream ARN, say) could not take the new template without being torn down. After every
update the stack's exports are what its outputs now say, as CloudFormation keeps them.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicescloudformationstack_exportspy
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from moto.cloudformation.models import CloudFormationBackend

LOG = logging.getLogger(__name__)
Undo = Callable[[], None]


def install() -> Undo:
    """Re-register a stack's exports after each UpdateStack; returns a function that removes the hook."""
    original = CloudFormationBackend.update_stack

    def update_stack(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            before = {export.name for export in self.get_stack(name).exports}
        except Exception:  # noqa: BLE001 - the original call reports an unknown stack its own way
            before = set()
        stack = original(self, name, *args, **kwargs)
        after = {export.name: export for export in stack.exports}
        for gone in before - set(after):
            current = self.exports.get(gone)
            if current is not None and current.exporting_stack_id == stack.stack_id:
                del self.exports[gone]
        for export_name, export in after.items():
            if export_name not in self.exports or self.exports[export_name].value != export.value:
                LOG.info("stack %s: export %s = %s", stack.name, export_name, export.value)
            self.exports[export_name] = export
        return stack

    CloudFormationBackend.update_stack = update_stack  # type: ignore[method-assign]

    def undo() -> None:
        CloudFormationBackend.update_stack = original  # type: ignore[method-assign]

    return undo
