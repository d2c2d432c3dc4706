"""What `kubelite rollout` knows about Deployments, as pure functions over dicts.

These mirror kubectl's own helpers (k8s.io/kubectl/pkg/polymorphichelpers and
k8s.io/kubectl/pkg/util/deployment):

- a Deployment's ReplicaSets are those whose ownerReferences name its uid;
- each ReplicaSet's revision is its `deployment.kubernetes.io/revision`
  annotation, and its change-cause the `kubernetes.io/change-cause` one;
- the rollout status message is DeploymentStatusViewer's;
- a rollback copies a ReplicaSet's pod template (without the
  `pod-template-hash` label) and annotations back into the Deployment.

Nothing here talks to the server; rollout.py does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from kubelite.cli import describe
from kubelite.cli.printers import render_table
from kubelite.cli.reporting import CliError

Obj = dict[str, Any]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
POD_TEMPLATE_HASH = "pod-template-hash"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"

# Annotations a rollback neither copies from the ReplicaSet nor drops from the
# Deployment (kubectl's annotationsToSkip).
ANNOTATIONS_TO_SKIP = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION,
})


class RolloutError(CliError):
    """The rollout cannot succeed (deadline exceeded, object deleted...): exit 1."""


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def revision(obj: Obj) -> int | None:
    """The revision annotation as a number; None when absent or not a number."""
    text = (_meta(obj).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return None


def owned_by(obj: Obj, owner: Obj) -> bool:
    """True when one of obj's ownerReferences names the owner's uid."""
    uid = _meta(owner).get("uid")
    return bool(uid) and any(ref.get("uid") == uid
                             for ref in _meta(obj).get("ownerReferences") or [])


def owned_replicasets(deployment: Obj, replicasets: Iterable[Obj]) -> list[Obj]:
    return [rs for rs in replicasets if owned_by(rs, deployment)]


# --- rollout status ------------------------------------------------------------

def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def rollout_status(deployment: Obj, want_revision: int = 0) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done), or RolloutError.

    `want_revision` > 0 insists that the Deployment is at that revision.
    """
    name = _name(deployment)
    meta = _meta(deployment)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    if want_revision > 0:
        current = revision(deployment)
        if current is None:
            raise RolloutError(f'cannot get the revision of deployment "{name}"')
        if current != want_revision:
            raise RolloutError(f"desired revision ({want_revision}) is different from the "
                               f"running revision ({current})")
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return "Waiting for deployment spec update to be observed...", False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == TIMED_OUT_REASON:
            raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
    desired = spec.get("replicas")
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if isinstance(desired, int) and updated < desired:
        return f"{waiting}{updated} out of {desired} new replicas have been updated...", False
    if replicas > updated:
        return f"{waiting}{replicas - updated} old replicas are pending termination...", False
    if available < updated:
        return f"{waiting}{available} of {updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


# --- rollout history -------------------------------------------------------------

def history(replicasets: Iterable[Obj]) -> dict[int, Obj]:
    """Revision → that ReplicaSet's pod template, with its change-cause as a template
    annotation (as kubectl builds it). ReplicaSets without a revision are left out;
    of two with the same revision, the later one listed wins."""
    found: dict[int, Obj] = {}
    for rs in replicasets:
        number = revision(rs)
        if number is None:
            continue
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        cause = (_meta(rs).get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION)
        if cause:
            template.setdefault("metadata", {}).setdefault("annotations", {})[
                CHANGE_CAUSE_ANNOTATION] = cause
        found[number] = template
    return found


def history_table(replicasets: Iterable[Obj]) -> str:
    """`REVISION  CHANGE-CAUSE` rows in revision order, or kubectl's no-history line."""
    revisions = history(replicasets)
    if not revisions:
        return "No rollout history found."
    rows = []
    for number in sorted(revisions):
        annotations = _meta(revisions[number]).get("annotations") or {}
        rows.append([str(number), annotations.get(CHANGE_CAUSE_ANNOTATION) or "<none>"])
    return render_table(["REVISION", "CHANGE-CAUSE"], rows, padding=2)


def describe_template(template: Obj) -> str:
    """A pod template as `kubectl rollout history --revision N` shows it."""
    d = describe.Description()
    d.add("Pod Template:")
    d.mapping("Labels:", _meta(template).get("labels"), indent=1)
    annotations = _meta(template).get("annotations")
    if annotations:
        d.mapping("Annotations:", annotations, indent=1)
    spec = template.get("spec") or {}
    if spec.get("initContainers"):
        describe.describe_containers(d, spec["initContainers"], [], indent=1,
                                     title="Init Containers:")
    describe.describe_containers(d, spec.get("containers") or [], [], indent=1)
    return d.render()


def revision_details(replicasets: Iterable[Obj], number: int) -> str:
    template = history(replicasets).get(number)
    if template is None:
        raise CliError("unable to find the specified revision")
    return describe_template(template)


# --- rollout undo -------------------------------------------------------------

def rollback_source(replicasets: Sequence[Obj], to_revision: int = 0) -> Obj:
    """The ReplicaSet to roll back to: that revision, or (0) the second-highest one."""
    if to_revision < 0:
        raise CliError(f"unable to find specified revision {to_revision} in history")
    numbered = [(number, rs) for rs in replicasets if (number := revision(rs)) is not None]
    if to_revision > 0:
        for number, rs in numbered:
            if number == to_revision:
                return rs
        raise CliError(f"unable to find specified revision {to_revision} in history")
    numbered.sort(key=lambda pair: pair[0], reverse=True)
    if len(numbered) < 2:
        raise CliError("no rollout history found for deployment" + _quoted_owner(replicasets))
    return numbered[1][1]


def _quoted_owner(replicasets: Sequence[Obj]) -> str:
    for rs in replicasets:
        for ref in _meta(rs).get("ownerReferences") or []:
            if ref.get("kind") == "Deployment" and ref.get("name"):
                return f' "{ref["name"]}"'
    return ""


def without_hash(template: Obj) -> Obj:
    """A copy of a pod template without the pod-template-hash label (and without a
    labels map that only held it: Kubernetes compares an empty map equal to none)."""
    copied = copy.deepcopy(template or {})
    meta = copied.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            del meta["labels"]
    return copied


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """True when two pod templates differ at most in their pod-template-hash label."""
    return without_hash(a) == without_hash(b)


def rolled_back(deployment: Obj, source: Obj) -> Obj | None:
    """The Deployment with the source ReplicaSet's template and annotations, or None
    when its template already matches (kubectl's `skipped rollback`)."""
    source_template = (source.get("spec") or {}).get("template") or {}
    spec = deployment.setdefault("spec", {})
    if equal_ignore_hash(source_template, spec.get("template") or {}):
        return None
    spec["template"] = without_hash(source_template)
    meta = deployment.setdefault("metadata", {})
    current = meta.get("annotations") or {}
    annotations = {k: v for k, v in current.items() if k in ANNOTATIONS_TO_SKIP}
    annotations.update({k: v for k, v in (_meta(source).get("annotations") or {}).items()
                        if k not in ANNOTATIONS_TO_SKIP})
    meta["annotations"] = annotations
    return deployment
