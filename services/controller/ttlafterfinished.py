"""The TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is
deleted that many seconds after it finished (Complete's or Failed's transition time).

Level-triggered on the Job informer: each sync either deletes an expired Job or
requeues it for the moment it expires. Before deleting it re-reads the Job
uncached, since its TTL may have been changed or removed meanwhile; the
deletion is in the foreground, so its pods go first, as in Kubernetes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubelite.client import Client
from kubelite.errors import NotFoundError, PreconditionFailedError
from kubelite.events import EventRecorder
from kubelite.informer import split_key

from .base import Controller
from .informers import InformerFactory
from .job import FINISHED, condition
from .pods import timestamp

Obj = dict[str, Any]


def expires_at(job: Obj) -> float | None:
    """When a finished Job with a TTL may be deleted; None if it has none or is not done."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or job["metadata"].get("deletionTimestamp"):
        return None
    for type_ in FINISHED:
        cond = condition(job, type_)
        if cond is not None and cond.get("status") == "True":
            finished = timestamp((job.get("status") or {}).get("completionTime")
                                 if type_ == "Complete" else None) or timestamp(
                cond.get("lastTransitionTime"))
            return None if finished is None else finished + float(ttl)
    return None


class TTLAfterFinishedController(Controller[str]):
    name = "ttl-after-finished"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.jobs = factory.informer("jobs")
        super().__init__(informers=[self.jobs])
        self.client = client
        self.clock = clock
        self.recorder = EventRecorder(client, component="ttl-after-finished-controller")
        self.jobs.add_handler(on_add=self._changed, on_update=lambda old, cur: self._changed(cur))

    def _changed(self, job: Obj) -> None:
        if expires_at(job) is not None:
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None or expires_at(job) is None:
            return
        left = (expires_at(job) or 0.0) - self.clock()
        if left > 0:
            self.queue.add_after(key, left)
            return
        namespace, name = split_key(key)
        try:
            fresh = await self.client.get("jobs", name, namespace=namespace)
        except NotFoundError:
            return
        at = expires_at(fresh)
        if at is None:
            return
        if at > self.clock():
            self.queue.add_after(key, at - self.clock())
            return
        self.log.info("deleting an expired job", extra={"kv": {"key": key}})
        try:
            await self.client.delete("jobs", name, namespace=namespace,
                                     uid=fresh["metadata"].get("uid", ""),
                                     propagation_policy="Foreground")
        except (NotFoundError, PreconditionFailedError):
            return


__all__ = ["TTLAfterFinishedController", "expires_at"]
