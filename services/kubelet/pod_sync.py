"""One pod's sync: converge the runtime's containers to the pod, then publish status.

`PodSyncer.sync(uid)` is level-triggered and safe to run again at any time; the
kubelet runs at most one sync per pod at once (the work queue guarantees it).
It reads the pod from the informer cache and the containers from the runtime,
and then does one of three things:

- **the Pod object is gone** (deleted, or never seen by this kubelet since a
  restart): kill whatever still runs for that uid, remove its containers and
  sandbox;
- **the pod has a deletionTimestamp**: stop every container (SIGTERM, the grace
  period, SIGKILL; a later, shorter deletion or a force delete cuts the wait
  short), publish the final status and confirm the deletion with a uid-guarded
  delete of grace 0;
- a pod seen for the first time is admitted only if the node has room for its
  requests next to the pods already admitted (else it fails: OutOfcpu, ...);
- otherwise, the init containers first, in order (`_sync_init`): each regular
  one runs to completion before the next; a sidecar (restartPolicy Always) must
  run, past its startup probe, before the next, and keeps running. Until they
  are done the app containers wait with PodInitializing. Then, for each
  container of the spec: start it if it never ran; kill it if its liveness or
  startup probe failed or its spec changed; restart it when it has exited and
  restartPolicy says so, unless CrashLoopBackOff says wait (then the sync asks
  to run again when the back-off ends).

A start runs the postStart hook (a failure kills the container); a stop runs
the preStop hook first, within the grace period, and on deletion the sidecars
stop after the app containers, in reverse order.

Before a start, a runtime with an image service (docker) gets the image as
imagePullPolicy says (the kubelet's image manager): a failed pull waits with
ErrImagePull, then ImagePullBackOff while a back-off like CrashLoopBackOff
runs. Where the policy says Always but the pull fails and the node has the
image, the node's copy runs, with a Warning event: an air-gapped node can run
the `:latest` images it was loaded with (docs/docker-runtime.md).

Status is computed from what was observed (services.kubelet.status) and written
only when it changed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kubelite.client import Client
from kubelite.errors import ConflictError, NotFoundError, PreconditionFailedError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.objects import now_rfc3339
from kubelite.quantity import cpu_millis, to_int
from services.kubelet import metrics
from services.kubelet.backoff import CrashLoopBackoff, go_duration
from services.kubelet.dnsconfig import DnsConfigurer, host_aliases
from services.kubelet.envvars import (
    EnvError,
    build_env,
    configmap_names,
    expand_command,
    secret_names,
)
from services.kubelet.hooks import describe_handler, run_handler
from services.kubelet.prober import ProbeManager, ProbeType
from services.kubelet.prober import Result as ProbeResult
from services.kubelet.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    Container,
    ContainerConfig,
    ContainerConfigError,
    ContainerStartError,
    ImagePullError,
    ImageService,
    PodSandbox,
    PodSandboxConfig,
    PortMapping,
    Runtime,
    RuntimeError_,
)
from services.kubelet.security import SecurityError
from services.kubelet.security import admit as admit_security
from services.kubelet.security import effective as effective_security
from services.kubelet.status import (
    TERMINAL_PHASES,
    ContainerView,
    format_time,
    pod_status,
    should_restart,
)
from services.kubelet.volumes import MountError, Volume, VolumeManager

log = logging.getLogger("kubelite.kubelet.sync")

Obj = dict[str, Any]
SHORTEN_POLL_SECONDS = 0.1


def decode_secret_value(value: object) -> str:
    """A Secret's data value as an environment string (bytes that are no UTF-8 are
    replaced: an environment cannot hold arbitrary bytes on every runtime)."""
    try:
        return base64.b64decode(str(value)).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def container_hash(spec: Obj) -> str:
    """A stable hash of a container's spec: a running container whose hash differs is
    restarted (only the image of a pod's container may change)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def pod_ref(pod: Obj) -> str:
    """name_namespace(uid), as the kubelet's format.Pod writes it."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def instances_by_name(containers: list[Container]) -> dict[str, list[Container]]:
    """Each container name's instances, oldest first."""
    out: dict[str, list[Container]] = {}
    for c in sorted(containers, key=lambda c: (c.restart_count, c.created_at)):
        out.setdefault(c.name, []).append(c)
    return out


def _requests(c: Obj) -> dict[str, int]:
    requests = (c.get("resources") or {}).get("requests") or {}
    return {"cpu": cpu_millis(requests.get("cpu")), "memory": to_int(requests.get("memory"))}


def pod_requests(pod: Obj) -> dict[str, int]:
    """The pod's cpu (millicores) and memory (bytes) requests, as Kubernetes' PodRequests:
    the app containers and sidecars summed, or more if an init container (with the
    sidecars started before it) needs more while it runs."""
    spec = pod.get("spec") or {}
    total = {"cpu": 0, "memory": 0}
    for c in spec.get("containers") or []:
        for key, value in _requests(c).items():
            total[key] += value
    sidecars = {"cpu": 0, "memory": 0}
    peak = {"cpu": 0, "memory": 0}
    for c in spec.get("initContainers") or []:
        wanted = _requests(c)
        if is_sidecar(c):
            for key, value in wanted.items():
                sidecars[key] += value
                peak[key] = max(peak[key], sidecars[key])
        else:
            for key, value in wanted.items():
                peak[key] = max(peak[key], sidecars[key] + value)
    return {key: max(total[key] + sidecars[key], peak[key]) for key in total}


def admission_failure(pod: Obj, admitted: list[Obj],
                      allocatable: dict[str, str]) -> tuple[str, str] | None:
    """Why the node cannot take pod next to the admitted pods (reason, message), if it cannot.

    The kubelet's own check (as its predicate admit handler): the scheduler may have been
    bypassed by a pod created with spec.nodeName set.
    """
    pods_cap = to_int(allocatable.get("pods", "110"))
    if len(admitted) + 1 > pods_cap:
        return ("OutOfpods", "Pod was rejected: Node didn't have enough resource: pods, "
                f"requested: 1, used: {len(admitted)}, capacity: {pods_cap}")
    wanted = pod_requests(pod)
    for resource in ("cpu", "memory"):
        if not wanted[resource]:
            continue
        capacity = (cpu_millis(allocatable.get("cpu")) if resource == "cpu"
                    else to_int(allocatable.get("memory")))
        used = sum(pod_requests(p)[resource] for p in admitted)
        if used + wanted[resource] > capacity:
            return (f"OutOf{resource}", "Pod was rejected: Node didn't have enough resource: "
                    f"{resource}, requested: {wanted[resource]}, used: {used}, "
                    f"capacity: {capacity}")
    return None


def image_pull_policy(cspec: Obj) -> str:
    """The container's imagePullPolicy, defaulted as the apiserver does (:latest: Always)."""
    if cspec.get("imagePullPolicy"):
        return str(cspec["imagePullPolicy"])
    image = str(cspec.get("image", ""))
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def port_mappings(spec: Obj) -> tuple[PortMapping, ...]:
    """Every container port of the pod, for its sandbox (hostPorts are published)."""
    return tuple(
        PortMapping(container_port=int(p["containerPort"]), protocol=p.get("protocol", "TCP"),
                    host_port=int(p.get("hostPort") or 0), host_ip=p.get("hostIP", ""))
        for c in spec.get("containers") or [] for p in c.get("ports") or []
        if p.get("containerPort"))


def grace_period(pod: Obj) -> float:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(0.0, float(grace))


def is_sidecar(cspec: Obj) -> bool:
    """An init container with restartPolicy Always: a sidecar (Kubernetes 1.29+)."""
    return cspec.get("restartPolicy") == "Always"


@dataclass(frozen=True)
class _InitResult:
    views: list[ContainerView]
    initialized: bool  # every regular init container succeeded (or the app ran already)
    failed: bool  # one failed under restartPolicy Never: the pod fails


@dataclass
class _PodState:
    """What the kubelet remembers of a pod between syncs."""

    first_seen: float = field(default_factory=time.monotonic)
    start_observed: bool = False
    status_rv: int = 0  # the resourceVersion our last status write produced
    status: Obj | None = None
    pull_failures: dict[str, tuple[float, str]] = field(default_factory=dict)  # image: when, why
    volumes: dict[str, Volume] = field(default_factory=dict)  # as the last setup made them
    mount_error: str = ""  # why the last setup failed (FailedMount): nothing starts meanwhile
    pre_stopped: set[str] = field(default_factory=set)  # instances whose preStop hook ran


class PodSyncer:
    def __init__(
        self,
        *,
        client: Client,
        runtime: Runtime,
        prober: ProbeManager,
        backoff: CrashLoopBackoff,
        recorder: EventRecorder,
        node_name: str,
        host_ip: str,
        allocatable: dict[str, str],
        orphan_grace: float,
        retry_delay: float,
        get_pod: Callable[[str], Obj | None],
        services_in: Callable[[str], list[Obj]],
        list_pods: Callable[[], list[Obj]] = list,
        images: ImageService | None = None,
        dns: DnsConfigurer | None = None,
        allow_privileged: bool = False,
        volumes: VolumeManager | None = None,
    ) -> None:
        self.client = client
        self.dns = dns
        self.allow_privileged = allow_privileged
        self.runtime = runtime
        self.prober = prober
        self.backoff = backoff
        self.recorder = recorder
        self.node_name = node_name
        self.host_ip = host_ip
        self.allocatable = allocatable
        self.orphan_grace = orphan_grace
        self.retry_delay = retry_delay
        self.get_pod = get_pod
        self.services_in = services_in
        self.list_pods = list_pods
        self.images = images
        self.volumes = volumes
        self._pods: dict[str, _PodState] = {}
        self._admitted: set[str] = set()

    # -- entry point ----------------------------------------------------------

    async def sync(self, uid: str) -> float | None:
        """Converges one pod; returns seconds after which it wants another sync, if any."""
        pod = self.get_pod(uid)
        if pod is None:
            await self.cleanup(uid)
            return None
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self.terminate(pod)
            return None
        return await self.sync_pod(pod)

    # -- running pods -----------------------------------------------------------

    async def sync_pod(self, pod: Obj) -> float | None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        state = self._pods.get(uid)
        existing = await self.runtime.list_containers(pod_uid=uid)
        if state is None:
            # A pod that ran before this kubelet did started long ago: not a start to time.
            state = self._pods[uid] = _PodState(start_observed=bool(existing))
        old_status = self._base_status(pod, state)
        terminal = old_status.get("phase") in TERMINAL_PHASES
        policy = spec.get("restartPolicy", "Always")
        if terminal and not existing:
            return None  # finished (or rejected) before this kubelet ran anything of it
        if not terminal and uid not in self._admitted:
            if existing or old_status.get("containerStatuses"):
                self._admitted.add(uid)  # it ran before (this kubelet restarted)
            else:
                rejected = (self.volumes.refusal(pod) if self.volumes is not None
                            else None) or self._admit(pod)
                if rejected is not None:
                    reason, message = rejected
                    self.recorder.event(pod, WARNING, reason, message)
                    status = dict(old_status, phase="Failed", reason=reason, message=message)
                    await self._publish(pod, state, old_status, status)
                    return None
        sandbox: PodSandbox | None = None
        if not terminal:
            sandbox = await self.runtime.run_pod_sandbox(
                PodSandboxConfig(uid=uid, namespace=meta.get("namespace", ""),
                                 name=meta["name"], hostname=spec.get("hostname", ""),
                                 labels=meta.get("labels") or {},
                                 port_mappings=port_mappings(spec),
                                 dns=self.dns.pod_dns(pod) if self.dns else None,
                                 host_aliases=host_aliases(pod)),
                preferred_ip=old_status.get("podIP", ""))
        pod_ip = sandbox.ip if sandbox else old_status.get("podIP", "")
        requeue: list[float] = []
        state.mount_error = ""
        if not terminal and self.volumes is not None:
            evicted = await asyncio.to_thread(self.volumes.over_size_limit, pod) \
                if existing else None
            if evicted is not None:
                await self._evict(pod, state, old_status, evicted)
                return None
            try:
                state.volumes = await self.volumes.setup(pod, pod_ip=pod_ip)
            except MountError as err:
                state.mount_error = str(err)
                self.recorder.event(pod, WARNING, "FailedMount", state.mount_error)
                requeue.append(self.retry_delay)
        by_name = instances_by_name(existing)
        app_specs = spec.get("containers") or []
        init = await self._sync_init(pod, by_name, sandbox, terminal, requeue)
        views: list[ContainerView] = []
        for cspec in app_specs:
            if not init.initialized:
                instances = by_name.get(cspec["name"], [])
                views.append(ContainerView(
                    name=cspec["name"], image=cspec.get("image", ""),
                    current=instances[-1] if instances else None,
                    waiting_reason="PodInitializing"))
                continue
            views.append(await self._converge(pod, cspec, by_name.get(cspec["name"], []),
                                              sandbox, policy, terminal, requeue))
        sidecar_specs = [c for c in spec.get("initContainers") or [] if is_sidecar(c)]
        # Probe workers first, so that the flags below read this instance's results.
        probed = dict(pod, spec=dict(spec, containers=[*app_specs, *sidecar_specs]))
        self.prober.update_pod(probed, {v.name: v.current for v in [*views, *init.views]
                                        if v.current is not None and v.current.running},
                               pod_ip)
        specs = {c["name"]: c for c in [*app_specs, *sidecar_specs]}

        def probed_view(v: ContainerView) -> ContainerView:
            if v.name not in specs or v.current is None or not v.current.running:
                return v
            return replace(v, ready=self.prober.ready(v.current.id, specs[v.name]),
                           started=self.prober.started(v.current.id))
        views = [probed_view(v) for v in views]
        init_views = [probed_view(v) for v in init.views]
        status = pod_status(dict(pod, status=old_status), views, pod_ip=pod_ip,
                            host_ip=self.host_ip, scheme=self.runtime.name, now=now_rfc3339(),
                            start_time=format_time(time.time()), init_views=init_views,
                            initialized=init.initialized, init_failed=init.failed)
        if not state.start_observed and views and all(
                v.current is not None and v.current.running for v in views):
            state.start_observed = True
            metrics.POD_START_DURATION.observe(time.monotonic() - state.first_seen)
        await self._publish(pod, state, old_status, status)
        return min(requeue) if requeue else None

    async def _sync_init(self, pod: Obj, by_name: dict[str, list[Container]],
                         sandbox: PodSandbox | None, terminal: bool,
                         requeue: list[float]) -> _InitResult:
        """Runs the init containers in order, as the kubelet's computeInitContainerActions.

        A regular init container runs to completion before the next one starts; a sidecar
        (restartPolicy Always) must be running, and past its startup probe if it has one,
        before the next one starts, and keeps running (restarted whenever it exits) until
        the app containers are done. The pod is initialized once every regular init
        container has succeeded, or once an app container ever ran (a restarted kubelet
        does not run them again).
        """
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        init_policy = "Never" if policy == "Never" else "OnFailure"
        init_specs = spec.get("initContainers") or []
        app_names = [c["name"] for c in spec.get("containers") or []]
        initialized = any(by_name.get(name) for name in app_names)
        apps_done = initialized and policy != "Always" and all(
            by_name.get(name) and by_name[name][-1].exited
            and not should_restart(policy, by_name[name][-1].exit_code) for name in app_names)
        views: list[ContainerView] = []
        blocked = failed = False
        for ic in init_specs:
            name = ic["name"]
            instances = by_name.get(name, [])
            cur = instances[-1] if instances else None
            prev = instances[-2] if len(instances) > 1 else None
            if blocked:
                views.append(ContainerView(name=name, image=ic.get("image", ""), current=cur,
                                           previous=prev, waiting_reason="PodInitializing"))
                continue
            if is_sidecar(ic):
                if apps_done or terminal:
                    if cur is not None and cur.running:
                        cur = await self._stop_one(pod, ic, cur, grace_period(pod))
                    views.append(ContainerView(name=name, image=ic.get("image", ""),
                                               current=cur, previous=prev))
                    continue
                view = await self._converge(pod, ic, instances, sandbox, "Always", terminal,
                                            requeue)
                views.append(view)
                cur = view.current
                up = cur is not None and cur.running and (
                    not ic.get("startupProbe")
                    or self.prober.result(cur.id, ProbeType.STARTUP) is ProbeResult.SUCCESS)
                if not up and not initialized:
                    blocked = True
                continue
            if initialized or (cur is not None and cur.exited and cur.exit_code == 0):
                views.append(ContainerView(name=name, image=ic.get("image", ""), current=cur,
                                           previous=prev))
                continue
            view = await self._converge(pod, ic, instances, sandbox, init_policy, terminal,
                                        requeue)
            views.append(view)
            cur = view.current
            if cur is not None and cur.exited and cur.exit_code != 0 and policy == "Never":
                failed = True
            blocked = True
        return _InitResult(views=views, initialized=initialized or not blocked, failed=failed)

    async def _converge(self, pod: Obj, cspec: Obj, instances: list[Container],
                        sandbox: PodSandbox | None, policy: str, terminal: bool,
                        requeue: list[float]) -> ContainerView:
        """One container toward its spec: kill it for a failed probe or a changed spec,
        start it (again) as policy and the back-off say; returns what it is now."""
        uid = pod["metadata"]["uid"]
        name = cspec["name"]
        cur = instances[-1] if instances else None
        prev = instances[-2] if len(instances) > 1 else None
        wanted_hash = container_hash(cspec)
        waiting_reason = waiting_message = ""
        if cur is not None and cur.running and not terminal:
            failed = self.prober.failed(cur.id)
            if failed is not None or cur.spec_hash != wanted_hash:
                cur = await self._kill_for_restart(pod, cspec, cur, failed)
        if not terminal and (cur is None or cur.exited):
            key = (uid, name)
            start_again = cur is None or should_restart(policy, cur.exit_code) or (
                cur.spec_hash != wanted_hash and policy != "Never")
            if start_again and cur is not None:
                remaining = self.backoff.remaining(key, cur.finished_at or time.time())
                if remaining > 0:
                    start_again = False
                    waiting_reason = "CrashLoopBackOff"
                    waiting_message = (f"back-off {go_duration(self.backoff.get(key))} "
                                       f"restarting failed container={name} "
                                       f"pod={pod_ref(pod)}")
                    self.recorder.event(pod, WARNING, "BackOff",
                                        f"Back-off restarting failed container {name} in "
                                        f"pod {pod_ref(pod)}")
                    requeue.append(remaining)
                else:
                    self.backoff.next(key, cur.finished_at or time.time())
            if start_again and (self._pods.get(uid) or _PodState()).mount_error:
                start_again = False  # the volumes first: ContainerCreating meanwhile
                waiting_reason = "ContainerCreating"
            if start_again:
                assert sandbox is not None
                restart_count = cur.restart_count + 1 if cur is not None else 0
                started, error = await self._start(pod, cspec, sandbox, restart_count,
                                                   wanted_hash)
                if started is not None:
                    if cur is not None:
                        metrics.CONTAINER_RESTARTS.inc()
                    prev, cur = cur, started
                    await self._remove_old(instances[:-1])
                else:
                    waiting_reason, waiting_message = error
                    requeue.append(self.retry_delay)
        return ContainerView(name=name, image=cspec.get("image", ""), current=cur,
                             previous=prev, waiting_reason=waiting_reason,
                             waiting_message=waiting_message)

    def _admit(self, pod: Obj) -> tuple[str, str] | None:
        """Admits pod (no await inside: concurrent syncs cannot both take the last room)."""
        uid = pod["metadata"]["uid"]
        def holds_room(p: Obj) -> bool:
            status = p.get("status") or {}
            if p["metadata"].get("uid") == uid or status.get("phase") in TERMINAL_PHASES:
                return False
            # After a restart, a pod that ran before counts even before its first sync.
            return p["metadata"].get("uid") in self._admitted or bool(
                status.get("containerStatuses"))
        admitted = [p for p in self.list_pods() if holds_room(p)]
        failure = admission_failure(pod, admitted, self.allocatable)
        if failure is None:
            self._admitted.add(uid)
        return failure

    def _base_status(self, pod: Obj, state: _PodState) -> Obj:
        """The status to build on: ours, if the cache has not caught up with our last write."""
        cached = pod.get("status") or {}
        rv = int((pod.get("metadata") or {}).get("resourceVersion") or 0)
        if state.status is not None and state.status_rv > rv:
            return state.status
        return cached

    async def _publish(self, pod: Obj, state: _PodState, old: Obj, status: Obj) -> None:
        if status == old:
            return
        body = {k: v for k, v in pod.items() if k != "status"}
        body["metadata"] = {k: v for k, v in pod["metadata"].items() if k != "resourceVersion"}
        body["status"] = status
        try:
            updated = await self.client.update_status("pods", body)
        except (NotFoundError, ConflictError):
            return  # gone, or replaced by a pod of the same name: a later sync sees it
        state.status = updated.get("status") or status
        state.status_rv = int(updated["metadata"].get("resourceVersion") or 0)

    async def _start(self, pod: Obj, cspec: Obj, sandbox: PodSandbox, restart_count: int,
                     spec_hash: str) -> tuple[Container | None, tuple[str, str]]:
        """Starts one instance; returns it, or None and (waiting reason, message)."""
        meta = pod["metadata"]
        name = cspec["name"]
        pull_error = await self._ensure_image(pod, cspec)
        if pull_error is not None:
            return None, pull_error
        try:
            config = await self._container_config(pod, cspec, sandbox, restart_count, spec_hash)
            container = await self.runtime.start_container(sandbox, config)
        except (EnvError, ContainerConfigError) as err:
            self.recorder.event(pod, WARNING, "Failed", f"Error: {err}")
            return None, ("CreateContainerConfigError", str(err))
        except (ContainerStartError, RuntimeError_, OSError) as err:
            self.recorder.event(pod, WARNING, "Failed", f"Error: {err}")
            return None, ("RunContainerError", str(err))
        self.recorder.event(pod, NORMAL, "Created", f"Created container {name}")
        if container.exited and container.reason == "StartError":
            self.recorder.event(pod, WARNING, "Failed", f"Error: {container.message}")
        else:
            self.recorder.event(pod, NORMAL, "Started", f"Started container {name}")
            container = await self._post_start(pod, cspec, sandbox, container)
        log.info("container started", extra={"kv": {
            "pod": f"{meta.get('namespace')}/{meta.get('name')}", "container": name,
            "id": container.id, "restartCount": restart_count}})
        return container, ("", "")

    async def _ensure_image(self, pod: Obj, cspec: Obj) -> tuple[str, str] | None:
        """The kubelet's EnsureImageExists: None when the image is there to run, else the
        waiting (reason, message). Failed pulls back off per pod and image."""
        if self.images is None:
            return None
        image = str(cspec.get("image", ""))
        policy = image_pull_policy(cspec)
        present = await self.images.image_present(image)
        if policy == "Never" or (policy == "IfNotPresent" and present):
            if present:
                self.recorder.event(pod, NORMAL, "Pulled",
                                    f'Container image "{image}" already present on machine')
                return None
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.recorder.event(pod, WARNING, "ErrImageNeverPull", message)
            return "ErrImageNeverPull", message
        uid = pod["metadata"]["uid"]
        key = (uid, "pull", image)
        state = self._pods.setdefault(uid, _PodState())
        failed = state.pull_failures.get(image)
        if failed is not None and self.backoff.remaining(key, failed[0]) > 0:
            if present:
                return None  # the pull failed lately: the node's copy, without asking again
            self.recorder.event(pod, NORMAL, "BackOff", f'Back-off pulling image "{image}"')
            self.recorder.event(pod, WARNING, "Failed", "Error: ImagePullBackOff")
            return ("ImagePullBackOff",
                    f'Back-off pulling image "{image}": ErrImagePull: {failed[1]}')
        self.recorder.event(pod, NORMAL, "Pulling", f'Pulling image "{image}"')
        start = time.monotonic()
        try:
            await self.images.pull_image(image)
        except ImagePullError as err:
            now = time.time()
            self.backoff.next(key, now)
            state.pull_failures[image] = (now, str(err))
            if present:
                self.recorder.event(pod, WARNING, "Failed",
                                    f'Failed to pull image "{image}": {err}; running the image '
                                    "present on the node")
                return None
            self.recorder.event(pod, WARNING, "Failed", f'Failed to pull image "{image}": {err}')
            self.recorder.event(pod, WARNING, "Failed", "Error: ErrImagePull")
            return "ErrImagePull", str(err)
        state.pull_failures.pop(image, None)
        self.backoff.forget(lambda k: k == key)
        self.recorder.event(pod, NORMAL, "Pulled", f'Successfully pulled image "{image}" in '
                                                   f"{go_duration(time.monotonic() - start)}")
        return None

    async def _container_config(self, pod: Obj, cspec: Obj, sandbox: PodSandbox,
                                restart_count: int, spec_hash: str) -> ContainerConfig:
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        configmaps: dict[str, dict[str, str] | None] = {}
        for cm in configmap_names(cspec):
            try:
                configmaps[cm] = (await self.client.get("configmaps", cm,
                                                        namespace=namespace)).get("data") or {}
            except NotFoundError:
                configmaps[cm] = None
        secrets: dict[str, dict[str, str] | None] = {}
        for name in secret_names(cspec):
            try:
                found = await self.client.get("secrets", name, namespace=namespace)
            except NotFoundError:
                secrets[name] = None
                continue
            secrets[name] = {k: decode_secret_value(v)
                             for k, v in (found.get("data") or {}).items()}
        warnings: list[str] = []
        env = build_env(pod, cspec, pod_ip=sandbox.ip, host_ip=self.host_ip,
                        node_name=self.node_name, services=self.services_in(namespace),
                        configmaps=configmaps, secrets=secrets, allocatable=self.allocatable,
                        warnings=warnings)
        for warning in warnings:
            self.recorder.event(pod, WARNING, "InvalidEnvironmentVariableNames", warning)
        command, args = expand_command(cspec, env)
        security = effective_security(pod.get("spec") or {}, cspec)
        try:
            admit_security(security, allow_privileged=self.allow_privileged)
        except SecurityError as err:
            raise ContainerConfigError(str(err)) from None
        resources = cspec.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        memory_limit = to_int(limits["memory"]) if limits.get("memory") else 0
        state = self._pods.get(meta["uid"]) or _PodState()
        mounts = VolumeManager.mounts_for(cspec, state.volumes)
        if self.runtime.name == "process" and any(m.read_only for m in mounts):
            self.recorder.event(pod, WARNING, "ReadOnlyNotEnforced",
                                f"container {cspec['name']}: the process runtime cannot make a "
                                "mount read-only; readOnly is not enforced (docs/volumes.md)")
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        return ContainerConfig(
            pod_uid=meta["uid"], pod_namespace=namespace, pod_name=meta["name"],
            name=cspec["name"], image=cspec.get("image", ""), command=command, args=args,
            env=env, working_dir=cspec.get("workingDir", ""), restart_count=restart_count,
            spec_hash=spec_hash, memory_limit=memory_limit,
            labels={LABEL_POD_UID: meta["uid"], LABEL_POD_NAME: meta["name"],
                    LABEL_POD_NAMESPACE: namespace, LABEL_CONTAINER_NAME: cspec["name"]},
            cpu_limit=cpu_millis(limits.get("cpu")), cpu_request=cpu_millis(requests.get("cpu")),
            memory_request=to_int(requests["memory"]) if requests.get("memory") else 0,
            termination_message_path=str(cspec.get("terminationMessagePath") or ""),
            termination_message_policy=str(cspec.get("terminationMessagePolicy") or "File"),
            security=None if security.is_default else security,
            mounts=tuple(mounts), fs_group=int(fs_group) if fs_group is not None else None,
        )

    async def _post_start(self, pod: Obj, cspec: Obj, sandbox: PodSandbox,
                          container: Container) -> Container:
        """Runs the postStart hook, as the kubelet does right after the start; a failed
        hook kills the container (FailedPostStartHook), which then restarts as any
        container that exited."""
        handler = (cspec.get("lifecycle") or {}).get("postStart")
        if not handler:
            return container
        grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        error = await run_handler(self.runtime, handler, cspec, container, sandbox.ip,
                                  time_limit=max(grace, 1.0))
        if error is None:
            return container
        name = cspec["name"]
        message = (f"{describe_handler(handler)} for Container \"{name}\" in Pod "
                   f"\"{pod_ref(pod)}\" failed - error: {error}")
        self.recorder.event(pod, WARNING, "FailedPostStartHook", message)
        self.recorder.event(pod, NORMAL, "Killing",
                            f"FailedPostStartHook: Container {name} failed post-start hook, "
                            "will be restarted")
        await self.runtime.stop_container(container.id, grace=grace)
        return await self.runtime.container_status(container.id) or container

    async def _stop_one(self, pod: Obj, cspec: Obj | None, cur: Container,
                        grace: float) -> Container:
        """Stops one instance: its preStop hook first (once per instance), then SIGTERM
        and SIGKILL at the end of what the hook left of the grace period."""
        deadline = time.monotonic() + grace
        handler = ((cspec or {}).get("lifecycle") or {}).get("preStop")
        state = self._pods.setdefault(pod["metadata"]["uid"], _PodState())
        if handler and cur.running and cur.id not in state.pre_stopped and cspec is not None:
            state.pre_stopped.add(cur.id)
            pod_ip = (pod.get("status") or {}).get("podIP", "")
            try:
                async with asyncio.timeout(max(grace, 0.1)):
                    error = await run_handler(self.runtime, handler, cspec, cur, pod_ip,
                                              time_limit=grace)
            except TimeoutError:
                error = f"the hook did not finish within the grace period ({grace:g}s)"
            if error is not None:
                self.recorder.event(pod, WARNING, "FailedPreStopHook",
                                    f"{describe_handler(handler)} for Container "
                                    f"\"{cspec['name']}\" in Pod \"{pod_ref(pod)}\" failed - "
                                    f"error: {error}")
        await self.runtime.stop_container(cur.id, grace=max(0.0, deadline - time.monotonic()))
        return await self.runtime.container_status(cur.id) or cur

    async def _kill_for_restart(self, pod: Obj, cspec: Obj, cur: Container,
                                failed: ProbeType | None) -> Container:
        name = cspec["name"]
        if failed is not None:
            message = f"Container {name} failed {failed.value.lower()} probe, will be restarted"
        else:
            message = f"Container {name} definition changed, will be restarted"
        self.recorder.event(pod, NORMAL, "Killing", message)
        spec = pod.get("spec") or {}
        probe = cspec.get(f"{failed.value.lower()}Probe") if failed else None
        grace = (probe or {}).get("terminationGracePeriodSeconds",
                                  spec.get("terminationGracePeriodSeconds", 30))
        return await self._stop_one(pod, cspec, cur, float(grace))

    async def _remove_old(self, older: list[Container]) -> None:
        """Removes instances older than the previous one: one dead instance per container
        is kept, for `logs --previous`."""
        for old in older:
            if old.exited:
                try:
                    await self.runtime.remove_container(old.id)
                except RuntimeError_ as err:
                    log.warning("cannot remove container", extra={"kv": {"id": old.id,
                                                                         "error": str(err)}})

    async def _evict(self, pod: Obj, state: _PodState, old_status: Obj, message: str) -> None:
        """The kubelet's eviction of a pod over an emptyDir sizeLimit: its containers stop
        and it fails with reason Evicted, as Kubernetes' eviction manager does."""
        uid = pod["metadata"]["uid"]
        self.recorder.event(pod, WARNING, "Evicted", message)
        log.info("evicting pod", extra={"kv": {"pod": pod_ref(pod), "reason": message}})
        self.prober.remove_pod(uid)
        live = [c for c in await self.runtime.list_containers(pod_uid=uid) if not c.exited]
        for c in live:
            self.recorder.event(pod, NORMAL, "Killing", f"Stopping container {c.name}")
        await self._stop_all(live, grace_period(pod))
        by_name = instances_by_name(await self.runtime.list_containers(pod_uid=uid))
        views = [ContainerView(name=c["name"], image=c.get("image", ""),
                               current=(by_name.get(c["name"]) or [None])[-1])
                 for c in (pod.get("spec") or {}).get("containers") or []]
        base = dict(old_status, phase="Failed", reason="Evicted", message=message)
        status = pod_status(dict(pod, status=base), views, pod_ip=old_status.get("podIP", ""),
                            host_ip=self.host_ip, scheme=self.runtime.name, now=now_rfc3339())
        await self._publish(pod, state, old_status, status)

    # -- deletion ---------------------------------------------------------------

    async def terminate(self, pod: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        containers = await self.runtime.list_containers(pod_uid=uid)
        live = [c for c in containers if not c.exited]
        grace = grace_period(pod)
        self.prober.remove_pod(uid)
        for c in live:
            self.recorder.event(pod, NORMAL, "Killing", f"Stopping container {c.name}")
        await self._stop_all_shortenable(pod, live, grace)
        state = self._pods.setdefault(uid, _PodState())
        by_name = instances_by_name(await self.runtime.list_containers(pod_uid=uid))
        def stopped(cspecs: list[Obj]) -> list[ContainerView]:
            out = []
            for cspec in cspecs:
                instances = by_name.get(cspec["name"], [])
                out.append(ContainerView(
                    name=cspec["name"], image=cspec.get("image", ""),
                    current=instances[-1] if instances else None,
                    previous=instances[-2] if len(instances) > 1 else None))
            return out
        spec = pod.get("spec") or {}
        views = stopped(spec.get("containers") or [])
        init_views = stopped(spec.get("initContainers") or [])
        old_status = self._base_status(pod, state)
        initialized = not init_views or any(v.current is not None for v in views)
        status = pod_status(dict(pod, status=old_status), views,
                            pod_ip=old_status.get("podIP", ""), host_ip=self.host_ip,
                            scheme=self.runtime.name, now=now_rfc3339(), terminating=True,
                            init_views=init_views, initialized=initialized)
        await self._publish(pod, state, old_status, status)
        try:
            await self.client.delete("pods", meta["name"], namespace=meta.get("namespace"),
                                     grace_period_seconds=0, uid=uid)
            log.info("pod deleted", extra={"kv": {
                "pod": f"{meta.get('namespace')}/{meta['name']}", "uid": uid}})
        except (NotFoundError, PreconditionFailedError):
            pass  # already gone (or a new pod took the name)

    async def _stop_all_shortenable(self, pod: Obj, containers: list[Container],
                                    grace: float) -> None:
        """Stops the containers within grace, cut short when the deletion is made shorter
        meanwhile (a second delete with a smaller grace, or a force delete)."""
        uid = pod["metadata"]["uid"]
        start = time.monotonic()
        deadline = start + grace
        task = asyncio.create_task(self._stop_all(containers, grace, pod=pod))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=SHORTEN_POLL_SECONDS)
                current = self.get_pod(uid)
                wanted = self.orphan_grace if current is None else grace_period(current)
                now = time.monotonic()
                if not task.done() and now + wanted < deadline - SHORTEN_POLL_SECONDS:
                    deadline = now + wanted
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    log.info("grace period shortened", extra={"kv": {
                        "uid": uid, "grace": wanted}})
                    task = asyncio.create_task(self._stop_all(containers, wanted, pod=pod))
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _stop_all(self, containers: list[Container], grace: float, *,
                        pod: Obj | None = None) -> None:
        """Stops containers within grace. With their pod: preStop hooks run, and the
        sidecars stop after the other containers, in reverse order (Kubernetes 1.29)."""
        if pod is None:
            await self._stop_group(None, containers, grace)
            return
        deadline = time.monotonic() + grace
        spec = pod.get("spec") or {}
        sidecars = [c["name"] for c in spec.get("initContainers") or [] if is_sidecar(c)]
        await self._stop_group(pod, [c for c in containers if c.name not in sidecars], grace)
        for name in reversed(sidecars):
            await self._stop_group(pod, [c for c in containers if c.name == name],
                                   max(0.0, deadline - time.monotonic()))

    async def _stop_group(self, pod: Obj | None, containers: list[Container],
                          grace: float) -> None:
        specs = {} if pod is None else {
            c["name"]: c for key in ("initContainers", "containers")
            for c in (pod.get("spec") or {}).get(key) or []}
        if pod is None:
            stops = [self.runtime.stop_container(c.id, grace=grace) for c in containers]
        else:
            stops = [self._stop_one(pod, specs.get(c.name), c, grace) for c in containers]
        results = await asyncio.gather(*stops, return_exceptions=True)
        for c, result in zip(containers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("cannot stop container", extra={"kv": {"id": c.id,
                                                                   "error": str(result)}})

    async def cleanup(self, uid: str) -> None:
        """The Pod object is gone: nothing of it may keep running or linger on disk."""
        self.prober.remove_pod(uid)
        containers = await self.runtime.list_containers(pod_uid=uid)
        live = [c for c in containers if not c.exited]
        if live:
            log.info("killing containers of a pod that no longer exists", extra={"kv": {
                "uid": uid, "containers": ",".join(c.name for c in live)}})
            await self._stop_all(live, self.orphan_grace)
        for c in containers:
            try:
                await self.runtime.remove_container(c.id)
            except RuntimeError_ as err:
                log.warning("cannot remove container", extra={"kv": {"id": c.id,
                                                                     "error": str(err)}})
        await self.runtime.remove_pod_sandbox(uid)
        if self.volumes is not None:
            await asyncio.to_thread(self.volumes.teardown, uid)
        self.backoff.forget(lambda key: isinstance(key, tuple) and key[0] == uid)
        self._pods.pop(uid, None)
        self._admitted.discard(uid)

    # -- helpers for the kubelet ------------------------------------------------

    def known_uids(self) -> list[str]:
        return list(self._pods)


__all__ = ["PodSyncer", "container_hash", "grace_period", "image_pull_policy",
           "instances_by_name", "pod_ref", "port_mappings"]
