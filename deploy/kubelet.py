"""The kubelet's entrypoint under docker-compose: each node is named after its container.

    python3 /etc/kubelite/kubelet.py [kubelet flags...]

All replicas of the compose service `kubelet` (`deploy.replicas`, `--scale
kubelet=N`) share one configuration, so the node name cannot be written in it.
Docker names each replica `<project>_kubelet_<n>` (compose v2:
`<project>-kubelet-<n>`): unique on the engine, kept across `restart`, and
kept when compose recreates the container. The node is named after it in
DNS-1123 form, `<project>-kubelet-<n>`. That it is unique on the engine
matters: the docker runtime owns exactly the containers labelled with its node
name, so two clusters sharing one Docker engine never touch each other's pods.

If Docker cannot tell (no socket), the kubelet's own default applies: the
hostname, which is the container id. An explicit --node-name or
KUBELITE_NODE_NAME wins over both.

With KUBELITE_DATA_DIR (a host directory mounted at the same path), the root dir
is KUBELITE_DATA_DIR/<node>: the host's Docker bind-mounts the pods' volumes
from there, so the paths must mean the same on both sides (docs/volumes.md).
"""

from __future__ import annotations

import os
import re
import socket
import sys


def node_name_for(container_name: str) -> str:
    """`/proj_kubelet_1` -> `proj-kubelet-1`: lower case, runs of other characters as '-'."""
    name = re.sub(r"[^a-z0-9.]+", "-", container_name.lower()).strip("-.")
    return name[:253].rstrip("-.")


def own_container_name() -> str:
    """This container's name, asked of Docker by the hostname (its short id); '' if unknown."""
    try:
        import docker

        client = docker.APIClient(version="auto", timeout=10)
        try:
            return client.inspect_container(socket.gethostname())["Name"]
        finally:
            client.close()
    except Exception as err:  # noqa: BLE001 - any failure falls back to the hostname
        print(f"kubelet.py: cannot ask Docker for this container's name ({err}); "
              "the node is named after the hostname", file=sys.stderr)
        return ""


def main(argv: list[str]) -> None:
    if not os.environ.get("KUBELITE_NODE_NAME") and not any(
            a == "--node-name" or a.startswith("--node-name=") for a in argv):
        name = node_name_for(own_container_name())
        if name:
            os.environ["KUBELITE_NODE_NAME"] = name
    data_dir = os.environ.get("KUBELITE_DATA_DIR")
    node = os.environ.get("KUBELITE_NODE_NAME")
    if data_dir and node and not os.environ.get("KUBELITE_ROOT_DIR") and not any(
            a == "--root-dir" or a.startswith("--root-dir=") for a in argv):
        os.environ["KUBELITE_ROOT_DIR"] = os.path.join(data_dir, node)
    os.execvp(sys.executable, [sys.executable, "-m", "services.kubelet", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
