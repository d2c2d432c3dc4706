"""Init containers and sidecars through a real kubelet (process runtime): order, the
Init:N/M, Init:Error and Init:CrashLoopBackOff statuses kubectl shows, restartPolicy
Never failing the pod, and sidecars that start first, keep running and stop last."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.printing import pod_status as printed_status
from kubelite.testing import ApiServer
from tests.test_kubelet import (
    KubeletProcess,
    condition,
    container,
    eventually,
    get_pod,
    make_pod,
    wait_running_ready,
)
from tests.test_kubelet import ns as ns  # noqa: F401 - the fixture
from tests.test_secrets import kubelite

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("kubelet")).start()
    yield k
    k.stop()
    k.kill_leftovers()


def appender(name: str, log: Path, then: str = "") -> Obj:
    """A container that appends its name (and a time) to log, then runs `then`."""
    script = (f"import time\nopen({str(log)!r}, 'a').write('{name} %f\\n' % time.time())\n"
              f"{then}")
    return container(name, script)


def lines(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def with_init(pod: Obj, *inits: Obj) -> Obj:
    pod["spec"]["initContainers"] = list(inits)
    return pod


async def printed(client: Client, name: str, ns: str, want: str) -> Obj:
    async def check() -> Obj | None:
        pod = await get_pod(client, name, ns)
        return pod if printed_status(pod) == want else None
    return await eventually(check, within=20, what=f"{name} printed as {want}")


async def test_init_containers_run_in_order_before_the_app(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path,
        shared_apiserver: ApiServer) -> None:
    log = tmp_path / "order"
    gate = tmp_path / "gate"
    wait_gate = (f"import os\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    pod = with_init(make_pod("ordered", ns, kubelet.node,
                             appender("app", log, "time.sleep(1000)")),
                    appender("first", log), appender("second", log, wait_gate))
    await client.create("pods", pod)
    got = await printed(client, "ordered", ns, "Init:1/2")
    assert got["status"]["phase"] == "Pending"
    assert condition(got, "Initialized") == "False"
    init = got["status"]["initContainerStatuses"]
    assert [s["name"] for s in init] == ["first", "second"]
    assert init[0]["state"]["terminated"]["reason"] == "Completed"
    assert got["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == \
        "PodInitializing"

    async def second_ran() -> bool:
        return lines(log) == ["first", "second"]
    await eventually(second_ran, what="the second init container to run")
    code, out = await kubelite(shared_apiserver.target, "get", "pods", "-n", ns)
    assert code == 0 and out.splitlines()[1].split()[:3] == ["ordered", "0/1", "Init:1/2"], out
    gate.write_text("go")
    pod = await wait_running_ready(client, "ordered", ns)
    assert condition(pod, "Initialized") == "True"
    assert printed_status(pod) == "Running"

    async def app_ran() -> bool:
        return lines(log) == ["first", "second", "app"]
    await eventually(app_ran, what="the app to run after both")
    assert all("terminated" in s["state"] for s in pod["status"]["initContainerStatuses"])


async def test_failed_init_container_with_restart_policy_never_fails_the_pod(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    log = tmp_path / "never"
    pod = with_init(make_pod("doomed", ns, kubelet.node, appender("app", log),
                             restart_policy="Never"),
                    container("bad", "import sys; sys.exit(3)"))
    await client.create("pods", pod)
    got = await printed(client, "doomed", ns, "Init:Error")
    got = await eventually(lambda: _phase(client, "doomed", ns, "Failed"), what="Failed")
    state = got["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 3 and state["reason"] == "Error"
    assert got["status"]["initContainerStatuses"][0]["restartCount"] == 0
    assert not log.exists()  # the app never ran


async def _phase(client: Client, name: str, ns: str, phase: str) -> Obj | None:
    pod = await get_pod(client, name, ns)
    return pod if pod["status"].get("phase") == phase else None


async def test_failing_init_container_crash_loops_under_restart_policy_always(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    pod = with_init(make_pod("looping", ns, kubelet.node,
                             container("app", "import time; time.sleep(1000)")),
                    container("bad", "import sys; sys.exit(1)"))
    await client.create("pods", pod)
    got = await printed(client, "looping", ns, "Init:CrashLoopBackOff")
    assert got["status"]["phase"] == "Pending"
    init = got["status"]["initContainerStatuses"][0]
    assert init["restartCount"] >= 1
    assert init["lastState"]["terminated"]["exitCode"] == 1


async def test_sidecars_start_first_keep_running_and_restart_on_exit(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    log = tmp_path / "sidecar"
    ready_file = tmp_path / "proxy-ready"
    # The sidecar becomes started only once its startup probe passes (a file it writes
    # after a moment): the next init container must wait for that.
    proxy = appender("proxy", log, f"time.sleep(0.5)\nopen({str(ready_file)!r}, 'w')\n"
                                   "time.sleep(1000)")
    proxy.update(restartPolicy="Always", startupProbe={
        "exec": {"command": ["test", "-e", str(ready_file)]}, "periodSeconds": 1,
        "failureThreshold": 50})
    flaky = appender("flaky", log, "time.sleep(2)")  # a sidecar that exits after a while
    flaky["restartPolicy"] = "Always"
    pod = with_init(make_pod("sidecars", ns, kubelet.node,
                             appender("app", log, "time.sleep(1000)")),
                    proxy, appender("setup", log), flaky)
    await client.create("pods", pod)
    pod = await wait_running_ready(client, "sidecars", ns, within=20)
    assert printed_status(pod) == "Running"
    assert pod["status"]["containerStatuses"][0]["ready"]

    async def app_ran() -> bool:
        return lines(log)[:4] == ["proxy", "setup", "flaky", "app"]
    await eventually(app_ran, what="the app to run after the init containers")
    setup_started = float(log.read_text().splitlines()[1].split()[1])
    assert setup_started >= ready_file.stat().st_mtime
    statuses = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert "running" in statuses["proxy"]["state"] and statuses["proxy"]["started"]
    assert statuses["setup"]["state"]["terminated"]["reason"] == "Completed"

    async def flaky_restarted() -> Obj | None:
        pod = await get_pod(client, "sidecars", ns)
        flaky = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "flaky")
        return pod if flaky["restartCount"] >= 1 else None
    pod = await eventually(flaky_restarted, within=20, what="the flaky sidecar restarted")
    assert lines(log).count("setup") == 1  # a regular init container never runs again
    assert "running" in pod["status"]["containerStatuses"][0]["state"]


async def test_sidecar_stops_after_the_app_containers(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    log = tmp_path / "stops"
    on_term = ("import signal, sys\n"
               "def bye(*_):\n"
               f"    open({str(log)!r}, 'a').write('%s %f\\n' % (sys.argv[1], time.time()))\n"
               "    sys.exit(0)\n"
               "signal.signal(signal.SIGTERM, bye)\n"
               "time.sleep(1000)")
    side = container("side", "import time\n" + on_term, args=["side"], restartPolicy="Always")
    app = container("app", "import time\n" + on_term, args=["app"])
    await client.create("pods", with_init(make_pod("stops", ns, kubelet.node, app, grace=5),
                                          side))
    await wait_running_ready(client, "stops", ns)
    await asyncio.sleep(0.3)  # let both install their handlers
    await client.delete("pods", "stops", namespace=ns)

    async def both() -> list[str] | None:
        got = lines(log)
        return got if len(got) == 2 else None
    assert await eventually(both, within=10, what="both stopped") == ["app", "side"]


async def test_sidecar_ends_with_the_app_of_a_run_to_completion_pod(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    side = container("side", "import time; time.sleep(1000)", restartPolicy="Always")
    app = container("app", "print('done')")
    await client.create("pods", with_init(make_pod("job", ns, kubelet.node, app,
                                                   restart_policy="Never"), side))
    pod = await eventually(lambda: _phase(client, "job", ns, "Succeeded"), within=20,
                           what="Succeeded")
    assert printed_status(pod) == "Completed"


def _pod(init: list[Obj], app: list[Obj], *, initialized: bool,
         sidecars: tuple[str, ...] = ()) -> Obj:
    return {"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": s["name"], **({"restartPolicy": "Always"}
                                                  if s["name"] in sidecars else {})}
                           for s in init],
        "containers": [{"name": s["name"]} for s in app]},
        "status": {"phase": "Pending" if not initialized else "Running",
                   "conditions": [{"type": "Initialized",
                                   "status": "True" if initialized else "False"}],
                   "initContainerStatuses": init, "containerStatuses": app}}


RUNNING = {"running": {}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}
INITIALIZING = {"waiting": {"reason": "PodInitializing"}}


@pytest.mark.parametrize(("pod", "want"), [
    (_pod([{"name": "a", "state": RUNNING}], [{"name": "m", "state": INITIALIZING}],
          initialized=False), "Init:0/1"),
    (_pod([{"name": "a", "state": {"terminated": {"exitCode": 2}}}],
          [{"name": "m", "state": INITIALIZING}], initialized=False), "Init:ExitCode:2"),
    (_pod([{"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
          [{"name": "m", "state": INITIALIZING}], initialized=False), "Init:CrashLoopBackOff"),
    (_pod([{"name": "a", "state": DONE}], [{"name": "m", "state": INITIALIZING}],
          initialized=True), "PodInitializing"),
    # A started sidecar is passed over; the next init container is counted.
    (_pod([{"name": "s", "state": RUNNING, "started": True}, {"name": "b", "state": RUNNING}],
          [{"name": "m", "state": INITIALIZING}], initialized=False, sidecars=("s",)),
     "Init:1/2"),
    (_pod([{"name": "s", "state": RUNNING, "started": True, "ready": True}],
          [{"name": "m", "state": RUNNING, "ready": True}], initialized=True,
          sidecars=("s",)), "Running"),
])
def test_status_column_with_init_containers(pod: Obj, want: str) -> None:
    assert printed_status(pod) == want


def test_ready_column_counts_sidecars() -> None:
    from kubelite.printing import _pod_ready

    pod = _pod([{"name": "s", "state": RUNNING, "started": True, "ready": True}],
               [{"name": "m", "state": RUNNING, "ready": False}], initialized=True,
               sidecars=("s",))
    assert _pod_ready(pod, None) == "1/2"  # type: ignore[arg-type]


def test_kubelet_admission_counts_init_containers_and_sidecars_as_kubernetes() -> None:
    from services.kubelet.pod_sync import pod_requests

    def c(name: str, cpu: str, **extra: Any) -> Obj:
        return {"name": name, "resources": {"requests": {"cpu": cpu, "memory": "0"}}, **extra}
    pod = {"spec": {"containers": [c("app", "100m")], "initContainers": [
        c("big", "500m"), c("side", "200m", restartPolicy="Always"), c("after", "250m")]}}
    # max(app 100 + sidecar 200, big 500, sidecar 200 + after 250)
    assert pod_requests(pod)["cpu"] == 500
    pod["spec"]["initContainers"][0] = c("small", "50m")
    assert pod_requests(pod)["cpu"] == 450
