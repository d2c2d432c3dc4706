"""The compose service `reaper`: when compose stops the cluster, it removes the pods.

    python3 /etc/kubelite/reaper.py [--kubelet-service kubelet] [--pod-stop-timeout 5]

Pod containers are the kubelets', not compose's: `docker compose down` (v2) and
`docker-compose down` (v1) remove only the containers of the project's services, and
then cannot remove the network while the pods are still on it. Labelling the pods as
compose's own would make compose recreate, restart, scale and list them as replicas of
a service. So this one service does nothing but wait: the kubelets depend on it, and
compose stops a service only after everything that depends on it (`down` and `stop`,
v1 and v2 alike). When its SIGTERM comes, no kubelet runs any more, none starts a pod
again, and it removes every pod container and holder of this project's nodes before it
exits; compose then removes it and the network.

A kubelet that restarts or crashes is untouched: `docker compose restart kubelet` and
Docker's restart policy never stop the reaper, and the restarted kubelet adopts its
running pods by their labels. The reaper's own SIGTERM while a kubelet still runs
(`restart` of every service, `stop reaper`, `up` recreating it) leaves the pods alone;
and since a `restart` of everything stops the kubelets at the same moment, it looks
again a second later, when such a kubelet is running again, before it removes anything.

The pods of this project are those labelled with a node named after one of its kubelet
containers, `<project>-kubelet-<n>` (deploy/kubelet.py), which includes the nodes a
`--scale` has since removed; another project's pods on the same engine never match.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kubelet import node_name_for  # noqa: E402 - deploy/ is not a package

LABEL_MANAGED_BY = "io.kubelite.managed-by=kubelet"
LABEL_NODE = "io.kubelite.node"
LABEL_TYPE = "io.kubernetes.docker.type"
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
#: How long after a SIGTERM the kubelets must still be stopped: a `restart` of every
#: service stops and starts each kubelet within this.
RECHECK_AFTER = 1.0


def log(message: str) -> None:
    print(f"reaper: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="reaper.py", description=__doc__.splitlines()[0])
    p.add_argument("--kubelet-service", action="append", default=None,
                   help="a compose service whose replicas are kubelets (repeatable; "
                        "default: kubelet)")
    p.add_argument("--project", default="",
                   help="the compose project (default: this container's compose label)")
    p.add_argument("--pod-stop-timeout", type=float, default=5.0,
                   help="seconds a pod's container gets between SIGTERM and SIGKILL")
    args = p.parse_args(argv)
    args.kubelet_service = args.kubelet_service or ["kubelet"]
    return args


def own_project(client: Any) -> str:
    labels = client.inspect_container(socket.gethostname())["Config"].get("Labels") or {}
    return labels.get(LABEL_PROJECT, "")


def running_kubelets(client: Any, project: str, services: list[str]) -> list[str]:
    names: list[str] = []
    for service in services:
        for status in ("running", "restarting"):
            rows = client.containers(filters={
                "label": [f"{LABEL_PROJECT}={project}", f"{LABEL_SERVICE}={service}"],
                "status": status})
            names += [row["Names"][0].lstrip("/") for row in rows]
    return names


def project_pods(client: Any, node: re.Pattern[str]) -> list[dict[str, Any]]:
    rows = client.containers(all=True, filters={"label": [LABEL_MANAGED_BY]})
    return [row for row in rows if node.fullmatch((row.get("Labels") or {}).get(LABEL_NODE, ""))]


def reap(client: Any, node: re.Pattern[str], stop_timeout: float) -> int:
    """Stops the pods' containers (a short grace, all at once), then removes them and their
    holders, whose network namespace they share, last."""
    pods = project_pods(client, node)
    containers = [p["Id"] for p in pods if p["Labels"].get(LABEL_TYPE) == "container"]
    holders = [p["Id"] for p in pods if p["Labels"].get(LABEL_TYPE) != "container"]

    def quietly(call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - one failure must not keep the rest
            log(f"{call.__name__} {args[0][:12]}: {err}")

    # Fewer workers than docker-py's 10 pooled connections.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda cid: quietly(client.stop, cid, timeout=int(stop_timeout)),
                      containers))
        for batch in (containers, holders):
            list(pool.map(lambda cid: quietly(client.remove_container, cid, v=True,
                                              force=True), batch))
    return len(pods)


def main(argv: list[str]) -> int:
    # Blocked first, so that a SIGTERM arriving while this starts waits for sigwait below.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    import docker

    args = parse_args(argv)
    client = docker.APIClient(version="auto", timeout=60)
    project = args.project or own_project(client)
    if not project:
        log("not started by compose (no project label) and no --project: nothing to guard")
        return 2
    node = re.compile("|".join(
        re.escape(f"{node_name_for(project)}-{node_name_for(service)}-") + r"\d+"
        for service in args.kubelet_service))
    log(f"guarding the pods of project {project} (nodes {node.pattern})")
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    kubelets = running_kubelets(client, project, args.kubelet_service)
    if not kubelets:
        time.sleep(RECHECK_AFTER)
        kubelets = running_kubelets(client, project, args.kubelet_service)
    if kubelets:
        log(f"stopped while kubelets run ({', '.join(sorted(kubelets))}): "
            "their pods stay theirs")
        return 0
    started = time.monotonic()
    count = reap(client, node, args.pod_stop_timeout)
    log(f"removed {count} pod containers and holders in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
