"""The comparison of template pairs: add, remove, modify, replacement, propagation, and the destructive gate
(tests/diff/fixtures/*/README.md says what each pair changes)."""

from __future__ import annotations

from typing import Any

from infra_diff import Impact, StackTemplate, compare
from infra_diff.compare import clean_template, compare_stack, construct_path
from tests.diff.conftest import compare_case, load_side


def impacts(case: str) -> dict[str, Impact]:
    report = compare_case(case)
    return {r.logical_id: r.impact for s in report.stacks for r in s.resources}


def test_every_case_has_old_and_new_sides(case: str) -> None:
    assert load_side(case, "old")
    assert set(load_side(case, "old")) == set(load_side(case, "new"))


def test_unchanged_ignores_cdk_bookkeeping() -> None:
    report = compare_case("unchanged")
    assert not report.changed
    assert all(s.status == "unchanged" for s in report.stacks)
    assert not report.destructive
    assert not report.security


def test_add_reports_additions_only() -> None:
    report = compare_case("add")
    assert impacts("add") == {"AlarmsWorkerThrottles3480F262": Impact.ADDED}
    pipeline = next(s for s in report.stacks if s.stack == "Demo-Pipeline")
    assert [p.name for p in pipeline.sections] == ["Outputs.AlarmTopicArn"]
    assert pipeline.sections[0].changes[0].kind == "added"
    assert not report.destructive


def test_remove_destroys_the_alarm_and_orphans_the_retained_bucket() -> None:
    report = compare_case("remove")
    assert impacts("remove") == {
        "AlarmsWorkerErrorsD5C3741C": Impact.REMOVED,
        "DataBucketBD860FE1": Impact.ORPHANED,
        "DataBucketPolicyBB9AE23B": Impact.REMOVED,
    }
    (finding,) = report.destructive
    assert finding.subject == "DataBucket/Bucket (AWS::S3::Bucket)"
    assert "DeletionPolicy Retain keeps the bucket" in finding.message


def test_modify_updates_in_place_with_readable_paths() -> None:
    report = compare_case("modify")
    assert set(impacts("modify").values()) == {Impact.UPDATED}
    assert not report.destructive
    resources = {r.logical_id: r for s in report.stacks for r in s.resources}
    machine = resources["SegmentedJobStateMachineFFEC324C"].properties[0]
    assert [(c.path, c.old, c.new) for c in machine.changes] == [
        ("States.ProcessSegment.Retry[0].MaxAttempts", 6, 8)
    ]
    function = {p.name: p for p in resources["WorkerFunctionAF8A26AF"].properties}
    assert function["Code"].changes == ()
    assert function["Code"].note == "Lambda code changed (asset 11111111 -> 22222222)"
    assert function["MemorySize"].changes[0].new == 2048
    # Asset metadata and construct paths are bookkeeping, not changes.
    assert "Metadata" not in function


def test_replacing_the_job_table_key_schema_is_destructive() -> None:
    report = compare_case("replace")
    assert impacts("replace") == {"JobTable67B858C0": Impact.REPLACED}
    table = next(r for s in report.stacks for r in s.resources)
    assert table.reasons == ("KeySchema requires replacement",)
    assert [p.name for p in table.properties if p.replaces] == ["KeySchema"]
    (finding,) = report.destructive
    assert (finding.env, finding.stack, finding.category) == ("dev", "Demo-Stateful", "replace")
    assert "deletes the old one (UpdateReplacePolicy: Delete)" in finding.message
    # The exported table name changes while the pipeline stack imports it: the deploy would fail.
    (note,) = report.notes
    assert note.subject == "Demo-Stateful-JobTableName"
    assert "Demo-Pipeline imports it" in note.message


def test_a_replaced_queue_propagates_to_the_event_source_mapping_as_cdk_diff_does() -> None:
    report = compare_case("replace_queue")
    assert impacts("replace_queue") == {
        "IngestQueue88A12394": Impact.REPLACED,
        "IngestEventSource1A2B3C4D": Impact.REPLACED,
    }
    mapping = next(r for s in report.stacks for r in s.resources if r.type.endswith("EventSourceMapping"))
    assert mapping.reasons == ("EventSourceArn refers to IngestQueue/Queue, which is replaced",)
    # Only the queue holds data: the mapping is not part of the gate.
    assert [f.subject for f in report.destructive] == ["IngestQueue/Queue (AWS::SQS::Queue)"]


def test_policy_edits_are_updates_not_replacements() -> None:
    assert set(impacts("iam_widening").values()) == {Impact.UPDATED}
    assert set(impacts("iam_reshuffle").values()) == {Impact.UPDATED}
    assert not compare_case("iam_widening").destructive


def stack(resources: dict[str, Any], **extra: Any) -> StackTemplate:
    return StackTemplate(name="S", template={"Resources": resources}, **extra)


def table(**props: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}], **props},
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
    }


def test_retained_replacement_says_the_pipeline_switches_to_an_empty_table() -> None:
    old = stack({"T": table(TableName="jobs")})
    new = stack({"T": table(TableName="jobs-v2")})
    (finding,) = compare({"prod": {"S": old}}, {"prod": {"S": new}}).destructive
    assert "keeps the old one outside the stack (UpdateReplacePolicy: Retain)" in finding.message


def test_a_fixed_name_kept_across_a_replacement_is_called_out() -> None:
    old = stack({"T": table(TableName="jobs")})
    new = stack({"T": table(TableName="jobs", LocalSecondaryIndexes=[{"IndexName": "x"}])})
    (finding,) = compare({"dev": {"S": old}}, {"dev": {"S": new}}).destructive
    assert "LocalSecondaryIndexes requires replacement" in finding.message
    assert "fixed name TableName=jobs" in finding.message


def test_a_renamed_construct_is_a_delete_plus_create_with_a_hint() -> None:
    old = stack({"TableA": table()})
    new = stack({"TableB": table()})
    (finding,) = compare({"dev": {"S": old}}, {"dev": {"S": new}}).destructive
    assert finding.category == "orphan"
    assert "TableB" in finding.message
    assert "logical id changed" in finding.message


def test_type_change_is_a_replacement() -> None:
    old = stack({"Q": {"Type": "AWS::SQS::Queue", "Properties": {}}})
    new = stack({"Q": {"Type": "AWS::SNS::Topic", "Properties": {}}})
    diff = compare_stack("dev", "S", old, new)
    assert diff.resources[0].impact is Impact.REPLACED
    assert diff.resources[0].reasons[0].startswith("type changes from AWS::SQS::Queue")


def test_unknown_types_are_flagged_rather_than_guessed() -> None:
    old = stack({"R": {"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.t3.micro"}}})
    new = stack({"R": {"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.t3.small"}}})
    (change,) = compare_stack("dev", "S", old, new).resources
    assert change.impact is Impact.UPDATED
    assert change.replacement_unknown


def test_attributes_and_stack_settings_are_compared() -> None:
    old = stack({"T": table()}, termination_protection=True)
    changed = table()
    changed["DeletionPolicy"] = "Delete"
    new = stack({"T": changed}, termination_protection=False)
    diff = compare_stack("prod", "S", old, new)
    (resource,) = diff.resources
    (policy,) = resource.properties
    assert (policy.name, policy.attribute, policy.changes[0].old, policy.changes[0].new) == (
        "DeletionPolicy",
        True,
        "Retain",
        "Delete",
    )
    assert [s.name for s in diff.sections] == ["TerminationProtection"]


def test_new_and_removed_environments_and_stacks() -> None:
    s = stack({"T": table()})
    report = compare({"dev": {"S": s}, "old-env": {"S": s}}, {"dev": {"S2": s}, "new-env": {"S": s}})
    statuses = {(d.env, d.stack): d.status for d in report.stacks}
    assert statuses == {("dev", "S2"): "added", ("dev", "S"): "removed", ("new-env", "S"): "added"}
    # A stack or environment that leaves the app is not deleted by `cdk deploy`: a note, not the gate.
    assert not report.destructive
    assert {n.category for n in report.notes} == {"stack", "environment"}
    assert report.envs == ("dev", "new-env", "old-env")


def test_clean_template_and_construct_paths() -> None:
    template = {
        "Resources": {
            "CDKMetadata": {"Type": "AWS::CDK::Metadata"},
            "T": {"Type": "X", "Metadata": {"aws:cdk:path": "S/Jobs/Table/Resource", "cfn_nag": {"a": 1}}},
        },
        "Parameters": {"BootstrapVersion": {}},
        "Rules": {"CheckBootstrapVersion": {}},
    }
    assert clean_template(template) == {"Resources": {"T": {"Type": "X", "Metadata": {"cfn_nag": {"a": 1}}}}}
    assert construct_path("S", template["Resources"]["T"]) == "Jobs/Table"
    assert construct_path("S", {"Type": "X"}) is None
