"""kubectl's DaemonSet and StatefulSet rollout viewers and rollbacker, as pure logic
(the end-to-end rollout of either kind is in tests/test_daemonset.py and
tests/test_statefulset.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.cli.reporting import CliError
from kubelite.cli.revisionutil import (
    daemonset_status,
    history_table,
    owned_revisions,
    rollback_source,
    rolled_back,
    statefulset_status,
    template_of,
)

Obj = dict[str, Any]
OWNER_UID = "u-1"


def ds(generation: int = 2, **status: int) -> Obj:
    return {"kind": "DaemonSet", "metadata": {"name": "agent", "generation": generation},
            "spec": {}, "status": status}


def sts(replicas: int = 3, partition: int = 0, **status: Any) -> Obj:
    spec: Obj = {"replicas": replicas}
    if partition:
        spec["updateStrategy"] = {"type": "RollingUpdate",
                                  "rollingUpdate": {"partition": partition}}
    return {"kind": "StatefulSet", "metadata": {"name": "db", "generation": 2},
            "spec": spec, "status": {"observedGeneration": 2, **status}}


def revision(number: int, image: str, owner: str = OWNER_UID) -> Obj:
    return {"metadata": {"name": f"agent-{number}", "ownerReferences": [
        {"uid": owner, "controller": True, "kind": "DaemonSet", "name": "agent"}],
        "annotations": {"kubernetes.io/change-cause": f"image {image}"}},
        "revision": number,
        "data": {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": image}]}, "$patch": "replace"}}}}


def test_daemonset_status_follows_kubectl() -> None:
    assert daemonset_status(ds(observedGeneration=1)) == (
        "Waiting for daemon set spec update to be observed...", False)
    assert daemonset_status(ds(observedGeneration=2, desiredNumberScheduled=3,
                               updatedNumberScheduled=1)) == (
        'Waiting for daemon set "agent" rollout to finish: 1 out of 3 new pods have been '
        "updated...", False)
    assert daemonset_status(ds(observedGeneration=2, desiredNumberScheduled=3,
                               updatedNumberScheduled=3, numberAvailable=2)) == (
        'Waiting for daemon set "agent" rollout to finish: 2 of 3 updated pods are '
        "available...", False)
    assert daemonset_status(ds(observedGeneration=2, desiredNumberScheduled=3,
                               updatedNumberScheduled=3, numberAvailable=3)) == (
        'daemon set "agent" successfully rolled out', True)
    on_delete = ds(observedGeneration=2)
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    with pytest.raises(CliError, match="only available for RollingUpdate"):
        daemonset_status(on_delete)


def test_statefulset_status_follows_kubectl() -> None:
    assert statefulset_status(sts(readyReplicas=1)) == (
        "Waiting for 2 pods to be ready...", False)
    assert statefulset_status(sts(readyReplicas=3, updatedReplicas=1, currentReplicas=2,
                                  updateRevision="db-b", currentRevision="db-a")) == (
        "waiting for statefulset rolling update to complete 1 pods at revision db-b...",
        False)
    assert statefulset_status(sts(readyReplicas=3, updatedReplicas=3, currentReplicas=3,
                                  updateRevision="db-b", currentRevision="db-b")) == (
        "statefulset rolling update complete 3 pods at revision db-b...", True)
    assert statefulset_status(sts(partition=2, readyReplicas=3, updatedReplicas=0)) == (
        "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been "
        "updated...", False)
    assert statefulset_status(sts(partition=2, readyReplicas=3, updatedReplicas=1))[1]
    unobserved = sts(readyReplicas=3)
    unobserved["status"]["observedGeneration"] = 1
    assert statefulset_status(unobserved) == (
        "Waiting for statefulset spec update to be observed...", False)


def test_history_lists_the_owners_revisions_oldest_first() -> None:
    owner = {"metadata": {"uid": OWNER_UID}}
    revs = owned_revisions(owner, [revision(3, "c"), revision(1, "a"),
                                   revision(2, "x", owner="other")])
    assert [r["revision"] for r in revs] == [1, 3]
    table = history_table(revs).splitlines()
    assert table[0].split() == ["REVISION", "CHANGE-CAUSE"]
    assert table[1].split() == ["1", "image", "a"]
    assert history_table([]) == "No rollout history found."
    assert "$patch" not in template_of(revs[0])


def test_undo_goes_back_one_revision_or_to_the_named_one() -> None:
    revs = [revision(1, "a"), revision(2, "b"), revision(3, "c")]
    assert rollback_source(revs, 0, "daemonset/agent")["revision"] == 2
    assert rollback_source(revs, 1, "daemonset/agent")["revision"] == 1
    with pytest.raises(CliError, match="unable to find specified revision 7"):
        rollback_source(revs, 7, "daemonset/agent")
    with pytest.raises(CliError, match="no last revision to roll back to"):
        rollback_source(revs[:1], 0, "daemonset/agent")
    live = {"spec": {"template": template_of(revs[2])}}
    back = rolled_back(live, revs[0])
    assert back is not None and back["spec"]["template"]["spec"]["containers"][0]["image"] == "a"
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "c"  # not mutated
    assert rolled_back(live, revs[2]) is None  # already there: kubectl's "skipped rollback"
