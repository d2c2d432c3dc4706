"""`kubelite rollout` for DaemonSets and StatefulSets: their ControllerRevisions.

A DaemonSet or a StatefulSet keeps each pod template it has run as a
ControllerRevision it controls, whose `data` is the patch
`{"spec": {"template": {..., "$patch": "replace"}}}` and whose `revision`
number grows (services/controller/history.py writes them). kubectl's
history viewer lists them, its rollbacker applies one's patch back onto the
owner, and its status viewers read the owner's status; the messages below
are kubectl's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from kubelite.cli.deployutil import CHANGE_CAUSE_ANNOTATION, describe_template, owned_by
from kubelite.cli.printers import render_table
from kubelite.cli.reporting import CliError

Obj = dict[str, Any]

HISTORY_KINDS = ("DaemonSet", "StatefulSet")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _strategy_type(obj: Obj) -> str:
    return (_spec(obj).get("updateStrategy") or {}).get("type") or "RollingUpdate"


# --- status ---------------------------------------------------------------------------

def daemonset_status(ds: Obj) -> tuple[str, bool]:
    """kubectl's DaemonSetStatusViewer: (message, done)."""
    if _strategy_type(ds) != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    name = (ds.get("metadata") or {}).get("name", "")
    status = _status(ds)
    generation = _int((ds.get("metadata") or {}).get("generation"))
    if generation > _int(status.get("observedGeneration")):
        return "Waiting for daemon set spec update to be observed...", False
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    if updated < desired:
        return (f'Waiting for daemon set "{name}" rollout to finish: {updated} out of '
                f"{desired} new pods have been updated...", False)
    available = _int(status.get("numberAvailable"))
    if available < desired:
        return (f'Waiting for daemon set "{name}" rollout to finish: {available} of '
                f"{desired} updated pods are available...", False)
    return f'daemon set "{name}" successfully rolled out', True


def statefulset_status(sts: Obj) -> tuple[str, bool]:
    """kubectl's StatefulSetStatusViewer: (message, done)."""
    if _strategy_type(sts) != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    status = _status(sts)
    observed = _int(status.get("observedGeneration"))
    if observed == 0 or _int((sts.get("metadata") or {}).get("generation")) > observed:
        return "Waiting for statefulset spec update to be observed...", False
    replicas = _spec(sts).get("replicas")
    replicas = replicas if isinstance(replicas, int) else 1
    ready = _int(status.get("readyReplicas"))
    if ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    updated = _int(status.get("updatedReplicas"))
    rolling = (_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}
    partition = _int(rolling.get("partition"))
    if partition > 0:
        wanted = replicas - partition
        if updated < wanted:
            return (f"Waiting for partitioned roll out to finish: {updated} out of {wanted} "
                    f"new pods have been updated...", False)
        return f"partitioned roll out complete: {updated} new pods have been updated...", True
    update_revision = status.get("updateRevision") or ""
    current_revision = status.get("currentRevision") or ""
    if update_revision != current_revision:
        return (f"waiting for statefulset rolling update to complete {updated} pods at "
                f"revision {update_revision}...", False)
    return (f"statefulset rolling update complete {_int(status.get('currentReplicas'))} pods "
            f"at revision {current_revision}...", True)


def rollout_status(obj: Obj) -> tuple[str, bool]:
    if obj.get("kind") == "DaemonSet":
        return daemonset_status(obj)
    return statefulset_status(obj)


# --- history ---------------------------------------------------------------------------

def template_of(revision: Obj) -> Obj:
    """The pod template a revision's data holds (without the `$patch` directive)."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return copy.deepcopy(template)


def owned_revisions(owner: Obj, revisions: Iterable[Obj]) -> list[Obj]:
    """The owner's revisions, oldest first."""
    return sorted((r for r in revisions if owned_by(r, owner)),
                  key=lambda r: (_int(r.get("revision")),
                                 (r.get("metadata") or {}).get("creationTimestamp") or ""))


def history_table(revisions: Sequence[Obj]) -> str:
    if not revisions:
        return "No rollout history found."
    rows = []
    for rev in revisions:
        annotations = (rev.get("metadata") or {}).get("annotations") or {}
        rows.append([str(_int(rev.get("revision"))),
                     annotations.get(CHANGE_CAUSE_ANNOTATION) or "<none>"])
    return render_table(["REVISION", "CHANGE-CAUSE"], rows, padding=2)


def find_revision(revisions: Sequence[Obj], number: int) -> Obj:
    for rev in revisions:
        if _int(rev.get("revision")) == number:
            return rev
    raise CliError(f"unable to find the specified revision {number}")


def revision_details(revisions: Sequence[Obj], number: int) -> str:
    return describe_template(template_of(find_revision(revisions, number)))


# --- undo ------------------------------------------------------------------------------

def rollback_source(revisions: Sequence[Obj], to_revision: int, display: str) -> Obj:
    """The revision to go back to: that number, or (0) the one before the newest."""
    if to_revision < 0:
        raise CliError(f"unable to find specified revision {to_revision} in history")
    if to_revision > 0:
        for rev in revisions:
            if _int(rev.get("revision")) == to_revision:
                return rev
        raise CliError(f"unable to find specified revision {to_revision} in history")
    if len(revisions) < 2:
        raise CliError(f"no last revision to roll back to for {display}")
    return revisions[-2]


def rolled_back(live: Obj, source: Obj) -> Obj | None:
    """live with source's template, or None when it already runs that template."""
    template = template_of(source)
    if (_spec(live).get("template") or {}) == template:
        return None
    updated = copy.deepcopy(live)
    updated.setdefault("spec", {})["template"] = template
    return updated


__all__ = [
    "HISTORY_KINDS", "daemonset_status", "find_revision", "history_table", "owned_revisions",
    "revision_details", "rollback_source", "rolled_back", "rollout_status",
    "statefulset_status", "template_of",
]
