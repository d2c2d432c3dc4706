"""HorizontalPodAutoscaler (autoscaling/v2): its default metric, 80% CPU."""

from __future__ import annotations

from ..validation import Problems, check_hpa
from .base import Obj, Strategy


class HorizontalPodAutoscalerStrategy(Strategy):
    initial_status = {"desiredReplicas": 0}

    def check(self, problems: Problems, obj: Obj) -> None:
        check_hpa(problems, obj)

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
