"""`pipeline diff` and `cdk diff --template` agree on what is replaced or destroyed.

The pinned CDK CLI compares a local template with a cloud assembly offline (no credentials) with
`cdk diff --app <assembly> --template <old> STACK --fail-on destructive`. Each fixture's new side is wrapped
in a minimal assembly and compared with its old side; the resources the CLI lists as replaced, destroyed or
orphaned must be exactly those this comparison marks so, dependants of a replaced resource included (the
fixtures do not touch the one documented spec addition, LSIs). Skipped when the CLI is not installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from infra_diff import Impact
from tests.diff.conftest import FIXTURES, ROOT, compare_case

CDK = ROOT / "node_modules" / ".bin" / "cdk"
CASES = ("replace", "replace_queue", "remove", "modify")
VERB = {"replaced": Impact.REPLACED, "destroyed": Impact.REMOVED, "orphaned": Impact.ORPHANED}
LINE = re.compile(
    r"^\s+(?P<stack>\S+): (?P<type>AWS::\S+) .*?(?P<id>\S+) will be (?P<verb>replaced|destroyed|orphaned)"
)


def cdk_destructive(case: str, stack: str, tmp_path: Path) -> set[tuple[str, Impact]]:
    assembly = tmp_path / case / stack
    assembly.mkdir(parents=True)
    (assembly / f"{stack}.template.json").write_text(
        (FIXTURES / case / "new" / f"{stack}.template.json").read_text()
    )
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            stack: {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {"templateFile": f"{stack}.template.json"},
            }
        },
    }
    (assembly / "manifest.json").write_text(json.dumps(manifest))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(CDK_DISABLE_CLI_TELEMETRY="true", CI="true")
    result = subprocess.run(
        [
            str(CDK),
            "--no-notices",
            "--no-color",
            "diff",
            "--app",
            str(assembly),
            "--template",
            str(FIXTURES / case / "old" / f"{stack}.template.json"),
            "--fail-on",
            "destructive",
            stack,
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output
    found = {(m["id"], VERB[m["verb"]]) for m in map(LINE.match, output.splitlines()) if m}
    assert (result.returncode == 1) == bool(found), output
    return found


@pytest.mark.skipif(not CDK.exists(), reason="the pinned CDK CLI is not installed (npm ci)")
@pytest.mark.parametrize("case", CASES)
def test_cdk_diff_agrees_on_replacements_and_deletions(case: str, tmp_path: Path) -> None:
    report = compare_case(case)
    for diff in report.stacks:
        if diff.status == "unchanged":
            continue
        ours = {
            (r.logical_id, r.impact)
            for r in diff.resources
            if r.impact in (Impact.REPLACED, Impact.REMOVED, Impact.ORPHANED)
        }
        assert cdk_destructive(case, diff.stack, tmp_path) == ours
