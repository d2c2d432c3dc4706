"""How the CLI shows objects: kubectl's ages, aligned tables, and -o json|yaml|name.

Tables are laid out as kubectl's tabwriter lays them out: upper-case headers,
left-aligned cells, every column but the last padded to its widest cell plus
three spaces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from kubelite.printing import age, format_labels, human_duration, parse_timestamp
from kubelite.resources import ResourceInfo

COLUMN_PADDING = 3
__all__ = ["age", "format_labels", "human_duration", "parse_timestamp"]


class TableLayout:
    """Column widths fixed by a first batch of rows, reused for rows that arrive later.

    `kubelite get -w` prints the table once and then one row per event; the
    later rows keep the columns of the first print, widening only a cell that
    does not fit.
    """

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                 padding: int = COLUMN_PADDING) -> None:
        self.headers = list(headers)
        self.padding = padding
        self.widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                self.widths[i] = max(self.widths[i], len(cell))

    def line(self, cells: Sequence[str]) -> str:
        parts = []
        last = len(cells) - 1
        for i, cell in enumerate(cells):
            if i == last:
                parts.append(cell)
            else:
                parts.append(cell.ljust(max(self.widths[i], len(cell)) + self.padding))
        return "".join(parts).rstrip()

    def render(self, rows: Sequence[Sequence[str]], *, header: bool = True) -> str:
        lines = [self.line(self.headers)] if header else []
        lines.extend(self.line(row) for row in rows)
        return "\n".join(lines)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                 padding: int = COLUMN_PADDING) -> str:
    """An aligned table with a header line (no trailing newline)."""
    return TableLayout(headers, rows, padding=padding).render(rows)


def with_type_meta(obj: dict[str, Any], info: ResourceInfo) -> dict[str, Any]:
    """The object with apiVersion and kind first, as kubectl prints list items."""
    head = {"apiVersion": obj.get("apiVersion") or info.api_version,
            "kind": obj.get("kind") or info.kind}
    return {**head, **{k: v for k, v in obj.items() if k not in head}}


def as_list(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A kubectl-style `List` of objects (what -o json|yaml prints for several)."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items),
            "metadata": {"resourceVersion": ""}}


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def to_yaml(obj: Any) -> str:
    """YAML with keys sorted, as kubectl prints it (no trailing newline)."""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False,
                          allow_unicode=True).rstrip("\n")


def object_name(obj: dict[str, Any], info: ResourceInfo) -> str:
    """`pod/nginx`, `deployment.apps/web`: what -o name and apply print."""
    return f"{info.qualified}/{(obj.get('metadata') or {}).get('name', '')}"


def qualified_plural(info: ResourceInfo) -> str:
    """`deployments.apps`, `pods`: how Kubernetes names a resource in messages."""
    return f"{info.plural}.{info.group}" if info.group else info.plural
