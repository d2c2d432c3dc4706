"""DaemonSet (apps/v1): one pod per eligible node, Kubernetes' defaults and checks.

As pkg/registry/apps/daemonset/strategy.go and pkg/apis/apps/validation: the
update strategy defaults to RollingUpdate with maxUnavailable 1 and maxSurge 0,
revisionHistoryLimit to 10; the selector is required, must match the
template's labels and may not change; the template's restartPolicy must be
Always and it may not set activeDeadlineSeconds; maxUnavailable and maxSurge
are counts or percentages of at most 100%, not both zero.
"""

from __future__ import annotations

from typing import Any

from kubelite.errors import InvalidError, clip
from kubelite.selectors import selector_from_label_selector_spec

from .. import defaults
from ..validation import (
    Problems,
    _int_or_percent,
    check_enum,
    check_labels,
    check_pod_spec,
    check_range,
    check_selector,
    show,
)
from .base import Obj, Strategy, immutable

UPDATE_TYPES = ("RollingUpdate", "OnDelete")
# apps/v1 keeps the internal spec.templateGeneration in this annotation: 1 on create,
# one more each time an update changes the template. Pods carry it as the
# pod-template-generation label.
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
_STATUS_COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                  "numberReady", "observedGeneration", "updatedNumberScheduled",
                  "numberAvailable", "numberUnavailable", "collisionCount")


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def template_generation(obj: Obj) -> int | None:
    """The template generation an object's annotation holds, if it is a positive number."""
    value = (_dict(_dict(obj.get("metadata")).get("annotations"))).get(
        TEMPLATE_GENERATION_ANNOTATION)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def _set_template_generation(obj: Obj, generation: int) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return  # the schema check refuses it
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[TEMPLATE_GENERATION_ANNOTATION] = str(generation)


def daemonset_defaults(spec: Obj) -> None:
    """SetDefaults_DaemonSet of a DaemonSetSpec (the pod template is defaulted apart)."""
    strategy = spec.setdefault("updateStrategy", {})
    if not isinstance(strategy, dict):
        return
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        if not isinstance(strategy.get("rollingUpdate"), dict):
            strategy["rollingUpdate"] = {}
        rolling = strategy["rollingUpdate"]
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10


def check_update_strategy(problems: Problems, path: str, strategy: Any) -> None:
    strategy = _dict(strategy)
    kind = strategy.get("type")
    check_enum(problems, f"{path}.type", kind, UPDATE_TYPES)
    if kind != "RollingUpdate":
        return
    rolling = strategy.get("rollingUpdate")
    if not isinstance(rolling, dict):
        problems.add(f"{path}.rollingUpdate", "Required value")
        return
    rpath = f"{path}.rollingUpdate"
    unavailable = _int_or_percent(problems, f"{rpath}.maxUnavailable",
                                  rolling.get("maxUnavailable"), at_most_100=True)
    surge = _int_or_percent(problems, f"{rpath}.maxSurge", rolling.get("maxSurge"),
                            at_most_100=True)
    if unavailable == 0 and surge == 0:
        problems.add(f"{rpath}.maxUnavailable",
                     f"Invalid value: {show(rolling.get('maxUnavailable'))}: may not be 0 "
                     "when `maxSurge` is 0")


class DaemonSetStrategy(Strategy):
    # The status fields apps/v1 requires, as an empty DaemonSetStatus serializes.
    initial_status = {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                      "desiredNumberScheduled": 0, "numberReady": 0}

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        _set_template_generation(obj, template_generation(obj) or 1)

    def prepare_for_update(self, old: Obj, new: Obj) -> None:
        super().prepare_for_update(old, new)
        generation = template_generation(old) or 1
        if _dict(old.get("spec")).get("template") != _dict(new.get("spec")).get("template"):
            generation += 1
        _set_template_generation(new, generation)

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        daemonset_defaults(spec)
        template = spec.get("template")
        if isinstance(template, dict):
            pod = template.setdefault("spec", {})
            if isinstance(pod, dict):
                defaults.pod_spec(pod)

    def check(self, problems: Problems, obj: Obj) -> None:
        spec = _dict(obj.get("spec"))
        check_range(problems, "spec.minReadySeconds", spec.get("minReadySeconds"), 0)
        check_range(problems, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), 0)
        check_update_strategy(problems, "spec.updateStrategy", spec.get("updateStrategy"))
        status = _dict(obj.get("status"))
        for key in _STATUS_COUNTS:
            check_range(problems, f"status.{key}", status.get(key), 0)
        template = spec.get("template")
        if not isinstance(template, dict):
            problems.add("spec.template", "Required value")
            template = {}
        pod = _dict(template.get("spec"))
        policy = pod.get("restartPolicy")
        if policy != "Always":
            problems.add("spec.template.spec.restartPolicy",
                         f"Unsupported value: {show(policy)}: supported values: \"Always\"")
        if pod.get("activeDeadlineSeconds") is not None:
            problems.add("spec.template.spec.activeDeadlineSeconds",
                         "Forbidden: activeDeadlineSeconds in DaemonSet is not Supported")
        labels = _dict(template.get("metadata")).get("labels") or {}
        check_labels(problems, "spec.template.metadata.labels", labels)
        check_pod_spec(problems, "spec.template.spec", template.get("spec"))
        selector = spec.get("selector")
        if not isinstance(selector, dict):
            problems.add("spec.selector", "Required value")
            return
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            problems.add("spec.selector", "Invalid value: {}: empty selector is invalid for "
                                          "daemonset")
            return
        check_selector(problems, "spec.selector", selector)
        try:
            if not selector_from_label_selector_spec(selector).matches(_dict(labels)):
                problems.add("spec.template.metadata.labels",
                             f"Invalid value: {show(labels)}: `selector` does not match "
                             "template `labels`")
        except (InvalidError, TypeError, AttributeError) as err:
            problems.add("spec.selector", f"Invalid value: {clip(str(err), 120)}")

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        template = _dict(_dict(obj.get("spec")).get("template"))
        pod = template.get("spec")
        return [("spec.template.spec", pod)] if isinstance(pod, dict) else []

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        immutable(problems, "spec.selector", _dict(old.get("spec")).get("selector"),
                  _dict(new.get("spec")).get("selector"))
