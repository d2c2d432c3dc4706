"""A container's security context: the pod's and the container's merged as Kubernetes
merges them, what each runtime can honour, and Docker's options for it.

The kubelet holds the Docker socket, so a privileged container could take the node:
`privileged: true` is refused unless the kubelet runs with `--allow-privileged`. The
process runtime runs a container as a local process of the kubelet's own user: it
cannot change user, drop capabilities or make a root filesystem read-only, and it
says so (CreateContainerConfigError) rather than ignore the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


class SecurityError(Exception):
    """The container's security context cannot be honoured (CreateContainerConfigError)."""


@dataclass(frozen=True)
class SecurityContext:
    """The effective settings of one container (container fields win over the pod's)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: Sequence[int] = ()
    read_only_root_filesystem: bool = False
    privileged: bool = False
    allow_privilege_escalation: bool | None = None
    capabilities_add: Sequence[str] = ()
    capabilities_drop: Sequence[str] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return self == SecurityContext()


def effective(pod_spec: Obj, container: Obj) -> SecurityContext:
    """The context Kubernetes applies: runAsUser, runAsGroup and runAsNonRoot of the
    container override the pod's; fsGroup, supplementalGroups and sysctls are the pod's."""
    pod = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return own[key] if own.get(key) is not None else pod.get(key)

    caps = own.get("capabilities") or {}
    return SecurityContext(
        run_as_user=pick("runAsUser"), run_as_group=pick("runAsGroup"),
        run_as_non_root=pick("runAsNonRoot"), fs_group=pod.get("fsGroup"),
        supplemental_groups=tuple(pod.get("supplementalGroups") or ()),
        read_only_root_filesystem=bool(own.get("readOnlyRootFilesystem")),
        privileged=bool(own.get("privileged")),
        allow_privilege_escalation=own.get("allowPrivilegeEscalation"),
        capabilities_add=tuple(caps.get("add") or ()),
        capabilities_drop=tuple(caps.get("drop") or ()),
        sysctls={s.get("name", ""): str(s.get("value", "")) for s in pod.get("sysctls") or []},
    )


def admit(context: SecurityContext, *, allow_privileged: bool) -> None:
    """Raises SecurityError for what no runtime of this kubelet may run."""
    if context.privileged and not allow_privileged:
        raise SecurityError("privileged containers are not allowed on this node: the kubelet "
                            "holds the Docker socket (start it with --allow-privileged)")
    if context.privileged and context.allow_privilege_escalation is False:
        raise SecurityError("cannot set allowPrivilegeEscalation to false and privileged to "
                            "true")
    if context.run_as_non_root and context.run_as_user == 0:
        raise SecurityError("container's runAsUser breaks non-root policy")


def check_image_user(context: SecurityContext, image_user: str) -> None:
    """runAsNonRoot against the image's USER when the pod names no runAsUser (as the
    kubelet verifies it): root, or a user name it cannot check, is refused."""
    if not context.run_as_non_root or context.run_as_user is not None:
        return
    user = (image_user or "").split(":", 1)[0]
    if user in ("", "0", "root"):
        raise SecurityError("container has runAsNonRoot and image will run as root")
    if not user.isdigit():
        raise SecurityError(f'container has runAsNonRoot and image has non-numeric user '
                            f'({user}), cannot verify user is non-root')


def process_runtime_refusal(context: SecurityContext, *, uid: int, gid: int) -> str:
    """Why the process runtime cannot honour context ("" when it can): it runs every
    container as the kubelet's own user, with the kubelet's capabilities and files."""
    if context.run_as_user is not None and context.run_as_user != uid:
        return (f"runAsUser {context.run_as_user}: the process runtime runs containers as "
                f"the kubelet's user ({uid})")
    if context.run_as_group is not None and context.run_as_group != gid:
        return (f"runAsGroup {context.run_as_group}: the process runtime runs containers "
                f"with the kubelet's group ({gid})")
    if context.run_as_non_root and uid == 0:
        return "runAsNonRoot: the process runtime runs containers as the kubelet's user, root"
    if context.read_only_root_filesystem:
        return "readOnlyRootFilesystem: the process runtime has no root filesystem of its own"
    if context.capabilities_add or context.capabilities_drop:
        return "capabilities: the process runtime cannot change a process's capabilities"
    # fsGroup is honoured where it matters here: the volume manager gives the pod's
    # volumes that group (the process keeps the kubelet's groups, which can use them).
    if context.supplemental_groups:
        return "supplementalGroups: the process runtime cannot change a process's groups"
    if context.sysctls:
        return "sysctls: the process runtime shares the node's kernel settings"
    return ""


def _capability(name: str) -> str:
    return name if name.upper() == "ALL" else name.upper().removeprefix("CAP_")


def docker_options(context: SecurityContext) -> tuple[Obj, Obj]:
    """(container create options, host_config options) for Docker."""
    create: Obj = {}
    host: Obj = {}
    if context.run_as_user is not None:
        create["user"] = (f"{context.run_as_user}:{context.run_as_group}"
                          if context.run_as_group is not None else str(context.run_as_user))
    elif context.run_as_group is not None:
        raise SecurityError("runAsGroup without runAsUser: Docker takes a group only with a "
                            "user")
    groups = [str(g) for g in (context.fs_group, *context.supplemental_groups) if g is not None]
    if groups:
        host["group_add"] = groups
    if context.read_only_root_filesystem:
        host["read_only"] = True
    if context.privileged:
        host["privileged"] = True
    if context.allow_privilege_escalation is False:
        host["security_opt"] = ["no-new-privileges"]
    if context.capabilities_add:
        host["cap_add"] = [_capability(c) for c in context.capabilities_add]
    if context.capabilities_drop:
        host["cap_drop"] = [_capability(c) for c in context.capabilities_drop]
    if context.sysctls:
        # A pod's containers join its holder's network namespace, where Docker refuses
        # per-container sysctls; Kubernetes sets them on the sandbox, which this does not.
        raise SecurityError("sysctls: not supported by kubelite's docker runtime")
    return create, host
