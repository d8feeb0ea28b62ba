"""ACME's transforms, tested the way the pipeline runs them (jobcore.testing.run_transform: the real line
rules, the real registry, options checked as the ingest checks them)."""

from __future__ import annotations

import pytest

from jobcore.errors import ValidationError
from jobcore.testing import run_transform


def test_emails_keep_their_domain_and_phones_are_masked() -> None:
    run = run_transform("mask_pii", [{"id": 1, "email": "ada@example.com", "phone": "+44 20 7946 0000"}])
    assert run.output == [{"id": 1, "email": "***@example.com", "phone": "***"}]


def test_masking_options_choose_the_fields_and_the_mask() -> None:
    run = run_transform(
        "mask_pii",
        [{"email": "ada@example.com", "name": "Ada"}],
        options={"fields": ["email", "name"], "keep_domain": False, "mask": "[redacted]"},
    )
    assert run.output == [{"email": "[redacted]", "name": "[redacted]"}]


def test_a_record_without_the_fields_is_a_reject_when_one_is_required() -> None:
    run = run_transform("mask_pii", [{"id": 1}, {"email": 42}], options={"require_one": True})
    assert [r["error"] for r in run.rejects] == [
        "transform failed: none of the fields email, phone is present",
        "transform failed: field 'email' is int, not a string",
    ]


def test_bad_options_are_refused_before_any_record() -> None:
    with pytest.raises(ValidationError, match=r"transform_options\.keep_domain: must be true or false"):
        run_transform("mask_pii", [], options={"keep_domain": "yes"})
    with pytest.raises(ValidationError, match="fields must name at least one field"):
        run_transform("mask_pii", [], options={"fields": []})


def test_only_paid_orders_above_the_minimum_pass() -> None:
    orders = [
        {"order_id": "a", "status": "paid", "amount": 30, "currency": "EUR"},
        {"order_id": "b", "status": "refunded", "amount": 30, "currency": "EUR"},
        {"order_id": "c", "status": "paid", "amount": 5, "currency": "EUR"},
        {"order_id": "d", "status": "paid", "amount": 50, "currency": "USD"},
        {"order_id": "e", "status": "paid", "amount": 50, "currency": "EUR", "test_account": True},
        {"order_id": "f", "status": "paid"},
    ]
    run = run_transform("paid_orders", orders, options={"min_amount": 10, "currencies": ["EUR"]})
    assert [o["order_id"] for o in run.output] == ["a"]
    assert run.counts == {"in": 6, "transformed": 1, "filtered": 4, "rejected": 1, "out": 1}
    assert run.rejects[0]["error"] == "transform failed: KeyError: 'amount'"


def test_an_order_fans_out_into_one_record_per_line() -> None:
    order = {"order_id": "o-1", "items": [{"sku": "A", "quantity": 2, "price": 1.25}, {"sku": "B"}]}
    run = run_transform("order_lines", [order, {"order_id": "o-2", "items": []}, {"order_id": "o-3"}])
    assert run.output == [
        {"order_id": "o-1", "line": 1, "sku": "A", "quantity": 2, "total": 2.5},
        {"order_id": "o-1", "line": 2, "sku": "B", "quantity": 1, "total": 0.0},
    ]
    assert run.counts == {"in": 3, "transformed": 1, "filtered": 1, "rejected": 1, "out": 2}
