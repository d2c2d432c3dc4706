"""Small helpers over Kubernetes-shaped object dicts: keys, times, merge patch."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any


def now_rfc3339(micro: bool = False) -> str:
    """The current UTC time as Kubernetes writes it: 2026-01-02T03:04:05Z."""
    now = datetime.now(UTC)
    if micro:
        return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parses an RFC 3339 timestamp as Kubernetes writes them (with or without fraction)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def key_of(obj: dict[str, Any]) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (the workqueue key)."""
    m = meta(obj)
    ns = m.get("namespace")
    return f"{ns}/{m.get('name', '')}" if ns else m.get("name", "")


def split_key(key: str) -> tuple[str, str]:
    """The inverse of key_of: ('namespace', 'name'), namespace '' for cluster-scoped."""
    ns, _, name = key.rpartition("/")
    return ns, name


def merge_patch(target: Any, patch: Any) -> Any:
    """Applies an RFC 7386 JSON merge patch; returns a new value, leaving target alone."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def deepcopy(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)
