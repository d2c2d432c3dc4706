"""userspace mode: an asyncio TCP listener per ClusterIP:port and per NodeIP:nodePort,
each connection forwarded to a Ready endpoint.

- Routing state (which service a listening address belongs to, its endpoints)
  is plain dicts updated synchronously by `update()`, so an Endpoints change
  applies to the very next connection; only opening and closing listeners
  waits for the reconcile task.
- ClusterIP listeners bind with SO_REUSEPORT: in the process runtime every
  node's proxy runs on the same host and binds the same ClusterIP:port (a
  loopback address), and the kernel spreads connections among them, which is
  harmless because they all route the same way. NodePorts bind this node's own
  `--node-ip` (every node of the process runtime has its own loopback IP), with
  no SO_REUSEPORT, so that two owners of one port are an error, not a lottery.
- A connect that is refused or times out (`--connect-timeout`) is retried on
  another endpoint; the client only sees a failure when every endpoint failed.
- Bytes are copied both ways with backpressure (`drain()`), and a half-close
  (EOF from one side) is passed on as a half-close.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from . import metrics
from .balancer import ROUND_ROBIN, Balancer
from .model import Endpoint, ServicePort
from .vips import VipManager

log = logging.getLogger("kubelite.proxy")

Address = tuple[str, int]
BUFFER = 256 * 1024


@dataclass
class _PortState:
    """One service port's routing state and its metric children."""

    sp: ServicePort
    balancer: Balancer
    active: Gauge
    accepted: Counter
    bytes_in: Counter
    bytes_out: Counter
    connect_errors: Counter
    no_endpoint: Counter


@dataclass
class _Listener:
    server: asyncio.base_events.Server | None = None
    failed_at: float = 0.0
    attempts: int = 0
    reported: bool = False


def _label(sp: ServicePort) -> str:
    return sp.port_name_string


class UserspaceProxier:
    def __init__(
        self,
        *,
        node_ip: str,
        balancing: str = ROUND_ROBIN,
        connect_timeout: float = 1.0,
        sync_period: float = 30.0,
        vips: VipManager | None = None,
        on_listen_error: Callable[[ServicePort, str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_ip = node_ip
        self.balancing = balancing
        self.connect_timeout = connect_timeout
        self.sync_period = sync_period
        self.vips = vips
        self.on_listen_error = on_listen_error
        self._rng = rng or random.Random()
        #: service key -> its TCP ports' ids (port_name_string)
        self._by_service: dict[str, list[str]] = {}
        self._ports: dict[str, _PortState] = {}
        #: listening address -> port id; what a new connection on it is routed by
        self._routes: dict[Address, str] = {}
        #: the subset of _routes that are NodePorts (bound without SO_REUSEPORT)
        self._node_ports: set[Address] = set()
        self._listeners: dict[Address, _Listener] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._dirty = asyncio.Event()
        self._warned_protocols: set[str] = set()

    # -- fed by the ServiceTracker ---------------------------------------------------

    def update(self, key: str, ports: list[ServicePort],
               trigger_time: float | None = None) -> None:
        tcp = []
        for sp in ports:
            if sp.protocol == "TCP":
                tcp.append(sp)
            elif _label(sp) not in self._warned_protocols:
                self._warned_protocols.add(_label(sp))
                log.warning("userspace mode forwards TCP only; ignoring a port",
                            extra={"kv": {"service": _label(sp), "protocol": sp.protocol}})
        new_ids = [_label(sp) for sp in tcp]
        for old in self._by_service.pop(key, []):
            if old not in new_ids:
                self._drop_port(old)
        for sp in tcp:
            state = self._ports.get(_label(sp))
            if state is None:
                self._ports[_label(sp)] = self._new_state(sp)
                self._route(_label(sp), sp)
            else:
                if (state.sp.cluster_ip, state.sp.port, state.sp.node_port) != \
                        (sp.cluster_ip, sp.port, sp.node_port):
                    self._unroute(_label(sp))
                    self._route(_label(sp), sp)
                state.sp = sp
                state.balancer.update(sp.endpoints, sp.affinity_timeout)
        if new_ids:
            self._by_service[key] = new_ids
        if trigger_time is not None:
            # The change is live for new connections now; listeners follow in the loop.
            metrics.NETWORK_PROGRAMMING.observe(max(0.0, time.time() - trigger_time))
        self._dirty.set()

    def _new_state(self, sp: ServicePort) -> _PortState:
        label = _label(sp)
        return _PortState(
            sp=sp,
            balancer=Balancer(sp.endpoints, mode=self.balancing,
                              affinity_timeout=sp.affinity_timeout, rng=self._rng),
            active=metrics.ACTIVE_CONNECTIONS.labels(label),
            accepted=metrics.CONNECTIONS.labels(label),
            bytes_in=metrics.BYTES.labels(label, "in"),
            bytes_out=metrics.BYTES.labels(label, "out"),
            connect_errors=metrics.ERRORS.labels(label, "connect"),
            no_endpoint=metrics.ERRORS.labels(label, "no_endpoint"),
        )

    def _drop_port(self, port_id: str) -> None:
        if self._ports.pop(port_id, None) is None:
            return
        self._unroute(port_id)
        # Connections still open keep their metric children; the series go away.
        for metric, labels in ((metrics.ACTIVE_CONNECTIONS, (port_id,)),
                               (metrics.CONNECTIONS, (port_id,)),
                               (metrics.BYTES, (port_id, "in")),
                               (metrics.BYTES, (port_id, "out")),
                               (metrics.ERRORS, (port_id, "connect")),
                               (metrics.ERRORS, (port_id, "no_endpoint")),
                               (metrics.ERRORS, (port_id, "listen"))):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)

    def _addresses(self, sp: ServicePort) -> list[tuple[Address, bool]]:
        """(address, is a NodePort) pairs a service port listens on."""
        out = [((sp.cluster_ip, sp.port), False)]
        if sp.node_port:
            out.append(((self.node_ip, sp.node_port), True))
        return out

    def _route(self, port_id: str, sp: ServicePort) -> None:
        # First come, first served: the apiserver never gives one address to two
        # services at once, and watch events arrive in commit order.
        for address, node_port in self._addresses(sp):
            if self._routes.setdefault(address, port_id) == port_id and node_port:
                self._node_ports.add(address)

    def _unroute(self, port_id: str) -> None:
        state = self._ports.get(port_id)
        owned = [a for a, owner in self._routes.items() if owner == port_id] if state is None \
            else [a for a, _ in self._addresses(state.sp) if self._routes.get(a) == port_id]
        for address in owned:
            del self._routes[address]
            self._node_ports.discard(address)
            # Hand the address to another port that wants it, if one was waiting.
            for other_id, other in self._ports.items():
                if other_id == port_id:
                    continue
                for candidate, node_port in self._addresses(other.sp):
                    if candidate == address:
                        self._routes[address] = other_id
                        if node_port:
                            self._node_ports.add(address)
                        break
                if address in self._routes:
                    break

    def endpoints_of(self, port_id: str) -> tuple[Endpoint, ...]:
        state = self._ports.get(port_id)
        return state.balancer.endpoints if state else ()

    @property
    def listening(self) -> set[Address]:
        return {a for a, lst in self._listeners.items() if lst.server is not None}

    # -- listeners --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                retry_in = await self.reconcile()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), retry_in)
        finally:
            await self.close()

    async def reconcile(self) -> float:
        """Opens and closes listeners to match the routes; returns when to look again."""
        self._dirty.clear()
        start = time.monotonic()
        wanted = dict(self._routes)
        for address in [a for a in self._listeners if a not in wanted]:
            await self._close_listener(address)
        next_try = self.sync_period
        now = time.monotonic()
        for address, port_id in wanted.items():
            listener = self._listeners.setdefault(address, _Listener())
            if listener.server is not None:
                continue
            delay = min(self.sync_period, 0.5 * 2 ** min(listener.attempts, 8))
            if listener.attempts and now - listener.failed_at < delay:
                next_try = min(next_try, delay - (now - listener.failed_at))
                continue
            await self._open_listener(address, port_id, listener)
            if listener.server is None:
                next_try = min(next_try, min(self.sync_period, 0.5 * 2 ** listener.attempts))
        metrics.LISTENERS.set(len(self.listening))
        metrics.SYNC_DURATION.observe(time.monotonic() - start)
        metrics.SYNC_LAST_TIMESTAMP.set(time.time())
        return next_try

    async def _open_listener(self, address: Address, port_id: str, listener: _Listener) -> None:
        ip, port = address
        cluster = address not in self._node_ports
        try:
            if cluster and self.vips is not None:
                await self.vips.hold(ip)
            listener.server = await asyncio.start_server(
                lambda r, w: self._accept(address, r, w), host=ip, port=port,
                reuse_address=True, reuse_port=cluster, backlog=1024, limit=BUFFER)
        except OSError as err:
            listener.failed_at = time.monotonic()
            listener.attempts += 1
            reason = errno.errorcode.get(err.errno or 0, str(err))
            state = self._ports.get(port_id)
            if state is not None:
                metrics.ERRORS.labels(port_id, "listen").inc()
            if not listener.reported:
                listener.reported = True
                log.warning("cannot listen", extra={"kv": {
                    "address": f"{ip}:{port}", "service": port_id, "error": str(err)}})
                if state is not None and self.on_listen_error is not None:
                    self.on_listen_error(state.sp, f"cannot listen on {ip}:{port}: {reason}")
            return
        listener.attempts = 0
        if listener.reported:
            log.info("listening after all", extra={"kv": {"address": f"{ip}:{port}"}})
        listener.reported = False
        log.debug("listening", extra={"kv": {"address": f"{ip}:{port}", "service": port_id}})

    async def _close_listener(self, address: Address) -> None:
        listener = self._listeners.pop(address)
        if listener.server is not None:
            # Close the listening socket only; connections in flight finish normally
            # (Server.wait_closed would wait for them on newer Pythons).
            listener.server.close()
            log.debug("closed listener", extra={"kv": {"address": f"{address[0]}:{address[1]}"}})
        if self.vips is not None and not any(a[0] == address[0] for a in self._listeners):
            await self.vips.release(address[0])  # a no-op for addresses it does not hold

    async def close(self) -> None:
        for address in list(self._listeners):
            await self._close_listener(address)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        metrics.LISTENERS.set(0)

    # -- connections --------------------------------------------------------------------

    async def _accept(self, address: Address, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(address, reader, writer)
        finally:
            self._connections.discard(task)

    async def _serve(self, address: Address, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        state = self._ports.get(self._routes.get(address, ""))
        if state is None:  # the service went away while the listener was closing
            writer.transport.abort()
            return
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        state.accepted.inc()
        state.active.inc()
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream = await self._connect(state, client_ip)
            if upstream is None:
                state.no_endpoint.inc()
                writer.transport.abort()  # a reset, as connecting to a dead port would give
                return
            upstream_reader, upstream_writer = upstream
            await _splice(reader, writer, upstream_reader, upstream_writer,
                          state.bytes_in, state.bytes_out)
        finally:
            state.active.dec()
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()

    async def _connect(self, state: _PortState, client_ip: str
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        tried: set[Endpoint] = set()
        while True:
            # Look the balancer up each time: an update may have replaced the endpoints.
            ep = state.balancer.pick(client_ip, tried)
            if ep is None:
                return None
            try:
                conn = await asyncio.wait_for(
                    asyncio.open_connection(ep.ip, ep.port, limit=BUFFER), self.connect_timeout)
            except (OSError, TimeoutError) as err:
                tried.add(ep)
                state.balancer.failed(client_ip, ep)
                state.connect_errors.inc()
                log.debug("endpoint failed; trying another", extra={"kv": {
                    "service": _label(state.sp), "endpoint": ep.address,
                    "error": type(err).__name__}})
                continue
            state.balancer.connected(client_ip, ep)
            sock = conn[1].get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, counter: Counter) -> None:
    while True:
        data = await src.read(BUFFER)
        if not data:
            break
        dst.write(data)
        counter.inc(len(data))
        await dst.drain()
    if dst.can_write_eof() and not dst.is_closing():
        dst.write_eof()


async def _splice(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                  up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter,
                  bytes_in: Counter, bytes_out: Counter) -> None:
    """Copies both ways until both sides are done; an error on either side ends both."""
    sock = client_w.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tasks = {asyncio.create_task(_pipe(client_r, up_w, bytes_in)),
             asyncio.create_task(_pipe(up_r, client_w, bytes_out))}
    try:
        pending = tasks
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                break  # a reset or a broken pipe: tear the whole connection down
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
