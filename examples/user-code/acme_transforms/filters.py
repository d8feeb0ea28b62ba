"""Keeping only the records a downstream system wants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobcore.transforms import transform


@dataclass(frozen=True)
class PaidOrderOptions:
    min_amount: float = 0.0
    currencies: tuple[str, ...] = ()  # empty: any currency


@transform("paid_orders", options=PaidOrderOptions)
def paid_orders(record: dict[str, Any], options: PaidOrderOptions) -> dict[str, Any] | None:
    """Orders that are paid, at least `min_amount`, in one of `currencies`; the others are dropped (counted
    in `records_filtered`). A test account's order is always dropped."""
    if record.get("test_account") or record.get("status") != "paid":
        return None
    amount = float(record["amount"])  # a missing amount is a KeyError: this record's reject, with the reason
    if amount < options.min_amount:
        return None
    if options.currencies and record.get("currency") not in options.currencies:
        return None
    return record
