"""End to end: clone this repository into a temporary directory, run `pipeline diff` there (this checkout's
CLI code against the clone's CDK app), first on an unchanged tree, then on a branch whose commit changes the
job table's key schema. Synthesizes `dev` on both sides each time (a few seconds per run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra_diff import sources
from tests.diff.conftest import ROOT

JOB_TABLE = Path("stacks/constructs/job_table.py")
# Run this checkout's CLI whatever the current directory holds: the clone has its own (committed) copy.
RUN_CLI = (
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pipeline_cli.main import main; sys.exit(main())"
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def pipeline_diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, "diff", "--env", "dev", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    repo = tmp_path_factory.mktemp("e2e") / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True, capture_output=True)
    # Whatever branch the source was on, the clone's work happens relative to a local `main`.
    git(repo, "checkout", "-q", "-B", "main")
    return repo


def test_unchanged_tree_prints_one_line_and_exits_zero(clone: Path) -> None:
    result = pipeline_diff(clone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("No infrastructure changes: ")
    assert result.stdout.count("\n") == 1
    assert "(merge base with main)" in result.stdout

    as_json = pipeline_diff(clone, "--format", "json")
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["changed"] is False
    assert document["base"]["commit"] == git(clone, "rev-parse", "HEAD").strip()
    assert [e["name"] for e in document["environments"]] == ["dev"]
    assert document["result"]["exit_status"] == 0
    assert document["result"]["message"] == result.stdout.strip()


def test_key_schema_change_is_a_destructive_replacement(clone: Path) -> None:
    git(clone, "checkout", "-q", "-b", "change-key-schema")
    source = (clone / JOB_TABLE).read_text()
    changed = source.replace(
        'partition_key=dynamodb.Attribute(name="job_id"', 'partition_key=dynamodb.Attribute(name="id"'
    )
    assert changed != source, "the job table's partition key is no longer written the way this test expects"
    (clone / JOB_TABLE).write_text(changed)
    git(clone, "add", str(JOB_TABLE))
    git(clone, "commit", "-q", "-m", "Job table keyed by id")

    result = pipeline_diff(clone)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "DESTRUCTIVE: 1 stateful resource would be replaced or deleted" in out
    assert "x dev  ResilientPipeline-dev-Stateful  JobTable/Table (AWS::DynamoDB::Table)" in out
    assert "replaced: KeySchema requires replacement." in out
    assert " └─ [~] KeySchema (requires replacement)" in out
    assert '[0].AttributeName: "job_id" -> "id"' in out
    # The temporary worktree of the base ref is gone.
    assert git(clone, "worktree", "list", "--porcelain").count("worktree ") == 1

    allowed = pipeline_diff(clone, "--allow-destructive", "--format", "markdown")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert allowed.stdout.startswith("### Infrastructure diff")
    assert "> [!CAUTION]" in allowed.stdout
    assert "Allowed by `--allow-destructive`." in allowed.stdout

    as_json = pipeline_diff(clone, "--format", "json")
    assert as_json.returncode == 1, as_json.stdout + as_json.stderr
    document = json.loads(as_json.stdout)
    (destructive,) = document["destructive"]
    assert (destructive["stack"], destructive["subject"]) == (
        "ResilientPipeline-dev-Stateful",
        "JobTable/Table (AWS::DynamoDB::Table)",
    )
    assert destructive["message"].startswith("replaced: KeySchema requires replacement.")
    stacks = {s["name"]: s for s in document["environments"][0]["stacks"]}
    (table,) = stacks["ResilientPipeline-dev-Stateful"]["resources"]
    assert (table["path"], table["impact"]) == ("JobTable/Table", "replace")
    key_schema = next(p for p in table["properties"] if p["name"] == "KeySchema")
    assert key_schema["requires_replacement"] is True
    assert key_schema["changes"] == [
        {"path": "[0].AttributeName", "kind": "changed", "old": "job_id", "new": "id"}
    ]
    assert document["result"]["exit_status"] == 1


def test_context_reaches_the_synth_of_a_side(tmp_path: Path) -> None:
    """`pipeline diff --context compliance=strict` reviews the strict profile: the driver synthesizes the
    tree with that context, and the strict packs pass (a failure would be in the status)."""
    status = tmp_path / "status.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "infra_diff" / "synth_driver.py"),
            "--tree",
            str(ROOT),
            "--out",
            str(tmp_path / "out"),
            "--status",
            str(status),
            "--env",
            "dev",
            "--context",
            "compliance=strict",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
        env={**sources.synth_environment(ROOT)},
    )
    assert json.loads(status.read_text()) == {"dev": {"ok": True}}
    template = json.loads(
        (tmp_path / "out" / "dev" / "ResilientPipeline-dev-Stateful.template.json").read_text()
    )
    assert "AWS::KMS::Key" in {r["Type"] for r in template["Resources"].values()}
