"""`kubelite create namespace NAME`, `kubelite create job NAME --from=cronjob/NAME` and
`kubelite create -f FILE`: create, never update."""

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


async def create_job_from_cronjob(session: Session, name: str, source: str) -> int:
    """A Job from a CronJob's jobTemplate, run now, as `kubectl create job --from` makes it."""
    kind, _, cronjob_name = source.partition("/")
    if not cronjob_name or resolve_kind(kind).kind != "CronJob":
        raise CliError(f"from must be an existing cronjob: {source}")
    info = resolve_kind("job")
    namespace = session.namespace_for(info)
    cronjob = await session.client.get("cronjobs", cronjob_name, namespace=namespace)
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = {**(tmeta.get("annotations") or {}),
                   "cronjob.kubernetes.io/instantiate": "manual"}
    meta = {"name": name, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                 "name": cronjob_name, "uid": cronjob["metadata"]["uid"],
                                 "controller": True}]}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
           "spec": template.get("spec") or {}}
    created = await session.client.create(info.plural, job, namespace=namespace)
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


async def run(session: Session, files: Sequence[str], args: Sequence[str],
              from_: str = "") -> int:
    if files:
        if args:
            raise CliError("resources may not be given both by argument and with -f")
        return await create_from_files(session, files)
    if len(args) == 2 and resolve_kind(args[0]).kind == "Namespace":
        return await create_namespace(session, args[1])
    if len(args) == 2 and resolve_kind(args[0]).kind == "Job":
        if not from_:
            raise CliError("kubelite create job NAME needs --from=cronjob/NAME")
        return await create_job_from_cronjob(session, args[1], from_)
    raise CliError("usage: kubelite create namespace NAME | kubelite create job NAME "
                   "--from=cronjob/NAME | kubelite create -f FILE")
