"""cfn-lint on every synthesized template: zero errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import Synthesized

# W3005: CDK adds explicit DependsOn next to GetAtt (role policy before function); harmless, CDK's choice.
IGNORED = ["W3005"]


def test_cfn_lint_reports_no_errors(synth: Synthesized, tmp_path: Path) -> None:
    paths = []
    for which in ("stateful", "pipeline"):
        path = tmp_path / f"{synth.env}-{which}.template.json"
        path.write_text(json.dumps(synth.template(which)))
        paths.append(str(path))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "parseable",
            "--ignore-checks",
            *IGNORED,
            "--",
            *paths,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit status is a bit mask: 2 = errors, 4 = warnings, 8 = informational; 1 = the linter failed.
    assert result.returncode & 3 == 0, result.stdout + result.stderr
    assert result.returncode == 0, f"cfn-lint warnings:\n{result.stdout}"
