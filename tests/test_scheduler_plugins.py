"""Unit tests of the scheduler's filter and score plugins, and of the framework that runs them."""

from __future__ import annotations

import random
from typing import Any

import pytest

from services.scheduler.framework import (
    Code,
    FitError,
    Framework,
    NodeInfo,
    PodInfo,
    SchedulingError,
    Status,
    WeightedScorer,
    fit_error_message,
    pod_requests,
)
from services.scheduler.plugins import (
    DEFAULT_SCORE_WEIGHTS,
    BalancedAllocation,
    LeastAllocated,
    NodeAffinity,
    NodePorts,
    NodeReady,
    NodeResourcesFit,
    NodeSelector,
    NodeUnschedulable,
    SelectorSpread,
    TaintToleration,
    new_framework,
)
from services.scheduler.plugins.taint_toleration import tolerates
from tests.helpers import node

MI = 1024 * 1024


def pod(name: str = "p", *, cpu: str | None = None, memory: str | None = None,
        containers: int = 1, node_selector: dict[str, str] | None = None,
        affinity: dict[str, Any] | None = None, tolerations: list[dict[str, Any]] | None = None,
        host_ports: list[int] | None = None, owner: str | None = None,
        namespace: str = "ns", extra_requests: dict[str, str] | None = None) -> PodInfo:
    requests: dict[str, str] = dict(extra_requests or {})
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    container: dict[str, Any] = {"name": "main", "image": "busybox",
                                 "resources": {"requests": requests} if requests else {}}
    if host_ports:
        container["ports"] = [{"containerPort": p, "hostPort": p, "protocol": "TCP"}
                              for p in host_ports]
    spec: dict[str, Any] = {"containers": [
        {**container, "name": f"c{i}"} for i in range(containers)]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = {"nodeAffinity": affinity}
    if tolerations:
        spec["tolerations"] = tolerations
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                    "uid": f"rs-{owner}", "controller": True}]
    return PodInfo({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})


def info(name: str = "n1", *pods: PodInfo, **kwargs: Any) -> NodeInfo:
    return NodeInfo(node(name, **kwargs), pods)


# -- quantities and requests ----------------------------------------------------


def test_pod_requests_sum_containers_in_kubernetes_units():
    """500m cpu and 128Mi memory per container add up, as Kubernetes parses them."""
    p = pod(cpu="500m", memory="128Mi", containers=2)
    assert p.requests == {"cpu": 1000, "memory": 256 * MI}


def test_pod_requests_take_the_max_of_init_containers():
    """An init container runs alone, so it only raises the request when it is the largest."""
    spec = {"containers": [{"name": "a", "resources": {"requests": {"cpu": "200m"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "300m"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1",
                                                                        "memory": "1Gi"}}}]}
    assert pod_requests(spec) == {"cpu": 1000, "memory": 1024 * MI}


def test_non_zero_requests_default_for_best_effort_containers():
    """Containers without requests count 100m and 200Mi when spreading."""
    assert pod().non_zero_requests == {"cpu": 100, "memory": 200 * MI}
    assert pod().requests == {}


# -- NodeUnschedulable ----------------------------------------------------------------


def test_node_unschedulable_rejects_cordoned_nodes():
    """A cordoned node takes no pod that does not tolerate the unschedulable taint."""
    status = NodeUnschedulable().filter(pod(), info(unschedulable=True))
    assert status.code is Code.UNSCHEDULABLE
    assert status.reasons == ("node(s) were unschedulable",)
    assert NodeUnschedulable().filter(pod(), info()).is_success


def test_node_unschedulable_admits_pods_tolerating_the_taint():
    """A pod tolerating node.kubernetes.io/unschedulable (like a DaemonSet pod) still fits."""
    tolerating = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                   "operator": "Exists", "effect": "NoSchedule"}])
    assert NodeUnschedulable().filter(tolerating, info(unschedulable=True)).is_success


# -- NodeReady -----------------------------------------------------------------------------


@pytest.mark.parametrize("ready", ["False", "Unknown", None])
def test_node_ready_rejects_nodes_that_are_not_ready(ready):
    """Only Ready=True passes; False, Unknown and a missing condition do not."""
    status = NodeReady().filter(pod(), info(ready=ready))
    assert status.reasons == ("node(s) were not ready",)


def test_node_ready_admits_ready_nodes_and_tolerating_pods():
    """A Ready node passes; a pod tolerating the not-ready taint may use a NotReady node."""
    assert NodeReady().filter(pod(), info(ready="True")).is_success
    tolerating = pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert NodeReady().filter(tolerating, info(ready="False")).is_success
    assert not NodeReady().filter(tolerating, info(ready="Unknown")).is_success


# -- NodeResourcesFit ------------------------------------------------------------------------


def test_resources_fit_when_requests_fit_in_what_is_left():
    """A pod fits while its requests are at most allocatable minus what others requested."""
    n = info("n1", pod("a", cpu="1500m", memory="1Gi"), cpu="2", memory="2Gi")
    assert NodeResourcesFit().filter(pod(cpu="500m", memory="1Gi"), n).is_success


def test_resources_fit_reports_insufficient_cpu_and_memory():
    """Each resource that does not fit is its own reason, cpu before memory."""
    n = info("n1", pod("a", cpu="1500m", memory="1Gi"), cpu="2", memory="2Gi")
    status = NodeResourcesFit().filter(pod(cpu="501m", memory="1025Mi"), n)
    assert status.reasons == ("Insufficient cpu", "Insufficient memory")


def test_resources_fit_counts_pods():
    """A full node (allocatable pods) rejects with Too many pods, even a pod with no requests."""
    n = info("n1", pod("a"), pod("b"), pods="2")
    assert NodeResourcesFit().filter(pod("c"), n).reasons == ("Too many pods",)


def test_resources_fit_checks_extended_resources():
    """Any other requested resource must be allocatable too."""
    status = NodeResourcesFit().filter(pod(extra_requests={"example.com/gpu": "1"}), info())
    assert status.reasons == ("Insufficient example.com/gpu",)


def test_resources_fit_frees_capacity_when_a_pod_leaves():
    """Removing a pod from a NodeInfo gives its requests back."""
    n = info("n1", pod("a", cpu="2"), cpu="2")
    assert not NodeResourcesFit().filter(pod("b", cpu="1"), n).is_success
    n.remove_pod("uid-a")
    assert NodeResourcesFit().filter(pod("b", cpu="1"), n).is_success


# -- NodeSelector and NodeAffinity ----------------------------------------------------------------


def test_node_selector_requires_every_label():
    """spec.nodeSelector matches only nodes carrying all of its labels with those values."""
    n = info(labels={"disk": "ssd", "zone": "a"})
    assert NodeSelector().filter(pod(node_selector={"disk": "ssd"}), n).is_success
    status = NodeSelector().filter(pod(node_selector={"disk": "ssd", "zone": "b"}), n)
    assert status.reasons == ("node(s) didn't match Pod's node affinity/selector",)


def required(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(t)} for t in terms]}}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    e: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        e["values"] = list(values)
    return e


@pytest.mark.parametrize(("expression", "fits"), [
    (expr("zone", "In", "a", "b"), True),
    (expr("zone", "In", "c"), False),
    (expr("zone", "NotIn", "c"), True),
    (expr("zone", "NotIn", "a"), False),
    (expr("missing", "NotIn", "a"), True),
    (expr("zone", "Exists"), True),
    (expr("missing", "Exists"), False),
    (expr("missing", "DoesNotExist"), True),
    (expr("zone", "DoesNotExist"), False),
    (expr("cores", "Gt", "4"), True),
    (expr("cores", "Gt", "8"), False),
    (expr("cores", "Lt", "9"), True),
    (expr("cores", "Lt", "8"), False),
    (expr("zone", "Gt", "1"), False),  # not an integer
    (expr("missing", "Lt", "1"), False),
])
def test_node_affinity_operators(expression, fits):
    """Each matchExpressions operator behaves as in Kubernetes."""
    n = info(labels={"zone": "a", "cores": "8"})
    assert NodeAffinity().filter(pod(affinity=required([expression])), n).is_success is fits


def test_node_affinity_ands_expressions_and_ors_terms():
    """Expressions in one term must all hold; any one term is enough."""
    n = info(labels={"zone": "a", "disk": "hdd"})
    both = [expr("zone", "In", "a"), expr("disk", "In", "ssd")]
    assert not NodeAffinity().filter(pod(affinity=required(both)), n).is_success
    either = required([expr("disk", "In", "ssd")], [expr("zone", "In", "a")])
    assert NodeAffinity().filter(pod(affinity=either), n).is_success


def test_node_affinity_empty_term_matches_nothing():
    """A term without requirements matches no node, as in Kubernetes."""
    assert not NodeAffinity().filter(pod(affinity=required([])), info()).is_success


def test_node_affinity_match_fields_on_node_name():
    """matchFields selects by metadata.name."""
    affinity = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}
    assert NodeAffinity().filter(pod(affinity=affinity), info("n2")).is_success
    assert not NodeAffinity().filter(pod(affinity=affinity), info("n1")).is_success


def test_node_affinity_scores_preferred_terms_by_weight():
    """Preferred terms add their weights; the best node normalizes to 100."""
    affinity = {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [expr("zone", "In", "a")]}},
        {"weight": 30, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}},
    ]}
    plugin, p = NodeAffinity(), pod(affinity=affinity)
    raw = {name: plugin.score(p, info(name, labels=labels)) for name, labels in
           [("a", {"zone": "a"}), ("b", {"disk": "ssd"}), ("c", {"zone": "a", "disk": "ssd"}),
            ("d", {})]}
    assert raw == {"a": 10, "b": 30, "c": 40, "d": 0}
    assert plugin.normalize(p, raw) == {"a": 25, "b": 75, "c": 100, "d": 0}


# -- TaintToleration ----------------------------------------------------------------------


@pytest.mark.parametrize(("toleration", "ok"), [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, True),  # Equal is the default operator; any effect
    ({"key": "k", "operator": "Equal", "value": "w"}, False),
    ({"key": "k", "operator": "Exists"}, True),
    ({"key": "other", "operator": "Exists"}, False),
    ({"operator": "Exists"}, True),  # empty key with Exists tolerates everything
    ({"operator": "Exists", "effect": "NoExecute"}, False),  # ... with that effect only
    ({"key": "k", "operator": "Exists", "effect": "PreferNoSchedule"}, False),
])
def test_toleration_matching(toleration, ok):
    """Toleration.ToleratesTaint semantics: effect, key, Equal/Exists."""
    assert tolerates(toleration, {"key": "k", "value": "v", "effect": "NoSchedule"}) is ok


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_taint_toleration_rejects_untolerated_hard_taints(effect):
    """An untolerated NoSchedule or NoExecute taint is named in the reason."""
    n = info(taints=[{"key": "dedicated", "value": "gpu", "effect": effect}])
    status = TaintToleration().filter(pod(), n)
    assert status.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)
    tolerating = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                   "effect": effect}])
    assert TaintToleration().filter(tolerating, n).is_success


def test_taint_toleration_ignores_prefer_no_schedule_in_filter_but_scores_it():
    """PreferNoSchedule never filters; the node without it scores higher."""
    plugin, p = TaintToleration(), pod()
    soft = info("soft", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}])
    assert plugin.filter(p, soft).is_success
    raw = {"soft": plugin.score(p, soft), "clean": plugin.score(p, info("clean"))}
    assert plugin.normalize(p, raw) == {"soft": 0, "clean": 100}


# -- NodePorts ------------------------------------------------------------------------------


def test_node_ports_conflict_with_pods_on_the_node():
    """A hostPort already used on the node (same protocol) is a conflict."""
    n = info("n1", pod("web", host_ports=[8080]))
    status = NodePorts().filter(pod("other", host_ports=[8080]), n)
    assert status.reasons == ("node(s) didn't have free ports for the requested pod ports",)
    assert NodePorts().filter(pod("other", host_ports=[8081]), n).is_success
    assert NodePorts().filter(pod("other", host_ports=[8080]), info("n2")).is_success


def test_node_ports_distinguish_protocols_and_addresses():
    """UDP and TCP on one port coexist; two specific, different host IPs coexist."""
    n = info("n1", pod("web", host_ports=[53]))
    udp = pod("dns", host_ports=[53])
    udp.pod["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert NodePorts().filter(udp, n).is_success
    a, b = pod("a", host_ports=[80]), pod("b", host_ports=[80])
    a.pod["spec"]["containers"][0]["ports"][0]["hostIP"] = "127.0.0.2"
    b.pod["spec"]["containers"][0]["ports"][0]["hostIP"] = "127.0.0.3"
    assert NodePorts().filter(b, info("n1", a)).is_success
    assert not NodePorts().filter(pod("c", host_ports=[80]), info("n1", a)).is_success


def test_node_ports_are_freed_when_the_pod_leaves():
    """A pod leaving the node releases its host ports."""
    n = info("n1", pod("web", host_ports=[8080]))
    n.remove_pod("uid-web")
    assert NodePorts().filter(pod("other", host_ports=[8080]), n).is_success


# -- scores -----------------------------------------------------------------------------------


def test_least_allocated_prefers_emptier_nodes():
    """Score is the mean of (free after this pod) / allocatable over cpu and memory."""
    plugin, p = LeastAllocated(), pod(cpu="1", memory="1Gi")
    empty = info("empty", cpu="4", memory="4Gi")
    busy = info("busy", pod("x", cpu="2", memory="2Gi"), cpu="4", memory="4Gi")
    assert plugin.score(p, empty) == 75  # (3/4 + 3/4) / 2
    assert plugin.score(p, busy) == 25  # (1/4 + 1/4) / 2


def test_least_allocated_counts_best_effort_pods_at_default_requests():
    """Pods with no requests still make a node look fuller (100m, 200Mi each)."""
    plugin = LeastAllocated()
    empty = info("empty", cpu="2", memory="2Gi")
    one = info("one", pod("x"), cpu="2", memory="2Gi")
    assert plugin.score(pod(), empty) > plugin.score(pod(), one)


def test_least_allocated_is_zero_when_overcommitted_or_unknown():
    """Requests beyond allocatable, or no allocatable at all, score 0."""
    assert LeastAllocated().score(pod(cpu="8", memory="16Gi"), info(cpu="4", memory="8Gi")) == 0
    assert LeastAllocated().score(pod(), NodeInfo({"metadata": {"name": "bare"}})) == 0


def test_balanced_allocation_prefers_even_use():
    """A node ending at 50%/50% beats one ending at 75%/25%."""
    plugin, p = BalancedAllocation(), pod(cpu="1", memory="1Gi")
    even = info("even", pod("x", cpu="1", memory="1Gi"), cpu="4", memory="4Gi")
    skewed = info("skewed", pod("x", cpu="2"), cpu="4", memory="4Gi")
    assert plugin.score(p, even) == 100
    assert plugin.score(p, skewed) == 75  # fractions 0.75 and 0.25: std 0.25


def test_selector_spread_prefers_nodes_with_fewer_pods_of_the_same_owner():
    """Raw score counts same-controller pods; normalize maps fewest to 100, most to 0."""
    plugin, p = SelectorSpread(), pod("new", owner="web")
    nodes = {
        "a": info("a", pod("w1", owner="web"), pod("w2", owner="web")),
        "b": info("b", pod("w3", owner="web"), pod("o1", owner="other")),
        "c": info("c", pod("o2", owner="other")),
    }
    raw = {name: plugin.score(p, n) for name, n in nodes.items()}
    assert raw == {"a": 2, "b": 1, "c": 0}
    assert plugin.normalize(p, raw) == {"a": 0, "b": 50, "c": 100}


def test_selector_spread_ignores_other_namespaces_and_ownerless_pods():
    """Same owner uid in another namespace does not count; no owner means no preference."""
    plugin = SelectorSpread()
    n = info("a", pod("w1", owner="web", namespace="elsewhere"))
    assert plugin.score(pod("new", owner="web"), n) == 0
    assert plugin.normalize(pod(), {"a": 0, "b": 0}) == {"a": 100, "b": 100}


# -- the framework --------------------------------------------------------------------------


def test_fit_error_message_counts_reasons_sorted():
    """Kubernetes' message: counts per reason, reasons sorted, each node once per reason."""
    statuses = [Status.unschedulable("Insufficient cpu"),
                Status.unschedulable("Insufficient cpu", "Insufficient memory"),
                Status.unschedulable("node(s) had untolerated taint {key: value}")]
    assert fit_error_message(3, statuses) == (
        "0/3 nodes are available: 2 Insufficient cpu, 1 Insufficient memory, "
        "1 node(s) had untolerated taint {key: value}.")
    assert fit_error_message(0, []) == "no nodes available to schedule pods"


def test_framework_stops_at_the_first_failing_filter():
    """A tainted node that also lacks cpu reports only the taint, as in Kubernetes."""
    fw = new_framework()
    nodes = [info("a", cpu="1"), info("b", cpu="1"),
             info("c", cpu="1", taints=[{"key": "key", "value": "value",
                                         "effect": "NoSchedule"}])]
    with pytest.raises(FitError) as err:
        fw.schedule(pod(cpu="2"), nodes)
    assert str(err.value) == ("0/3 nodes are available: 2 Insufficient cpu, "
                              "1 node(s) had untolerated taint {key: value}.")
    assert err.value.statuses["c"].plugin == "TaintToleration"


def test_framework_picks_the_best_node_and_breaks_ties_at_random():
    """The highest weighted score wins; equal nodes are each chosen sometimes."""
    fw = new_framework(rng=random.Random(1))
    busy = info("busy", pod("x", cpu="3"), cpu="4")
    assert fw.schedule(pod(cpu="500m"), [busy, info("idle", cpu="4")]).node == "idle"
    chosen = {fw.schedule(pod(), [info("a"), info("b"), info("c")]).node for _ in range(60)}
    assert chosen == {"a", "b", "c"}


def test_framework_weights_scores():
    """A plugin's weight multiplies its 0..100 score; weight 0 disables it."""
    class Fixed:
        def __init__(self, name: str, scores: dict[str, int]) -> None:
            self.name, self.scores = name, scores

        def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
            return self.scores[node_info.name]

    first, second = Fixed("First", {"a": 100, "b": 0}), Fixed("Second", {"a": 0, "b": 60})
    nodes = [info("a"), info("b")]
    fw = Framework([], [WeightedScorer(first, 1), WeightedScorer(second, 2)])
    assert fw.score(pod(), nodes) == {"a": 100, "b": 120}
    assert fw.schedule(pod(), nodes).node == "b"
    fw = Framework([], [WeightedScorer(first, 1), WeightedScorer(second, 0)])
    assert fw.schedule(pod(), nodes).node == "a"


def test_framework_turns_plugin_exceptions_into_errors():
    """A crashing plugin makes the attempt an error (retried), not a crash."""
    class Broken:
        name = "Broken"

        def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
            raise RuntimeError("boom")

    with pytest.raises(SchedulingError, match="boom"):
        Framework([Broken()], []).schedule(pod(), [info()])


def test_new_framework_rejects_unknown_score_plugins():
    """Weights must name known score plugins; the defaults are all enabled."""
    with pytest.raises(ValueError, match="Nope"):
        new_framework({"Nope": 1})
    assert set(DEFAULT_SCORE_WEIGHTS) <= {s.plugin.name for s in new_framework().scorers}


def test_default_framework_respects_selector_and_taints_together():
    """Only the node matching the selector whose taint the pod tolerates is feasible."""
    fw = new_framework()
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    nodes = [info("plain", labels={"disk": "ssd"}),
             info("tainted", labels={"disk": "ssd"}, taints=[taint]),
             info("hdd", labels={"disk": "hdd"})]
    p = pod(node_selector={"disk": "ssd"},
            tolerations=[{"key": "dedicated", "operator": "Exists"}])
    feasible, failed = fw.find_feasible(p, nodes)
    assert sorted(n.name for n in feasible) == ["plain", "tainted"]
    assert failed["hdd"].plugin == "NodeSelector"


def test_score_weights_flag_overrides_defaults_and_rejects_nonsense():
    """--score-weights names plugins and weights; unknown names and bad weights are errors."""
    from services.scheduler.__main__ import parse_args

    config = parse_args(["--score-weights", "LeastAllocated=3,SelectorSpread=0"])
    assert dict(config.score_weights) == {"LeastAllocated": 3, "SelectorSpread": 0}
    weights = {s.plugin.name: s.weight for s in new_framework(dict(config.score_weights)).scorers}
    assert weights["LeastAllocated"] == 3 and "SelectorSpread" not in weights
    for bad in ("Nope=1", "LeastAllocated=-1", "LeastAllocated"):
        with pytest.raises(SystemExit):
            parse_args(["--score-weights", bad])
