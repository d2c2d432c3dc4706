"""PodDisruptionBudget (policy/v1): how many of a set of pods voluntary disruptions
may take down at once.

The rules of Kubernetes' ValidatePodDisruptionBudgetSpec: minAvailable and
maxUnavailable exclude each other, each is a non-negative count or a percentage
of at most 100%, and the selector, when given, must be a valid LabelSelector.
A null selector selects no pods; an empty one ({}) selects every pod of the
namespace (policy/v1's meaning). The disruption controller owns the status.
"""

from __future__ import annotations

import re
from typing import Any

from kubelite.errors import InvalidError
from kubelite.selectors import selector_from_label_selector_spec

from ..validation import Problems
from .base import Obj, Strategy

_PERCENT = re.compile(r"^(0|[1-9][0-9]*)%$")
_POLICIES = ("IfHealthyBudget", "AlwaysAllow")
_STATUS_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")


def check_int_or_percent(problems: Problems, path: str, value: Any) -> None:
    """Kubernetes' ValidateNonnegativeIntOrPercent, and a percentage of at most 100%."""
    if isinstance(value, bool):
        problems.add(path, f"Invalid value: {value!r}: must be an integer or percentage "
                           "(e.g. '5%')")
    elif isinstance(value, int):
        if value < 0:
            problems.add(path, f"Invalid value: {value}: must be greater than or equal to 0")
    elif isinstance(value, str):
        match = _PERCENT.match(value)
        if not match:
            problems.add(path, f'Invalid value: "{value}": a valid percent string must be a '
                               "numeric string followed by an ending '%' (e.g. '1%', or '93%')")
        elif int(value[:-1]) > 100:
            problems.add(path, f'Invalid value: "{value}": must not be greater than 100%')


class PodDisruptionBudgetStrategy(Strategy):
    # What Kubernetes' typed PodDisruptionBudgetStatus serializes when empty.
    initial_status = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                      "expectedPods": 0}

    def check(self, problems: Problems, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        has_min, has_max = spec.get("minAvailable") is not None, \
            spec.get("maxUnavailable") is not None
        if has_min and has_max:
            problems.add("spec", "Invalid value: minAvailable and maxUnavailable cannot be "
                                 "both set")
        for field in ("minAvailable", "maxUnavailable"):
            if spec.get(field) is not None:
                check_int_or_percent(problems, f"spec.{field}", spec[field])
        selector = spec.get("selector")
        if selector is not None:
            try:
                selector_from_label_selector_spec(selector)
            except InvalidError as err:
                problems.add("spec.selector", f"Invalid value: {err.message}")
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in _POLICIES:
            problems.add("spec.unhealthyPodEvictionPolicy",
                         f'Unsupported value: "{policy}": supported values: '
                         '"AlwaysAllow", "IfHealthyBudget"')
        status = obj.get("status") or {}
        for field in _STATUS_COUNTS:
            value = status.get(field)
            if isinstance(value, int) and value < 0:
                problems.add(f"status.{field}", f"Invalid value: {value}: must be greater "
                                                "than or equal to 0")
