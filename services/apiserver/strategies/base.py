"""What every kind shares: the hooks the generic registry calls on each verb.

A kind's rules live in one Strategy subclass in one module of this package, as
Kubernetes keeps them in pkg/registry/<group>/<kind>/strategy.go. The registry
(services/apiserver/registry.py) is generic: it reads, merges, checks
preconditions and commits, and asks the kind's strategy what an object must
look like at each step. A hook that a kind does not override does what
Kubernetes' generic store does with no strategy of its own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

from kubelite.resources import ResourceInfo

from ..allocators import Claim, ServiceAllocator
from ..validation import Problems, check_object, unimplemented_fields

Obj = dict[str, Any]


@dataclass(frozen=True)
class Dependencies:
    """What strategies may need from the apiserver beyond the object itself."""

    allocator: ServiceAllocator
    # DefaultTolerationSeconds admission: how long pods stay on a NotReady/unreachable node.
    not_ready_toleration_seconds: int = 300
    unreachable_toleration_seconds: int = 300


class Strategy:
    """The default rules: no defaults, no per-kind checks, status set by its subresource."""

    # Spec changes bump metadata.generation (kinds with no spec/status split do not).
    tracks_generation: ClassVar[bool] = True
    # status as a new object starts with, for kinds with a status subresource
    # (what Kubernetes' typed structs serialize when empty: schema-valid).
    initial_status: ClassVar[Obj | None] = {}

    def __init__(self, info: ResourceInfo, deps: Dependencies) -> None:
        self.info = info
        self.deps = deps

    # -- create ------------------------------------------------------------------

    def prepare_for_create(self, obj: Obj) -> None:
        """Resets what a client may not set on create (status) and applies defaults."""
        if self.info.has_status and self.initial_status is not None:
            obj["status"] = copy.deepcopy(self.initial_status)
        self.defaults(obj)

    def defaults(self, obj: Obj) -> None:
        """Fills in missing fields in place, as Kubernetes' defaulting functions do."""

    async def admit(self, obj: Obj, read_all: Any) -> None:
        """A mutating admission that reads other objects (DefaultStorageClass):
        `await read_all(plural)` gives the raw objects of a cluster-scoped kind."""

    # -- update ------------------------------------------------------------------

    def prepare_for_update(self, old: Obj, new: Obj) -> None:
        """Keeps what Update may not change (status, for kinds that have one), defaults."""
        if self.info.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self.defaults(new)

    def prepare_for_status_update(self, old: Obj, obj: Obj) -> Obj:
        """The object after an UpdateStatus: the stored one with only its status replaced."""
        new = copy.deepcopy(old)
        new["status"] = obj.get("status") or {}
        return new

    # -- validation --------------------------------------------------------------

    # The rule metadata.name follows: "subdomain" (RFC 1123), "label" or "dns1035".
    name_rule: ClassVar[str] = "subdomain"

    def validate(self, obj: Obj) -> None:
        """kubelite's own checks after the schema: metadata, then `check`."""
        check_object(self.info, obj, name_rule=self.name_rule, kind_check=self.check)

    def check(self, problems: Problems, obj: Obj) -> None:
        """Adds a problem for each of the kind's own rules obj breaks (validation.check_*)."""

    def pod_specs(self, obj: Obj) -> list[tuple[str, Obj]]:
        """The pod specs obj carries, with their paths (a Pod's, or a template's)."""
        return []

    def validate_update(self, old: Obj, new: Obj) -> None:
        """The checks of validate, and that no immutable field changed."""
        problems = Problems(self.info, str(old["metadata"].get("name", "")))
        self.check_immutable(old, new, problems)
        problems.raise_if_any()

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        """Adds a problem for each immutable field new changes."""

    def warnings(self, obj: Obj) -> list[str]:
        """Warnings for the caller: fields stored that kubelite does not act on."""
        return unimplemented_fields(self.pod_specs(obj))

    # -- delete ------------------------------------------------------------------

    # Deleting marks the object Terminating and tracks it in storage, so that
    # nothing new is created inside it until it is finalized (namespaces).
    terminates: ClassVar[bool] = False

    def finalized(self, old: Obj, new: Obj) -> bool:
        """Whether the update old → new removes the last finalizer of a pending deletion."""
        meta = new["metadata"]
        return bool(old["metadata"].get("deletionTimestamp") and old["metadata"].get("finalizers")
                    and not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds"))

    def grace_period(self, old: Obj, requested: int | None) -> int:
        """Seconds a deletion waits for someone (a kubelet) to finish; 0 deletes at once."""
        return 0

    # -- allocations (ClusterIPs, NodePorts) -------------------------------------

    def claims_for_create(self, obj: Obj) -> list[Claim]:
        """Values this object must hold exclusively, claimed atomically with the write."""
        return []

    def claims_for_update(self, old: Obj, new: Obj) -> tuple[list[Claim], list[tuple[str, str]]]:
        """(claims, releases) for an update."""
        return [], []

    def releases_for_delete(self, old: Obj) -> list[tuple[str, str]]:
        """The held values a deletion gives back."""
        return []


def immutable(problems: Problems, path: str, old: Any, new: Any) -> None:
    """Adds Kubernetes' "field is immutable" problem when a value changed."""
    if old != new:
        problems.add(path, "Invalid value: field is immutable")
