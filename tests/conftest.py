"""Fixtures that start real processes: redis-server on a free port and the
apiserver as a child process, the way `kubelite up` starts them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelite.client import Client
from kubelite.localcluster import (
    ManagedProcess,
    RedisServer,
    apiserver_process,
    free_port,
    wait_healthy,
)


@dataclass
class ApiServer:
    """A running apiserver process and the Redis behind it."""

    redis: RedisServer
    process: ManagedProcess
    target: str
    workdir: Path
    extra: tuple[str, ...] = ()

    def restart(self, *, kill: bool = True) -> None:
        """Kills (or stops) the apiserver and starts it again on the same port."""
        self.process.kill() if kill else self.process.stop()
        self.process = apiserver_process(
            self.workdir, listen=self.target, redis_url=self.redis.url, extra=self.extra
        ).start()
        wait_healthy(self.target, 30, self.process.proc)

    def stop(self) -> None:
        self.process.stop()


def start_apiserver(workdir: Path, redis: RedisServer, extra: tuple[str, ...] = ()) -> ApiServer:
    target = f"127.0.0.1:{free_port()}"
    proc = apiserver_process(workdir, listen=target, redis_url=redis.url, extra=extra).start()
    try:
        wait_healthy(target, 30, proc.proc)
    except Exception:
        print(proc.tail())
        proc.kill()
        raise
    return ApiServer(redis, proc, target, workdir, extra)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server of this test's own, stopped afterwards."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def apiserver_factory(tmp_path: Path, redis_server: RedisServer):
    """Starts apiservers with extra flags against this test's Redis."""
    started: list[ApiServer] = []

    def start(*extra: str) -> ApiServer:
        server = start_apiserver(tmp_path, redis_server, tuple(extra))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def apiserver(apiserver_factory) -> ApiServer:
    """An apiserver of this test's own, for tests that inject faults."""
    return apiserver_factory()


@pytest.fixture(scope="session")
def shared_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One apiserver for the tests that only need isolation by namespace."""
    workdir = tmp_path_factory.mktemp("shared")
    redis = RedisServer(workdir / "redis").start()
    server = start_apiserver(workdir, redis)
    yield server
    server.stop()
    redis.stop()


@pytest.fixture
async def client(shared_apiserver: ApiServer) -> AsyncIterator[Client]:
    async with Client(shared_apiserver.target) as c:
        yield c


@pytest.fixture
async def namespace(client: Client) -> str:
    """A fresh namespace, so tests on the shared apiserver never see each other."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}})
    return name
