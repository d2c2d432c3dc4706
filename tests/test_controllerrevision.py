"""ControllerRevision (apps/v1): the history store of DaemonSets and StatefulSets."""

from __future__ import annotations

import pytest

from kubelite.client import Client
from kubelite.errors import InvalidError
from kubelite.printing import table_cell


def revision(name: str, namespace: str, number: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                "uid": "0b6c6f9e-0000-4000-8000-000000000001", "controller": True}]},
            "data": {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}},
            "revision": number}


async def test_a_revision_is_stored_and_its_data_is_immutable(
        client: Client, namespace: str) -> None:
    created = await client.create("controllerrevisions", revision("web-1", namespace, 1))
    assert created["revision"] == 1 and created["data"]["spec"]["template"]
    changed = dict(created, data={"spec": {"template": {}}})
    with pytest.raises(InvalidError) as err:
        await client.update("controllerrevisions", changed)
    assert "data" in str(err.value) and "immutable" in str(err.value)
    renumbered = await client.update("controllerrevisions", dict(created, revision=3))
    assert renumbered["revision"] == 3  # a rollback renumbers the revision it returns to
    assert table_cell("ControllerRevision", "CONTROLLER", renumbered) == "statefulset.apps/web"
    assert table_cell("ControllerRevision", "REVISION", renumbered) == "3"


async def test_a_revision_needs_a_non_negative_number(client: Client, namespace: str) -> None:
    bad = revision("web-2", namespace, -1)
    with pytest.raises(InvalidError) as err:
        await client.create("controllerrevisions", bad)
    assert "revision" in str(err.value)
    del bad["revision"]
    with pytest.raises(InvalidError) as err:
        await client.create("controllerrevisions", bad)
    assert "revision" in str(err.value)
    assert (await client.list("controllerrevisions", namespace=namespace)).items == []
