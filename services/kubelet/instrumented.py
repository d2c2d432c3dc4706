"""A Runtime wrapper that times every operation (kubelet's instrumentedRuntimeService),
so that no runtime implementation has to know about metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TypeVar

from services.kubelet import metrics
from services.kubelet.runtime import (
    Container,
    ContainerConfig,
    ExecResult,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
)

T = TypeVar("T")


class InstrumentedRuntime:
    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.name = inner.name
        self.version = inner.version

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        try:
            return await call
        except BaseException:
            metrics.RUNTIME_OPERATION_ERRORS.labels(operation).inc()
            raise
        finally:
            metrics.RUNTIME_OPERATIONS.labels(operation).observe(time.perf_counter() - start)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def status(self) -> str:
        return await self._timed("status", self.inner.status())

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              preferred_ip: str = "") -> PodSandbox:
        return await self._timed("run_podsandbox",
                                  self.inner.run_pod_sandbox(config, preferred_ip=preferred_ip))

    async def remove_pod_sandbox(self, uid: str) -> None:
        await self._timed("remove_podsandbox", self.inner.remove_pod_sandbox(uid))

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return await self._timed("list_podsandbox", self.inner.list_pod_sandboxes())

    async def start_container(self, sandbox: PodSandbox, config: ContainerConfig) -> Container:
        return await self._timed("start_container",
                                 self.inner.start_container(sandbox, config))

    async def stop_container(self, container_id: str, *, grace: float) -> None:
        await self._timed("stop_container",
                          self.inner.stop_container(container_id, grace=grace))

    async def remove_container(self, container_id: str) -> None:
        await self._timed("remove_container", self.inner.remove_container(container_id))

    async def container_status(self, container_id: str) -> Container | None:
        return await self._timed("container_status", self.inner.container_status(container_id))

    async def list_containers(self, *, pod_uid: str | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        return await self._timed("list_containers",
                                 self.inner.list_containers(pod_uid=pod_uid, labels=labels))

    def logs(self, container_id: str, *, tail_lines: int | None = None,
             follow: bool = False) -> AsyncIterator[bytes]:
        return self.inner.logs(container_id, tail_lines=tail_lines, follow=follow)

    async def exec(self, container_id: str, command: Sequence[str], *,
                   time_limit: float) -> ExecResult:
        return await self._timed("exec", self.inner.exec(container_id, command,
                                                         time_limit=time_limit))
