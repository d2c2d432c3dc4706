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
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Forwarder:
    """Sends a query to the upstreams in order until one answers."""

    def __init__(self, upstreams: Sequence[Upstream], *, timeout: float = 2.0) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout

    async def forward(self, query: dns.message.Message) -> dns.message.Message:
        for upstream in self.upstreams:
            to = str(upstream)
            metrics.FORWARD_REQUESTS.labels(to).inc()
            start = time.perf_counter()
            try:
                response = await dns.asyncquery.udp(query, upstream.host, timeout=self.timeout,
                                                    port=upstream.port)
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(query, upstream.host,
                                                        timeout=self.timeout, port=upstream.port)
            except (dns.exception.DNSException, OSError, EOFError) as err:
                metrics.FORWARD_HEALTHCHECK_FAILURES.labels(to).inc()
                log.debug("upstream failed", extra={"kv": {"to": to, "error": repr(err)}})
                continue
            rcode = dns.rcode.to_text(response.rcode())
            metrics.FORWARD_RESPONSES.labels(to, rcode).inc()
            metrics.FORWARD_DURATION.labels(to, rcode).observe(time.perf_counter() - start)
            return response
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response


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
            self._send(query, response, proto, family, start, self.table.zone, reply)
            return
        task = asyncio.get_running_loop().create_task(
            self._forward(query, proto, family, start, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, query: dns.message.Message, proto: str, family: str,
                       start: float, reply: Reply) -> None:
        try:
            response = await self.forwarder.forward(query)
        except Exception:  # noqa: BLE001 — a bug here must cost one answer, not the server
            log.exception("forwarding failed")
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
        response.id = query.id
        self._send(query, response, proto, family, start, ".", reply, plugin="forward")

    def _send(self, query: dns.message.Message, response: dns.message.Message, proto: str,
              family: str, start: float, zone: str, reply: Reply,
              plugin: str = "kubernetes") -> None:
        limit = 65535
        if proto == UDP:
            limit = max(query.payload, 512) if query.edns >= 0 else 512
        wire = response.to_wire(max_size=limit, prefer_truncation=True)
        reply(wire)
        qtype = dns.rdatatype.to_text(query.question[0].rdtype)
        server = self.server_label
        metrics.REQUESTS.labels(server, zone, "", proto, family, qtype).inc()
        metrics.RESPONSES.labels(server, zone, "", dns.rcode.to_text(response.rcode()),
                                 plugin).inc()
        metrics.REQUEST_DURATION.labels(server, zone, "", qtype).observe(
            time.perf_counter() - start)
        metrics.REQUEST_SIZE.labels(server, zone, "", proto).observe(
            limit if proto == UDP else 65535)
        metrics.RESPONSE_SIZE.labels(server, zone, "", proto).observe(len(wire))

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


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
