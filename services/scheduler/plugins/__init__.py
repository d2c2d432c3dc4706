"""The scheduler's plugins, one per module, and the default profile's order.

Filters run in `DEFAULT_FILTERS` order (cheap and decisive first); a node
fails at its first failing filter. Score plugins are weighted; the defaults
follow Kubernetes' default profile (NodeResourcesFit and BalancedAllocation 1,
spreading and NodeAffinity 2, TaintToleration 3).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from ..framework import Framework, WeightedScorer
from .balanced_allocation import BalancedAllocation
from .least_allocated import LeastAllocated
from .node_affinity import NodeAffinity
from .node_ports import NodePorts
from .node_ready import NodeReady
from .node_resources_fit import NodeResourcesFit
from .node_selector import NodeSelector
from .node_unschedulable import NodeUnschedulable
from .selector_spread import SelectorSpread
from .taint_toleration import TaintToleration
from .volumebinding import VolumeBinding

FILTER_PLUGINS = {
    cls.name: cls
    for cls in (NodeUnschedulable, NodeReady, NodeSelector, NodeAffinity, TaintToleration,
                NodePorts, NodeResourcesFit, VolumeBinding)
}
DEFAULT_FILTERS = tuple(FILTER_PLUGINS)

SCORE_PLUGINS = {
    cls.name: cls
    for cls in (LeastAllocated, BalancedAllocation, SelectorSpread, NodeAffinity,
                TaintToleration)
}
DEFAULT_SCORE_WEIGHTS = {
    "LeastAllocated": 1,
    "BalancedAllocation": 1,
    "SelectorSpread": 2,
    "NodeAffinity": 2,
    "TaintToleration": 3,
}



def new_framework(score_weights: Mapping[str, int] | None = None, *,
                  filters: tuple[str, ...] = DEFAULT_FILTERS,
                  rng: random.Random | None = None) -> Framework:
    """The default profile; `score_weights` overrides the named weights (0 disables one)."""
    weights = {**DEFAULT_SCORE_WEIGHTS, **(score_weights or {})}
    unknown = sorted(set(weights) - set(SCORE_PLUGINS))
    if unknown:
        raise ValueError(f"unknown score plugin(s): {', '.join(unknown)}; "
                         f"known: {', '.join(SCORE_PLUGINS)}")
    instances: dict[str, object] = {}

    def instance(name: str, registry: Mapping[str, type]) -> object:
        if name not in instances:
            instances[name] = registry[name]()
        return instances[name]

    return Framework(
        [instance(name, FILTER_PLUGINS) for name in filters],  # type: ignore[misc]
        [WeightedScorer(instance(name, SCORE_PLUGINS), weight)  # type: ignore[arg-type]
         for name, weight in weights.items() if weight > 0],
        rng=rng,
    )


__all__ = [
    "new_framework",
    "BalancedAllocation",
    "DEFAULT_FILTERS",
    "DEFAULT_SCORE_WEIGHTS",
    "FILTER_PLUGINS",
    "LeastAllocated",
    "NodeAffinity",
    "NodePorts",
    "NodeReady",
    "NodeResourcesFit",
    "NodeSelector",
    "NodeUnschedulable",
    "SCORE_PLUGINS",
    "SelectorSpread",
    "TaintToleration",
    "VolumeBinding",
]
