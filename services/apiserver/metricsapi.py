"""The resource metrics API (metrics.k8s.io/v1beta1), served the way metrics-server
serves it, but on demand: the apiserver asks the kubelets for their usage
summaries when a client asks, and stores nothing. A kubelet that does not answer
within the timeout is left out, as metrics-server leaves out a node it failed to
scrape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import grpc

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.errors import NotFoundError
from kubelite.objects import now_rfc3339
from kubelite.resources import lookup

from .registry import Registry, compile_filter, node_endpoint

log = logging.getLogger("kubelite.apiserver.metrics")

API_VERSION = "metrics.k8s.io/v1beta1"


def _usage(cpu: dict[str, Any] | None, memory: dict[str, Any] | None) -> dict[str, str]:
    nanocores = int((cpu or {}).get("usageNanoCores") or 0)
    working_set = int((memory or {}).get("workingSetBytes") or 0)
    return {"cpu": f"{nanocores}n", "memory": f"{working_set // 1024}Ki"}


class ResourceMetrics:
    def __init__(self, registry: Registry, *, timeout: float = 3.0) -> None:
        self.registry = registry
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def _summary(self, node: dict[str, Any]) -> dict[str, Any] | None:
        try:
            target = node_endpoint(node)
        except Exception:  # noqa: BLE001 - a node without an endpoint has no metrics
            return None
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(target)
        try:
            reply = await api_pb2_grpc.KubeletStub(channel).Stats(api_pb2.StatsRequest(),
                                                                   timeout=self.timeout)
            return json.loads(reply.summary)
        except (grpc.aio.AioRpcError, ValueError) as err:
            log.warning("kubelet stats unavailable", extra={"kv": {
                "node": node["metadata"]["name"], "error": str(err)[:200]}})
            return None

    async def _nodes(self, names: set[str] | None = None) -> list[dict[str, Any]]:
        page = await self.registry.list(lookup("nodes"), "")
        nodes = [json.loads(raw) for raw in page.items]
        return [n for n in nodes if names is None or n["metadata"]["name"] in names]

    async def nodes(self, *, name: str = "", label_selector: str = "") -> list[bytes]:
        matches = compile_filter(label_selector, "")
        nodes = [n for n in await self._nodes({name} if name else None)
                 if matches is None or matches(n)]
        if name and not nodes:
            raise NotFoundError(f'nodemetrics.{API_VERSION.split("/")[0]} "{name}" not found')
        summaries = await asyncio.gather(*(self._summary(n) for n in nodes))
        items = []
        for node, summary in zip(nodes, summaries, strict=True):
            if summary is None:
                continue
            stats = summary.get("node") or {}
            items.append({
                "apiVersion": API_VERSION, "kind": "NodeMetrics",
                "metadata": {"name": node["metadata"]["name"],
                             "labels": node["metadata"].get("labels") or {},
                             "creationTimestamp": now_rfc3339()},
                "timestamp": summary.get("timestamp") or now_rfc3339(),
                "window": f"{float(summary.get('window') or 0):g}s",
                "usage": _usage(stats.get("cpu"), stats.get("memory")),
            })
        return [json.dumps(i, separators=(",", ":")).encode() for i in items]

    async def pods(self, *, namespace: str = "", name: str = "",
                   label_selector: str = "") -> list[bytes]:
        field = f"metadata.name={name}" if name else ""
        page = await self.registry.list(lookup("pods"), namespace,
                                        label_selector=label_selector, field_selector=field)
        pods = [json.loads(raw) for raw in page.items]
        by_uid = {p["metadata"]["uid"]: p for p in pods if (p.get("spec") or {}).get("nodeName")}
        node_names = {p["spec"]["nodeName"] for p in by_uid.values()}
        nodes = await self._nodes(node_names)
        summaries = await asyncio.gather(*(self._summary(n) for n in nodes))
        items = []
        for summary in summaries:
            if summary is None:
                continue
            for stats in summary.get("pods") or []:
                pod = by_uid.get(stats.get("uid"))
                if pod is None:
                    continue
                items.append({
                    "apiVersion": API_VERSION, "kind": "PodMetrics",
                    "metadata": {"name": pod["metadata"]["name"],
                                 "namespace": pod["metadata"]["namespace"],
                                 "labels": pod["metadata"].get("labels") or {},
                                 "creationTimestamp": now_rfc3339()},
                    "timestamp": summary.get("timestamp") or now_rfc3339(),
                    "window": f"{float(summary.get('window') or 0):g}s",
                    "containers": [{"name": c["name"],
                                    "usage": _usage(c.get("cpu"), c.get("memory"))}
                                   for c in stats.get("containers") or []],
                })
        if name and not items:
            raise NotFoundError(f'podmetrics.{API_VERSION.split("/")[0]} "{name}" not found')
        items.sort(key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"]))
        return [json.dumps(i, separators=(",", ":")).encode() for i in items]
