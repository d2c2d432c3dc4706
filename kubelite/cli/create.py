"""`kubelite create namespace NAME` and `kubelite create -f FILE`: create, never update."""

from __future__ import annotations

from collections.abc import Sequence

from kubelite.cli.apply import desired_fields, target_namespace
from kubelite.cli.manifests import load
from kubelite.cli.printers import object_name
from kubelite.cli.reporting import CliError, is_fatal
from kubelite.cli.session import Session, resolve_kind
from kubelite.errors import ApiError


async def create_namespace(session: Session, name: str) -> int:
    info = resolve_kind("namespace")
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    created = await session.client.create(info.plural, obj)
    session.print(f"{object_name(created, info)} created")
    return 0


async def create_from_files(session: Session, files: Sequence[str]) -> int:
    code = 0
    for manifest in load(files, verb="create"):
        namespace = target_namespace(manifest, session)
        body = desired_fields(manifest.obj)
        if namespace:
            body["metadata"]["namespace"] = namespace
        try:
            await session.client.create(manifest.info.plural, body, namespace=namespace)
        except ApiError as err:
            if is_fatal(err):
                raise
            session.report(err)
            code = 1
            continue
        session.print(f"{object_name(manifest.obj, manifest.info)} created")
    return code


async def run(session: Session, files: Sequence[str], args: Sequence[str]) -> int:
    if files:
        if args:
            raise CliError("resources may not be given both by argument and with -f")
        return await create_from_files(session, files)
    if len(args) == 2 and resolve_kind(args[0]).kind == "Namespace":
        return await create_namespace(session, args[1])
    raise CliError("usage: kubelite create namespace NAME | kubelite create -f FILE")
