"""StatefulSet (apps/v1): Kubernetes' defaults (pkg/apis/apps/v1 SetDefaults_StatefulSet),
the checks of ValidateStatefulSetSpec, and the rule that of the spec only `replicas`,
`ordinals`, `template`, `updateStrategy`, `persistentVolumeClaimRetentionPolicy` and
`minReadySeconds` may change."""

from __future__ import annotations

import copy
from typing import Any

from kubelite.errors import InvalidError
from kubelite.selectors import selector_from_label_selector_spec

from .. import defaults
from ..validation import (
    Problems,
    _int_or_percent,
    check_enum,
    check_labels,
    check_name,
    check_pod_spec,
    check_range,
    check_selector,
    show,
)
from .base import Obj, Strategy

#: The spec fields an update may change (everything else is fixed at creation).
MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
           "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
UPDATE_STRATEGIES = ("RollingUpdate", "OnDelete")
RETENTION_POLICIES = ("Retain", "Delete")


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _claim_templates(spec: Obj) -> list[tuple[int, Obj]]:
    claims = spec.get("volumeClaimTemplates")
    if not isinstance(claims, list):
        return []
    return [(i, c) for i, c in enumerate(claims) if isinstance(c, dict)]


def statefulset_defaults(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("minReadySeconds", 0)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    for _, claim in _claim_templates(spec):
        # The defaults of a PersistentVolumeClaim, as Kubernetes applies them to the
        # embedded templates (what `kubectl get sts -o yaml` shows).
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        if isinstance(claim.setdefault("spec", {}), dict):
            claim["spec"].setdefault("volumeMode", "Filesystem")
        if isinstance(claim.setdefault("status", {}), dict):
            claim["status"].setdefault("phase", "Pending")
    template = spec.setdefault("template", {})
    if isinstance(template, dict) and isinstance(template.setdefault("spec", {}), dict):
        defaults.pod_spec(template["spec"])


def _check_claim_templates(problems: Problems, spec: Obj) -> set[str]:
    names: set[str] = set()
    for i, claim in _claim_templates(spec):
        path = f"spec.volumeClaimTemplates[{i}]"
        name = _dict(claim.get("metadata")).get("name")
        if not name:
            problems.add(f"{path}.metadata.name", "Required value: name or generateName is "
                         "required")
        else:
            check_name(problems, f"{path}.metadata.name", name, rule="label")
            if name in names:
                problems.add(f"{path}.metadata.name", f"Duplicate value: {show(name)}")
            names.add(name)
        cspec = _dict(claim.get("spec"))
        if not cspec.get("accessModes"):
            problems.add(f"{path}.spec.accessModes", "Required value: at least 1 access mode "
                         "is required")
        if not _dict(_dict(cspec.get("resources")).get("requests")).get("storage"):
            problems.add(f"{path}.spec.resources[storage]", "Required value")
    return names


def check_statefulset(problems: Problems, obj: Obj) -> None:
    spec = _dict(obj.get("spec"))
    check_range(problems, "spec.replicas", spec.get("replicas"), 0)
    check_range(problems, "spec.minReadySeconds", spec.get("minReadySeconds"), 0)
    check_range(problems, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), 0)
    check_range(problems, "spec.ordinals.start", _dict(spec.get("ordinals")).get("start"), 0)
    if spec.get("serviceName"):
        check_name(problems, "spec.serviceName", spec["serviceName"], rule="label")
    policy = spec.get("podManagementPolicy")
    if policy is None:
        problems.add("spec.podManagementPolicy", "Required value")
    check_enum(problems, "spec.podManagementPolicy", policy, POD_MANAGEMENT_POLICIES)
    strategy = _dict(spec.get("updateStrategy"))
    kind = strategy.get("type")
    if kind is None:
        problems.add("spec.updateStrategy.type", "Required value")
    check_enum(problems, "spec.updateStrategy.type", kind, UPDATE_STRATEGIES)
    rolling = strategy.get("rollingUpdate")
    if kind == "OnDelete" and rolling is not None:
        problems.add("spec.updateStrategy.rollingUpdate", "Invalid value: only allowed for "
                     "updateStrategy 'RollingUpdate'")
    if isinstance(rolling, dict):
        path = "spec.updateStrategy.rollingUpdate"
        check_range(problems, f"{path}.partition", rolling.get("partition"), 0)
        if rolling.get("maxUnavailable") is not None:
            value = _int_or_percent(problems, f"{path}.maxUnavailable",
                                    rolling["maxUnavailable"], at_most_100=True)
            if value == 0:
                problems.add(f"{path}.maxUnavailable", "Invalid value: 0: must be greater "
                             "than 0")
    retention = _dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        check_enum(problems, f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                   retention.get(key), RETENTION_POLICIES)
    claims = _check_claim_templates(problems, spec)
    status = _dict(obj.get("status"))
    for key in ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                "availableReplicas", "observedGeneration", "collisionCount"):
        check_range(problems, f"status.{key}", status.get(key), 0)
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels")
                                              or selector.get("matchExpressions")):
        problems.add("spec.selector", "Invalid value: empty selector is invalid for "
                     "statefulset" if isinstance(selector, dict) else "Required value")
        return
    check_selector(problems, "spec.selector", selector)
    template = _dict(spec.get("template"))
    labels = _dict(template.get("metadata")).get("labels") or {}
    check_labels(problems, "spec.template.metadata.labels", labels)
    try:
        if not selector_from_label_selector_spec(selector).matches(labels):
            problems.add("spec.template.metadata.labels",
                         f"Invalid value: {show(labels)}: `selector` does not match template "
                         "`labels`")
    except (InvalidError, TypeError, AttributeError) as err:
        problems.add("spec.selector", f"Invalid value: {str(err)[:120]}")
    pod = template.get("spec")
    if isinstance(pod, dict):
        restart = pod.get("restartPolicy")
        if restart is not None and restart != "Always":
            problems.add("spec.template.spec.restartPolicy", f"Unsupported value: "
                         f'{show(restart)}: supported values: "Always"')
        if pod.get("activeDeadlineSeconds") is not None:
            problems.add("spec.template.spec.activeDeadlineSeconds", "Forbidden: "
                         "activeDeadlineSeconds in StatefulSet is not Supported")
        pod = _with_claim_volumes(pod, claims)
    check_pod_spec(problems, "spec.template.spec", pod)


def _with_claim_volumes(pod: Obj, claims: set[str]) -> Obj:
    """The template's pod spec with a volume for each claim template it does not name
    itself: its containers may mount a claim (the controller adds the volumes)."""
    volumes = pod.get("volumes")
    if not claims or (volumes is not None and not isinstance(volumes, list)):
        return pod
    own = {v.get("name") for v in volumes or [] if isinstance(v, dict)}
    extra = [{"name": name, "persistentVolumeClaim": {"claimName": name}}
             for name in sorted(claims - own)]
    if not extra:
        return pod
    pod = copy.copy(pod)
    pod["volumes"] = list(volumes or []) + extra
    return pod


class StatefulSetStrategy(Strategy):
    initial_status = {"replicas": 0, "availableReplicas": 0}

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            statefulset_defaults(spec)

    def check(self, problems: Problems, obj: Obj) -> None:
        check_statefulset(problems, obj)

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        template = _dict(_dict(obj.get("spec")).get("template"))
        spec = template.get("spec")
        return [("spec.template.spec", spec)] if isinstance(spec, dict) else []

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        old_spec, new_spec = _dict(old.get("spec")), _dict(new.get("spec"))
        fixed_old = {k: v for k, v in old_spec.items() if k not in MUTABLE}
        fixed_new = {k: v for k, v in new_spec.items() if k not in MUTABLE}
        if fixed_old != fixed_new:
            changed = sorted(k for k in set(fixed_old) | set(fixed_new)
                             if fixed_old.get(k) != fixed_new.get(k))
            problems.add("spec", "Forbidden: updates to statefulset spec for fields other "
                         "than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                         "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                         f"forbidden (changed: {', '.join(changed)})")


__all__ = ["MUTABLE", "StatefulSetStrategy", "check_statefulset", "statefulset_defaults"]
