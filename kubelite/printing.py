"""The columns `kubelite get` (and the REST API's server-side Tables) show for each
kind, computed as kubectl computes them.

Each kind is one entry in COLUMNS: a tuple of Column(header, cell function),
where wide-only columns are marked. A kind without an entry gets NAME AGE.
This is pure library code, shared by the CLI and the apiserver's REST face.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelite.resources import ResourceInfo

Obj = dict[str, Any]


def parse_timestamp(text: str | None) -> datetime | None:
    """Parses an RFC 3339 timestamp (with or without a fraction); None when unusable."""
    if not text or not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints it (apimachinery's HumanDuration): 5s, 3m20s, 2d4h, 3y."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """The time since an RFC 3339 timestamp, like kubectl's AGE column."""
    when = parse_timestamp(timestamp)
    if when is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration((now - when).total_seconds())


def format_labels(labels: dict[str, str] | None) -> str:
    """`a=1,b=2` in key order, or `<none>`."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Obj, datetime], str]
    wide_only: bool = False


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _num(value: Any) -> str:
    return str(value) if isinstance(value, int) else "0"


def _name(obj: Obj, now: datetime) -> str:
    return str(_meta(obj).get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


NAME = Column("NAME", _name)
AGE = Column("AGE", _age)


# --- pods -------------------------------------------------------------------

def pod_status(pod: Obj) -> str:
    """The STATUS kubectl shows: Terminating, a container's waiting or terminated
    reason, else the pod's reason or phase."""
    if _meta(pod).get("deletionTimestamp"):
        return "Terminating"
    status = _status(pod)
    reason = status.get("reason") or status.get("phase") or "Pending"
    sidecars = _sidecar_names(pod)
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        term = state.get("terminated") or {}
        if term and term.get("exitCode", 0) == 0:
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            continue
        if initialized:
            break
        if term:
            if term.get("reason"):
                return "Init:" + term["reason"]
            if term.get("signal"):
                return f"Init:Signal:{term['signal']}"
            return f"Init:ExitCode:{term.get('exitCode')}"
        waiting = (state.get("waiting") or {}).get("reason")
        if waiting and waiting != "PodInitializing":
            return f"Init:{waiting}"
        total = len(_spec(pod).get("initContainers") or [])
        return f"Init:{i}/{total}"
    for cs in reversed(status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            if term.get("reason"):
                reason = term["reason"]
            elif term.get("signal"):
                reason = f"Signal:{term['signal']}"
            else:
                reason = f"ExitCode:{term.get('exitCode', 0)}"
    return str(reason)


def _sidecar_names(pod: Obj) -> set[str]:
    """Init containers with restartPolicy Always: they run beside the app containers."""
    return {c.get("name", "") for c in _spec(pod).get("initContainers") or []
            if c.get("restartPolicy") == "Always"}


def _pod_ready(pod: Obj, now: datetime) -> str:
    sidecars = _sidecar_names(pod)
    statuses = _status(pod).get("containerStatuses") or []
    total = (len(_spec(pod).get("containers") or []) or len(statuses)) + len(sidecars)
    ready = sum(1 for cs in statuses if cs.get("ready"))
    ready += sum(1 for cs in _status(pod).get("initContainerStatuses") or []
                 if cs.get("name") in sidecars and cs.get("ready"))
    return f"{ready}/{total}"


def _pod_restarts(pod: Obj, now: datetime) -> str:
    statuses = [*(_status(pod).get("initContainerStatuses") or []),
                *(_status(pod).get("containerStatuses") or [])]
    total = sum(int(cs.get("restartCount") or 0) for cs in statuses)
    last = None
    for cs in statuses:
        finished = parse_timestamp(
            ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished and (last is None or finished > last):
            last = finished
    if total and last:
        return f"{total} ({age(last.isoformat(), now)} ago)"
    return str(total)


def _pod_ip(pod: Obj, now: datetime) -> str:
    return _status(pod).get("podIP") or "<none>"


def _pod_node(pod: Obj, now: datetime) -> str:
    return _spec(pod).get("nodeName") or "<none>"


# --- workloads --------------------------------------------------------------

def _containers(obj: Obj) -> list[Obj]:
    template = _spec(obj).get("template") or {}
    return (template.get("spec") or {}).get("containers") or []


def _container_names(obj: Obj, now: datetime) -> str:
    return ",".join(c.get("name", "") for c in _containers(obj)) or "<none>"


def _container_images(obj: Obj, now: datetime) -> str:
    return ",".join(c.get("image", "") for c in _containers(obj)) or "<none>"


def format_selector(selector: Obj | None) -> str:
    """A LabelSelector as kubectl writes it: `app=web,tier in (a,b)`."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator", ""), expr.get("key", ""), expr.get("values") or []
        if op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
    return ",".join(parts) or "<none>"


def _workload_selector(obj: Obj, now: datetime) -> str:
    return format_selector(_spec(obj).get("selector"))


def _ds_node_selector(obj: Obj, now: datetime) -> str:
    node_selector = ((_spec(obj).get("template") or {}).get("spec") or {}).get("nodeSelector")
    return format_labels(node_selector if isinstance(node_selector, dict) else None)


def _deploy_ready(obj: Obj, now: datetime) -> str:
    return f"{_num(_status(obj).get('readyReplicas'))}/{_num(_spec(obj).get('replicas'))}"


def _status_count(key: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, now: _num(_status(obj).get(key))


def _spec_count(key: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, now: _num(_spec(obj).get(key))


# --- services and endpoints -------------------------------------------------

def _svc_type(obj: Obj, now: datetime) -> str:
    return _spec(obj).get("type") or "ClusterIP"


def _svc_cluster_ip(obj: Obj, now: datetime) -> str:
    spec = _spec(obj)
    ips = spec.get("clusterIPs") or []
    return (ips[0] if ips else spec.get("clusterIP")) or "<none>"


def _svc_external_ip(obj: Obj, now: datetime) -> str:
    """kubectl's getServiceExternalIP: externalIPs, a LoadBalancer's ingress addresses
    first (<pending> while it has none), an ExternalName's name."""
    spec = _spec(obj)
    external = list(spec.get("externalIPs") or [])
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":
        return spec.get("externalName") or "<none>"
    if kind == "LoadBalancer":
        ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
        addresses = [i.get("ip") or i.get("hostname") or "" for i in ingress]
        return ",".join(a for a in addresses + external if a) or "<pending>"
    return ",".join(external) or "<none>"


def format_service_ports(obj: Obj) -> str:
    """`80/TCP`, `80:30080/TCP,443/TCP`, or `<none>`."""
    parts = []
    for port in _spec(obj).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        parts.append(f"{port.get('port')}{node}/{port.get('protocol') or 'TCP'}")
    return ",".join(parts) or "<none>"


def _svc_ports(obj: Obj, now: datetime) -> str:
    return format_service_ports(obj)


def _svc_selector(obj: Obj, now: datetime) -> str:
    return format_labels(_spec(obj).get("selector"))


def _host_port(ip: str, port: Any) -> str:
    """net.JoinHostPort: IPv6 addresses get brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(obj: Obj, limit: int = 3) -> str:
    """kubectl's formatEndpoints: `10.0.0.1:80,10.0.0.2:80 + 2 more...`.

    Ready addresses only, each subset's ports in order and every address for
    each port, the first `limit` spelled out. Where kubectl prints an empty cell
    (subsets with no ready address) this prints `<none>`, so that the column
    never goes blank.
    """
    found: list[str] = []
    for subset in obj.get("subsets") or []:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:  # a headless service without ports
            found.extend(addresses)
            continue
        for port in ports:
            found.extend(_host_port(ip, port.get("port")) for ip in addresses)
    if not found:
        return "<none>"
    shown = ",".join(found[:limit])
    return f"{shown} + {len(found) - limit} more..." if len(found) > limit else shown


def _endpoints(obj: Obj, now: datetime) -> str:
    return format_endpoints(obj)


# --- nodes, namespaces, the rest ---------------------------------------------

def node_status(node: Obj) -> str:
    """Ready, NotReady or Unknown, plus `,SchedulingDisabled` when cordoned."""
    ready = "Unknown"
    for cond in _status(node).get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = {"True": "Ready", "False": "NotReady"}.get(cond.get("status"), "Unknown")
    if _spec(node).get("unschedulable"):
        ready += ",SchedulingDisabled"
    return ready


def _node_status(obj: Obj, now: datetime) -> str:
    return node_status(obj)


def node_roles(node: Obj) -> str:
    roles = []
    for key, value in sorted((_meta(node).get("labels") or {}).items()):
        if key.startswith("node-role.kubernetes.io/"):
            roles.append(key.split("/", 1)[1])
        elif key == "kubernetes.io/role":
            roles.append(value)
    return ",".join(r for r in roles if r) or "<none>"


def _node_roles(obj: Obj, now: datetime) -> str:
    return node_roles(obj)


def _node_version(obj: Obj, now: datetime) -> str:
    return (_status(obj).get("nodeInfo") or {}).get("kubeletVersion") or ""


def _node_internal_ip(obj: Obj, now: datetime) -> str:
    for address in _status(obj).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return address.get("address", "")
    return "<none>"


def _ns_status(obj: Obj, now: datetime) -> str:
    return _status(obj).get("phase") or "Active"


def event_time(event: Obj) -> datetime | None:
    """When an event last happened: lastTimestamp, eventTime, firstTimestamp, creation."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        when = parse_timestamp(event.get(key))
        if when:
            return when
    series = parse_timestamp((event.get("series") or {}).get("lastObservedTime"))
    return series or parse_timestamp(_meta(event).get("creationTimestamp"))


def _event_last_seen(obj: Obj, now: datetime) -> str:
    when = event_time(obj)
    return age(when.isoformat(), now) if when else "<unknown>"


def _event_object(obj: Obj, now: datetime) -> str:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _field(*path: str) -> Callable[[Obj, datetime], str]:
    def cell(obj: Obj, now: datetime) -> str:
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return "<none>" if value is None or value == "" else str(value)
    return cell


def _configmap_data(obj: Obj, now: datetime) -> str:
    return str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {}))


def _secret_type(obj: Obj, now: datetime) -> str:
    return str(obj.get("type") or "Opaque")


def _hpa_reference(obj: Obj, now: datetime) -> str:
    ref = _spec(obj).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _metric_target(metric: Obj) -> tuple[str, str]:
    """(name, target) of one spec.metrics entry, e.g. ('cpu', '80%')."""
    kind = metric.get("type", "")
    source = metric.get({"Resource": "resource", "ContainerResource": "containerResource",
                         "Pods": "pods", "Object": "object",
                         "External": "external"}.get(kind, "resource")) or {}
    name = source.get("name") or (source.get("metric") or {}).get("name") or kind.lower()
    target = source.get("target") or {}
    if "averageUtilization" in target:
        return name, f"{target['averageUtilization']}%"
    return name, str(target.get("averageValue") or target.get("value") or "<unknown>")


def _metric_current(metric: Obj | None) -> str:
    if not metric:
        return "<unknown>"
    source = next((v for k, v in metric.items() if k != "type" and isinstance(v, dict)), {})
    current = source.get("current") or {}
    if "averageUtilization" in current:
        return f"{current['averageUtilization']}%"
    value = current.get("averageValue") or current.get("value")
    return str(value) if value is not None else "<unknown>"


def _hpa_targets(obj: Obj, now: datetime) -> str:
    metrics = _spec(obj).get("metrics") or []
    currents = _status(obj).get("currentMetrics") or []
    if not metrics:
        return "<none>"
    parts = []
    for i, metric in enumerate(metrics):
        name, target = _metric_target(metric)
        current = _metric_current(currents[i] if i < len(currents) else None)
        parts.append(f"{name}: {current}/{target}")
    return ", ".join(parts)


def _hpa_min(obj: Obj, now: datetime) -> str:
    return str(_spec(obj).get("minReplicas", 1))


def _pdb_field(key: str) -> Callable[[Obj, datetime], str]:
    def cell(obj: Obj, now: datetime) -> str:
        value = _spec(obj).get(key)
        return "N/A" if value is None else str(value)
    return cell


_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                 "ReadWriteOncePod": "RWOP"}


def _access_modes(modes: Any) -> str:
    return ",".join(_ACCESS_MODES.get(m, m) for m in modes or [])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _pv_claim(obj: Obj, now: datetime) -> str:
    ref = _spec(obj).get("claimRef") or {}
    return f"{ref.get('namespace')}/{ref['name']}" if ref.get("name") else ""


def _vac(obj: Obj, now: datetime) -> str:
    return _spec(obj).get("volumeAttributesClassName") or "<unset>"


def _sc_name(obj: Obj, now: datetime) -> str:
    annotations = _meta(obj).get("annotations") or {}
    default = "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                         annotations.get("storageclass.beta.kubernetes.io/is-default-class"))
    return _meta(obj).get("name", "") + (" (default)" if default else "")


_PV_COLUMNS = (
    NAME, Column("CAPACITY", lambda o, n: _text((_spec(o).get("capacity") or {}).get("storage"))),
    Column("ACCESS MODES", lambda o, n: _access_modes(_spec(o).get("accessModes"))),
    Column("RECLAIM POLICY", lambda o, n: _text(_spec(o).get("persistentVolumeReclaimPolicy"))),
    Column("STATUS", lambda o, n: _text(_status(o).get("phase"))),
    Column("CLAIM", _pv_claim),
    Column("STORAGECLASS", lambda o, n: _text(_spec(o).get("storageClassName"))),
    Column("VOLUMEATTRIBUTESCLASS", _vac),
    Column("REASON", lambda o, n: _text(_status(o).get("reason"))), AGE,
    Column("VOLUMEMODE", lambda o, n: _text(_spec(o).get("volumeMode")), True),
)
_PVC_COLUMNS = (
    NAME, Column("STATUS", lambda o, n: _text(_status(o).get("phase"))),
    Column("VOLUME", lambda o, n: _text(_spec(o).get("volumeName"))),
    Column("CAPACITY", lambda o, n: _text((_status(o).get("capacity") or {}).get("storage"))),
    Column("ACCESS MODES", lambda o, n: _access_modes(_status(o).get("accessModes"))),
    Column("STORAGECLASS", lambda o, n: _text(_spec(o).get("storageClassName"))),
    Column("VOLUMEATTRIBUTESCLASS", _vac), AGE,
    Column("VOLUMEMODE", lambda o, n: _text(_spec(o).get("volumeMode")), True),
)
_SC_COLUMNS = (
    Column("NAME", _sc_name), Column("PROVISIONER", _field("provisioner")),
    Column("RECLAIMPOLICY", lambda o, n: o.get("reclaimPolicy") or "Delete"),
    Column("VOLUMEBINDINGMODE", lambda o, n: o.get("volumeBindingMode") or "Immediate"),
    Column("ALLOWVOLUMEEXPANSION", lambda o, n: "true" if o.get("allowVolumeExpansion")
           else "false"), AGE,
)


# --- batch ------------------------------------------------------------------

def _has_condition(obj: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in _status(obj).get("conditions") or [])


def job_status(job: Obj) -> str:
    """kubectl's Job STATUS: the terminal condition, else Terminating, else the interim one."""
    for type_ in ("Complete", "Failed"):
        if _has_condition(job, type_):
            return type_
    if _meta(job).get("deletionTimestamp"):
        return "Terminating"
    for type_ in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(job, type_):
            return type_
    return "Running"


def _job_completions(job: Obj, now: datetime) -> str:
    spec, succeeded = _spec(job), _num(_status(job).get("succeeded"))
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(job: Obj, now: datetime) -> str:
    start = parse_timestamp(_status(job).get("startTime"))
    if start is None:
        return ""
    end = parse_timestamp(_status(job).get("completionTime")) or now
    return human_duration((end - start).total_seconds())


def _job_template_spec(obj: Obj) -> Obj:
    return ((_spec(obj).get("jobTemplate") or {}).get("spec")) or {}


def _cj_containers(obj: Obj) -> list[Obj]:
    return ((_job_template_spec(obj).get("template") or {}).get("spec") or {}).get(
        "containers") or []


def _cj_suspend(obj: Obj, now: datetime) -> str:
    value = _spec(obj).get("suspend")
    return "<unset>" if value is None else str(bool(value))


def _cj_last_schedule(obj: Obj, now: datetime) -> str:
    last = _status(obj).get("lastScheduleTime")
    return age(last, now) if last else "<none>"


def _revision_controller(obj: Obj, now: datetime) -> str:
    """As kubectl: the controlling owner as `<kind>.<group>/<name>`, else <none>."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            kind = str(ref.get("kind", "")).lower()
            return f"{kind}.{group}/{ref.get('name', '')}" if group else (
                f"{kind}/{ref.get('name', '')}")
    return "<none>"


def _rc_selector(obj: Obj, now: datetime) -> str:
    selector = _spec(obj).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


COLUMNS: dict[str, tuple[Column, ...]] = {
    "PersistentVolume": _PV_COLUMNS,
    "PersistentVolumeClaim": _PVC_COLUMNS,
    "StorageClass": _SC_COLUMNS,
    "Pod": (NAME, Column("READY", _pod_ready),
            Column("STATUS", lambda o, n: pod_status(o)),
            Column("RESTARTS", _pod_restarts), AGE,
            Column("IP", _pod_ip, True), Column("NODE", _pod_node, True)),
    "Deployment": (NAME, Column("READY", _deploy_ready),
                   Column("UP-TO-DATE", _status_count("updatedReplicas")),
                   Column("AVAILABLE", _status_count("availableReplicas")), AGE,
                   Column("CONTAINERS", _container_names, True),
                   Column("IMAGES", _container_images, True),
                   Column("SELECTOR", _workload_selector, True)),
    "ReplicaSet": (NAME, Column("DESIRED", _spec_count("replicas")),
                   Column("CURRENT", _status_count("replicas")),
                   Column("READY", _status_count("readyReplicas")), AGE,
                   Column("CONTAINERS", _container_names, True),
                   Column("IMAGES", _container_images, True),
                   Column("SELECTOR", _workload_selector, True)),
    "DaemonSet": (NAME, Column("DESIRED", _status_count("desiredNumberScheduled")),
                  Column("CURRENT", _status_count("currentNumberScheduled")),
                  Column("READY", _status_count("numberReady")),
                  Column("UP-TO-DATE", _status_count("updatedNumberScheduled")),
                  Column("AVAILABLE", _status_count("numberAvailable")),
                  Column("NODE SELECTOR", _ds_node_selector), AGE,
                  Column("CONTAINERS", _container_names, True),
                  Column("IMAGES", _container_images, True),
                  Column("SELECTOR", _workload_selector, True)),
    "ReplicationController": (NAME, Column("DESIRED", _spec_count("replicas")),
                              Column("CURRENT", _status_count("replicas")),
                              Column("READY", _status_count("readyReplicas")), AGE,
                              Column("CONTAINERS", _container_names, True),
                              Column("IMAGES", _container_images, True),
                              Column("SELECTOR", _rc_selector, True)),
    "StatefulSet": (NAME, Column("READY", _deploy_ready), AGE,
                    Column("CONTAINERS", _container_names, True),
                    Column("IMAGES", _container_images, True)),
    "Job": (NAME, Column("STATUS", lambda o, n: job_status(o)),
            Column("COMPLETIONS", _job_completions), Column("DURATION", _job_duration), AGE,
            Column("CONTAINERS", _container_names, True),
            Column("IMAGES", _container_images, True),
            Column("SELECTOR", _workload_selector, True)),
    "CronJob": (NAME, Column("SCHEDULE", _field("spec", "schedule")),
                Column("TIMEZONE", lambda o, n: _spec(o).get("timeZone") or "<none>"),
                Column("SUSPEND", _cj_suspend),
                Column("ACTIVE", lambda o, n: str(len(_status(o).get("active") or []))),
                Column("LAST SCHEDULE", _cj_last_schedule), AGE,
                Column("CONTAINERS", lambda o, n: ",".join(
                    c.get("name", "") for c in _cj_containers(o)) or "<none>", True),
                Column("IMAGES", lambda o, n: ",".join(
                    c.get("image", "") for c in _cj_containers(o)) or "<none>", True),
                Column("SELECTOR", lambda o, n: format_selector(
                    _job_template_spec(o).get("selector")), True)),
    "Service": (NAME, Column("TYPE", _svc_type), Column("CLUSTER-IP", _svc_cluster_ip),
                Column("EXTERNAL-IP", _svc_external_ip), Column("PORT(S)", _svc_ports), AGE,
                Column("SELECTOR", _svc_selector, True)),
    "Endpoints": (NAME, Column("ENDPOINTS", _endpoints), AGE),
    "Node": (NAME, Column("STATUS", _node_status), Column("ROLES", _node_roles), AGE,
             Column("VERSION", _node_version),
             Column("INTERNAL-IP", _node_internal_ip, True)),
    "Namespace": (NAME, Column("STATUS", _ns_status), AGE),
    "Event": (Column("LAST SEEN", _event_last_seen), Column("TYPE", _field("type")),
              Column("REASON", _field("reason")), Column("OBJECT", _event_object),
              Column("MESSAGE", _field("message"))),
    "ConfigMap": (NAME, Column("DATA", _configmap_data), AGE),
    "Secret": (NAME, Column("TYPE", _secret_type), Column("DATA", _configmap_data), AGE),
    "ControllerRevision": (NAME, Column("CONTROLLER", _revision_controller),
                           Column("REVISION", lambda o, n: str(o.get("revision", 0))), AGE),
    "Lease": (NAME, Column("HOLDER", _field("spec", "holderIdentity")), AGE),
    "HorizontalPodAutoscaler": (NAME, Column("REFERENCE", _hpa_reference),
                                Column("TARGETS", _hpa_targets),
                                Column("MINPODS", _hpa_min),
                                Column("MAXPODS", _field("spec", "maxReplicas")),
                                Column("REPLICAS", _status_count("currentReplicas")), AGE),
    "PodDisruptionBudget": (NAME, Column("MIN AVAILABLE", _pdb_field("minAvailable")),
                            Column("MAX UNAVAILABLE", _pdb_field("maxUnavailable")),
                            Column("ALLOWED DISRUPTIONS", _status_count("disruptionsAllowed")),
                            AGE),
}
GENERIC: tuple[Column, ...] = (NAME, AGE)


@dataclass(frozen=True)
class TableOptions:
    wide: bool = False
    all_namespaces: bool = False
    show_labels: bool = False
    show_kind: bool = False  # several kinds in one `get`: names become `pod/nginx`


def table_cell(kind: str, header: str, obj: Obj, now: datetime | None = None) -> str:
    """One cell of a kind's table (describe reuses a column's arithmetic)."""
    column = next(c for c in COLUMNS[kind] if c.header == header)
    return column.cell(obj, now or datetime.now(UTC))


def sort_for_display(info: ResourceInfo, objects: Sequence[Obj]) -> list[Obj]:
    """Events by time (oldest first, as kubectl sorts them); everything else as listed."""
    if info.kind != "Event":
        return list(objects)
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(objects, key=lambda e: event_time(e) or floor)


def table(info: ResourceInfo, options: TableOptions,
          now: datetime) -> tuple[list[str], Callable[[Obj], list[str]]]:
    """The headers of a kind's table and the function that renders one object as a row."""
    columns = [c for c in COLUMNS.get(info.kind, GENERIC) if options.wide or not c.wide_only]
    headers = [c.header for c in columns]
    if options.all_namespaces and info.namespaced:
        headers.insert(0, "NAMESPACE")
    if options.show_labels:
        headers.append("LABELS")

    def row(obj: Obj) -> list[str]:
        cells = []
        for column in columns:
            cell = column.cell(obj, now)
            if column is NAME and options.show_kind:
                cell = f"{info.qualified}/{cell}"
            cells.append(cell)
        if options.all_namespaces and info.namespaced:
            cells.insert(0, str(_meta(obj).get("namespace", "")))
        if options.show_labels:
            cells.append(format_labels(_meta(obj).get("labels")))
        return cells

    return headers, row
