"""Secrets: stringData folded into data, base64 and per-type checks, and immutability.

As Kubernetes' pkg/registry/core/secret: `stringData` is a write-only convenience
that is merged into `data` (base64-encoded, its keys winning) and dropped before
the object is stored, so that a read never returns a value in clear. `type` never
changes; once `immutable` is true, neither `data` nor `immutable` may change.
Values never reach an error message or a log: problems name keys, not contents.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from ..validation import Problems, ascii_text, show
from .base import Obj, Strategy

TLS = "kubernetes.io/tls"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"

# Keys a Secret of a type must hold (Kubernetes' ValidateSecret).
_REQUIRED = {TLS: ("tls.crt", "tls.key"), DOCKER_CONFIG_JSON: (".dockerconfigjson",),
             DOCKER_CFG: (".dockercfg",), SSH_AUTH: ("ssh-privatekey",)}
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_SECRET_BYTES = 1024 * 1024
REDACTED = "<secret contents redacted>"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decode_value(value: object) -> bytes | None:
    """The bytes of a data value, or None when it is not valid standard base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _base64_error(value: object) -> str:
    """Go's encoding/base64 message, without quoting the value."""
    text = value if isinstance(value, str) else ""
    for i, ch in enumerate(text):
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=")):
            return f"illegal base64 data at input byte {i}"
    return f"illegal base64 data at input byte {max(0, len(text) - len(text) % 4)}"


class SecretStrategy(Strategy):
    """v1 Secret: data with no spec (no generation), kept in base64."""

    tracks_generation = False

    def defaults(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            for key, value in string_data.items():
                data[key] = _b64(str(value))
            obj["data"] = data

    def check(self, problems: Problems, obj: Obj) -> None:
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        size = 0
        for key, value in data.items():
            if not _CONFIG_KEY.match(key):
                problems.add(f"data[{ascii_text(key)[:64]}]",
                             f"Invalid value: {show(key)}: a valid config key must consist of "
                             "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
                             "'KEY_NAME',  or 'key-name', regex used for validation is "
                             "'[-._a-zA-Z0-9]+')")
            raw = decode_value(value)
            if raw is None:
                problems.add(f"data[{key}]", f"Invalid value: {_base64_error(value)}")
                continue
            size += len(raw)
        if size > MAX_SECRET_BYTES:
            problems.add("data", f"Too long: must have at most {MAX_SECRET_BYTES} bytes")
        kind = obj.get("type") or "Opaque"
        for key in _REQUIRED.get(kind, ()):
            if key not in data:
                problems.add(f"data[{key}]", "Required value")
        if kind == DOCKER_CONFIG_JSON and ".dockerconfigjson" in data:
            raw = decode_value(data[".dockerconfigjson"])
            if raw is not None:
                try:
                    json.loads(raw)
                except ValueError as err:
                    problems.add("data[.dockerconfigjson]",
                                 f'Invalid value: "{REDACTED}": {err}')
        if kind == BASIC_AUTH and "username" not in data and "password" not in data:
            problems.add("data[username]", "Required value")
            problems.add("data[password]", "Required value")
        if kind == SERVICE_ACCOUNT_TOKEN and not (
                obj["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.name"):
            problems.add("metadata.annotations[kubernetes.io/service-account.name]",
                         "Required value")

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        old_type, new_type = old.get("type") or "Opaque", new.get("type") or "Opaque"
        if old_type != new_type:
            problems.add("type", f'Invalid value: "{new_type}": field is immutable')
        if old.get("immutable") is True:
            if (old.get("data") or {}) != (new.get("data") or {}):
                problems.add("data", "Forbidden: field is immutable when `immutable` is set")
            if new.get("immutable") is not True:
                problems.add("immutable", "Forbidden: field is immutable when `immutable` is set")
