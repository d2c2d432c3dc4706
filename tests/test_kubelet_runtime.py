"""The Runtime contract, tested on the process runtime (the docker runtime can join the
`runtime` fixture's parameters): real processes, no apiserver."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.kubelet.runtime import (
    LABEL_POD_UID,
    ContainerConfig,
    ContainerConfigError,
    ContainerState,
    PodSandbox,
    PodSandboxConfig,
    Runtime,
)
from services.kubelet.runtime_process import ProcessRuntime, process_alive

CIDR = "127.199.7.0/24"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    rt = ProcessRuntime(tmp_path / "root", pod_cidr=CIDR)
    await rt.start()
    yield rt
    for c in await rt.list_containers():
        if not c.exited:
            await rt.stop_container(c.id, grace=0)


@pytest.fixture
async def sandbox(runtime: ProcessRuntime) -> PodSandbox:
    return await runtime.run_pod_sandbox(PodSandboxConfig(uid="uid-1", namespace="ns",
                                                          name="pod"))


def config(name: str, *command: str, restart_count: int = 0, memory_limit: int = 0,
           working_dir: str = "") -> ContainerConfig:
    return ContainerConfig(
        pod_uid="uid-1", pod_namespace="ns", pod_name="pod", name=name, image="img",
        command=list(command), args=[], env=[("PATH", os.environ["PATH"]), ("WHO", "me")],
        restart_count=restart_count, memory_limit=memory_limit, working_dir=working_dir,
        labels={LABEL_POD_UID: "uid-1"})


async def wait_exited(rt: Runtime, cid: str, within: float = 10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        c = await rt.container_status(cid)
        if c is not None and c.exited:
            return c
        await asyncio.sleep(0.02)
    raise AssertionError(f"container {cid} did not exit")


async def read_logs(rt: Runtime, cid: str, **kw) -> bytes:
    return b"".join([chunk async for chunk in rt.logs(cid, **kw)])


async def until(predicate, within: float = 10.0) -> None:
    """Polls an async predicate (processes and files have no events to wait on)."""
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _has(rt: Runtime, cid: str, text: bytes) -> bool:
    return text in await read_logs(rt, cid)


def test_process_runtime_is_a_runtime(runtime: ProcessRuntime) -> None:
    assert isinstance(runtime, Runtime)


async def test_sandbox_ip_is_stable_and_freed(runtime: ProcessRuntime) -> None:
    a = await runtime.run_pod_sandbox(PodSandboxConfig(uid="a", namespace="n", name="a"))
    again = await runtime.run_pod_sandbox(PodSandboxConfig(uid="a", namespace="n", name="a"))
    b = await runtime.run_pod_sandbox(PodSandboxConfig(uid="b", namespace="n", name="b"))
    assert a.ip == again.ip != b.ip
    await runtime.remove_pod_sandbox("a")
    assert [s.uid for s in await runtime.list_pod_sandboxes()] == ["b"]


async def test_container_runs_exits_and_records_its_exit(runtime: ProcessRuntime,
                                                        sandbox: PodSandbox) -> None:
    c = await runtime.start_container(sandbox, config("main", "sh", "-c", "echo $WHO; exit 3"))
    assert c.pod_uid == "uid-1" and c.name == "main" and c.image == "img"
    done = await wait_exited(runtime, c.id)
    assert (done.exit_code, done.reason) == (3, "Error")
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    assert await read_logs(runtime, c.id) == b"me\n"
    assert [x.id for x in await runtime.list_containers(labels={LABEL_POD_UID: "uid-1"})] == \
        [c.id]
    await runtime.remove_container(c.id)
    assert await runtime.list_containers(pod_uid="uid-1") == []


async def test_no_command_is_a_config_error(runtime: ProcessRuntime,
                                            sandbox: PodSandbox) -> None:
    with pytest.raises(ContainerConfigError, match="no command"):
        await runtime.start_container(sandbox, config("main"))


async def test_missing_executable_is_a_start_error(runtime: ProcessRuntime,
                                                   sandbox: PodSandbox) -> None:
    c = await runtime.start_container(sandbox, config("main", "no-such-binary-kubelite"))
    done = await wait_exited(runtime, c.id)
    assert (done.exit_code, done.reason) == (128, "StartError")
    assert "executable file not found" in done.message


async def test_stop_sends_sigterm_then_sigkill_after_the_grace(
        runtime: ProcessRuntime, sandbox: PodSandbox) -> None:
    polite = await runtime.start_container(sandbox, config("polite", "sleep", "1000"))
    stubborn = await runtime.start_container(sandbox, config(
        "stubborn", "python3", "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(1000)"))
    await until(lambda: _has(runtime, stubborn.id, b"ready"))
    start = time.monotonic()
    await runtime.stop_container(polite.id, grace=5)
    assert time.monotonic() - start < 2
    assert (await runtime.container_status(polite.id)).exit_code == 143
    start = time.monotonic()
    await runtime.stop_container(stubborn.id, grace=0.5)
    assert time.monotonic() - start >= 0.5
    assert (await runtime.container_status(stubborn.id)).exit_code == 137


async def test_the_whole_process_group_dies_with_the_container(
        runtime: ProcessRuntime, sandbox: PodSandbox) -> None:
    c = await runtime.start_container(sandbox, config(
        "main", "sh", "-c", "sleep 1000 & echo $!; sleep 0.3; exit 0"))
    await wait_exited(runtime, c.id)
    child = int((await read_logs(runtime, c.id)).split()[0])
    async def dead() -> bool:
        return not process_alive(child, 0)
    await until(dead)


async def test_exec_runs_with_the_containers_env_and_dir_and_times_out(
        runtime: ProcessRuntime, sandbox: PodSandbox, tmp_path: Path) -> None:
    c = await runtime.start_container(sandbox, config("main", "sleep", "1000",
                                                      working_dir=str(tmp_path)))
    result = await runtime.exec(c.id, ["sh", "-c", "echo $WHO; pwd"], time_limit=5)
    assert result.exit_code == 0 and result.output == f"me\n{tmp_path}\n".encode()
    assert (await runtime.exec(c.id, ["false"], time_limit=5)).exit_code == 1
    start = time.monotonic()
    slow = await runtime.exec(c.id, ["sleep", "10"], time_limit=0.3)
    assert slow.timed_out and time.monotonic() - start < 3


async def test_logs_tail_and_follow_until_the_instance_ends(
        runtime: ProcessRuntime, sandbox: PodSandbox) -> None:
    c = await runtime.start_container(sandbox, config(
        "main", "sh", "-c", "echo one; echo two; sleep 0.5; echo three; sleep 0.3"))
    await until(lambda: _has(runtime, c.id, b"two"))
    assert await read_logs(runtime, c.id, tail_lines=1) == b"two\n"
    followed = await asyncio.wait_for(read_logs(runtime, c.id, follow=True), 10)
    assert followed == b"one\ntwo\nthree\n"


async def test_memory_limit_watchdog_reports_oom_killed(
        runtime: ProcessRuntime, sandbox: PodSandbox) -> None:
    c = await runtime.start_container(sandbox, config(
        "hog", "python3", "-c",
        "import time; x = bytearray(300 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); "
        "time.sleep(100)", memory_limit=64 * 1024 * 1024))
    done = await wait_exited(runtime, c.id)
    assert (done.exit_code, done.reason) == (137, "OOMKilled")


async def test_a_new_runtime_adopts_running_containers(
        runtime: ProcessRuntime, sandbox: PodSandbox, tmp_path: Path) -> None:
    """A restarted kubelet's runtime finds the same containers, pids and pod IPs."""
    c = await runtime.start_container(sandbox, config("main", "sleep", "1000",
                                                      restart_count=2))
    again = ProcessRuntime(tmp_path / "root", pod_cidr=CIDR)
    await again.start()
    adopted = await again.container_status(c.id)
    assert adopted is not None and adopted.state is ContainerState.RUNNING
    assert adopted.pid == c.pid and adopted.restart_count == 2
    assert [s.ip for s in await again.list_pod_sandboxes()] == [sandbox.ip]
    other = await again.run_pod_sandbox(PodSandboxConfig(uid="u2", namespace="n", name="x"))
    assert other.ip != sandbox.ip
    # It can stop what it adopted, and sees the exit (via the shim it did not start).
    await again.stop_container(c.id, grace=2)
    assert (await again.container_status(c.id)).exit_code == 143
    assert (await wait_exited(runtime, c.id)).exit_code == 143


async def test_a_killed_shim_still_lets_the_container_be_watched(
        runtime: ProcessRuntime, sandbox: PodSandbox, tmp_path: Path) -> None:
    c = await runtime.start_container(sandbox, config("main", "sleep", "1000"))
    import json

    state = json.loads((tmp_path / "root" / "containers" / c.id / "state.json").read_text())
    os.kill(state["shimPid"], signal.SIGKILL)
    await asyncio.sleep(0.1)
    assert (await runtime.container_status(c.id)).running  # the command still runs
    os.kill(c.pid, signal.SIGKILL)
    done = await wait_exited(runtime, c.id)
    assert done.exit_code == 137 and "shim" in done.message
