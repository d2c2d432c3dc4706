"""The pytest plugin: fixtures that start real kubelite processes and tear them down.

pytest loads it through the `pytest11` entry point of the installed package, so
a harness needs only `pip install kubelite` (and pytest-asyncio for the async
fixtures). Every fixture name starts with `kubelite_`, so that none can shadow
another plugin's `client` or `namespace`; a project that wants short names
aliases them in its conftest.py, as kubelite's own tests do.

- kubelite_redis: a redis-server of the test's own on a free port.
- kubelite_apiserver_factory: `start(*flags)` runs apiservers against that Redis.
- kubelite_apiserver: one such apiserver, for tests that restart it or fault Redis.
- kubelite_shared_apiserver: one apiserver (and Redis) for the whole session.
- kubelite_client: an async Client of the shared apiserver.
- kubelite_namespace: a fresh namespace there, so tests sharing it never meet.
- kubelite_cluster: a whole `kubelite up` cluster (one node, Ready) for the module.
- kubelite_cluster_factory: `start(nodes=..., env=...)` for clusters of the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from kubelite.client import Client
from kubelite.localcluster import RedisServer
from kubelite.testing.processes import (
    ApiServer,
    LocalCluster,
    create_namespace,
    start_apiserver,
    start_cluster,
    wait_nodes_ready,
)

try:
    import pytest_asyncio
except ImportError:  # the sync fixtures still work; the async ones say what is missing
    pytest_asyncio = None


@pytest.fixture
def kubelite_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server of this test's own, stopped afterwards."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def kubelite_apiserver_factory(
    tmp_path: Path, kubelite_redis: RedisServer
) -> Iterator[Callable[..., ApiServer]]:
    """`start(*flags)` starts an apiserver with extra command-line flags against this
    test's Redis; every apiserver started is stopped afterwards."""
    started: list[ApiServer] = []

    def start(*extra: str) -> ApiServer:
        server = start_apiserver(tmp_path, kubelite_redis, tuple(extra))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def kubelite_apiserver(kubelite_apiserver_factory: Callable[..., ApiServer]) -> ApiServer:
    """An apiserver of this test's own (on its own Redis), for tests that inject faults."""
    return kubelite_apiserver_factory()


@pytest.fixture(scope="session")
def kubelite_shared_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One apiserver for the tests that only need isolation by namespace."""
    workdir = tmp_path_factory.mktemp("kubelite-shared")
    redis = RedisServer(workdir / "redis").start()
    try:
        server = start_apiserver(workdir, redis)
    except Exception:
        redis.stop()
        raise
    yield server
    server.stop()
    redis.stop()


def _start_cluster(data_dir: Path, nodes: int, env: dict[str, str] | None) -> LocalCluster:
    """A cluster whose `nodes` Nodes are Ready; on failure, its logs are in the error."""
    cluster = start_cluster(data_dir, nodes=nodes, env=env)

    async def ready() -> None:
        async with cluster.client() as client:
            await wait_nodes_ready(client, nodes)

    try:
        asyncio.run(ready())
    except BaseException as err:
        cluster.stop()
        logs = "\n".join(f"--- {name}\n{cluster.log(name)[-1500:]}"
                         for name in ("apiserver", "controller", "kubelet-0"))
        raise AssertionError(f"{err}\n{logs}") from err
    return cluster


@pytest.fixture(scope="module")
def kubelite_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A whole local cluster (`kubelite up`, one Ready node), shared by a module's tests
    and stopped after the last of them."""
    cluster = _start_cluster(tmp_path_factory.mktemp("kubelite-cluster"), 1, None)
    yield cluster
    cluster.stop()


@pytest.fixture
def kubelite_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """`start(nodes=2, env=None)` runs a cluster of this test's own, its nodes Ready
    (env overrides component flags, e.g. KUBELITE_HPA_SYNC_PERIOD); all are stopped after."""
    started: list[LocalCluster] = []

    def start(nodes: int = 2, env: dict[str, str] | None = None) -> LocalCluster:
        cluster = _start_cluster(tmp_path / f"cluster-{len(started)}", nodes, env)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def kubelite_client(kubelite_shared_apiserver: ApiServer) -> AsyncIterator[Client]:
        """An async Client of the shared apiserver, closed afterwards."""
        async with Client(kubelite_shared_apiserver.target) as client:
            yield client

    @pytest_asyncio.fixture
    async def kubelite_namespace(kubelite_client: Client) -> str:
        """A fresh namespace on the shared apiserver, so tests never see each other."""
        return await create_namespace(kubelite_client)

else:
    _MISSING = "the async kubelite fixtures need pytest-asyncio: pip install pytest-asyncio"

    @pytest.fixture
    def kubelite_client() -> None:
        pytest.fail(_MISSING)

    @pytest.fixture
    def kubelite_namespace() -> None:
        pytest.fail(_MISSING)
