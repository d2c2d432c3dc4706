"""Job and CronJob (batch/v1): Kubernetes' defaults, the selector a Job generates for
itself, what may not change, and the checks of a schedule and a time zone."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubelite import cron
from kubelite.errors import InvalidError
from kubelite.selectors import selector_from_label_selector_spec

from .. import defaults
from ..validation import Problems, check_labels, check_pod_spec
from .base import Obj, Strategy, immutable

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
_POLICY_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
_NONNEGATIVE = ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                "ttlSecondsAfterFinished")
_MAX_CRONJOB_NAME = 52  # the Job's name adds "-" and up to 11 digits of minutes


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _template_spec(path: str, spec: Obj) -> list[tuple[str, Obj]]:
    pod = _dict(spec.get("template")).get("spec")
    return [(path, pod)] if isinstance(pod, dict) else []


def _nonnegative(problems: Problems, path: str, value: Any) -> None:
    if isinstance(value, int) and value < 0:
        problems.add(path, f"Invalid value: {value}: must be greater than or equal to 0")


def check_job_template(problems: Problems, path: str, spec: Obj) -> None:
    """The checks a Job's spec gets, whether in a Job or a CronJob's jobTemplate."""
    for key in _NONNEGATIVE:
        _nonnegative(problems, f"{path}.{key}", spec.get(key))
    if spec.get("activeDeadlineSeconds") == 0:
        problems.add(f"{path}.activeDeadlineSeconds",
                     "Invalid value: 0: must be greater than 0")
    mode = spec.get("completionMode")
    if mode not in (None, "NonIndexed", "Indexed"):
        problems.add(f"{path}.completionMode", f'Unsupported value: "{mode}": supported '
                     'values: "NonIndexed", "Indexed"')
    if mode == "Indexed" and spec.get("completions") is None:
        problems.add(f"{path}.completions", "Required value: when completion mode is Indexed")
    template = _dict(spec.get("template"))
    pod = _dict(template.get("spec"))
    policy = pod.get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        problems.add(f"{path}.template.spec.restartPolicy", f'Unsupported value: "{policy}": '
                     'supported values: "OnFailure", "Never"')
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, dict):
        if policy != "Never":
            problems.add(f"{path}.podFailurePolicy", "Invalid value: only \"Never\" is "
                         "supported when podFailurePolicy is specified")
        for i, rule in enumerate(failure_policy.get("rules") or []):
            if not isinstance(rule, dict):
                continue
            rpath = f"{path}.podFailurePolicy.rules[{i}]"
            action = rule.get("action")
            if action not in _POLICY_ACTIONS:
                problems.add(f"{rpath}.action", f'Unsupported value: "{action}": supported '
                             'values: "Count", "FailIndex", "FailJob", "Ignore"')
            if bool(rule.get("onExitCodes")) == bool(rule.get("onPodConditions")):
                problems.add(rpath, "Invalid value: specifying one of onExitCodes and "
                             "onPodConditions is required")
            codes = _dict(rule.get("onExitCodes"))
            if codes and codes.get("operator") not in ("In", "NotIn"):
                problems.add(f"{rpath}.onExitCodes.operator", f'Unsupported value: '
                             f'"{codes.get("operator")}": supported values: "In", "NotIn"')
            if codes.get("operator") == "In" and 0 in (codes.get("values") or []):
                problems.add(f"{rpath}.onExitCodes.values", "Invalid value: 0: must not be 0 "
                             "for the In operator")
    check_labels(problems, f"{path}.template.metadata.labels",
                 _dict(template.get("metadata")).get("labels"))
    check_pod_spec(problems, f"{path}.template.spec", pod)


def job_defaults(spec: Obj) -> None:
    """SetDefaults_Job of a JobSpec (in a Job; a CronJob's template only gets pod defaults)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for cond in rule.get("onPodConditions") or []:
            cond.setdefault("status", "True")


class JobStrategy(Strategy):
    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        job_defaults(spec)
        template = spec.setdefault("template", {})
        defaults.pod_spec(template.setdefault("spec", {}))
        meta = obj.get("metadata") or {}
        uid, name = meta.get("uid", ""), meta.get("name", "")
        if spec.get("manualSelector") or not uid:
            return
        # Kubernetes' generateSelector: the Job's uid selects its pods, and the
        # template carries it (and the Job's name) under both label spellings.
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault(LEGACY_CONTROLLER_UID_LABEL, uid)
        labels.setdefault(CONTROLLER_UID_LABEL, uid)
        if len(name) <= 63:
            labels.setdefault(LEGACY_JOB_NAME_LABEL, name)
            labels.setdefault(JOB_NAME_LABEL, name)
        spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID_LABEL: uid}})

    def check(self, problems: Problems, obj: Obj) -> None:
        spec = _dict(obj.get("spec"))
        check_job_template(problems, "spec", spec)
        selector = spec.get("selector")
        labels = _dict(_dict(_dict(spec.get("template")).get("metadata")).get("labels"))
        if not selector:
            problems.add("spec.selector", "Required value")
        else:
            try:
                if not selector_from_label_selector_spec(selector).matches(labels):
                    problems.add("spec.template.metadata.labels",
                                 f"Invalid value: {json.dumps(labels)}: `selector` does not "
                                 "match template `labels`")
            except InvalidError as err:
                problems.add("spec.selector", f"Invalid value: {err.message}")

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        return _template_spec("spec.template.spec", _dict(obj.get("spec")))

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        for key in ("selector", "completionMode", "podFailurePolicy", "manualSelector"):
            immutable(problems, f"spec.{key}", old_spec.get(key), new_spec.get(key))
        # An Indexed Job may be scaled with completions == parallelism (elastic
        # Indexed Jobs); a NonIndexed Job's completions never change.
        if old_spec.get("completions") != new_spec.get("completions") and not (
                new_spec.get("completionMode") == "Indexed"
                and new_spec.get("completions") == new_spec.get("parallelism")):
            immutable(problems, "spec.completions", old_spec.get("completions"),
                      new_spec.get("completions"))
        old_template = copy.deepcopy(old_spec.get("template"))
        new_template = copy.deepcopy(new_spec.get("template"))
        if old_spec.get("suspend") and not (old.get("status") or {}).get("startTime"):
            # A suspended Job that never started may have its scheduling directives changed
            # (how Kueue-style queues place it), as Kubernetes allows.
            for template in (old_template, new_template):
                pod = (template or {}).get("spec") or {}
                for key in ("nodeSelector", "tolerations", "affinity", "schedulingGates"):
                    pod.pop(key, None)
                meta = (template or {}).get("metadata") or {}
                meta.pop("labels", None)
                meta.pop("annotations", None)
        immutable(problems, "spec.template", old_template, new_template)


class CronJobStrategy(Strategy):
    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        template = spec.setdefault("jobTemplate", {}).setdefault("spec", {}).setdefault(
            "template", {})
        defaults.pod_spec(template.setdefault("spec", {}))

    def check(self, problems: Problems, obj: Obj) -> None:
        name = str(_dict(obj.get("metadata")).get("name", ""))
        if len(name) > _MAX_CRONJOB_NAME:
            problems.add("metadata.name", f'Invalid value: "{name}": must be no more than '
                         f"{_MAX_CRONJOB_NAME} characters")
        spec = _dict(obj.get("spec"))
        schedule = spec.get("schedule")
        if not isinstance(schedule, str) or not schedule:
            problems.add("spec.schedule", "Required value")
        else:
            try:
                cron.parse(schedule)
            except cron.ScheduleError as err:
                problems.add("spec.schedule", f'Invalid value: "{schedule}": {err}')
        zone = spec.get("timeZone")
        if isinstance(zone, str):
            try:
                cron.time_zone(zone)
            except cron.ScheduleError as err:
                problems.add("spec.timeZone", f'Invalid value: "{zone}": {err}')
        policy = spec.get("concurrencyPolicy")
        if policy not in ("Allow", "Forbid", "Replace"):
            problems.add("spec.concurrencyPolicy", f'Unsupported value: "{policy}": supported '
                         'values: "Allow", "Forbid", "Replace"')
        for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                    "failedJobsHistoryLimit"):
            _nonnegative(problems, f"spec.{key}", spec.get(key))
        job_spec = _dict(_dict(spec.get("jobTemplate")).get("spec"))
        check_job_template(problems, "spec.jobTemplate.spec", job_spec)
        if job_spec.get("selector") and not job_spec.get("manualSelector"):
            problems.add("spec.jobTemplate.spec.selector", "Invalid value: `selector` will "
                         "be auto-generated")

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        job = _dict(_dict(_dict(obj.get("spec")).get("jobTemplate")).get("spec"))
        return _template_spec("spec.jobTemplate.spec.template.spec", job)
