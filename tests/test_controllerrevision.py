"""ControllerRevision (apps/v1): the history store of DaemonSets and StatefulSets."""

from __future__ import annotations

import pytest

from kubelite.client import Client
from kubelite.errors import InvalidError
from kubelite.printing import table_cell
from services.controller import history


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


# -- services/controller/history.py against a real apiserver -------------------

OWNER = {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "agent", "uid": "0b6c6f9e-0000-4000-8000-0000000000d5"}}


def template(image: str) -> dict:
    return {"metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "main", "image": image}]}}


def test_revision_data_round_trips_a_template_and_hashes_stably() -> None:
    data = history.revision_data(template("a:1"))
    assert data["spec"]["template"]["$patch"] == "replace"
    assert history.template_of({"data": data}) == template("a:1")
    again = history.revision_data(dict(reversed(list(template("a:1").items()))))
    assert history.hash_revision(data) == history.hash_revision(again)
    assert history.hash_revision(data) != history.hash_revision(data, 1)
    rev = history.new_revision(OWNER | {"metadata": OWNER["metadata"] | {"namespace": "n"}},
                               data, 4, {"app": "agent"})
    h = history.hash_revision(data)
    assert rev["metadata"]["name"] == f"agent-{h}"
    assert rev["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": h}
    assert rev["metadata"]["ownerReferences"][0]["controller"] is True
    assert rev["revision"] == 4


def test_history_orders_numbers_and_compares_revisions() -> None:
    other = {"metadata": {"uid": "someone-else"}}
    mine = [history.new_revision(OWNER, history.revision_data(template(f"a:{i}")), n, {})
            for i, n in ((1, 3), (2, 1), (3, 2))]
    foreign = history.new_revision(other, history.revision_data(template("a:9")), 7, {})
    assert history.owned_revisions([*mine, foreign], OWNER) == mine
    assert [r["revision"] for r in history.sort_revisions(mine)] == [1, 2, 3]
    assert history.next_revision(mine) == 4 and history.next_revision([]) == 1
    twin = history.new_revision(OWNER, history.revision_data(template("a:2")), 9, {})
    assert history.find_equal_revisions(mine, twin) == [mine[1]]


async def test_create_revision_finds_equal_data_and_steps_past_a_collision(
        client: Client, namespace: str) -> None:
    owner = {**OWNER, "metadata": {**OWNER["metadata"], "namespace": namespace}}
    data = history.revision_data(template("a:1"))
    rev = history.new_revision(owner, data, 1, {"app": "agent"})
    stored, count = await history.create_revision(client, rev, 0)
    assert count == 0 and stored["metadata"]["name"] == rev["metadata"]["name"]
    again, count = await history.create_revision(client, rev, 0)
    assert count == 0 and again["metadata"]["uid"] == stored["metadata"]["uid"]
    # Other data under the same name is a collision: the count goes up, the name changes.
    squatter = history.new_revision(owner, history.revision_data(template("b:1")), 1, {})
    squatter["metadata"]["name"] = f"agent-{history.hash_revision(data, 1)}"
    await client.create("controllerrevisions", squatter)
    clash = history.new_revision(owner, data, 2, {})
    clash["data"]["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    squatter2 = dict(squatter, metadata=dict(squatter["metadata"],
                                             name=f"agent-{history.hash_revision(clash['data'])}"))
    await client.create("controllerrevisions", squatter2)
    made, count = await history.create_revision(client, clash, 0)
    assert count >= 1
    assert made["metadata"]["name"] == f"agent-{history.hash_revision(clash['data'], count)}"
    assert made["data"] == clash["data"]
    renumbered = await history.update_revision_number(client, made, 5)
    assert renumbered["revision"] == 5


async def test_truncate_history_keeps_the_live_and_the_newest(
        client: Client, namespace: str) -> None:
    owner = {**OWNER, "metadata": {**OWNER["metadata"], "namespace": namespace}}
    stored = []
    for n in range(1, 6):
        rev = history.new_revision(owner, history.revision_data(template(f"a:{n}")), n, {})
        stored.append((await history.create_revision(client, rev, 0))[0])
    live = {stored[0]["metadata"]["name"]}
    await history.truncate_history(client, stored, live, 2)
    left = (await client.list("controllerrevisions", namespace=namespace)).items
    assert sorted(r["revision"] for r in left) == [1, 4, 5]
