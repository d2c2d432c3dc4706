"""The Kubelet gRPC service: a pod container's log, which the apiserver proxies.

Which instance a request reads follows the kubelet's validateContainerLogStatus:
the current log is the running (or last terminated) instance's; `previous` is
the instance named in lastState.terminated, the one before the current. The
instance ids come from the pod's published status, falling back to the
runtime's own order of instances when the status has not caught up yet.
`follow` streams new output until the client cancels or the instance ends.
`timestamps` is refused rather than ignored: the logs hold no times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from services.kubelet.pod_sync import instances_by_name
from services.kubelet.runtime import Container, Runtime

Obj = dict[str, Any]


def _id_of(container_id: str) -> str:
    return container_id.partition("://")[2] if "://" in container_id else container_id


def pick_instance(status: Obj | None, instances: list[Container], *,
                  previous: bool) -> Container | None:
    """The instance a logs request reads (see the module docstring)."""
    by_id = {c.id: c for c in instances}
    status = status or {}
    state, last = status.get("state") or {}, status.get("lastState") or {}
    last_id = _id_of((last.get("terminated") or {}).get("containerID", ""))
    if previous:
        if last_id in by_id:
            return by_id[last_id]
        return instances[-2] if len(instances) > 1 else None
    for key in ("running", "terminated"):
        if key in state:
            cid = _id_of(status.get("containerID") or state[key].get("containerID", ""))
            if cid in by_id:
                return by_id[cid]
    if "waiting" in state and last_id in by_id:
        return by_id[last_id]
    return instances[-1] if instances else None


class KubeletService(api_pb2_grpc.KubeletServicer):
    def __init__(self, runtime: Runtime, get_pod: Callable[[str, str], Obj | None]) -> None:
        self.runtime = runtime
        self.get_pod = get_pod

    async def Logs(self, request: api_pb2.LogsRequest,  # noqa: N802 - the gRPC method name
                   context: grpc.aio.ServicerContext) -> AsyncIterator[api_pb2.LogChunk]:
        if request.timestamps:
            # The process runtime stores raw output, without the time each line came.
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "timestamps: not supported by this kubelet's runtime (logs are "
                                "stored without the time of each line)")
        namespace = request.namespace or "default"
        pod = self.get_pod(namespace, request.name)
        if pod is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f'pods "{request.name}" not found on this node')
        assert pod is not None
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        name = request.container
        if not name:
            if len(names) != 1:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"a container name must be specified for pod {request.name}, choose one "
                    f"of: [{' '.join(str(n) for n in names)}]")
            name = names[0]
        inits = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        if name not in names and name not in inits:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"container {name} is not valid for pod {request.name}")
        uid = pod["metadata"]["uid"]
        instances = instances_by_name(await self.runtime.list_containers(pod_uid=uid)).get(
            name, [])
        status = pod.get("status") or {}
        statuses = {s.get("name"): s for s in [*(status.get("initContainerStatuses") or []),
                                               *(status.get("containerStatuses") or [])]}
        target = pick_instance(statuses.get(name), instances, previous=request.previous)
        if target is None:
            if request.previous:
                message = (f'previous terminated container "{name}" in pod "{request.name}" '
                           "not found")
            else:
                message = (f'container "{name}" in pod "{request.name}" is waiting to start: '
                           "ContainerCreating")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        assert target is not None
        tail = request.tail_lines if request.HasField("tail_lines") else None
        follow = request.follow and not request.previous
        async for chunk in self.runtime.logs(target.id, tail_lines=tail, follow=follow):
            yield api_pb2.LogChunk(data=chunk)
