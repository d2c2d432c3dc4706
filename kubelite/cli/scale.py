"""`kubelite scale`: set spec.replicas of deployments and replicasets.

`scale deployment web --replicas 3`, `scale deploy/web rs/api --replicas 3`,
or `scale -f FILE --replicas 3` for the objects a manifest names. Each object
prints `deployment.apps/web scaled`. Without preconditions the change is a
merge patch of spec.replicas; with --current-replicas or --resource-version it
is an update that fails when the object is not in the stated state, as
kubectl's preconditions do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubelite.cli.apply import target_namespace
from kubelite.cli.manifests import load
from kubelite.cli.reporting import CliError, is_fatal
from kubelite.cli.session import Session, resolve_kind
from kubelite.cli.targets import Target
from kubelite.errors import ApiError

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController")
USAGE = ("kubelite scale (deployment|rs|sts|rc) NAME --replicas N | "
         "kubelite scale -f FILE --replicas N")


@dataclass(frozen=True)
class ScaleOptions:
    replicas: int | None = None
    current_replicas: int = -1  # -1: no precondition
    resource_version: str = ""


def parse_targets(args: Sequence[str]) -> list[Target]:
    """`KIND NAME...` or `KIND/NAME...` → the objects to scale."""
    if not args:
        raise CliError(f"you must specify the resource to scale (usage: {USAGE})")
    if any("/" in arg for arg in args):
        targets = []
        for arg in args:
            kind, sep, name = arg.partition("/")
            if not sep or not kind or not name:
                raise CliError(f'there is no need to specify a resource type as a separate '
                               f'argument when passing arguments in resource/name form: {arg}')
            targets.append(Target(resolve_kind(kind), name))
        return targets
    if len(args) < 2:
        raise CliError(f"you must specify the name of the {args[0]} to scale (usage: {USAGE})")
    info = resolve_kind(args[0])
    return [Target(info, name) for name in args[1:]]


def check_scalable(target: Target) -> None:
    if target.info.kind not in SCALABLE:
        raise CliError(f"cannot scale {target.info.qualified_plural}: only deployments, "
                       f"replicasets, statefulsets and replicationcontrollers can be scaled")


def check_options(options: ScaleOptions) -> int:
    if options.replicas is None:
        raise CliError('required flag(s) "replicas" not set')
    if options.replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater "
                       "than or equal to 0")
    return options.replicas


async def scale_one(session: Session, target: Target, namespace: str,
                    options: ScaleOptions) -> None:
    replicas = check_options(options)
    plural = target.info.plural
    if options.current_replicas < 0 and not options.resource_version:
        await session.client.patch(plural, target.name, {"spec": {"replicas": replicas}},
                                   namespace=namespace)
    else:
        live = await session.client.get(plural, target.name, namespace=namespace)
        spec = live.setdefault("spec", {})
        current = spec.get("replicas", 1)
        if options.current_replicas >= 0 and current != options.current_replicas:
            raise CliError(f"Expected replicas to be {options.current_replicas}, "
                           f"was {current}")
        if options.resource_version:
            live["metadata"]["resourceVersion"] = options.resource_version
        spec["replicas"] = replicas
        await session.client.update(plural, live, namespace=namespace)
    session.print(f"{target.display} scaled")


async def run(session: Session, args: Sequence[str], files: Sequence[str],
              options: ScaleOptions) -> int:
    check_options(options)
    if files and args:
        raise CliError("resources may not be given both by argument and with -f")
    work: list[tuple[Target, str]] = []
    if files:
        for manifest in load(files, verb="scale"):
            work.append((Target(manifest.info, manifest.name),
                         target_namespace(manifest, session) or ""))
    else:
        work = [(t, session.effective_namespace) for t in parse_targets(args)]
    for target, _ in work:
        check_scalable(target)
    if len(work) > 1 and options.resource_version:
        raise CliError("cannot use --resource-version with multiple resources")
    code = 0
    for target, namespace in work:
        try:
            await scale_one(session, target, namespace, options)
        except ApiError as err:
            if is_fatal(err) or len(work) == 1:
                raise
            session.report(err)
            code = 1
    return code
