"""Unit tests of schema validation: every kind's validator resolves, and errors name paths."""

import math

import pytest

from kubelite.errors import BadRequestError, InvalidError
from kubelite.resources import RESOURCES, lookup
from services.apiserver.decode import MAX_DEPTH, drop_nulls, loads_object
from services.apiserver.strategies import validate_stored
from services.apiserver.validation import (
    check_object,
    check_pod,
    is_quantity,
    is_rfc3339,
    resolve_schema_version,
    show,
    validate_schema,
)

VERSION = resolve_schema_version("latest")


@pytest.mark.parametrize("info", RESOURCES, ids=lambda i: i.kind)
def test_every_kind_validates_a_minimal_object(info) -> None:
    """Each kind's schema, with its references inlined, accepts a minimal object."""
    obj = {"apiVersion": info.api_version, "kind": info.kind, "metadata": {"name": "x"}}
    if info.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        obj["spec"] = {"selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}},
                                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    elif info.kind == "DaemonSet":
        obj["spec"] = {"selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}},
                                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    elif info.kind == "ReplicationController":
        obj["spec"] = {"selector": {"app": "kubia"},
                       "template": {"metadata": {"labels": {"app": "kubia"}},
                                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    elif info.kind in ("Job", "CronJob"):
        job = {"template": {"spec": {"containers": [{"name": "c", "image": "i"}],
                                     "restartPolicy": "Never"}}}
        obj["spec"] = job if info.kind == "Job" else {"schedule": "* * * * *",
                                                      "jobTemplate": {"spec": job}}
    elif info.kind == "Pod":
        obj["spec"] = {"containers": [{"name": "c", "image": "i"}]}
    elif info.kind == "HorizontalPodAutoscaler":
        obj["spec"] = {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}
    elif info.kind == "Event":
        obj["involvedObject"] = {"kind": "Pod", "name": "p"}
    elif info.kind == "StorageClass":
        obj["provisioner"] = "kubelite.io/local-path"
    elif info.kind == "ControllerRevision":
        obj.update(revision=1, data={})
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


# -- hostile input: strict decoding, formats, bounds, structured causes ---------

def _pod(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}


@pytest.mark.parametrize("body", [
    b"NaN", b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": "\\ud800"}',
    b'{"\\udc00": 1}', b"\xff", '{"a": 1}'.encode("utf-16"), b"", b"[]", b"null", b'"x"',
    b'{"a": 9223372036854775808}', b'{"a": -9223372036854775809}', b'{"a": 1e19}',
    b'{"a":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
    b"[" * 1_000_000 + b"]" * 1_000_000,
], ids=lambda b: repr(b[:24]))
def test_loads_object_refuses_what_is_not_portable_json(body: bytes) -> None:
    with pytest.raises(BadRequestError):
        loads_object(body)


def test_loads_object_keeps_int64_bounds_and_names_the_path() -> None:
    obj = loads_object(b'{"a": [9223372036854775807, -9223372036854775808, 0.5]}')
    assert obj == {"a": [2**63 - 1, -(2**63), 0.5]}
    with pytest.raises(BadRequestError) as err:
        loads_object(b'{"spec": {"ports": [{"port": 18446744073709551616}]}}')
    assert [c.field for c in err.value.causes] == ["spec.ports[0].port"]


def test_drop_nulls_treats_null_members_as_absent() -> None:
    assert drop_nulls({"a": None, "b": {"c": None, "d": 1}, "e": [None, {"f": None}]}) == \
        {"b": {"d": 1}, "e": [None, {}]}


@pytest.mark.parametrize("value,ok", [
    ("2024-01-01T00:00:00Z", True), ("2024-01-01T00:00:00.123456789+05:30", True),
    ("2024-01-01T00:00:00.5-01:00", True), ("2024-01-01 00:00:00Z", False),
    ("2024-02-30T00:00:00Z", False), ("yesterday", False), ("2024-01-01T00:00:00Z\n", False),
    ("２０２４-01-01T00:00:00Z", False), (None, True),
])
def test_rfc3339(value, ok) -> None:
    assert is_rfc3339(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("1Gi", True), ("1.5", True), ("+1", True), ("1e3", True), ("500m", True), (".5", True),
    (2, True), ("lots", False), ("1Gi\n", False), (" 1", False), ("1GB", False),
    ("١", False), (math.inf, False),
])
def test_quantity_format(value, ok) -> None:
    assert is_quantity(value) is ok


def test_show_never_echoes_long_input() -> None:
    text = show("a" * 200_000)
    assert len(text) < 120 and "more characters" in text
    assert show("abc") == '"abc"'


@pytest.mark.parametrize("pod,field", [
    (_pod(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds"),
    (_pod(terminationGracePeriodSeconds=-1), "spec.terminationGracePeriodSeconds"),
    (_pod(nodeName="Bad Node"), "spec.nodeName"),
    (_pod(containers=[{"name": "c", "image": "i", "resources": {"limits": {"cpu": "-1"}}}]),
     "spec.containers[0].resources.limits.cpu"),
    (_pod(containers=[{"name": "c", "image": "i", "ports": [{"containerPort": 0}]}]),
     "spec.containers[0].ports[0].containerPort"),
    (_pod(containers=[{"name": "c", "image": "i", "env": [{"name": "1BAD"}]}]),
     "spec.containers[0].env[0].name"),
    (_pod(containers=[{"name": "c", "image": "i", "livenessProbe": {}}]),
     "spec.containers[0].livenessProbe"),
    (_pod(tolerations=[{"operator": "Sometimes"}]), "spec.tolerations[0].operator"),
])
def test_pod_rules_raise_structured_causes(pod, field) -> None:
    with pytest.raises(InvalidError) as err:
        check_object(lookup("pods"), pod, kind_check=check_pod)
    assert field in [c.field for c in err.value.causes], err.value.causes
    assert all(c.type.startswith("FieldValue") for c in err.value.causes)


@pytest.mark.parametrize("obj,field", [
    # A valid int64 the schema lets through, beyond Kubernetes' MaxInt32 bound.
    (_pod(activeDeadlineSeconds=2**40), "spec.activeDeadlineSeconds"),
    (_pod(containers=[{"name": "c", "image": "i", "ports": [{"containerPort": 2**31}]}]),
     "spec.containers[0].ports[0].containerPort"),
    (_pod(containers=[{"name": "c", "image": "i", "resources": {"requests": {"cpu": "x"}}}]),
     "spec.containers[0].resources.requests.cpu"),
    ({**_pod(), "status": {"startTime": "now"}}, "status.startTime"),
    ({**_pod(), "status": {"podIP": "1.2.3"}}, "status.podIP"),
])
def test_schema_formats_and_ips(obj, field) -> None:
    with pytest.raises(InvalidError) as err:
        validate_stored(lookup("pods"), obj, VERSION)
    assert field in [c.field for c in err.value.causes], err.value.causes


def test_schema_errors_are_short_for_huge_values() -> None:
    pod = _pod(containers=[{"name": "c", "image": "i", "ports": [{"containerPort": "a" * 10**5}]}])
    pod["a" * 10**5] = 1
    with pytest.raises(InvalidError) as err:
        validate_schema(lookup("pods"), pod, VERSION)
    assert len(str(err.value)) <= 1024
    assert "a" * 100 not in str(err.value)
    assert all(len(c.message) <= 256 and len(c.field) <= 256 for c in err.value.causes)


def test_null_list_items_are_refused() -> None:
    with pytest.raises(InvalidError) as err:
        validate_schema(lookup("endpoints"), {"apiVersion": "v1", "kind": "Endpoints",
                                              "metadata": {"name": "e"},
                                              "subsets": [{"ports": [None]}]}, VERSION)
    assert [c.field for c in err.value.causes] == ["subsets[0].ports[0]"]
