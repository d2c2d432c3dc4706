"""Just enough of Kubernetes' protobuf encoding to read what kubectl's typed commands send.

kubectl's typed clients (`kubectl create namespace`, `kubectl create configmap`,
`kubectl drain`'s evictions) send bodies as `application/vnd.kubernetes.protobuf`:
the magic `k8s\\0`, then a runtime.Unknown whose `raw` is the object's message.
This decodes those few kinds into the JSON the registry takes, field numbers as
in k8s.io/api's generated.proto; anything else is refused (415) with a message
that says to send JSON. Replies are always JSON, which every client accepts.
"""

from __future__ import annotations

import base64
from typing import Any

from kubelite.errors import BadRequestError

MAGIC = b"k8s\x00"

# A message's fields: number -> (JSON name, type). Types: str, bytes, bool, int,
# "map" (map<string,string>), "bmap" (map<string,bytes>), "[str]" (repeated
# string), or the name of another message here.
_MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes")},
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
                   11: ("labels", "map"), 12: ("annotations", "map"),
                   14: ("finalizers", "[str]")},
    "Namespace": {1: ("metadata", "ObjectMeta")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"),
                  3: ("binaryData", "bmap"), 4: ("immutable", "bool")},
    "Preconditions": {1: ("uid", "str"), 2: ("resourceVersion", "str")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "str"),
                      5: ("dryRun", "[str]")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    "ObjectReference": {1: ("kind", "str"), 2: ("namespace", "str"), 3: ("name", "str"),
                        4: ("uid", "str")},
    "Binding": {1: ("metadata", "ObjectMeta"), 2: ("target", "ObjectReference")},
}
_KINDS = {"Namespace", "ConfigMap", "DeleteOptions", "Eviction", "Binding"}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise BadRequestError("the protobuf body is truncated")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes):
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise BadRequestError("the protobuf body has an unsupported wire type")
        yield number, wire, value


def decode(message: str, data: bytes) -> dict[str, Any]:
    spec = _MESSAGES[message]
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in spec:
            continue
        name, kind = spec[number]
        if kind == "str":
            out[name] = bytes(value).decode()
        elif kind == "bytes":
            out[name] = bytes(value)
        elif kind == "bool":
            out[name] = bool(value)
        elif kind == "int":
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "[str]":
            out.setdefault(name, []).append(bytes(value).decode())
        elif kind in ("map", "bmap"):
            entry = {n: bytes(v) for n, _, v in _fields(value)}
            raw = entry.get(2, b"")
            text = base64.b64encode(raw).decode() if kind == "bmap" else raw.decode()
            out.setdefault(name, {})[entry.get(1, b"").decode()] = text
        else:
            out[name] = decode(kind, value)
    return out


def to_object(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf-encoded body, or BadRequestError for any other kind."""
    from .app import UnsupportedMediaTypeError

    if not body.startswith(MAGIC):
        raise BadRequestError("the protobuf body lacks the k8s envelope")
    envelope = decode("Unknown", body[len(MAGIC):])
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in _KINDS:
        raise UnsupportedMediaTypeError(
            f"kubelite reads protobuf bodies only for {', '.join(sorted(_KINDS))}, not "
            f'"{kind}"; send JSON (e.g. kubectl apply -f / kubectl create -f)')
    obj = decode(kind, envelope.get("raw", b""))
    obj = {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
    if kind in ("Namespace", "ConfigMap", "Eviction", "Binding"):
        obj.setdefault("metadata", {})
    return obj
