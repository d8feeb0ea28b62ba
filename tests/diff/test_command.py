"""The `pipeline diff` command around the comparison: arguments, base-ref resolution, the temporary worktree
(infra_diff.sources), what happens when a side does not synthesize, and the exit status. Uses small
throwaway git repositories, no synthesis."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra_diff import EXIT_DESTRUCTIVE, EXIT_OK, exit_status, sources
from infra_diff.sources import SourceError
from pipeline_cli.commands import diff
from pipeline_cli.errors import CliError
from pipeline_cli.main import build_parser, main
from tests.diff.conftest import compare_case


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "cdk.json").write_text('{"app": "python3 app.py"}\n')
    git(root, "add", "cdk.json")
    git(root, "commit", "-q", "-m", "one")
    return root


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["diff"])
    assert (args.base, args.envs, args.format, args.allow_destructive) == (None, None, "text", False)
    args = build_parser().parse_args(
        [
            "diff",
            "--base",
            "v1",
            "--env",
            "dev",
            "--env",
            "prod",
            "--format",
            "markdown",
            "--allow-destructive",
        ]
    )
    assert (args.base, args.envs, args.format, args.allow_destructive) == (
        "v1",
        ["dev", "prod"],
        "markdown",
        True,
    )
    assert args.func is diff.run
    assert args.context == []


def test_context_pairs_are_checked() -> None:
    assert diff.parse_context(["compliance=strict", "userCode=x=y"]) == {
        "compliance": "strict",
        "userCode": "x=y",
    }
    with pytest.raises(CliError, match="must be KEY=VALUE"):
        diff.parse_context(["compliance"])
    with pytest.raises(CliError, match="choose environments with --env"):
        diff.parse_context(["env=prod"])


def test_default_base_is_the_merge_base_with_main(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "x").write_text("x")
    git(repo, "add", "x")
    git(repo, "commit", "-q", "-m", "two")
    git(repo, "checkout", "-q", "main")
    (repo / "y").write_text("y")
    git(repo, "add", "y")
    git(repo, "commit", "-q", "-m", "three")
    git(repo, "checkout", "-q", "feature")
    assert sources.resolve_base(repo, None) == (first, f"{first[:7]} (merge base with main)")


def test_explicit_base_and_its_errors(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert sources.resolve_base(repo, "main") == (head, f"main ({head[:7]})")
    assert sources.resolve_base(repo, head) == (head, head[:7])
    with pytest.raises(SourceError, match="--base nope: no such commit"):
        sources.resolve_base(repo, "nope")


def test_no_main_branch_asks_for_a_base(repo: Path) -> None:
    git(repo, "branch", "-m", "main", "trunk")
    with pytest.raises(SourceError, match="pass --base REF"):
        sources.resolve_base(repo, None)


def test_outside_a_repository_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not inside a git repository"):
        sources.repository_root(tmp_path)


def test_the_command_reports_a_source_error_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["diff"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {tmp_path} is not inside a git repository: pipeline diff compares two git refs\n"
    )


def test_exit_status_is_1_only_for_a_destructive_change_not_allowed() -> None:
    assert (EXIT_OK, EXIT_DESTRUCTIVE) == (0, 1)
    assert exit_status(compare_case("replace")) == 1
    assert exit_status(compare_case("replace"), allow_destructive=True) == 0
    assert exit_status(compare_case("modify")) == 0
    assert exit_status(compare_case("unchanged")) == 0


def test_worktree_shares_directories_and_is_removed(repo: Path, tmp_path: Path) -> None:
    venv = repo / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "marker").write_text("keep me")
    head = git(repo, "rev-parse", "HEAD")
    path = tmp_path / "base"
    with sources.base_worktree(repo, head, path) as tree:
        assert (tree / "cdk.json").exists()
        assert (tree / ".venv").is_symlink()
        assert (tree / ".venv" / "bin" / "marker").read_text() == "keep me"
    assert not path.exists()
    # The shared directory itself is untouched, and git no longer lists the worktree.
    assert (venv / "bin" / "marker").read_text() == "keep me"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def result(tmp_path: Path, side: str, status: dict[str, dict[str, object]]) -> sources.SideResult:
    return sources.SideResult(side, side, tmp_path / side, status, 0.0)


def test_a_working_tree_that_does_not_synthesize_is_an_error(tmp_path: Path) -> None:
    results = {
        "head": result(tmp_path, "head", {"dev": {"ok": False, "error": "ConfigError: bad"}}),
        "base": result(tmp_path, "base", {"dev": {"ok": True}}),
    }
    with pytest.raises(SourceError, match="the working tree does not synthesize:\n  dev: ConfigError: bad"):
        sources.collect(results, ["dev"])


def test_an_environment_missing_on_the_base_is_compared_as_new(tmp_path: Path) -> None:
    assembly = tmp_path / "head" / "qa"
    assembly.mkdir(parents=True)
    (assembly / "manifest.json").write_text(
        '{"artifacts": {"S": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "S.json"}}}}'
    )
    (assembly / "S.json").write_text('{"Resources": {}}')
    results = {
        "head": result(tmp_path, "head", {"qa": {"ok": True}}),
        "base": result(
            tmp_path, "base", {"qa": {"ok": False, "error": "ConfigError: unknown environment 'qa'"}}
        ),
    }
    base, head = sources.collect(results, [])
    assert base == {"qa": None}
    assert list(head["qa"]) == ["S"]
