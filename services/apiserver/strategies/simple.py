"""The data kinds (ConfigMap, Event, Endpoints) and Lease: their checks and defaults.

ConfigMap, Endpoints and Event are plain data with no spec/status split, so
Kubernetes gives them no metadata.generation; a Lease is a spec that its holder
renews.
"""

from __future__ import annotations

from ..validation import Problems, check_configmap, check_endpoints, check_event, check_lease
from .base import Obj, Strategy


class ConfigMapStrategy(Strategy):
    """Data with no spec, hence no generation."""

    tracks_generation = False

    def check(self, problems: Problems, obj: Obj) -> None:
        check_configmap(problems, obj)


class EventStrategy(Strategy):
    tracks_generation = False

    def check(self, problems: Problems, obj: Obj) -> None:
        check_event(problems, obj)


class EndpointsStrategy(Strategy):
    tracks_generation = False

    def check(self, problems: Problems, obj: Obj) -> None:
        check_endpoints(problems, obj)

    def defaults(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in subset.get("ports") or []:
                port.setdefault("protocol", "TCP")


class LeaseStrategy(Strategy):
    """coordination.k8s.io Lease: a spec renewed by its holder, no status."""

    def check(self, problems: Problems, obj: Obj) -> None:
        check_lease(problems, obj)
