"""Liveness, readiness and startup probes: one asyncio task per container instance
and probe type, as the kubelet's prober workers.

A worker waits initialDelaySeconds after the container started, then probes
every periodSeconds with a timeoutSeconds deadline. successThreshold
consecutive successes make the result Success, failureThreshold consecutive
failures make it Failure. Only a *change* of result is reported, through
`on_change(pod_uid)`, which queues the pod for a sync: the sync reads the
results and acts (a liveness or startup Failure kills the container; readiness
sets the ready flag). Liveness and readiness wait until the startup probe, if
any, has succeeded.

`period_scale` multiplies periodSeconds and initialDelaySeconds (whole seconds
in the API), so that tests can probe several times a second.

Initial results, as in Kubernetes: liveness Success, readiness Failure (a
container is not ready before its first successful readiness probe), startup
Unknown (not started). A container adopted after a kubelet restart starts from
the readiness and startup its pod status published instead.

Every failed probe is reported as an `Unhealthy` Warning event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.supervise import spawn
from services.kubelet import metrics
from services.kubelet.runtime import Container, Runtime

log = logging.getLogger("kubelite.kubelet.prober")

Obj = dict[str, Any]
MAX_HTTP_RESPONSE_HEAD = 64 * 1024


class ProbeType(enum.StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


class Result(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


PROBE_FIELDS = {ProbeType.LIVENESS: "livenessProbe", ProbeType.READINESS: "readinessProbe",
                ProbeType.STARTUP: "startupProbe"}


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    message: str = ""


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"port {text!r} is not a named port of container {container.get('name')!r}")


async def http_get(host: str, port: int, path: str, headers: Sequence[Obj], *,
                   time_limit: float, scheme: str = "HTTP") -> ProbeOutcome:
    """One GET; 200 <= status < 400 succeeds (redirects are not followed)."""
    ssl_ctx: Any = None
    if scheme.upper() == "HTTPS":
        import ssl

        ssl_ctx = ssl.create_default_context()
        ssl_ctx.check_hostname = False
        ssl_ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(time_limit):
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx)
            try:
                names = {str(h.get("name", "")).lower() for h in headers}
                lines = [f"GET {path or '/'} HTTP/1.1"]
                if "host" not in names:
                    lines.append(f"Host: {host}:{port}")
                if "user-agent" not in names:
                    lines.append("User-Agent: kube-probe/kubelite")
                if "accept" not in names:
                    lines.append("Accept: */*")
                lines += [f"{h.get('name')}: {h.get('value', '')}" for h in headers]
                lines.append("Connection: close")
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        return ProbeOutcome(False, f'Get "{scheme.lower()}://{host}:{port}{path}": '
                                   "context deadline exceeded")
    except OSError as err:
        return ProbeOutcome(False, f'Get "{scheme.lower()}://{host}:{port}{path}": '
                                   f"{err.strerror or err}")
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return ProbeOutcome(False, f"malformed HTTP response: {status_line[:100]!r}")
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeOutcome(True)
    return ProbeOutcome(False, f"HTTP probe failed with statuscode: {code}")


async def tcp_connect(host: str, port: int, *, time_limit: float) -> ProbeOutcome:
    try:
        async with asyncio.timeout(time_limit):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return ProbeOutcome(True)
    except TimeoutError:
        return ProbeOutcome(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as err:
        return ProbeOutcome(False, f"dial tcp {host}:{port}: {err.strerror or err}")


async def run_probe(runtime: Runtime, probe: Obj, container_spec: Obj, container: Container,
                    pod_ip: str) -> ProbeOutcome:
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "exec" in probe:
        command = list((probe["exec"] or {}).get("command") or [])
        if not command:
            return ProbeOutcome(False, "exec probe has no command")
        result = await runtime.exec(container.id, command, time_limit=timeout)
        if result.timed_out:
            return ProbeOutcome(False, f"command timed out after {timeout:g}s")
        if result.exit_code != 0:
            output = result.output.decode(errors="replace").strip()
            return ProbeOutcome(False, output or f"command exited with {result.exit_code}")
        return ProbeOutcome(True)
    try:
        if "httpGet" in probe:
            http = probe["httpGet"] or {}
            port = resolve_port(http.get("port"), container_spec)
            return await http_get(http.get("host") or pod_ip, port, http.get("path") or "/",
                                  http.get("httpHeaders") or [], time_limit=timeout,
                                  scheme=http.get("scheme") or "HTTP")
        if "tcpSocket" in probe:
            tcp = probe["tcpSocket"] or {}
            port = resolve_port(tcp.get("port"), container_spec)
            return await tcp_connect(tcp.get("host") or pod_ip, port, time_limit=timeout)
    except ValueError as err:
        return ProbeOutcome(False, str(err))
    return ProbeOutcome(False, "probe has no handler kubelite supports (exec, httpGet, "
                               "tcpSocket)")


def _published_status(pod: Obj, container: Container) -> Obj:
    """The pod's published containerStatus of this very instance, or {}."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container.name and \
                cs.get("containerID", "").endswith(f"://{container.id}"):
            return cs
    return {}


class _Worker:
    def __init__(self, manager: ProbeManager, pod: Obj, spec: Obj, container: Container,
                 probe_type: ProbeType, probe: Obj, pod_ip: str) -> None:
        self.manager = manager
        self.pod = pod
        self.spec = spec
        self.container = container
        self.probe_type = probe_type
        self.probe = probe
        self.pod_ip = pod_ip
        self.result = {ProbeType.LIVENESS: Result.SUCCESS,
                       ProbeType.READINESS: Result.FAILURE,
                       ProbeType.STARTUP: Result.UNKNOWN}[probe_type]
        if manager.adopted(container) and probe_type is not ProbeType.LIVENESS:
            # A container that ran before this kubelet did keeps the readiness and startup
            # it had, so that a kubelet restart does not turn ready endpoints away.
            published = _published_status(pod, container)
            flag = published.get("ready" if probe_type is ProbeType.READINESS else "started")
            if flag:
                self.result = Result.SUCCESS
        self.successes = 0
        self.failures = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # One metric label per probe type: container names would be unbounded.
        self.task = spawn(f"kubelet-prober-{self.probe_type.value}", self._run, logger=log)

    async def _run(self) -> None:
        probe = self.probe
        scale = self.manager.period_scale
        period = max(float(probe.get("periodSeconds") or 10) * scale, 0.05)
        delay = float(probe.get("initialDelaySeconds") or 0) * scale
        started = self.container.started_at or time.time()
        await asyncio.sleep(max(0.0, started + delay - time.time()))
        success_threshold = int(probe.get("successThreshold") or 1)
        failure_threshold = int(probe.get("failureThreshold") or 3)
        while True:
            if self.probe_type is ProbeType.STARTUP or self.manager.started(self.container.id):
                try:
                    outcome = await run_probe(self.manager.runtime, probe, self.spec,
                                              self.container, self.pod_ip)
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # a bug or a runtime error: count it as a failure
                    log.exception("probe failed unexpectedly")
                    outcome = ProbeOutcome(False, f"probe error: {err}")
                metrics.PROBE_TOTAL.labels(self.probe_type.value.lower(),
                                           "successful" if outcome.ok else "failed").inc()
                if outcome.ok:
                    self.successes += 1
                    self.failures = 0
                    if self.successes >= success_threshold:
                        self._set(Result.SUCCESS)
                else:
                    self.failures += 1
                    self.successes = 0
                    self.manager.on_unhealthy(self.pod, self.container, self.probe_type,
                                              outcome.message)
                    if self.failures >= failure_threshold:
                        self._set(Result.FAILURE)
                        if self.probe_type is not ProbeType.READINESS:
                            return  # the sync kills the container; a new one gets a new worker
                if self.probe_type is ProbeType.STARTUP and self.result is Result.SUCCESS:
                    return  # startup probes stop once they succeed
            await asyncio.sleep(period)

    def _set(self, result: Result) -> None:
        if result is not self.result:
            self.result = result
            self.manager.on_change(self.container.pod_uid)


class ProbeManager:
    """Starts and stops probe workers as containers come and go; holds their results."""

    def __init__(self, runtime: Runtime, *, on_change: Callable[[str], None],
                 on_unhealthy: Callable[[Obj, Container, ProbeType, str], None],
                 period_scale: float = 1.0) -> None:
        self.runtime = runtime
        self.period_scale = period_scale
        self.started_at = time.time()
        self.on_change = on_change
        self.on_unhealthy = on_unhealthy
        self._workers: dict[tuple[str, ProbeType], _Worker] = {}  # (container id, type)
        self._by_pod: dict[str, set[str]] = {}  # pod uid -> container ids

    def update_pod(self, pod: Obj, running: dict[str, Container], pod_ip: str) -> None:
        """Makes the workers match the running containers (name -> instance) of pod."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        specs = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
        wanted: set[tuple[str, ProbeType]] = set()
        for name, container in running.items():
            spec = specs.get(name)
            if spec is None:
                continue
            for probe_type, field in PROBE_FIELDS.items():
                probe = spec.get(field)
                if not probe:
                    continue
                key = (container.id, probe_type)
                wanted.add(key)
                if key not in self._workers:
                    worker = _Worker(self, pod, spec, container, probe_type, probe, pod_ip)
                    self._workers[key] = worker
                    worker.start()
        ids = self._by_pod.get(uid, set())
        for key in [k for k in self._workers if k[0] in ids and k not in wanted]:
            self._stop(key)
        self._by_pod[uid] = {k[0] for k in wanted}

    def _stop(self, key: tuple[str, ProbeType]) -> None:
        worker = self._workers.pop(key, None)
        if worker is not None and worker.task is not None:
            worker.task.cancel()

    def remove_pod(self, uid: str) -> None:
        for cid in self._by_pod.pop(uid, set()):
            for probe_type in ProbeType:
                self._stop((cid, probe_type))

    def adopted(self, container: Container) -> bool:
        """True for a container that an earlier kubelet process started."""
        return (container.started_at or container.created_at) < self.started_at

    def result(self, container_id: str, probe_type: ProbeType) -> Result | None:
        worker = self._workers.get((container_id, probe_type))
        return worker.result if worker is not None else None

    def started(self, container_id: str) -> bool:
        """True once the startup probe (if any) has succeeded."""
        result = self.result(container_id, ProbeType.STARTUP)
        return result is None or result is Result.SUCCESS

    def ready(self, container_id: str, spec: Obj) -> bool:
        if not self.started(container_id):
            return False
        if not spec.get("readinessProbe"):
            return True
        return self.result(container_id, ProbeType.READINESS) is Result.SUCCESS

    def failed(self, container_id: str) -> ProbeType | None:
        """The probe (liveness or startup) whose Failure means: kill this container."""
        for probe_type in (ProbeType.STARTUP, ProbeType.LIVENESS):
            if self.result(container_id, probe_type) is Result.FAILURE:
                return probe_type
        return None

    async def stop(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._by_pod.clear()
