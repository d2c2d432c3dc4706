"""/openapi/v2 and /openapi/v3, made from the very schemas the validator uses.

kubernetes-validate bundles Kubernetes' definitions as JSON Schema (nullable
types, `$defs`, IntOrString as a oneOf). This module turns them back into what
Kubernetes itself serves: Swagger 2.0 (`definitions`, one type per schema,
`format: int-or-string`) and per-group-version OpenAPI 3.0 documents
(`components.schemas`, `allOf` around a `$ref` that has a description), keeping
the `x-kubernetes-group-version-kind` and `x-kubernetes-patch-strategy` /
`x-kubernetes-patch-merge-key` extensions that kubectl's apply and explain read.
Only the definitions reachable from the served kinds are included. The same
patch metadata drives the server's strategic merge patch (strategicpatch.py).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

from kubelite.resources import RESOURCES, ResourceInfo

_DEFS = "#/$defs/"
# Definitions served besides the kinds' own: what subresources and errors send.
_EXTRA = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.core.v1.Binding",
    "io.k8s.api.policy.v1.Eviction",
)


@cache
def definitions(version: str) -> dict[str, Any]:
    """The bundled (JSON Schema) definitions for a schema version, by name."""
    folder = importlib_resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", f"v{version}.0-local-strict")
    return json.loads(folder.joinpath("_definitions.json").read_text())["$defs"]


def definition_name(version: str, info: ResourceInfo) -> str:
    """The definition of a served kind (found by its group-version-kind extension)."""
    return _gvk_index(version)[(info.group, info.version, info.kind)]


@cache
def _gvk_index(version: str) -> dict[tuple[str, str, str], str]:
    out = {}
    for name, schema in definitions(version).items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            out.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
    return out


def _served_roots(version: str) -> list[str]:
    index = _gvk_index(version)
    roots = []
    for info in RESOURCES:
        for kind in (info.kind, f"{info.kind}List"):
            name = index.get((info.group, info.version, kind))
            if name:
                roots.append(name)
    return roots + [n for n in _EXTRA if n in definitions(version)]


def _reachable(version: str, roots: list[str]) -> list[str]:
    defs = definitions(version)
    seen: dict[str, None] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen[name] = None
        text = json.dumps(defs[name])
        for part in text.split('"$ref": "')[1:]:
            ref = part.split('"', 1)[0]
            if ref.startswith(_DEFS):
                todo.append(ref[len(_DEFS):])
    return sorted(seen)


def _single_type(types: Any) -> str | None:
    if isinstance(types, str):
        return types
    if isinstance(types, list):
        real = [t for t in types if t != "null"]
        return real[0] if real else None
    return None


def convert(node: Any, ref_prefix: str, *, v3: bool) -> Any:
    """One JSON-Schema node as Swagger 2.0 (v3=False) or OpenAPI 3.0 (v3=True) schema."""
    if isinstance(node, list):
        return [convert(item, ref_prefix, v3=v3) for item in node]
    if not isinstance(node, dict):
        return node
    one_of = node.get("oneOf")
    if isinstance(one_of, list):
        kinds = {_single_type(o.get("type")) for o in one_of if isinstance(o, dict)}
        rest = {k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}
        if kinds == {"string", "integer"}:
            return {**convert(rest, ref_prefix, v3=v3), "type": "string",
                    "format": "int-or-string"}
        if kinds == {"string", "number"}:
            return {**convert(rest, ref_prefix, v3=v3), "type": "string"}
        node = rest
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            single = _single_type(value)
            if single:
                out["type"] = single
        elif key == "$ref":
            out["$ref"] = ref_prefix + str(value).rsplit("/", 1)[1]
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = convert(value, ref_prefix, v3=v3)
        elif key == "properties":
            out[key] = {name: convert(prop, ref_prefix, v3=v3) for name, prop in value.items()}
        elif key in ("items",):
            out[key] = convert(value, ref_prefix, v3=v3)
        elif key in ("oneOf", "discriminator", "fields-to-discriminateBy", "x-kubernetes-unions"):
            continue
        elif key == "enum" and isinstance(value, list) and len(value) == 1:
            continue  # apiVersion/kind pinned by the validator; Kubernetes serves no enum
        else:
            out[key] = value
    if v3 and "$ref" in out and len(out) > 1:
        # OpenAPI 3.0 ignores a $ref's siblings, so Kubernetes wraps it in allOf.
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


@cache
def _schemas(version: str, v3: bool) -> dict[str, Any]:
    defs = definitions(version)
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    return {name: convert(defs[name], prefix, v3=v3)
            for name in _reachable(version, _served_roots(version))}


def _gvk(info: ResourceInfo) -> dict[str, str]:
    return {"group": info.group, "version": info.version, "kind": info.kind}


_QUERY = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def _operations(info: ResourceInfo, ref_prefix: str, v3: bool) -> dict[str, Any]:
    """Paths with the operations kubectl looks for (it checks PATCH for fieldValidation)."""
    base = f"/apis/{info.group}/{info.version}" if info.group else "/api/v1"
    scope = f"{base}/namespaces/{{namespace}}/{info.plural}" if info.namespaced \
        else f"{base}/{info.plural}"
    params = [{"name": n, "in": "query", "schema" if v3 else "type":
               {"type": "string"} if v3 else "string", "uniqueItems": True} for n in _QUERY]

    def op(verb: str, action: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operationId": f"{verb}{info.kind}", "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": _gvk(info), "parameters": params,
            "responses": {"200": {"description": "OK"}},
        }
        return body

    return {
        scope: {"get": op("list", "list"), "post": op("create", "post")},
        f"{scope}/{{name}}": {"get": op("read", "get"), "put": op("replace", "put"),
                              "patch": op("patch", "patch"), "delete": op("delete", "delete")},
    }


@cache
def v2_document(version: str) -> bytes:
    paths: dict[str, Any] = {}
    for info in RESOURCES:
        paths.update(_operations(info, "#/definitions/", False))
    doc = {"swagger": "2.0",
           "info": {"title": "Kubernetes (kubelite)", "version": f"v{version}.0"},
           "paths": paths, "definitions": _schemas(version, False)}
    return json.dumps(doc, separators=(",", ":")).encode()


def group_versions() -> list[str]:
    """The OpenAPI v3 paths: api/v1, apis/apps/v1, ..."""
    out = []
    for info in RESOURCES:
        path = f"apis/{info.group}/{info.version}" if info.group else "api/v1"
        if path not in out:
            out.append(path)
    return out


@cache
def v3_document(version: str, group_version: str) -> bytes | None:
    if group_version not in group_versions():
        return None
    schemas = _schemas(version, True)
    paths: dict[str, Any] = {}
    for info in RESOURCES:
        path = f"apis/{info.group}/{info.version}" if info.group else "api/v1"
        if path == group_version:
            paths.update(_operations(info, "#/components/schemas/", True))
    doc = {"openapi": "3.0.0",
           "info": {"title": "Kubernetes (kubelite)", "version": f"v{version}.0"},
           "paths": paths, "components": {"schemas": schemas}}
    return json.dumps(doc, separators=(",", ":")).encode()


@cache
def v3_index(version: str) -> bytes:
    paths = {}
    for gv in group_versions():
        digest = hashlib.sha256(v3_document(version, gv) or b"").hexdigest()[:16].upper()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return json.dumps({"paths": paths}, separators=(",", ":")).encode()
