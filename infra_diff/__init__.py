"""Infrastructure change review: compare the synthesized templates of two refs, per environment.

Pure logic, testable without synthesis or AWS:
- `values`: asset-hash masking, intrinsic rendering, leaf-level value diff.
- `replacement`: which property changes replace a resource; which resource types hold state.
- `compare`: stacks -> `Report` (resource changes, destructive changes, notes).
- `security`: IAM grants, encryption/TLS, public access, alarms, retention.
- `render`: the report as plain text or GitHub Markdown.
- `assembly`: read a cloud assembly directory.
`synth_driver` is the exception: a script `pipeline diff` runs inside each source tree to synthesize it.
"""

from __future__ import annotations

from infra_diff.compare import compare
from infra_diff.model import Finding, Impact, Report, StackTemplate
from infra_diff.render import Labels, render_markdown, render_text

__all__ = [
    "Finding",
    "Impact",
    "Labels",
    "Report",
    "StackTemplate",
    "compare",
    "render_markdown",
    "render_text",
]
