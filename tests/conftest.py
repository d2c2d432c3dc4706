"""The project's tests use the kubelite.testing pytest plugin, under the short fixture
names they have always used (`redis_server`, `apiserver`, `client`, `namespace`, ...).

The plugin comes from the installed package's pytest11 entry point; a checkout run
without it installed (or with PYTEST_DISABLE_PLUGIN_AUTOLOAD) registers it here.
Registering it twice would be an error, hence the check instead of `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import kubelite.testing.plugin as kubelite_plugin
from kubelite.client import Client
from kubelite.localcluster import RedisServer
from kubelite.testing import ApiServer

# tests/test_testing_kit.py runs fresh pytest sessions to test the plugin itself.
pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(kubelite_plugin):
        config.pluginmanager.register(kubelite_plugin, "kubelite")


@pytest.fixture
def redis_server(kubelite_redis: RedisServer) -> RedisServer:
    return kubelite_redis


@pytest.fixture
def apiserver_factory(kubelite_apiserver_factory: Callable[..., ApiServer]
                      ) -> Callable[..., ApiServer]:
    return kubelite_apiserver_factory


@pytest.fixture
def apiserver(kubelite_apiserver: ApiServer) -> ApiServer:
    return kubelite_apiserver


@pytest.fixture(scope="session")
def shared_apiserver(kubelite_shared_apiserver: ApiServer) -> ApiServer:
    return kubelite_shared_apiserver


@pytest.fixture
def client(kubelite_client: Client) -> Client:
    return kubelite_client


@pytest.fixture
def namespace(kubelite_namespace: str) -> str:
    return kubelite_namespace
