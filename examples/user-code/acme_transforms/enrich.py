"""One order in, one record per line item out: what an analytics table wants."""

from __future__ import annotations

from typing import Any

from jobcore.transforms import RecordError, transform


@transform("order_lines")
def order_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each item of the order's `items` becomes a record carrying the order id and its position; an order
    without items gives nothing (an empty list: dropped, counted as filtered)."""
    items = record.get("items")
    if not isinstance(items, list):
        raise RecordError("items must be a list")
    lines = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict) or "sku" not in item:
            raise RecordError(f"item {position} has no sku")
        quantity = int(item.get("quantity", 1))
        price = float(item.get("price", 0.0))
        lines.append(
            {
                "order_id": record.get("order_id"),
                "line": position,
                "sku": item["sku"],
                "quantity": quantity,
                "total": round(quantity * price, 2),
            }
        )
    return lines
