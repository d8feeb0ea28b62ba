"""`pipeline diff`: what a branch changes in the deployed infrastructure, per environment, offline.

    pipeline diff [--base REF] [--env NAME ...] [--format text|markdown] [--allow-destructive]

The base ref (default: the merge base of HEAD with `main`, or `origin/main` in a CI checkout) is checked out
into a temporary `git worktree` (sharing the project's .venv and node_modules through symlinks) and the
working tree is used as it is, uncommitted changes included. Both are synthesized, all environments in one
process per side and the two sides in parallel, with no AWS credentials. Then every stack's template is
compared (see the infra_diff package). The report goes to stdout and progress to stderr, so
`pipeline diff --format markdown > diff.md` is a PR comment.

Exit status: 0 when no stateful resource (table, bucket, queue, key) would be deleted, orphaned or
replaced; 1 when one would, unless --allow-destructive; 2 for a usage error or a tree that does not
synthesize.

Why not `cdk diff`: it does work offline against a local template. `cdk diff --app <assembly dir>
--template <old template> STACK --fail-on destructive` needs no credentials and took about 1 s per stack
here. It is not the engine for four reasons:
  1. its destructive gate fires on any replacement or deletion, stateless or not (a renamed function, a
     replaced event source mapping), whereas this gate is about losing data, and it says what is lost;
  2. asset hashes show up as S3Key changes on every edit to lambda_src; here they are masked (as
     tests/infra/template_tools.mask_volatile does) and reported once, as "Lambda code changed";
  3. its output is terminal text meant for people, not a stable interface to build Markdown, a security
     section (it covers IAM statements only, not encryption, TLS, public access, alarms or retention) or
     an exit status from;
  4. it runs once per stack: 8 Node start-ups for 4 environments, on top of synthesis.
Using `@aws-cdk/cloudformation-diff` from Node would fix (3) and (4) but not (1) or (2), and it would add
a JavaScript glue layer to a Python project. So the comparison is our own, and it keeps to `cdk diff`'s
conventions: the same markers and impacts ([+] [-] [~], replace, destroy, orphan, "requires
replacement", replacement propagated to resources that refer to a replaced one), the same replacement data (the CloudFormation spec shipped with the pinned CLI;
tests/diff checks the table against it), and the same CDK bookkeeping left out. tests/diff also runs the
real `cdk diff --template` on a fixture pair, when the CLI is installed, to check that both agree on what
is replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import infra_diff
from infra_diff import Labels, StackTemplate, compare, render_markdown, render_text
from infra_diff.assembly import AssemblyError, read_assembly
from pipeline_cli.errors import CliError

DRIVER = Path(infra_diff.__file__).resolve().parent / "synth_driver.py"
DEFAULT_BASE_BRANCHES = ("main", "origin/main")
# Shared with the worktree instead of installed again: both are ignored by git, so a worktree lacks them.
SHARED_DIRECTORIES = (".venv", "node_modules")
EXIT_DESTRUCTIVE = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare the infrastructure of the working tree with a base ref, per environment",
        description=(
            "Synthesize the base ref and the working tree (offline, no AWS credentials) and compare every "
            "stack's template: resources added, removed, modified, replaced; security-relevant changes; "
            "and a non-zero exit status when a stateful resource would be deleted or replaced."
        ),
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="commit, branch or tag to compare against (default: the merge base of HEAD with main)",
    )
    parser.add_argument(
        "--env",
        action="append",
        dest="envs",
        metavar="NAME",
        help="environment to compare (repeatable; default: every environment of the app)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "markdown"),
        default="text",
        help="plain text for a terminal (default) or GitHub Markdown for a pull-request comment",
    )
    parser.add_argument(
        "--allow-destructive",
        action="store_true",
        help="exit 0 even when a stateful resource would be deleted or replaced (still reported)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = repository_root(Path.cwd())
    base_sha, base_label = resolve_base(root, args.base)
    envs: list[str] = list(dict.fromkeys(args.envs or []))
    with tempfile.TemporaryDirectory(prefix="pipeline-diff-") as scratch:
        scratch_dir = Path(scratch)
        with base_worktree(root, base_sha, scratch_dir / "base") as base_tree:
            results = synthesize_both(
                {"base": base_tree, "head": root}, scratch_dir, envs, labels={"base": base_label}
            )
        base_stacks, head_stacks = collect(results, envs)
    report = compare(base_stacks, head_stacks)
    labels = Labels(base=base_label)
    if args.format == "markdown":
        print(render_markdown(report, labels, allow_destructive=args.allow_destructive), end="")
    else:
        print(render_text(report, labels, allow_destructive=args.allow_destructive), end="")
    return EXIT_DESTRUCTIVE if report.destructive and not args.allow_destructive else 0


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
        raise CliError("git is not installed: pipeline diff needs it to check out the base ref") from error
    if check and result.returncode != 0:
        raise CliError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def repository_root(cwd: Path) -> Path:
    result = git(cwd, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise CliError(f"{cwd} is not inside a git repository: pipeline diff compares two git refs")
    root = Path(result.stdout.strip())
    if not (root / "cdk.json").exists():
        raise CliError(f"{root} has no cdk.json: run pipeline diff inside the resilient-pipeline repository")
    return root


def resolve_base(root: Path, ref: str | None) -> tuple[str, str]:
    """The base commit and how to name it in the report."""
    if ref:
        sha = _commit(root, ref)
        if sha is None:
            raise CliError(f"--base {ref}: no such commit, branch or tag in this repository")
        return sha, (sha[:7] if sha.startswith(ref) else f"{ref} ({sha[:7]})")
    for branch in DEFAULT_BASE_BRANCHES:
        if _commit(root, branch) is None:
            continue
        merge_base = git(root, "merge-base", "HEAD", branch, check=False)
        if merge_base.returncode == 0:
            sha = merge_base.stdout.strip()
            return sha, f"{sha[:7]} (merge base with {branch})"
    raise CliError(
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
    trees: Mapping[str, Path], scratch: Path, envs: Sequence[str], *, labels: Mapping[str, str]
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
            print(f"pipeline diff: synthesizing {labels.get(side, 'working tree')}...", file=sys.stderr)
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
                raise CliError(f"synthesis of {label} crashed (exit {process.returncode}):\n{output[-3000:]}")
            results[side] = SideResult(side, label, outdir, json.loads(status_path.read_text()), seconds)
    finally:
        for process, *_ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    timings = ", ".join(f"{r.label} {r.seconds:.1f} s" for r in results.values())
    print(f"pipeline diff: synthesized in {time.monotonic() - started:.1f} s ({timings})", file=sys.stderr)
    return results


def collect(
    results: Mapping[str, SideResult], envs: Sequence[str]
) -> tuple[dict[str, dict[str, StackTemplate] | None], dict[str, dict[str, StackTemplate]]]:
    """Read both sides' assemblies. A working tree that does not synthesize is an error; an environment
    the base ref cannot synthesize (e.g. it did not exist yet) is compared as new."""
    head_result, base_result = results["head"], results["base"]
    failures = {env: s.get("error", "") for env, s in head_result.status.items() if not s.get("ok")}
    if failures:
        details = "\n".join(f"  {env}: {error}" for env, error in failures.items())
        raise CliError(f"the working tree does not synthesize:\n{details}")
    head: dict[str, dict[str, StackTemplate]] = {}
    base: dict[str, dict[str, StackTemplate] | None] = {}
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
                print(
                    f"pipeline diff: {env} does not synthesize on {base_result.label}"
                    f"{': ' + first_line[0] if first_line else ''}; comparing it as a new environment",
                    file=sys.stderr,
                )
                base[env] = None
    except AssemblyError as error:
        raise CliError(str(error)) from error
    for env in head:
        base.setdefault(env, None)
    return base, head
