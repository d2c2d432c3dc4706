"""Security contexts: the merge of pod and container settings, what the kubelet admits,
Docker's options, and what the process runtime refuses (pure logic), plus the process
runtime's refusal seen as a pod status on a real kubelet."""

from __future__ import annotations

import pytest

from kubelite.client import Client
from services.kubelet.security import (
    SecurityContext,
    SecurityError,
    admit,
    check_image_user,
    docker_options,
    effective,
    process_runtime_refusal,
)
from tests.test_kubelet import KubeletProcess, eventually, get_pod, make_pod, status_of


def test_container_settings_override_the_pods() -> None:
    pod = {"securityContext": {"runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True,
                               "fsGroup": 3, "supplementalGroups": [4]}}
    ctx = effective(pod, {"securityContext": {"runAsUser": 10, "readOnlyRootFilesystem": True}})
    assert (ctx.run_as_user, ctx.run_as_group, ctx.run_as_non_root) == (10, 2, True)
    assert ctx.fs_group == 3 and tuple(ctx.supplemental_groups) == (4,)
    assert ctx.read_only_root_filesystem and not ctx.privileged
    assert effective({}, {}).is_default


def test_docker_options_follow_the_context() -> None:
    create, host = docker_options(SecurityContext(
        run_as_user=5, run_as_group=6, fs_group=7, read_only_root_filesystem=True,
        allow_privilege_escalation=False, capabilities_add=("NET_ADMIN",),
        capabilities_drop=("CAP_CHOWN", "all")))
    assert create == {"user": "5:6"}
    assert host == {"group_add": ["7"], "read_only": True,
                    "security_opt": ["no-new-privileges"], "cap_add": ["NET_ADMIN"],
                    "cap_drop": ["CHOWN", "all"]}
    with pytest.raises(SecurityError):
        docker_options(SecurityContext(run_as_group=6))


def test_admission_refuses_privileged_without_the_flag_and_root_under_non_root() -> None:
    with pytest.raises(SecurityError, match="--allow-privileged"):
        admit(SecurityContext(privileged=True), allow_privileged=False)
    admit(SecurityContext(privileged=True), allow_privileged=True)
    with pytest.raises(SecurityError, match="breaks non-root policy"):
        admit(SecurityContext(run_as_non_root=True, run_as_user=0), allow_privileged=True)
    with pytest.raises(SecurityError, match="will run as root"):
        check_image_user(SecurityContext(run_as_non_root=True), "")
    with pytest.raises(SecurityError, match="non-numeric user"):
        check_image_user(SecurityContext(run_as_non_root=True), "app")
    check_image_user(SecurityContext(run_as_non_root=True), "1000:1000")


@pytest.mark.parametrize("ctx,word", [
    (SecurityContext(run_as_user=4321), "runAsUser"),
    (SecurityContext(read_only_root_filesystem=True), "readOnlyRootFilesystem"),
    (SecurityContext(capabilities_drop=("ALL",)), "capabilities"),
    (SecurityContext(supplemental_groups=(5,)), "supplementalGroups"),
])
def test_process_runtime_names_what_it_cannot_honour(ctx: SecurityContext, word: str) -> None:
    assert word in process_runtime_refusal(ctx, uid=1000, gid=1000)
    assert process_runtime_refusal(SecurityContext(run_as_user=1000), uid=1000, gid=1000) == ""
    assert process_runtime_refusal(SecurityContext(fs_group=5), uid=1000, gid=1000) == ""


async def test_process_runtime_refuses_with_a_clear_pod_status(
        shared_apiserver, client: Client, namespace: str, tmp_path) -> None:
    """A securityContext the process runtime cannot honour is CreateContainerConfigError
    with the reason, never silently ignored."""
    kubelet = KubeletProcess(shared_apiserver.target, tmp_path)
    import asyncio
    await asyncio.to_thread(kubelet.start)
    try:
        await client.create("pods", make_pod("strict", namespace, kubelet.node, {
            "name": "main", "image": "busybox", "command": ["sleep", "100"],
            "securityContext": {"runAsUser": 4321, "readOnlyRootFilesystem": True}}))

        async def waiting() -> dict | None:
            pod = await get_pod(client, "strict", namespace)
            state = status_of(pod).get("state", {}).get("waiting") or {}
            return state if state.get("reason") == "CreateContainerConfigError" else None

        state = await eventually(waiting, within=20, what="CreateContainerConfigError")
        assert "runAsUser 4321" in state["message"]
    finally:
        await asyncio.to_thread(kubelet.stop)
