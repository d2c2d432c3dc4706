"""DaemonSet (apps/v1): its strategy against a real apiserver, its table columns, and the
pure logic of its controller (node eligibility, daemon tolerations, rolling-update
arithmetic). The cluster-level behaviour is in tests/test_daemonset.py."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kubelite.cli import describe
from kubelite.client import Client
from kubelite.errors import InvalidError
from kubelite.printing import table_cell
from kubelite.resources import lookup
from kubelite.testing import eventually
from services.controller import daemonset as dsc
from services.controller import history
from services.controller.informers import InformerFactory

Obj = dict[str, Any]


def ds(name: str = "agent", **spec) -> dict:
    body = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": "agent:1"}]}}}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": body}


def causes(err: pytest.ExceptionInfo) -> dict[str, str]:
    return {c.field: c.message for c in err.value.causes}


# -- the strategy ------------------------------------------------------------------------


async def test_a_daemonset_gets_kubernetes_defaults(client: Client, namespace: str) -> None:
    created = await client.create("daemonsets", ds(), namespace=namespace)
    spec = created["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert created["metadata"]["generation"] == 1
    assert created["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                 "desiredNumberScheduled": 0, "numberReady": 0}
    on_delete = await client.create("daemonsets", ds("od", updateStrategy={"type": "OnDelete"}),
                                    namespace=namespace)
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert lookup("ds").kind == "DaemonSet" and lookup("daemonsets.apps").plural == "daemonsets"


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda d: d["spec"].pop("selector"), "spec.selector", "Required"),
    (lambda d: d["spec"].update(selector={}), "spec.selector", "empty selector"),
    (lambda d: d["spec"]["selector"].update(matchLabels={"app": "other"}),
     "spec.template.metadata.labels", "does not match"),
    (lambda d: d["spec"]["template"]["spec"].update(restartPolicy="OnFailure"),
     "spec.template.spec.restartPolicy", 'supported values: "Always"'),
    (lambda d: d["spec"]["template"]["spec"].update(activeDeadlineSeconds=5),
     "spec.template.spec.activeDeadlineSeconds", "not Supported"),
    (lambda d: d["spec"].update(updateStrategy={"type": "Recreate"}),
     "spec.updateStrategy.type", "Unsupported value"),
    (lambda d: d["spec"].update(updateStrategy={"rollingUpdate": {"maxUnavailable": 0}}),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    (lambda d: d["spec"].update(updateStrategy={"rollingUpdate": {"maxUnavailable": "lots"}}),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "percent"),
    (lambda d: d["spec"].update(updateStrategy={"rollingUpdate": {"maxSurge": "150%"}}),
     "spec.updateStrategy.rollingUpdate.maxSurge", "100%"),
    (lambda d: d["spec"].update(updateStrategy={"rollingUpdate": {"maxUnavailable": -1}}),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "greater than or equal to 0"),
    (lambda d: d["spec"].update(minReadySeconds=-1), "spec.minReadySeconds", "0"),
    (lambda d: d["spec"].update(revisionHistoryLimit=-2), "spec.revisionHistoryLimit", "0"),
], ids=["no-selector", "empty-selector", "selector-mismatch", "restart-policy",
        "active-deadline", "strategy-type", "both-zero", "not-a-percent", "surge-over-100",
        "negative", "min-ready", "history-limit"])
async def test_bad_daemonsets_are_refused_with_the_field_path(
        client: Client, namespace: str, change, field: str, words: str) -> None:
    bad = ds()
    change(bad)
    with pytest.raises(InvalidError) as err:
        await client.create("daemonsets", bad, namespace=namespace)
    found = causes(err)
    assert field in found, found
    assert words in found[field], found
    assert (await client.list("daemonsets", namespace=namespace)).items == []


async def test_selector_is_immutable_and_generation_follows_the_spec(
        client: Client, namespace: str) -> None:
    created = await client.create("daemonsets", ds(), namespace=namespace)
    moved = copy.deepcopy(created)
    moved["spec"]["selector"] = {"matchLabels": {"app": "agent", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(InvalidError) as err:
        await client.update("daemonsets", moved)
    assert "immutable" in causes(err)["spec.selector"]
    labelled = await client.patch("daemonsets", "agent", {"metadata": {"labels": {"a": "b"}}},
                                  namespace=namespace)
    assert labelled["metadata"]["generation"] == 1  # metadata is not the spec
    status = dict(labelled["status"], numberReady=2, desiredNumberScheduled=3,
                  observedGeneration=1)
    written = await client.update_status("daemonsets", {**labelled, "status": status})
    assert written["status"]["numberReady"] == 2 and written["metadata"]["generation"] == 1
    # An update through the main resource keeps the stored status.
    same = await client.update("daemonsets", {**written, "status": {}})
    assert same["status"]["numberReady"] == 2
    bumped = await client.patch("daemonsets", "agent", {"spec": {"template": {"spec": {
        "containers": [{"name": "main", "image": "agent:2"}]}}}}, namespace=namespace)
    assert bumped["metadata"]["generation"] == 2
    with pytest.raises(InvalidError) as err:
        await client.update_status("daemonsets", {**bumped, "status": dict(
            bumped["status"], numberReady=-1)})
    assert "status.numberReady" in causes(err)


# -- printing ------------------------------------------------------------------------------


def test_table_columns_are_kubectls() -> None:
    obj = ds(template={"metadata": {"labels": {"app": "agent"}}, "spec": {
        "nodeSelector": {"role": "edge", "disk": "ssd"},
        "containers": [{"name": "main", "image": "agent:1"},
                       {"name": "side", "image": "side:2"}]}})
    obj["status"] = {"desiredNumberScheduled": 3, "currentNumberScheduled": 2,
                     "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}
    cells = {h: table_cell("DaemonSet", h, obj) for h in (
        "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR",
        "CONTAINERS", "IMAGES", "SELECTOR")}
    assert cells == {"DESIRED": "3", "CURRENT": "2", "READY": "1", "UP-TO-DATE": "2",
                     "AVAILABLE": "1", "NODE SELECTOR": "disk=ssd,role=edge",
                     "CONTAINERS": "main,side", "IMAGES": "agent:1,side:2",
                     "SELECTOR": "app=agent"}
    assert table_cell("DaemonSet", "NODE SELECTOR", ds()) == "<none>"


async def test_the_template_generation_follows_template_changes(
        client: Client, namespace: str) -> None:
    key = "deprecated.daemonset.template.generation"
    created = await client.create("daemonsets", ds(), namespace=namespace)
    assert created["metadata"]["annotations"][key] == "1"
    # Changing anything but the template keeps it, whatever the client sends.
    kept = await client.patch("daemonsets", "agent", {"metadata": {"annotations": {key: "9"}},
                                                      "spec": {"minReadySeconds": 3}},
                              namespace=namespace)
    assert kept["metadata"]["annotations"][key] == "1"
    assert kept["metadata"]["generation"] == 2
    bumped = await client.patch("daemonsets", "agent", {"spec": {"template": {"metadata": {
        "annotations": {"v": "2"}}}}}, namespace=namespace)
    assert bumped["metadata"]["annotations"][key] == "2"
    assert bumped["metadata"]["generation"] == 3


def test_describe_shows_the_node_counts_and_strategy() -> None:
    obj = ds(template={"metadata": {"labels": {"app": "agent"}}, "spec": {
        "nodeSelector": {"role": "edge"}, "containers": [{"name": "main", "image": "agent:1"}]}},
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {
            "maxUnavailable": 1, "maxSurge": 0}})
    obj["metadata"]["namespace"] = "default"
    obj["status"] = {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                     "updatedNumberScheduled": 2, "numberAvailable": 3, "numberMisscheduled": 1}
    text = describe.describe(obj, lookup("ds"), [])
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
             for line in text.splitlines() if ":" in line}
    assert lines["Selector"] == "app=agent" and lines["Node-Selector"] == "role=edge"
    assert lines["Desired Number of Nodes Scheduled"] == "3"
    assert lines["Number of Nodes Scheduled with Up-to-date Pods"] == "2"
    assert lines["Number of Nodes Misscheduled"] == "1"
    assert lines["RollingUpdateStrategy"] == "1 max unavailable, 0 max surge"


# -- the controller's pure logic -------------------------------------------------------------

NOW = 1_000_000.0


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints} if taints else {}}


def rfc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, node_name: str, *, hash_: str = "new", ready_since: float | None = NOW - 60,
        phase: str = "Running", deleting: bool = False, created: float = NOW - 100) -> dict:
    meta = {"name": name, "uid": f"uid-{name}", "namespace": "default",
            "creationTimestamp": rfc(created),
            "labels": {"app": "agent", "controller-revision-hash": hash_}}
    if deleting:
        meta["deletionTimestamp"] = rfc(NOW)
    conditions = [] if ready_since is None else [
        {"type": "Ready", "status": "True", "lastTransitionTime": rfc(ready_since)}]
    return {"metadata": meta, "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": conditions}}


def rolling(max_unavailable=1, max_surge=0, min_ready=0, **template) -> dict:
    obj = ds(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": max_unavailable, "maxSurge": max_surge}}, minReadySeconds=min_ready)
    obj["spec"]["template"]["spec"].update(template)
    return obj


def test_daemon_pods_get_kubernetes_tolerations() -> None:
    added = dsc.daemon_tolerations([{"key": "x", "operator": "Exists"},
                                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 30}])
    assert {"key": "x", "operator": "Exists"} in added
    keys = {(t["key"], t["effect"]) for t in added if t.get("effect")}
    assert keys == {("node.kubernetes.io/not-ready", "NoExecute"),
                    ("node.kubernetes.io/unreachable", "NoExecute"),
                    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                    ("node.kubernetes.io/unschedulable", "NoSchedule")}
    # The user's not-ready toleration with seconds is replaced: daemon pods stay forever.
    assert all("tolerationSeconds" not in t for t in added)
    host = dsc.daemon_tolerations([], host_network=True)
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
            "effect": "NoSchedule"} in host and len(host) == 7


@pytest.mark.parametrize(("the_node", "template", "want"), [
    (node("a"), {}, (True, True)),
    (node("a", {"role": "edge"}), {"nodeSelector": {"role": "edge"}}, (True, True)),
    (node("a", {"role": "db"}), {"nodeSelector": {"role": "edge"}}, (False, False)),
    (node("a", {"zone": "z1"}), {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}]}}}},
     (False, False)),
    (node("a"), {"nodeName": "b"}, (False, False)),
    (node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]), {}, (False, True)),
    (node("a", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]), {}, (False, False)),
    (node("a", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}]),
     {"tolerations": [{"key": "k", "operator": "Equal", "value": "v"}]}, (True, True)),
    (node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), {}, (True, True)),
    # What daemon pods always tolerate: a cordon, pressure, a lost node.
    (node("a", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
     {}, (True, True)),
    (node("a", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
     {}, (False, True)),
    (node("a", taints=[{"key": "node.kubernetes.io/network-unavailable",
                        "effect": "NoSchedule"}]), {"hostNetwork": True}, (True, True)),
], ids=["plain", "selector", "selector-miss", "affinity-miss", "node-name", "no-schedule",
        "no-execute", "tolerated", "prefer", "daemon-tolerations", "not-ready", "host-network"])
def test_node_should_run(the_node: dict, template: dict, want: tuple[bool, bool]) -> None:
    obj = ds()
    obj["spec"]["template"]["spec"].update(template)
    assert dsc.node_should_run(the_node, obj) == want


def test_a_daemon_pod_targets_its_node_through_affinity() -> None:
    obj = ds()
    obj["metadata"].update(namespace="default", uid="u1", annotations={
        "deprecated.daemonset.template.generation": "4"})
    obj["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {
            "matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}}
    made = dsc.daemon_pod(obj, "node-7", "abc", dsc.template_generation(obj))
    affinity = made["spec"]["affinity"]["nodeAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]}]}
    assert len(affinity["preferredDuringSchedulingIgnoredDuringExecution"]) == 1
    assert "nodeName" not in made["spec"]
    assert made["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": "abc",
                                          "pod-template-generation": "4"}
    assert made["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert dsc.target_node_name(made) == "node-7"
    assert dsc.target_node_name({"spec": {"nodeName": "n1", **made["spec"]}}) == "n1"
    assert dsc.target_node_name({"spec": {}}) is None
    assert obj["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"]  # the DaemonSet's own template is untouched


@pytest.mark.parametrize(("surge", "unavailable", "desired", "want"), [
    (0, 1, 3, (0, 1)), (0, "10%", 3, (0, 1)), (0, "50%", 5, (0, 3)), ("20%", 0, 6, (2, 0)),
    (0, 0, 3, (0, 1)), (0, "0%", 0, (0, 0)), (1, "100%", 4, (1, 4)),
])
def test_surge_and_unavailable_round_percentages_up(surge, unavailable, desired,
                                                     want) -> None:
    assert dsc.surge_and_unavailable(rolling(unavailable, surge), desired) == want


def _plan(obj: dict, pods: list[dict], nodes: int, hash_: str = "new"):
    the_nodes = {f"n{i}": node(f"n{i}") for i in range(nodes)}
    return dsc.rolling_update_plan(obj, the_nodes, dsc.DaemonSetController._node_to_pods(pods),
                                   hash_, None, NOW)


def test_rolling_update_without_surge_deletes_up_to_max_unavailable() -> None:
    old = [pod(f"p{i}", f"n{i}", hash_="old") for i in range(5)]
    delete, create = _plan(rolling(2), old, 5)
    assert len(delete) == 2 and create == []
    # A new pod not yet available counts against the budget.
    fresh = pod("q0", "n0", ready_since=None)
    delete, _ = _plan(rolling(2), [fresh, *old[1:]], 5)
    assert [p["metadata"]["name"] for p in delete] == ["p1"]
    # Ready, but not for minReadySeconds yet: still unavailable.
    recent = pod("q0", "n0", ready_since=NOW - 1)
    assert len(_plan(rolling(1, min_ready=5), [recent, *old[1:]], 5)[0]) == 0
    assert len(_plan(rolling(1, min_ready=0), [recent, *old[1:]], 5)[0]) == 1
    # A node with no pod at all (the old one is being deleted) counts too.
    going = pod("p0", "n0", hash_="old", deleting=True)
    assert len(_plan(rolling(2), [going, *old[1:]], 5)[0]) == 1
    # Old pods that are not available anyway are replaced at once, beyond the budget.
    broken = [pod(f"b{i}", f"n{i}", hash_="old", ready_since=None) for i in range(3)]
    delete, _ = _plan(rolling(1), broken + old[3:], 5)
    assert sorted(p["metadata"]["name"] for p in delete) == ["b0", "b1", "b2"]
    # Done: nothing to do.
    assert _plan(rolling(1), [pod(f"p{i}", f"n{i}") for i in range(5)], 5) == ([], [])


def test_rolling_update_with_surge_creates_then_deletes() -> None:
    old = [pod(f"p{i}", f"n{i}", hash_="old") for i in range(4)]
    delete, create = _plan(rolling(0, 2), old, 4)
    assert delete == [] and create == ["n0", "n1"]
    # n0 surged and its new pod is available: the old one goes; n1's new pod is still
    # starting, so only one more node may surge.
    surged = [pod("q0", "n0"), pod("q1", "n1", ready_since=None)]
    delete, create = _plan(rolling(0, 2), old + surged, 4)
    assert [p["metadata"]["name"] for p in delete] == ["p0"] and create == ["n2"]
    # An old pod that is not available gets its replacement beyond maxSurge.
    sick = pod("p3", "n3", hash_="old", ready_since=None)
    _, create = _plan(rolling(0, 1), [*old[:3], sick], 4)
    assert create == ["n3", "n0"]


def test_pods_should_be_on_node_keeps_one_and_replaces_failed_ones() -> None:
    the_node = node("n0")
    never = dsc.pods_should_be_on_node(the_node, [], ds(), "new", None, NOW, lambda n: None)
    assert never.create and not never.delete
    older, newer = pod("a", "n0", created=NOW - 50), pod("b", "n0", created=NOW - 10)
    plan = dsc.pods_should_be_on_node(the_node, [newer, older], ds(), "new", None, NOW,
                                      lambda n: None)
    assert [p["metadata"]["name"] for p in plan.delete] == ["b"] and not plan.create
    failed = pod("f", "n0", phase="Failed")
    plan = dsc.pods_should_be_on_node(the_node, [failed], ds(), "new", None, NOW,
                                      lambda n: None)
    assert plan.delete == [failed] and plan.failed == [failed]
    plan = dsc.pods_should_be_on_node(the_node, [failed], ds(), "new", None, NOW,
                                      lambda n: 2.5)
    assert plan.delete == [] and plan.backoff == 2.5 and not plan.create
    done = pod("s", "n0", phase="Succeeded")
    assert dsc.pods_should_be_on_node(the_node, [done], ds(), "new", None, NOW,
                                      lambda n: None).delete == [done]
    tainted = node("n0", taints=[{"key": "k", "effect": "NoExecute"}])
    assert dsc.pods_should_be_on_node(tainted, [older], ds(), "new", None, NOW,
                                      lambda n: None).delete == [older]
    # With surge, an old and a new pod share the node until the new one is available.
    surge = rolling(0, 1)
    old, fresh = pod("o", "n0", hash_="old", created=NOW - 50), pod("n", "n0", ready_since=None)
    assert dsc.pods_should_be_on_node(the_node, [old, fresh], surge, "new", None, NOW,
                                      lambda n: None).delete == []
    fresh = pod("n", "n0")
    assert dsc.pods_should_be_on_node(the_node, [old, fresh], surge, "new", None, NOW,
                                      lambda n: None).delete == [old]


def test_status_counts_each_node_once() -> None:
    nodes = [node("n0"), node("n1"), node("n2"),
             node("n3", taints=[{"key": "k", "effect": "NoSchedule"}])]
    pods = {"n0": [pod("a", "n0")], "n1": [pod("b", "n1", hash_="old", ready_since=None)],
            "n3": [pod("c", "n3")]}
    status = dsc.calculate_status(ds(minReadySeconds=0), nodes, pods, "new", None, NOW)
    assert status == {"desiredNumberScheduled": 3, "currentNumberScheduled": 2,
                      "numberMisscheduled": 1, "numberReady": 1, "updatedNumberScheduled": 1,
                      "numberAvailable": 1, "numberUnavailable": 2}
    # The template generation label counts as up to date too.
    labelled = pod("d", "n1", hash_="other")
    labelled["metadata"]["labels"]["pod-template-generation"] = "3"
    assert dsc.is_updated(labelled, "new", 3) and not dsc.is_updated(labelled, "new", 2)


def test_failed_pod_backoff_doubles_to_the_cap_and_starts_over() -> None:
    clock = [0.0]
    backoff = dsc.FailedPodBackoff(1.0, 4.0, clock=lambda: clock[0])
    assert backoff.remaining("k") is None
    assert [backoff.next("k") for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert backoff.remaining("k") == 4.0
    clock[0] = 3.0
    assert backoff.remaining("k") == 1.0
    clock[0] = 4.5
    assert backoff.remaining("k") is None
    clock[0] = 20.0  # quiet for more than twice the cap
    assert backoff.next("k") == 1.0


def test_surge_moves_pods_off_nodes_only_while_enough_serve() -> None:
    """With maxSurge, an old pod on a node that should no longer run one goes only when
    the other nodes' available pods cover every node that should."""
    obj = rolling(0, 1)
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"role": "edge"}
    nodes = {"n0": node("n0", {"role": "edge"}), "n1": node("n1", {"role": "edge"}),
             "n2": node("n2")}
    leaving = pod("p2", "n2", hash_="old")
    both = {"n0": [pod("p0", "n0")], "n1": [pod("p1", "n1")], "n2": [leaving]}
    delete, create = dsc.rolling_update_plan(obj, nodes, both, "new", None, NOW)
    assert delete == [leaving] and create == []
    short = {"n0": [pod("p0", "n0")], "n1": [pod("p1", "n1", ready_since=None)],
             "n2": [leaving]}
    assert dsc.rolling_update_plan(obj, nodes, short, "new", None, NOW) == ([], [])


# -- the controller, synced by hand against a real apiserver ------------------------------------


class Harness:
    """A DaemonSetController on real informers (no scheduler, no kubelet), synced by hand."""

    def __init__(self, client: Client, ns: str) -> None:
        self.client, self.ns = client, ns
        self.factory = InformerFactory(client)
        self.controller = dsc.DaemonSetController(client, self.factory, backoff_base=30.0)

    async def settle(self) -> None:
        c = self.controller

        async def caught_up() -> bool:
            for resource, informer, namespace in (
                    ("pods", c.pod_informer, self.ns), ("daemonsets", c.ds_informer, self.ns),
                    ("controllerrevisions", c.history_informer, self.ns),
                    ("nodes", c.node_informer, None)):
                listed = (await self.client.list(resource, namespace=namespace)).items
                have = informer.list() if namespace is None else informer.by_index(
                    "namespace", self.ns)
                if ({(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in listed}
                        != {(o["metadata"]["name"], o["metadata"]["resourceVersion"])
                            for o in have}):
                    return False
            return True
        await eventually(caught_up, timeout=10, interval=0.02)

    async def sync(self, name: str) -> Obj:
        await self.settle()
        await self.controller.sync(f"{self.ns}/{name}")
        await self.settle()
        return await self.client.get("daemonsets", name, namespace=self.ns)

    async def pods(self) -> list[Obj]:
        return (await self.client.list("pods", namespace=self.ns)).items


@pytest.fixture
async def harness(client: Client, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(client, namespace)
    h.factory.start()
    await asyncio.gather(*(i.wait_synced() for i in h.controller.informers))
    yield h
    h.controller.shut_down()
    await h.factory.stop()
    await h.controller.recorder.stop()


async def test_controller_collisions_lost_nodes_and_failed_pods(harness: Harness,
                                                                namespace: str) -> None:
    client, tag = harness.client, uuid.uuid4().hex[:8]
    names = [f"h-{tag}-{i}" for i in range(2)]
    for name in names:
        await client.create("nodes", {"metadata": {"name": name, "labels": {"ds-h": tag}}})
    try:
        obj = ds("hx")
        obj["spec"]["template"]["spec"]["nodeSelector"] = {"ds-h": tag}
        created = await client.create("daemonsets", obj, namespace=namespace)
        # Someone else's revision already holds the name the template hashes to.
        data = history.revision_data(created["spec"]["template"])
        taken = history.revision_name("hx", history.hash_revision(data))
        await client.create("controllerrevisions", {
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": taken, "labels": {"other": "yes"}},
            "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1},
            namespace=namespace)
        synced = await harness.sync("hx")
        assert synced["status"]["collisionCount"] == 1
        revisions = [r for r in (await client.list("controllerrevisions",
                                                   namespace=namespace)).items
                     if r["metadata"]["name"] != taken]
        assert len(revisions) == 1 and revisions[0]["data"] == data
        hash_ = revisions[0]["metadata"]["labels"]["controller-revision-hash"]
        assert revisions[0]["metadata"]["name"] == f"hx-{hash_}"
        pods = await harness.pods()
        assert sorted(dsc.target_node_name(p) for p in pods) == names
        assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {hash_}
        synced = await harness.sync("hx")
        status = synced["status"]
        assert (status["desiredNumberScheduled"], status["currentNumberScheduled"],
                status["numberReady"], status["numberUnavailable"]) == (2, 2, 0, 2)
        assert status["observedGeneration"] == 1

        # A node that is deleted takes its pod with it.
        await client.delete("nodes", names[1])
        await harness.sync("hx")
        assert [dsc.target_node_name(p) for p in await harness.pods()] == [names[0]]

        # A failed pod is deleted and replaced; the next failure there waits out the backoff.
        first = (await harness.pods())[0]
        await client.update_status("pods", {**first, "status": {"phase": "Failed"}})
        await harness.sync("hx")
        assert await harness.pods() == []
        await harness.sync("hx")
        second = await harness.pods()
        assert len(second) == 1 and second[0]["metadata"]["uid"] != first["metadata"]["uid"]
        await client.update_status("pods", {**second[0], "status": {"phase": "Failed"}})
        synced = await harness.sync("hx")
        assert [p["metadata"]["uid"] for p in await harness.pods()] == [
            second[0]["metadata"]["uid"]]  # kept: 30 s of backoff left
        assert synced["status"]["currentNumberScheduled"] == 1
    finally:
        for name in names:
            try:
                await client.delete("nodes", name)
            except Exception:  # noqa: BLE001 - already gone
                pass
