"""Where the two sides of a comparison come from: the base ref checked out into a temporary git worktree
(removed however the run ends) and the working tree as it is, each synthesized offline in its own process
by `synth_driver`, then read back as stacks per environment. Everything that can go wrong here is a
`SourceError` whose message says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra_diff.assembly import AssemblyError, read_assembly
from infra_diff.model import StackTemplate

DRIVER = Path(__file__).resolve().parent / "synth_driver.py"
DEFAULT_BASE_BRANCHES = ("main", "origin/main")
# Shared with the worktree instead of installed again: both are ignored by git, so a worktree lacks them.
SHARED_DIRECTORIES = (".venv", "node_modules")

Progress = Callable[[str], None]
BaseStacks = dict[str, dict[str, StackTemplate] | None]
HeadStacks = dict[str, dict[str, StackTemplate]]


class SourceError(Exception):
    """A side cannot be produced (no git, no such ref, a working tree that does not synthesize). The
    message says what is wrong and what to do."""


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def synthesize_sides(
    root: Path,
    base_sha: str,
    base_label: str,
    envs: Sequence[str],
    *,
    progress: Progress = to_stderr,
    context: Mapping[str, str] | None = None,
) -> tuple[BaseStacks, HeadStacks]:
    """Both sides' stacks per environment: `base_sha` (in a temporary worktree) and the working tree
    at `root`. Every environment of the working tree's app when `envs` is empty. `context`: CDK context
    both sides are synthesized with (`-c KEY=VALUE`), on top of their cdk.json."""
    with tempfile.TemporaryDirectory(prefix="pipeline-diff-") as scratch:
        scratch_dir = Path(scratch)
        with base_worktree(root, base_sha, scratch_dir / "base") as base_tree:
            results = synthesize_both(
                {"base": base_tree, "head": root},
                scratch_dir,
                envs,
                labels={"base": base_label},
                progress=progress,
                context=context,
            )
        return collect(results, envs, progress=progress)


# --- git ---------------------------------------------------------------------------------------------


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(  # noqa: S603 - fixed program, arguments are refs and paths
            ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as error:
        raise SourceError("git is not installed: pipeline diff needs it to check out the base ref") from error
    if check and result.returncode != 0:
        raise SourceError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def repository_root(cwd: Path) -> Path:
    result = git(cwd, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise SourceError(f"{cwd} is not inside a git repository: pipeline diff compares two git refs")
    root = Path(result.stdout.strip())
    if not (root / "cdk.json").exists():
        raise SourceError(
            f"{root} has no cdk.json: run pipeline diff inside the resilient-pipeline repository"
        )
    return root


def resolve_base(root: Path, ref: str | None) -> tuple[str, str]:
    """The base commit and how to name it in the report."""
    if ref:
        sha = _commit(root, ref)
        if sha is None:
            raise SourceError(f"--base {ref}: no such commit, branch or tag in this repository")
        return sha, (sha[:7] if sha.startswith(ref) else f"{ref} ({sha[:7]})")
    for branch in DEFAULT_BASE_BRANCHES:
        if _commit(root, branch) is None:
            continue
        merge_base = git(root, "merge-base", "HEAD", branch, check=False)
        if merge_base.returncode == 0:
            sha = merge_base.stdout.strip()
            return sha, f"{sha[:7]} (merge base with {branch})"
    raise SourceError(
        "no main or origin/main branch to take the merge base with: pass --base REF "
        "(in CI, fetch the base branch first, e.g. actions/checkout with fetch-depth: 0)"
    )


def _commit(root: Path, ref: str) -> str | None:
    result = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


@contextmanager
def base_worktree(root: Path, sha: str, path: Path) -> Iterator[Path]:
    """A detached worktree of `sha` at `path`, removed (and pruned) however the block ends."""
    git(root, "worktree", "add", "--detach", "--quiet", str(path), sha)
    links = []
    try:
        for name in SHARED_DIRECTORIES:
            if (root / name).exists() and not (path / name).exists():
                (path / name).symlink_to(root / name, target_is_directory=True)
                links.append(path / name)
        yield path
    finally:
        # Unlink the shared directories first, so removing the worktree can never reach into them.
        for link in links:
            link.unlink(missing_ok=True)
        git(root, "worktree", "remove", "--force", str(path), check=False)
        git(root, "worktree", "prune", check=False)


# --- synthesis ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideResult:
    side: str
    label: str
    outdir: Path
    status: Mapping[str, Mapping[str, Any]]
    seconds: float


def synth_environment(root: Path) -> dict[str, str]:
    environment = dict(os.environ)
    bin_dirs = [
        str(Path(sys.executable).parent),
        str(root / ".venv" / "bin"),
        str(root / "node_modules" / ".bin"),
    ]
    environment["PATH"] = os.pathsep.join([*bin_dirs, environment.get("PATH", "")])
    # Skips only CDK's built-in CloudFormation validation (seconds per environment); cdk-nag still runs.
    environment.setdefault("CDK_VALIDATION", "false")
    environment.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    environment.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    environment.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return environment


def synthesize_both(
    trees: Mapping[str, Path],
    scratch: Path,
    envs: Sequence[str],
    *,
    labels: Mapping[str, str],
    progress: Progress = to_stderr,
    context: Mapping[str, str] | None = None,
) -> dict[str, SideResult]:
    """Synthesize each tree in its own process, in parallel (two cores: one side each)."""
    started = time.monotonic()
    processes: dict[str, tuple[subprocess.Popen[str], Path, Path, float]] = {}
    root = trees["head"]
    try:
        for side, tree in trees.items():
            outdir, status = scratch / f"out-{side}", scratch / f"status-{side}.json"
            command = [sys.executable, str(DRIVER), "--tree", str(tree), "--out", str(outdir)]
            command += ["--status", str(status)]
            for env in envs:
                command += ["--env", env]
            for key, value in (context or {}).items():
                command += ["--context", f"{key}={value}"]
            progress(f"synthesizing {labels.get(side, 'working tree')}...")
            process = subprocess.Popen(  # noqa: S603 - our own driver, run by our own interpreter
                command,
                cwd=tree,
                env=synth_environment(root),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            processes[side] = (process, outdir, status, time.monotonic())
        results = {}
        for side, (process, outdir, status_path, side_started) in processes.items():
            output, _ = process.communicate()
            seconds = time.monotonic() - side_started
            label = labels.get(side, "working tree")
            if process.returncode != 0 or not status_path.exists():
                raise SourceError(
                    f"synthesis of {label} crashed (exit {process.returncode}):\n{output[-3000:]}"
                )
            results[side] = SideResult(side, label, outdir, json.loads(status_path.read_text()), seconds)
    finally:
        for process, *_ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    timings = ", ".join(f"{r.label} {r.seconds:.1f} s" for r in results.values())
    progress(f"synthesized in {time.monotonic() - started:.1f} s ({timings})")
    return results


def collect(
    results: Mapping[str, SideResult], envs: Sequence[str], *, progress: Progress = to_stderr
) -> tuple[BaseStacks, HeadStacks]:
    """Read both sides' assemblies. A working tree that does not synthesize is an error; an environment
    the base ref cannot synthesize (e.g. it did not exist yet) is compared as new."""
    head_result, base_result = results["head"], results["base"]
    failures = {env: s.get("error", "") for env, s in head_result.status.items() if not s.get("ok")}
    if failures:
        details = "\n".join(f"  {env}: {error}" for env, error in failures.items())
        raise SourceError(f"the working tree does not synthesize:\n{details}")
    head: HeadStacks = {}
    base: BaseStacks = {}
    try:
        for env in envs or list(head_result.status):
            head[env] = read_assembly(head_result.outdir / env)
        for env, status in base_result.status.items():
            if env not in head and envs:
                continue
            if status.get("ok"):
                base[env] = read_assembly(base_result.outdir / env)
            else:
                first_line = str(status.get("error", "")).splitlines()[:1]
                progress(
                    f"{env} does not synthesize on {base_result.label}"
                    f"{': ' + first_line[0] if first_line else ''}; comparing it as a new environment"
                )
                base[env] = None
    except AssemblyError as error:
        raise SourceError(str(error)) from error
    for env in head:
        base.setdefault(env, None)
    return base, head
