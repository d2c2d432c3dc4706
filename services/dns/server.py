"""The DNS server: queries in, answers out, over UDP and TCP, with dnspython for
the wire format.

A query for a name under the cluster zone is answered from the RecordTable at
once, authoritatively, on the event loop: no await between the datagram and
the answer. Every other name (reverse names the table does not hold
included) is forwarded to the upstream resolvers in order, the next one
trying after a timeout or refusal, and the upstream's answer is passed back
unchanged; when none answers the client gets SERVFAIL, as CoreDNS's forward
plugin does. A UDP answer larger than the client's buffer (512 bytes, or its
EDNS size) is truncated with TC set, so the client retries over TCP.

Cluster answers are cached as wire bytes, keyed by the query's bytes after its
ID (flags, question and EDNS included), so a repeated query is a dict lookup
and a copy with the new ID: dnspython's parsing and rendering, most of the
cost, run once per name. The cache is emptied whenever the table changes, so
it never serves an answer older than the records. Forwarded answers are not
cached: their TTLs belong to the upstream.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from . import metrics
from .records import CNAME, Record, RecordTable

log = logging.getLogger("kubelite.dns")

UDP, TCP = "udp", "tcp"
IN = dns.rdataclass.IN
Reply = Callable[[bytes], None]
ANSWER_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class _Observed:
    """What the metrics record of one answer: the label children and the sizes."""

    children: tuple[Any, ...]
    request_size: float
    response_size: float


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def question_length(wire: bytes) -> int:
    """The length of the first question (name, type, class) that follows the header."""
    offset = 12
    while offset < len(wire):
        size = wire[offset]
        if size == 0:
            return offset + 5 - 12
        if size & 0xC0:
            return offset + 6 - 12  # a compression pointer ends the name
        offset += size + 1
    raise ValueError("truncated question")


class _UpstreamSocket(asyncio.DatagramProtocol):
    """One connected UDP socket to one upstream, shared by every query in flight;
    an answer is matched to its query by ID and question."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[bytes, asyncio.Future[bytes]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if len(data) < 12:
            return
        entry = self.pending.get(int.from_bytes(data[:2], "big"))
        if entry is None:
            return
        question, future = entry
        if data[12:12 + len(question)].lower() == question and not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable) is the socket's, not one query's: every query
        # in flight moves on to the next upstream.
        for _, future in self.pending.values():
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.error_received(exc or ConnectionError("closed"))
        self.transport = None


class Forwarder:
    """Sends a query to the upstreams in order until one answers.

    The query's bytes go out as they came, with an ID of the forwarder's own over a
    long-lived socket per upstream (CoreDNS's forward reuses connections too), and the
    answer's bytes come back with the client's ID: nothing is parsed or rendered again
    unless the upstream truncated its answer, which is then asked again over TCP.
    """

    def __init__(self, upstreams: Sequence[Upstream], *, timeout: float = 2.0) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self._sockets: dict[Upstream, _UpstreamSocket] = {}

    async def _socket(self, upstream: Upstream) -> _UpstreamSocket:
        sock = self._sockets.get(upstream)
        if sock is None or sock.transport is None or sock.transport.is_closing():
            loop = asyncio.get_running_loop()
            _, sock = await loop.create_datagram_endpoint(
                _UpstreamSocket, remote_addr=(upstream.host, upstream.port))
            self._sockets[upstream] = sock
        return sock

    async def forward(self, wire: bytes, query: dns.message.Message) -> bytes | None:
        """The upstream's answer with the query's ID, or None when none answered."""
        question = wire[12:12 + question_length(wire)].lower()
        for upstream in self.upstreams:
            to = str(upstream)
            metrics.FORWARD_REQUESTS.labels(to).inc()
            start = time.perf_counter()
            try:
                data = await self._exchange(upstream, wire, question)
                if data[2] & 0x02:  # TC: the whole answer only comes over TCP
                    response = await dns.asyncquery.tcp(query, upstream.host,
                                                        timeout=self.timeout, port=upstream.port)
                    data = response.to_wire()
            except (TimeoutError, dns.exception.DNSException, OSError, EOFError) as err:
                metrics.FORWARD_HEALTHCHECK_FAILURES.labels(to).inc()
                log.debug("upstream failed", extra={"kv": {"to": to, "error": repr(err)}})
                continue
            rcode = dns.rcode.to_text(data[3] & 0x0F)
            metrics.FORWARD_RESPONSES.labels(to, rcode).inc()
            metrics.FORWARD_DURATION.labels(to, rcode).observe(time.perf_counter() - start)
            return wire[:2] + data[2:]
        return None

    async def _exchange(self, upstream: Upstream, wire: bytes, question: bytes) -> bytes:
        sock = await self._socket(upstream)
        qid = random.randrange(65536)
        while qid in sock.pending:
            qid = random.randrange(65536)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        sock.pending[qid] = (question, future)
        try:
            assert sock.transport is not None
            sock.transport.sendto(qid.to_bytes(2, "big") + wire[2:])
            return await asyncio.wait_for(future, self.timeout)
        finally:
            sock.pending.pop(qid, None)

    def close(self) -> None:
        for sock in self._sockets.values():
            if sock.transport is not None:
                sock.transport.close()
        self._sockets.clear()


class DnsServer:
    """Answers one query's wire bytes; the transports below call `handle`."""

    def __init__(self, table: RecordTable, forwarder: Forwarder, *, ttl: int = 5,
                 server_label: str = "dns://:53") -> None:
        self.table = table
        self.forwarder = forwarder
        self.ttl = ttl
        self.server_label = server_label
        self.zone = dns.name.from_text(table.zone)
        self._rdata: dict[Record, dns.rdata.Rdata] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._answers: dict[tuple[str, bytes], tuple[bytes, _Observed]] = {}
        self._answers_generation = -1
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._soa = dns.rrset.from_text(
            self.zone, ttl, IN, "SOA",
            f"ns.dns.{table.zone} hostmaster.{table.zone} {int(time.time())} 7200 1800 86400 "
            f"{ttl}")

    # -- answering -------------------------------------------------------------

    def _rd(self, record: Record) -> dns.rdata.Rdata:
        rd = self._rdata.get(record)
        if rd is None:
            if len(self._rdata) > 100_000:
                self._rdata.clear()  # records of long-gone Services: rebuilt on demand
            rd = dns.rdata.from_text(IN, record.rdtype, record.value)
            self._rdata[record] = rd
        return rd

    def answer_local(self, query: dns.message.Message) -> dns.message.Message | None:
        """The answer from the table, or None when the query is to be forwarded."""
        question = query.question[0]
        text = question.name.to_text().lower()
        exists, records = self.table.lookup(text)
        if not self.table.in_zone(text) and not records:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        wanted = dns.rdatatype.to_text(question.rdtype)
        cnames = [r for r in records if r.rdtype == CNAME]
        chosen = cnames if cnames and wanted != CNAME else [
            r for r in records if r.rdtype == wanted or question.rdtype == dns.rdatatype.ANY]
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        for record in chosen:
            rrset = response.find_rrset(response.answer, question.name, IN,
                                        dns.rdatatype.from_text(record.rdtype), create=True)
            rrset.add(self._rd(record), self.ttl)
        if not chosen and self.table.in_zone(text):
            response.authority.append(self._soa)
        return response

    def handle(self, wire: bytes, proto: str, family: str, reply: Reply) -> None:
        """Answers `wire`, calling reply(bytes) now (cluster names) or later (forwarded)."""
        start = time.perf_counter()
        if self._answers_generation != self.table.generation:
            self._answers.clear()
            self._answers_generation = self.table.generation
        cache_key = (proto, wire[2:])
        hit = self._answers.get(cache_key)
        if hit is not None and len(wire) > 2:
            answer, observed = hit
            reply(wire[:2] + answer)
            self._observe(observed, start)
            return
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return  # not DNS: no answer, as every server does
        if len(query.question) != 1 or query.opcode() != 0:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() else dns.rcode.FORMERR)
            reply(response.to_wire())
            return
        response = self.answer_local(query)
        if response is not None:
            self._send(query, response, proto, family, start, self.table.zone, reply,
                       cache_key=cache_key)
            return
        task = asyncio.get_running_loop().create_task(
            self._forward(wire, query, proto, family, start, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, wire: bytes, query: dns.message.Message, proto: str,
                       family: str, start: float, reply: Reply) -> None:
        try:
            data = await self.forwarder.forward(wire, query)
        except Exception:  # noqa: BLE001 — a bug here must cost one answer, not the server
            log.exception("forwarding failed")
            data = None
        limit = self._limit(query, proto)
        if data is None or len(data) > limit:
            if data is None:
                response = dns.message.make_response(query)
                response.set_rcode(dns.rcode.SERVFAIL)
            else:
                response = dns.message.from_wire(data)
            self._send(query, response, proto, family, start, ".", reply, plugin="forward")
            return
        reply(data)
        labels = (".", proto, family, dns.rdatatype.to_text(query.question[0].rdtype),
                  dns.rcode.to_text(data[3] & 0x0F), "forward")
        self._observe(_Observed(self._label_children_of(labels), float(limit),
                                float(len(data))), start)

    @staticmethod
    def _limit(query: dns.message.Message, proto: str) -> int:
        if proto == UDP:
            return max(query.payload, 512) if query.edns >= 0 else 512
        return 65535

    def _label_children_of(self, labels: tuple[str, ...]) -> tuple[Any, ...]:
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = self._label_children(*labels)
        return children

    def _send(self, query: dns.message.Message, response: dns.message.Message, proto: str,
              family: str, start: float, zone: str, reply: Reply,
              plugin: str = "kubernetes",
              cache_key: tuple[str, bytes] | None = None) -> None:
        limit = self._limit(query, proto)
        wire = response.to_wire(max_size=limit, prefer_truncation=True)
        reply(wire)
        labels = (zone, proto, family, dns.rdatatype.to_text(query.question[0].rdtype),
                  dns.rcode.to_text(response.rcode()), plugin)
        observed = _Observed(self._label_children_of(labels), float(limit), float(len(wire)))
        if cache_key is not None:
            if len(self._answers) >= ANSWER_CACHE_SIZE:
                self._answers.clear()
            self._answers[cache_key] = (wire[2:], observed)
        self._observe(observed, start)

    def _label_children(self, zone: str, proto: str, family: str, qtype: str, rcode: str,
                        plugin: str) -> tuple[Any, ...]:
        server = self.server_label
        return (metrics.REQUESTS.labels(server, zone, "", proto, family, qtype),
                metrics.RESPONSES.labels(server, zone, "", rcode, plugin),
                metrics.REQUEST_DURATION.labels(server, zone, "", qtype),
                metrics.REQUEST_SIZE.labels(server, zone, "", proto),
                metrics.RESPONSE_SIZE.labels(server, zone, "", proto))

    @staticmethod
    def _observe(observed: _Observed, start: float) -> None:
        requests, responses, duration, request_size, response_size = observed.children
        requests.inc()
        responses.inc()
        duration.observe(time.perf_counter() - start)
        request_size.observe(observed.request_size)
        response_size.observe(observed.response_size)

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.forwarder.close()


# -- transports -----------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, family: str) -> None:
        self.server = server
        self.family = family
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        transport = self.transport

        def reply(wire: bytes) -> None:
            if transport is not None and not transport.is_closing():
                transport.sendto(wire, addr)

        self.server.handle(data, UDP, self.family, reply)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error", extra={"kv": {"error": repr(exc)}})


async def _serve_tcp_client(server: DnsServer, family: str, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    def reply(wire: bytes) -> None:
        if not writer.is_closing():
            writer.write(struct.pack("!H", len(wire)) + wire)

    try:
        while True:
            header = await asyncio.wait_for(reader.readexactly(2), 30.0)
            (size,) = struct.unpack("!H", header)
            server.handle(await reader.readexactly(size), TCP, family, reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


@dataclass
class Listeners:
    udp: asyncio.DatagramTransport
    tcp: asyncio.Server

    @property
    def port(self) -> int:
        return self.udp.get_extra_info("sockname")[1]

    async def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        await self.tcp.wait_closed()


async def listen(server: DnsServer, host: str, port: int) -> Listeners:
    """Binds UDP and TCP on host:port (port 0: a free one, the same for both)."""
    family = "2" if ":" in host else "1"
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(server, family),
                                                 local_addr=(host, port))
    bound = udp.get_extra_info("sockname")[1]
    tcp = await asyncio.start_server(
        lambda r, w: _serve_tcp_client(server, family, r, w), host, bound, reuse_address=True)
    return Listeners(udp=udp, tcp=tcp)
