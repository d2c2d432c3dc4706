"""The pod-template-hash: one short, stable name for one pod template.

Kubernetes' ComputeHash feeds the template to FNV-32a (through a Go struct
printer), appends the Deployment's collisionCount, prints the sum in decimal
and maps each digit onto a consonant-and-digit alphabet (SafeEncodeString), so
that a hash never spells a word. We cannot reproduce Go's struct printer, so
the template is hashed as canonical JSON (sorted keys, no spaces): the same
template always gives the same hash, in any process, whatever the key order.
The hash is not byte-compatible with Kubernetes' own, and need not be.
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes, start: int = _FNV32_OFFSET) -> int:
    h = start
    for byte in data:
        h ^= byte
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: each character onto a wordless alphabet."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def compute_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash of a pod template (see the module docstring)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = fnv32a(canonical.encode())
    if collision_count is not None:
        # As Kubernetes: the count as a little-endian uint32 in an 8-byte buffer.
        h = fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0\0\0\0", h)
    return safe_encode(str(h))


def without_hash_label(template: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of the template without the pod-template-hash label (and no empty labels)."""
    result = copy.deepcopy(template or {})
    meta = result.get("metadata")
    if isinstance(meta, dict):
        labels = dict(meta.get("labels") or {})
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        if not meta:
            result.pop("metadata")
    return result


def equal_ignore_hash(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two pod templates are the same but for the pod-template-hash label."""
    return without_hash_label(a) == without_hash_label(b)


__all__ = [
    "POD_TEMPLATE_HASH_LABEL",
    "compute_hash",
    "equal_ignore_hash",
    "fnv32a",
    "safe_encode",
    "without_hash_label",
]
