"""Pods: defaults of the spec, the initial phase and QoS class, the default
tolerations of lost nodes, what an update may change, and the graceful deletion a
kubelet completes."""

from __future__ import annotations

import copy
from typing import Any

from kubelite.taints import default_tolerations

from .. import defaults
from ..validation import Problems, check_pod
from .base import Obj, Strategy


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending",
                         "qosClass": defaults.qos_class(obj.get("spec") or {})}
        self.defaults(obj)
        # The DefaultTolerationSeconds admission: on create only, as Kubernetes runs it.
        spec = obj["spec"]
        spec["tolerations"] = default_tolerations(
            spec.get("tolerations") or (),
            not_ready_seconds=self.deps.not_ready_toleration_seconds,
            unreachable_seconds=self.deps.unreachable_toleration_seconds)

    def defaults(self, obj: Obj) -> None:
        defaults.pod_spec(obj.setdefault("spec", {}))

    def check(self, problems: Problems, obj: Obj) -> None:
        check_pod(problems, obj)

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        spec = obj.get("spec")
        return [("spec", spec)] if isinstance(spec, dict) else []

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}

        def mutable_view(spec: dict[str, Any]) -> dict[str, Any]:
            view = copy.deepcopy(spec)
            for c in view.get("containers") or []:
                c.pop("image", None)
            for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
                view.pop(key, None)
            if not old_spec.get("nodeName"):
                view.pop("nodeName", None)
            return view

        if mutable_view(old_spec) != mutable_view(new_spec):
            problems.add("spec", "Forbidden: pod updates may not change fields other than "
                         "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, "
                         "`spec.tolerations` (only additions to existing tolerations) or "
                         "`spec.terminationGracePeriodSeconds`")

    def grace_period(self, old: Obj, requested: int | None) -> int:
        spec, status = old.get("spec") or {}, old.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0  # no kubelet has to stop anything
        if requested is None:
            return int(spec.get("terminationGracePeriodSeconds", 30))
        return requested
