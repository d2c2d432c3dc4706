"""DaemonSet (apps/v1): its strategy against a real apiserver, its table columns, and the
pure logic of its controller (node eligibility, daemon tolerations, rolling-update
arithmetic). The cluster-level behaviour is in tests/test_daemonset.py."""

from __future__ import annotations

import copy

import pytest

from kubelite.client import Client
from kubelite.errors import InvalidError
from kubelite.printing import table_cell
from kubelite.resources import lookup


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
