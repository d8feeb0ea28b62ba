"""ACME's own transforms for resilient-pipeline: importing the package registers them all.

Deployed with `make deploy ENV=dev CDK_ARGS="-c userCode=examples/user-code"` (or `pipeline local up
--context userCode=examples/user-code`); tried on a file with `pipeline try --user-code examples/user-code`.
"""

from acme_transforms import enrich, filters, pii

__all__ = ["enrich", "filters", "pii"]
