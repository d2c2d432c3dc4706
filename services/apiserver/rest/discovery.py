"""The legacy discovery documents: /api, /apis, /api/v1 and /apis/<group>/<version>.

Every kind kubelite serves is listed with its verbs, short names and
categories (the workload kinds are in "all", as in Kubernetes), plus the
subresources it serves; a kind kubelite does not serve is absent, so kubectl
answers "the server doesn't have a resource type" for it.
"""

from __future__ import annotations

from typing import Any

from kubelite.resources import RESOURCES, ResourceInfo

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"

_ALL = {"Pod", "Service", "DaemonSet", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler"}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def group_version(info: ResourceInfo) -> str:
    return info.api_version


def _resource(info: ResourceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"name": info.plural, "singularName": info.singular,
                           "namespaced": info.namespaced, "kind": info.kind,
                           "verbs": list(_VERBS)}
    if info.short_names:
        out["shortNames"] = list(info.short_names)
    if info.kind in _ALL:
        out["categories"] = ["all"]
    return out


def _subresources(info: ResourceInfo) -> list[dict[str, Any]]:
    def sub(name: str, kind: str, verbs: list[str], **extra: str) -> dict[str, Any]:
        return {"name": f"{info.plural}/{name}", "singularName": "",
                "namespaced": info.namespaced, "kind": kind, "verbs": verbs, **extra}

    out = []
    if info.has_status:
        out.append(sub("status", info.kind, ["get", "patch", "update"]))
    if info.kind in ("Deployment", "ReplicaSet"):
        out.append(sub("scale", "Scale", ["get", "patch", "update"], group="autoscaling",
                       version="v1"))
    if info.kind == "Pod":
        out.append(sub("log", "Pod", ["get"]))
        out.append(sub("binding", "Binding", ["create"]))
        out.append(sub("eviction", "Eviction", ["create"], group="policy", version="v1"))
    return out


def resource_list(gv: str) -> dict[str, Any] | None:
    """The APIResourceList of a group version, or None when kubelite serves none of it."""
    if gv == f"{METRICS_GROUP}/{METRICS_VERSION}":
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [
                    {"name": "nodes", "singularName": "", "namespaced": False,
                     "kind": "NodeMetrics", "verbs": ["get", "list"]},
                    {"name": "pods", "singularName": "", "namespaced": True,
                     "kind": "PodMetrics", "verbs": ["get", "list"]}]}
    infos = [i for i in RESOURCES if i.api_version == gv]
    if not infos:
        return None
    resources = []
    for info in infos:
        resources.append(_resource(info))
        resources.extend(_subresources(info))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def api_versions(address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": address}]}


def api_groups() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for info in RESOURCES:
        if info.group:
            versions = groups.setdefault(info.group, [])
            if info.version not in versions:
                versions.append(info.version)
    groups[METRICS_GROUP] = [METRICS_VERSION]

    def entry(name: str, versions: list[str]) -> dict[str, Any]:
        gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}

    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [entry(n, v) for n, v in groups.items()]}


def api_group(name: str) -> dict[str, Any] | None:
    for group in api_groups()["groups"]:
        if group["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
    return None
