"""Infrastructure change review: compare the synthesized templates of two refs, per environment, and
report what would be added, changed, replaced or lost. Imports nothing from `pipeline_cli`. Every module
but `sources` (git worktree, synthesis in subprocesses) and `synth_driver` (the script it runs) is pure.
The map of modules and the reasons behind them: docs/infra-diff-design.md."""

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
