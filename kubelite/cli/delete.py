"""`kubelite delete`: delete objects named on the command line, in files, or by selector.

Each object is reported (`deployment.apps "web" deleted`) as soon as the
apiserver accepts its deletion; with --wait (the default, as in kubectl) the
command then waits until every one of them is really gone, since pods and
namespaces linger while they terminate.

With -f, Namespaces are deleted after everything else in the files, so that
the objects inside them are not reported missing because the namespace
controller removed them first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from kubelite.cli.apply import target_namespace
from kubelite.cli.manifests import load
from kubelite.cli.printers import qualified_plural
from kubelite.cli.reporting import CliError, is_fatal
from kubelite.cli.session import Session, resolve_kind
from kubelite.errors import ApiError, NotFoundError
from kubelite.resources import ResourceInfo

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
           "true": "Background", "false": "Orphan"}
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class DeleteOptions:
    grace_period: int | None = None  # None: the object's own
    cascade: str = "background"
    wait: bool = True
    timeout: float = 0.0  # seconds to wait for objects to go; 0 waits as long as it takes
    ignore_not_found: bool = False
    label_selector: str = ""
    all: bool = False


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    name: str
    namespace: str | None

    def __str__(self) -> str:
        return f'{self.info.qualified} "{self.name}"'


def propagation_policy(cascade: str) -> str:
    try:
        return CASCADE[cascade.lower()]
    except KeyError:
        raise CliError(f'invalid cascade value ({cascade}). Must be "background", '
                       f'"foreground", or "orphan".') from None


def targets_from_files(session: Session, files: Sequence[str]) -> list[Target]:
    manifests = load(files, verb="delete")
    targets = [Target(m.info, m.name, target_namespace(m, session)) for m in manifests]
    return ([t for t in targets if t.info.kind != "Namespace"]
            + [t for t in targets if t.info.kind == "Namespace"])


async def targets_from_args(session: Session, args: Sequence[str],
                            options: DeleteOptions) -> list[Target]:
    if not args:
        raise CliError("You must provide one or more resources by argument or filename.")
    if "/" in args[0]:
        targets = []
        for arg in args:
            kind, _, name = arg.partition("/")
            info = resolve_kind(kind)
            targets.append(Target(info, name, session.namespace_for(info)))
        return targets
    infos = [resolve_kind(kind) for kind in args[0].split(",") if kind]
    names = list(args[1:])
    if names and (options.label_selector or options.all):
        raise CliError("name cannot be provided when a selector or --all is specified")
    if not names and not (options.label_selector or options.all):
        raise CliError("resource(s) were provided, but no name was specified")
    targets = []
    for info in infos:
        namespace = session.namespace_for(info)
        if names:
            targets.extend(Target(info, name, namespace) for name in names)
            continue
        listed = await session.client.list(info.plural, namespace=namespace,
                                           label_selector=options.label_selector)
        targets.extend(Target(info, obj["metadata"]["name"], namespace)
                       for obj in listed.items)
    if not targets:
        session.warn("No resources found")
    return targets


async def run(session: Session, files: Sequence[str], args: Sequence[str],
              options: DeleteOptions) -> int:
    if files and args:
        raise CliError("resources may not be given both by argument and with -f")
    policy = propagation_policy(options.cascade)
    targets = (targets_from_files(session, files) if files
               else await targets_from_args(session, args, options))
    code = 0
    deleted: list[tuple[Target, str]] = []
    for target in targets:
        try:
            obj = await session.client.delete(
                target.info.plural, target.name, namespace=target.namespace,
                grace_period_seconds=options.grace_period, propagation_policy=policy)
        except ApiError as err:
            if is_fatal(err):
                raise
            if isinstance(err, NotFoundError) and options.ignore_not_found:
                continue
            session.report(err)
            code = 1
            continue
        session.print(f"{target} deleted")
        deleted.append((target, (obj.get("metadata") or {}).get("uid", "")))
    if options.wait and deleted:
        pending = list(deleted)
        try:
            async with asyncio.timeout(options.timeout if options.timeout > 0 else None):
                await wait_until_gone(session, pending)
        except TimeoutError:
            names = ", ".join(f"{qualified_plural(t.info)}/{t.name}" for t, _ in pending)
            raise CliError(f"timed out waiting for the deletion of {names}") from None
    return code


async def wait_until_gone(session: Session, pending: list[tuple[Target, str]]) -> None:
    """Polls until each object is gone (or replaced by one with another uid); `pending`
    is updated in place, so that a caller that gives up knows what is left."""
    while pending:
        for target, uid in list(pending):
            try:
                obj = await session.client.get(target.info.plural, target.name,
                                               namespace=target.namespace)
            except NotFoundError:
                pending.remove((target, uid))
                continue
            if uid and (obj.get("metadata") or {}).get("uid") != uid:
                pending.remove((target, uid))
        if pending:
            await asyncio.sleep(POLL_SECONDS)
