"""`kubelite describe`: one object as readable text, ending with its Events.

A description is built as a list of Lines (indent, key, value) and laid out
as kubectl's tabwriter would lay it out: values at one indent level start in
the same column. Each kind adds its own key fields through one function in
DESCRIBERS; a kind without one shows its spec and status as YAML.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelite import printing as columns
from kubelite.cli.printers import age, format_labels, render_table, to_yaml
from kubelite.cli.session import Session, resolve_kind
from kubelite.errors import NotFoundError
from kubelite.resources import ResourceInfo

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class Line:
    indent: int
    key: str  # "Name:"; "" for a free-standing text line
    value: str = ""


@dataclass
class Description:
    lines: list[Line] = field(default_factory=list)

    def add(self, key: str, value: Any = "", indent: int = 0) -> None:
        self.lines.append(Line(indent, key, "" if value is None else str(value)))

    def text(self, text: str, indent: int = 0) -> None:
        """Free text (a table, a YAML block), one Line per text line."""
        for line in text.splitlines():
            self.lines.append(Line(indent, "", line))

    def mapping(self, key: str, values: dict[str, Any] | None, indent: int = 0) -> None:
        """`Labels: a=1` with further pairs on their own lines under the first value."""
        pairs = [f"{k}={v}" for k, v in sorted((values or {}).items())]
        self.add(key, "\n".join(pairs) if pairs else "<none>", indent)

    def render(self) -> str:
        widths: dict[int, int] = {}
        for line in self.lines:
            if line.key and line.value:
                widths[line.indent] = max(widths.get(line.indent, 0), len(line.key))
        out = []
        for line in self.lines:
            pad = "  " * line.indent
            if not line.key:
                out.append((pad + line.value).rstrip())
                continue
            if not line.value:
                out.append(pad + line.key)
                continue
            width = widths.get(line.indent, len(line.key)) + 2
            first, *rest = line.value.split("\n")
            out.append(pad + line.key.ljust(width) + first)
            out.extend(pad + " " * width + more for more in rest)
        return "\n".join(out)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def describe_metadata(d: Description, obj: Obj, info: ResourceInfo) -> None:
    meta = _meta(obj)
    d.add("Name:", meta.get("name", ""))
    if info.namespaced:
        d.add("Namespace:", meta.get("namespace", ""))
    d.mapping("Labels:", meta.get("labels"))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    d.mapping("Annotations:", annotations)
    d.add("CreationTimestamp:", meta.get("creationTimestamp") or "<unknown>")
    if meta.get("deletionTimestamp"):
        d.add("DeletionTimestamp:", meta["deletionTimestamp"])
    owners = meta.get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), None)
    if controller:
        d.add("Controlled By:", f"{controller.get('kind')}/{controller.get('name')}")


def _ports(ports: list[Obj] | None) -> str:
    return ", ".join(f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}"
                     for p in ports or []) or "<none>"


def _state_lines(d: Description, title: str, state: Obj | None, indent: int) -> None:
    if not state:
        return
    name, detail = next(iter(state.items()))
    d.add(f"{title}:", name.capitalize(), indent)
    for key, label in (("reason", "Reason"), ("message", "Message"), ("exitCode", "Exit Code"),
                       ("startedAt", "Started"), ("finishedAt", "Finished")):
        if isinstance(detail, dict) and detail.get(key) not in (None, ""):
            d.add(f"{label}:", detail[key], indent + 1)


def describe_containers(d: Description, containers: list[Obj], statuses: list[Obj],
                        indent: int = 0, title: str = "Containers:") -> None:
    d.add(title, "" if containers else "<none>", indent)
    by_name = {s.get("name"): s for s in statuses}
    for c in containers:
        d.add(f"{c.get('name', '')}:", "", indent + 1)
        status = by_name.get(c.get("name"), {})
        inner = indent + 2
        if status.get("containerID"):
            d.add("Container ID:", status["containerID"], inner)
        d.add("Image:", c.get("image", ""), inner)
        d.add("Port:", _ports(c.get("ports")), inner)
        if c.get("command"):
            d.add("Command:", " ".join(map(str, c["command"])), inner)
        if c.get("args"):
            d.add("Args:", " ".join(map(str, c["args"])), inner)
        if status:
            _state_lines(d, "State", status.get("state"), inner)
            _state_lines(d, "Last State", status.get("lastState"), inner)
            d.add("Ready:", "True" if status.get("ready") else "False", inner)
            d.add("Restart Count:", status.get("restartCount", 0), inner)
        resources = c.get("resources") or {}
        for key, label in (("limits", "Limits:"), ("requests", "Requests:")):
            if resources.get(key):
                d.add(label, "", inner)
                for rname, qty in sorted(resources[key].items()):
                    d.add(f"{rname}:", qty, inner + 1)
        for key, label in (("livenessProbe", "Liveness:"), ("readinessProbe", "Readiness:"),
                           ("startupProbe", "Startup:")):
            if c.get(key):
                d.add(label, _probe(c[key]), inner)
        sources = c.get("envFrom") or []
        if sources:
            d.add("Environment Variables from:", "", inner)
        for source in sources:
            kind = "ConfigMap" if source.get("configMapRef") is not None else "Secret"
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            prefix = f" with prefix '{source['prefix']}'" if source.get("prefix") else ""
            d.add(str(ref.get("name", "")), f"{kind}{prefix}  Optional: "
                  f"{str(bool(ref.get('optional'))).lower()}", inner + 1)
        env = c.get("env") or []
        d.add("Environment:", "" if env else "<none>", inner)
        for var in env:
            value = var.get("value")
            source = var.get("valueFrom") or {}
            if value is None and (source.get("secretKeyRef") or source.get("configMapKeyRef")):
                # As kubectl: where the value comes from, never a Secret's value itself.
                secret = source.get("secretKeyRef")
                ref = secret or source["configMapKeyRef"]
                where = f"in secret '{ref.get('name')}'" if secret else \
                    f"of config map '{ref.get('name')}'"
                value = (f"<set to the key '{ref.get('key')}' {where}>  Optional: "
                         f"{str(bool(ref.get('optional'))).lower()}")
            elif value is None and source:
                value = "<set from " + next(iter(source)) + ">"
            d.add(f"{var.get('name')}:", value if value not in (None, "") else "<empty>",
                  inner + 1)


def _probe(probe: Obj) -> str:
    if probe.get("httpGet"):
        h = probe["httpGet"]
        how = f"http-get {h.get('scheme', 'HTTP').lower()}://:{h.get('port')}{h.get('path', '/')}"
    elif probe.get("tcpSocket"):
        how = f"tcp-socket :{probe['tcpSocket'].get('port')}"
    elif probe.get("exec"):
        how = "exec " + str(probe["exec"].get("command", []))
    else:
        how = "unknown"
    return (f"{how} delay={probe.get('initialDelaySeconds', 0)}s "
            f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
            f"#success={probe.get('successThreshold', 1)} "
            f"#failure={probe.get('failureThreshold', 3)}")


def describe_conditions(d: Description, conditions: list[Obj] | None,
                        keys: Sequence[str] = ("Type", "Status")) -> None:
    if not conditions:
        d.add("Conditions:", "<none>")
        return
    d.add("Conditions:")
    fields = {"Type": "type", "Status": "status", "Reason": "reason", "Message": "message",
              "LastHeartbeatTime": "lastHeartbeatTime",
              "LastTransitionTime": "lastTransitionTime"}
    rows = [[str(c.get(fields[k]) or "") for k in keys] for c in conditions]
    rule = ["-" * len(k) for k in keys]
    d.text(render_table(list(keys), [rule, *rows], padding=2), indent=1)


def describe_pod(d: Description, pod: Obj) -> None:
    spec, status = _spec(pod), _status(pod)
    node = spec.get("nodeName")
    host_ip = status.get("hostIP")
    d.add("Node:", f"{node}/{host_ip}" if node and host_ip else node or "<none>")
    d.add("Start Time:", status.get("startTime") or "<unset>")
    d.add("Status:", "Terminating" if _meta(pod).get("deletionTimestamp")
          else status.get("phase") or "Pending")
    if status.get("reason"):
        d.add("Reason:", status["reason"])
    if status.get("message"):
        d.add("Message:", status["message"])
    d.add("IP:", status.get("podIP") or "<none>")
    if spec.get("initContainers"):
        describe_containers(d, spec["initContainers"], status.get("initContainerStatuses") or [],
                            title="Init Containers:")
    describe_containers(d, spec.get("containers") or [], status.get("containerStatuses") or [])
    describe_conditions(d, status.get("conditions"))
    d.add("QoS Class:", status.get("qosClass") or "<none>")
    d.add("Node-Selectors:", format_labels(spec.get("nodeSelector")))
    tolerations = [
        f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}"
        f"{':' + t['effect'] if t.get('effect') else ''} op={t.get('operator', 'Equal')}"
        for t in spec.get("tolerations") or []]
    d.add("Tolerations:", "\n".join(tolerations) or "<none>")


def _template(d: Description, obj: Obj) -> None:
    template = _spec(obj).get("template") or {}
    d.add("Pod Template:")
    d.mapping("Labels:", _meta(template).get("labels"), indent=1)
    describe_containers(d, _spec(template).get("containers") or [], [], indent=1)


def describe_deployment(d: Description, deploy: Obj) -> None:
    spec, status = _spec(deploy), _status(deploy)
    d.add("Selector:", columns.format_selector(spec.get("selector")))
    desired = spec.get("replicas", 1)
    d.add("Replicas:", f"{desired} desired | {status.get('updatedReplicas', 0)} updated | "
                       f"{status.get('replicas', 0)} total | "
                       f"{status.get('availableReplicas', 0)} available | "
                       f"{status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    d.add("StrategyType:", strategy.get("type") or "RollingUpdate")
    d.add("MinReadySeconds:", spec.get("minReadySeconds", 0))
    rolling = strategy.get("rollingUpdate")
    if rolling:
        d.add("RollingUpdateStrategy:", f"{rolling.get('maxUnavailable', '25%')} max unavailable, "
                                        f"{rolling.get('maxSurge', '25%')} max surge")
    _template(d, deploy)
    describe_conditions(d, status.get("conditions"), ("Type", "Status", "Reason"))


def describe_replicaset(d: Description, rs: Obj) -> None:
    spec, status = _spec(rs), _status(rs)
    d.add("Selector:", columns.format_selector(spec.get("selector")))
    d.add("Replicas:", f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    d.add("Pods Status:", f"{status.get('readyReplicas', 0)} Ready / "
                          f"{status.get('availableReplicas', 0)} Available")
    _template(d, rs)
    describe_conditions(d, status.get("conditions"), ("Type", "Status", "Reason"))


def describe_daemonset(d: Description, ds: Obj) -> None:
    """kubectl's DaemonSetDescriber, without its pod-phase line (that needs the pods)."""
    spec, status = _spec(ds), _status(ds)
    d.add("Selector:", columns.format_selector(spec.get("selector")))
    node_selector = _spec(spec.get("template") or {}).get("nodeSelector") or {}
    d.add("Node-Selector:", ",".join(f"{k}={v}" for k, v in sorted(node_selector.items()))
          or "<none>")
    d.add("Desired Number of Nodes Scheduled:", status.get("desiredNumberScheduled", 0))
    d.add("Current Number of Nodes Scheduled:", status.get("currentNumberScheduled", 0))
    d.add("Number of Nodes Scheduled with Up-to-date Pods:",
          status.get("updatedNumberScheduled", 0))
    d.add("Number of Nodes Scheduled with Available Pods:", status.get("numberAvailable", 0))
    d.add("Number of Nodes Misscheduled:", status.get("numberMisscheduled", 0))
    strategy = spec.get("updateStrategy") or {}
    d.add("StrategyType:", strategy.get("type") or "RollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if rolling:
        d.add("RollingUpdateStrategy:", f"{rolling.get('maxUnavailable', 1)} max unavailable, "
                                        f"{rolling.get('maxSurge', 0)} max surge")
    _template(d, ds)


def describe_replicationcontroller(d: Description, rc: Obj) -> None:
    spec = _spec(rc)
    describe_replicaset(d, {**rc, "spec": {**spec, "selector": {
        "matchLabels": spec.get("selector") or {}}}})


def describe_statefulset(d: Description, sts: Obj) -> None:
    """As kubectl's StatefulSetDescriber."""
    spec, status = _spec(sts), _status(sts)
    d.add("Selector:", columns.format_selector(spec.get("selector")))
    d.add("Replicas:", f"{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} total")
    strategy = spec.get("updateStrategy") or {}
    d.add("Update Strategy:", strategy.get("type") or "RollingUpdate")
    rolling = strategy.get("rollingUpdate") or {}
    if rolling.get("partition") is not None:
        d.add("  Partition:", rolling["partition"])
    d.add("Pod Management Policy:", spec.get("podManagementPolicy") or "OrderedReady")
    d.add("Pods Status:", f"{status.get('readyReplicas', 0)} Ready / "
                          f"{status.get('availableReplicas', 0)} Available")
    _template(d, sts)
    claims = spec.get("volumeClaimTemplates") or []
    d.add("Volume Claims:", "" if claims else "<none>")
    for claim in claims:
        cspec = claim.get("spec") or {}
        d.add("  Name:", (claim.get("metadata") or {}).get("name", ""))
        d.add("  StorageClass:", cspec.get("storageClassName") or "")
        d.add("  Capacity:", ((cspec.get("resources") or {}).get("requests") or {}).get(
            "storage", ""))
        d.add("  Access Modes:", ",".join(cspec.get("accessModes") or []))


def _unset(value: Any) -> Any:
    return "<unset>" if value is None else value


def describe_job(d: Description, job: Obj) -> None:
    spec, status = _spec(job), _status(job)
    d.add("Selector:", columns.format_selector(spec.get("selector")))
    d.add("Parallelism:", _unset(spec.get("parallelism")))
    d.add("Completions:", _unset(spec.get("completions")))
    d.add("Completion Mode:", spec.get("completionMode") or "NonIndexed")
    d.add("Suspend:", str(bool(spec.get("suspend"))).lower())
    d.add("Backoff Limit:", _unset(spec.get("backoffLimit")))
    if spec.get("ttlSecondsAfterFinished") is not None:
        d.add("TTL Seconds After Finished:", spec["ttlSecondsAfterFinished"])
    if spec.get("activeDeadlineSeconds") is not None:
        d.add("Active Deadline Seconds:", f"{spec['activeDeadlineSeconds']}s")
    if status.get("startTime"):
        d.add("Start Time:", status["startTime"])
    if status.get("completionTime"):
        d.add("Completed At:", status["completionTime"])
    duration = columns.table_cell("Job", "DURATION", job)
    if duration:
        d.add("Duration:", duration)
    d.add("Pods Statuses:", f"{status.get('active', 0)} Active ({status.get('ready', 0)} Ready)"
                            f" / {status.get('succeeded', 0)} Succeeded / "
                            f"{status.get('failed', 0)} Failed")
    if spec.get("completionMode") == "Indexed":
        d.add("Completed Indexes:", status.get("completedIndexes") or "<none>")
    _template(d, job)
    describe_conditions(d, status.get("conditions"), ("Type", "Status", "Reason"))


def describe_cronjob(d: Description, cj: Obj) -> None:
    spec, status = _spec(cj), _status(cj)
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    d.add("Schedule:", spec.get("schedule", ""))
    if spec.get("timeZone"):
        d.add("Time Zone:", spec["timeZone"])
    d.add("Concurrency Policy:", spec.get("concurrencyPolicy") or "Allow")
    d.add("Suspend:", str(bool(spec.get("suspend"))))
    d.add("Successful Job History Limit:", _unset(spec.get("successfulJobsHistoryLimit")))
    d.add("Failed Job History Limit:", _unset(spec.get("failedJobsHistoryLimit")))
    d.add("Starting Deadline Seconds:", _unset(spec.get("startingDeadlineSeconds")))
    d.add("Selector:", columns.format_selector(job_spec.get("selector"))
          if job_spec.get("selector") else "<unset>")
    d.add("Parallelism:", _unset(job_spec.get("parallelism")))
    d.add("Completions:", _unset(job_spec.get("completions")))
    _template(d, {"spec": job_spec})
    d.add("Last Schedule Time:", status.get("lastScheduleTime") or "<unset>")
    d.add("Active Jobs:", ", ".join(a.get("name", "") for a in status.get("active") or [])
          or "<none>")


def describe_service(d: Description, svc: Obj, endpoints: Obj | None = None) -> None:
    spec = _spec(svc)
    d.add("Selector:", format_labels(spec.get("selector")))
    d.add("Type:", spec.get("type") or "ClusterIP")
    d.add("IP:", spec.get("clusterIP") or "<none>")
    if spec.get("externalIPs"):
        d.add("External IPs:", ",".join(spec["externalIPs"]))
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        d.add("Port:", f"{port.get('name') or '<unset>'}  {port.get('port')}/{protocol}")
        d.add("TargetPort:", f"{port.get('targetPort', port.get('port'))}/{protocol}")
        if port.get("nodePort"):
            d.add("NodePort:", f"{port.get('name') or '<unset>'}  {port['nodePort']}/{protocol}")
    d.add("Endpoints:", columns.format_endpoints(endpoints or {}, limit=1 << 30))
    d.add("Session Affinity:", spec.get("sessionAffinity") or "None")


def describe_node(d: Description, node: Obj) -> None:
    spec, status = _spec(node), _status(node)
    taints = [f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
              for t in spec.get("taints") or []]
    d.add("Roles:", columns.node_roles(node))
    d.add("Taints:", "\n".join(taints) or "<none>")
    d.add("Unschedulable:", "true" if spec.get("unschedulable") else "false")
    describe_conditions(d, status.get("conditions"),
                        ("Type", "Status", "LastHeartbeatTime", "Reason", "Message"))
    addresses = status.get("addresses") or []
    d.add("Addresses:", "" if addresses else "<none>")
    for address in addresses:
        d.add(f"{address.get('type')}:", address.get("address"), indent=1)
    for key, label in (("capacity", "Capacity:"), ("allocatable", "Allocatable:")):
        d.add(label, "" if status.get(key) else "<none>")
        for rname, qty in sorted((status.get(key) or {}).items()):
            d.add(f"{rname}:", qty, indent=1)
    info = status.get("nodeInfo") or {}
    if info:
        d.add("System Info:")
        for key, value in info.items():
            d.add(f"{key[0].upper()}{key[1:]}:", value, indent=1)


def describe_namespace(d: Description, ns: Obj) -> None:
    d.add("Status:", _status(ns).get("phase") or "Active")


def describe_configmap(d: Description, cm: Obj) -> None:
    d.add("Data")
    d.add("====")
    for key, value in sorted((cm.get("data") or {}).items()):
        d.add(f"{key}:")
        d.add("----")
        d.text(str(value))
        d.text("")


def describe_secret(d: Description, secret: Obj) -> None:
    """Sizes only, as kubectl: a Secret's values are never printed in clear."""
    d.text("")
    d.add("Type:", secret.get("type") or "Opaque")
    d.text("")
    d.add("Data")
    d.add("====")
    for key, value in sorted((secret.get("data") or {}).items()):
        try:
            size = len(base64.b64decode(str(value)))
        except (binascii.Error, ValueError):
            size = len(str(value))
        d.add(f"{key}:", f"{size} bytes")


def describe_pdb(d: Description, pdb: Obj) -> None:
    spec, status = _spec(pdb), _status(pdb)
    if spec.get("minAvailable") is not None:
        d.add("Min available:", spec["minAvailable"])
    if spec.get("maxUnavailable") is not None:
        d.add("Max unavailable:", spec["maxUnavailable"])
    selector = spec.get("selector")
    d.add("Selector:", "<unset>" if selector is None else columns.format_selector(selector))
    d.add("Status:")
    d.add("Allowed disruptions:", status.get("disruptionsAllowed", 0), indent=1)
    d.add("Current:", status.get("currentHealthy", 0), indent=1)
    d.add("Desired:", status.get("desiredHealthy", 0), indent=1)
    d.add("Total:", status.get("expectedPods", 0), indent=1)
    describe_conditions(d, status.get("conditions"), ("Type", "Status", "Reason", "Message"))


def describe_generic(d: Description, obj: Obj) -> None:
    for key in ("spec", "status"):
        if obj.get(key):
            d.add(f"{key.capitalize()}:")
            d.text(to_yaml(obj[key]), indent=1)


Describer = Callable[[Description, Obj], None]
DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replicaset,
    "ReplicationController": describe_replicationcontroller,
    "StatefulSet": describe_statefulset,
    "DaemonSet": describe_daemonset,
    "Job": describe_job,
    "CronJob": describe_cronjob,
    "Service": describe_service,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "ConfigMap": describe_configmap,
    "Secret": describe_secret,
    "PodDisruptionBudget": describe_pdb,
}


def involves(event: Obj, obj: Obj, info: ResourceInfo) -> bool:
    """True when an event is about this object (its uid, else its kind and name)."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    meta = _meta(obj)
    if involved.get("uid") and meta.get("uid"):
        return bool(involved["uid"] == meta["uid"])
    return involved.get("kind") == info.kind and involved.get("name") == meta.get("name")


def describe_events(d: Description, events: list[Obj], now: datetime) -> None:
    if not events:
        d.add("Events:", "<none>")
        return
    d.add("Events:")
    rows = [["----", "------", "----", "----", "-------"]]
    for event in sorted(events, key=lambda e: columns.event_time(e) or now):
        first = columns.parse_timestamp(event.get("firstTimestamp"))
        last = columns.event_time(event)
        when = age(last.isoformat(), now) if last else "<unknown>"
        count = event.get("count") or (event.get("series") or {}).get("count") or 1
        if count > 1 and first:
            when = f"{when} (x{count} over {age(first.isoformat(), now)})"
        source = event.get("source") or {}
        origin = source.get("component") or event.get("reportingComponent") or ""
        if source.get("host"):
            origin = f"{origin}, {source['host']}"
        rows.append([str(event.get("type", "")), str(event.get("reason", "")), when, origin,
                     " ".join(str(event.get("message", "")).split())])
    d.text(render_table(["Type", "Reason", "Age", "From", "Message"], rows, padding=2),
           indent=1)


def describe(obj: Obj, info: ResourceInfo, events: list[Obj], *,
             now: datetime | None = None, related: Obj | None = None) -> str:
    """The full description of one object (related: a Service's Endpoints)."""
    d = Description()
    describe_metadata(d, obj, info)
    if info.kind == "Service":
        describe_service(d, obj, related)
    else:
        DESCRIBERS.get(info.kind, describe_generic)(d, obj)
    describe_events(d, [e for e in events if involves(e, obj, info)], now or datetime.now(UTC))
    return d.render()


async def run(session: Session, kind: str, names: Sequence[str]) -> int:
    """Describes the named objects (`KIND NAME...` or `KIND/NAME`), or every one of KIND."""
    if "/" in kind:
        kind, _, first = kind.partition("/")
        names = [first, *names]
    info = resolve_kind(kind)
    namespace = session.namespace_for(info)
    if names:
        objects: list[Obj] = []
        code = 0
        for name in names:
            try:
                objects.append(await session.client.get(info.plural, name, namespace=namespace))
            except NotFoundError as err:
                session.report(err)
                code = 1
    else:
        objects = (await session.client.list(info.plural, namespace=namespace)).items
        code = 0
        if not objects:
            session.warn(f"No resources found in {session.effective_namespace} namespace."
                         if info.namespaced else "No resources found")
    if not objects:
        return code
    # Events about cluster-scoped objects may live in any namespace.
    events = (await session.client.list("events", namespace=namespace)).items
    for i, obj in enumerate(objects):
        related = None
        if info.kind == "Service":
            related = await _optional_get(session, "endpoints", _meta(obj)["name"], namespace)
        if i:
            session.print()
        session.print(describe(obj, info, events, related=related))
    return code


async def _optional_get(session: Session, resource: str, name: str,
                        namespace: str | None) -> Obj | None:
    try:
        return await session.client.get(resource, name, namespace=namespace)
    except NotFoundError:
        return None
