"""Services: defaults, and the ClusterIP and NodePorts each holds exclusively,
claimed and given back atomically with the write (allocators.py)."""

from __future__ import annotations

from ..allocators import Claim
from ..validation import Problems, check_service
from .base import Obj, Strategy


class ServiceStrategy(Strategy):
    name_rule = "dns1035"

    def check(self, problems: Problems, obj: Obj) -> None:
        check_service(problems, obj)

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec.get("sessionAffinity") == "ClientIP":
            config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            config.setdefault("timeoutSeconds", 10800)

    def claims_for_create(self, obj: Obj) -> list[Claim]:
        return self.deps.allocator.plan_create(obj)

    def claims_for_update(self, old: Obj, new: Obj) -> tuple[list[Claim], list[tuple[str, str]]]:
        return self.deps.allocator.plan_update(old, new)

    def releases_for_delete(self, old: Obj) -> list[tuple[str, str]]:
        return self.deps.allocator.releases_for(old)
