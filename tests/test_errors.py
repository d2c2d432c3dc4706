"""Errors with structure: every error from a real apiserver carries Kubernetes'
reason and causes in its gRPC status details, and the client rebuilds them."""

from __future__ import annotations

import grpc
import pytest

from kubelite import errors
from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.client import Client

from .helpers import configmap


async def test_validation_error_carries_reason_and_field_causes(client: Client,
                                                                namespace: str) -> None:
    """An invalid object comes back Invalid, with one cause per field at fault."""
    bad = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": namespace},
           "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"contianers": []}}}}
    with pytest.raises(errors.InvalidError) as caught:
        await client.create("deployments", bad)
    err = caught.value
    assert err.reason == "Invalid" and err.from_server and not err.retryable
    fields = {c.field for c in err.causes}
    assert "spec.replicas" in fields, err.causes
    assert any(c.field.endswith("contianers") for c in err.causes), err.causes
    assert all(c.type.startswith("FieldValue") for c in err.causes), err.causes


async def test_each_error_class_has_its_kubernetes_reason(client: Client,
                                                          namespace: str) -> None:
    """NotFound, AlreadyExists, Conflict and BadRequest each come back as their class."""
    with pytest.raises(errors.NotFoundError) as missing:
        await client.get("configmaps", "nope", namespace=namespace)
    assert missing.value.reason == "NotFound"
    created = await client.create("configmaps", configmap("c", namespace))
    with pytest.raises(errors.AlreadyExistsError) as dup:
        await client.create("configmaps", configmap("c", namespace))
    assert dup.value.reason == "AlreadyExists"
    stale = dict(created, data={"k": "v"})
    stale["metadata"] = dict(created["metadata"], resourceVersion="1")
    with pytest.raises(errors.ConflictError) as conflict:
        await client.update("configmaps", stale)
    assert conflict.value.reason == "Conflict" and conflict.value.retryable
    with pytest.raises(errors.BadRequestError) as bad:
        await client.list("pods", namespace=namespace, label_selector="a in (")
    assert bad.value.reason in ("BadRequest", "Invalid")


async def test_terminating_namespace_is_a_cause_not_a_message(client: Client) -> None:
    """A create in a terminating namespace is Forbidden with a NamespaceTerminating cause."""
    await client.create("namespaces", {"metadata": {"name": "going-away"}})
    await client.create("pods", {"metadata": {"name": "p", "namespace": "going-away"},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}})
    await client.delete("namespaces", "going-away")
    with pytest.raises(errors.PreconditionFailedError) as caught:
        await client.create("configmaps", configmap("late", "going-away"))
    assert caught.value.reason == "Forbidden"
    assert errors.is_namespace_terminating(caught.value)


def test_raw_stub_callers_find_the_status_in_the_trailer(shared_apiserver) -> None:
    """A harness on the raw stubs reads the same Status from grpc-status-details-bin."""
    with grpc.insecure_channel(shared_apiserver.target) as channel:
        stub = api_pb2_grpc.ApiStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Get(api_pb2.GetRequest(resource="pods", namespace="default", name="none"),
                     timeout=10)
    rebuilt = errors.from_rpc_error(caught.value)
    assert isinstance(rebuilt, errors.NotFoundError) and rebuilt.from_server
    assert rebuilt.status()["code"] == 404 and rebuilt.status()["reason"] == "NotFound"


def test_retryable_errors_are_the_transient_ones() -> None:
    """UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED and deadlines retry; the rest do not."""
    retryable = {cls.__name__ for cls in vars(errors).values()
                 if isinstance(cls, type) and issubclass(cls, errors.ApiError) and cls.retryable}
    assert retryable == {"ConflictError", "TooManyRequestsError", "UnavailableError",
                         "DeadlineExceededError"}


def test_messages_are_clipped_to_about_a_kilobyte() -> None:
    """A huge value never comes back whole inside an error."""
    err = errors.InvalidError("x" * 200_000, field="metadata.name")
    assert len(str(err)) <= errors.MAX_MESSAGE
    assert all(len(c.message) <= errors.MAX_CAUSE_MESSAGE for c in err.causes)
    assert len(errors.to_trailing_metadata(err)[0][1]) < 4096
