"""Synthesize every requested environment of one source tree into `OUT/<env>/` (run as a script, inside
the tree) and write a status file: `{"dev": {"ok": true}, "prod": {"ok": false, "error": "..."}}`. It
imports nothing from `infra_diff` or `pipeline_cli` (the base ref may predate them). How and why:
docs/infra-diff-design.md ("Synthesizing the two sides").
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FALLBACK_ENVIRONMENTS = ("local", "dev", "staging", "prod")
CLI_CONTEXT = {"aws:cdk:enable-path-metadata": True}


def load_context(tree: Path) -> dict[str, Any]:
    context: dict[str, Any] = {}
    cdk_json = tree / "cdk.json"
    if cdk_json.exists():
        context.update(json.loads(cdk_json.read_text()).get("context", {}))
    cached = tree / "cdk.context.json"
    if cached.exists():
        context.update(json.loads(cached.read_text()))
    return context


def environment_names() -> tuple[str, ...]:
    try:
        config = importlib.import_module("stacks.config")
    except ImportError:
        return FALLBACK_ENVIRONMENTS
    return tuple(getattr(config, "ENVIRONMENT_NAMES", FALLBACK_ENVIRONMENTS))


def synth_in_process(build_app: Any, context: dict[str, Any], outdir: Path) -> None:
    import aws_cdk as cdk  # noqa: PLC0415 - imported only once the tree's app is known to need it

    app = cdk.App(outdir=str(outdir), context=context)
    build_app(app)
    app.synth()


def synth_with_app_command(tree: Path, context: dict[str, Any], outdir: Path) -> None:
    command = json.loads((tree / "cdk.json").read_text())["app"]
    environment = {**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    # The app command comes from the repository's own cdk.json, exactly as `cdk synth` would run it.
    result = subprocess.run(  # noqa: S602
        command, shell=True, cwd=tree, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError((result.stderr or result.stdout).strip()[-2000:])


def validation_violations(outdir: Path) -> str:
    """The violations of a failed validation (cdk-nag), since the report's file is gone with the scratch
    directory by the time anyone reads the error."""
    try:
        report = json.loads((outdir / "validation-report.json").read_text())
    except (OSError, ValueError):
        return ""
    lines = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                lines.append(
                    f"    {violation.get('ruleName')}: {construct.get('constructPath')}: "
                    f"{violation.get('description', '').strip()}"
                )
    return ("\n" + "\n".join(lines)) if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--status", required=True, type=Path)
    parser.add_argument("--env", action="append", default=[])
    # KEY=VALUE, on top of the tree's cdk.json (pipeline diff --context).
    parser.add_argument("--context", action="append", default=[])
    args = parser.parse_args(argv)

    tree = args.tree.resolve()
    # The script's own directory must not shadow the tree's modules (this package has a `values`, a
    # `model`...): the tree goes first, as it would for `python3 app.py`.
    sys.path[:] = [str(tree)] + [p for p in sys.path[1:] if Path(p or ".").resolve() != Path(__file__).parent]
    os.chdir(tree)

    status: dict[str, dict[str, Any]] = {}
    build_app = None
    try:
        build_app = getattr(importlib.import_module("app"), "build_app", None)
    except Exception as error:  # noqa: BLE001 - any import failure is reported per environment below
        import_error = f"{type(error).__name__}: {error}"
        for env in args.env or FALLBACK_ENVIRONMENTS:
            status[env] = {"ok": False, "error": f"app.py does not import: {import_error}"}
        args.status.write_text(json.dumps(status))
        return 0

    base_context = {**load_context(tree), **CLI_CONTEXT, **dict(pair.split("=", 1) for pair in args.context)}
    for env in args.env or environment_names():
        outdir = args.out / env
        context = {**base_context, "env": env}
        try:
            if callable(build_app):
                synth_in_process(build_app, context, outdir)
            else:
                synth_with_app_command(tree, context, outdir)
            status[env] = {"ok": True}
        except Exception as error:  # noqa: BLE001 - a failed environment is data for the caller, not a crash
            message = f"{type(error).__name__}: {error}".strip()
            status[env] = {"ok": False, "error": message + validation_violations(outdir)}
    args.status.write_text(json.dumps(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
