"""Container lifecycle hooks (postStart, preStop): run one handler, say why it failed.

As the kubelet's handlerRunner: an `exec` handler runs a command in the container
(the runtime's exec), an `httpGet` handler GETs the container's address (the pod
IP unless `host` is given), and `sleep` waits. The caller decides what a failure
means: a failed postStart kills the container, a failed preStop is only an event.
Both share the container's grace period as their time limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.kubelet.prober import http_get, resolve_port
from services.kubelet.runtime import Container, Runtime

Obj = dict[str, Any]


def describe_handler(handler: Obj) -> str:
    """How the kubelet's event names a handler ("Exec lifecycle hook ([cmd])", ...)."""
    if "exec" in handler:
        return f"Exec lifecycle hook ({list((handler['exec'] or {}).get('command') or [])})"
    if "httpGet" in handler:
        http = handler["httpGet"] or {}
        return f"HTTP lifecycle hook ({http.get('path') or '/'})"
    return "lifecycle hook"


async def run_handler(runtime: Runtime, handler: Obj, cspec: Obj, container: Container,
                      pod_ip: str, *, time_limit: float) -> str | None:
    """Runs handler against container; None on success, else the error's text."""
    time_limit = max(time_limit, 0.1)
    if "exec" in handler:
        command = list((handler["exec"] or {}).get("command") or [])
        if not command:
            return "exec handler has no command"
        result = await runtime.exec(container.id, command, time_limit=time_limit)
        if result.timed_out:
            return f"command '{' '.join(command)}' timed out after {time_limit:g}s"
        if result.exit_code != 0:
            output = result.output.decode(errors="replace").strip()
            return (f"command '{' '.join(command)}' exited with {result.exit_code}: "
                    f"{output}")
        return None
    if "httpGet" in handler:
        http = handler["httpGet"] or {}
        try:
            port = resolve_port(http.get("port"), cspec)
        except ValueError as err:
            return str(err)
        outcome = await http_get(http.get("host") or pod_ip, port, http.get("path") or "/",
                                 http.get("httpHeaders") or [], time_limit=time_limit,
                                 scheme=http.get("scheme") or "HTTP")
        return None if outcome.ok else outcome.message
    if "sleep" in handler:
        seconds = float((handler["sleep"] or {}).get("seconds") or 0)
        await asyncio.sleep(min(seconds, time_limit))
        return None
    return "lifecycle handler has no action kubelite supports (exec, httpGet, sleep)"


__all__ = ["describe_handler", "run_handler"]
