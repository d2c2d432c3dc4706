"""Kubernetes resource quantities: "500m" cpu, "128Mi" memory, "1.5", "2e3".

Parsed exactly (Fraction) the way apimachinery parses them, then read out as
milli-units for cpu or as whole units (bytes) for everything else.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from kubelite.errors import InvalidError

_SUFFIXES = {
    "": Fraction(1),
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))"
                      r"(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity; raises InvalidError for anything else."""
    if isinstance(value, bool):
        raise InvalidError(f"quantity: Invalid value: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    match = _PATTERN.match(str(value).strip())
    if not match:
        raise InvalidError(f'quantity: Invalid value: "{value}": quantities must match the '
                           "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, exponent, suffix = match.groups()
    result = Fraction(number)
    if exponent:
        result *= Fraction(10) ** int(exponent[1:])
    return result * _SUFFIXES[suffix or ""]


def cpu_millis(value: str | int | float | None) -> int:
    """CPU as millicores, rounded up as Kubernetes rounds ("0.1" -> 100, "1" -> 1000)."""
    if value is None:
        return 0
    return math.ceil(parse_quantity(value) * 1000)


def to_int(value: str | int | float | None) -> int:
    """Any other quantity (memory, pods, ...) as whole units, rounded up."""
    if value is None:
        return 0
    return math.ceil(parse_quantity(value))


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_bytes(value: int) -> str:
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value and value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)
