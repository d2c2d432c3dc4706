"""The per-kind strategies: one per served kind, and the generic registry has no
kind-specific branches left (pure logic, no processes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubelite.resources import RESOURCES
from services.apiserver import strategies
from services.apiserver.allocators import ServiceAllocator

APISERVER = Path(__file__).parent.parent / "services" / "apiserver"


def _built() -> dict[str, strategies.Strategy]:
    return strategies.build(allocator=ServiceAllocator("127.96.0.0/16", (30000, 32767)))


def test_every_served_kind_has_exactly_one_strategy() -> None:
    """STRATEGIES names each kind of the resource table, and nothing else."""
    assert set(strategies.STRATEGIES) == {info.kind for info in RESOURCES}
    built = _built()
    assert all(built[info.kind].info is info for info in RESOURCES)


@pytest.mark.parametrize("module", ["registry.py", "validation.py", "defaults.py"])
def test_generic_layers_do_not_branch_on_kind(module: str) -> None:
    """A kind's rules live in its strategy, not in `if kind ==` branches of the generic
    registry, validation or defaults (the strategy says which checks apply)."""
    text = (APISERVER / module).read_text()
    branches = re.findall(r"\bkind\s*(?:==|!=)\s*[\"']|\bkind\s+(?:not\s+)?in\s*\(\s*[\"']",
                          text)
    assert branches == []


def test_pod_strategy_resets_status_and_defaults_the_spec() -> None:
    """A created pod is Pending with its QoS class, whatever status the client sent."""
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running"},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}
    _built()["Pod"].prepare_for_create(pod)
    assert pod["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_update_keeps_the_stored_status_and_status_update_keeps_the_spec() -> None:
    """Update ignores status; UpdateStatus takes only status."""
    rs = _built()["ReplicaSet"]
    old = {"metadata": {"name": "r"}, "spec": {"replicas": 1}, "status": {"replicas": 1}}
    new = {"metadata": {"name": "r"}, "spec": {"replicas": 3}, "status": {"replicas": 9}}
    rs.prepare_for_update(old, new)
    assert new["status"] == {"replicas": 1} and new["spec"]["replicas"] == 3
    after = rs.prepare_for_status_update(old, {"spec": {"replicas": 7},
                                               "status": {"replicas": 2}})
    assert after["spec"] == {"replicas": 1} and after["status"] == {"replicas": 2}


def test_data_kinds_have_no_generation() -> None:
    """ConfigMap, Secret, Event, Endpoints, ControllerRevision and StorageClass have no spec,
    so no metadata.generation."""
    built = _built()
    assert [k for k, s in built.items() if not s.tracks_generation] == [
        "Endpoints", "Event", "ConfigMap", "Secret", "ControllerRevision", "StorageClass"]
