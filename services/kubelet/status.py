"""Pod status from what the kubelet observes: pure functions, no I/O.

`pod_status` turns a pod, the runtime's view of each of its containers and the
probe results into the `status` the kubelet publishes: phase, conditions,
containerStatuses, IPs and startTime. Fields the kubelet does not own (the
scheduler's PodScheduled condition, qosClass, nominatedNodeName) are kept.

The phase follows the kubelet's getPhase: any container still waiting for its
first start keeps the pod Pending; a running one makes it Running; when all
have stopped, restartPolicy decides between Running (they will restart),
Succeeded and Failed. A pod that reached Succeeded or Failed stays there.
Until its init containers are done a pod is Pending (Failed when one failed and
restartPolicy is Never), with initContainerStatuses and Initialized False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.kubelet.runtime import Container, ContainerState

Obj = dict[str, Any]

TERMINAL_PHASES = ("Succeeded", "Failed")
CONDITION_ORDER = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def format_time(ts: float | None) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes metav1.Time."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ContainerView:
    """One spec container as the kubelet sees it after a sync."""

    name: str
    image: str
    current: Container | None = None  # the newest instance
    previous: Container | None = None  # the one before it (for lastState)
    waiting_reason: str = ""  # why it is not running now (when it is not)
    waiting_message: str = ""
    ready: bool = False
    started: bool = False


def should_restart(restart_policy: str, exit_code: int | None) -> bool:
    """Whether an exited container is started again under the pod's restartPolicy."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True  # Always


def terminated_state(c: Container, scheme: str) -> Obj:
    state: Obj = {"exitCode": c.exit_code if c.exit_code is not None else 0,
                  "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error")}
    if c.message:
        state["message"] = c.message
    state["startedAt"] = format_time(c.started_at or c.created_at)
    state["finishedAt"] = format_time(c.finished_at or c.started_at or c.created_at)
    state["containerID"] = f"{scheme}://{c.id}"
    return state


def container_status(view: ContainerView, scheme: str) -> Obj:
    cur, prev = view.current, view.previous
    status: Obj = {"name": view.name, "image": view.image, "imageID": ""}
    last: Obj = {}
    if cur is not None and cur.state is ContainerState.RUNNING:
        state: Obj = {"running": {"startedAt": format_time(cur.started_at or cur.created_at)}}
        if prev is not None and prev.exited:
            last = {"terminated": terminated_state(prev, scheme)}
    elif cur is not None and cur.exited and not view.waiting_reason:
        state = {"terminated": terminated_state(cur, scheme)}
        if prev is not None and prev.exited:
            last = {"terminated": terminated_state(prev, scheme)}
    else:
        waiting: Obj = {"reason": view.waiting_reason or "ContainerCreating"}
        if view.waiting_message:
            waiting["message"] = view.waiting_message
        state = {"waiting": waiting}
        if cur is not None and cur.exited:
            last = {"terminated": terminated_state(cur, scheme)}
    status["state"] = state
    status["lastState"] = last
    status["ready"] = bool(view.ready and cur is not None and cur.running)
    status["restartCount"] = cur.restart_count if cur is not None else 0
    if cur is not None and "waiting" not in state:
        status["containerID"] = f"{scheme}://{cur.id}"
    status["started"] = bool(view.started and cur is not None and cur.running)
    return status


def pod_phase(restart_policy: str, statuses: Sequence[Obj]) -> str:
    """The kubelet's getPhase over containerStatuses."""
    if not statuses:
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for cs in statuses:
        state = cs.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in state:
            if "terminated" in (cs.get("lastState") or {}):
                stopped += 1
            else:
                waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"  # all of them are about to restart
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: the failed ones restart
    return "Pending"


def _condition(existing: dict[str, Obj], type_: str, status: str, now: str,
               reason: str = "", message: str = "") -> Obj:
    old = existing.get(type_)
    transition = old.get("lastTransitionTime") if old and old.get("status") == status else None
    cond: Obj = {"type": type_, "status": status, "lastTransitionTime": transition or now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _incomplete(init_statuses: Sequence[Obj], sidecars: set[str]) -> list[str]:
    """Init containers not done: a regular one not succeeded, a sidecar not started."""
    out = []
    for cs in init_statuses:
        state = cs.get("state") or {}
        if cs["name"] in sidecars:
            if not cs.get("started"):
                out.append(cs["name"])
        elif (state.get("terminated") or {}).get("exitCode", 1) != 0:
            out.append(cs["name"])
    return out


def pod_status(
    pod: Obj,
    views: Sequence[ContainerView],
    *,
    pod_ip: str,
    host_ip: str,
    scheme: str,
    now: str,
    start_time: str = "",
    terminating: bool = False,
    init_views: Sequence[ContainerView] = (),
    initialized: bool = True,
    init_failed: bool = False,
) -> Obj:
    """The status to publish for pod (see the module docstring).

    terminating: the pod is being deleted and its containers were stopped; its
    phase is then computed as if restartPolicy were Never (nothing restarts).
    init_views: the init containers, in order; until initialized the pod is Pending,
    or Failed when an init container failed under restartPolicy Never (init_failed).
    Sidecars (init containers with restartPolicy Always) count for readiness.
    """
    old: Obj = pod.get("status") or {}
    spec = pod.get("spec") or {}
    statuses = [container_status(v, scheme) for v in views]
    init_statuses = [container_status(v, scheme) for v in init_views]
    sidecars = {c.get("name") for c in spec.get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    policy = "Never" if terminating else spec.get("restartPolicy", "Always")
    if init_failed:
        phase = "Failed"
    elif not initialized:
        phase = "Pending"
    else:
        phase = pod_phase(policy, statuses)
    if old.get("phase") in TERMINAL_PHASES:
        phase = old["phase"]
    existing = {c.get("type"): c for c in old.get("conditions") or [] if c.get("type")}
    unready = [s["name"] for s in init_statuses if s["name"] in sidecars and not s["ready"]]
    unready += [s["name"] for s in statuses if not s["ready"]]
    if phase in TERMINAL_PHASES:
        ready = _condition(existing, "ContainersReady", "False", now, "PodCompleted")
    elif unready:
        ready = _condition(existing, "ContainersReady", "False", now, "ContainersNotReady",
                           f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = _condition(existing, "ContainersReady", "True", now)
    pod_ready = dict(ready, type="Ready")
    if existing.get("Ready", {}).get("status") != ready["status"]:
        pod_ready["lastTransitionTime"] = now
    else:
        pod_ready["lastTransitionTime"] = existing["Ready"].get("lastTransitionTime") or now
    ours = {
        "Initialized": _condition(existing, "Initialized", "True", now) if initialized
        else _condition(existing, "Initialized", "False", now, "ContainersNotInitialized",
                        "containers with incomplete status: "
                        f"[{' '.join(_incomplete(init_statuses, sidecars))}]"),
        "Ready": pod_ready,
        "ContainersReady": ready,
        "PodScheduled": existing.get("PodScheduled")
        or _condition(existing, "PodScheduled", "True", now),
    }
    conditions = [ours[t] for t in CONDITION_ORDER]
    conditions += [c for t, c in existing.items() if t not in ours]
    status = dict(old)
    status.update({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else [],
        "startTime": old.get("startTime") or start_time or now,
        "containerStatuses": statuses,
    })
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    else:
        status.pop("initContainerStatuses", None)
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
