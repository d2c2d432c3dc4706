"""`kubelite expose (deployment|rs|pod|svc) NAME --port P`: a Service for an object.

As kubectl builds it:
- the selector is the object's pod selector: a Deployment's or ReplicaSet's
  spec.selector.matchLabels (matchExpressions cannot be written as a Service
  selector, so they are refused), a pod's labels, a service's selector; or
  --selector;
- the ports are --port (comma-separated for several) with --target-port
  (default: the port) and --protocol (default TCP); without --port, the
  container ports of the object's pods (or the service's ports), named
  port-1, port-2... when there are several;
- the name is the object's unless --name is given, the labels are the
  object's unless --labels is given, and --type and --cluster-ip pass through.
It prints `service/NAME exposed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.cli.reporting import CliError
from kubelite.cli.session import Session
from kubelite.cli.targets import Target, parse_target

Obj = dict[str, Any]
EXPOSABLE = ("Deployment", "ReplicaSet", "Pod", "Service")
USAGE = "kubelite expose (deployment|rs|pod|svc) NAME --port PORT"
NO_SELECTOR = "couldn't retrieve selectors via --selector flag or introspection"


@dataclass(frozen=True)
class ExposeOptions:
    port: str = ""  # "" : introspect
    target_port: str = ""
    type: str = ""  # "" : the server's default (ClusterIP)
    name: str = ""
    protocol: str = ""  # "" : introspect, else TCP
    selector: str = ""
    labels: str = ""
    cluster_ip: str = ""


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def parse_map(text: str, flag: str) -> dict[str, str]:
    """`a=b,c=d` → {"a": "b", "c": "d"} (the only selector form a Service can hold)."""
    result: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key.strip():
            raise CliError(f'invalid {flag} "{text}": expected key=value[,key=value...]')
        result[key.strip()] = value.strip()
    return result


def pod_selector(target: Target, obj: Obj) -> dict[str, str]:
    """The labels a Service must select to reach the object's pods."""
    kind = target.info.kind
    if kind in ("Deployment", "ReplicaSet"):
        selector = _spec(obj).get("selector") or {}
        if selector.get("matchExpressions"):
            raise CliError(f"{NO_SELECTOR}: the selector of {target.display} uses "
                           f"matchExpressions, which a Service selector cannot express "
                           f"(give --selector)")
        labels = dict(selector.get("matchLabels") or {})
    elif kind == "Pod":
        labels = dict(_meta(obj).get("labels") or {})
    else:
        labels = dict(_spec(obj).get("selector") or {})
    if not labels:
        raise CliError(f"{NO_SELECTOR}: {target.display} has no selector and cannot be "
                       f"exposed (give --selector)")
    return labels


def _pod_spec(target: Target, obj: Obj) -> Obj:
    if target.info.kind == "Pod":
        return _spec(obj)
    return _spec(_spec(obj).get("template") or {})


def introspected_ports(target: Target, obj: Obj) -> list[tuple[int, str]]:
    """(port, protocol) of each container port (or each service port), in order."""
    found: list[tuple[int, str]] = []
    if target.info.kind == "Service":
        entries = [(p.get("port"), p.get("protocol")) for p in _spec(obj).get("ports") or []]
    else:
        entries = [(p.get("containerPort"), p.get("protocol"))
                   for c in _pod_spec(target, obj).get("containers") or []
                   for p in c.get("ports") or []]
    for port, protocol in entries:
        if isinstance(port, int) and (port, protocol or "TCP") not in found:
            found.append((port, protocol or "TCP"))
    return found


def parse_port(text: str, flag: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise CliError(f'invalid {flag} "{text}": must be a number from 1 to 65535') from None
    if not 1 <= port <= 65535:
        raise CliError(f'invalid {flag} "{text}": must be a number from 1 to 65535')
    return port


def parse_target_port(text: str) -> int | str:
    """A number, or the name of a container port."""
    return parse_port(text, "--target-port") if text.strip().isdigit() else text.strip()


def service_ports(target: Target, obj: Obj, options: ExposeOptions) -> list[Obj]:
    if options.port:
        pairs = [(parse_port(p.strip(), "--port"), options.protocol or "TCP")
                 for p in options.port.split(",") if p.strip()]
    else:
        pairs = [(port, options.protocol or protocol)
                 for port, protocol in introspected_ports(target, obj)]
    if not pairs:
        raise CliError("couldn't find port via --port flag or introspection")
    target_port = parse_target_port(options.target_port) if options.target_port else None
    ports = []
    for i, (port, protocol) in enumerate(pairs, start=1):
        entry: Obj = {}
        if len(pairs) > 1:
            entry["name"] = f"port-{i}"
        entry.update({"port": port, "targetPort": target_port or port, "protocol": protocol})
        ports.append(entry)
    return ports


def build_service(target: Target, obj: Obj, options: ExposeOptions) -> Obj:
    """The Service `expose` creates for an object (nothing is sent)."""
    if target.info.kind not in EXPOSABLE:
        raise CliError(f"cannot expose a {target.info.kind}: use a deployment, replicaset, "
                       f"pod or service")
    selector = (parse_map(options.selector, "--selector") if options.selector
                else pod_selector(target, obj))
    labels = (parse_map(options.labels, "--labels") if options.labels
              else dict(_meta(obj).get("labels") or {}))
    metadata: Obj = {"name": options.name or _meta(obj).get("name", target.name)}
    if _meta(obj).get("namespace"):
        metadata["namespace"] = _meta(obj)["namespace"]
    if labels:
        metadata["labels"] = labels
    spec: Obj = {"selector": selector, "ports": service_ports(target, obj, options)}
    if options.type:
        spec["type"] = options.type
    if options.cluster_ip:
        spec["clusterIP"] = options.cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


async def run(session: Session, args: Sequence[str], options: ExposeOptions) -> int:
    target = parse_target(args, verb="expose", usage=USAGE)
    if target.info.kind not in EXPOSABLE:
        raise CliError(f"cannot expose a {target.info.kind}: use a deployment, replicaset, "
                       f"pod or service")
    namespace = session.effective_namespace
    obj = await session.client.get(target.info.plural, target.name, namespace=namespace)
    service = build_service(target, obj, options)
    service["metadata"]["namespace"] = namespace
    created = await session.client.create("services", service, namespace=namespace)
    session.print(f"service/{_meta(created).get('name', service['metadata']['name'])} exposed")
    return 0
