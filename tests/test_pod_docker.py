"""The whole pod on the docker runtime, in two targeted cases (the Docker engine is
shared): init containers and a sidecar before the app, a Secret as env, a preStop hook
that leaves a mark, and termination messages from /dev/termination-log (a bind-mounted
file) and from the log (FallbackToLogsOnError)."""

from __future__ import annotations

import base64
from typing import Any

from kubelite.client import Client
from tests.test_kubelet import (
    KubeletProcess,
    eventually,
    get_pod,
    make_pod,
    status_of,
    wait_running_ready,
)
from tests.test_kubelet_docker import BASE, pod_logs
from tests.test_kubelet_docker import docker_api as docker_api  # noqa: F401 - fixtures
from tests.test_kubelet_docker import kubelet as kubelet
from tests.test_kubelet_docker import network as network
from tests.test_kubelet_docker import ns as ns

Obj = dict[str, Any]


def sh(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": BASE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


async def test_init_sidecar_secret_env_and_pre_stop_on_docker(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    await client.create("secrets", {"metadata": {"name": "creds", "namespace": ns},
                                    "data": {"PASS": base64.b64encode(b"hunter2").decode()}})
    # The sidecar shares the pod's network: the app reads what the init container and the
    # sidecar said through it, so that each ran when it should.
    side = sh("side", "echo sidecar-up; exec python3 -m http.server 9000",
              restartPolicy="Always", startupProbe={"tcpSocket": {"port": 9000},
                                                    "periodSeconds": 1, "failureThreshold": 60})
    init = sh("init", "python3 -c \"import urllib.request as u; "
                      "print(u.urlopen('http://127.0.0.1:9000/').status)\"")
    app = sh("app", "echo pass=$PASS; trap 'echo got-term; exit 0' TERM; "
                    "while true; do sleep 0.1; done",
             envFrom=[{"secretRef": {"name": "creds"}}],
             lifecycle={"preStop": {"exec": {"command": [
                 "sh", "-c", "echo pre-stop-ran > /proc/1/fd/1"]}}})
    pod = make_pod("whole", ns, kubelet.node, app, grace=10)
    pod["spec"]["initContainers"] = [side, init]
    await client.create("pods", pod)
    await wait_running_ready(client, "whole", ns, within=60)
    assert (await pod_logs(client, "whole", ns, container="init")).strip() == b"200"
    assert b"pass=hunter2" in await pod_logs(client, "whole", ns, container="app")
    got = await get_pod(client, "whole", ns)
    statuses = {s["name"]: s for s in got["status"]["initContainerStatuses"]}
    assert "running" in statuses["side"]["state"]
    assert statuses["init"]["state"]["terminated"]["exitCode"] == 0
    uid = got["metadata"]["uid"]
    await client.delete("pods", "whole", namespace=ns)

    async def marked() -> bytes | None:
        out = await pod_logs(client, "whole", ns, container="app")
        return out if b"got-term" in out else None
    out = await eventually(marked, within=20, what="the app's SIGTERM after its preStop")
    assert out.index(b"pre-stop-ran") < out.index(b"got-term")
    assert uid


async def test_termination_messages_on_docker(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    await client.create("pods", make_pod("msgfile", ns, kubelet.node, sh(
        "main", "echo 'Sleep expired' > /dev/termination-log; exit 2"),
        restart_policy="Never"))
    await client.create("pods", make_pod("msglog", ns, kubelet.node, sh(
        "main", "for i in $(seq 0 99); do echo line $i; done; exit 1",
        terminationMessagePolicy="FallbackToLogsOnError"), restart_policy="Never"))

    async def terminated(name: str) -> Obj | None:
        cs = status_of(await get_pod(client, name, ns))
        return cs["state"]["terminated"] if "terminated" in cs.get("state", {}) else None
    state = await eventually(lambda: terminated("msgfile"), within=60, what="msgfile ended")
    assert state["exitCode"] == 2 and state["message"].strip() == "Sleep expired"
    state = await eventually(lambda: terminated("msglog"), within=60, what="msglog ended")
    lines = state["message"].splitlines()
    assert lines[0] == "line 20" and lines[-1] == "line 99"
