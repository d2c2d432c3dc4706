"""`kubelite logs`: a container's log, streamed from its kubelet through the apiserver.

`logs POD`, `logs POD CONTAINER`, `logs POD -c CONTAINER`, or `logs KIND/NAME`
for a deployment, replicaset or service, which picks one of its pods the way
kubectl does (scheduled, running, ready, longest ready, most restarts, oldest),
saying on stderr which one when there are several. Without -c, a pod's default
container is its `kubectl.kubernetes.io/default-container` annotation or its
first container, and a pod with several says on stderr which it chose.

The log is copied to stdout as bytes, unchanged and flushed chunk by chunk, so
`logs -f` is live and binary output survives. With -f it runs until the
container stops or the user presses Ctrl-C (exit 0).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from kubelite.cli.printers import parse_timestamp
from kubelite.cli.reporting import BadRequestError, CliError
from kubelite.cli.session import Session
from kubelite.cli.targets import Target, parse_target, selector_string
from kubelite.errors import InvalidError
from kubelite.selectors import LabelSelector, make_requirement

Obj = dict[str, Any]
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
USAGE = "kubelite logs POD [-c CONTAINER] | kubelite logs TYPE/NAME"
POLL_SECONDS = 0.5
LOGGABLE_OWNERS = ("Deployment", "ReplicaSet", "Service")
_PHASE_RANK = {"Running": 0, "Unknown": 1, "Pending": 2}  # others rank as Running, as in kubectl


@dataclass(frozen=True)
class LogsOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    tail: int = -1  # -1: the whole log
    timestamps: bool = False
    pod_running_timeout: float = 20.0  # how long to wait for a workload to have a pod


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def parse_args(args: Sequence[str], container: str) -> tuple[Target, str]:
    """The object and the container from `POD [CONTAINER]` or `TYPE/NAME` and -c."""
    if len(args) == 2 and "/" not in args[0]:
        if container:
            raise CliError("only one of -c or an inline [CONTAINER] arg is allowed")
        return parse_target(args[:1], verb="logs", default_kind="pod", usage=USAGE), args[1]
    if len(args) > 2:
        raise CliError(f"expected POD [CONTAINER] or TYPE/NAME, got {' '.join(args)} "
                       f"(usage: {USAGE})")
    return parse_target(args, verb="logs", default_kind="pod", usage=USAGE), container


def choose_container(pod: Obj, requested: str) -> tuple[str, list[str]]:
    """(container, notes): the container to read, and lines for stderr (kubectl's
    FindOrDefaultContainerByName)."""
    spec = _spec(pod)
    name = _meta(pod).get("name", "")
    containers = [c.get("name", "") for c in spec.get("containers") or []]
    inits = [c.get("name", "") for c in spec.get("initContainers") or []]
    ephemeral = [c.get("name", "") for c in spec.get("ephemeralContainers") or []]
    every = (*containers, *inits, *ephemeral)
    if requested:
        if requested not in every:
            raise CliError(f"container {requested} is not valid for pod {name}")
        return requested, []
    notes = []
    default = (_meta(pod).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if default:
        if default in every:
            return default, []
        notes.append(f'Default container name "{default}" not found in pod {name}')
    if not containers:
        raise CliError(f"pod {name} has no containers")
    if len(every) > 1:
        listed = containers + [f"{c} (init)" for c in inits] + [
            f"{c} (ephem)" for c in ephemeral]
        notes.append(f'Defaulted container "{containers[0]}" out of: {", ".join(listed)}')
    return containers[0], notes


def _ready_since(pod: Obj) -> float | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            when = parse_timestamp(condition.get("lastTransitionTime"))
            return when.timestamp() if when else None
    return None


def _is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def logging_order(pod: Obj) -> tuple[Any, ...]:
    """kubectl's ByLogging as a sort key: the pod most worth reading sorts first."""
    status = pod.get("status") or {}
    ready = _is_ready(pod)
    ready_since = _ready_since(pod) if ready else None
    restarts = max((int(cs.get("restartCount") or 0)
                    for cs in status.get("containerStatuses") or []), default=0)
    created = parse_timestamp(_meta(pod).get("creationTimestamp"))
    return (
        0 if _spec(pod).get("nodeName") else 1,
        _PHASE_RANK.get(status.get("phase", ""), 0),
        0 if ready else 1,
        (0, ready_since) if ready_since is not None else (1, 0.0),
        -restarts,
        (0, created.timestamp()) if created else (1, 0.0),
    )


def pick_pod(pods: Sequence[Obj]) -> Obj:
    return min(pods, key=logging_order)


def pod_selector(target: Target, obj: Obj) -> str:
    """The label selector of the pods that belong to a workload or service."""
    kind = target.info.kind
    if kind in ("Deployment", "ReplicaSet"):
        return selector_string(_spec(obj).get("selector"), what=target.display)
    if kind == "Service":
        labels = _spec(obj).get("selector") or {}
        if not labels:
            raise CliError(f"{target.display} has no selector")
        return str(LabelSelector(make_requirement(k, "=", [v]) for k, v in labels.items()))
    raise CliError(f"cannot get logs from {target.info.qualified_plural}: "
                   f"use a pod, deployment, replicaset or service")


async def find_pod(session: Session, target: Target, namespace: str,
                   wait: float) -> Obj:
    """The pod to read for `logs KIND/NAME`, waiting up to `wait` seconds for one."""
    if target.info.kind not in LOGGABLE_OWNERS:
        raise CliError(f"cannot get logs from {target.info.qualified_plural}: "
                       f"use a pod, deployment, replicaset or service")
    owner = await session.client.get(target.info.plural, target.name, namespace=namespace)
    selector = pod_selector(target, owner)
    deadline = time.monotonic() + wait
    while True:
        pods = (await session.client.list("pods", namespace=namespace,
                                          label_selector=selector)).items
        if pods:
            break
        if time.monotonic() >= deadline:
            raise CliError(f"no pods found for {target.display} (selector {selector}) "
                           f"after waiting {wait:g}s")
        await asyncio.sleep(POLL_SECONDS)
    pod = pick_pod(pods)
    if len(pods) > 1:
        session.warn(f"Found {len(pods)} pods, using pod/{_meta(pod).get('name', '')}")
    return pod


def write_bytes(out: IO[str], data: bytes) -> None:
    """Writes bytes through a text stream's binary buffer (decoded if it has none)."""
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        out.write(data.decode("utf-8", errors="replace"))
        out.flush()
        return
    buffer.write(data)
    buffer.flush()


async def run(session: Session, args: Sequence[str], options: LogsOptions) -> int:
    target, container = parse_args(args, options.container)
    namespace = session.effective_namespace
    if target.info.kind == "Pod":
        pod = await session.client.get("pods", target.name, namespace=namespace)
    else:
        pod = await find_pod(session, target, namespace, options.pod_running_timeout)
    container, notes = choose_container(pod, container)
    for note in notes:
        session.warn(note)
    session.out.flush()
    stream = session.client.logs(
        _meta(pod).get("name", target.name), namespace=namespace, container=container,
        follow=options.follow, previous=options.previous,
        tail_lines=options.tail if options.tail >= 0 else None,
        timestamps=options.timestamps)
    try:
        async for chunk in stream:
            write_bytes(session.out, chunk)
    except BadRequestError:
        raise
    except InvalidError as err:
        # The apiserver and kubelet say INVALID_ARGUMENT where Kubernetes says 400.
        raise BadRequestError(err.message, field=err.field) from None
    return 0
