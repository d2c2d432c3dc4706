"""Small helpers over Kubernetes-shaped object dicts: times and merge patch.

(Object keys live with the informer: kubelite.informer.object_key/split_key.)
"""

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
