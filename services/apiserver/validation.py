"""Validation of objects, in the order a real cluster judges them.

First Kubernetes' own JSON schemas (the strict variants bundled by
kubernetes-validate, so unknown fields are rejected), then kubelite's own checks
(names, labels, non-empty containers, selectors that match their template).
Each validator is built once from a local `referencing` registry: nothing is
fetched over the network, and validating a Deployment costs well under 1 ms.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from kubelite.errors import InvalidError
from kubelite.resources import ResourceInfo

DEFAULT_SCHEMA_VERSION = "latest"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _schema_root() -> Any:
    return importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")


def available_schema_versions() -> list[str]:
    names = [p.name for p in _schema_root().iterdir() if p.name.endswith("-local-strict")]
    versions = [n[1:].split("-", 1)[0].rsplit(".", 1)[0] for n in names]
    return sorted(set(versions), key=lambda v: tuple(int(x) for x in v.split(".")))


def resolve_schema_version(wanted: str) -> str:
    """The newest bundled schema version not newer than `wanted` ("latest" for newest)."""
    versions = available_schema_versions()
    if wanted in ("", "latest"):
        return versions[-1]
    key = tuple(int(x) for x in wanted.lstrip("v").split(".")[:2])
    older = [v for v in versions if tuple(int(x) for x in v.split(".")) <= key]
    return older[-1] if older else versions[0]


@cache
def _registry(version: str) -> Registry:
    folder = _schema_root().joinpath(f"v{version}.0-local-strict")
    defs = json.loads(folder.joinpath("_definitions.json").read_text())
    resource = Resource.from_contents(defs)
    # The kind schemas refer to "/api/_definitions.json#/$defs/...".
    return Registry().with_resource("/api/_definitions.json", resource).crawl()


_DEFS_REF = "/api/_definitions.json#/$defs/"


def _inline_refs(node: Any, defs: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """The schema with every $ref into _definitions.json replaced by its target.

    Resolving a $ref costs a registry lookup on every validation; inlined once,
    validation is markedly cheaper. Recursive definitions stay references.
    """
    if isinstance(node, list):
        return [_inline_refs(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith((_DEFS_REF, "#/$defs/")):
        # Kind schemas point into _definitions.json; definitions point within it.
        name = ref.rsplit("/", 1)[1]
        if name in seen or name not in defs:
            return {**node, "$ref": _DEFS_REF + name}  # resolvable from anywhere
        target = _inline_refs(defs[name], defs, seen | {name})
        siblings = {k: v for k, v in node.items() if k not in ("$ref", "description")}
        if not siblings:
            return target
        return {"allOf": [target], **{k: _inline_refs(v, defs, seen) for k, v in siblings.items()}}
    return {k: _inline_refs(v, defs, seen) for k, v in node.items()}


@cache
def _validator(version: str, schema_file: str) -> jsonschema.Validator:
    folder = _schema_root().joinpath(f"v{version}.0-local-strict")
    schema = json.loads(folder.joinpath(schema_file).read_text())
    defs = json.loads(folder.joinpath("_definitions.json").read_text()).get("$defs", {})
    schema = _inline_refs(schema, defs)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, registry=_registry(version))


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(err: jsonschema.ValidationError) -> tuple[str, str]:
    path = field_path(err.absolute_path)
    if err.validator == "additionalProperties":
        # "Additional properties are not allowed ('contianers' was unexpected)"
        extra = [k for k in (err.instance or {}) if k not in err.schema.get("properties", {})]
        if extra:
            path = field_path([*err.absolute_path, extra[0]])
            return path, f'unknown field "{extra[0]}" ({err.message})'
    if err.validator == "type":
        return path, f"Invalid value: {json.dumps(err.instance)[:80]}: {err.message}"
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        return field_path([*err.absolute_path, missing]), "Required value"
    return path, err.message


def validate_schema(info: ResourceInfo, obj: dict[str, Any], version: str) -> None:
    """Raises InvalidError naming every schema violation, most specific first."""
    validator = _validator(version, info.schema_file)
    errors = sorted(validator.iter_errors(obj), key=lambda e: (-len(e.absolute_path), e.path))
    if not errors:
        return
    described = []
    for err in errors[:5]:
        path, message = _describe(err)
        described.append(f"{path}: {message}" if path else message)
    raise InvalidError(f'{info.kind} "{_name(obj)}" is invalid: ' + "; ".join(described))


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(meta.get("name") or meta.get("generateName") or "")


class Problems:
    """Collects field errors and raises them together as one InvalidError."""

    def __init__(self, info: ResourceInfo, name: str) -> None:
        self.info, self.name, self.items = info, name, []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidError(
                f'{self.info.kind} "{self.name}" is invalid: ' + "; ".join(self.items[:10]))


def check_name(problems: Problems, path: str, value: str, *, rule: str = "subdomain") -> None:
    if rule == "label":
        ok, limit = _DNS1123_LABEL.match(value), 63
        what = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character")
    elif rule == "dns1035":
        ok, limit = _DNS1035_LABEL.match(value), 63
        what = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character")
    else:
        ok, limit = _DNS1123_SUBDOMAIN.match(value), 253
        what = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character")
    if not ok:
        problems.add(path, f'Invalid value: "{value}": {what}')
    elif len(value) > limit:
        problems.add(path, f'Invalid value: "{value}": must be no more than {limit} characters')


def check_labels(problems: Problems, path: str, labels: Any) -> None:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            check_name(problems, f"{path}", prefix)
        if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
            problems.add(path, f'Invalid value: "{key}": name part must consist of alphanumeric '
                               "characters, '-', '_' or '.', and must start and end with an "
                               "alphanumeric character (at most 63 characters)")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.add(f"{path}.{key}", f'Invalid value: "{value}": a valid label must be an '
                         "empty string or consist of alphanumeric characters, '-', '_' or '.', "
                         "and must start and end with an alphanumeric character "
                         "(at most 63 characters)")


# Kinds whose names must be DNS labels rather than subdomains.
_NAME_RULES = {"Namespace": "label", "Service": "dns1035"}


def check_object(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """kubelite's own checks, after the schema: names, labels and per-kind rules."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    problems = Problems(info, name)
    if not name:
        problems.add("metadata.name", "Required value: name or generateName is required")
    else:
        check_name(problems, "metadata.name", name, rule=_NAME_RULES.get(info.kind, "subdomain"))
    check_labels(problems, "metadata.labels", meta.get("labels"))
    checker = _KIND_CHECKS.get(info.kind)
    if checker:
        checker(problems, obj)
    problems.raise_if_any()


def check_pod_spec(problems: Problems, path: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        problems.add(path, "Required value")
        return
    containers = spec.get("containers") or []
    if not containers:
        problems.add(f"{path}.containers", "Required value: must have at least one container")
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        cname = c.get("name", "")
        if not cname:
            problems.add(f"{cpath}.name", "Required value")
        else:
            check_name(problems, f"{cpath}.name", cname, rule="label")
            if cname in seen:
                problems.add(f"{cpath}.name", f'Duplicate value: "{cname}"')
            seen.add(cname)
        if not c.get("image"):
            problems.add(f"{cpath}.image", "Required value")
        for j, port in enumerate(c.get("ports") or []):
            for key in ("containerPort", "hostPort"):
                value = port.get(key)
                if value is not None and not 0 < int(value) < 65536:
                    problems.add(f"{cpath}.ports[{j}].{key}",
                                 f"Invalid value: {value}: must be between 1 and 65535, inclusive")
    check_volumes(problems, path, spec)
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        problems.add(f"{path}.restartPolicy", f'Unsupported value: "{policy}": supported values: '
                     '"Always", "OnFailure", "Never"')


SUPPORTED_VOLUME_TYPES = ("emptyDir", "configMap", "secret", "downwardAPI", "projected",
                          "hostPath", "persistentVolumeClaim")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")


def check_volumes(problems: Problems, path: str, spec: dict[str, Any]) -> None:
    """Kubernetes' volume checks: unique names, one source each, mounts that name a
    volume at an absolute path with a relative subPath."""
    names: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        vpath = f"{path}.volumes[{i}]"
        name = volume.get("name", "")
        if not name:
            problems.add(f"{vpath}.name", "Required value")
        elif name in names:
            problems.add(f"{vpath}.name", f'Duplicate value: "{name}"')
        else:
            check_name(problems, f"{vpath}.name", name, rule="label")
        names.add(name)
        sources = [k for k in volume if k != "name"]
        if len(sources) > 1:
            problems.add(f"{vpath}.{sources[1]}", "Forbidden: may not specify more than 1 "
                         "volume type")
        host = volume.get("hostPath")
        if isinstance(host, dict):
            if not str(host.get("path", "")).startswith("/"):
                problems.add(f"{vpath}.hostPath.path", "Required value: must be an absolute "
                             "path")
            if (host.get("type") or "") not in HOST_PATH_TYPES:
                problems.add(f"{vpath}.hostPath.type", f'Unsupported value: "{host["type"]}"')
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict) and not claim.get("claimName"):
            problems.add(f"{vpath}.persistentVolumeClaim.claimName", "Required value")
    for i, c in enumerate(spec.get("containers") or []):
        for j, vm in enumerate(c.get("volumeMounts") or []):
            mpath = f"{path}.containers[{i}].volumeMounts[{j}]"
            if vm.get("name") not in names:
                problems.add(f"{mpath}.name", f'Not found: "{vm.get("name", "")}"')
            if not vm.get("mountPath"):
                problems.add(f"{mpath}.mountPath", "Required value")
            sub = vm.get("subPath") or ""
            if sub.startswith("/") or ".." in sub.split("/"):
                problems.add(f"{mpath}.subPath", f'Invalid value: "{sub}": must be a relative '
                             "path without '..'")


def _check_pod(problems: Problems, obj: dict[str, Any]) -> None:
    check_pod_spec(problems, "spec", obj.get("spec"))


def _check_workload(problems: Problems, obj: dict[str, Any]) -> None:
    from kubelite.selectors import selector_from_label_selector_spec

    spec = obj.get("spec") or {}
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        problems.add("spec.replicas", f"Invalid value: {replicas}: must be greater than or "
                     "equal to 0")
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problems.add("spec.selector", "Required value")
        return
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    check_labels(problems, "spec.template.metadata.labels", labels)
    try:
        if not selector_from_label_selector_spec(selector).matches(labels):
            problems.add("spec.template.metadata.labels",
                         f"Invalid value: {json.dumps(labels)}: `selector` does not match "
                         "template `labels`")
    except InvalidError as err:
        problems.add("spec.selector", f"Invalid value: {err.message}")
    check_pod_spec(problems, "spec.template.spec", template.get("spec"))


def _check_service(problems: Problems, obj: dict[str, Any]) -> None:
    spec = obj.get("spec") or {}
    names: set[str] = set()
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName":
        problems.add("spec.ports", "Required value")
    for i, port in enumerate(ports):
        ppath = f"spec.ports[{i}]"
        value = port.get("port")
        if not isinstance(value, int) or not 0 < value < 65536:
            problems.add(f"{ppath}.port", f"Invalid value: {value}: must be between 1 and "
                         "65535, inclusive")
        target = port.get("targetPort")
        if isinstance(target, int) and not 0 < target < 65536:
            problems.add(f"{ppath}.targetPort", f"Invalid value: {target}: must be between 1 "
                         "and 65535, inclusive")
        if isinstance(target, str) and not target.isdigit():
            if not target or len(target) > 15 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                                              target):
                problems.add(f"{ppath}.targetPort", f'Invalid value: "{target}": must be an '
                             "IANA_SVC_NAME (at most 15 lower case alphanumeric characters or '-')")
        if len(ports) > 1:
            pname = port.get("name", "")
            if not pname:
                problems.add(f"{ppath}.name", "Required value: name is required when there is "
                             "more than one port")
            elif pname in names:
                problems.add(f"{ppath}.name", f'Duplicate value: "{pname}"')
            names.add(pname)


def _check_hpa(problems: Problems, obj: dict[str, Any]) -> None:
    spec = obj.get("spec") or {}
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        problems.add("spec.minReplicas", f"Invalid value: {low}: must be greater than or equal "
                     "to 1")
    if isinstance(high, int) and isinstance(low, int) and high < low:
        problems.add("spec.maxReplicas", f"Invalid value: {high}: must be greater than or "
                     "equal to `minReplicas`")


_KIND_CHECKS = {
    "Pod": _check_pod,
    "ReplicaSet": _check_workload,
    "Deployment": _check_workload,
    "Service": _check_service,
    "HorizontalPodAutoscaler": _check_hpa,
}

# Fields the schema accepts but kubelite does not act on: accepted, with a warning.
_POD_SPEC_UNIMPLEMENTED = (
    "initContainers", "ephemeralContainers", "hostNetwork", "hostPID", "hostIPC",
    "serviceAccountName", "dnsConfig", "topologySpreadConstraints", "runtimeClassName",
    "readinessGates", "securityContext", "hostAliases",
)
_CONTAINER_UNIMPLEMENTED = ("volumeDevices", "securityContext", "lifecycle",
                            "envFrom", "stdin", "tty")


def unimplemented_fields(info: ResourceInfo, obj: dict[str, Any]) -> list[str]:
    """Warnings for fields kubelite stores but does not act on."""
    spec = obj.get("spec") or {}
    pod_specs: list[tuple[str, dict]] = []
    if info.kind == "Pod":
        pod_specs.append(("spec", spec))
    elif info.kind in ("ReplicaSet", "Deployment"):
        pod_specs.append(("spec.template.spec", (spec.get("template") or {}).get("spec") or {}))
    warnings = []
    for path, pod in pod_specs:
        for i, volume in enumerate(pod.get("volumes") or []):
            kind = next((k for k in volume if k != "name"), "")
            if kind and kind not in SUPPORTED_VOLUME_TYPES:
                warnings.append(f"{path}.volumes[{i}].{kind}: volume type not implemented by "
                                "kubelite; a kubelet refuses the pod")
        for key in _POD_SPEC_UNIMPLEMENTED:
            if pod.get(key) not in (None, {}, [], False):
                warnings.append(f"{path}.{key}: not implemented by kubelite; stored, no effect")
        affinity = pod.get("affinity") or {}
        for key in ("podAffinity", "podAntiAffinity"):
            if affinity.get(key):
                warnings.append(f"{path}.affinity.{key}: not implemented by kubelite; "
                                "stored, no effect")
        for i, c in enumerate(pod.get("containers") or []):
            for key in _CONTAINER_UNIMPLEMENTED:
                if c.get(key) not in (None, {}, [], False):
                    warnings.append(f"{path}.containers[{i}].{key}: not implemented by "
                                    "kubelite; stored, no effect")
    return warnings
