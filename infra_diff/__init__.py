"""Infrastructure change review: compare the synthesized templates of two refs, per environment.

Pure logic, testable without synthesis or AWS:
- `values`: asset-hash masking, intrinsic rendering, leaf-level value diff.
- `replacement`: which property changes replace a resource; which resource types hold state.
- `compare`: stacks -> `Report` (resource changes, destructive changes, notes).
- `security`: IAM grants, encryption/TLS, public access, alarms, retention.
- `render`: the report as plain text or GitHub Markdown.
- `document`: the report as one JSON document (the shape is documented and versioned).
- `assembly`: read a cloud assembly directory.
Not pure: `sources` checks out the base ref in a git worktree and runs `synth_driver` (a script) inside
each source tree to synthesize it.
"""

from __future__ import annotations

from infra_diff.compare import compare
from infra_diff.document import render_json, to_document
from infra_diff.model import EXIT_DESTRUCTIVE, EXIT_OK, Finding, Impact, Report, StackTemplate, exit_status
from infra_diff.render import Labels, render_markdown, render_text

__all__ = [
    "EXIT_DESTRUCTIVE",
    "EXIT_OK",
    "Finding",
    "Impact",
    "Labels",
    "Report",
    "StackTemplate",
    "compare",
    "exit_status",
    "render_json",
    "render_markdown",
    "render_text",
    "to_document",
]
