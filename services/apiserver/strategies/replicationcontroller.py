"""ReplicationController (v1): a ReplicaSet with an equality-based selector (a plain map),
defaulted from the template's labels, as are the controller's own labels."""

from __future__ import annotations

import json

from .. import defaults
from ..validation import Problems, check_labels, check_pod_spec
from .base import Obj, Strategy


class ReplicationControllerStrategy(Strategy):
    initial_status = {"replicas": 0}

    def defaults(self, obj: Obj) -> None:
        # SetDefaults_ReplicationController: an empty selector and empty labels
        # both become the template's labels.
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        template = spec.get("template")
        if isinstance(template, dict):
            labels = (template.get("metadata") or {}).get("labels") or {}
            if labels:
                if not spec.get("selector"):
                    spec["selector"] = dict(labels)
                meta = obj.setdefault("metadata", {})
                if not meta.get("labels"):
                    meta["labels"] = dict(labels)
            defaults.pod_spec(template.setdefault("spec", {}))

    def check(self, problems: Problems, obj: Obj) -> None:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            problems.add("spec.replicas", f"Invalid value: {replicas}: must be greater than or "
                         "equal to 0")
        selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
        if not selector:
            problems.add("spec.selector", "Required value")
        check_labels(problems, "spec.selector", selector)
        template = spec.get("template")
        if not isinstance(template, dict):
            problems.add("spec.template", "Required value")
        else:
            labels = (template.get("metadata") or {}).get("labels") or {}
            if not isinstance(labels, dict):
                labels = {}
            check_labels(problems, "spec.template.metadata.labels", labels)
            if selector and any(labels.get(k) != v for k, v in selector.items()):
                problems.add("spec.template.metadata.labels",
                             f"Invalid value: {json.dumps(labels)}: `selector` does not match "
                             "template `labels`")
            check_pod_spec(problems, "spec.template.spec", template.get("spec"))

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        template = spec.get("template")
        pod = template.get("spec") if isinstance(template, dict) else None
        return [("spec.template.spec", pod)] if isinstance(pod, dict) else []
