"""Secrets through a real apiserver: types, base64, stringData, immutability, and the
real `kubelite` CLI never showing a value in clear (nor the apiserver's log)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import InvalidError
from kubelite.testing import ApiServer

SECRET_VALUE = "s3cr3t-Value-9f2c"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(name: str, *, type_: str | None = None, data: dict[str, str] | None = None,
           string_data: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    if type_:
        obj["type"] = type_
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    obj.update(extra)
    return obj


async def kubelite(server: str, *args: str) -> tuple[int, str]:
    binary = shutil.which("kubelite") or str(Path(sys.executable).parent / "kubelite")
    env = dict(os.environ, KUBELITE_SERVER=server)
    proc = await asyncio.create_subprocess_exec(
        binary, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_opaque_secret_stores_base64_and_merges_string_data(
        client: Client, namespace: str) -> None:
    """stringData is folded into data (base64, winning over data) and never stored."""
    created = await client.create("secrets", secret(
        "db", data={"user": b64("admin"), "password": b64("old")},
        string_data={"password": SECRET_VALUE}), namespace=namespace)
    assert created["type"] == "Opaque"
    assert "stringData" not in created
    assert created["data"] == {"user": b64("admin"), "password": b64(SECRET_VALUE)}
    stored = await client.get("secrets", "db", namespace=namespace)
    assert "stringData" not in stored and "generation" not in stored["metadata"]
    stored["stringData"] = {"extra": "x"}
    updated = await client.update("secrets", stored)
    assert updated["data"]["extra"] == b64("x") and "stringData" not in updated


@pytest.mark.parametrize(("obj", "message"), [
    (secret("bad64", data={"k": "not base64!"}),
     'data.k: Invalid value: "<contents redacted>": must be base64-encoded'),
    (secret("badkey", data={"a/b": b64("x")}), "data[a/b]: Invalid value"),
    (secret("tls", type_="kubernetes.io/tls", data={"tls.crt": b64("c")}),
     "data[tls.key]: Required value"),
    (secret("dcj", type_="kubernetes.io/dockerconfigjson", data={}),
     "data[.dockerconfigjson]: Required value"),
    (secret("dcj2", type_="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": "{not json"}),
     'data[.dockerconfigjson]: Invalid value: "<secret contents redacted>"'),
    (secret("ba", type_="kubernetes.io/basic-auth", data={"other": b64("x")}),
     "data[username]: Required value"),
])
async def test_invalid_secrets_are_refused(client: Client, namespace: str, obj: dict[str, Any],
                                           message: str) -> None:
    with pytest.raises(InvalidError) as err:
        await client.create("secrets", obj, namespace=namespace)
    assert message in str(err.value)
    assert "{not json" not in str(err.value) and "not base64!" not in str(err.value)


async def test_typed_secrets_are_accepted(client: Client, namespace: str) -> None:
    await client.create("secrets", secret("tls", type_="kubernetes.io/tls", string_data={
        "tls.crt": "CERT", "tls.key": "KEY"}), namespace=namespace)
    await client.create("secrets", secret("reg", type_="kubernetes.io/dockerconfigjson",
                                          string_data={".dockerconfigjson": '{"auths": {}}'}),
                        namespace=namespace)
    got = await client.create("secrets", secret("ba", type_="kubernetes.io/basic-auth",
                                                string_data={"username": "u"}),
                              namespace=namespace)
    assert got["type"] == "kubernetes.io/basic-auth"


async def test_type_never_changes_and_immutable_freezes_data(
        client: Client, namespace: str) -> None:
    obj = await client.create("secrets", secret("s", string_data={"a": "1"}),
                              namespace=namespace)
    obj["type"] = "kubernetes.io/basic-auth"
    obj["data"]["username"] = b64("u")
    with pytest.raises(InvalidError, match="type: Invalid value.*field is immutable"):
        await client.update("secrets", obj)
    obj = await client.get("secrets", "s", namespace=namespace)
    obj["immutable"] = True
    obj = await client.update("secrets", obj)
    obj["data"]["a"] = b64("2")
    with pytest.raises(InvalidError, match="data: Forbidden: field is immutable when"):
        await client.update("secrets", obj)
    obj = await client.get("secrets", "s", namespace=namespace)
    obj["stringData"] = {"b": "x"}
    with pytest.raises(InvalidError, match="data: Forbidden"):
        await client.update("secrets", obj)
    obj = await client.get("secrets", "s", namespace=namespace)
    obj["immutable"] = False
    with pytest.raises(InvalidError, match="immutable: Forbidden"):
        await client.update("secrets", obj)
    # Labels may still change.
    obj = await client.get("secrets", "s", namespace=namespace)
    obj["metadata"]["labels"] = {"k": "v"}
    await client.update("secrets", obj)


async def test_cli_get_and_describe_never_print_values(
        client: Client, namespace: str, shared_apiserver: ApiServer) -> None:
    await client.create("secrets", secret("app", string_data={
        "password": SECRET_VALUE, "user": "admin"}), namespace=namespace)
    await client.create("secrets", secret("tls", type_="kubernetes.io/tls", string_data={
        "tls.crt": "CERT", "tls.key": "KEY"}), namespace=namespace)
    code, out = await kubelite(shared_apiserver.target, "get", "secrets", "-n", namespace)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert lines[1].split()[:3] == ["app", "Opaque", "2"]
    assert lines[2].split()[:3] == ["tls", "kubernetes.io/tls", "2"]
    code, out = await kubelite(shared_apiserver.target, "describe", "secret", "app",
                               "-n", namespace)
    assert code == 0, out
    assert "Type:" in out and "Opaque" in out
    assert "password:" in out and f"{len(SECRET_VALUE)} bytes" in out
    assert "user:" in out and "5 bytes" in out
    assert SECRET_VALUE not in out and b64(SECRET_VALUE) not in out
    code, out = await kubelite(shared_apiserver.target, "get", "secret", "app",
                               "-n", namespace, "-o", "wide")
    assert code == 0 and SECRET_VALUE not in out


async def test_apiserver_log_never_holds_secret_values(apiserver: ApiServer) -> None:
    """Create, refuse and update a Secret: its value reaches no line of the apiserver log."""
    async with apiserver.client() as c:
        await c.create("namespaces", {"metadata": {"name": "logs"}})
        await c.create("secrets", secret("s", string_data={"k": SECRET_VALUE}),
                       namespace="logs")
        with pytest.raises(InvalidError):
            await c.create("secrets", secret("bad", type_="kubernetes.io/dockerconfigjson",
                                             string_data={".dockerconfigjson": SECRET_VALUE}),
                           namespace="logs")
        with pytest.raises(InvalidError):
            await c.create("secrets", secret("bad2", data={"k": SECRET_VALUE + "!"}),
                           namespace="logs")
    logs = apiserver.process.log_path.read_text(errors="replace")
    assert "apiserver" in logs  # the log we read is the one it writes
    assert SECRET_VALUE not in logs and b64(SECRET_VALUE) not in logs
