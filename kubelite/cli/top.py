"""`kubelite top nodes|pods`: current usage from the metrics API, as kubectl top prints it.

The numbers come from `Client.metrics` (metrics.k8s.io NodeMetrics and
PodMetrics, which the apiserver gathers from the kubelets on demand). The
figures are kubectl's: CPU in whole millicores rounded up (`250m`), memory in
whole MiB rounded down (`64Mi`), and a node's percentages are of its
allocatable resources (`--show-capacity`: of its capacity), integer-divided.
A node the metrics API left out (its kubelet did not answer) prints
`<unknown>`. No metrics at all is `error: metrics not available yet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.cli.printers import TableLayout
from kubelite.cli.reporting import CliError
from kubelite.cli.session import Session
from kubelite.errors import InvalidError, NotFoundError
from kubelite.quantity import cpu_millis, parse_quantity

Obj = dict[str, Any]

NOT_AVAILABLE = "metrics not available yet"
UNKNOWN = "<unknown>"
SORT_KEYS = ("cpu", "memory")
MI = 1024 * 1024


@dataclass(frozen=True)
class TopOptions:
    all_namespaces: bool = False
    label_selector: str = ""
    containers: bool = False
    sort_by: str = ""  # "", cpu or memory
    no_headers: bool = False
    show_capacity: bool = False


@dataclass(frozen=True)
class Usage:
    cpu_millis: int
    memory_bytes: int

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)


ZERO = Usage(0, 0)


def usage_of(usage: Obj | None) -> Usage:
    """A metrics-API usage map as millicores (rounded up) and bytes."""
    usage = usage or {}
    try:
        cpu = cpu_millis(usage.get("cpu") or 0)
        memory = int(parse_quantity(usage.get("memory") or 0))
    except InvalidError:
        return ZERO
    return Usage(cpu, memory)


def format_cpu(millis: int) -> str:
    return f"{millis}m"


def format_memory(value: int) -> str:
    return f"{value // MI}Mi"


def percent(used: int, available: int) -> str:
    if available <= 0:
        return UNKNOWN
    return f"{used * 100 // available}%"


def _sorted(rows: list[tuple[Usage, list[str]]], sort_by: str) -> list[list[str]]:
    if sort_by == "cpu":
        rows = sorted(rows, key=lambda r: r[0].cpu_millis, reverse=True)
    elif sort_by == "memory":
        rows = sorted(rows, key=lambda r: r[0].memory_bytes, reverse=True)
    return [cells for _, cells in rows]


def node_rows(metrics: Sequence[Obj], nodes: Sequence[Obj], *, sort_by: str = "",
              show_capacity: bool = False) -> list[list[str]]:
    """NAME CPU(cores) CPU% MEMORY(bytes) MEMORY% for each node, metrics first."""
    available: dict[str, Usage] = {}
    for node in nodes:
        status = node.get("status") or {}
        resources = status.get("capacity" if show_capacity else "allocatable") or {}
        available[node["metadata"]["name"]] = usage_of(resources)
    rows: list[tuple[Usage, list[str]]] = []
    for m in metrics:
        name = (m.get("metadata") or {}).get("name", "")
        used = usage_of(m.get("usage"))
        room = available.pop(name, ZERO)
        rows.append((used, [name, format_cpu(used.cpu_millis),
                            percent(used.cpu_millis, room.cpu_millis),
                            format_memory(used.memory_bytes),
                            percent(used.memory_bytes, room.memory_bytes)]))
    lines = _sorted(rows, sort_by)
    lines.extend([name, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN] for name in available)
    return lines


def pod_rows(metrics: Sequence[Obj], *, containers: bool = False,
             with_namespace: bool = False, sort_by: str = "") -> tuple[list[str], list[list[str]]]:
    """The headers and rows of `top pod` (per container with `containers`)."""
    headers = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    if containers:
        headers.insert(0, "POD")
    if with_namespace:
        headers.insert(0, "NAMESPACE")
    rows: list[tuple[Usage, list[str]]] = []
    for m in metrics:
        meta = m.get("metadata") or {}
        prefix = [meta.get("namespace", "")] if with_namespace else []
        if containers:
            for c in m.get("containers") or []:
                used = usage_of(c.get("usage"))
                rows.append((used, [*prefix, meta.get("name", ""), c.get("name", ""),
                                    format_cpu(used.cpu_millis),
                                    format_memory(used.memory_bytes)]))
            continue
        total = ZERO
        for c in m.get("containers") or []:
            total = total + usage_of(c.get("usage"))
        rows.append((total, [*prefix, meta.get("name", ""), format_cpu(total.cpu_millis),
                             format_memory(total.memory_bytes)]))
    return headers, _sorted(rows, sort_by)


def _print(session: Session, headers: list[str], rows: list[list[str]],
           no_headers: bool) -> None:
    # Without headers the columns are as wide as the cells alone, as kubectl's tabwriter.
    layout = TableLayout([""] * len(headers) if no_headers else headers, rows)
    text = layout.render(rows, header=not no_headers)
    if text:
        session.print(text)


def _check(options: TopOptions) -> None:
    if options.sort_by and options.sort_by not in SORT_KEYS:
        raise CliError(f"--sort-by accepts only cpu or memory, not {options.sort_by!r}")


async def top_nodes(session: Session, names: Sequence[str], options: TopOptions) -> int:
    _check(options)
    if len(names) > 1:
        raise CliError("top node takes at most one NODE name")
    name = names[0] if names else ""
    client = session.client
    if name:
        if options.label_selector:
            raise CliError("only one of NAME or --selector can be provided")
        node = await client.get("nodes", name)  # NotFound reads as kubectl's
        nodes = [node]
        try:
            metrics = await client.metrics("nodes", name=name)
        except NotFoundError:
            metrics = []
    else:
        metrics = await client.metrics("nodes", label_selector=options.label_selector)
        nodes = (await client.list("nodes", label_selector=options.label_selector)).items
    if not metrics:
        raise CliError(NOT_AVAILABLE)
    rows = node_rows(metrics, nodes, sort_by=options.sort_by,
                     show_capacity=options.show_capacity)
    _print(session, ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], rows,
           options.no_headers)
    return 0


async def top_pods(session: Session, names: Sequence[str], options: TopOptions) -> int:
    _check(options)
    if len(names) > 1:
        raise CliError("top pod takes at most one POD name")
    name = names[0] if names else ""
    if name and options.label_selector:
        raise CliError("only one of NAME or --selector can be provided")
    if name and options.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    client = session.client
    namespace = None if options.all_namespaces else session.effective_namespace
    try:
        metrics = await client.metrics("pods", namespace=namespace, name=name,
                                       label_selector=options.label_selector)
    except NotFoundError:
        metrics = []
    if not metrics:
        # As kubectl: pods that exist but have no metrics yet are "not available yet";
        # no pods at all is "No resources found".
        if name:
            await client.get("pods", name, namespace=namespace)  # NotFound if there is none
            raise CliError(NOT_AVAILABLE)
        pods = (await client.list("pods", namespace=namespace,
                                  label_selector=options.label_selector, limit=1)).items
        if pods:
            raise CliError(NOT_AVAILABLE)
        session.warn("No resources found" if options.all_namespaces
                     else f"No resources found in {namespace} namespace.")
        return 0
    headers, rows = pod_rows(metrics, containers=options.containers,
                             with_namespace=options.all_namespaces, sort_by=options.sort_by)
    _print(session, headers, rows, options.no_headers)
    return 0


NODE_NAMES = ("node", "nodes", "no")
POD_NAMES = ("pod", "pods", "po")


async def run(session: Session, targets: Sequence[str], options: TopOptions) -> int:
    """`top node [NAME]` or `top pod [NAME]`."""
    if not targets:
        raise CliError("you must specify a resource: top node|pod [NAME]")
    kind, *names = targets
    if kind.lower() in NODE_NAMES:
        return await top_nodes(session, names, options)
    if kind.lower() in POD_NAMES:
        return await top_pods(session, names, options)
    raise CliError(f'unknown resource "{kind}" for top: use node or pod')


__all__ = ["SORT_KEYS", "TopOptions", "node_rows", "pod_rows", "run", "usage_of"]
