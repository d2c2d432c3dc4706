"""Strict JSON decoding of request bodies: only portable JSON reaches the registry.

Python's json module accepts what no other JSON reader does (NaN, Infinity,
lone surrogates, UTF-16 bodies, integers of any size). Kubernetes' decoder
refuses all of these, and an object that only Python can read would break
every Go or JavaScript client that lists it. So the body is decoded as UTF-8,
the non-standard constants are refused by the parser's hooks, and one
iterative walk checks the rest (integers beyond int64, lone surrogates,
nesting deeper than any Kubernetes object needs), naming the offending path.

Not orjson: the installed 3.8 crashes the process (a segfault, not an error)
on a body nested a million levels deep, which a 4 MiB request can be.
Python's parser raises RecursionError instead, which is refused here.
"""

from __future__ import annotations

import json
from typing import Any

from kubelite.errors import BadRequestError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Kubernetes objects nest a couple of dozen levels at most; the limit keeps every
# recursive step after decoding (schema validation, merge patch) far from
# Python's recursion limit.
MAX_DEPTH = 100


def _path(parts: list[str | int]) -> str:
    """The path as a field name: ASCII (escaped) and bounded, whatever the keys are."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part).encode("ascii", "backslashreplace").decode()
            out += ("." if out else "") + (text if len(text) <= 64 else text[:64] + "...")
    return out[:256]


def check_portable(value: Any, what: str = "object") -> None:
    """Raises BadRequestError if a decoded value holds a number beyond int64 or nests
    deeper than MAX_DEPTH. Iterative, so that it cannot itself exhaust the stack."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise BadRequestError(
                f"{what} is nested more than {MAX_DEPTH} levels deep", field=_path(path[:8]))
        if isinstance(node, dict):
            for k, v in node.items():
                _check_string(k, path, what)
                stack.append((v, [*path, k]))
        elif isinstance(node, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(node))
        elif isinstance(node, str):
            _check_string(node, path, what)
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int | float) and not INT64_MIN <= node <= INT64_MAX:
            # orjson reads integers beyond uint64 as floats: both are refused here,
            # as Kubernetes refuses any number that does not fit in an int64.
            raise BadRequestError(
                "Invalid value: the number does not fit in a 64-bit integer",
                field=_path(path) or what)


def _check_string(text: str, path: list[str | int], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError("Invalid value: a string holds a lone UTF-16 surrogate, "
                              "which is not portable JSON", field=_path(path) or what) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float")
    return value


def drop_nulls(value: Any) -> Any:
    """value without the object members that are null.

    In Kubernetes a null field is an absent one (the typed decoder leaves it at its
    zero value); dropping them here means no later step meets a None where the
    schema, which allows null almost everywhere, promised an object. Nulls inside
    arrays stay, for validation to refuse.
    """
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def loads_object(body: bytes | str, what: str = "object") -> dict[str, Any]:
    """A JSON object from a request body; raises BadRequestError for anything else."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError as err:
        raise BadRequestError(f"{what} is not valid JSON: not UTF-8 (byte {err.start})") from None
    except RecursionError:
        raise BadRequestError(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as err:
        # The parser's message names the problem and its position, never the input.
        raise BadRequestError(f"{what} is not valid JSON: {str(err)[:200]}") from None
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
            type(value), "number")
        raise BadRequestError(f"{what} must be a JSON object, not a JSON {kind}")
    check_portable(value, what)
    return value
