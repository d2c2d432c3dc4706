"""The resource kinds kubelite serves, and how a user may name each one.

A request names its resource the way kubectl lets a user name it: the plural
("deployments"), the singular, the kind ("Deployment"), a short name
("deploy"), optionally qualified by group ("deployments.apps").
"""

from __future__ import annotations

from dataclasses import dataclass

from kubelite.errors import InvalidError


@dataclass(frozen=True)
class ResourceInfo:
    kind: str
    plural: str
    singular: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name kubectl prints, e.g. 'deployment.apps' or 'pod'."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    @property
    def qualified_plural(self) -> str:
        """The name Kubernetes uses in messages, e.g. 'deployments.apps' or 'pods'."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def schema_file(self) -> str:
        """The file name of this kind's schema in kubernetes-validate."""
        group = self.group.split(".")[0]
        middle = f"-{group}" if group else ""
        return f"{self.kind.lower()}{middle}-{self.version}.json"


RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo("Namespace", "namespaces", "namespace", "", "v1", False, ("ns",)),
    ResourceInfo("Node", "nodes", "node", "", "v1", False, ("no",)),
    ResourceInfo("Pod", "pods", "pod", "", "v1", True, ("po",)),
    ResourceInfo("Service", "services", "service", "", "v1", True, ("svc",)),
    ResourceInfo("Endpoints", "endpoints", "endpoints", "", "v1", True, ("ep",), False),
    ResourceInfo("Event", "events", "event", "", "v1", True, ("ev",), False),
    ResourceInfo("ConfigMap", "configmaps", "configmap", "", "v1", True, ("cm",), False),
    ResourceInfo("Secret", "secrets", "secret", "", "v1", True, (), False),
    ResourceInfo("ReplicaSet", "replicasets", "replicaset", "apps", "v1", True, ("rs",)),
    ResourceInfo("Deployment", "deployments", "deployment", "apps", "v1", True, ("deploy",)),
    ResourceInfo("ReplicationController", "replicationcontrollers", "replicationcontroller", "",
                 "v1", True, ("rc",)),
    ResourceInfo("StatefulSet", "statefulsets", "statefulset", "apps", "v1", True, ("sts",)),
    ResourceInfo("DaemonSet", "daemonsets", "daemonset", "apps", "v1", True, ("ds",)),
    ResourceInfo("ControllerRevision", "controllerrevisions", "controllerrevision", "apps", "v1",
                 True, (), False),
    ResourceInfo("Job", "jobs", "job", "batch", "v1", True),
    ResourceInfo("CronJob", "cronjobs", "cronjob", "batch", "v1", True, ("cj",)),
    ResourceInfo("Lease", "leases", "lease", "coordination.k8s.io", "v1", True, (), False),
    ResourceInfo(
        "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler",
        "autoscaling", "v2", True, ("hpa",),
    ),
    ResourceInfo("PersistentVolume", "persistentvolumes", "persistentvolume", "", "v1", False,
                 ("pv",)),
    ResourceInfo("PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", "",
                 "v1", True, ("pvc",)),
    ResourceInfo("StorageClass", "storageclasses", "storageclass", "storage.k8s.io", "v1",
                 False, ("sc",), False),
    ResourceInfo(
        "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", "policy", "v1",
        True, ("pdb",),
    ),
)

_BY_NAME: dict[str, ResourceInfo] = {}
for _info in RESOURCES:
    for _alias in (_info.plural, _info.singular, _info.kind.lower(), *_info.short_names):
        _BY_NAME[_alias] = _info
        if _info.group:
            _BY_NAME[f"{_alias}.{_info.group}"] = _info
_BY_KIND: dict[tuple[str, str], ResourceInfo] = {(i.api_version, i.kind): i for i in RESOURCES}


def lookup(name: str) -> ResourceInfo:
    """Finds a resource by any name a user may give it, or raises InvalidError."""
    info = _BY_NAME.get(name.strip().lower())
    if info is None:
        raise InvalidError(f'the server doesn\'t have a resource type "{name}"')
    return info


def for_kind(api_version: str, kind: str) -> ResourceInfo:
    """Finds the resource of an object's apiVersion and kind, or raises InvalidError."""
    info = _BY_KIND.get((api_version, kind))
    if info is None:
        raise InvalidError(
            f'no matches for kind "{kind}" in version "{api_version}"', field="kind"
        )
    return info
