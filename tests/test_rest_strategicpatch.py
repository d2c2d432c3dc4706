"""Strategic merge patch (services/apiserver/rest/strategicpatch.py) on the bundled schemas:
merge keys, directives, retainKeys and element order, as kubectl sends them."""

from __future__ import annotations

import pytest

from kubelite.errors import BadRequestError
from services.apiserver.rest import openapi, strategicpatch
from services.apiserver.validation import resolve_schema_version

VERSION = resolve_schema_version("latest")
DEFS = openapi.definitions(VERSION)


def schema(name: str) -> strategicpatch.Schema:
    return strategicpatch.Schema(DEFS, DEFS[name])


DEPLOYMENT = schema("io.k8s.api.apps.v1.Deployment")
POD = schema("io.k8s.api.core.v1.Pod")


def deployment(*containers: dict) -> dict:
    return {"metadata": {"name": "d", "labels": {"a": "1"}},
            "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate",
                                                 "rollingUpdate": {"maxSurge": 1}},
                     "template": {"spec": {"containers": list(containers)}}}}


def test_containers_merge_by_name_and_maps_merge() -> None:
    original = deployment({"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
                          {"name": "b", "image": "y"})
    patch = {"metadata": {"labels": {"b": "2"}},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "a", "image": "x2", "env": [{"name": "F", "value": "2"}]}]}}}}
    out = strategicpatch.apply(original, patch, DEPLOYMENT)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b"]
    assert containers[0]["image"] == "x2"
    assert containers[0]["env"] == [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]
    assert out["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert original["spec"]["template"]["spec"]["containers"][0]["image"] == "x"  # untouched


def test_null_deletes_and_a_list_without_merge_strategy_is_replaced() -> None:
    original = deployment({"name": "a", "image": "x", "command": ["one", "two"]})
    patch = {"metadata": {"labels": {"a": None}},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "a", "command": ["three"]}]}}}}
    out = strategicpatch.apply(original, patch, DEPLOYMENT)
    assert out["metadata"]["labels"] == {}
    assert out["spec"]["template"]["spec"]["containers"][0]["command"] == ["three"]


def test_patch_delete_and_replace_directives() -> None:
    original = deployment({"name": "a", "image": "x"}, {"name": "b", "image": "y"})
    delete = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "$patch": "delete"}]}}}}
    out = strategicpatch.apply(original, delete, DEPLOYMENT)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["b"]
    replace = {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "z"}, {"$patch": "replace"}]}}}}
    out = strategicpatch.apply(original, replace, DEPLOYMENT)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "z"}]
    whole = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert strategicpatch.apply(original, whole, DEPLOYMENT)["metadata"]["labels"] == {
        "only": "this"}
    gone = {"spec": {"strategy": {"$patch": "delete"}}}
    assert "strategy" not in strategicpatch.apply(original, gone, DEPLOYMENT)["spec"]


def test_retain_keys_clears_the_fields_not_listed() -> None:
    original = deployment({"name": "a", "image": "x"})
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    out = strategicpatch.apply(original, patch, DEPLOYMENT)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_set_element_order_and_delete_from_primitive_list() -> None:
    original = deployment({"name": "a", "image": "x"}, {"name": "b", "image": "y"})
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "x2"}]}}}}
    out = strategicpatch.apply(original, patch, DEPLOYMENT)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["b", "a"]
    pod = {"metadata": {"finalizers": ["x", "y", "z"]}, "spec": {"containers": []}}
    out = strategicpatch.apply(pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["y"]}},
                               POD)
    assert out["metadata"]["finalizers"] == ["x", "z"]
    merged = strategicpatch.apply(pod, {"metadata": {"finalizers": ["w", "x"]}}, POD)
    assert merged["metadata"]["finalizers"] == ["x", "y", "z", "w"]  # a merged set


def test_ports_merge_on_container_port_and_a_missing_merge_key_is_rejected() -> None:
    original = deployment({"name": "a", "ports": [{"containerPort": 80, "name": "http"}]})
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "ports": [{"containerPort": 443, "name": "https"}]}]}}}}
    out = strategicpatch.apply(original, patch, DEPLOYMENT)
    ports = out["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert [p["containerPort"] for p in ports] == [80, 443]
    with pytest.raises(BadRequestError):
        strategicpatch.apply(original, {"spec": {"template": {"spec": {"containers": [
            {"image": "no-name"}]}}}}, DEPLOYMENT)
    with pytest.raises(BadRequestError):
        strategicpatch.apply(original, ["not", "a", "map"], DEPLOYMENT)
