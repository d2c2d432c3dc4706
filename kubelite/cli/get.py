"""`kubelite get`: list or fetch objects of one or more kinds and print them.

Several kinds (`get po,svc`) print one table each, separated by a blank line,
with names qualified by kind as kubectl does. `-w` prints the first result,
then one row (or object) per watch event until interrupted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelite import printing as columns
from kubelite.cli.printers import (
    TableLayout,
    as_list,
    object_name,
    to_json,
    to_yaml,
    with_type_meta,
)
from kubelite.cli.reporting import CliError, is_fatal
from kubelite.cli.session import Session, resolve_kind
from kubelite.errors import ApiError, ExpiredError, NotFoundError
from kubelite.resources import ResourceInfo

OUTPUTS = ("wide", "yaml", "json", "name")
# kubectl's `all` category: the workload kinds a user usually means.
ALL_KINDS = ("pods", "services", "daemonsets", "deployments", "replicasets",
             "horizontalpodautoscalers")


@dataclass(frozen=True)
class GetOptions:
    all_namespaces: bool = False
    label_selector: str = ""
    field_selector: str = ""
    output: str = ""  # "" is the default table
    watch: bool = False
    show_labels: bool = False


@dataclass
class Found:
    """What one kind's request returned: objects, and the revision to watch from."""

    info: ResourceInfo
    items: list[dict[str, Any]] = field(default_factory=list)
    resource_version: str = ""


def parse_targets(args: Sequence[str]) -> list[tuple[ResourceInfo, list[str]]]:
    """`po,svc a b` → [(pod, [a, b]), (service, [a, b])]; `pod/a svc/b` → one name each."""
    if not args:
        raise CliError("you must specify the type of resource to get. "
                       "Use \"kubelite api-resources\" for a complete list of supported resources")
    if "/" in args[0]:
        targets: list[tuple[ResourceInfo, list[str]]] = []
        for arg in args:
            kind, sep, name = arg.partition("/")
            if not sep or not name:
                raise CliError(f"there is no need to specify a resource type as a separate "
                               f"argument when passing arguments in resource/name form "
                               f"(e.g. 'kubelite get resource/<resource_name>' instead of "
                               f"'kubelite get resource resource/<resource_name>'): {arg}")
            targets.append((resolve_kind(kind), [name]))
        return targets
    kinds = [expanded for k in args[0].split(",") if k
             for expanded in (ALL_KINDS if k.lower() == "all" else (k,))]
    if not kinds:
        raise CliError(f'invalid resource type "{args[0]}"')
    names = list(args[1:])
    return [(resolve_kind(kind), names) for kind in kinds]


def empty_message(session: Session, infos: Sequence[ResourceInfo],
                  options: GetOptions) -> str:
    if options.all_namespaces or not any(info.namespaced for info in infos):
        return "No resources found"
    return f"No resources found in {session.effective_namespace} namespace."


def request_namespace(session: Session, info: ResourceInfo,
                      options: GetOptions) -> str | None:
    if options.all_namespaces or not info.namespaced:
        return None
    return session.effective_namespace


async def fetch(session: Session, info: ResourceInfo, names: list[str],
                options: GetOptions) -> tuple[Found, bool]:
    """Gets the named objects (or lists the kind); returns them and whether any failed."""
    namespace = request_namespace(session, info, options)
    found = Found(info)
    failed = False
    if names:
        for name in names:
            try:
                obj = await session.client.get(info.plural, name, namespace=namespace)
            except ApiError as err:
                if is_fatal(err) or not isinstance(err, NotFoundError):
                    raise
                session.report(err)
                failed = True
                continue
            found.items.append(obj)
            found.resource_version = max(found.resource_version,
                                         obj.get("metadata", {}).get("resourceVersion", ""),
                                         key=_revision)
        return found, failed
    listed = await session.client.list(info.plural, namespace=namespace,
                                       label_selector=options.label_selector,
                                       field_selector=options.field_selector)
    found.items = columns.sort_for_display(info, listed.items)
    found.resource_version = listed.resource_version
    return found, failed


def _revision(text: str) -> int:
    return int(text) if text.isdigit() else -1


def print_objects(session: Session, results: list[Found], options: GetOptions,
                  single: bool) -> dict[str, TableLayout]:
    """Prints the first result in the chosen format; returns each kind's table layout
    so that watch rows line up under it."""
    layouts: dict[str, TableLayout] = {}
    objects = [with_type_meta(obj, r.info) for r in results for obj in r.items]
    if options.output in ("json", "yaml") and options.watch:
        # A stream of single objects, so that a reader parses every one alike.
        for obj in objects:
            session.print(to_json(obj) if options.output == "json" else "---\n" + to_yaml(obj))
        return layouts
    if options.output in ("json", "yaml"):
        if single and len(objects) == 1:
            payload: Any = objects[0]
        elif single and not objects:
            return layouts
        else:
            payload = as_list(objects)
        session.print(to_json(payload) if options.output == "json" else to_yaml(payload))
        return layouts
    if options.output == "name":
        for r in results:
            for obj in r.items:
                session.print(object_name(obj, r.info))
        return layouts
    table_options = table_options_for(options, several_kinds=len(results) > 1)
    now = datetime.now(UTC)
    printed_any = False
    for r in results:
        if not r.items:
            continue
        headers, row = columns.table(r.info, table_options, now)
        rows = [row(obj) for obj in r.items]
        layout = TableLayout(headers, rows)
        layouts[r.info.kind] = layout
        if printed_any:
            session.print()
        session.print(layout.render(rows))
        printed_any = True
    return layouts


def table_options_for(options: GetOptions, *, several_kinds: bool) -> columns.TableOptions:
    return columns.TableOptions(wide=options.output == "wide",
                                all_namespaces=options.all_namespaces,
                                show_labels=options.show_labels, show_kind=several_kinds)


async def run(session: Session, args: Sequence[str], options: GetOptions) -> int:
    targets = parse_targets(args)
    named = any(names for _, names in targets)
    if named and options.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    if named and options.label_selector:
        raise CliError("name cannot be provided when a selector is specified")
    if options.watch and len(targets) > 1:
        raise CliError("you may only specify a single resource type when watching")
    results: list[Found] = []
    failed = False
    for info, names in targets:
        found, some_failed = await fetch(session, info, names, options)
        results.append(found)
        failed = failed or some_failed
    single = len(targets) == 1 and len(targets[0][1]) == 1
    layouts = print_objects(session, results, options, single)
    if not any(r.items for r in results) and not failed and not options.output:
        session.warn(empty_message(session, [info for info, _ in targets], options))
    if options.watch:
        info, names = targets[0]
        await watch(session, results[0], names, options, layouts.get(info.kind))
    return 1 if failed else 0


async def watch(session: Session, found: Found, names: list[str], options: GetOptions,
                layout: TableLayout | None) -> None:
    """Prints one row (or object) per change after the first print, until interrupted."""
    info = found.info
    if len(names) > 1:
        raise CliError("watch is only supported on individual resources and resource "
                       "collections, but multiple resources were given")
    name = names[0] if names else ""
    field_selector = options.field_selector
    if name:
        by_name = f"metadata.name={name}"
        field_selector = f"{field_selector},{by_name}" if field_selector else by_name
    namespace = request_namespace(session, info, options)
    table_options = table_options_for(options, several_kinds=False)
    revision = found.resource_version
    while True:
        try:
            async for event in session.client.watch(
                    info.plural, namespace=namespace, label_selector=options.label_selector,
                    field_selector=field_selector, resource_version=revision):
                if event.type == "BOOKMARK":
                    revision = event.resource_version or revision
                    continue
                obj = event.object
                revision = event.resource_version or revision
                if name and (obj.get("metadata") or {}).get("name") != name:
                    continue
                layout = print_event(session, info, obj, options, table_options, layout)
            return
        except ExpiredError:
            # Our revision was compacted away: start again from the present state.
            listed = await session.client.list(info.plural, namespace=namespace,
                                               label_selector=options.label_selector,
                                               field_selector=field_selector, limit=1)
            revision = listed.resource_version


def print_event(session: Session, info: ResourceInfo, obj: dict[str, Any],
                options: GetOptions, table_options: columns.TableOptions,
                layout: TableLayout | None) -> TableLayout | None:
    obj = with_type_meta(obj, info)
    if options.output == "json":
        session.print(to_json(obj))
    elif options.output == "yaml":
        session.print("---\n" + to_yaml(obj))
    elif options.output == "name":
        session.print(object_name(obj, info))
    else:
        headers, row = columns.table(info, table_options, datetime.now(UTC))
        cells = row(obj)
        if layout is None:
            layout = TableLayout(headers, [cells])
            session.print(layout.line(headers))
        session.print(layout.line(cells))
    return layout
