"""A steady write load for fault tests: ConfigMaps created and patched in a loop, with
every acknowledged write recorded, so a test can check that a fault lost nothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError
from kubelite.testing.waiting import eventually


@dataclass
class Ledger:
    """Every change anybody saw, by resourceVersion: each must name one (name, counter)."""

    changes: dict[int, tuple[str, int]] = field(default_factory=dict)
    clashes: list[str] = field(default_factory=list)

    def saw(self, obj: dict[str, Any], source: str) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        change = (obj["metadata"]["name"], int((obj.get("data") or {}).get("v", "-1")))
        known = self.changes.setdefault(rv, change)
        if known != change:
            self.clashes.append(f"rv {rv}: {known} and {change} ({source})")


class Writer:
    """Creates and patches ConfigMaps `w-0`..`w-11` in a loop, each carrying a counter
    that only grows, and records what was acknowledged (and when)."""

    def __init__(self, client: Client, namespace: str, ledger: Ledger | None = None, *,
                 pause: float = 0.01) -> None:
        self.client = client
        self.namespace = namespace
        self.ledger = ledger or Ledger()
        self.pause = pause
        self.counter = 0
        self.acked: dict[str, int] = {}  # name -> last acknowledged counter
        self.acked_rvs: list[int] = []
        self.ack_times: list[float] = []
        self.failures = 0
        self._task: asyncio.Task | None = None

    async def _write(self) -> None:
        self.counter += 1
        v = self.counter
        name = f"w-{v % 12}"
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": self.namespace}, "data": {"v": str(v)}}
        try:
            if name in self.acked:
                obj = await self.client.patch("configmaps", name, {"data": {"v": str(v)}},
                                              namespace=self.namespace)
            else:
                try:
                    obj = await self.client.create("configmaps", body)
                except ApiError as err:
                    if err.reason != "AlreadyExists":  # an unacknowledged create survived
                        raise
                    obj = await self.client.patch("configmaps", name, {"data": {"v": str(v)}},
                                                  namespace=self.namespace)
        except ApiError:
            self.failures += 1
            await asyncio.sleep(0.05)
            return
        self.acked[name] = v
        self.acked_rvs.append(int(obj["metadata"]["resourceVersion"]))
        self.ack_times.append(time.monotonic())
        self.ledger.saw(obj, "writer")

    async def _run(self) -> None:
        while True:
            await self._write()
            await asyncio.sleep(self.pause)

    def start(self) -> Writer:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def longest_gap(self, since: float) -> float:
        """The longest time after `since` with no acknowledged write (to the last one)."""
        times = [since, *(t for t in self.ack_times if t >= since)]
        return max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else 0

    async def acks_after(self, moment: float, count: int = 3, within: float = 30.0) -> None:
        await eventually(lambda: sum(t > moment for t in self.ack_times) >= count,
                         timeout=within, what=f"{count} writes acknowledged after the fault")

    async def assert_acknowledged_present(self, client: Client | None = None) -> None:
        """Every acknowledged write is there: each ConfigMap's counter is at least the
        last one acknowledged for it."""
        listed = await (client or self.client).list("configmaps", namespace=self.namespace)
        final = {o["metadata"]["name"]: int(o["data"]["v"]) for o in listed.items}
        missing = {name: v for name, v in self.acked.items() if final.get(name, -1) < v}
        assert not missing, f"acknowledged writes lost: {missing} (final {final})"
