"""The scheduler's configuration: one frozen dataclass, built from flags by __main__."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubelite.component import CommonConfig, LeaderConfig

DEFAULT_SCHEDULER_NAME = "default-scheduler"


@dataclass(frozen=True)
class Config:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    #: Overrides of the default score weights (plugins.DEFAULT_SCORE_WEIGHTS); 0 disables.
    score_weights: tuple[tuple[str, int], ...] = ()
    pod_initial_backoff: float = 1.0
    pod_max_backoff: float = 10.0
    pod_max_unschedulable_duration: float = 60.0
    assumed_pod_ttl: float = 30.0
    common: CommonConfig | None = field(default=None, compare=False)
    leader: LeaderConfig | None = field(default=None, compare=False)


def parse_score_weights(text: str) -> dict[str, int]:
    """"LeastAllocated=1,SelectorSpread=2" -> {"LeastAllocated": 1, "SelectorSpread": 2}."""
    weights: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            weight = int(value)
        except ValueError:
            weight = -1
        if not sep or not name or weight < 0:
            raise ValueError(f"bad score weight {item!r}: want Name=<integer >= 0>")
        weights[name] = weight
    return weights


def format_score_weights(weights: Mapping[str, int]) -> str:
    return ",".join(f"{name}={weight}" for name, weight in weights.items())
