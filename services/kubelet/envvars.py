"""A container's environment, built as the kubelet builds it.

In order (a later entry with the same name wins):

1. a minimal base: PATH, HOME and LANG from the kubelet's own environment (the
   process runtime has no image to supply them), HOSTNAME = the pod's hostname;
2. what every kubelite pod gets: POD_IP, POD_NAME, POD_NAMESPACE, NODE_NAME;
3. the Service variables (`<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`, and the
   Docker-link style `<NAME>_PORT_...`) of the Services in the pod's namespace,
   when spec.enableServiceLinks is true (the default);
4. the container's `envFrom` (every key of a ConfigMap or Secret, with its
   prefix; a key that is no valid variable name is skipped with a warning, as
   Kubernetes' InvalidEnvironmentVariableNames event says);
5. the container's `env`, each value with `$(VAR)` references to the names
   above expanded (`$$` escapes a dollar), and `valueFrom` resolved:
   fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef.

A missing source that is not `optional` is an EnvError with the kubelet's own
message (`configmap "x" not found`, `couldn't find key k in Secret ns/x`).
The same expansion applies to `command` and `args`. Everything here is pure;
the caller fetches the ConfigMaps and Secrets that `configmap_names` and
`secret_names` list (Secret values decoded from base64).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kubelite.errors import InvalidError
from kubelite.quantity import cpu_millis, parse_quantity

Obj = dict[str, Any]

BASE_ENV_NAMES = ("PATH", "HOME", "LANG")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


class EnvError(Exception):
    """The environment cannot be built (a CreateContainerConfigError)."""


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: unknown references stay as written, $$ is a $."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(mapping[name] if name in mapping else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def field_ref_value(pod: Obj, field_path: str, *, pod_ip: str, host_ip: str,
                    node_name: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if field_path in simple:
        return str(simple[field_path])
    match = _LABEL_REF.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f'unsupported fieldRef fieldPath "{field_path}"')


def resource_field_value(container: Obj, ref: Obj, allocatable: Mapping[str, str]) -> str:
    """limits.cpu, requests.memory, ...; an unset limit reads the node's allocatable."""
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise EnvError(f'unsupported resourceFieldRef resource "{resource}"')
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "limits":
        value = allocatable.get(name)
    if value is None:
        value = 0
    divisor = ref.get("divisor") or "1"
    try:
        if name == "cpu":
            divisor_millis = cpu_millis(divisor) or 1
            return str(max(1, math.ceil(cpu_millis(value) / divisor_millis))
                       if cpu_millis(value) else 0)
        return str(math.ceil(parse_quantity(value) / (parse_quantity(divisor) or 1)))
    except InvalidError as err:
        raise EnvError(f"resourceFieldRef {resource}: {err}") from None


def service_env(services: Iterable[Obj]) -> list[tuple[str, str]]:
    """The Service environment variables, as Kubernetes' FromServices makes them."""
    out: list[tuple[str, str]] = []
    for svc in sorted(services, key=lambda s: (s.get("metadata") or {}).get("name", "")):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        prefix = (svc.get("metadata") or {}).get("name", "").upper().replace("-", "_")
        ports = spec.get("ports") or []
        out.append((f"{prefix}_SERVICE_HOST", ip))
        if not ports:
            continue
        out.append((f"{prefix}_SERVICE_PORT", str(ports[0].get("port"))))
        for port in ports:
            if port.get("name"):
                pname = str(port["name"]).upper().replace("-", "_")
                out.append((f"{prefix}_SERVICE_PORT_{pname}", str(port.get("port"))))
        first = ports[0]
        out.append((f"{prefix}_PORT",
                    f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first.get('port')}"))
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            base = f"{prefix}_PORT_{port.get('port')}_{proto.upper()}"
            out.append((base, f"{proto.lower()}://{ip}:{port.get('port')}"))
            out.append((f"{base}_PROTO", proto.lower()))
            out.append((f"{base}_PORT", str(port.get("port"))))
            out.append((f"{base}_ADDR", ip))
    return out


def _source_names(container: Obj, key_ref: str, from_ref: str) -> set[str]:
    names = set()
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get(key_ref)
        if ref and ref.get("name"):
            names.add(ref["name"])
    for source in container.get("envFrom") or []:
        ref = source.get(from_ref)
        if ref and ref.get("name"):
            names.add(ref["name"])
    return names


def configmap_names(container: Obj) -> set[str]:
    """The ConfigMaps the container's env and envFrom refer to."""
    return _source_names(container, "configMapKeyRef", "configMapRef")


def secret_names(container: Obj) -> set[str]:
    """The Secrets the container's env and envFrom refer to."""
    return _source_names(container, "secretKeyRef", "secretRef")


def _key_ref(ref: Obj, sources: Mapping[str, Mapping[str, str] | None] | None, what: str,
             namespace: str) -> str | None:
    """A configMapKeyRef's or secretKeyRef's value; None when optional and missing."""
    data = (sources or {}).get(ref.get("name", ""))
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise EnvError(f'{what.lower()} "{ref.get("name", "")}" not found')
    if ref.get("key") not in data:
        if optional:
            return None
        raise EnvError(f'couldn\'t find key {ref.get("key")} in {what} '
                       f'{namespace}/{ref.get("name", "")}')
    return str(data[ref["key"]])


def env_from(container: Obj, namespace: str, *,
             configmaps: Mapping[str, Mapping[str, str] | None] | None,
             secrets: Mapping[str, Mapping[str, str] | None] | None,
             warnings: list[str] | None = None) -> list[tuple[str, str]]:
    """The variables of the container's envFrom sources, in order."""
    out: list[tuple[str, str]] = []
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if source.get("configMapRef") is not None:
            ref, what, found = source["configMapRef"] or {}, "configMap", configmaps
        elif source.get("secretRef") is not None:
            ref, what, found = source["secretRef"] or {}, "secret", secrets
        else:
            continue
        name = ref.get("name", "")
        data = (found or {}).get(name)
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f'{what.lower()} "{name}" not found')
        invalid = []
        for key, value in sorted(data.items()):
            var = prefix + key
            if not _ENV_VAR_NAME.match(var):
                invalid.append(var)
                continue
            out.append((var, str(value)))
        if invalid and warnings is not None:
            warnings.append(f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} "
                            f"{namespace}/{name} were skipped since they are considered "
                            "invalid environment variable names.")
    return out


def build_env(
    pod: Obj,
    container: Obj,
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str,
    services: Iterable[Obj] = (),
    configmaps: Mapping[str, Mapping[str, str] | None] | None = None,
    secrets: Mapping[str, Mapping[str, str] | None] | None = None,
    allocatable: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> list[tuple[str, str]]:
    """The environment of one container, as (name, value) pairs in order.

    configmaps and secrets map a name to its (decoded) data, or to None when it does
    not exist. Raises EnvError for anything that would be a CreateContainerConfigError;
    appends to warnings what deserves an InvalidEnvironmentVariableNames event.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    environ = os.environ if base is None else base
    pairs: list[tuple[str, str]] = []
    for name in BASE_ENV_NAMES:
        if environ.get(name):
            pairs.append((name, environ[name]))
    if not any(k == "PATH" for k, _ in pairs):
        pairs.append(("PATH", DEFAULT_PATH))
    pairs.append(("HOSTNAME", spec.get("hostname") or meta.get("name", "")))
    pairs += [("POD_IP", pod_ip), ("POD_NAME", meta.get("name", "")),
              ("POD_NAMESPACE", meta.get("namespace", "")), ("NODE_NAME", node_name)]
    if spec.get("enableServiceLinks", True):
        pairs += service_env(services)
    pairs += env_from(container, meta.get("namespace", ""), configmaps=configmaps,
                      secrets=secrets, warnings=warnings)
    mapping = dict(pairs)
    for var in container.get("env") or []:
        name = var.get("name")
        if not name:
            continue
        source = var.get("valueFrom")
        if source is None:
            value = expand(str(var.get("value", "")), mapping)
        elif "fieldRef" in source:
            value = field_ref_value(pod, (source["fieldRef"] or {}).get("fieldPath", ""),
                                    pod_ip=pod_ip, host_ip=host_ip, node_name=node_name)
        elif "resourceFieldRef" in source:
            value = resource_field_value(container, source["resourceFieldRef"] or {},
                                         allocatable or {})
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            is_cm = "configMapKeyRef" in source
            found = _key_ref((source["configMapKeyRef" if is_cm else "secretKeyRef"]) or {},
                             configmaps if is_cm else secrets,
                             "ConfigMap" if is_cm else "Secret", meta.get("namespace", ""))
            if found is None:
                continue
            value = found
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(source)}")
        pairs.append((name, value))
        mapping[name] = value
    return pairs


def expand_command(container: Obj, env: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """command and args with $(VAR) expanded against the container's environment."""
    mapping = dict(env)
    command = [expand(str(c), mapping) for c in container.get("command") or []]
    args = [expand(str(a), mapping) for a in container.get("args") or []]
    return command, args
