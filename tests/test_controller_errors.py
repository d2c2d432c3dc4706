"""A permanent error stops a controller's retries until the object changes.

A Deployment whose name is so long that its ReplicaSet's name (name-hash)
cannot be valid makes every sync fail with Invalid, which no retry can fix.
The real controller manager records one Warning Event SyncFailed (its count
folds repeats), makes no rate-limited retries, and syncs again only when the
Deployment is changed.
"""

from __future__ import annotations

import asyncio
import uuid

from kubelite.client import Client
from kubelite.testing import eventually

from .test_controller import ControllerManager, deployment, wait_leader


async def sync_failed_events(client: Client, namespace: str, name: str) -> list[dict]:
    return [e for e in (await client.list("events", namespace=namespace)).items
            if e["involvedObject"].get("name") == name and e["reason"] == "SyncFailed"]


async def test_permanent_error_records_one_warning_and_does_not_requeue(
        shared_apiserver, client: Client, namespace: str, tmp_path) -> None:
    lease = f"kcm-{uuid.uuid4().hex[:8]}"
    manager = ControllerManager(shared_apiserver.target, tmp_path, lease=lease,
                                identity="kcm-permanent", extra=("--controllers", "deployment"))
    manager.start()
    try:
        wait_leader(manager, lease)
        name = "d" * 245  # valid; "<name>-<hash>" for its ReplicaSet is over 253
        manifest = deployment("long", namespace, 1)  # labelled app=long
        manifest["metadata"]["name"] = name
        await client.create("deployments", manifest)

        async def warned() -> list[dict]:
            return await sync_failed_events(client, namespace, name)

        [event] = await eventually(warned, what="a SyncFailed Warning Event")
        assert event["type"] == "Warning"
        assert "Invalid" in event["message"] or "invalid" in event["message"]
        await asyncio.sleep(1.5)
        [event] = await sync_failed_events(client, namespace, name)
        # The failed sync writes the Deployment's Progressing condition once, and
        # that change is one more (equally failing) sync; then nothing changes.
        settled = event["count"]
        assert settled <= 2
        await asyncio.sleep(2.0)  # a retry storm would show up within this
        [event] = await sync_failed_events(client, namespace, name)
        assert event["count"] == settled

        def metric(metric_name: str) -> float:
            return manager.metric(metric_name, 'controller="deployment"') or 0.0

        assert manager.metric("workqueue_retries_total", 'name="deployment"') == 0.0
        permanent = metric("controller_reconcile_permanent_errors_total")
        assert permanent >= 1
        assert metric("controller_reconcile_errors_total") == permanent

        # A change is a new reason to look: one more sync, which fails the same way.
        await client.patch("deployments", name, {"spec": {"replicas": 2}}, namespace=namespace)

        async def counted_again() -> bool:
            events = await sync_failed_events(client, namespace, name)
            return bool(events) and events[0]["count"] > settled

        await eventually(counted_again, what="the same Warning counted again")
        assert metric("controller_reconcile_permanent_errors_total") > permanent
        assert manager.metric("workqueue_retries_total", 'name="deployment"') == 0.0
    finally:
        manager.stop()
