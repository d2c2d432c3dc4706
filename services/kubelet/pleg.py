"""The pod lifecycle event generator: notices container changes by relisting.

Every `period` seconds the PLEG lists the runtime's containers and compares
each one's state with the previous relist; the pods whose containers appeared,
changed state or vanished are handed to `on_change` (the kubelet queues them
for a sync). The first relist reports every pod that has containers, which is
how a restarted kubelet finds the pods it must adopt or clean up. As the
kubelet's "generic PLEG", it trades at most one period of latency for a
runtime interface without an event stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.kubelet import metrics
from services.kubelet.runtime import ContainerState, Runtime

log = logging.getLogger("kubelite.kubelet.pleg")


class PLEG:
    def __init__(self, runtime: Runtime, *, period: float,
                 on_change: Callable[[str], None]) -> None:
        self.runtime = runtime
        self.period = period
        self.on_change = on_change
        self._last: dict[str, tuple[str, ContainerState]] = {}  # id -> (pod uid, state)
        self.relists = 0

    async def relist(self) -> set[str]:
        """One relist; returns the uids of the pods that changed."""
        start = time.perf_counter()
        containers = await self.runtime.list_containers()
        current = {c.id: (c.pod_uid, c.state) for c in containers}
        changed = {uid for cid, (uid, state) in current.items()
                   if self._last.get(cid) != (uid, state)}
        changed |= {uid for cid, (uid, _) in self._last.items() if cid not in current}
        self._last = current
        self.relists += 1
        by_state = {state: 0 for state in ContainerState}
        running_pods = set()
        for c in containers:
            by_state[c.state] += 1
            if c.running:
                running_pods.add(c.pod_uid)
        for state, count in by_state.items():
            metrics.RUNNING_CONTAINERS.labels(state.value).set(count)
        metrics.RUNNING_PODS.set(len(running_pods))
        metrics.PLEG_RELIST_DURATION.observe(time.perf_counter() - start)
        for uid in sorted(changed):
            self.on_change(uid)
        return changed

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relist failed")
            await asyncio.sleep(self.period)
