"""`pipeline diff --format json`: one JSON document per run, with the shape documented in
docs/reviewing-infrastructure-changes.md ("JSON output"), the same findings as the text and Markdown, and
the exit status it implies equal to the command's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra_diff import Labels, exit_status, render_json, to_document
from infra_diff.model import StackTemplate
from pipeline_cli.commands import diff
from pipeline_cli.main import build_parser, main
from tests.diff.conftest import ROOT, compare_case, load_side

BASE_SHA = "abc1234" + "0" * 33
LABELS = Labels(base="abc1234 (merge base with main)", base_commit=BASE_SHA)
DOCS = ROOT / "docs" / "reviewing-infrastructure-changes.md"
ZERO_COUNTS = {"add": 0, "update": 0, "replace": 0, "destroy": 0, "orphan": 0, "other": 0}
TOP_LEVEL_KEYS = [
    "kind",
    "version",
    "base",
    "head",
    "changed",
    "environments",
    "destructive",
    "security",
    "notes",
    "result",
]
FINDING_KEYS = {"env", "stack", "subject", "category", "message", "effect"}


def stack(document: dict[str, Any], env: str, name: str) -> dict[str, Any]:
    (environment,) = (e for e in document["environments"] if e["name"] == env)
    (found,) = (s for s in environment["stacks"] if s["name"] == name)
    return dict(found)


def resource(stack_document: dict[str, Any], logical_id: str) -> dict[str, Any]:
    (found,) = (r for r in stack_document["resources"] if r["logical_id"] == logical_id)
    return dict(found)


def test_the_format_flag_offers_json() -> None:
    assert build_parser().parse_args(["diff", "--format", "json"]).format == "json"
    # --json as on every other command.
    assert build_parser().parse_args(["diff", "--json"]).format == "json"
    assert build_parser().parse_args(["diff"]).format == "text"


def test_no_change_is_the_whole_document_with_exit_status_0() -> None:
    unchanged = {
        "status": "unchanged",
        "summary": "no changes",
        "counts": ZERO_COUNTS,
        "resources": [],
        "other_changes": [],
    }
    assert to_document(compare_case("unchanged"), LABELS) == {
        "kind": "infra-diff",
        "version": 1,
        "base": {"label": "abc1234 (merge base with main)", "commit": BASE_SHA},
        "head": {"label": "working tree", "commit": None},
        "changed": False,
        "environments": [
            {
                "name": "dev",
                "changed": False,
                "stacks": [{"name": "Demo-Pipeline", **unchanged}, {"name": "Demo-Stateful", **unchanged}],
            }
        ],
        "destructive": [],
        "security": [],
        "notes": [],
        "result": {
            "destructive_changes": 0,
            "allow_destructive": False,
            "exit_status": 0,
            "message": (
                "No infrastructure changes: abc1234 (merge base with main) and the working tree synthesize "
                "to the same templates (dev)."
            ),
        },
    }


def test_a_destructive_replacement_with_its_properties_and_exit_status_1() -> None:
    document = to_document(compare_case("replace"), LABELS)
    assert list(document) == TOP_LEVEL_KEYS
    assert document["changed"] is True
    stateful = stack(document, "dev", "Demo-Stateful")
    assert stateful["status"] == "modified"
    assert stateful["summary"] == "1 to replace"
    assert stateful["counts"] == {**ZERO_COUNTS, "replace": 1}
    assert stack(document, "dev", "Demo-Pipeline")["status"] == "unchanged"
    table = resource(stateful, "JobTable67B858C0")
    assert table == {
        "logical_id": "JobTable67B858C0",
        "type": "AWS::DynamoDB::Table",
        "path": "JobTable/Table",
        "impact": "replace",
        "replacement_reasons": ["KeySchema requires replacement"],
        "replacement_unknown": False,
        "properties": [
            {
                "name": "AttributeDefinitions",
                "resource_attribute": False,
                "requires_replacement": False,
                "note": None,
                "changes": [
                    {
                        "path": "[job_id]",
                        "kind": "removed",
                        "old": {"AttributeName": "job_id", "AttributeType": "S"},
                        "new": None,
                    },
                    {
                        "path": "[id]",
                        "kind": "added",
                        "old": None,
                        "new": {"AttributeName": "id", "AttributeType": "S"},
                    },
                ],
            },
            {
                "name": "KeySchema",
                "resource_attribute": False,
                "requires_replacement": True,
                "note": None,
                "changes": [{"path": "[0].AttributeName", "kind": "changed", "old": "job_id", "new": "id"}],
            },
        ],
    }
    (destructive,) = document["destructive"]
    assert destructive == {
        "env": "dev",
        "stack": "Demo-Stateful",
        "subject": "JobTable/Table (AWS::DynamoDB::Table)",
        "category": "replace",
        "message": (
            "replaced: KeySchema requires replacement. CloudFormation creates a new, empty table and deletes "
            "the old one (UpdateReplacePolicy: Delete) with every item in it (the job records)."
        ),
        "effect": "weakens",
    }
    (note,) = document["notes"]
    assert (note["env"], note["stack"], note["category"]) == ("dev", "Demo-Stateful", "export")
    assert note["subject"] == "Demo-Stateful-JobTableName"
    assert document["result"] == {
        "destructive_changes": 1,
        "allow_destructive": False,
        "exit_status": 1,
        "message": "1 destructive change: exit status 1. If it is intended, rerun with --allow-destructive.",
    }
    allowed = to_document(compare_case("replace"), LABELS, allow_destructive=True)
    assert allowed["result"] == {
        "destructive_changes": 1,
        "allow_destructive": True,
        "exit_status": 0,
        "message": "1 destructive change, allowed by --allow-destructive.",
    }
    assert allowed["destructive"] == document["destructive"]


def test_replacement_reaches_a_resource_that_refers_to_a_replaced_one() -> None:
    pipeline = stack(to_document(compare_case("replace_queue"), LABELS), "dev", "Demo-Pipeline")
    mapping = resource(pipeline, "IngestEventSource1A2B3C4D")
    assert mapping["impact"] == "replace"
    assert mapping["properties"] == []
    assert mapping["replacement_reasons"] == ["EventSourceArn refers to IngestQueue/Queue, which is replaced"]
    queue = resource(pipeline, "IngestQueue88A12394")
    (name,) = queue["properties"]
    assert name["requires_replacement"] is True
    assert name["changes"] == [{"path": "", "kind": "changed", "old": "demo-ingest", "new": "demo-ingest-v2"}]


def test_added_removed_and_orphaned_resources_and_other_changes() -> None:
    added = to_document(compare_case("add"), LABELS)
    alarms = [r for s in added["environments"][0]["stacks"] for r in s["resources"]]
    assert {"logical_id": "AlarmsWorkerThrottles3480F262", "impact": "add"}.items() <= next(
        r for r in alarms if r["logical_id"] == "AlarmsWorkerThrottles3480F262"
    ).items()
    other = [c for s in added["environments"][0]["stacks"] for c in s["other_changes"]]
    output = next(c for c in other if c["name"] == "Outputs.AlarmTopicArn")
    assert [c["kind"] for c in output["changes"]] == ["added"]
    removed = to_document(compare_case("remove"), LABELS)
    impacts = {
        r["logical_id"]: r["impact"] for s in removed["environments"][0]["stacks"] for r in s["resources"]
    }
    assert impacts["DataBucketBD860FE1"] == "orphan"
    assert impacts["AlarmsWorkerErrorsD5C3741C"] == "destroy"
    assert removed["result"]["exit_status"] == exit_status(compare_case("remove")) == 1


def test_code_changes_are_notes_and_json_strings_are_compared_as_json() -> None:
    document = to_document(compare_case("modify"), LABELS)
    properties = [
        p for s in document["environments"][0]["stacks"] for r in s["resources"] for p in r["properties"]
    ]
    code = next(p for p in properties if p["name"] == "Code")
    assert code["note"] == "Lambda code changed (asset 11111111 -> 22222222)"
    definition = next(p for p in properties if p["name"] == "DefinitionString")
    assert {
        "path": "States.ProcessSegment.Retry[0].MaxAttempts",
        "kind": "changed",
        "old": 6,
        "new": 8,
    } in definition["changes"]
    assert document["result"]["exit_status"] == 0
    assert document["result"]["message"] == "no stateful resource is replaced or deleted."


def test_the_security_section_says_what_weakens_a_protection() -> None:
    document = to_document(compare_case("iam_widening"), LABELS)
    assert len(document["security"]) == 5
    for finding in document["security"]:
        assert set(finding) == FINDING_KEYS
        assert finding["effect"] in ("weakens", "strengthens", "judge")
    widened = [f for f in document["security"] if f["subject"] == "Worker/Role/DefaultPolicy"]
    assert widened
    assert {(f["category"], f["effect"]) for f in widened} == {("IAM", "weakens")}
    assert any(f["message"].startswith("widened: + Allow ") for f in widened)
    # The section is in the same order as the text and Markdown: what weakens a protection first.
    rank = {"weakens": 0, "judge": 1, "strengthens": 2}
    assert [rank[f["effect"]] for f in document["security"]] == sorted(
        rank[f["effect"]] for f in document["security"]
    )


def test_an_environment_that_leaves_the_app_is_a_note_with_no_stacks() -> None:
    report_base: dict[str, dict[str, StackTemplate] | None] = {
        "dev": load_side("unchanged", "old"),
        "qa": load_side("unchanged", "old"),
    }
    from infra_diff import compare

    document = to_document(compare(report_base, {"dev": load_side("unchanged", "new")}), LABELS)
    assert [e["name"] for e in document["environments"]] == ["dev", "qa"]
    qa = document["environments"][1]
    assert qa == {"name": "qa", "changed": True, "stacks": []}
    (note,) = document["notes"]
    assert (note["env"], note["stack"], note["category"]) == ("qa", None, "environment")
    assert document["changed"] is True
    assert document["result"]["exit_status"] == 0


def test_every_case_renders_as_json_whose_exit_status_is_the_commands(case: str) -> None:
    report = compare_case(case)
    for allow in (False, True):
        text = render_json(report, LABELS, allow_destructive=allow)
        assert text.endswith("}\n")
        document = json.loads(text)
        assert document == to_document(report, LABELS, allow_destructive=allow)
        assert list(document) == TOP_LEVEL_KEYS
        assert document["result"]["exit_status"] == exit_status(report, allow_destructive=allow)
        for finding in document["destructive"] + document["security"] + document["notes"]:
            assert set(finding) == FINDING_KEYS


def test_the_command_prints_the_document_and_exits_with_its_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(diff, "repository_root", lambda cwd: Path("/repo"))
    monkeypatch.setattr(diff, "resolve_base", lambda root, ref: (BASE_SHA, "abc1234 (merge base with main)"))
    monkeypatch.setattr(
        diff,
        "synthesize_sides",
        lambda root, sha, label, envs, progress, context: (
            {"dev": load_side("replace", "old")},
            {"dev": load_side("replace", "new")},
        ),
    )
    assert main(["diff", "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["base"] == {"label": "abc1234 (merge base with main)", "commit": BASE_SHA}
    assert document["result"]["exit_status"] == 1
    assert main(["diff", "--format", "json", "--allow-destructive"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["exit_status"] == 0


def keys(value: Any) -> Any:
    """The object keys of a document, recursively (lists: the union over their items), leaving out the
    template values a change carries (`old`, `new`), whose shape is the template's."""
    if isinstance(value, dict):
        return {k: (None if k in ("old", "new") else keys(v)) for k, v in value.items()}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            shape = keys(item)
            if isinstance(shape, dict):
                for k, v in shape.items():
                    merged[k] = v if merged.get(k) is None else merged[k]
        return merged or None
    return None


def test_the_documented_example_has_the_documents_shape() -> None:
    match = re.search(r"## JSON output.*?```json\n(.*?)\n```", DOCS.read_text(), re.DOTALL)
    assert match, "docs/reviewing-infrastructure-changes.md has no JSON example under '## JSON output'"
    example = json.loads(match[1])
    document = to_document(compare_case("replace"), LABELS)
    assert keys(example) == keys(document)
    assert example["kind"] == document["kind"]
    assert example["version"] == document["version"]
