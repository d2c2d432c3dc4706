"""Lifecycle hooks and termination through a real kubelet (process runtime): postStart
(exec and a failing one), preStop (exec and httpGet) before SIGTERM and within the grace
period, SIGKILL at its end, and the termination message from the file or the log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError
from tests.test_kubelet import (
    KubeletProcess,
    container,
    events_for,
    eventually,
    get_pod,
    make_pod,
    sh,
    status_of,
    wait_running_ready,
)
from tests.test_kubelet import ns as ns  # noqa: F401 - the fixture

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("kubelet")).start()
    yield k
    k.stop()
    k.kill_leftovers()


def on_sigterm(mark: Path, record: Path, *, ignore: bool = False) -> str:
    """A script that, on SIGTERM, records whether the preStop mark was already there."""
    action = "pass" if ignore else "sys.exit(0)"
    return (f"import os, signal, sys, time\n"
            f"def bye(*_):\n"
            f"    open({str(record)!r}, 'w').write(str(os.path.exists({str(mark)!r})))\n"
            f"    {action}\n"
            f"signal.signal(signal.SIGTERM, bye)\n"
            f"print('up', flush=True)\n"
            f"while True: time.sleep(0.05)\n")


async def gone(client: Client, name: str, ns: str) -> bool:
    try:
        await get_pod(client, name, ns)
    except NotFoundError:
        return True
    return False


async def terminated(client: Client, name: str, ns: str) -> Obj:
    async def check() -> Obj | None:
        cs = status_of(await get_pod(client, name, ns))
        return cs["state"]["terminated"] if "terminated" in cs.get("state", {}) else None
    return await eventually(check, what=f"{name} terminated")


async def test_post_start_exec_runs_after_the_start(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    mark = tmp_path / "post-start"
    c = container("main", "import time; time.sleep(1000)", lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", f"echo $POD_NAME > {mark}"]}}})
    await client.create("pods", make_pod("poststart", ns, kubelet.node, c))
    await wait_running_ready(client, "poststart", ns)
    assert mark.read_text().strip() == "poststart"
    assert status_of(await get_pod(client, "poststart", ns))["restartCount"] == 0


async def test_failing_post_start_kills_the_container(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    c = container("main", "import time; time.sleep(1000)", lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 7"]}}})
    await client.create("pods", make_pod("badhook", ns, kubelet.node, c, grace=1))
    events = await eventually(lambda: events_for(client, ns, "badhook", "FailedPostStartHook"),
                              what="FailedPostStartHook")
    assert "exited with 7" in events[0]["message"] and 'Container "main"' in events[0]["message"]

    async def restarted() -> Obj | None:
        cs = status_of(await get_pod(client, "badhook", ns))
        return cs if cs.get("restartCount", 0) >= 1 else None
    await eventually(restarted, what="the container restarted after its hook failed")


async def test_pre_stop_runs_before_sigterm(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    mark, record = tmp_path / "pre-stop", tmp_path / "sigterm-saw-mark"
    c = container("main", on_sigterm(mark, record), lifecycle={
        "preStop": {"exec": {"command": ["sh", "-c", f"echo stopping > {mark}"]}}})
    await client.create("pods", make_pod("prestop", ns, kubelet.node, c, grace=5))
    await wait_running_ready(client, "prestop", ns)
    await asyncio.sleep(0.3)  # the handler is installed
    await client.delete("pods", "prestop", namespace=ns)
    await eventually(lambda: gone(client, "prestop", ns), within=10, what="the pod to go")
    assert mark.read_text().strip() == "stopping"
    assert record.read_text() == "True"


async def test_pre_stop_http_get_reaches_the_container(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    hits = tmp_path / "hits"
    server = ("import http.server, os\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              f"        open({str(hits)!r}, 'a').write(self.path + '\\n')\n"
              "        self.send_response(200); self.end_headers()\n"
              "    def log_message(self, *a): pass\n"
              "http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n")
    c = container("web", server, ports=[{"containerPort": 8080, "name": "http"}], lifecycle={
        "preStop": {"httpGet": {"path": "/shutdown", "port": "http"}}},
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})
    await client.create("pods", make_pod("httpstop", ns, kubelet.node, c, grace=5))
    await wait_running_ready(client, "httpstop", ns)
    await client.delete("pods", "httpstop", namespace=ns)
    await eventually(lambda: gone(client, "httpstop", ns), within=10, what="the pod to go")
    assert hits.read_text().splitlines() == ["/shutdown"]


async def test_pre_stop_counts_against_the_grace_period_then_sigkill(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    """A 1 s preStop hook and a container that ignores SIGTERM: SIGKILL comes at the end of
    the 2 s grace period, not 2 s after the hook."""
    mark, record = tmp_path / "slow-hook", tmp_path / "sigterm"
    c = container("main", on_sigterm(mark, record, ignore=True), lifecycle={
        "preStop": {"exec": {"command": ["sh", "-c", f"sleep 1; touch {mark}"]}}})
    await client.create("pods", make_pod("graceful", ns, kubelet.node, c, grace=2))
    pod = await wait_running_ready(client, "graceful", ns)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await client.delete("pods", "graceful", namespace=ns)
    await eventually(lambda: gone(client, "graceful", ns), within=10, what="the pod to go")
    elapsed = time.monotonic() - started
    assert 1.8 < elapsed < 5.5, elapsed
    assert record.read_text() == "True"  # SIGTERM came after the hook, and was ignored
    assert pod["status"]["containerStatuses"][0]["containerID"]


async def test_termination_message_from_the_file_and_from_the_log(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    # The spec's path, written literally in the command, is rewritten to the container's file.
    await client.create("pods", make_pod("msgfile", ns, kubelet.node, sh(
        "main", "echo 'Sleep expired' > /dev/termination-log; exit 2"),
        restart_policy="Never"))
    # A custom path, written through the variable the process runtime provides.
    await client.create("pods", make_pod("msgenv", ns, kubelet.node, container(
        "main", "import os; open(os.environ['KUBELITE_TERMINATION_MESSAGE_PATH'], 'w')"
                ".write('done well')", terminationMessagePath="/tmp/my-message"),
        restart_policy="Never"))
    await client.create("pods", make_pod("msglog", ns, kubelet.node, container(
        "main", "import sys\nfor i in range(100): print('line', i)\nsys.exit(1)",
        terminationMessagePolicy="FallbackToLogsOnError"), restart_policy="Never"))
    await client.create("pods", make_pod("msgok", ns, kubelet.node, container(
        "main", "print('fine')", terminationMessagePolicy="FallbackToLogsOnError"),
        restart_policy="Never"))
    state = await terminated(client, "msgfile", ns)
    assert state["exitCode"] == 2 and state["message"].strip() == "Sleep expired"
    state = await terminated(client, "msgenv", ns)
    assert state["exitCode"] == 0 and state["message"] == "done well"
    state = await terminated(client, "msglog", ns)
    lines = state["message"].splitlines()
    assert lines[0] == "line 20" and lines[-1] == "line 99" and len(lines) == 80
    state = await terminated(client, "msgok", ns)
    assert "message" not in state  # the fallback is for failures only
