"""`kubelite rollout status|history|undo|restart|pause|resume TYPE/NAME`.

- status watches the Deployment and prints kubectl's progress messages until
  the rollout completes (exit 0), its progress deadline is exceeded, the
  Deployment is deleted, or --timeout passes (exit 1). A message is printed
  when it changes, not once per watch event as kubectl does.
- history lists the revisions of the Deployment's ReplicaSets; with
  --revision N it shows that revision's pod template.
- undo copies a ReplicaSet's template back into the Deployment: the previous
  revision, or --to-revision N.
- restart sets the template annotation kubectl.kubernetes.io/restartedAt, so
  the Deployment controller replaces every pod; pause and resume set
  spec.paused.

status, history and undo also take a DaemonSet or a StatefulSet, whose
history is its ControllerRevisions (revisionutil.py); restart sets the same
annotation on them. pause and resume are for Deployments only, as in kubectl.
The messages are kubectl's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubelite.cli import deployutil, revisionutil
from kubelite.cli.deployutil import RolloutError
from kubelite.cli.reporting import CliError
from kubelite.cli.session import Session
from kubelite.cli.targets import Target, parse_target, selector_string, update_object
from kubelite.errors import ExpiredError

Obj = dict[str, Any]
RESTART_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class StatusOptions:
    watch: bool = True
    timeout: float = 0.0  # 0: wait as long as it takes
    revision: int = 0


def deployment_target(args: Sequence[str], subcommand: str) -> Target:
    target = parse_target(args, verb=f"rollout {subcommand}",
                          usage=f"kubelite rollout {subcommand} deployment/NAME")
    if target.info.kind != "Deployment":
        raise CliError(f"rollout {subcommand} is only implemented for deployments, "
                       f"not {target.info.qualified_plural}")
    return target


def workload_target(args: Sequence[str], subcommand: str) -> Target:
    """A Deployment, DaemonSet or StatefulSet: the kinds with a rollout history."""
    target = parse_target(args, verb=f"rollout {subcommand}",
                          usage=f"kubelite rollout {subcommand} TYPE/NAME "
                                f"(deployment, daemonset or statefulset)")
    if target.info.kind not in ("Deployment", *revisionutil.HISTORY_KINDS):
        raise CliError(f"rollout {subcommand} is only implemented for deployments, "
                       f"daemonsets and statefulsets, not {target.info.qualified_plural}")
    return target


async def get_deployment(session: Session, target: Target) -> Obj:
    return await session.client.get(target.info.plural, target.name,
                                    namespace=session.effective_namespace)


async def revisions_of(session: Session, owner: Obj) -> list[Obj]:
    """A DaemonSet's or StatefulSet's ControllerRevisions, oldest first."""
    selector = (owner.get("spec") or {}).get("selector")
    try:
        label_selector = selector_string(selector, what=f"the {owner.get('kind', '').lower()}")
    except CliError:
        label_selector = ""
    listed = await session.client.list("controllerrevisions",
                                       namespace=session.effective_namespace,
                                       label_selector=label_selector)
    return revisionutil.owned_revisions(owner, listed.items)


async def replicasets_of(session: Session, deployment: Obj) -> list[Obj]:
    """The ReplicaSets the Deployment owns (by ownerReference uid), in listed order."""
    selector = (deployment.get("spec") or {}).get("selector")
    try:
        label_selector = selector_string(selector, what="the deployment")
    except CliError:
        label_selector = ""  # no usable selector: look at every ReplicaSet
    listed = await session.client.list("replicasets",
                                       namespace=session.effective_namespace,
                                       label_selector=label_selector)
    return deployutil.owned_replicasets(deployment, listed.items)


# --- status -------------------------------------------------------------------------

class StatusPrinter:
    """Prints each new status message once; remembers whether the rollout is done."""

    def __init__(self, session: Session, want_revision: int) -> None:
        self.session = session
        self.want_revision = want_revision
        self.last = ""

    def show(self, obj: Obj) -> bool:
        if obj.get("kind") in revisionutil.HISTORY_KINDS:
            message, done = revisionutil.rollout_status(obj)
        else:
            message, done = deployutil.rollout_status(obj, self.want_revision)
        if message != self.last:
            self.session.print(message)
            self.last = message
        return done


async def follow_status(session: Session, target: Target, first: Obj,
                        printer: StatusPrinter) -> None:
    """Watches the Deployment until its rollout is done (or fails)."""
    namespace = session.effective_namespace
    revision = (first.get("metadata") or {}).get("resourceVersion", "")
    while True:
        try:
            async for event in session.client.watch(
                    target.info.plural, namespace=namespace,
                    field_selector=f"metadata.name={target.name}",
                    resource_version=revision):
                revision = event.resource_version or revision
                if event.type == "BOOKMARK":
                    continue
                if event.type == "DELETED":
                    raise RolloutError(f'{target.info.kind.lower()} "{target.name}" has been '
                                       f"deleted")
                if printer.show(event.object):
                    return
            await asyncio.sleep(RESTART_POLL_SECONDS)  # the stream ended: watch again
        except ExpiredError:
            pass  # our revision was compacted away: read the present state again
        current = await get_deployment(session, target)
        revision = (current.get("metadata") or {}).get("resourceVersion", "")
        if printer.show(current):
            return


async def status(session: Session, args: Sequence[str], options: StatusOptions) -> int:
    target = workload_target(args, "status")
    deployment = await get_deployment(session, target)
    printer = StatusPrinter(session, options.revision)
    if printer.show(deployment) or not options.watch:
        return 0
    try:
        if options.timeout > 0:
            async with asyncio.timeout(options.timeout):
                await follow_status(session, target, deployment, printer)
        else:
            await follow_status(session, target, deployment, printer)
    except TimeoutError:
        raise CliError("timed out waiting for the condition") from None
    return 0


# --- history --------------------------------------------------------------------------

async def history(session: Session, args: Sequence[str], revision: int = 0) -> int:
    target = workload_target(args, "history")
    deployment = await get_deployment(session, target)
    if target.info.kind in revisionutil.HISTORY_KINDS:
        revisions = await revisions_of(session, deployment)
        if revision > 0:
            details = revisionutil.revision_details(revisions, revision)
            session.print(f"{target.display} with revision #{revision}")
            session.print(details)
        else:
            session.print(target.display)
            session.print(revisionutil.history_table(revisions))
        return 0
    replicasets = await replicasets_of(session, deployment)
    if revision > 0:
        details = deployutil.revision_details(replicasets, revision)
        session.print(f"{target.display} with revision #{revision}")
        session.print(details)
    else:
        session.print(target.display)
        session.print(deployutil.history_table(replicasets))
    return 0


# --- undo ------------------------------------------------------------------------------

async def undo(session: Session, args: Sequence[str], to_revision: int = 0) -> int:
    target = workload_target(args, "undo")
    if to_revision < 0:
        raise CliError(f"unable to find specified revision {to_revision} in history")
    deployment = await get_deployment(session, target)
    if target.info.kind in revisionutil.HISTORY_KINDS:
        return await undo_revision(session, target, deployment, to_revision)
    check_not_paused(deployment, target)
    source = deployutil.rollback_source(await replicasets_of(session, deployment), to_revision)
    skipped = False

    def change(live: Obj) -> Obj | None:
        nonlocal skipped
        check_not_paused(live, target)
        if (live.get("metadata") or {}).get("uid") != deployment["metadata"].get("uid"):
            raise CliError(f"{target.display} was replaced while rolling back; try again")
        updated = deployutil.rolled_back(live, source)
        skipped = updated is None
        return updated

    await update_object(session, target.info, session.effective_namespace, target.name, change)
    if skipped:
        # kubectl prints the revision asked for, which is 0 without --to-revision;
        # naming the revision that matched says more.
        session.print(f"{target.display} skipped rollback (current template already "
                      f"matches revision {deployutil.revision(source)})")
    else:
        session.print(f"{target.display} rolled back")
    return 0


async def undo_revision(session: Session, target: Target, owner: Obj, to_revision: int) -> int:
    """A DaemonSet or StatefulSet back to one of its ControllerRevisions' templates."""
    revisions = await revisions_of(session, owner)
    source = revisionutil.rollback_source(revisions, to_revision, target.display)
    skipped = False

    def change(live: Obj) -> Obj | None:
        nonlocal skipped
        if (live.get("metadata") or {}).get("uid") != owner["metadata"].get("uid"):
            raise CliError(f"{target.display} was replaced while rolling back; try again")
        updated = revisionutil.rolled_back(live, source)
        skipped = updated is None
        return updated

    await update_object(session, target.info, session.effective_namespace, target.name, change)
    if skipped:
        session.print(f"{target.display} skipped rollback (current template already "
                      f"matches revision {source.get('revision')})")
    else:
        session.print(f"{target.display} rolled back")
    return 0


def check_not_paused(deployment: Obj, target: Target) -> None:
    if (deployment.get("spec") or {}).get("paused"):
        raise CliError(f"you cannot rollback a paused deployment; resume it first with "
                       f"'kubelite rollout resume {target.display}' and try again")


# --- restart, pause, resume ------------------------------------------------------------

def restarted_at() -> str:
    """Now in RFC 3339 with the local offset, as kubectl writes restartedAt."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


async def restart(session: Session, args: Sequence[str]) -> int:
    target = workload_target(args, "restart")
    deployment = await get_deployment(session, target)
    if (deployment.get("spec") or {}).get("paused"):
        raise CliError(f'{target.info.qualified_plural} "{target.name}" can\'t restart '
                       f"paused deployment (run rollout resume first)")
    patch = {"spec": {"template": {"metadata": {"annotations": {
        deployutil.RESTARTED_AT_ANNOTATION: restarted_at()}}}}}
    await session.client.patch(target.info.plural, target.name, patch,
                               namespace=session.effective_namespace)
    session.print(f"{target.display} restarted")
    return 0


async def set_paused(session: Session, args: Sequence[str], paused: bool) -> int:
    verb = "pause" if paused else "resume"
    target = deployment_target(args, verb)
    deployment = await get_deployment(session, target)
    done = "paused" if paused else "resumed"
    if bool((deployment.get("spec") or {}).get("paused")) == paused:
        session.print(f"{target.display} already {done}")
        return 0
    await session.client.patch("deployments", target.name, {"spec": {"paused": paused}},
                               namespace=session.effective_namespace)
    session.print(f"{target.display} {done}")
    return 0
