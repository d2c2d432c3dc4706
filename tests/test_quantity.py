"""Unit tests of resource quantity parsing."""

import pytest

from kubelite.errors import InvalidError
from kubelite.quantity import cpu_millis, format_bytes, format_cpu, to_int


@pytest.mark.parametrize(("text", "millis"), [
    ("500m", 500), ("1", 1000), ("0.1", 100), ("2.5", 2500), (2, 2000), ("1e3", 1_000_000),
    ("100u", 1), ("1k", 1_000_000),
])
def test_cpu_parses_as_kubernetes_does(text, millis) -> None:
    """CPU quantities read as millicores, rounding fractions of a millicore up."""
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "value"), [
    ("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("500k", 500_000), ("64", 64),
    ("1.5Gi", 3 * 2**29), ("12e6", 12_000_000),
])
def test_memory_parses_binary_and_decimal_suffixes(text, value) -> None:
    """Memory quantities accept binary (Mi) and decimal (M) suffixes and exponents."""
    assert to_int(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "5 Mi", "Mi", "1mm", True])
def test_garbage_is_invalid(bad) -> None:
    """Malformed quantities raise InvalidError, not ValueError."""
    with pytest.raises(InvalidError):
        to_int(bad)


def test_formatting_round_trips() -> None:
    """Formatting picks the largest exact unit."""
    assert format_cpu(1500) == "1500m" and format_cpu(2000) == "2"
    assert format_bytes(128 * 2**20) == "128Mi" and format_bytes(1000) == "1000"
