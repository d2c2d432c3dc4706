"""End to end on Docker: docker-compose.yml brought up as a user brings it up, checked
from the host through the kubelite CLI and `docker`, and always torn down.

Each stack runs as its own compose project, `kl-test-<random>`, on its own network
(a free 10.x.0.0/16) with the apiserver on a free host port, so it never meets a
cluster the user runs on the same engine. The components get the short timings
of tests/e2e.py (and short node-eviction timings) through a compose override file.

The acceptance runs on Compose v2 (`docker compose`): the tests run in file order
on one cluster, each building on the state the earlier ones left, as the issue's
acceptance lists do; its last test checks that a plain `docker compose down`, with
pods still running, leaves no container and no network (the compose service
`reaper` removes the pods). A shorter test then does the same on Compose v1
(`docker-compose`): up, a Deployment's pods run, plain `down` leaves nothing.
Teardown is always `down -v` and then a sweep by label and name of anything left.

Needs a Docker engine, both `docker compose` and docker-compose (scripts/install-deps
--docker installs them) and the images of scripts/build-images; without them the
tests are skipped, unless KUBELITE_REQUIRE_DOCKER=1 (CI) makes that a failure. The
images bake the code in: rebuild them after a change.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import queue
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.localcluster import free_port
from tests.e2e import FAST_TIMINGS
from tests.helpers import missing_prerequisite

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
KUBELITE_CLI = str(Path(sys.executable).parent / "kubelite")
IMAGES = ("kubelite:latest", "kubelite/demo:latest")
DEMO_IMAGE = "kubelite/demo:latest"
UNPULLABLE_IMAGE = "kubelite.invalid/no-such-image:1"
MANAGED = "label=io.kubelite.managed-by=kubelet"
LABEL_NODE = "io.kubelite.node"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_TYPE = "io.kubernetes.docker.type"
COMPONENTS = ("redis", "apiserver", "scheduler", "controller", "kubelet", "proxy", "dns")
#: Services without a health check: running is all they can be.
UNCHECKED = ("reaper",)
NODES = 2
WEB_REPLICAS = 3
COMPOSE_V2 = ("docker", "compose")
COMPOSE_V1 = ("docker-compose",)
#: Node-loss timings for the kubelet-stop test: a node silent for the grace period is
#: tainted unreachable, and its pods are evicted once their default toleration is over.
#: The grace is long enough that a `restart kubelet` or a Redis restart never trips it.
NODE_MONITOR_GRACE = 15
NODE_MONITOR_PERIOD = 1
TOLERATION_SECONDS = 5
EVICTION_TIMINGS = {
    "controller": {"KUBELITE_NODE_MONITOR_GRACE_PERIOD": str(NODE_MONITOR_GRACE),
                   "KUBELITE_NODE_MONITOR_PERIOD": str(NODE_MONITOR_PERIOD)},
    "apiserver": {"KUBELITE_DEFAULT_NOT_READY_TOLERATION_SECONDS": str(TOLERATION_SECONDS),
                  "KUBELITE_DEFAULT_UNREACHABLE_TOLERATION_SECONDS": str(TOLERATION_SECONDS)},
}


# -- the environment ------------------------------------------------------------------

def run(argv: list[str], *, check: bool = True, timeout: float = 120,
        env: dict[str, str] | None = None, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def unavailable(compose: tuple[str, ...]) -> str:
    """Why a cluster cannot run here with this compose command, or '' if it can."""
    if not shutil.which("docker"):
        return "no docker client"
    if run(["docker", "info"], check=False, timeout=30).returncode != 0:
        return "no Docker engine answers"
    if not shutil.which(compose[0]) or run([*compose, "version"], check=False).returncode:
        return f"no `{shlex.join(compose)}` (scripts/install-deps --docker installs it)"
    missing = [image for image in IMAGES
               if run(["docker", "image", "inspect", image], check=False).returncode != 0]
    if missing:
        return f"images missing: {', '.join(missing)} (run scripts/build-images)"
    return ""


def taken_networks() -> list[ipaddress.IPv4Network]:
    """The subnets of Docker's networks and of the host's routes."""
    nets: list[ipaddress.IPv4Network] = []
    ids = run(["docker", "network", "ls", "-q"]).stdout.split()
    if ids:
        out = run(["docker", "network", "inspect", "-f",
                   "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids]).stdout
        for text in out.split():
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue
            if isinstance(net, ipaddress.IPv4Network):
                nets.append(net)
    with open("/proc/net/route") as routes:
        for line in list(routes)[1:]:
            fields = line.split()
            dest, mask = (int(fields[1], 16), int(fields[7], 16))
            if mask == 0:
                continue  # the default route
            address = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
            prefix = bin(mask).count("1")
            nets.append(ipaddress.IPv4Network(f"{address}/{prefix}", strict=False))
    return nets


def free_subnet() -> ipaddress.IPv4Network:
    taken = taken_networks()
    for second in random.sample(range(128, 192), 64):
        candidate = ipaddress.IPv4Network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise AssertionError("no free 10.x.0.0/16 (x in 128-191) for the test's network")


# -- the cluster ----------------------------------------------------------------------

class ComposeCluster:
    """One compose project of docker-compose.yml, and the ways the tests look at it."""

    def __init__(self, workdir: Path, compose: tuple[str, ...]) -> None:
        self.workdir = workdir
        self.project = f"kl-test-{uuid.uuid4().hex[:8]}"
        self.network = self.project
        self.port = free_port()
        self.server = f"127.0.0.1:{self.port}"
        subnet = free_subnet()
        pods, services = subnet.subnets(prefixlen_diff=1)
        override = workdir / "docker-compose.test.yml"
        override.write_text(json.dumps({"services": {
            name: {"environment": {**FAST_TIMINGS, **EVICTION_TIMINGS.get(name, {})}}
            for name in ("apiserver", "scheduler", "controller", "kubelet")}}))
        self.base = [*compose, "-p", self.project, "-f", str(COMPOSE_FILE),
                     "-f", str(override)]
        self.env = {**os.environ,
                    "KUBELITE_NETWORK": self.network,
                    "KUBELITE_SUBNET": str(subnet),
                    "KUBELITE_POD_IP_RANGE": str(pods),
                    "KUBELITE_SERVICE_CIDR": str(services),
                    "KUBELITE_DNS_IP": str(services.network_address),
                    "KUBELITE_APISERVER_PORT": str(self.port),
                    # Another cluster on this engine may hold the default REST port.
                    "KUBELITE_REST_PORT": str(free_port())}
        self.subnet, self.pod_range, self.service_range = subnet, pods, services
        self.up_at = 0.0

    # commands

    def compose(self, *args: str, check: bool = True, timeout: float = 180
                ) -> subprocess.CompletedProcess[str]:
        return run([*self.base, *args], check=check, timeout=timeout, env=self.env)

    def kl(self, *args: str, check: bool = True, stdin: str | None = None
           ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "KUBELITE_SERVER"}
        started = time.monotonic()
        proc = run([KUBELITE_CLI, "--server", self.server, *args], check=False, timeout=60,
                   env=env, stdin=stdin)
        if check and proc.returncode != 0:
            detail = ""
            if "cannot connect" in proc.stderr:
                detail = self.apiserver_diagnosis()
            raise AssertionError(f"kubelite {shlex.join(args)} exited {proc.returncode} after "
                                 f"{time.monotonic() - started:.1f}s:\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}{detail}")
        return proc

    def apiserver_diagnosis(self) -> str:
        """Whether the apiserver answers inside its container and at its network address,
        to tell a stuck apiserver from a stuck published port."""
        (apiserver,) = self.service_ids("apiserver")
        inside = run(["docker", "exec", apiserver, "python3", "/etc/kubelite/healthcheck.py",
                      "127.0.0.1:6443"], check=False, timeout=30)
        ip = run(["docker", "inspect", "-f",
                  "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", apiserver]
                 ).stdout.strip()
        direct = run([sys.executable, str(REPO / "deploy" / "healthcheck.py"), f"{ip}:6443"],
                     check=False, timeout=30)
        published = run([sys.executable, str(REPO / "deploy" / "healthcheck.py"), self.server],
                        check=False, timeout=30)
        return (f"\n  health inside the container: {inside.stdout.strip()} {inside.stderr[-300:]}"
                f"\n  health at {ip}:6443 from the host: {direct.stdout.strip()}"
                f"\n  health at {self.server} (published) now: {published.stdout.strip()}")

    def get(self, *args: str) -> Any:
        return json.loads(self.kl("get", *args, "-o", "json").stdout)

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))

    def up(self) -> None:
        self.up_at = time.monotonic()
        self.compose("up", "-d", timeout=300)

    def down(self) -> None:
        """`down -v`, then a sweep of whatever it left (the teardown, even after a failure)."""
        self.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
        left = self.leftovers()
        if left["containers"]:
            run(["docker", "rm", "-f", "-v", *left["containers"]], check=False)
        if left["networks"]:
            run(["docker", "network", "rm", *left["networks"]], check=False)
        if left["volumes"]:
            run(["docker", "volume", "rm", "-f", *left["volumes"]], check=False)

    def leftovers(self) -> dict[str, list[str]]:
        containers = set(run(["docker", "ps", "-aq", "--filter",
                              f"label=com.docker.compose.project={self.project}"]).stdout.split())
        rows = run(["docker", "ps", "-a", "--filter", MANAGED, "--format",
                    f'{{{{.ID}}}} {{{{.Label "{LABEL_NODE}"}}}}']).stdout.splitlines()
        containers |= {row.split()[0] for row in rows
                       if row.split()[1:] and row.split()[1].startswith(self.project + "-")}
        networks = run(["docker", "network", "ls", "-q", "--filter",
                        f"name=^{self.network}$"]).stdout.split()
        volumes = run(["docker", "volume", "ls", "-q", "--filter",
                       f"label=com.docker.compose.project={self.project}"]).stdout.split()
        return {"containers": sorted(containers), "networks": networks, "volumes": volumes}

    def logs(self, tail: int = 60) -> str:
        """The components' logs, the last `tail` lines of each (0: all)."""
        return self.compose("logs", "--no-color", *(["--tail", str(tail)] if tail else []),
                            check=False).stdout

    # what the tests look at

    def ready_nodes(self) -> list[str]:
        return [n["metadata"]["name"] for n in self.get("nodes")["items"]
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in n.get("status", {}).get("conditions", []))]

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        return self.get("pods", *(["-l", selector] if selector else []))["items"]

    def pod(self, name: str) -> dict[str, Any]:
        return self.get("pod", name)

    def containers(self, *filters: str, all_states: bool = False) -> list[dict[str, str]]:
        """This cluster's pod containers (not holders) matching the label filters, with
        their labels. Other clusters on the engine (another run of this test) are left out:
        their nodes are named after their own project."""
        argv = ["docker", "ps", "--filter", MANAGED, "--filter", f"label={LABEL_TYPE}=container"]
        for f in filters:
            argv += ["--filter", f"label={f}"]
        if all_states:
            argv.append("-a")
        ids = run([*argv, "-q", "--no-trunc"]).stdout.split()
        if not ids:
            return []
        # A container removed since the listing is left out (inspect exits 1 for it).
        out = run(["docker", "inspect", *ids], check=False).stdout or "[]"
        return [{"id": c["Id"], "state": c["State"]["Status"], **c["Config"]["Labels"]}
                for c in json.loads(out)
                if c["Config"]["Labels"].get(LABEL_NODE, "").startswith(self.project + "-")]

    def service_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def kubelet_nodes(self) -> dict[str, str]:
        """The kubelet containers' ids, each with its node's name (deploy/kubelet.py)."""
        return {cid: self.project + "-kubelet-" + run(
                    ["docker", "inspect", "-f",
                     '{{index .Config.Labels "com.docker.compose.container-number"}}', cid]
                ).stdout.strip() for cid in self.service_ids("kubelet")}

    def healthy(self) -> dict[str, str]:
        """Each compose container's health, by container name."""
        states = {}
        for cid in self.compose("ps", "-q").stdout.split():
            name, health = run(["docker", "inspect", "-f",
                                "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}"
                                "{{else}}{{.State.Status}}{{end}}", cid]).stdout.split()
            states[name.lstrip("/")] = health
        return states


def eventually(check: Callable[[], Any], *, timeout: float = 30, interval: float = 0.5,
               what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError as err:
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def all_healthy(cluster: ComposeCluster) -> bool:
    states = cluster.healthy()
    unchecked = {name: state for name, state in states.items()
                 if any(f"{cluster.project}{sep}{service}{sep}" in name
                        for service in UNCHECKED for sep in "-_")}
    checked = {name: state for name, state in states.items() if name not in unchecked}
    return (len(checked) == len(COMPONENTS) - 1 + NODES and set(checked.values()) == {"healthy"}
            and len(unchecked) == len(UNCHECKED) and set(unchecked.values()) == {"running"})


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def ready_pods(cluster: ComposeCluster, selector: str, count: int) -> list[dict[str, Any]]:
    """The selected pods if exactly `count` of them exist and all are Ready, else []."""
    pods = cluster.pods(selector)
    return pods if len(pods) == count and all(is_ready(p) for p in pods) else []


def ready_web_pods(cluster: ComposeCluster, count: int) -> list[dict[str, Any]]:
    return ready_pods(cluster, "app=web", count)


def waiting_reasons(watcher: subprocess.Popen[str], *, until: str,
                    timeout: float) -> list[str]:
    """The containers' waiting reasons, in order, from a `get -w -o json` stream (one JSON
    object per event), read until `until` shows up or the time is out."""
    assert watcher.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout or ()],
                     daemon=True).start()
    decoder = json.JSONDecoder()
    buffer = ""
    reasons: list[str] = []
    deadline = time.monotonic() + timeout
    while until not in reasons and time.monotonic() < deadline:
        try:
            buffer += lines.get(timeout=0.2)
        except queue.Empty:
            continue
        try:
            obj, end = decoder.raw_decode(buffer.strip())
        except json.JSONDecodeError:
            continue  # not a whole object yet
        buffer = buffer.strip()[end:]
        for status in obj.get("status", {}).get("containerStatuses") or []:
            reason = status.get("state", {}).get("waiting", {}).get("reason")
            if reason and (not reasons or reasons[-1] != reason):
                reasons.append(reason)
    return reasons


def web_deployment(name: str = "web", replicas: int = WEB_REPLICAS) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    # echo.py, PID 1 of its container, has no SIGTERM handler.
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "web", "image": DEMO_IMAGE,
                        # No registry: `:latest` would mean imagePullPolicy Always.
                        "imagePullPolicy": "IfNotPresent",
                        "env": [{"name": "POD_NAME",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                           "periodSeconds": 1},
                    }],
                },
            },
        },
    }


CLIENT = """
import sys, urllib.request
url, want = sys.argv[1], int(sys.argv[2])
replies = errors = 0
while replies < want and errors < 50:
    try:
        body = urllib.request.urlopen(url, timeout=5).read().decode().strip()
    except Exception as err:
        errors += 1
        print("error", err, flush=True)
        continue
    replies += 1
    print("reply", body, flush=True)
print("done", replies, "replies", errors, "errors", flush=True)
"""


def client_pod(name: str, url: str, requests: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "client", "image": DEMO_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", CLIENT], "args": [url, str(requests)]}]},
    }


# -- fixtures -------------------------------------------------------------------------

@contextlib.contextmanager
def running_cluster(compose: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory,
                    request: pytest.FixtureRequest) -> Iterator[ComposeCluster]:
    """A cluster brought up with this compose command, its logs printed if a test failed,
    and always torn down."""
    reason = unavailable(compose)
    if reason:
        if os.environ.get("KUBELITE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"KUBELITE_REQUIRE_DOCKER=1 but {reason}")
        missing_prerequisite(reason)
    cluster = ComposeCluster(tmp_path_factory.mktemp("compose"), compose)
    failed_before = request.session.testsfailed
    try:
        cluster.up()
        yield cluster
    finally:
        if request.session.testsfailed > failed_before:
            path = cluster.workdir / "compose.log"
            path.write_text(cluster.logs(tail=0))
            print(f"--- compose logs of {cluster.project}, whole in {path} ---\n"
                  f"{cluster.logs()}")
        cluster.down()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[ComposeCluster]:
    """The acceptance's cluster, on Compose v2, shared by the tests in file order."""
    with running_cluster(COMPOSE_V2, tmp_path_factory, request) as cluster:
        yield cluster


# -- the acceptance, in order ---------------------------------------------------------

def test_two_nodes_are_ready_within_60s_of_up(cluster: ComposeCluster) -> None:
    """`kubelite get nodes` shows both kubelets Ready within 60 s of `up`."""
    remaining = 60 - (time.monotonic() - cluster.up_at)
    nodes = eventually(lambda: len(cluster.ready_nodes()) == NODES and cluster.ready_nodes(),
                       timeout=remaining, what=f"{NODES} Ready nodes")
    assert sorted(nodes) == [f"{cluster.project}-kubelet-{i}" for i in range(1, NODES + 1)]
    table = cluster.kl("get", "nodes").stdout
    assert table.count(" Ready ") == NODES, table
    eventually(lambda: all_healthy(cluster), timeout=30, what="every compose service healthy")


def test_deployment_runs_sibling_containers_across_both_nodes(cluster: ComposeCluster) -> None:
    """3 demo pods: 3 containers on the host's Docker, on both nodes, distinct pod IPs,
    their output in `kubelite logs`."""
    cluster.apply(web_deployment())
    pods = eventually(lambda: ready_web_pods(cluster, WEB_REPLICAS), timeout=60,
                      what="3 Ready web pods")
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert nodes == set(cluster.ready_nodes()), "pods are not spread across both nodes"
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == WEB_REPLICAS
    assert all(ipaddress.ip_address(ip) in cluster.pod_range for ip in ips), ips
    for pod in pods:
        name = pod["metadata"]["name"]
        running = cluster.containers(f"{LABEL_POD_NAME}={name}")
        assert len(running) == 1, running
        assert running[0][LABEL_NODE] == pod["spec"]["nodeName"]
        assert running[0][LABEL_POD_UID] == pod["metadata"]["uid"]
        log = cluster.kl("logs", name).stdout
        assert f"echo server {name} listening" in log, log


def test_a_pod_reaches_every_backend_through_the_cluster_ip(cluster: ComposeCluster) -> None:
    """From inside a fourth pod, 100 requests to the Service's ClusterIP reach all 3 pods."""
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    service = cluster.get("service", "web")
    cluster_ip = service["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in cluster.service_range
    eventually(lambda: sum(len(s.get("addresses", []))
                           for s in cluster.get("endpoints", "web").get("subsets") or [])
               == WEB_REPLICAS, timeout=30, what="3 ready endpoints")
    cluster.apply(client_pod("client", f"http://{cluster_ip}:80/", 100))
    eventually(lambda: cluster.pod("client").get("status", {}).get("phase") == "Succeeded",
               timeout=60, what="the client pod to finish")
    lines = cluster.kl("logs", "client").stdout.splitlines()
    replies = [line.split()[1] for line in lines if line.startswith("reply ")]
    assert len(replies) == 100, lines[-5:]
    backends = {p["metadata"]["name"] for p in cluster.pods("app=web")}
    assert set(replies) == backends, f"replies came from {set(replies)}, not {backends}"
    cluster.kl("delete", "pod", "client")


def test_a_killed_container_comes_back_with_one_more_restart(cluster: ComposeCluster) -> None:
    """`docker kill` on a pod's container: the kubelet starts it again, restartCount + 1."""
    pod = cluster.pods("app=web")[0]
    name = pod["metadata"]["name"]
    before = pod["status"]["containerStatuses"][0]["restartCount"]
    (victim,) = cluster.containers(f"{LABEL_POD_NAME}={name}")
    run(["docker", "kill", victim["id"]])

    def restarted() -> dict[str, Any] | None:
        current = cluster.pod(name)
        status = current["status"]["containerStatuses"][0]
        return current if status["restartCount"] == before + 1 and is_ready(current) else None

    eventually(restarted, timeout=60, what=f"{name} restarted")
    (replacement,) = cluster.containers(f"{LABEL_POD_NAME}={name}")
    assert replacement["id"] != victim["id"]
    assert replacement["io.kubernetes.container.restartCount"] == str(before + 1)


def test_an_unpullable_image_shows_errimagepull_then_imagepullbackoff(
        cluster: ComposeCluster) -> None:
    """No registry answers: ErrImagePull, then ImagePullBackOff; the cluster stays healthy."""
    watcher = subprocess.Popen(
        [KUBELITE_CLI, "--server", cluster.server, "get", "pods", "-w", "-o", "json",
         "--field-selector", "metadata.name=badimage"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "badimage"},
                       "spec": {"containers": [{"name": "c", "image": UNPULLABLE_IMAGE}]}})
        reasons = waiting_reasons(watcher, until="ImagePullBackOff", timeout=60)
    finally:
        watcher.terminate()
        watcher.wait(10)
    assert "ErrImagePull" in reasons and "ImagePullBackOff" in reasons, reasons
    assert reasons.index("ErrImagePull") < reasons.index("ImagePullBackOff"), reasons
    message = cluster.kl("describe", "pod", "badimage").stdout
    assert "kubelite.invalid" in message and "Failed to pull image" in message, message
    cluster.kl("delete", "pod", "badimage", "--grace-period", "0")
    assert sorted(cluster.ready_nodes()) == sorted(
        {p["spec"]["nodeName"] for p in cluster.pods("app=web")})
    assert all_healthy(cluster), cluster.healthy()
    assert all(is_ready(p) for p in cluster.pods("app=web"))


def test_restarted_and_crashed_kubelets_adopt_their_running_pods(
        cluster: ComposeCluster) -> None:
    """`docker compose restart kubelet`, then a kubelet's process SIGKILLed (Docker's restart
    policy starts it again): the pods' containers run on, adopted, not doubled. The reaper,
    which removes the pods at `down`, is not involved in either."""
    def snapshot() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for c in cluster.containers(all_states=True):
            found.setdefault(c[LABEL_POD_NAME], []).append(f"{c['id'][:12]}:{c['state']}")
        holders = run(["docker", "ps", "-a", "--filter", MANAGED, "--filter",
                       f"label={LABEL_TYPE}=podsandbox", "--format",
                       f'{{{{.ID}}}}:{{{{.State}}}} {{{{.Label "{LABEL_POD_NAME}"}}}} '
                       f'{{{{.Label "{LABEL_NODE}"}}}}']).stdout
        for row in holders.splitlines():
            state, pod_name, node = row.split()
            if node.startswith(cluster.project + "-"):
                found.setdefault(pod_name, []).append(state)
        return {k: sorted(v) for k, v in found.items() if k.startswith("web-")}

    def running_holders(node: str) -> int:
        return len(run(["docker", "ps", "-q", "--filter", MANAGED, "--filter",
                        f"label={LABEL_TYPE}=podsandbox", "--filter",
                        f"label={LABEL_NODE}={node}"]).stdout.split())

    pods_before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
                   for p in cluster.pods("app=web")}
    containers_before = snapshot()
    kubelets = cluster.kubelet_nodes()
    holders = {node: running_holders(node) for node in kubelets.values()}
    assert all(holders.values()), holders
    since = str(int(time.time()))
    cluster.compose("restart", "kubelet")
    eventually(lambda: all_healthy(cluster), timeout=60, what="the kubelets healthy again")
    for cid, node in kubelets.items():
        log = run(["docker", "logs", "--since", since, cid]).stderr
        assert f"adopted_sandboxes={holders[node]} " in log, log[-2000:]
    time.sleep(5)  # a few relists and syncs: what would be duplicated is by now
    assert snapshot() == containers_before
    after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
             for p in cluster.pods("app=web")}
    assert after == pods_before
    assert all(is_ready(p) for p in cluster.pods("app=web"))

    # A crash: no SIGTERM, no shutdown; Docker's restart policy brings the container back.
    cid, node = sorted(kubelets.items(), key=lambda item: item[1])[0]
    restarts = int(run(["docker", "inspect", "-f", "{{.RestartCount}}", cid]).stdout)
    pid = int(run(["docker", "inspect", "-f", "{{.State.Pid}}", cid]).stdout)
    since = str(int(time.time()))
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: int(run(["docker", "inspect", "-f", "{{.RestartCount}}", cid]).stdout)
               > restarts and all_healthy(cluster), timeout=60,
               what=f"{node} restarted by Docker and healthy")
    log = run(["docker", "logs", "--since", since, cid]).stderr
    assert f"adopted_sandboxes={holders[node]} " in log, log[-2000:]
    time.sleep(5)
    assert snapshot() == containers_before
    assert {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
            for p in cluster.pods("app=web")} == pods_before


def test_redis_restart_loses_no_acknowledged_object(cluster: ComposeCluster) -> None:
    """Redis killed right after the writes were acknowledged comes back with all of them
    (AOF), and the components carry on by themselves."""
    names = [f"ack-{i}" for i in range(30)]
    cluster.apply(*({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n},
                     "data": {"i": n}} for n in names))
    (redis,) = cluster.service_ids("redis")
    run(["docker", "kill", "--signal", "KILL", redis])  # no shutdown, no final fsync
    cluster.compose("start", "redis")
    stored = eventually(
        lambda: cluster.kl("get", "configmaps", "-o", "name", check=False).stdout.split(),
        timeout=60, what="the apiserver to answer again")
    assert {f"configmap/{n}" for n in names} <= set(stored)
    eventually(lambda: all_healthy(cluster), timeout=60, what="every compose service healthy")
    eventually(lambda: len(cluster.ready_nodes()) == NODES, timeout=60, what="Ready nodes")
    # The watches came back: a scale-up is seen by the controller, the scheduler and a kubelet.
    cluster.kl("scale", "deployment", "web", "--replicas", str(WEB_REPLICAS + 1))
    eventually(lambda: ready_web_pods(cluster, WEB_REPLICAS + 1), timeout=60,
               what="a 4th Ready web pod")


def test_a_deleted_deployment_removes_its_containers(cluster: ComposeCluster) -> None:
    """Deleting the Deployment deletes its pods, and the kubelets remove their containers."""
    uids = {p["metadata"]["uid"] for p in cluster.pods("app=web")}
    assert cluster.containers(all_states=True)
    cluster.kl("delete", "deployment", "web")
    eventually(lambda: not cluster.pods("app=web"), timeout=60, what="the web pods deleted")

    def left() -> list[str]:
        rows = run(["docker", "ps", "-a", "--filter", MANAGED, "--format",
                    f'{{{{.Names}}}} {{{{.Label "{LABEL_POD_UID}"}}}}']).stdout.splitlines()
        return [row for row in rows if row.split()[-1] in uids]

    eventually(lambda: not left(), timeout=30, what="the web pods' containers and holders "
               "removed")


WHOLE_POD_APP = """
import json, os, time
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None
while True:
    print(json.dumps({"seed": read("/work/seed"), "color": read("/config/color"),
                      "secret_env": os.environ.get("TOKEN"), "secret_file": read("/secret/token"),
                      "prestop": read("/work/prestop")}), flush=True)
    time.sleep(0.3)
"""


def test_a_whole_pod_init_volumes_secret_and_pre_stop_on_docker(cluster: ComposeCluster) -> None:
    """One pod on the docker runtime: an init container writes into an emptyDir that the
    app reads; a configMap volume updated while the pod runs shows the new content with
    no restart; a Secret arrives as env and as a file; the preStop hook leaves a mark."""
    cluster.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "whole-cfg"},
         "data": {"color": "blue"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "whole-secret"},
         "stringData": {"token": "s3cr3t"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "whole"}, "spec": {
            "terminationGracePeriodSeconds": 20,
            "volumes": [{"name": "work", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "whole-cfg"}},
                        {"name": "secret", "secret": {"secretName": "whole-secret"}}],
            "initContainers": [{
                "name": "seed", "image": DEMO_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", "open('/work/seed', 'w').write('from-init')"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [{
                "name": "app", "image": DEMO_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-u", "-c", WHOLE_POD_APP],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {
                    "name": "whole-secret", "key": "token"}}}],
                "lifecycle": {"preStop": {"exec": {"command": [
                    "python3", "-c", "open('/work/prestop', 'w').write('ran'); "
                                     "import time; time.sleep(2)"]}}},
                "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                 {"name": "config", "mountPath": "/config"},
                                 {"name": "secret", "mountPath": "/secret",
                                  "readOnly": True}]}]}})

    def last_line() -> dict[str, Any] | None:
        lines = cluster.kl("logs", "whole", "-c", "app", check=False).stdout.splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    first = eventually(last_line, timeout=90, what="the app's first report")
    assert first == {"seed": "from-init", "color": "blue", "secret_env": "s3cr3t",
                     "secret_file": "s3cr3t", "prestop": None}, first
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "whole-cfg"},
                   "data": {"color": "green"}})
    eventually(lambda: (last_line() or {}).get("color") == "green", timeout=60,
               what="the configMap update inside the running pod")
    status = cluster.pod("whole")["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0, status
    cluster.kl("delete", "pod", "whole", "--wait=false")
    eventually(lambda: (last_line() or {}).get("prestop") == "ran", timeout=30,
               what="the preStop hook's mark, seen by the app before its SIGTERM")
    cluster.kl("delete", "configmap", "whole-cfg")
    cluster.kl("delete", "secret", "whole-secret")


def test_a_stopped_kubelets_pods_come_back_on_the_other_node(cluster: ComposeCluster) -> None:
    """Node loss: `docker stop` on one kubelet container. Once its lease has been silent for
    the grace period, its node is tainted unreachable; its pods are evicted when their
    default toleration of that taint ends, and the ReplicaSet replaces them on the other
    node. Started again, the kubelet removes its copies of the evicted pods: no pod runs
    twice. Needs the node lifecycle controller's taints and eviction, with the short
    timings of EVICTION_TIMINGS."""
    replicas = 4
    eventually(lambda: all_healthy(cluster) and len(cluster.ready_nodes()) == NODES,
               timeout=60, what=f"{NODES} Ready nodes")
    cluster.apply(web_deployment("survivor", replicas))
    pods = eventually(lambda: ready_pods(cluster, "app=survivor", replicas), timeout=60,
                      what=f"{replicas} Ready survivor pods")
    kubelets = {node: cid for cid, node in cluster.kubelet_nodes().items()}
    assert {p["spec"]["nodeName"] for p in pods} == set(kubelets), "not on both nodes"
    lost_node = sorted(kubelets)[0]
    lost = {p["metadata"]["uid"] for p in pods if p["spec"]["nodeName"] == lost_node}
    stopped_at = time.monotonic()
    run(["docker", "stop", kubelets[lost_node]])
    try:
        def replaced() -> list[dict[str, Any]]:
            live = [p for p in cluster.pods("app=survivor")
                    if not p["metadata"].get("deletionTimestamp")]
            moved = [p for p in live if p["spec"].get("nodeName") != lost_node and is_ready(p)]
            return moved if len(live) == len(moved) == replicas else []

        budget = NODE_MONITOR_GRACE + NODE_MONITOR_PERIOD + TOLERATION_SECONDS + 30
        eventually(replaced, timeout=budget, interval=1,
                   what=f"the pods of {lost_node} replaced on the other node")
        print(f"pods of the stopped node replaced after {time.monotonic() - stopped_at:.1f}s "
              f"(grace {NODE_MONITOR_GRACE}s + toleration {TOLERATION_SECONDS}s)")
        # Unreachable for a silent lease; not-ready if the kubelet said NotReady as it went.
        taints = {t["key"] for t in cluster.get("node", lost_node)["spec"].get("taints") or []}
        assert taints & {"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"}, taints
    finally:
        run(["docker", "start", kubelets[lost_node]])
    eventually(lambda: all_healthy(cluster), timeout=60, what=f"{lost_node} back")

    def copies() -> list[str]:
        return [c["id"][:12] for c in cluster.containers(all_states=True)
                if c[LABEL_POD_UID] in lost]

    eventually(lambda: not copies(), timeout=60,
               what=f"{lost_node} to remove its copies of the evicted pods")
    running = [c for c in cluster.containers() if c[LABEL_POD_NAME].startswith("survivor-")]
    assert len(running) == replicas, running
    assert len({c[LABEL_POD_UID] for c in running}) == replicas, running


def assert_down_leaves_nothing(cluster: ComposeCluster) -> None:
    """Plain `down`, as a user types it, with pods running: no container of the cluster
    is left, pods and holders included, and the network is gone. Only the named volumes
    stay, as compose keeps volumes without -v; `down -v` then removes them."""
    assert cluster.containers(), "no pod container runs: nothing for down to prove"
    started = time.monotonic()
    result = cluster.compose("down", timeout=300)
    took = time.monotonic() - started
    left = cluster.leftovers()
    assert (left["containers"], left["networks"]) == ([], []), (
        f"{shlex.join(cluster.base)} down left {left}:\n{result.stdout[-2000:]}"
        f"{result.stderr[-2000:]}")
    # v1 also makes the volumes of services under a profile (prometheus's), unused.
    named = {f"{cluster.project}_{volume}" for volume in ("redis-data", "prometheus-data")}
    assert f"{cluster.project}_redis-data" in left["volumes"], left
    assert set(left["volumes"]) <= named, left
    print(f"{shlex.join(cluster.base[:cluster.base.index('-p')])} down took {took:.1f}s")
    cluster.compose("down", "-v")
    assert cluster.leftovers() == {"containers": [], "networks": [], "volumes": []}


def test_plain_down_leaves_no_container_or_network(cluster: ComposeCluster) -> None:
    """`docker compose down` removes the stack, every pod the kubelets started, and the
    network, with no script of ours around it."""
    cluster.apply(web_deployment())  # pods left running on purpose: down must remove them
    eventually(lambda: {c[LABEL_NODE] for c in cluster.containers()} == set(
                   cluster.kubelet_nodes().values()),
               timeout=60, what="pod containers on both nodes")
    assert_down_leaves_nothing(cluster)


def test_compose_v1_runs_pods_and_plain_down_leaves_nothing(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
    """The same file on Compose v1 (`docker-compose` 1.29): the nodes come up Ready, a
    Deployment's pods run on both, and plain `docker-compose down` leaves nothing."""
    with running_cluster(COMPOSE_V1, tmp_path_factory, request) as v1:
        eventually(lambda: len(v1.ready_nodes()) == NODES, timeout=60,
                   what=f"{NODES} Ready nodes")
        v1.apply(web_deployment())
        pods = eventually(lambda: ready_web_pods(v1, WEB_REPLICAS), timeout=60,
                          what=f"{WEB_REPLICAS} Ready web pods")
        assert {p["spec"]["nodeName"] for p in pods} == set(v1.ready_nodes())
        assert_down_leaves_nothing(v1)
