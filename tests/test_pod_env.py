"""A container's environment from ConfigMaps and Secrets, through a real kubelet (process
runtime): envFrom with prefixes, secretKeyRef/configMapKeyRef with optional,
resourceFieldRef, and CreateContainerConfigError until a missing source appears."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.testing import ApiServer
from tests.test_kubelet import (
    KubeletProcess,
    container,
    events_for,
    eventually,
    get_pod,
    make_pod,
    status_of,
    wait_running_ready,
)
from tests.test_kubelet import ns as ns  # noqa: F401 - the fixture
from tests.test_secrets import kubelite

Obj = dict[str, Any]

DUMP = ("import json, os\nprint(json.dumps(dict(os.environ)), flush=True)\n"
        "import time; time.sleep(1000)")


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("kubelet")).start()
    yield k
    k.stop()
    k.kill_leftovers()


def configmap(name: str, ns: str, data: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": data}


def secret(name: str, ns: str, data: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def env_of(client: Client, name: str, ns: str) -> dict[str, str]:
    async def output() -> dict[str, str] | None:
        data = b"".join([c async for c in client.logs(name, namespace=ns)])
        return json.loads(data) if data.strip() else None
    return await eventually(output, what=f"the env dump of {name}")


async def waiting_with(client: Client, name: str, ns: str, reason: str) -> Obj:
    async def check() -> Obj | None:
        cs = status_of(await get_pod(client, name, ns))
        waiting = cs.get("state", {}).get("waiting") or {}
        return waiting if waiting.get("reason") == reason else None
    return await eventually(check, what=f"{name} waiting with {reason}")


async def test_env_from_configmaps_and_secrets_with_prefixes_and_key_refs(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    await client.create("configmaps", configmap("cfg", ns, {
        "COLOR": "blue", "shared": "from-cm", "9lives": "x", "1st": "y"}))
    await client.create("secrets", secret("creds", ns, {"USER": "admin", "PASS": "p@ss"}))
    c = container("main", DUMP, envFrom=[
        {"configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "creds"}, "prefix": "DB_"},
        {"configMapRef": {"name": "absent", "optional": True}},
        {"secretRef": {"name": "absent", "optional": True}},
    ], env=[
        {"name": "shared", "value": "from-env"},  # env wins over envFrom
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}},
        {"name": "NOPE", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "x",
                                                         "optional": True}}},
        {"name": "NOPE2", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x",
                                                             "optional": True}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                            "divisor": "1Mi"}}},
        {"name": "URL", "value": "db://$(DB_USER)@host"},
    ], resources={"limits": {"memory": "64Mi"}})
    await client.create("pods", make_pod("envfrom", ns, kubelet.node, c))
    await wait_running_ready(client, "envfrom", ns)
    env = await env_of(client, "envfrom", ns)
    assert env["COLOR"] == "blue" and env["shared"] == "from-env"
    assert env["DB_USER"] == "admin" and env["DB_PASS"] == "p@ss" and env["TOKEN"] == "p@ss"
    assert "USER" not in env or env["USER"] != "admin"
    assert "NOPE" not in env and "NOPE2" not in env and "9lives" not in env
    assert env["MEM"] == "64" and env["URL"] == "db://admin@host"
    events = await eventually(lambda: events_for(client, ns, "envfrom",
                                                 "InvalidEnvironmentVariableNames"),
                              what="InvalidEnvironmentVariableNames")
    assert f"Keys [1st, 9lives] from the EnvFrom configMap {ns}/cfg were skipped" in \
        events[0]["message"]


@pytest.mark.parametrize(("env", "env_from", "message"), [
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}], [],
     'secret "later" not found'),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "k"}}}], [],
     'configmap "later" not found'),
    ([], [{"secretRef": {"name": "later"}}], 'secret "later" not found'),
    ([], [{"configMapRef": {"name": "later"}}], 'configmap "later" not found'),
])
async def test_missing_source_is_a_config_error_until_it_appears(
        client: Client, kubelet: KubeletProcess, ns: str, env: list, env_from: list,
        message: str) -> None:
    c = container("main", DUMP, env=env, envFrom=env_from)
    await client.create("pods", make_pod("waits", ns, kubelet.node, c))
    waiting = await waiting_with(client, "waits", ns, "CreateContainerConfigError")
    assert waiting["message"] == message
    assert (await get_pod(client, "waits", ns))["status"]["phase"] == "Pending"
    if "secret" in message:
        await client.create("secrets", secret("later", ns, {"k": "v"}))
    else:
        await client.create("configmaps", configmap("later", ns, {"k": "v"}))
    await wait_running_ready(client, "waits", ns, within=10)
    assert (await env_of(client, "waits", ns)).get("X", "v") == "v"


async def test_missing_key_names_the_key_and_the_source(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    await client.create("secrets", secret("s", ns, {"a": "1"}))
    await client.create("configmaps", configmap("c", ns, {"a": "1"}))
    await client.create("pods", make_pod("nokey", ns, kubelet.node, container("main", DUMP, env=[
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])))
    await client.create("pods", make_pod("nokey2", ns, kubelet.node, container("main", DUMP, env=[
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}])))
    waiting = await waiting_with(client, "nokey", ns, "CreateContainerConfigError")
    assert waiting["message"] == f"couldn't find key k in Secret {ns}/s"
    waiting = await waiting_with(client, "nokey2", ns, "CreateContainerConfigError")
    assert waiting["message"] == f"couldn't find key k in ConfigMap {ns}/c"
    obj = await client.get("secrets", "s", namespace=ns)
    obj["stringData"] = {"k": "now"}
    await client.update("secrets", obj)
    await wait_running_ready(client, "nokey", ns, within=10)
    assert (await env_of(client, "nokey", ns))["X"] == "now"


async def test_secret_values_stay_out_of_the_kubelet_log_and_describe(
        client: Client, kubelet: KubeletProcess, ns: str, shared_apiserver: ApiServer) -> None:
    value = "v3ry-s3cret-4d1e"
    await client.create("secrets", secret("hidden", ns, {"TOKEN": value}))
    c = container("main", DUMP, envFrom=[{"secretRef": {"name": "hidden"}, "prefix": "S_"}],
                  env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "hidden",
                                                                     "key": "TOKEN"}}}])
    await client.create("pods", make_pod("hider", ns, kubelet.node, c))
    await wait_running_ready(client, "hider", ns)
    assert (await env_of(client, "hider", ns))["S_TOKEN"] == value
    assert kubelet.process is not None
    assert value not in kubelet.process.log_path.read_text(errors="replace")
    code, out = await kubelite(shared_apiserver.target, "describe", "pod", "hider", "-n", ns)
    assert code == 0, out
    assert "<set to the key 'TOKEN' in secret 'hidden'>" in out
    assert "hidden" in out and "Secret with prefix 'S_'" in out
    assert value not in out
