"""Rendering: one line when nothing changed; `cdk diff`-style listings; a Markdown PR comment that stays under
GitHub's size limit."""

from __future__ import annotations

from infra_diff import Labels, render_markdown, render_text
from tests.diff.conftest import compare_case

LABELS = Labels(base="abc1234 (merge base with main)")


def test_no_change_is_one_line_in_both_formats() -> None:
    report = compare_case("unchanged")
    text = render_text(report, LABELS)
    assert text == (
        "No infrastructure changes: abc1234 (merge base with main) and the working tree synthesize to the "
        "same templates (dev).\n"
    )
    markdown = render_markdown(report, LABELS)
    assert markdown.count("\n") == 3
    assert "No infrastructure changes" in markdown


def test_text_lists_the_replacement_like_cdk_diff() -> None:
    text = render_text(compare_case("replace"), LABELS)
    assert "DESTRUCTIVE: 1 stateful resource would be replaced or deleted" in text
    assert "[~] AWS::DynamoDB::Table JobTable/Table JobTable67B858C0 replace" in text
    assert " └─ [~] KeySchema (requires replacement)" in text
    assert '     └─ [~] [0].AttributeName: "job_id" -> "id"' in text
    assert "Stack Demo-Pipeline: no changes" in text
    assert text.rstrip().endswith("If it is intended, rerun with --allow-destructive.")


def test_text_markers_for_add_remove_and_code_changes() -> None:
    added = render_text(compare_case("add"), LABELS)
    assert "[+] AWS::CloudWatch::Alarm Alarms/WorkerThrottles AlarmsWorkerThrottles3480F262" in added
    assert "[+] Outputs.AlarmTopicArn:" in added
    removed = render_text(compare_case("remove"), LABELS)
    assert "[-] AWS::S3::Bucket DataBucket/Bucket DataBucketBD860FE1 orphan" in removed
    assert "[-] AWS::CloudWatch::Alarm Alarms/WorkerErrors AlarmsWorkerErrorsD5C3741C destroy" in removed
    modified = render_text(compare_case("modify"), LABELS)
    assert "[~] Code: Lambda code changed (asset 11111111 -> 22222222)" in modified
    assert "States.ProcessSegment.Retry[0].MaxAttempts: 6 -> 8" in modified
    assert "Result: no stateful resource is replaced or deleted." in modified


def test_allow_destructive_is_acknowledged() -> None:
    text = render_text(compare_case("replace"), LABELS, allow_destructive=True)
    assert text.rstrip().endswith("1 destructive change, allowed by --allow-destructive.")
    markdown = render_markdown(compare_case("replace"), LABELS, allow_destructive=True)
    assert "Allowed by `--allow-destructive`." in markdown


def test_markdown_comment_structure() -> None:
    markdown = render_markdown(compare_case("iam_widening"), LABELS)
    assert markdown.startswith("### Infrastructure diff\n")
    assert "| dev | `Demo-Pipeline` | 0 | 2 | 0 | 0 | 0 |" in markdown
    assert "#### Security-relevant changes (5)" in markdown
    assert "| :warning: | dev | `Demo-Pipeline` | `Worker/Role/DefaultPolicy` | IAM |" in markdown
    assert "<details><summary><b>dev</b> · <code>Demo-Pipeline</code>: 2 to update</summary>" in markdown
    assert "```diff\n  Resources\n! [~] AWS::IAM::Role Worker/Role WorkerRoleAAEB1603" in markdown
    assert "+      └─ [+] Statement[]: " in markdown
    destructive = render_markdown(compare_case("replace"), LABELS)
    assert "> [!CAUTION]\n> **1 destructive change**" in destructive


def test_markdown_escapes_template_text_in_tables() -> None:
    markdown = render_markdown(compare_case("modify"), LABELS)
    # `->` inside a table cell must not be read as HTML; `|` must not break the table.
    assert "RetentionInDays: 14 -&gt; 7" in markdown


def test_markdown_drops_listings_to_fit_the_comment_limit() -> None:
    report = compare_case("iam_widening")
    full = render_markdown(report, LABELS)
    small = render_markdown(report, LABELS, limit=len(full) - 100)
    assert len(small) < len(full) - 100
    assert "left out to fit GitHub's comment size limit" in small
    assert "#### Security-relevant changes" in small
