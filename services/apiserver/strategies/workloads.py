"""ReplicaSet and Deployment (apps/v1): replicas over a pod template, a selector that
may not change, and the rollout defaults of a Deployment."""

from __future__ import annotations

from .. import defaults
from ..validation import Problems, check_range, check_workload
from .base import Obj, Strategy, immutable


class ReplicaSetStrategy(Strategy):
    initial_status = {"replicas": 0}

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        defaults.pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))

    def check(self, problems: Problems, obj: Obj) -> None:
        check_workload(problems, obj)

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        template = (obj.get("spec") or {}).get("template") or {}
        spec = template.get("spec") if isinstance(template, dict) else None
        return [("spec.template.spec", spec)] if isinstance(spec, dict) else []

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        immutable(problems, "spec.selector", (old.get("spec") or {}).get("selector"),
                  (new.get("spec") or {}).get("selector"))


class DeploymentStrategy(ReplicaSetStrategy):
    initial_status = {}

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        super().defaults(obj)


class ControllerRevisionStrategy(Strategy):
    """apps/v1 ControllerRevision: an immutable snapshot (`data`) of a DaemonSet's or a
    StatefulSet's template at one `revision`; only the revision number and metadata may
    change (a controller renumbers a revision it rolls back to), as in Kubernetes."""

    tracks_generation = False

    def check(self, problems: Problems, obj: Obj) -> None:
        if obj.get("revision") is None:
            problems.add("revision", "Required value")
        check_range(problems, "revision", obj.get("revision"), 0)

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        immutable(problems, "data", old.get("data"), new.get("data"))
