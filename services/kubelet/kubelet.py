"""The kubelet: wiring of the node agent, the pod informer, the sync loop, the
PLEG, the prober and the runtime.

Every source of change only queues a pod uid: the pod informer (its own pods
only: field selector spec.nodeName=<node>), the PLEG (a container appeared,
exited or vanished), the prober (a result changed) and the sync itself (a
back-off ends). A dispatcher hands each queued uid to its own task, and the
work queue guarantees one sync per pod at a time, so that a pod's graceful
termination never holds up another pod's start.

On SIGTERM the kubelet stops syncing and leaves the containers running, so that
a restarted kubelet adopts them (their shims and state files outlive it);
`--kill-pods-on-exit` stops them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError
from kubelite.events import WARNING, EventRecorder
from kubelite.informer import Informer, index_by_namespace
from kubelite.supervise import spawn
from kubelite.workqueue import QueueShutDown, RateLimiter, WorkQueue
from services.kubelet.backoff import CrashLoopBackoff
from services.kubelet.config import KubeletConfig
from services.kubelet.dnsconfig import DnsConfigurer
from services.kubelet.instrumented import InstrumentedRuntime
from services.kubelet.node import NodeAgent
from services.kubelet.pleg import PLEG
from services.kubelet.pod_sync import PodSyncer
from services.kubelet.prober import ProbeManager, ProbeType
from services.kubelet.runtime import Container, ImageService, Runtime
from services.kubelet.stats import StatsSampler
from services.kubelet.volumes import (
    VolumeManager,
    publish_local_path_root,
    reclaim_local_path,
    volume_sources,
)

log = logging.getLogger("kubelite.kubelet")

Obj = dict[str, Any]


def _uid(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


class Kubelet:
    def __init__(self, config: KubeletConfig, client: Client, runtime: Runtime) -> None:
        self.config = config
        self.client = client
        self.runtime = InstrumentedRuntime(runtime)
        self.recorder = EventRecorder(client, component="kubelet", host=config.node_name)
        self.pods = Informer(client, "pods", field_selector=f"spec.nodeName={config.node_name}",
                             resync=config.sync_frequency)
        self.pods.add_index("uid", lambda obj: _uid(obj) or None)
        self.services = Informer(client, "services")
        self.services.add_index("namespace", index_by_namespace)
        # Only to wake pods whose env waits for a ConfigMap or Secret (the sync reads them
        # from the apiserver itself): a source that appears or changes starts them at once.
        self.configmaps = Informer(client, "configmaps")
        self.secrets = Informer(client, "secrets")
        self.pods.add_index("namespace", index_by_namespace)
        self.queue: WorkQueue[str] = WorkQueue(
            name="kubelet_pods", rate_limiter=RateLimiter(base=0.1, cap=30.0))
        self.prober = ProbeManager(self.runtime, on_change=self.queue.add,
                                   on_unhealthy=self._unhealthy,
                                   period_scale=config.probe_period_scale)
        self.backoff = CrashLoopBackoff(base=config.backoff_base, cap=config.backoff_cap,
                                        reset=config.backoff_reset)
        self.volumes = VolumeManager(
            client=client, root_dir=config.root_dir, node_name=config.node_name,
            host_ip=config.node_ip, allocatable=dict(config.capacity),
            allow_host_path=config.allow_host_path, docker_tmpfs=runtime.name == "docker")
        # Local-path PVs of this node whose claim is gone: only this node can delete the data.
        self.pvs = Informer(client, "persistentvolumes")
        self.syncer = PodSyncer(
            client=client, runtime=self.runtime, prober=self.prober, backoff=self.backoff,
            recorder=self.recorder, node_name=config.node_name, host_ip=config.node_ip,
            allocatable=dict(config.capacity), orphan_grace=config.orphan_grace,
            retry_delay=config.backoff_base, get_pod=self.pod_by_uid,
            services_in=lambda ns: self.services.by_index("namespace", ns),
            list_pods=self.pods.list,
            images=runtime if isinstance(runtime, ImageService) else None,
            dns=DnsConfigurer(cluster_dns=config.cluster_dns,
                              cluster_domain=config.cluster_domain,
                              resolv_conf=config.resolv_conf),
            allow_privileged=config.allow_privileged,
            volumes=self.volumes,
        )
        self.node = NodeAgent(client, config, runtime_version=runtime.version,
                              runtime_status=self.runtime.status)
        self.pleg = PLEG(self.runtime, period=config.pleg_relist_period,
                         on_change=self.queue.add)
        self.stats = StatsSampler(self.runtime, node_name=config.node_name,
                                  period=config.stats_period)
        self._inflight: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    # -- lookups ------------------------------------------------------------------

    def pod_by_uid(self, uid: str) -> Obj | None:
        found = self.pods.by_index("uid", uid)
        return found[0] if found else None

    def pod_by_name(self, namespace: str, name: str) -> Obj | None:
        return self.pods.get(f"{namespace}/{name}")

    # -- event sources ------------------------------------------------------------

    def _enqueue(self, obj: Obj) -> None:
        uid = _uid(obj)
        if uid:
            self.queue.add(uid)

    def _source_changed(self, obj: Obj) -> None:
        """A ConfigMap or Secret appeared or changed: its namespace's pods that are not all
        running get a sync (a running container's env never changes), and so do the pods
        whose volumes read it (their files are rewritten at once, not at the next resync)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "")
        source = (obj.get("kind") or "", meta.get("name", ""))
        for pod in self.pods.by_index("namespace", namespace):
            statuses = ((pod.get("status") or {}).get("containerStatuses") or []) + (
                (pod.get("status") or {}).get("initContainerStatuses") or [])
            if any("waiting" in (cs.get("state") or {}) for cs in statuses) or \
                    source in volume_sources(pod):
                self._enqueue(pod)

    def _unhealthy(self, pod: Obj, container: Container, probe_type: ProbeType,
                   message: str) -> None:
        self.recorder.event(pod, WARNING, "Unhealthy",
                            f"{probe_type.value} probe failed: {message}")

    def _reclaim(self, pv: Obj) -> None:
        task = asyncio.create_task(reclaim_local_path(self.volumes, pv), name="reclaim-pv")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # -- the sync loop ------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            try:
                uid = await self.queue.get()
            except QueueShutDown:
                return
            task = asyncio.create_task(self._work(uid), name=f"sync-{uid}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _work(self, uid: str) -> None:
        try:
            again = await self.syncer.sync(uid)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning("pod sync failed; retrying", exc_info=not isinstance(err, ApiError),
                        extra={"kv": {"uid": uid, "error": f"{type(err).__name__}: {err}"}})
            self.queue.add_rate_limited(uid)
        else:
            self.queue.forget(uid)
            if again is not None:
                self.queue.add_after(uid, again)
        finally:
            self.queue.done(uid)

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        await self.runtime.start()
        await self.node.register()
        try:
            await publish_local_path_root(self.volumes)
        except ApiError as err:
            log.warning("cannot annotate the node with its local-path root",
                        extra={"kv": {"error": str(err)}})
        self.pvs.add_handler(on_add=self._reclaim, on_update=lambda old, new: self._reclaim(new))
        self.pods.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                              on_delete=self._enqueue)
        self.pods.start()
        self.services.start()
        for source in (self.configmaps, self.secrets):
            source.add_handler(on_add=self._source_changed,
                               on_update=lambda old, new: self._source_changed(new))
            source.start()
        self.pvs.start()
        # Supervised: a loop that raised would leave the node silently half-dead.
        tasks: list[asyncio.Task[Any]] = [spawn("kubelet-node", self.node.run, logger=log)]
        try:
            await self.pods.wait_synced()
            await self.services.wait_synced()
            log.info("kubelet synced", extra={"kv": {"node": self.config.node_name,
                                                     "pods": len(self.pods.list())}})
            tasks.append(spawn("kubelet-pleg", self.pleg.run, logger=log))
            tasks.append(spawn("kubelet-stats", self.stats.run, logger=log))
            tasks.append(spawn("kubelet-dispatch", self._dispatch, logger=log))
            self.ready.set()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        self.queue.shut_down()
        inflight = list(self._inflight)
        for task in inflight:
            task.cancel()
        await asyncio.gather(*tasks, *inflight, return_exceptions=True)
        await self.prober.stop()
        await self.pods.stop()
        await self.services.stop()
        await self.configmaps.stop()
        await self.secrets.stop()
        await self.pvs.stop()
        if self.config.kill_pods_on_exit:
            containers = [c for c in await self.runtime.list_containers() if not c.exited]
            log.info("stopping every container (--kill-pods-on-exit)",
                     extra={"kv": {"containers": len(containers)}})
            await asyncio.gather(*(self.runtime.stop_container(c.id, grace=1.0)
                                   for c in containers), return_exceptions=True)
        else:
            log.info("leaving containers running for the next kubelet to adopt")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flush(), 1.0)
        await self.recorder.stop()
        await self.runtime.close()
