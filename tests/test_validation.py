"""Unit tests of schema validation: every kind's validator resolves, and errors name paths."""

import pytest

from kubelite.errors import InvalidError
from kubelite.resources import RESOURCES, lookup
from services.apiserver.validation import resolve_schema_version, validate_schema

VERSION = resolve_schema_version("latest")


@pytest.mark.parametrize("info", RESOURCES, ids=lambda i: i.kind)
def test_every_kind_validates_a_minimal_object(info) -> None:
    """Each kind's schema, with its references inlined, accepts a minimal object."""
    obj = {"apiVersion": info.api_version, "kind": info.kind, "metadata": {"name": "x"}}
    if info.kind in ("Deployment", "ReplicaSet"):
        obj["spec"] = {"selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}},
                                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    elif info.kind == "Pod":
        obj["spec"] = {"containers": [{"name": "c", "image": "i"}]}
    elif info.kind == "HorizontalPodAutoscaler":
        obj["spec"] = {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}
    elif info.kind == "Event":
        obj["involvedObject"] = {"kind": "Pod", "name": "p"}
    elif info.kind == "StorageClass":
        obj["provisioner"] = "kubelite.io/local-path"
    validate_schema(info, obj, VERSION)


def test_deeply_nested_errors_name_their_path() -> None:
    """An error deep inside a referenced definition is reported with its full path."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "i",
                                    "ports": [{"containerPort": "eighty"}],
                                    "livenessProbe": {"httpGet": {"port": 80, "pth": "/"}}}]}}
    with pytest.raises(InvalidError) as err:
        validate_schema(lookup("pods"), pod, VERSION)
    text = str(err.value)
    assert "spec.containers[0].ports[0].containerPort" in text
    assert "spec.containers[0].livenessProbe.httpGet.pth" in text
