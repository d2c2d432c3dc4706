"""Kubernetes' strategic merge patch, applied on the server for the built-in kinds.

A strategic merge patch is a JSON merge patch whose lists know how to merge:
a list whose schema says `x-kubernetes-patch-strategy: merge` merges element by
element, matched on `x-kubernetes-patch-merge-key` (containers by name, ports
by containerPort), instead of being replaced whole. Directives refine it, as
kubectl sends them:

- `$patch: replace` in a map replaces the map; as a list element, the list.
- `$patch: delete` in a map deletes it; in a merging list's element, deletes
  the element with that merge key.
- `$retainKeys: [...]` drops every field of the map not in the list (the
  `retainKeys` strategy, e.g. a Deployment's strategy).
- `$setElementOrder/<field>: [...]` orders a merged list.
- `$deleteFromPrimitiveList/<field>: [...]` removes values from a merged list
  of scalars.

The patch metadata comes from the same bundled schemas the validator uses (see
openapi.py). There is no well-kept Python implementation of strategic merge
(apimachinery's is Go), hence this small one; it implements applying a patch,
not computing one (kubectl computes them).
"""

from __future__ import annotations

import copy
from typing import Any

from kubelite.errors import BadRequestError

_DEFS = "#/$defs/"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


class Schema:
    """A node of a kind's schema, followed through $refs, for patch metadata only."""

    def __init__(self, defs: dict[str, Any], node: dict[str, Any] | None) -> None:
        self.defs = defs
        self.node = self._resolve(node)

    def _resolve(self, node: dict[str, Any] | None) -> dict[str, Any] | None:
        for _ in range(20):
            if not isinstance(node, dict):
                return None
            ref = node.get("$ref")
            if not isinstance(ref, str) or not ref.startswith(_DEFS):
                return node
            node = self.defs.get(ref[len(_DEFS):])
        return node

    def _property(self, key: str) -> dict[str, Any] | None:
        if self.node is None:
            return None
        props = self.node.get("properties")
        if isinstance(props, dict) and key in props:
            return props[key]
        extra = self.node.get("additionalProperties")
        return extra if isinstance(extra, dict) else None

    def field(self, key: str) -> tuple[Schema, str, str]:
        """The schema of field `key` and its patch strategy and merge key ("" if none)."""
        raw = self._property(key) or {}
        return (Schema(self.defs, raw), str(raw.get("x-kubernetes-patch-strategy") or ""),
                str(raw.get("x-kubernetes-patch-merge-key") or ""))

    def items(self) -> Schema:
        return Schema(self.defs, (self.node or {}).get("items"))


def apply(original: Any, patch: Any, schema: Schema) -> Any:
    """original with the strategic merge patch applied (original is not modified)."""
    if not isinstance(patch, dict):
        raise BadRequestError("a strategic merge patch must be a JSON object")
    result = _merge_map(copy.deepcopy(original) if isinstance(original, dict) else {},
                        patch, schema)
    return {} if result is None else result


def _merge_map(original: dict[str, Any], patch: dict[str, Any],
               schema: Schema) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise BadRequestError(f"unknown patch type: {directive!r} in a map")
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_ORDER):
            orders[key[len(_ORDER):]] = value if isinstance(value, list) else []
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE):]
            if isinstance(original.get(field), list) and isinstance(value, list):
                original[field] = [v for v in original[field] if v not in value]
            continue
        if value is None:
            original.pop(key, None)
            continue
        child, strategy, merge_key = schema.field(key)
        current = original.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, child)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            if "merge" in strategy.split(","):
                original[key] = _merge_list(current if isinstance(current, list) else [],
                                            value, child.items(), merge_key)
            else:
                original[key] = [_strip(v) for v in value]
        else:
            original[key] = value
    for field, order in orders.items():
        if isinstance(original.get(field), list):
            _, _, merge_key = schema.field(field)
            original[field] = _reorder(original[field], order, merge_key)
    if isinstance(retain, list):
        keep = set(retain)
        for key in [k for k in original if k not in keep]:
            del original[key]
    return original


def _merge_list(original: list[Any], patch: list[Any], items: Schema,
                merge_key: str) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch
                if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    if not merge_key or not all(isinstance(p, dict) for p in patch):
        # A merged list of scalars is a set union, in the original order first.
        out = list(original)
        for value in patch:
            if value not in out:
                out.append(value)
        return out
    out = [copy.deepcopy(e) for e in original]
    for element in patch:
        key = element.get(merge_key)
        if key is None and element.get("$patch") != "delete":
            raise BadRequestError(f"map: {element} does not contain declared merge key: "
                                  f"{merge_key}")
        index = next((i for i, e in enumerate(out)
                      if isinstance(e, dict) and e.get(merge_key) == key), None)
        if element.get("$patch") == "delete":
            out = [e for e in out if not (isinstance(e, dict) and e.get(merge_key) == key)]
            continue
        if index is None:
            out.append(_strip(element))
        else:
            merged = _merge_map(out[index], element, items)
            if merged is None:
                del out[index]
            else:
                out[index] = merged
    return out


def _reorder(values: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """values in the order given; those the order does not name keep their place after."""
    def ident(value: Any) -> Any:
        return value.get(merge_key) if merge_key and isinstance(value, dict) else value

    position = {}
    for i, entry in enumerate(order):
        position.setdefault(repr(ident(entry) if isinstance(entry, dict) else entry), i)
    named = sorted((v for v in values if repr(ident(v)) in position),
                   key=lambda v: position[repr(ident(v))])
    return named + [v for v in values if repr(ident(v)) not in position]


def _strip(value: Any) -> Any:
    """A patch value as stored: directives removed, deeply."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if k not in ("$patch", "$retainKeys") and not k.startswith((_ORDER,
                                                                           _DELETE_PRIMITIVE))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
