"""Unit tests of the kubelet's pure logic: back-off, status and phase, env, IPs."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.kubelet.backoff import CrashLoopBackoff, go_duration
from services.kubelet.config import capacity, default_pod_cidr, parse_labels, parse_taints
from services.kubelet.envvars import EnvError, build_env, expand, expand_command, service_env
from services.kubelet.ipam import PodCIDRExhausted, PodIPAllocator
from services.kubelet.logs import pick_instance
from services.kubelet.node import ready_conditions
from services.kubelet.pod_sync import (
    admission_failure,
    container_hash,
    grace_period,
    instances_by_name,
)
from services.kubelet.prober import resolve_port
from services.kubelet.runtime import Container, ContainerState
from services.kubelet.runtime_process import tail_offset
from services.kubelet.status import ContainerView, pod_phase, pod_status, should_restart


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def container(cid: str = "c1", *, state: ContainerState = ContainerState.RUNNING,
              restart_count: int = 0, exit_code: int | None = None, reason: str = "",
              started: float = 100.0, finished: float | None = None,
              name: str = "main") -> Container:
    return Container(id=cid, pod_uid="u1", pod_namespace="ns", pod_name="p", name=name,
                     image="img", restart_count=restart_count, state=state, created_at=started,
                     started_at=started, finished_at=finished, exit_code=exit_code,
                     reason=reason)


def exited(cid: str, code: int, *, restart_count: int = 0, finished: float = 110.0) -> Container:
    return container(cid, state=ContainerState.EXITED, restart_count=restart_count,
                     exit_code=code, reason="Completed" if code == 0 else "Error",
                     finished=finished)


def pod(restart_policy: str = "Always", *, containers: int = 1) -> dict:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "x"},
                     "annotations": {"note": "hi"}},
        "spec": {"nodeName": "n1", "restartPolicy": restart_policy,
                 "containers": [{"name": f"c{i}", "image": "img", "command": ["x"]}
                                for i in range(containers)]},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


# -- CrashLoopBackOff --------------------------------------------------------------


def test_backoff_first_restart_is_immediate_then_doubles_to_the_cap() -> None:
    """The first restart waits nothing; each later one waits twice as long, capped."""
    clock = Clock()
    b = CrashLoopBackoff(base=10, cap=300, reset=600, clock=clock)
    key = ("u1", "main")
    assert b.remaining(key, clock.now) == 0
    delays = []
    for _ in range(7):
        delays.append(b.next(key, clock.now))
        clock.now += 1  # the container ran for a second, then exited
        finished = clock.now
        assert b.remaining(key, finished) == pytest.approx(delays[-1])
        clock.now += delays[-1]
        assert b.remaining(key, finished) == 0
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_backoff_resets_after_a_long_run() -> None:
    """A container that ran longer than `reset` before failing starts over at base."""
    clock = Clock()
    b = CrashLoopBackoff(base=10, cap=300, reset=600, clock=clock)
    key = ("u1", "main")
    for _ in range(4):
        b.next(key, clock.now)
    assert b.get(key) == 80
    clock.now += 601
    assert b.remaining(key, clock.now) == 0
    assert b.next(key, clock.now) == 10


def test_backoff_forgets_a_pods_entries() -> None:
    b = CrashLoopBackoff(base=1, cap=10, reset=60)
    b.next(("u1", "a"), 0)
    b.next(("u2", "a"), 0)
    b.forget(lambda key: key[0] == "u1")
    assert b.get(("u1", "a")) == 0 and b.get(("u2", "a")) == 1


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (20, "20s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (0.2, "200ms"),
    (0.4, "400ms"), (1.6, "1.6s"), (3600, "1h0m0s"), (0, "0s"),
])
def test_go_duration_prints_like_go(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# -- phase and status --------------------------------------------------------------


@pytest.mark.parametrize(("policy", "restart"), [
    ("Always", {0: True, 1: True}), ("OnFailure", {0: False, 1: True}),
    ("Never", {0: False, 1: False}),
])
def test_restart_policy_decides_restarts(policy: str, restart: dict[int, bool]) -> None:
    for code, expected in restart.items():
        assert should_restart(policy, code) is expected


def _cs(state: dict, last: dict | None = None) -> dict:
    return {"state": state, "lastState": last or {}}


RUNNING = {"running": {}}
WAITING = {"waiting": {"reason": "ContainerCreating"}}
OK = {"terminated": {"exitCode": 0}}
FAIL = {"terminated": {"exitCode": 1}}


@pytest.mark.parametrize(("policy", "statuses", "phase"), [
    ("Always", [], "Pending"),
    ("Always", [_cs(WAITING)], "Pending"),
    ("Always", [_cs(RUNNING), _cs(WAITING)], "Pending"),
    ("Always", [_cs(RUNNING)], "Running"),
    ("Always", [_cs(WAITING, FAIL)], "Running"),  # CrashLoopBackOff
    ("Always", [_cs(OK)], "Running"),
    ("Never", [_cs(OK), _cs(OK)], "Succeeded"),
    ("Never", [_cs(OK), _cs(FAIL)], "Failed"),
    ("Never", [_cs(RUNNING), _cs(FAIL)], "Running"),
    ("OnFailure", [_cs(OK)], "Succeeded"),
    ("OnFailure", [_cs(WAITING, FAIL)], "Running"),
    ("OnFailure", [_cs(FAIL)], "Running"),
])
def test_pod_phase_follows_the_kubelets_get_phase(policy: str, statuses: list,
                                                  phase: str) -> None:
    assert pod_phase(policy, statuses) == phase


def test_running_ready_pod_status() -> None:
    """A running, ready container makes the pod Running with every condition True."""
    view = ContainerView(name="c0", image="img", current=container(), ready=True, started=True)
    status = pod_status(pod(), [view], pod_ip="127.11.0.2", host_ip="127.0.0.1",
                        scheme="process", now="2026-01-01T00:00:00Z")
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.11.0.2" and status["podIPs"] == [{"ip": "127.11.0.2"}]
    assert status["hostIP"] == "127.0.0.1" and status["qosClass"] == "BestEffort"
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"Initialized": "True", "Ready": "True", "ContainersReady": "True",
                     "PodScheduled": "True"}
    cs = status["containerStatuses"][0]
    assert cs["state"] == {"running": {"startedAt": "1970-01-01T00:01:40Z"}}
    assert cs["containerID"] == "process://c1" and cs["imageID"] == ""
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0 and cs["lastState"] == {}


def test_unready_container_makes_pod_not_ready_and_keeps_transition_times() -> None:
    p = pod()
    view = ContainerView(name="c0", image="img", current=container(), ready=True)
    first = pod_status(p, [view], pod_ip="", host_ip="h", scheme="process", now="T1")
    p["status"] = first
    again = pod_status(p, [view], pod_ip="", host_ip="h", scheme="process", now="T2")
    assert again == first  # nothing changed: no transition time moves
    p["status"] = again
    unready = ContainerView(name="c0", image="img", current=container(), ready=False)
    status = pod_status(p, [unready], pod_ip="", host_ip="h", scheme="process", now="T3")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["lastTransitionTime"] == "T3"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [c0]"
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["lastTransitionTime"] == "T1"


def test_crash_loop_status_shows_waiting_and_the_last_termination() -> None:
    cur = exited("c2", 1, restart_count=3)
    view = ContainerView(name="c0", image="img", current=cur, previous=exited("c1", 1),
                         waiting_reason="CrashLoopBackOff", waiting_message="back-off 40s ...")
    status = pod_status(pod(), [view], pod_ip="", host_ip="h", scheme="process", now="T")
    cs = status["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": "back-off 40s ..."}}
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["containerID"] == "process://c2"
    assert cs["restartCount"] == 3 and not cs["ready"] and "containerID" not in cs
    assert status["phase"] == "Running"


def test_completed_pod_is_succeeded_and_stays_terminal() -> None:
    p = pod("Never")
    view = ContainerView(name="c0", image="img", current=exited("c1", 0))
    status = pod_status(p, [view], pod_ip="", host_ip="h", scheme="process", now="T")
    assert status["phase"] == "Succeeded"
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PodCompleted"
    p["status"] = status
    view = ContainerView(name="c0", image="img", current=container("c9"))
    assert pod_status(p, [view], pod_ip="", host_ip="h", scheme="p", now="T")["phase"] == \
        "Succeeded"


def test_terminating_pod_is_judged_as_if_nothing_restarts() -> None:
    view = ContainerView(name="c0", image="img", current=exited("c1", 143))
    status = pod_status(pod("Always"), [view], pod_ip="", host_ip="h", scheme="process",
                        now="T", terminating=True)
    assert status["phase"] == "Failed"


def test_not_yet_created_container_is_waiting_container_creating() -> None:
    status = pod_status(pod(), [ContainerView(name="c0", image="img")], pod_ip="",
                        host_ip="h", scheme="process", now="T")
    assert status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    assert status["phase"] == "Pending"


def test_scheduler_conditions_are_kept() -> None:
    p = pod()
    p["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                  "lastTransitionTime": "T0"},
                                 {"type": "Custom", "status": "True"}]
    status = pod_status(p, [ContainerView(name="c0", image="img")], pod_ip="", host_ip="h",
                        scheme="process", now="T")
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["PodScheduled"]["lastTransitionTime"] == "T0" and "Custom" in by_type


# -- env ---------------------------------------------------------------------------


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("cost $5 $(A", env) == "cost $5 $(A"


def test_env_has_pod_info_field_refs_and_expansion() -> None:
    p = pod()
    cspec = {"name": "c0", "command": ["echo", "$(GREETING)"], "args": ["$(POD_IP)"],
             "resources": {"limits": {"memory": "64Mi"}},
             "env": [
                 {"name": "GREETING", "value": "hello $(POD_NAME)"},
                 {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "MY_NS",
                  "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                 {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                 {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "MY_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                 {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "APP",
                  "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                     "resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                 {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
             ]}
    env = build_env(p, cspec, pod_ip="127.11.0.7", host_ip="10.0.0.1", node_name="n1",
                    configmaps={"cfg": {"k": "v"}}, allocatable={"cpu": "2"},
                    base={"PATH": "/bin", "HOME": "/root"})
    got = dict(env)
    assert got["POD_IP"] == got["MY_IP"] == "127.11.0.7"
    assert got["POD_NAME"] == got["MY_NAME"] == "web"
    assert got["POD_NAMESPACE"] == got["MY_NS"] == "ns"
    assert got["NODE_NAME"] == got["MY_NODE"] == "n1"
    assert got["MY_UID"] == "u1" and got["MY_HOST"] == "10.0.0.1" and got["APP"] == "x"
    assert got["GREETING"] == "hello web" and got["MEM"] == "64" and got["CPU"] == "2"
    assert got["CM"] == "v" and got["PATH"] == "/bin" and got["HOSTNAME"] == "web"
    assert expand_command(cspec, env) == (["echo", "hello web"], ["127.11.0.7"])


@pytest.mark.parametrize("source", [
    {"fieldRef": {"fieldPath": "spec.nonsense"}},
    {"configMapKeyRef": {"name": "missing", "key": "k"}},
    {"configMapKeyRef": {"name": "cfg", "key": "missing"}},
    {"secretKeyRef": {"name": "s", "key": "k"}},
])
def test_unresolvable_env_is_a_config_error(source: dict) -> None:
    cspec = {"name": "c0", "env": [{"name": "X", "valueFrom": source}]}
    with pytest.raises(EnvError):
        build_env(pod(), cspec, pod_ip="", host_ip="", node_name="n", configmaps={
            "cfg": {"k": "v"}, "missing": None})


def test_optional_refs_may_be_missing() -> None:
    cspec = {"name": "c0", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k",
                                                        "optional": True}}},
        {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                                                     "optional": True}}}]}
    got = dict(build_env(pod(), cspec, pod_ip="", host_ip="", node_name="n",
                         configmaps={"m": None}))
    assert "X" not in got and "Y" not in got


def test_service_env_vars() -> None:
    svc = {"metadata": {"name": "redis-main"},
           "spec": {"clusterIP": "10.96.0.11",
                    "ports": [{"name": "db", "port": 6379, "protocol": "TCP"}]}}
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}
    got = dict(service_env([svc, headless]))
    assert got["REDIS_MAIN_SERVICE_HOST"] == "10.96.0.11"
    assert got["REDIS_MAIN_SERVICE_PORT"] == "6379"
    assert got["REDIS_MAIN_SERVICE_PORT_DB"] == "6379"
    assert got["REDIS_MAIN_PORT"] == "tcp://10.96.0.11:6379"
    assert got["REDIS_MAIN_PORT_6379_TCP_ADDR"] == "10.96.0.11"
    assert not any(k.startswith("H_") for k in got)


# -- pod IPs -----------------------------------------------------------------------


def test_pod_ips_are_distinct_stable_and_not_reused_at_once() -> None:
    ipam = PodIPAllocator("127.11.0.0/16")
    a, b = ipam.allocate("a"), ipam.allocate("b")
    assert (a, b) == ("127.11.0.1", "127.11.0.2")
    assert ipam.allocate("a") == a
    ipam.release("a")
    assert ipam.allocate("c") == "127.11.0.3"  # round robin: a's address rests


def test_pod_ips_survive_a_restart_through_reserve() -> None:
    ipam = PodIPAllocator("127.11.0.0/16")
    assert ipam.reserve("old", "127.11.0.1")
    assert not ipam.reserve("other", "127.11.0.1")
    assert not ipam.reserve("outside", "10.0.0.1")
    assert ipam.allocate("new") == "127.11.0.2"
    assert ipam.allocate("wants", preferred="127.11.0.9") == "127.11.0.9"
    assert ipam.allocate("clash", preferred="127.11.0.9") != "127.11.0.9"


def test_pod_cidr_exhaustion() -> None:
    ipam = PodIPAllocator("127.11.0.0/30")
    ipam.allocate("a")
    ipam.allocate("b")
    with pytest.raises(PodCIDRExhausted):
        ipam.allocate("c")


def test_default_pod_cidr_is_a_loopback_slash_16_per_node() -> None:
    cidr = default_pod_cidr("node-0")
    assert cidr.startswith("127.") and cidr.endswith(".0.0/16")
    assert cidr == default_pod_cidr("node-0")


# -- smaller pieces ----------------------------------------------------------------


def test_flags_parse_labels_taints_and_capacity() -> None:
    assert parse_labels("a=1, b=2") == {"a": "1", "b": "2"}
    assert parse_taints("gpu=yes:NoSchedule,spot:PreferNoSchedule") == (
        {"key": "gpu", "value": "yes", "effect": "NoSchedule"},
        {"key": "spot", "effect": "PreferNoSchedule"})
    with pytest.raises(ValueError):
        parse_taints("bad")
    assert capacity("1500m", "4Gi", 20) == {"cpu": "1500m", "memory": "4Gi", "pods": "20"}
    host = capacity("", "", 110)
    assert int(host["cpu"]) >= 1 and host["memory"].endswith(("Ki", "Mi", "Gi"))


def test_node_conditions_keep_transition_times() -> None:
    first = ready_conditions(None, "T1")
    assert {c["type"]: c["status"] for c in first}["Ready"] == "True"
    again = ready_conditions(first, "T2")
    ready = next(c for c in again if c["type"] == "Ready")
    assert ready["lastHeartbeatTime"] == "T2" and ready["lastTransitionTime"] == "T1"
    assert ready["reason"] == "KubeletReady"


def test_tail_offset_counts_lines_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"one\ntwo\nthree\n")
    assert log.read_bytes()[tail_offset(log, 2):] == b"two\nthree\n"
    assert log.read_bytes()[tail_offset(log, 10):] == b"one\ntwo\nthree\n"
    assert log.read_bytes()[tail_offset(log, 0):] == b""
    log.write_bytes(b"one\ntwo")
    assert log.read_bytes()[tail_offset(log, 1):] == b"two"


def test_logs_read_the_instance_the_status_names() -> None:
    old, cur = exited("c1", 1), container("c2", restart_count=1)
    status = {"state": {"running": {}}, "containerID": "process://c2",
              "lastState": {"terminated": {"containerID": "process://c1"}}}
    assert pick_instance(status, [old, cur], previous=False) is cur
    assert pick_instance(status, [old, cur], previous=True) is old
    backing_off = {"state": {"waiting": {}},
                   "lastState": {"terminated": {"containerID": "process://c2"}}}
    dead = exited("c2", 1, restart_count=1)
    assert pick_instance(backing_off, [old, dead], previous=False) is dead
    assert pick_instance(None, [cur], previous=True) is None


def test_instances_are_ordered_by_restart_count() -> None:
    a, b = exited("a", 1), container("b", restart_count=1)
    assert instances_by_name([b, a]) == {"main": [a, b]}


def test_named_probe_ports_resolve_through_the_container() -> None:
    spec = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", spec) == 8080 and resolve_port(9000, spec) == 9000
    assert resolve_port("81", spec) == 81
    with pytest.raises(ValueError):
        resolve_port("nope", spec)


def test_grace_period_prefers_the_deletion_grace() -> None:
    p = pod()
    p["spec"]["terminationGracePeriodSeconds"] = 30
    assert grace_period(p) == 30
    p["metadata"]["deletionGracePeriodSeconds"] = 5
    assert grace_period(p) == 5


def test_container_hash_changes_with_the_image() -> None:
    a = {"name": "c", "image": "v1", "command": ["x"]}
    assert container_hash(a) == container_hash(dict(a))
    assert container_hash(a) != container_hash(dict(a, image="v2"))


def test_pod_ip_round_robin_resumes_after_a_restart() -> None:
    before = PodIPAllocator("127.11.0.0/24")
    before.allocate("a")
    before.allocate("b")
    before.release("b")
    after = PodIPAllocator("127.11.0.0/24")
    after.reserve("a", "127.11.0.1")
    after.resume_after(before.last_allocated)
    assert after.allocate("c") == "127.11.0.3"


def _requesting(cpu: str = "", memory: str = "") -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]}}


def test_admission_rejects_what_does_not_fit_next_to_admitted_pods() -> None:
    node = {"cpu": "2", "memory": "1Gi", "pods": "3"}
    assert admission_failure(_requesting("1500m"), [_requesting("500m")], node) is None
    reason, message = admission_failure(_requesting("1"), [_requesting("1500m")], node)
    assert reason == "OutOfcpu"
    assert message == ("Pod was rejected: Node didn't have enough resource: cpu, "
                       "requested: 1000, used: 1500, capacity: 2000")
    assert admission_failure(_requesting(memory="2Gi"), [], node)[0] == "OutOfmemory"
    assert admission_failure(_requesting(), [_requesting()] * 3, node)[0] == "OutOfpods"
    assert admission_failure(_requesting(), [_requesting()] * 2, node) is None
