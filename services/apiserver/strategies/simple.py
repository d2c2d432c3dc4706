"""Kinds with no rules of their own beyond whether their content has a generation.

ConfigMap, Endpoints and Event are plain data with no spec/status split, so
Kubernetes gives them no metadata.generation; a Lease is a spec that its holder
renews.
"""

from __future__ import annotations

from .base import Obj, Strategy


class DataStrategy(Strategy):
    """ConfigMap and Event: data with no spec, hence no generation."""

    tracks_generation = False


class EndpointsStrategy(DataStrategy):
    def defaults(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in subset.get("ports") or []:
                port.setdefault("protocol", "TCP")


class LeaseStrategy(Strategy):
    """coordination.k8s.io Lease: a spec renewed by its holder, no status."""
