"""`kubelite top`: kubectl's figures and messages, from scripted metrics and end to end."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.cli import top
from kubelite.cli.reporting import CliError
from kubelite.cli.session import Session
from kubelite.client import Client
from kubelite.errors import NotFoundError

from .e2e import Cluster, eventually, start_cluster, wait_nodes_ready

Obj = dict[str, Any]


def node(name: str, cpu: str = "2", memory: str = "4Gi") -> Obj:
    return {"metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                       "capacity": {"cpu": "4", "memory": "8Gi"}}}


def node_metrics(name: str, cpu: str, memory: str) -> Obj:
    return {"metadata": {"name": name}, "usage": {"cpu": cpu, "memory": memory}}


def pod_metrics(name: str, *containers: tuple[str, str, str], ns: str = "default") -> Obj:
    return {"metadata": {"name": name, "namespace": ns},
            "containers": [{"name": c, "usage": {"cpu": cpu, "memory": mem}}
                           for c, cpu, mem in containers]}


def test_node_rows_round_as_kubectl_and_show_unknown_for_nodes_without_metrics() -> None:
    rows = top.node_rows([node_metrics("a", "250000001n", "64Mi"),
                          node_metrics("b", "1500m", "2Gi")],
                         [node("a"), node("b"), node("c")])
    assert rows == [["a", "251m", "12%", "64Mi", "1%"],
                    ["b", "1500m", "75%", "2048Mi", "50%"],
                    ["c", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]]
    by_capacity = top.node_rows([node_metrics("b", "1500m", "2Gi")], [node("b")],
                                show_capacity=True)
    assert by_capacity == [["b", "1500m", "37%", "2048Mi", "25%"]]


def test_pod_rows_sum_containers_or_list_them() -> None:
    metrics = [pod_metrics("web", ("app", "100m", "10Mi"), ("side", "5m", "1536Ki")),
               pod_metrics("db", ("pg", "300m", "100Mi"), ns="data")]
    headers, rows = top.pod_rows(metrics)
    assert headers == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows == [["web", "105m", "11Mi"], ["db", "300m", "100Mi"]]
    headers, rows = top.pod_rows(metrics, containers=True, with_namespace=True,
                                 sort_by="cpu")
    assert headers == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert rows[0] == ["data", "db", "pg", "300m", "100Mi"]
    assert rows[-1] == ["default", "web", "side", "5m", "1Mi"]
    _, rows = top.pod_rows(metrics, sort_by="memory")
    assert [r[0] for r in rows] == ["db", "web"]


class ScriptedClient:
    def __init__(self, *, metrics: list[Obj] | None = None, pods: list[Obj] | None = None,
                 nodes: list[Obj] | None = None) -> None:
        self._metrics, self._pods, self._nodes = metrics or [], pods or [], nodes or []

    async def metrics(self, resource: str, **kwargs: Any) -> list[Obj]:
        if kwargs.get("name") and not self._metrics:
            raise NotFoundError(f'podmetrics.metrics.k8s.io "{kwargs["name"]}" not found')
        return self._metrics

    async def list(self, resource: str, **kwargs: Any) -> Any:
        class Listed:
            items = self._pods if resource == "pods" else self._nodes
        return Listed()

    async def get(self, resource: str, name: str, **kwargs: Any) -> Obj:
        for obj in self._pods if resource == "pods" else self._nodes:
            if obj["metadata"]["name"] == name:
                return obj
        raise NotFoundError(f'{resource} "{name}" not found')


def session(client: ScriptedClient) -> Session:
    return Session(client, "test", 5.0, out=io.StringIO(), err=io.StringIO())  # type: ignore[arg-type]


async def test_no_metrics_yet_is_an_error_but_no_pods_is_not() -> None:
    with pytest.raises(CliError, match="metrics not available yet"):
        await top.run(session(ScriptedClient(nodes=[node("a")])), ["nodes"], top.TopOptions())
    with pytest.raises(CliError, match="metrics not available yet"):
        await top.run(session(ScriptedClient(pods=[{"metadata": {"name": "p"}}])), ["pods"],
                      top.TopOptions())
    with pytest.raises(CliError, match="metrics not available yet"):
        await top.run(session(ScriptedClient(pods=[{"metadata": {"name": "p"}}])),
                      ["pod", "p"], top.TopOptions())
    with pytest.raises(NotFoundError):
        await top.run(session(ScriptedClient()), ["pod", "nope"], top.TopOptions())
    quiet = session(ScriptedClient())
    assert await top.run(quiet, ["po"], top.TopOptions()) == 0
    assert quiet.err.getvalue() == "No resources found in default namespace.\n"  # type: ignore[attr-defined]


async def test_tables_print_with_headers_unless_told_not_to() -> None:
    s = session(ScriptedClient(metrics=[pod_metrics("web", ("c", "12m", "3Mi"))]))
    await top.run(s, ["pod"], top.TopOptions(no_headers=True))
    assert s.out.getvalue() == "web   12m   3Mi\n"  # type: ignore[attr-defined]
    s = session(ScriptedClient(metrics=[node_metrics("a", "1", "1Gi")], nodes=[node("a")]))
    await top.run(s, ["node"], top.TopOptions())
    assert s.out.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "NAME   CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%",
        "a      1000m        50%    1024Mi          25%"]
    with pytest.raises(CliError, match="unknown resource"):
        await top.run(s, ["deployments"], top.TopOptions())


# -- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("top"), nodes=2,
                      env={"KUBELITE_STATS_PERIOD": "0.5"})
    yield c
    c.stop()


def kubelite(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    binary = str(Path(sys.executable).parent / "kubelite")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "KUBELITE_SERVER": cluster.target})


@pytest.mark.slow
async def test_top_shows_a_busy_pod_and_both_nodes(cluster: Cluster) -> None:
    ns = f"top-{uuid.uuid4().hex[:8]}"
    async with Client(cluster.target) as api:
        await wait_nodes_ready(api, 2)
        await api.create("namespaces", {"metadata": {"name": ns}})
        assert "No resources found in" in kubelite(cluster, "top", "pods", "-n", ns).stderr
        await api.create("pods", {"metadata": {"name": "busy", "labels": {"app": "busy"}},
                                  "spec": {"containers": [{
                                      "name": "spin", "image": "python:3",
                                      "command": [sys.executable, "-c", "while True: pass"]}]}},
                         namespace=ns)
        await eventually(lambda: _has_metrics(api, ns), timeout=30, what="pod metrics")

    def busy_row() -> list[str] | None:
        # A spinning process shows most of a core, once the shared machine lets it run.
        shown = kubelite(cluster, "top", "pods", "-n", ns, "-l", "app=busy")
        assert shown.returncode == 0, shown.stderr
        header, row = shown.stdout.splitlines()
        assert header.split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        name, cpu, memory = row.split()
        assert name == "busy" and re.fullmatch(r"\d+m", cpu), row
        assert re.fullmatch(r"\d+Mi", memory), row
        return row.split() if int(cpu[:-1]) > 200 else None

    await eventually(busy_row, timeout=30, interval=0.5, what="a busy pod over 200m")

    shown = kubelite(cluster, "top", "pod", "busy", "-n", ns, "--containers")
    assert shown.stdout.split()[:5] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)", "busy"]

    shown = kubelite(cluster, "top", "nodes")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["node-0", "node-1"]
    for line in lines[1:]:
        _, cpu, cpu_pct, memory, memory_pct = line.split()
        assert cpu.endswith("m") and cpu_pct.endswith("%") and memory.endswith("Mi")


async def _has_metrics(api: Client, ns: str) -> bool:
    return bool(await api.metrics("pods", namespace=ns))
