"""A real Prometheus scrapes a `kubelite up --nodes 2` cluster with the shipped scrape
configuration (deploy/prometheus.yml, rendered for local ports with 1 s intervals).

Every target is up, `rate(apiserver_request_total[1m])` has data after some traffic,
and `scheduler_schedule_attempts_total{result="scheduled"}` equals the pods scheduled.
Debian's `prometheus` package provides the server (scripts/install-deps installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelite.client import Client
from kubelite.localcluster import ManagedProcess, free_port

from .e2e import Cluster, eventually, start_cluster, wait_nodes_ready
from .helpers import missing_prerequisite
from .test_metrics import metrics_urls, wait_serving

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "deploy" / "prometheus.yml"
# `kubelite up` names its processes after services/<module>; the scrape jobs after
# the Kubernetes components they stand for.
JOB_OF = {"apiserver": "apiserver", "scheduler": "scheduler",
          "controller": "controller-manager", "kubelet": "kubelet", "proxy": "proxy",
          "dns": "coredns"}


def prometheus_binary() -> str | None:
    """The prometheus server; installed with apt-get when missing and we may."""
    found = shutil.which("prometheus")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                   env=env, capture_output=True, timeout=300, check=False)
    return shutil.which("prometheus")


def render_config(template: dict[str, Any], urls: dict[str, str], *,
                  interval: str = "1s") -> dict[str, Any]:
    """The shipped config with each job's service discovery replaced by the local targets
    `kubelite up` printed, and short intervals."""
    targets: dict[str, list[str]] = {}
    for name, url in urls.items():
        component = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        host_port = urllib.parse.urlsplit(url).netloc
        targets.setdefault(JOB_OF[component], []).append(host_port)
    config = json.loads(json.dumps(template))
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    for job in config["scrape_configs"]:
        for key in ("dns_sd_configs", "static_configs"):
            job.pop(key, None)
        job["static_configs"] = [{"targets": sorted(targets.pop(job["job_name"]))}]
    assert not targets, f"no scrape job for {sorted(targets)}"
    return config


class Prometheus:
    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [binary, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.process = ManagedProcess("prometheus", argv, workdir / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        self.process.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if not self.process.alive() or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{self.process.tail()}")
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; the result vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.process.stop(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("prom-cluster"), nodes=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    if binary is None:
        missing_prerequisite("no prometheus binary (apt-get install prometheus)")
    urls = metrics_urls(cluster)
    wait_serving(urls.values())
    config = render_config(yaml.safe_load(TEMPLATE.read_text()), urls)
    server = Prometheus(binary, tmp_path_factory.mktemp("prometheus"), config).start()
    yield server
    server.stop()


def test_the_shipped_config_renders_one_target_per_process(cluster: Cluster) -> None:
    config = render_config(yaml.safe_load(TEMPLATE.read_text()), metrics_urls(cluster))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert sorted(jobs) == ["apiserver", "controller-manager", "coredns", "kubelet", "proxy",
                            "scheduler"]
    assert len(jobs["kubelet"]) == len(jobs["proxy"]) == 2


async def test_prometheus_scrapes_every_target_and_counts_requests_and_scheduling(
        cluster: Cluster, prometheus: Prometheus) -> None:
    # Every process of the cluster is a target, and every one is up.
    def all_up() -> list[dict[str, Any]] | None:
        result = prometheus.query("up")
        return result if len(result) == 8 and all(r["value"][1] == "1" for r in result) \
            else None

    ups = await eventually(all_up, timeout=30, what="8 targets with up == 1")
    assert {r["metric"]["job"] for r in ups} == set(JOB_OF.values())

    async with Client(cluster.target) as api:
        await wait_nodes_ready(api, 2)
        ns = f"prom-{uuid.uuid4().hex[:8]}"
        await api.create("namespaces", {"metadata": {"name": ns}})
        # Traffic over a few scrapes: a rate needs two samples that differ.
        for i in range(40):
            await api.create("configmaps", {"metadata": {"name": f"cm-{i}"}}, namespace=ns)
            await asyncio.sleep(0.1)
        rates = await eventually(lambda: _nonzero(prometheus.query(
            "rate(apiserver_request_total[1m])")), timeout=30, what="request rates")
        assert any(r["metric"].get("verb") == "create" and r["metric"].get("resource")
                   == "configmaps" for r in rates), rates

        for i in range(3):
            await api.create("pods", {"metadata": {"name": f"p-{i}"}, "spec": {"containers": [
                {"name": "c", "image": "python:3",
                 "command": [sys.executable, "-c", "import time; time.sleep(600)"]}]}},
                namespace=ns)

        async def scheduled() -> int:
            pods = (await api.list("pods")).items  # every namespace: all the cluster's pods
            return sum(1 for p in pods if (p.get("spec") or {}).get("nodeName"))

        bound = await eventually(lambda: _at_least(scheduled(), 3), timeout=30,
                                 what="3 scheduled pods")

        def counted() -> float | None:
            result = prometheus.query(
                'sum(scheduler_schedule_attempts_total{result="scheduled"})')
            value = float(result[0]["value"][1]) if result else -1.0
            return value if value == bound else None

        await eventually(counted, timeout=20, what=f"scheduled attempts == {bound}")


def _nonzero(result: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The series whose value is above zero, or None when there are none."""
    return [r for r in result if float(r["value"][1]) > 0] or None


async def _at_least(value: Any, floor: int) -> int | None:
    got = await value
    return got if got >= floor else None
