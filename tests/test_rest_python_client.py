"""The official `kubernetes` Python client against kubelite's REST API: CRUD and watch of
pods, and a list-then-watch loop that loses no event across an apiserver restart and a
trimmed history (410 Gone)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException

from kubelite.localcluster import free_port


def wait_for(check, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def cluster(apiserver_factory) -> Iterator[tuple[k8s.CoreV1Api, Any]]:
    port = free_port()
    api = apiserver_factory("--rest-listen", f"127.0.0.1:{port}", "--history", "30",
                            "--watch-cache-size", "30")
    config = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    config.retries = False
    with k8s.ApiClient(config) as api_client:
        yield k8s.CoreV1Api(api_client), api


def pod(name: str, labels: dict[str, str] | None = None) -> k8s.V1Pod:
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name, labels=labels or {}),
                     spec=k8s.V1PodSpec(containers=[k8s.V1Container(
                         name="main", image="busybox:1.36", command=["sleep", "3600"])]))


def make_namespace(v1: k8s.CoreV1Api) -> str:
    name = f"py-{uuid.uuid4().hex[:8]}"
    v1.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def test_list_create_patch_delete_and_watch_pods(cluster) -> None:
    v1, _ = cluster
    ns = make_namespace(v1)
    start = v1.list_namespaced_pod(ns).metadata.resource_version
    created = v1.create_namespaced_pod(ns, pod("a", {"app": "x"}))
    assert created.metadata.uid and created.spec.restart_policy == "Always"
    v1.create_namespaced_pod(ns, pod("b"))
    listed = v1.list_namespaced_pod(ns, label_selector="app=x")
    assert [p.metadata.name for p in listed.items] == ["a"]
    patched = v1.patch_namespaced_pod("a", ns, {"metadata": {"labels": {"tier": "web"}}})
    assert patched.metadata.labels == {"app": "x", "tier": "web"}
    assert v1.read_namespaced_pod("a", ns).metadata.labels["tier"] == "web"
    v1.delete_namespaced_pod("b", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_pod("b", ns)
    assert missing.value.status == 404
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_pod(ns, pod("a"))
    assert exists.value.status == 409

    w = watch.Watch()
    seen = [(e["type"], e["object"].metadata.name)
            for e in w.stream(v1.list_namespaced_pod, ns, resource_version=start,
                              timeout_seconds=1)]
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


class Mirror:
    """A list-then-watch loop as informers run it: relists on 410, retries on errors."""

    def __init__(self, v1: k8s.CoreV1Api, ns: str) -> None:
        self.v1, self.ns = v1, ns
        self.state: dict[str, str] = {}  # name -> resourceVersion
        self.deleted: set[str] = set()
        self.relists = 0
        self.reconnects = 0
        self.paused = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.rv = self._relist()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _relist(self) -> str:
        listed = self.v1.list_namespaced_pod(self.ns)
        with self.lock:
            names = {p.metadata.name: p.metadata.resource_version for p in listed.items}
            for gone in set(self.state) - set(names):
                self.deleted.add(gone)
                del self.state[gone]
            self.state.update(names)
        return listed.metadata.resource_version

    def _run(self) -> None:
        w = watch.Watch()
        while not self.stopped.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            try:
                for event in w.stream(self.v1.list_namespaced_pod, self.ns,
                                      resource_version=self.rv, timeout_seconds=1,
                                      allow_watch_bookmarks=True):
                    meta = event["object"].metadata
                    with self.lock:
                        if event["type"] == "DELETED":
                            self.state.pop(meta.name, None)
                            self.deleted.add(meta.name)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self.state[meta.name] = meta.resource_version
                    self.rv = meta.resource_version
            except ApiException as err:
                if err.status != 410:
                    raise
                self.relists += 1
                self.rv = self._retrying(self._relist)
            except (urllib3.exceptions.HTTPError, ConnectionError, OSError):
                self.reconnects += 1
                time.sleep(0.2)

    def _retrying(self, fn):
        while True:
            try:
                return fn()
            except (urllib3.exceptions.HTTPError, ConnectionError, OSError):
                time.sleep(0.2)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.state)


def server_state(v1: k8s.CoreV1Api, ns: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.resource_version
            for p in v1.list_namespaced_pod(ns).items}


def test_watch_loop_survives_a_restart_and_a_trimmed_history(cluster) -> None:
    v1, api = cluster
    ns = make_namespace(v1)
    mirror = Mirror(v1, ns)
    mirror.thread.start()
    try:
        for i in range(4):
            v1.create_namespaced_pod(ns, pod(f"p{i}"))
        wait_for(lambda: mirror.snapshot() == server_state(v1, ns), what="the first pods")

        api.restart()  # SIGKILL, as a crash; the watch's connection drops
        for i in range(4, 7):
            v1.create_namespaced_pod(ns, pod(f"p{i}"))
        v1.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"after": "restart"}}})
        wait_for(lambda: mirror.snapshot() == server_state(v1, ns), what="the restart")
        assert mirror.reconnects >= 1

        mirror.paused.set()
        time.sleep(1.5)  # its current watch ends (timeoutSeconds=1) with rv where it was
        for i in range(40):  # history is 30 revisions: the mirror's rv is trimmed
            v1.patch_namespaced_pod("p2", ns, {"metadata": {"labels": {"n": str(i)}}})
        v1.delete_namespaced_pod("p0", ns, grace_period_seconds=0)
        v1.create_namespaced_pod(ns, pod("late"))
        mirror.paused.clear()
        wait_for(lambda: mirror.snapshot() == server_state(v1, ns), what="the trimmed history")
        assert mirror.relists >= 1
        assert "p0" in mirror.deleted and "late" in mirror.snapshot()
    finally:
        mirror.stopped.set()
        mirror.thread.join(10)
