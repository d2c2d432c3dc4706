"""The scheduling framework: what a plugin sees, and how a profile runs them.

The one idea, from Kubernetes' `pkg/scheduler/framework`: *one tiny interface
per extension point*. A filter plugin answers "can this pod run on this node?"
with a `Status`; a score plugin answers "how good is this node?" with an int in
0..100 (optionally raw, then mapped into 0..100 by its `normalize` step, as
Kubernetes' NormalizeScore does). A plugin may also say, once per pod, that it
has nothing to say about this pod (`pre_filter(pod)` or `pre_score(pod,
nodes)` returning False, Kubernetes' PreFilter/PreScore "Skip"), which saves
calling it for every node. The `Framework` runs the filters over every
node (a node fails at its first failing filter), scores the feasible nodes with
weighted plugins, and picks the best node, breaking ties at random.

Plugins receive a `PodInfo` (the pod dict plus what every plugin would
otherwise recompute per node: requests, host ports, tolerations, owner) and a
`NodeInfo` (the node dict plus the aggregate of the pods assigned or assumed
on it). Both are read-only to plugins.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from kubelite.errors import InvalidError
from kubelite.quantity import cpu_millis, to_int

log = logging.getLogger("kubelite.scheduler")

Obj = dict[str, Any]

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"

# What a container without requests is assumed to use when spreading by
# allocation (Kubernetes' DefaultMilliCPURequest and DefaultMemoryRequest), so
# that best-effort pods do not all pile onto one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

NO_NODES_AVAILABLE = "no nodes available to schedule pods"


# -- status -------------------------------------------------------------------


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    ERROR = "Error"


@dataclass(frozen=True)
class Status:
    """A plugin's verdict; `reasons` are the short phrases counted in the failure message."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def success(cls) -> Status:
        return _SUCCESS

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, tuple(reasons))

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    @property
    def is_success(self) -> bool:
        return self.code is Code.SUCCESS


_SUCCESS = Status()


# -- resources ----------------------------------------------------------------


def _quantity(name: str, value: Any) -> int:
    """cpu in millicores, everything else in whole units."""
    return cpu_millis(value) if name == CPU else to_int(value)


def parse_resource_list(resources: Mapping[str, Any] | None) -> dict[str, int]:
    """A ResourceList ({"cpu": "500m", "memory": "128Mi"}) as ints; bad values count as 0."""
    out: dict[str, int] = {}
    for name, value in (resources or {}).items():
        try:
            out[name] = _quantity(name, value)
        except (InvalidError, ValueError, TypeError):
            log.warning("ignoring unparsable quantity", extra={"kv": {"resource": name,
                                                                       "value": value}})
    return out


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def _max(total: dict[str, int], other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value


def pod_requests(spec: Mapping[str, Any], *, non_zero: bool = False) -> dict[str, int]:
    """What a pod requests, as Kubernetes computes it.

    The sum over containers, then the max with each init container (they run
    one at a time, before the others), plus spec.overhead. With `non_zero`,
    a container that requests no cpu or memory counts the defaults above.
    """
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        requests = parse_resource_list((container.get("resources") or {}).get("requests"))
        if non_zero:
            requests.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
            requests.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
        _add(total, requests)
    for container in spec.get("initContainers") or []:
        _max(total, parse_resource_list((container.get("resources") or {}).get("requests")))
    _add(total, parse_resource_list(spec.get("overhead")))
    return total


@dataclass(frozen=True)
class HostPort:
    ip: str
    protocol: str
    port: int

    def conflicts(self, other: HostPort) -> bool:
        """Same protocol and port, on the same address or where either is the wildcard."""
        if self.protocol != other.protocol or self.port != other.port:
            return False
        return self.ip == other.ip or _wildcard(self.ip) or _wildcard(other.ip)


def _wildcard(ip: str) -> bool:
    return ip in ("", "0.0.0.0", "::")


# -- pods and nodes -----------------------------------------------------------


class PodInfo:
    """A pod and the things plugins need from it, each computed once."""

    def __init__(self, pod: Obj) -> None:
        self.pod = pod

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"

    @cached_property
    def metadata(self) -> Obj:
        return self.pod.get("metadata") or {}

    @cached_property
    def spec(self) -> Obj:
        return self.pod.get("spec") or {}

    @cached_property
    def name(self) -> str:
        return self.metadata.get("name") or ""

    @cached_property
    def namespace(self) -> str:
        return self.metadata.get("namespace") or "default"

    @cached_property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @cached_property
    def uid(self) -> str:
        return self.metadata.get("uid") or self.key

    @cached_property
    def node_name(self) -> str:
        return self.spec.get("nodeName") or ""

    @cached_property
    def terminating(self) -> bool:
        return bool(self.metadata.get("deletionTimestamp"))

    @cached_property
    def requests(self) -> dict[str, int]:
        return pod_requests(self.spec)

    @cached_property
    def nonzero_request_items(self) -> tuple[tuple[str, int], ...]:
        """The positive requests other than `pods`: cpu, memory, then the rest by name."""
        return tuple(sorted(((n, v) for n, v in self.requests.items() if v > 0 and n != PODS),
                            key=lambda item: (item[0] != CPU, item[0] != MEMORY, item[0])))

    @cached_property
    def non_zero_requests(self) -> dict[str, int]:
        return pod_requests(self.spec, non_zero=True)

    @cached_property
    def host_ports(self) -> tuple[HostPort, ...]:
        ports = []
        for container in self.spec.get("containers") or []:
            for port in container.get("ports") or []:
                host_port = port.get("hostPort")
                if host_port:
                    ports.append(HostPort(port.get("hostIP") or "0.0.0.0",
                                          port.get("protocol") or "TCP", int(host_port)))
        return tuple(ports)

    @cached_property
    def tolerations(self) -> tuple[Obj, ...]:
        return tuple(t for t in self.spec.get("tolerations") or [] if isinstance(t, dict))

    @cached_property
    def controller_uid(self) -> str:
        """The uid of the ownerReference marked controller, or ""."""
        for ref in self.metadata.get("ownerReferences") or []:
            if ref.get("controller"):
                return ref.get("uid") or f"{ref.get('kind')}/{ref.get('name')}"
        return ""

    @cached_property
    def owner_key(self) -> tuple[str, str] | None:
        """(namespace, controller uid) of a live controlled pod: what spreading counts."""
        if not self.controller_uid or self.terminating:
            return None
        return (self.namespace, self.controller_uid)

    @cached_property
    def priority(self) -> int:
        return int(self.spec.get("priority") or 0)


class NodeInfo:
    """A node and the aggregate of the pods on it (assigned or assumed).

    `node` is None for a node the pods know but the cache does not (yet): such
    a NodeInfo only carries pods and is never offered to plugins.
    """

    def __init__(self, node: Obj | None = None, pods: Iterable[PodInfo] = ()) -> None:
        self.node: Obj | None = None
        self.name = ""
        self.allocatable: dict[str, int] = {}
        self.labels: Mapping[str, str] = {}
        self.spec: Obj = {}
        self.taints: list[Obj] = []
        self.conditions: list[Obj] = []
        self.pods: dict[str, PodInfo] = {}
        self.requested: dict[str, int] = {}
        self.non_zero_requested: dict[str, int] = {CPU: 0, MEMORY: 0}
        self.used_ports: Counter[HostPort] = Counter()
        #: Live pods per (namespace, controller uid), for spreading.
        self.owner_counts: Counter[tuple[str, str]] = Counter()
        if node is not None:
            self.set_node(node)
        for pod in pods:
            self.add_pod(pod)

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)})"

    def set_node(self, node: Obj) -> None:
        self.node = node
        self.name = (node.get("metadata") or {}).get("name") or ""
        status = node.get("status") or {}
        self.allocatable = parse_resource_list(status.get("allocatable") or status.get("capacity"))
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.spec = node.get("spec") or {}
        self.taints = [t for t in self.spec.get("taints") or [] if isinstance(t, dict)]
        self.conditions = status.get("conditions") or []

    def add_pod(self, pod: PodInfo) -> None:
        if pod.uid in self.pods:
            self.remove_pod(pod.uid)
        self.pods[pod.uid] = pod
        _add(self.requested, pod.requests)
        self.non_zero_requested[CPU] += pod.non_zero_requests.get(CPU, 0)
        self.non_zero_requested[MEMORY] += pod.non_zero_requests.get(MEMORY, 0)
        self.used_ports.update(pod.host_ports)
        if pod.owner_key is not None:
            self.owner_counts[pod.owner_key] += 1

    def remove_pod(self, uid: str) -> PodInfo | None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return None
        for name, value in pod.requests.items():
            self.requested[name] = self.requested.get(name, 0) - value
        self.non_zero_requested[CPU] -= pod.non_zero_requests.get(CPU, 0)
        self.non_zero_requested[MEMORY] -= pod.non_zero_requests.get(MEMORY, 0)
        self.used_ports.subtract(pod.host_ports)
        self.used_ports += Counter()  # drops the ports nobody uses any more
        if pod.owner_key is not None:
            self.owner_counts[pod.owner_key] -= 1
            if self.owner_counts[pod.owner_key] <= 0:
                del self.owner_counts[pod.owner_key]
        return pod


# -- plugin interfaces --------------------------------------------------------


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int: ...


def normalize_reverse(scores: dict[str, int]) -> dict[str, int]:
    """Maps raw scores so that the lowest raw score gets 100 and the highest 0...

    ...proportionally to the highest (Kubernetes' DefaultNormalizeScore with
    reverse=true): raw 0 is always 100; all-zero means all 100.
    """
    top = max(scores.values(), default=0)
    if top <= 0:
        return {name: MAX_NODE_SCORE for name in scores}
    return {name: MAX_NODE_SCORE - MAX_NODE_SCORE * raw // top for name, raw in scores.items()}


def normalize(scores: dict[str, int]) -> dict[str, int]:
    """Scales raw scores so that the highest becomes 100 (DefaultNormalizeScore)."""
    top = max(scores.values(), default=0)
    if top <= 0:
        return {name: 0 for name in scores}
    return {name: MAX_NODE_SCORE * raw // top for name, raw in scores.items()}


# -- the failure message -------------------------------------------------------


class SchedulingError(Exception):
    """A plugin failed (a bug or bad data): the attempt is an error, retried with backoff."""


class FitError(Exception):
    """No node fits the pod; str() is Kubernetes' "0/N nodes are available: ..." message."""

    def __init__(self, pod: PodInfo, num_nodes: int, statuses: Mapping[str, Status]) -> None:
        self.pod = pod
        self.num_nodes = num_nodes
        self.statuses = dict(statuses)
        super().__init__(fit_error_message(num_nodes, statuses.values()))


def fit_error_message(num_nodes: int, statuses: Iterable[Status]) -> str:
    """`0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {a: b}.`

    Each node counts once for each reason it failed with; the reasons are
    sorted alphabetically, as in Kubernetes' FitError.
    """
    if num_nodes == 0:
        return NO_NODES_AVAILABLE
    histogram: Counter[str] = Counter()
    for status in statuses:
        histogram.update(set(status.reasons))
    parts = [f"{histogram[reason]} {reason}" for reason in sorted(histogram)]
    return f"0/{num_nodes} nodes are available: {', '.join(parts)}."


# -- the profile ---------------------------------------------------------------


@dataclass(frozen=True)
class WeightedScorer:
    plugin: ScorePlugin
    weight: int


@dataclass
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int
    scores: dict[str, int] = field(default_factory=dict)


class Framework:
    """One scheduling profile: an ordered list of filters and weighted scorers."""

    def __init__(self, filters: Sequence[FilterPlugin], scorers: Sequence[WeightedScorer], *,
                 rng: random.Random | None = None) -> None:
        self.filters = list(filters)
        self.scorers = [s for s in scorers if s.weight > 0]
        self.rng = rng or random.Random()

    def filters_for(self, pod: PodInfo) -> list[FilterPlugin]:
        """The filters that have something to say about this pod."""
        return [f for f in self.filters
                if getattr(f, "pre_filter", None) is None or f.pre_filter(pod)]  # type: ignore[attr-defined]

    def run_filters(self, pod: PodInfo, node_info: NodeInfo,
                    filters: Sequence[FilterPlugin] | None = None) -> Status:
        for plugin in self.filters if filters is None else filters:
            try:
                status = plugin.filter(pod, node_info)
            except Exception as exc:  # a plugin bug must not kill the scheduler
                log.exception("filter plugin failed", extra={"kv": {"plugin": plugin.name}})
                return Status(Code.ERROR, (f"{plugin.name}: {exc}",), plugin.name)
            if not status.is_success:
                return status if status.plugin else Status(status.code, status.reasons,
                                                           plugin.name)
        return Status.success()

    def find_feasible(self, pod: PodInfo, nodes: Sequence[NodeInfo]
                      ) -> tuple[list[NodeInfo], dict[str, Status]]:
        feasible: list[NodeInfo] = []
        failed: dict[str, Status] = {}
        filters = self.filters_for(pod)
        for node_info in nodes:
            status = self.run_filters(pod, node_info, filters)
            if status.is_success:
                feasible.append(node_info)
            else:
                failed[node_info.name] = status
        return feasible, failed

    def score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[str, int]:
        """The weighted sum of every scorer's (normalized) score, per node name."""
        totals = {node_info.name: 0 for node_info in nodes}
        for scorer in self.scorers:
            plugin = scorer.plugin
            pre_score = getattr(plugin, "pre_score", None)
            if pre_score is not None and not pre_score(pod, nodes):
                continue  # the same for every node: it cannot change the ranking
            raw = {node_info.name: plugin.score(pod, node_info) for node_info in nodes}
            normalizer = getattr(plugin, "normalize", None)
            if normalizer is not None:
                raw = normalizer(pod, raw)
            for name, value in raw.items():
                totals[name] += scorer.weight * max(MIN_NODE_SCORE, min(MAX_NODE_SCORE, value))
        return totals

    def select_host(self, scores: Mapping[str, int]) -> str:
        """The highest-scoring node; among equals, each is equally likely."""
        best = max(scores.values())
        return self.rng.choice(sorted(name for name, score in scores.items() if score == best))

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        """Filters, scores and selects; raises FitError when no node fits."""
        feasible, failed = self.find_feasible(pod, nodes)
        errors = [s for s in failed.values() if s.code is Code.ERROR]
        if errors:
            raise SchedulingError("; ".join(errors[0].reasons))
        if not feasible:
            raise FitError(pod, len(nodes), failed)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, len(nodes), 1)
        scores = self.score(pod, feasible)
        return ScheduleResult(self.select_host(scores), len(nodes), len(feasible), scores)


__all__ = [
    "CPU",
    "Code",
    "FilterPlugin",
    "FitError",
    "Framework",
    "HostPort",
    "MAX_NODE_SCORE",
    "MEMORY",
    "NO_NODES_AVAILABLE",
    "NodeInfo",
    "PODS",
    "PodInfo",
    "ScheduleResult",
    "SchedulingError",
    "ScorePlugin",
    "Status",
    "WeightedScorer",
    "fit_error_message",
    "normalize",
    "normalize_reverse",
    "parse_resource_list",
    "pod_requests",
]
