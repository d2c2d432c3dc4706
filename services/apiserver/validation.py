"""Validation of objects, in the order a real cluster judges them.

First Kubernetes' own JSON schemas (the strict variants bundled by
kubernetes-validate, so unknown fields are rejected), then kubelite's own checks
(names, labels, non-empty containers, selectors that match their template).
Each validator is built once from a local `referencing` registry: nothing is
fetched over the network, and validating a Deployment costs well under 1 ms.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from fractions import Fraction
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from kubelite.errors import MAX_CAUSES, MAX_FIELD, BadRequestError, Cause, InvalidError, clip
from kubelite.quantity import parse_quantity
from kubelite.resources import ResourceInfo

DEFAULT_SCHEMA_VERSION = "latest"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


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


# -- formats the schemas name but jsonschema does not check by itself ----------

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                      r"(Z|[+-][0-9]{2}:[0-9]{2})\Z")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}\Z")
_QUANTITY = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"
                       r"([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?\Z")
_QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_QUANTITY_RULE = ("quantities must match the regular expression "
                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")

_FORMAT_RULES = {
    "int32": "must be an integer between -2147483648 and 2147483647",
    "int64": "must be an integer between -9223372036854775808 and 9223372036854775807",
    "date-time": 'must be an RFC 3339 date-time, e.g. "2006-01-02T15:04:05Z"',
    "byte": "must be base64-encoded",
    "quantity": _QUANTITY_RULE,
}


def _integer_in(bounds: tuple[int, int]) -> Any:
    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True  # the type keyword judges non-numbers
        # Kubernetes' decoder refuses 2.0 for an integer field; jsonschema would not.
        return isinstance(value, int) and bounds[0] <= value <= bounds[1]
    return check


def is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most microseconds; the digits only need to be digits
        text = head + rest[rest.index("+") if "+" in rest else rest.index("-"):]
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_base64(value: Any) -> bool:
    return not isinstance(value, str) or (len(value) % 4 == 0 and bool(_BASE64.match(value)))


def is_quantity(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_QUANTITY.match(value))
    if isinstance(value, float):
        return math.isfinite(value)
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("int32")(_integer_in(_INT32))
_FORMATS.checks("int64")(_integer_in(_INT64))
_FORMATS.checks("date-time")(is_rfc3339)
_FORMATS.checks("byte")(_is_base64)
_FORMATS.checks("quantity")(is_quantity)


def _with_formats(defs: dict[str, Any]) -> dict[str, Any]:
    """The definitions with Quantity marked as a format, so that every quantity
    (requests, limits, capacity, HPA targets) is checked where the schema has one."""
    if _QUANTITY_DEF in defs:
        defs = {**defs, _QUANTITY_DEF: {**defs[_QUANTITY_DEF], "format": "quantity"}}
    return defs


@cache
def _validator(version: str, schema_file: str) -> jsonschema.Validator:
    folder = _schema_root().joinpath(f"v{version}.0-local-strict")
    schema = json.loads(folder.joinpath(schema_file).read_text())
    defs = json.loads(folder.joinpath("_definitions.json").read_text()).get("$defs", {})
    schema = _inline_refs(schema, _with_formats(defs))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, registry=_registry(version), format_checker=_FORMATS)


# -- messages ------------------------------------------------------------------

def ascii_text(text: str) -> str:
    """text with every non-ASCII character escaped.

    An error travels in gRPC headers, where each non-ASCII byte is percent-encoded
    into three: 1 KiB of emoji would come back as 12 KiB and trip the metadata
    limit (RESOURCE_EXHAUSTED instead of the error). Escaped, it stays 1 KiB.
    """
    return text if text.isascii() else text.encode("ascii", "backslashreplace").decode()


def show(value: Any, limit: int = 64) -> str:
    """A value as an error message quotes it: JSON in ASCII, cut to `limit` characters.

    Errors never echo long input back: a 200 KB name is named by its length.
    """
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + clip(ascii_text(str(part)), 64)
    return out


def _schema_rule(err: jsonschema.ValidationError) -> str:
    """jsonschema's message without the repr of the instance it usually starts with."""
    message = err.message
    try:
        shown = repr(err.instance)
    except RecursionError:
        shown = ""
    if shown and message.startswith(shown):
        message = message[len(shown):].strip()
    return clip(message, 160)


def _describe(err: jsonschema.ValidationError) -> Cause:
    path = field_path(err.absolute_path)
    if err.validator == "additionalProperties":
        # "Additional properties are not allowed ('contianers' was unexpected)"
        extra = [k for k in (err.instance or {}) if k not in err.schema.get("properties", {})]
        if extra:
            return Cause("FieldValueUnknownField", f"unknown field {show(extra[0])}",
                         clip(field_path([*err.absolute_path, extra[0]]), MAX_FIELD))
    if err.validator == "type":
        return Cause.from_message(path, f"Invalid value: {show(err.instance)}: "
                                        f"{_schema_rule(err)}")
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        return Cause.from_message(field_path([*err.absolute_path, missing]), "Required value")
    if err.validator == "format":
        rule = _FORMAT_RULES.get(str(err.validator_value), "has the wrong format")
        # base64 fields hold Secret data and binary files: never quoted back.
        shown = '"<contents redacted>"' if err.validator_value == "byte" else show(err.instance)
        return Cause.from_message(path, f"Invalid value: {shown}: {rule}")
    if err.validator == "enum":
        allowed = ", ".join(show(v) for v in err.validator_value[:8])
        return Cause.from_message(path, f"Unsupported value: {show(err.instance)}: "
                                        f"supported values: {allowed}")
    return Cause.from_message(path, f"Invalid value: {show(err.instance)}: {_schema_rule(err)}")


def _invalid(kind: str, name: str, causes: list[Cause]) -> InvalidError:
    causes = [Cause(c.type, clip(ascii_text(c.message), 256), clip(ascii_text(c.field), MAX_FIELD))
              for c in causes[:MAX_CAUSES]]
    text = "; ".join(str(c) for c in causes)
    return InvalidError(f"{kind} {show(name, 80)} is invalid: {text}", causes=causes)


def _null_items(obj: Any) -> Iterator[str]:
    """Paths of the nulls inside arrays: the schemas allow them, nothing can use them."""
    stack: list[tuple[Any, tuple]] = [(obj, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if item is None:
                    yield field_path((*path, i))
                else:
                    stack.append((item, (*path, i)))


def validate_schema(info: ResourceInfo, obj: dict[str, Any], version: str) -> None:
    """Raises InvalidError naming every schema violation, most specific first."""
    validator = _validator(version, info.schema_file)
    nulls = [Cause.from_message(path, "Invalid value: null: list items may not be null")
             for path in _null_items(obj)]
    if nulls:
        raise _invalid(info.kind, _name(obj), nulls)
    try:
        errors = sorted(validator.iter_errors(obj),
                        key=lambda e: (-len(e.absolute_path), list(map(str, e.path))))
    except RecursionError:
        raise BadRequestError("the object is nested too deeply to validate") from None
    if not errors:
        return
    raise _invalid(info.kind, _name(obj), [_describe(err) for err in errors[:MAX_CAUSES]])


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") or meta.get("generateName") or ""
    return name if isinstance(name, str) else ""


class Problems:
    """Collects field errors (Kubernetes' field.ErrorList) and raises them as one InvalidError."""

    def __init__(self, info: ResourceInfo, name: str) -> None:
        self.info, self.name = info, name
        self.items: list[Cause] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(Cause.from_message(path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise _invalid(self.info.kind, self.name, self.items)


# -- generic rules -------------------------------------------------------------

_DNS1123_LABEL_RULE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                       "characters or '-', and must start and end with an alphanumeric "
                       "character")
_DNS1035_RULE = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                 "start with an alphabetic character, and end with an alphanumeric character")
_SUBDOMAIN_RULE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                   "characters, '-' or '.', and must start and end with an alphanumeric "
                   "character")


def check_name(problems: Problems, path: str, value: Any, *, rule: str = "subdomain",
               prefix: bool = False) -> None:
    """A name, or with prefix=True a generateName (which may end in '-')."""
    if not isinstance(value, str):
        problems.add(path, f"Invalid value: {show(value)}: must be a string")
        return
    if rule == "label":
        pattern, limit, what = _DNS1123_LABEL, 63, _DNS1123_LABEL_RULE
    elif rule == "dns1035":
        pattern, limit, what = _DNS1035_LABEL, 63, _DNS1035_RULE
    else:
        pattern, limit, what = _DNS1123_SUBDOMAIN, 253, _SUBDOMAIN_RULE
    if len(value) > limit:
        problems.add(path, f"Invalid value: {show(value)}: must be no more than {limit} "
                           "characters")
        return
    candidate = value[:-1] if prefix and value.endswith("-") else value
    if prefix and not candidate:
        return
    if not pattern.match(candidate):
        problems.add(path, f"Invalid value: {show(value)}: {what}")


def check_qualified_name(problems: Problems, path: str, key: Any) -> None:
    if not isinstance(key, str):
        problems.add(path, f"Invalid value: {show(key)}: must be a string")
        return
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            problems.add(path, f"Invalid value: {show(key)}: prefix part {_SUBDOMAIN_RULE}")
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        problems.add(path, f"Invalid value: {show(key)}: name part must consist of "
                           "alphanumeric characters, '-', '_' or '.', and must start and end "
                           "with an alphanumeric character (at most 63 characters)")


def check_label_value(problems: Problems, path: str, value: Any) -> None:
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
        problems.add(path, f"Invalid value: {show(value)}: a valid label must be an empty "
                           "string or consist of alphanumeric characters, '-', '_' or '.', and "
                           "must start and end with an alphanumeric character (at most 63 "
                           "characters)")


def check_labels(problems: Problems, path: str, labels: Any) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        problems.add(path, f"Invalid value: {show(labels)}: must be an object of strings")
        return
    for key, value in labels.items():
        check_qualified_name(problems, path, key)
        check_label_value(problems, f"{path}[{show(key, 40)}]", value)


_MAX_ANNOTATIONS = 256 * 1024


def check_annotations(problems: Problems, path: str, annotations: Any) -> None:
    if not isinstance(annotations, dict):
        return
    total = 0
    for key, value in annotations.items():
        check_qualified_name(problems, path, key)
        total += len(str(key)) + len(str(value))
    if total > _MAX_ANNOTATIONS:
        problems.add(path, f"Too long: must have at most {_MAX_ANNOTATIONS} bytes")


def check_range(problems: Problems, path: str, value: Any, low: int | None = None,
                high: int | None = None) -> None:
    """An optional integer within [low, high], in Kubernetes' words."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return  # absent, or the schema's to judge
    if low is not None and high is not None and not low <= value <= high:
        problems.add(path, f"Invalid value: {value}: must be between {low} and {high}, "
                           "inclusive")
    elif low is not None and value < low:
        problems.add(path, f"Invalid value: {value}: must be greater than or equal to {low}")
    elif high is not None and value > high:
        problems.add(path, f"Invalid value: {value}: must be less than or equal to {high}")


def check_port(problems: Problems, path: str, value: Any, *, allow_zero: bool = False,
               allow_name: bool = False) -> None:
    """A port number (1-65535), or an IANA service name where one may name a port."""
    if isinstance(value, str) and allow_name:
        if value.isdigit():
            value = int(value)
        else:
            if not (0 < len(value) <= 15 and _IANA_SVC_NAME.match(value)
                    and re.search(r"[a-z]", value) and "--" not in value):
                problems.add(path, f"Invalid value: {show(value)}: must contain only "
                                   "alphanumeric characters (a-z, 0-9) and hyphens, at most 15 "
                                   "characters, with at least one letter")
            return
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return
    if allow_zero and value == 0:
        return
    check_range(problems, path, value, 1, 65535)


_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def check_ip(problems: Problems, path: str, value: Any) -> None:
    if value in (None, ""):
        return
    try:
        ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        problems.add(path, f"Invalid value: {show(value)}: must be a valid IP address, "
                           "(e.g. 10.9.8.7 or 2001:db8::ffff)")


def check_cidr(problems: Problems, path: str, value: Any) -> None:
    if value in (None, ""):
        return
    try:
        ipaddress.ip_network(value if isinstance(value, str) else "", strict=False)
    except ValueError:
        problems.add(path, f"Invalid value: {show(value)}: must be a valid CIDR value, "
                           "(e.g. 10.9.8.0/24 or 2001:db8::/64)")


def check_enum(problems: Problems, path: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        problems.add(path, f"Unsupported value: {show(value)}: supported values: "
                     + ", ".join(f'"{a}"' for a in allowed))


def _dicts(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a list, with their index: what schema validation let through."""
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


KindCheck = Callable[["Problems", dict[str, Any]], None]


def check_object(info: ResourceInfo, obj: dict[str, Any], *, name_rule: str = "subdomain",
                 kind_check: KindCheck | None = None) -> None:
    """kubelite's own checks, after the schema: metadata, then the kind's own rules.

    Each kind's strategy says which name rule its names follow and which of the
    check_* functions below judge the rest, as Kubernetes' strategies call
    pkg/apis/.../validation. These read every field defensively: they also
    judge objects read back from storage.
    """
    meta = _dict(obj.get("metadata"))
    name = meta.get("name", "")
    problems = Problems(info, name if isinstance(name, str) else "")
    rule = name_rule
    if not name:
        problems.add("metadata.name", "Required value: name or generateName is required")
    else:
        check_name(problems, "metadata.name", name, rule=rule)
    if meta.get("generateName"):
        check_name(problems, "metadata.generateName", meta["generateName"], rule=rule,
                   prefix=True)
    if info.namespaced and meta.get("namespace"):
        check_name(problems, "metadata.namespace", meta["namespace"], rule="label")
    check_labels(problems, "metadata.labels", meta.get("labels"))
    check_annotations(problems, "metadata.annotations", meta.get("annotations"))
    for i, finalizer in enumerate(meta.get("finalizers") or []):
        check_qualified_name(problems, f"metadata.finalizers[{i}]", finalizer)
    check_range(problems, "metadata.deletionGracePeriodSeconds",
                meta.get("deletionGracePeriodSeconds"), 0)
    if kind_check is not None:
        kind_check(problems, obj)
    problems.raise_if_any()


# -- pods ----------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*\Z")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def check_quantities(problems: Problems, path: str, values: Any) -> dict[str, Fraction]:
    """A resource list (requests, limits, capacity): valid names, quantities >= 0."""
    out: dict[str, Fraction] = {}
    for key, value in _dict(values).items():
        check_qualified_name(problems, path, key)
        qpath = f"{path}.{show(key, 40).strip(chr(34))}"
        if not is_quantity(value) or isinstance(value, bool):
            continue  # the schema's format check has named it
        try:
            amount = parse_quantity(value)
        except InvalidError:
            problems.add(qpath, f"Invalid value: {show(value)}: {_QUANTITY_RULE}")
            continue
        if amount < 0:
            problems.add(qpath, f"Invalid value: {show(value)}: must be greater than or equal "
                                "to 0")
        out[key] = amount
    return out


def check_probe(problems: Problems, path: str, probe: Any, *, success_one: bool) -> None:
    if not isinstance(probe, dict):
        return
    handlers = [h for h in _PROBE_HANDLERS if probe.get(h) is not None]
    if not handlers:
        problems.add(path, "Required value: must specify a handler type")
    elif len(handlers) > 1:
        problems.add(f"{path}.{handlers[1]}", "Forbidden: may not specify more than 1 handler "
                                              "type")
    check_range(problems, f"{path}.initialDelaySeconds", probe.get("initialDelaySeconds"), 0)
    # Kubernetes defaults 0 to the default, so a stored probe never has 0 here.
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        check_range(problems, f"{path}.{key}", probe.get(key), 1)
    if success_one and probe.get("successThreshold") not in (None, 1):
        problems.add(f"{path}.successThreshold", f"Invalid value: "
                     f"{show(probe.get('successThreshold'))}: must be 1")
    grace = probe.get("terminationGracePeriodSeconds")
    check_range(problems, f"{path}.terminationGracePeriodSeconds", grace, 1)
    for handler in ("httpGet", "tcpSocket"):
        port = _dict(probe.get(handler)).get("port")
        if probe.get(handler) is not None:
            if port is None:
                problems.add(f"{path}.{handler}.port", "Required value")
            check_port(problems, f"{path}.{handler}.port", port, allow_name=True)
    if probe.get("grpc") is not None:
        check_port(problems, f"{path}.grpc.port", _dict(probe["grpc"]).get("port"))


def check_container(problems: Problems, path: str, c: dict[str, Any],
                    port_names: set[str]) -> None:
    image = c.get("image")
    if not image:
        problems.add(f"{path}.image", "Required value")
    elif isinstance(image, str) and image != image.strip():
        problems.add(f"{path}.image", f"Invalid value: {show(image)}: must not have leading or "
                                      "trailing whitespace")
    for j, port in _dicts(c.get("ports")):
        ppath = f"{path}.ports[{j}]"
        if port.get("containerPort") is None:
            problems.add(f"{ppath}.containerPort", "Required value")
        check_port(problems, f"{ppath}.containerPort", port.get("containerPort"))
        check_port(problems, f"{ppath}.hostPort", port.get("hostPort"), allow_zero=True)
        check_enum(problems, f"{ppath}.protocol", port.get("protocol"), _PROTOCOLS)
        pname = port.get("name")
        if pname:
            check_port(problems, f"{ppath}.name", pname, allow_name=True)
            if pname in port_names:
                problems.add(f"{ppath}.name", f"Duplicate value: {show(pname)}")
            port_names.add(pname)
    for j, env in _dicts(c.get("env")):
        ename = env.get("name")
        if not ename:
            problems.add(f"{path}.env[{j}].name", "Required value")
        elif not isinstance(ename, str) or not _ENV_NAME.match(ename):
            problems.add(f"{path}.env[{j}].name", f"Invalid value: {show(ename)}: a valid "
                         "environment variable name must consist of alphabetic characters, "
                         "digits, '_', '-', or '.', and must not start with a digit")
    resources = _dict(c.get("resources"))
    requests = check_quantities(problems, f"{path}.resources.requests", resources.get("requests"))
    limits = check_quantities(problems, f"{path}.resources.limits", resources.get("limits"))
    for key, amount in requests.items():
        if key in limits and amount > limits[key]:
            problems.add(f"{path}.resources.requests", f"Invalid value: "
                         f"{show(_dict(resources.get('requests')).get(key))}: must be less "
                         f"than or equal to {show(key, 40).strip(chr(34))} limit of "
                         f"{show(_dict(resources.get('limits')).get(key))}")
    check_probe(problems, f"{path}.livenessProbe", c.get("livenessProbe"), success_one=True)
    check_probe(problems, f"{path}.startupProbe", c.get("startupProbe"), success_one=True)
    check_probe(problems, f"{path}.readinessProbe", c.get("readinessProbe"), success_one=False)
    check_enum(problems, f"{path}.imagePullPolicy", c.get("imagePullPolicy"),
               ("Always", "IfNotPresent", "Never"))
    check_enum(problems, f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"),
               ("File", "FallbackToLogsOnError"))


def check_pod_spec(problems: Problems, path: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        problems.add(path, "Required value")
        return
    containers = _dicts(spec.get("containers"))
    if not containers:
        problems.add(f"{path}.containers", "Required value: must have at least one container")
    seen: set[str] = set()
    port_names: set[str] = set()
    for i, c in containers:
        cpath = f"{path}.containers[{i}]"
        cname = c.get("name", "")
        if not cname:
            problems.add(f"{cpath}.name", "Required value")
        else:
            check_name(problems, f"{cpath}.name", cname, rule="label")
            if cname in seen:
                problems.add(f"{cpath}.name", f"Duplicate value: {show(cname)}")
            seen.add(cname)
        check_container(problems, cpath, c, port_names)
    for i, c in _dicts(spec.get("initContainers")):
        cpath = f"{path}.initContainers[{i}]"
        cname = c.get("name", "")
        if not cname:
            problems.add(f"{cpath}.name", "Required value")
        else:
            check_name(problems, f"{cpath}.name", cname, rule="label")
            if cname in seen:
                problems.add(f"{cpath}.name", f"Duplicate value: {show(cname)}")
            seen.add(cname)
        check_container(problems, cpath, c, port_names)
        restart = c.get("restartPolicy")
        if restart is not None and restart != "Always":
            problems.add(f"{cpath}.restartPolicy", f"Unsupported value: {show(restart)}: "
                         'supported values: "Always"')
        if restart != "Always":
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(probe):
                    problems.add(f"{cpath}.{probe}", "Forbidden: may not be set for init "
                                 "containers without restartPolicy=Always")
    check_enum(problems, f"{path}.restartPolicy", spec.get("restartPolicy"),
               ("Always", "OnFailure", "Never"))
    check_volumes(problems, path, spec)
    check_enum(problems, f"{path}.dnsPolicy", spec.get("dnsPolicy"),
               ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"))
    check_range(problems, f"{path}.terminationGracePeriodSeconds",
                spec.get("terminationGracePeriodSeconds"), 0)
    check_range(problems, f"{path}.activeDeadlineSeconds", spec.get("activeDeadlineSeconds"),
                1, _INT32[1])
    if spec.get("nodeName"):
        check_name(problems, f"{path}.nodeName", spec["nodeName"])
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            check_name(problems, f"{path}.{key}", spec[key], rule="label")
    check_labels(problems, f"{path}.nodeSelector", spec.get("nodeSelector"))
    for i, tol in _dicts(spec.get("tolerations")):
        tpath = f"{path}.tolerations[{i}]"
        if tol.get("key"):
            check_qualified_name(problems, f"{tpath}.key", tol["key"])
        check_enum(problems, f"{tpath}.operator", tol.get("operator") or None,
                   ("Equal", "Exists"))
        if tol.get("operator") == "Exists" and tol.get("value"):
            problems.add(f"{tpath}.operator", "Invalid value: \"Exists\": value must be empty "
                                              "when `operator` is 'Exists'")
        elif tol.get("value"):
            check_label_value(problems, f"{tpath}.value", tol["value"])
        check_enum(problems, f"{tpath}.effect", tol.get("effect") or None,
                   ("NoSchedule", "PreferNoSchedule", "NoExecute"))


SUPPORTED_VOLUME_TYPES = ("emptyDir", "configMap", "secret", "downwardAPI", "projected",
                          "hostPath", "persistentVolumeClaim")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")


def check_volumes(problems: Problems, path: str, spec: dict[str, Any]) -> None:
    """Kubernetes' volume checks: unique names, one source each, mounts that name a
    volume at an absolute path with a relative subPath."""
    names: set[str] = set()
    for i, volume in _dicts(spec.get("volumes")):
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
    for field in ("initContainers", "containers"):
        for i, c in _dicts(spec.get(field)):
            _check_mounts(problems, f"{path}.{field}[{i}]", c, names)


def _check_mounts(problems: Problems, cpath: str, c: dict[str, Any], names: set[str]) -> None:
    targets: set[str] = set()
    for j, vm in _dicts(c.get("volumeMounts")):
        mpath = f"{cpath}.volumeMounts[{j}]"
        if vm.get("name") not in names:
            problems.add(f"{mpath}.name", f'Not found: "{vm.get("name", "")}"')
        if not vm.get("mountPath"):
            problems.add(f"{mpath}.mountPath", "Required value")
        elif vm["mountPath"] in targets:
            problems.add(f"{mpath}.mountPath", f'Invalid value: "{vm["mountPath"]}": must be '
                         "unique")
        targets.add(vm.get("mountPath", ""))
        sub = vm.get("subPath") or ""
        if sub.startswith("/") or ".." in sub.split("/"):
            problems.add(f"{mpath}.subPath", f'Invalid value: "{sub}": must be a relative path '
                         "without '..'")


def check_pod(problems: Problems, obj: dict[str, Any]) -> None:
    check_pod_spec(problems, "spec", obj.get("spec"))
    status = _dict(obj.get("status"))
    # Not hostIP: kubelite's kubelet publishes its --listen host there, which may be
    # a host name (Kubernetes, whose kubelet resolves it, validates hostIP too).
    check_ip(problems, "status.podIP", status.get("podIP"))
    for i, item in _dicts(status.get("podIPs")):
        check_ip(problems, f"status.podIPs[{i}].ip", item.get("ip"))
    for key in ("containerStatuses", "initContainerStatuses"):
        for i, cs in _dicts(status.get(key)):
            check_range(problems, f"status.{key}[{i}].restartCount", cs.get("restartCount"), 0)


# -- workloads -----------------------------------------------------------------

_PERCENT = re.compile(r"^[0-9]+%\Z")


def check_selector(problems: Problems, path: str, selector: Any) -> None:
    """A metav1.LabelSelector: label-valid matchLabels, well-formed matchExpressions."""
    selector = _dict(selector)
    check_labels(problems, f"{path}.matchLabels", selector.get("matchLabels"))
    for i, req in _dicts(selector.get("matchExpressions")):
        rpath = f"{path}.matchExpressions[{i}]"
        check_qualified_name(problems, f"{rpath}.key", req.get("key"))
        op, values = req.get("operator"), req.get("values") or []
        check_enum(problems, f"{rpath}.operator", op, ("In", "NotIn", "Exists", "DoesNotExist"))
        if op in ("In", "NotIn") and not values:
            problems.add(f"{rpath}.values", "Required value: must be specified when `operator` "
                                            "is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist") and values:
            problems.add(f"{rpath}.values", "Forbidden: may not be specified when `operator` "
                                            "is 'Exists' or 'DoesNotExist'")
        for j, value in enumerate(values if isinstance(values, list) else []):
            check_label_value(problems, f"{rpath}.values[{j}]", value)


def _int_or_percent(problems: Problems, path: str, value: Any, *, at_most_100: bool) -> int:
    """An IntOrString that is a count or a percentage; its number, or -1 if invalid."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        check_range(problems, path, value, 0)
        return value
    if not isinstance(value, str) or not _PERCENT.match(value):
        problems.add(path, f"Invalid value: {show(value)}: a valid percent string must be a "
                           "numeric string followed by an ending '%' (e.g. '1%')")
        return -1
    number = int(value[:-1])
    if at_most_100 and number > 100:
        problems.add(path, f"Invalid value: {show(value)}: must not be greater than 100%")
    return number


def check_workload(problems: Problems, obj: dict[str, Any]) -> None:
    from kubelite.selectors import selector_from_label_selector_spec

    spec = _dict(obj.get("spec"))
    check_range(problems, "spec.replicas", spec.get("replicas"), 0)
    check_range(problems, "spec.minReadySeconds", spec.get("minReadySeconds"), 0)
    check_range(problems, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), 0)
    deadline = spec.get("progressDeadlineSeconds")
    check_range(problems, "spec.progressDeadlineSeconds", deadline, 1)
    if (isinstance(deadline, int) and isinstance(spec.get("minReadySeconds"), int)
            and deadline <= spec["minReadySeconds"]):
        problems.add("spec.progressDeadlineSeconds", f"Invalid value: {deadline}: must be "
                     "greater than minReadySeconds")
    if obj.get("kind") == "Deployment" or "strategy" in spec:
        strategy = _dict(spec.get("strategy"))
        check_enum(problems, "spec.strategy.type", strategy.get("type"),
                   ("Recreate", "RollingUpdate"))
        rolling = strategy.get("rollingUpdate")
        if strategy.get("type") == "Recreate" and rolling is not None:
            problems.add("spec.strategy.rollingUpdate", "Forbidden: may not be specified when "
                         "strategy `type` is 'Recreate'")
        elif isinstance(rolling, dict):
            surge = _int_or_percent(problems, "spec.strategy.rollingUpdate.maxSurge",
                                    rolling.get("maxSurge"), at_most_100=False)
            unavailable = _int_or_percent(problems, "spec.strategy.rollingUpdate.maxUnavailable",
                                          rolling.get("maxUnavailable"), at_most_100=True)
            if surge == 0 and unavailable == 0:
                problems.add("spec.strategy.rollingUpdate.maxUnavailable",
                             "Invalid value: 0: may not be 0 when `maxSurge` is 0")
    status = _dict(obj.get("status"))
    for key in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                "updatedReplicas", "unavailableReplicas", "observedGeneration"):
        check_range(problems, f"status.{key}", status.get(key), 0)
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels")
                                              or selector.get("matchExpressions")):
        problems.add("spec.selector", "Required value")
        return
    check_selector(problems, "spec.selector", selector)
    template = _dict(spec.get("template"))
    labels = _dict(template.get("metadata")).get("labels") or {}
    check_labels(problems, "spec.template.metadata.labels", labels)
    try:
        if not selector_from_label_selector_spec(selector).matches(labels):
            problems.add("spec.template.metadata.labels",
                         f"Invalid value: {show(labels)}: `selector` does not match "
                         "template `labels`")
    except (InvalidError, TypeError, AttributeError) as err:
        problems.add("spec.selector", f"Invalid value: {clip(str(err), 120)}")
    check_pod_spec(problems, "spec.template.spec", template.get("spec"))


# -- services and endpoints ----------------------------------------------------

def check_service(problems: Problems, obj: dict[str, Any]) -> None:
    spec = _dict(obj.get("spec"))
    service_type = spec.get("type")
    check_enum(problems, "spec.type", service_type, ("ClusterIP", "NodePort", "LoadBalancer",
                                             "ExternalName"))
    check_enum(problems, "spec.sessionAffinity", spec.get("sessionAffinity"),
               ("None", "ClientIP"))
    timeout = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get(
        "timeoutSeconds")
    check_range(problems, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                1, 86400)
    cluster_ip = spec.get("clusterIP")
    if cluster_ip not in (None, "", "None"):
        check_ip(problems, "spec.clusterIP", cluster_ip)
    ips = spec.get("clusterIPs") if isinstance(spec.get("clusterIPs"), list) else []
    for i, ip in enumerate(ips):
        if ip != "None" or i > 0:
            check_ip(problems, f"spec.clusterIPs[{i}]", ip)
    if ips and cluster_ip not in (None, "") and ips[0] != cluster_ip:
        problems.add("spec.clusterIPs[0]", f"Invalid value: {show(ips[0])}: must match "
                                           "`clusterIP` when both are specified")
    for i, ip in enumerate(spec.get("externalIPs") or []):
        check_ip(problems, f"spec.externalIPs[{i}]", ip)
    check_ip(problems, "spec.loadBalancerIP", spec.get("loadBalancerIP"))
    if service_type == "ExternalName":
        if not spec.get("externalName"):
            problems.add("spec.externalName", "Required value")
        else:
            check_name(problems, "spec.externalName", spec["externalName"])
    check_labels(problems, "spec.selector", spec.get("selector"))
    names: set[str] = set()
    ports = _dicts(spec.get("ports"))
    if not ports and cluster_ip != "None" and service_type != "ExternalName":
        problems.add("spec.ports", "Required value")
    for i, port in ports:
        ppath = f"spec.ports[{i}]"
        value = port.get("port")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            problems.add(f"{ppath}.port", f"Invalid value: {show(value)}: must be between 1 "
                                          "and 65535, inclusive")
        check_port(problems, f"{ppath}.targetPort", port.get("targetPort"), allow_name=True)
        check_port(problems, f"{ppath}.nodePort", port.get("nodePort"), allow_zero=True)
        check_enum(problems, f"{ppath}.protocol", port.get("protocol"), _PROTOCOLS)
        pname = port.get("name", "")
        if pname:
            check_name(problems, f"{ppath}.name", pname, rule="label")
        if len(ports) > 1:
            if not pname:
                problems.add(f"{ppath}.name", "Required value: name is required when there is "
                             "more than one port")
            elif pname in names:
                problems.add(f"{ppath}.name", f"Duplicate value: {show(pname)}")
            names.add(pname)
    for i, ingress in _dicts(_dict(_dict(obj.get("status")).get("loadBalancer")).get("ingress")):
        check_ip(problems, f"status.loadBalancer.ingress[{i}].ip", ingress.get("ip"))


def check_endpoints(problems: Problems, obj: dict[str, Any]) -> None:
    for i, subset in _dicts(obj.get("subsets")):
        for key in ("addresses", "notReadyAddresses"):
            for j, address in _dicts(subset.get(key)):
                apath = f"subsets[{i}].{key}[{j}]"
                if not address.get("ip"):
                    problems.add(f"{apath}.ip", "Required value")
                check_ip(problems, f"{apath}.ip", address.get("ip"))
                if address.get("nodeName"):
                    check_name(problems, f"{apath}.nodeName", address["nodeName"])
        for j, port in _dicts(subset.get("ports")):
            check_port(problems, f"subsets[{i}].ports[{j}].port", port.get("port"))
            check_enum(problems, f"subsets[{i}].ports[{j}].protocol", port.get("protocol"),
                       _PROTOCOLS)


# -- cluster objects -----------------------------------------------------------

def check_node(problems: Problems, obj: dict[str, Any]) -> None:
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    check_cidr(problems, "spec.podCIDR", spec.get("podCIDR"))
    for i, cidr in enumerate(spec.get("podCIDRs") or []):
        check_cidr(problems, f"spec.podCIDRs[{i}]", cidr)
    for i, taint in _dicts(spec.get("taints")):
        check_qualified_name(problems, f"spec.taints[{i}].key", taint.get("key"))
        if taint.get("value"):
            check_label_value(problems, f"spec.taints[{i}].value", taint["value"])
        check_enum(problems, f"spec.taints[{i}].effect", taint.get("effect"),
                   ("NoSchedule", "PreferNoSchedule", "NoExecute"))
    check_quantities(problems, "status.capacity", status.get("capacity"))
    check_quantities(problems, "status.allocatable", status.get("allocatable"))
    port = _dict(_dict(status.get("daemonEndpoints")).get("kubeletEndpoint")).get("Port")
    check_port(problems, "status.daemonEndpoints.kubeletEndpoint.Port", port, allow_zero=True)


def check_hpa(problems: Problems, obj: dict[str, Any]) -> None:
    spec = _dict(obj.get("spec"))
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    check_range(problems, "spec.minReplicas", low, 1)
    check_range(problems, "spec.maxReplicas", high, 1)
    if isinstance(high, int) and isinstance(low, int) and high < low:
        problems.add("spec.maxReplicas", f"Invalid value: {high}: must be greater than or "
                     "equal to `minReplicas`")
    ref = _dict(spec.get("scaleTargetRef"))
    if ref.get("name"):
        check_name(problems, "spec.scaleTargetRef.name", ref["name"])
    for i, metric in _dicts(spec.get("metrics")):
        for source in ("resource", "containerResource", "pods", "object", "external"):
            target = _dict(_dict(metric.get(source)).get("target"))
            tpath = f"spec.metrics[{i}].{source}.target"
            check_range(problems, f"{tpath}.averageUtilization",
                        target.get("averageUtilization"), 1)
            for key in ("value", "averageValue"):
                value = target.get(key)
                if value is not None and is_quantity(value) and not isinstance(value, bool):
                    try:
                        if parse_quantity(value) <= 0:
                            problems.add(f"{tpath}.{key}", f"Invalid value: {show(value)}: "
                                                           "must be positive")
                    except InvalidError:
                        problems.add(f"{tpath}.{key}", f"Invalid value: {show(value)}: "
                                                       f"{_QUANTITY_RULE}")


def check_lease(problems: Problems, obj: dict[str, Any]) -> None:
    spec = _dict(obj.get("spec"))
    check_range(problems, "spec.leaseDurationSeconds", spec.get("leaseDurationSeconds"), 1)
    check_range(problems, "spec.leaseTransitions", spec.get("leaseTransitions"), 0)


_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+\Z")
_MAX_CONFIGMAP = 1024 * 1024


def check_configmap(problems: Problems, obj: dict[str, Any]) -> None:
    total = 0
    data, binary = _dict(obj.get("data")), _dict(obj.get("binaryData"))
    for where, values in (("data", data), ("binaryData", binary)):
        for key, value in values.items():
            if len(key) > 253 or not _CONFIG_KEY.match(key):
                problems.add(f"{where}[{show(key, 40)}]", f"Invalid value: {show(key)}: a valid "
                             "config key must consist of alphanumeric characters, '-', '_' or "
                             "'.' (at most 253 characters)")
            elif where == "binaryData" and key in data:
                problems.add(f"binaryData[{show(key, 40)}]", f"Invalid value: {show(key)}: "
                             "duplicate of key present in data")
            total += len(key) + len(str(value))
    if total > _MAX_CONFIGMAP:
        problems.add("data", f"Too long: must have at most {_MAX_CONFIGMAP} bytes (data and "
                             f"binaryData together are too large: {total} bytes)")


def check_event(problems: Problems, obj: dict[str, Any]) -> None:
    check_range(problems, "count", obj.get("count"), 0)
    involved = _dict(obj.get("involvedObject"))
    if not involved.get("name") and not involved.get("kind"):
        problems.add("involvedObject", "Required value")


def check_request_name(value: str, path: str = "metadata.name", limit: int = 253) -> None:
    """A name sent as a request field (Get, Delete, Patch, Bind, Logs): no object can have a
    name this long, or one that is no path segment, so it is refused without a lookup."""
    if len(value) > limit:
        raise BadRequestError(f"Invalid value: {show(value)}: must be no more than {limit} "
                              "characters", field=path)
    if value in (".", "..") or "/" in value or "%" in value:
        raise BadRequestError(f"Invalid value: {show(value)}: may not be '.' or '..', and may "
                              "not contain '/' or '%'", field=path)


def require_name(value: str, path: str, rule: str = "subdomain") -> None:
    """Raises InvalidError if a name given in a request (a Binding's target) is invalid."""
    problems: list[Cause] = []
    holder = Problems.__new__(Problems)
    holder.items = problems
    check_name(holder, path, value, rule=rule)
    if problems:
        raise InvalidError(str(problems[0]), causes=problems)


# Fields the schema accepts but kubelite does not act on: accepted, with a warning.
# dnsConfig and hostAliases act on the docker runtime only (docs/dns.md).
_POD_SPEC_UNIMPLEMENTED = (
    "ephemeralContainers", "hostNetwork", "hostPID", "hostIPC",
    "serviceAccountName", "topologySpreadConstraints", "runtimeClassName",
    "readinessGates",
)
_CONTAINER_UNIMPLEMENTED = ("volumeDevices", "stdin", "tty")


def unimplemented_fields(pod_specs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Warnings for fields of pod specs (path, spec) that kubelite stores but does not act on."""
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
        for field in ("initContainers", "containers"):
            for i, c in enumerate(pod.get(field) or []):
                if not isinstance(c, dict):
                    continue
                for key in _CONTAINER_UNIMPLEMENTED:
                    if c.get(key) not in (None, {}, [], False):
                        warnings.append(f"{path}.{field}[{i}].{key}: not implemented by "
                                        "kubelite; stored, no effect")
                for hook in ("postStart", "preStop"):
                    if "tcpSocket" in ((c.get("lifecycle") or {}).get(hook) or {}):
                        warnings.append(f"{path}.{field}[{i}].lifecycle.{hook}.tcpSocket: "
                                        "not implemented by kubelite (deprecated in "
                                        "Kubernetes); stored, no effect")
    return warnings
