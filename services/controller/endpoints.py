"""The Endpoints controller: a Service's Endpoints list the pods its selector picks.

For each Service with a selector (Kubernetes' `syncService`), the pods of its
namespace that match, have an IP and are not being deleted or finished become
addresses: under `addresses` when Ready (or when the Service publishes
not-ready addresses), under `notReadyAddresses` otherwise. Each Service port
resolves its targetPort against the pod: a number is itself, a name is the
containerPort of that name and protocol (a pod without it is skipped for that
port). Addresses with the same ports share a subset, sorted, so that an
unchanged world writes nothing.

A Service without a selector has Endpoints its user manages: they are left
alone. When a Service goes, its Endpoints go with it.

Two things are for the people and programs downstream:
- a named targetPort that a selected pod does not define leaves that pod out
  for that port, silently in Kubernetes; here it also records a Warning Event
  (`FailedToResolvePort`) on the Service, since an Endpoints with no addresses
  is otherwise a puzzle. The recorder folds repeats into one Event's count.
- every write carries `endpoints.kubernetes.io/last-change-trigger-time`, as
  Kubernetes' TriggerTimeTracker computes it: the earliest of the pod and
  Service changes (a pod's Ready transition, the Service's creation) that the
  Endpoints had not yet reflected. The proxy measures its network programming
  latency from it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.events import WARNING, EventRecorder
from kubelite.informer import object_key, split_key
from kubelite.objects import parse_time
from kubelite.selectors import LabelSelector, make_requirement

from .base import Controller
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import is_ready, ready_condition

Obj = dict[str, Any]

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
FAILED_TO_RESOLVE_PORT = "FailedToResolvePort"


def service_selector(service: Obj) -> LabelSelector | None:
    """The Service's selector (a plain label map), None when it has none."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return None
    return LabelSelector(make_requirement(k, "=", [str(v)]) for k, v in selector.items())


def should_be_in_endpoints(pod: Obj) -> bool:
    """Has an IP, is not being deleted, and will not stay finished (ShouldPodBeInEndpoints)."""
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    phase = status.get("phase")
    policy = spec.get("restartPolicy") or "Always"
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for a Service port's targetPort (podutil.FindPort), or None."""
    target = service_port.get("targetPort", service_port.get("port"))
    protocol = service_port.get("protocol") or "TCP"
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or ():
        for port in c.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def _address(pod: Obj, service: Obj) -> Obj:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    address: Obj = {"ip": (pod.get("status") or {}).get("podIP")
                    or ((pod["status"].get("podIPs") or [{}])[0].get("ip"))}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"].get("name"):
        address["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"),
                            "name": meta.get("name"), "uid": meta.get("uid")}
    return address


def _ip_key(address: Obj) -> tuple[int, str]:
    try:
        return int(ipaddress.ip_address(address.get("ip", ""))), address.get("ip", "")
    except ValueError:
        return -1, address.get("ip", "")


def endpoint_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The subsets a Service's Endpoints should hold, given its namespace's pods."""
    spec = service.get("spec") or {}
    selector = service_selector(service)
    if selector is None:
        return []
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    groups: dict[tuple, Obj] = {}
    for pod in pods:
        if not selector.matches_object(pod) or not should_be_in_endpoints(pod):
            continue
        ports: list[Obj] = []
        for service_port in spec.get("ports") or ():
            number = find_port(pod, service_port)
            if number is None:
                continue
            port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
            if service_port.get("name"):
                port["name"] = service_port["name"]
            if service_port.get("appProtocol"):
                port["appProtocol"] = service_port["appProtocol"]
            ports.append(port)
        if not ports and not (headless and not spec.get("ports")):
            continue  # no port of this Service resolves on this pod
        ports.sort(key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        key = tuple((p.get("name", ""), p["port"], p["protocol"]) for p in ports)
        subset = groups.setdefault(key, {"ports": ports, "addresses": [],
                                         "notReadyAddresses": []})
        ready = publish_not_ready or is_ready(pod)
        subset["addresses" if ready else "notReadyAddresses"].append(_address(pod, service))
    subsets = []
    for key in sorted(groups):
        subset = groups[key]
        out: Obj = {}
        for kind in ("addresses", "notReadyAddresses"):
            if subset[kind]:
                out[kind] = sorted(subset[kind], key=_ip_key)
        if subset["ports"]:
            out["ports"] = subset["ports"]
        subsets.append(out)
    return subsets


def unresolved_target_ports(service: Obj, pods: list[Obj]) -> list[tuple[Obj, int, int]]:
    """(service port, pods lacking its named targetPort, pods considered) for each port
    whose targetPort some selected, endpoint-worthy pod cannot resolve."""
    selector = service_selector(service)
    if selector is None:
        return []
    eligible = [p for p in pods if selector.matches_object(p) and should_be_in_endpoints(p)]
    out = []
    for service_port in (service.get("spec") or {}).get("ports") or ():
        missing = sum(1 for p in eligible if find_port(p, service_port) is None)
        if missing:
            out.append((service_port, missing, len(eligible)))
    return out


def unresolved_message(service_port: Obj, missing: int, total: int) -> str:
    """One stable message per port and situation, so that repeats fold into one Event."""
    target = service_port.get("targetPort")
    protocol = service_port.get("protocol") or "TCP"
    which = "no selected pod defines" if missing == total else "some selected pods do not define"
    return (f'port {service_port.get("port")}/{protocol}: {which} a container port named '
            f'"{target}" ({protocol}); those pods are left out of the Endpoints for it')


def _time_or_none(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = parse_time(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pod_trigger_time(pod: Obj) -> tuple[str, datetime] | None:
    """When the pod last changed in a way Endpoints care about: its Ready transition,
    with the Ready status, since two transitions within a second share a timestamp."""
    cond = ready_condition(pod)
    when = _time_or_none(cond.get("lastTransitionTime")) if cond else None
    return (str(cond.get("status")), when) if cond and when else None


def format_trigger_time(when: datetime) -> str:
    """RFC 3339 in UTC, with a fraction only when there is one (Go's RFC3339Nano)."""
    text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


@dataclass
class _TriggerState:
    pods: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    service: datetime | None = None


class TriggerTimeTracker:
    """Kubernetes' TriggerTimeTracker: which change an Endpoints write reflects.

    `compute` returns the earliest trigger time (a selected pod's Ready
    transition, the Service's creation) that differs from what the last
    successful sync saw, and the state to `commit` once that sync's write
    succeeded, so that a write that fails and is retried still carries its
    trigger time. A pod's Ready status is compared with its timestamp, since
    timestamps have whole seconds and a pod may turn Ready within one.
    """

    def __init__(self) -> None:
        self._state: dict[str, _TriggerState] = {}

    def compute(self, key: str, service: Obj, pods: list[Obj]
                ) -> tuple[datetime | None, _TriggerState]:
        old = self._state.get(key) or _TriggerState()
        new = _TriggerState()
        earliest: datetime | None = None
        for pod in pods:
            trigger = pod_trigger_time(pod)
            if trigger is None:
                continue
            name = (pod.get("metadata") or {}).get("name") or ""
            new.pods[name] = trigger
            if old.pods.get(name) != trigger:
                when = trigger[1]
                earliest = when if earliest is None else min(earliest, when)
        new.service = _time_or_none((service.get("metadata") or {}).get("creationTimestamp"))
        if new.service is not None and new.service != old.service:
            earliest = new.service if earliest is None else min(earliest, new.service)
        return earliest, new

    def commit(self, key: str, state: _TriggerState) -> None:
        self._state[key] = state

    def forget(self, key: str) -> None:
        self._state.pop(key, None)


class EndpointsController(Controller[str]):
    name = "endpoint"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None) -> None:
        self.service_informer = factory.informer("services")
        self.pod_informer = factory.informer("pods")
        self.endpoints_informer = factory.informer("endpoints")
        super().__init__(informers=[self.service_informer, self.pod_informer,
                                    self.endpoints_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component="endpoint-controller")
        self.triggers = TriggerTimeTracker()
        self.service_informer.add_handler(on_add=self.enqueue,
                                          on_update=lambda old, cur: self.enqueue(cur),
                                          on_delete=self.enqueue)
        self.pod_informer.add_handler(on_add=self._pod_changed,
                                      on_update=self._pod_updated,
                                      on_delete=self._pod_changed)
        # Someone else's write to an Endpoints we manage is undone.
        self.endpoints_informer.add_handler(on_update=self._endpoints_updated,
                                            on_delete=self.enqueue)

    def _services_selecting(self, pod: Obj) -> list[Obj]:
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        found = []
        for service in self.service_informer.by_index(NAMESPACE_INDEX, namespace):
            selector = service_selector(service)
            if selector is not None and selector.matches_object(pod):
                found.append(service)
        return found

    def _pod_changed(self, pod: Obj) -> None:
        for service in self._services_selecting(pod):
            self.enqueue(service)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        keys = {object_key(s) for s in self._services_selecting(cur)}
        if old["metadata"].get("labels") != cur["metadata"].get("labels"):
            keys |= {object_key(s) for s in self._services_selecting(old)}
        for key in keys:
            self.queue.add(key)

    def _endpoints_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") != cur["metadata"].get("resourceVersion"):
            self.enqueue(cur)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.service_informer.get(key)
        current = self.endpoints_informer.get(key)
        if service is None:
            self.triggers.forget(key)
            if current is not None:
                try:
                    await self.client.delete("endpoints", name, namespace=namespace,
                                             uid=current["metadata"].get("uid", ""))
                except NotFoundError:
                    pass
            return
        spec = service.get("spec") or {}
        selector = service_selector(service)
        if spec.get("type") == "ExternalName" or selector is None:
            self.triggers.forget(key)
            return  # user-managed Endpoints, or none at all
        pods = self.pod_informer.by_index(NAMESPACE_INDEX, namespace)
        for service_port, missing, total in unresolved_target_ports(service, pods):
            self.recorder.event(service, WARNING, FAILED_TO_RESOLVE_PORT,
                                unresolved_message(service_port, missing, total))
        subsets = endpoint_subsets(service, pods)
        trigger, trigger_state = self.triggers.compute(
            key, service, [p for p in pods if selector.matches_object(p)])
        labels = dict(service["metadata"].get("labels") or {})
        if current is not None:
            same = ((current.get("subsets") or []) == subsets
                    and (current["metadata"].get("labels") or {}) == labels)
            if same:
                self.triggers.commit(key, trigger_state)
                return
            meta = {**current["metadata"], "labels": labels,
                    "annotations": _with_trigger(current["metadata"].get("annotations"),
                                                 trigger)}
            if not meta["annotations"]:
                del meta["annotations"]
            updated = {**current, "metadata": meta}
            if subsets:
                updated["subsets"] = subsets
            else:
                updated.pop("subsets", None)
            await self.client.update("endpoints", updated)
            self.triggers.commit(key, trigger_state)
            return
        new: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels}}
        annotations = _with_trigger(None, trigger)
        if annotations:
            new["metadata"]["annotations"] = annotations
        if subsets:
            new["subsets"] = subsets
        # AlreadyExists (our cache has not seen it yet) is retried like any error.
        await self.client.create("endpoints", new)
        self.triggers.commit(key, trigger_state)


def _with_trigger(annotations: dict[str, str] | None, trigger: datetime | None
                  ) -> dict[str, str]:
    """The annotations with the trigger time set, or cleared when nothing new triggered."""
    out = dict(annotations or {})
    if trigger is None:
        out.pop(TRIGGER_TIME_ANNOTATION, None)
    else:
        out[TRIGGER_TIME_ANNOTATION] = format_trigger_time(trigger)
    return out

__all__ = ["EndpointsController", "FAILED_TO_RESOLVE_PORT", "TRIGGER_TIME_ANNOTATION",
           "TriggerTimeTracker", "endpoint_subsets", "find_port", "should_be_in_endpoints",
           "unresolved_target_ports"]
