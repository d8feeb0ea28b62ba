"""Value normalization and the leaf diff: what a reviewer reads for each changed property."""

from __future__ import annotations

from infra_diff.values import (
    ASSET_MASK,
    ValueChange,
    asset_hashes,
    diff_values,
    format_change,
    format_value,
    mask_assets,
    references,
    simplify,
)

HASH = "ab" * 32


def test_asset_hashes_are_masked_and_collected() -> None:
    code = {"S3Bucket": "assets", "S3Key": f"{HASH}.zip"}
    assert mask_assets(code) == {"S3Bucket": "assets", "S3Key": f"{ASSET_MASK}.zip"}
    assert asset_hashes([code, {"x": f"asset.{HASH}"}]) == {HASH}
    # Shorter hex (a logical id suffix, a commit) is not an asset hash.
    assert mask_assets("JobTable67B858C0") == "JobTable67B858C0"


def test_intrinsics_render_as_sub_style_text() -> None:
    value = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":dynamodb:us-east-1:",
                {"Ref": "AWS::AccountId"},
                ":table/",
                {"Fn::ImportValue": "Stack-JobTableName"},
            ],
        ]
    }
    assert (
        simplify(value)
        == "arn:${AWS::Partition}:dynamodb:us-east-1:${AWS::AccountId}:table/${Import:Stack-JobTableName}"
    )
    assert simplify({"Fn::GetAtt": ["Queue", "Arn"]}) == "${Queue.Arn}"
    assert simplify({"Fn::GetAtt": "Queue.Arn"}) == "${Queue.Arn}"
    assert simplify({"Fn::Sub": "cdk-${AWS::AccountId}"}) == "cdk-${AWS::AccountId}"
    # Intrinsics that do not read well as text stay as they are.
    condition = {"Fn::If": ["IsProd", "a", "b"]}
    assert simplify(condition) == condition


def test_json_strings_are_expanded_so_changes_have_paths() -> None:
    old = simplify({"Fn::Join": ["", ['{"States":{"A":{"MaxAttempts":', "6", "}}}"]]})
    new = simplify({"Fn::Join": ["", ['{"States":{"A":{"MaxAttempts":', "8", "}}}"]]})
    assert diff_values(old, new, "DefinitionString") == [
        ValueChange("DefinitionString.States.A.MaxAttempts", "changed", 6, 8)
    ]
    assert simplify("{not json") == "{not json"


def test_references_cover_ref_getatt_and_sub() -> None:
    value = {
        "a": {"Ref": "Table"},
        "b": {"Fn::GetAtt": ["Queue", "Arn"]},
        "c": {"Fn::Sub": "${Bucket.Arn}/* in ${AWS::Region} ${!Literal}"},
        "d": {"Ref": "AWS::AccountId"},
    }
    assert references(value) == {"Table", "Queue", "Bucket"}


def test_dict_changes_are_added_removed_or_changed_per_key() -> None:
    assert diff_values({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [
        ValueChange("b", "changed", 2, 3),
        ValueChange("c", "added", new=4),
    ]
    assert diff_values({"a": {"x": 1}}, {}) == [ValueChange("a", "removed", old={"x": 1})]


def test_list_items_are_matched_by_identity_key() -> None:
    old = [{"IndexName": "by-status", "Projection": "ALL"}, {"IndexName": "by-input", "Projection": "ALL"}]
    new = [
        {"IndexName": "by-input", "Projection": "KEYS_ONLY"},
        {"IndexName": "by-owner", "Projection": "ALL"},
    ]
    assert diff_values(old, new, "GSI") == [
        ValueChange("GSI[by-status]", "removed", old=old[0]),
        ValueChange("GSI[by-input].Projection", "changed", "ALL", "KEYS_ONLY"),
        ValueChange("GSI[by-owner]", "added", new=new[1]),
    ]


def test_key_schema_change_pairs_by_position_when_no_identity_is_shared() -> None:
    old = [{"AttributeName": "job_id", "KeyType": "HASH"}]
    new = [{"AttributeName": "id", "KeyType": "HASH"}]
    assert diff_values(old, new, "KeySchema") == [
        ValueChange("KeySchema[0].AttributeName", "changed", "job_id", "id")
    ]


def test_scalar_lists_report_items_and_pure_reordering() -> None:
    assert diff_values(["a", "b"], ["b", "c"]) == [
        ValueChange("[]", "removed", old="a"),
        ValueChange("[]", "added", new="c"),
    ]
    assert diff_values(["a", "b"], ["b", "a"]) == [ValueChange("", "reordered", ["a", "b"], ["b", "a"])]


def test_a_grown_statement_is_paired_with_its_old_self() -> None:
    old = [{"Action": ["get"], "Effect": "Allow", "Resource": "t"}]
    new = [
        {"Action": ["delete", "get"], "Effect": "Allow", "Resource": "t"},
        {"Action": "x", "Effect": "Deny"},
    ]
    assert diff_values(old, new, "Statement") == [
        ValueChange("Statement[0].Action[]", "added", new="delete"),
        ValueChange("Statement[]", "added", new={"Action": "x", "Effect": "Deny"}),
    ]


def test_long_values_are_cut_and_long_strings_show_the_differing_middle() -> None:
    assert format_value("x" * 500, limit=40).endswith("(502 chars)")
    old = "prefix-" * 20 + "OLD" + "-suffix" * 20
    new = "prefix-" * 20 + "NEW" + "-suffix" * 20
    rendered = format_change(old, new)
    assert "OLD" in rendered
    assert "NEW" in rendered
    assert len(rendered) < 140
