"""Template values made comparable and readable: asset hashes masked, intrinsics rendered as `${...}`, JSON
held in strings expanded, and a leaf-level diff between two values that a reviewer can read line by line.
Why each: docs/infra-diff-design.md ("Comparing templates")."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ASSET_HASH = re.compile(r"[0-9a-f]{64}")
ASSET_MASK = "<asset-hash>"

# Keys that identify an item inside a list of objects, in order of preference. Matching list items by
# identity (not by position) keeps "a GSI was added" from reading as "every later GSI changed".
IDENTITY_KEYS = (
    "Sid",
    "IndexName",
    "AttributeName",
    "Id",
    "Name",
    "Key",
    "MetricName",
    "Endpoint",
    "Protocol",
)

ChangeKind = Literal["added", "removed", "changed", "reordered"]


@dataclass(frozen=True)
class ValueChange:
    """One leaf difference. `path` is relative to the value that was compared (e.g. a property)."""

    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None


def mask_assets(value: Any) -> Any:
    """The value with every asset hash replaced by a fixed placeholder."""
    if isinstance(value, Mapping):
        return {k: mask_assets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_assets(v) for v in value]
    if isinstance(value, str):
        return ASSET_HASH.sub(ASSET_MASK, value)
    return value


def asset_hashes(value: Any) -> frozenset[str]:
    """Every asset hash mentioned anywhere in the value (S3 keys of code bundles, image tags)."""
    found: set[str] = set()
    for text in _strings(value):
        found.update(ASSET_HASH.findall(text))
    return frozenset(found)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def references(value: Any) -> frozenset[str]:
    """Logical ids the value refers to through Ref, Fn::GetAtt or Fn::Sub (pseudo parameters excluded)."""
    found: set[str] = set()
    _collect_references(value, found)
    return frozenset(name for name in found if not name.startswith("AWS::"))


def _collect_references(value: Any, found: set[str]) -> None:
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
                return
            if key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) and arg else str(arg).split(".")[0]
                if isinstance(target, str):
                    found.add(target)
                return
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0] if isinstance(arg, list) and arg else ""
                if isinstance(text, str):
                    found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
        for v in value.values():
            _collect_references(v, found)
    elif isinstance(value, list):
        for v in value:
            _collect_references(v, found)


def simplify(value: Any) -> Any:
    """Render intrinsics as `${...}` text and expand JSON held in strings, recursively."""
    if isinstance(value, Mapping):
        rendered = _render_intrinsic(value)
        if rendered is not None:
            return _expand_json(rendered)
        return {k: simplify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [simplify(v) for v in value]
    if isinstance(value, str):
        return _expand_json(value)
    return value


def _render_intrinsic(value: Mapping[str, Any]) -> str | None:
    """The intrinsic as text, or None when it is not one that reads well as text."""
    if len(value) != 1:
        return None
    ((key, arg),) = value.items()
    renderer = _INTRINSIC_RENDERERS.get(key)
    return renderer(arg) if renderer else None


def _ref(arg: Any) -> str | None:
    return f"${{{arg}}}" if isinstance(arg, str) else None


def _get_att(arg: Any) -> str | None:
    parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
    return "${" + ".".join(parts) + "}" if all(isinstance(p, str) for p in parts) else None


def _import_value(arg: Any) -> str | None:
    name = _render_part(arg)
    return None if name is None else f"${{Import:{name}}}"


def _sub(arg: Any) -> str | None:
    return arg if isinstance(arg, str) else None


def _join_parts(arg: Any) -> str | None:
    if not (isinstance(arg, list) and len(arg) == 2):
        return None
    separator, parts = arg
    if not (isinstance(separator, str) and isinstance(parts, list)):
        return None
    rendered = [_render_part(p) for p in parts]
    return None if any(r is None for r in rendered) else separator.join(r for r in rendered if r is not None)


_INTRINSIC_RENDERERS: dict[str, Callable[[Any], str | None]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::ImportValue": _import_value,
    "Fn::Sub": _sub,
    "Fn::Join": _join_parts,
}


def _render_part(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return _render_intrinsic(value)
    return None


def _expand_json(text: str) -> Any:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict | list) else text


def diff_values(old: Any, new: Any, path: str = "") -> list[ValueChange]:
    """Leaf differences between two (simplified) values, in a stable, readable order."""
    if old == new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[ValueChange] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = _join(path, str(key))
            if key not in new:
                changes.append(ValueChange(sub, "removed", old=old[key]))
            elif key not in old:
                changes.append(ValueChange(sub, "added", new=new[key]))
            else:
                changes += diff_values(old[key], new[key], sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        return _diff_lists(old, new, path)
    return [ValueChange(path, "changed", old=old, new=new)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


def _diff_lists(old: list[Any], new: list[Any], path: str) -> list[ValueChange]:
    if all(_is_scalar(v) for v in old + new):
        return _diff_scalar_lists(old, new, path)
    key = _identity_key(old, new)
    if key is not None:
        return _diff_by_identity(old, new, path, key)
    if len(old) == len(new):
        changes: list[ValueChange] = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            changes += diff_values(a, b, f"{path}[{index}]")
        return changes
    # Different lengths and no identity key: drop the items both sides have, then pair each remaining old
    # item with its most similar new one (a statement that gained an action), and report the rest whole.
    remaining = list(new)
    removed: list[Any] = []
    for item in old:
        if item in remaining:
            remaining.remove(item)
        else:
            removed.append(item)
    changes = []
    unpaired: list[Any] = []
    for item in removed:
        partner = _most_similar(item, remaining)
        if partner is None:
            unpaired.append(item)
            continue
        remaining.remove(partner)
        changes += diff_values(item, partner, f"{path}[{new.index(partner)}]")
    return (
        [ValueChange(f"{path}[]", "removed", old=item) for item in unpaired]
        + changes
        + [ValueChange(f"{path}[]", "added", new=item) for item in remaining]
    )


def _most_similar(item: Any, candidates: list[Any]) -> Any:
    """The candidate sharing the most equal top-level values with `item`, if at least half of its keys."""
    if not isinstance(item, Mapping):
        return None
    best, best_score = None, 0
    for candidate in candidates:
        if not isinstance(candidate, Mapping):
            continue
        keys = set(item) | set(candidate)
        score = sum(1 for key in keys if item.get(key) == candidate.get(key))
        if score > best_score and score * 2 >= len(keys):
            best, best_score = candidate, score
    return best


def _diff_scalar_lists(old: Sequence[Any], new: Sequence[Any], path: str) -> list[ValueChange]:
    before, after = Counter(map(_hashable, old)), Counter(map(_hashable, new))
    removed = [v for v in old if before[_hashable(v)] > after[_hashable(v)]]
    added = [v for v in new if after[_hashable(v)] > before[_hashable(v)]]
    changes = [ValueChange(f"{path}[]", "removed", old=v) for v in _unique(removed)]
    changes += [ValueChange(f"{path}[]", "added", new=v) for v in _unique(added)]
    if not changes:
        changes.append(ValueChange(path, "reordered", old=list(old), new=list(new)))
    return changes


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str | int | float | bool) else value


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _identity_key(old: list[Any], new: list[Any]) -> str | None:
    """A key present, scalar and unique in every item of both lists, sharing at least one value."""
    items = old + new
    if not all(isinstance(item, Mapping) for item in items):
        return None
    for key in IDENTITY_KEYS:
        if not all(key in item and _is_scalar(item[key]) for item in items):
            continue
        old_ids = [item[key] for item in old]
        new_ids = [item[key] for item in new]
        if len(set(map(str, old_ids))) != len(old_ids) or len(set(map(str, new_ids))) != len(new_ids):
            continue
        if set(map(str, old_ids)) & set(map(str, new_ids)):
            return key
    return None


def _diff_by_identity(old: list[Any], new: list[Any], path: str, key: str) -> list[ValueChange]:
    old_by_id = {str(item[key]): item for item in old}
    new_by_id = {str(item[key]): item for item in new}
    changes: list[ValueChange] = []
    for ident, item in old_by_id.items():
        if ident not in new_by_id:
            changes.append(ValueChange(f"{path}[{ident}]", "removed", old=item))
    for ident, item in new_by_id.items():
        sub = f"{path}[{ident}]"
        if ident not in old_by_id:
            changes.append(ValueChange(sub, "added", new=item))
        else:
            changes += diff_values(old_by_id[ident], item, sub)
    return changes


def format_value(value: Any, *, limit: int = 160) -> str:
    """One line of compact JSON (strings quoted), cut to `limit` characters with the length noted."""
    text = json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} chars)"


def format_change(old: Any, new: Any, *, limit: int = 160) -> str:
    """`old -> new`; two long strings are cut to the part that differs, with some context."""
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > limit // 2:
        old, new = _differing_middle(old, new)
    return f"{format_value(old, limit=limit)} -> {format_value(new, limit=limit)}"


def _differing_middle(old: str, new: str, context: int = 24) -> tuple[str, str]:
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < min(len(old), len(new)) - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]
    ):
        suffix += 1
    start = max(0, prefix - context)
    lead = "…" if start > 0 else ""

    def cut(text: str) -> str:
        end = min(len(text), len(text) - suffix + context)
        trail = "…" if end < len(text) else ""
        return lead + text[start:end] + trail

    return cut(old), cut(new)
