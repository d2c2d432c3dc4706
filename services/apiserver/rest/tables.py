"""Server-side Tables (meta.k8s.io/v1 Table): what stock `kubectl get` prints.

The columns are kubelite.printing's, the ones `kubelite get` prints, so both
tools show the same table; the wide-only ones get priority 1, which is what
kubectl shows only with `-o wide`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubelite import printing
from kubelite.resources import ResourceInfo

TABLE_API_VERSION = "meta.k8s.io/v1"


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a Table (kubectl sends as=Table first)."""
    first = accept.split(",", 1)[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def _columns(info: ResourceInfo) -> tuple[printing.Column, ...]:
    return printing.COLUMNS.get(info.kind, printing.GENERIC)


def column_definitions(info: ResourceInfo) -> list[dict[str, Any]]:
    out = []
    for column in _columns(info):
        out.append({"name": column.header, "type": "string",
                    "format": "name" if column is printing.NAME else "",
                    "description": "", "priority": 1 if column.wide_only else 0})
    return out


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
            "metadata": obj.get("metadata") or {}}


def rows(info: ResourceInfo, objects: list[dict[str, Any]], include: str) -> list[dict]:
    now = datetime.now(UTC)
    columns = _columns(info)
    out = []
    for obj in printing.sort_for_display(info, objects):
        row: dict[str, Any] = {"cells": [c.cell(obj, now) for c in columns]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = _partial(obj)
        out.append(row)
    return out


def table(info: ResourceInfo, objects: list[dict[str, Any]], *, resource_version: str = "",
          continue_token: str = "", include: str = "PartialObjectMetadata",
          headers: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    out: dict[str, Any] = {"kind": "Table", "apiVersion": TABLE_API_VERSION,
                           "metadata": metadata}
    # A watch's later events carry rows only, as Kubernetes' do (noHeaders).
    out["columnDefinitions"] = column_definitions(info) if headers else None
    out["rows"] = rows(info, objects, include)
    return out
