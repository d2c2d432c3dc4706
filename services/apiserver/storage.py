"""Redis as the etcd of kubelite: every mutation is one atomic Lua script.

The script checks its precondition, increments the single global revision,
stores the object with `metadata.resourceVersion = revision` and appends the
event to one Redis Stream whose entry ID is `<revision>-0`. resourceVersion,
revision and stream position are therefore one number, and the stream is the
commit log that watches replay.

Layout (prefix `kl` by default):
  kl:rev                 the revision counter
  kl:events              the event stream, trimmed to a bounded history
  kl:o:<resource>        hash  "<namespace>/<name>" -> object JSON
  kl:i:<resource>        zset  "<namespace>/<name>" (score 0), for ordered,
                         paginated, per-namespace listing with ZRANGEBYLEX
  kl:terminating         set of namespaces being deleted
  kl:alloc:<allocator>   hash  value -> "<namespace>/<name>" holding it
                         (allocators: clusterip, nodeport)

The object's JSON is built in Python around a placeholder for the revision; the
script splices the revision in, so objects are never decoded in Lua (cjson would
turn empty lists into objects).

High availability (docs/storage-and-watch.md, "Replication and failover"):
  - With --redis-sentinels the storage finds the primary through Redis Sentinel and
    follows a failover without a restart (redis-py's Sentinel pools).
  - With --redis-min-replicas N a write is acknowledged only once N replicas hold
    it: the commit script and `WAIT N timeout` go in one pipeline, on one connection.
  - Every new connection to a primary first runs the epoch script: when the primary
    is not the one the data last saw (`kl:epoch` names Sentinel's config epoch and
    the primary's address), the revision counter jumps to the next multiple of
    EPOCH_BLOCK and a FAILOVER marker goes into the stream. Revisions the old
    primary handed out but never replicated therefore never name another change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from kubelite.errors import (
    NAMESPACE_TERMINATING,
    AlreadyExistsError,
    Cause,
    ConflictError,
    ExpiredError,
    NotFoundError,
    PreconditionFailedError,
    UnavailableError,
)

T = TypeVar("T")

# Error codes (the first word of a Redis error reply) of a server that will answer
# again: a script still running, a dataset loading, a replica or a failover.
_TRANSIENT_REDIS_CODES = frozenset({"BUSY", "LOADING", "READONLY", "MASTERDOWN", "NOREPLICAS",
                                    "TRYAGAIN", "CLUSTERDOWN"})


def redis_error_code(err: ResponseError) -> str:
    """The error code of a Redis error reply, as the protocol puts it first."""
    return str(err).split(" ", 1)[0]

# The placeholder is the first string in the serialized object after apiVersion
# and kind (both validated against the resource table), so the first match is ours.
RV_PLACEHOLDER = "\x00rv\x00"
_RV_PLACEHOLDER_JSON = json.dumps(RV_PLACEHOLDER)

_COMMIT = """
local op, member, expected = ARGV[1], ARGV[2], ARGV[3]
-- The last KEY and ARGV: kl:epoch and the primary this connection was opened to
-- (with Sentinel). A connection from before a failover must not write unjumped.
local primary = ARGV[#ARGV]
if primary ~= '' and redis.call('GET', KEYS[#KEYS]) ~= primary then return {-7} end
local cur = redis.call('HGET', KEYS[3], member)
if op == 'create' then
  if cur then return {-1} end
  if ARGV[9] ~= '' then
    if redis.call('HEXISTS', KEYS[5], '/' .. ARGV[9]) == 0 then return {-2} end
    if redis.call('SISMEMBER', KEYS[6], ARGV[9]) == 1 then return {-3} end
  end
else
  if not cur then return {-4} end
  if expected ~= '' then
    local rv = string.match(cur, '"resourceVersion":"(%d+)"')
    if rv ~= expected then return {-5, rv or ''} end
  end
end
-- Claims (ClusterIPs, NodePorts) are fields of allocator hashes, taken
-- atomically with the write; releases give them back with a delete.
local nclaims = tonumber(ARGV[11])
for i = 1, nclaims do
  local holder = redis.call('HGET', KEYS[6 + i], ARGV[11 + i])
  if holder and holder ~= member then return {-6, i} end
end
local rev = redis.call('INCR', KEYS[1])
local obj = ARGV[4] .. rev .. ARGV[5]
for i = 1, nclaims do redis.call('HSET', KEYS[6 + i], ARGV[11 + i], member) end
local nrel = tonumber(ARGV[12 + nclaims])
for j = 1, nrel do
  local key, field = KEYS[6 + nclaims + j], ARGV[12 + nclaims + j]
  if redis.call('HGET', key, field) == member then redis.call('HDEL', key, field) end
end
if op == 'delete' then
  redis.call('HDEL', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
else
  redis.call('HSET', KEYS[3], member, obj)
  if op == 'create' then redis.call('ZADD', KEYS[4], 0, member) end
end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[8], rev .. '-0',
           't', ARGV[6], 'r', ARGV[7], 'o', obj, 'p', ARGV[10])
return {rev}
"""

_LIST = """
local members
if tonumber(ARGV[3]) > 0 then
  members = redis.call('ZRANGEBYLEX', KEYS[3], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
else
  members = redis.call('ZRANGEBYLEX', KEYS[3], ARGV[1], ARGV[2])
end
local out = {redis.call('GET', KEYS[1]) or '0'}
for i = 1, #members, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #members) do chunk[#chunk + 1] = members[j] end
  local vals = redis.call('HMGET', KEYS[2], unpack(chunk))
  for j = 1, #chunk do
    if vals[j] then
      out[#out + 1] = chunk[j]
      out[#out + 1] = vals[j]
    end
  end
end
return out
"""

# A failover moves the revision counter to the next multiple of this: an old primary
# would have to commit a trillion unreplicated writes to reach the new one's range.
EPOCH_BLOCK = 10**12
FAILOVER = "FAILOVER"  # the type of the stream entry that marks a jump

# KEYS: rev, events, epoch. ARGV: the primary's identity, EPOCH_BLOCK, history.
# Returns {jumped_from, jumped_to}, or {} when this primary is the one the data knows.
_EPOCH = """
local cur = redis.call('GET', KEYS[3])
if cur == ARGV[1] then return {} end
redis.call('SET', KEYS[3], ARGV[1])
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
if rev == 0 then return {} end
local block = tonumber(ARGV[2])
local new = string.format('%d', (math.floor(rev / block) + 1) * block)
local old = string.format('%d', rev)
redis.call('SET', KEYS[1], new)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], new .. '-0',
           't', 'FAILOVER', 'r', '', 'o', '', 'p', '', 'f', old)
return {old, new}
"""

log = logging.getLogger("kubelite.apiserver.storage")


class AllocationConflict(Exception):
    """A claimed value (ClusterIP, NodePort) belongs to another object."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass(frozen=True)
class StoredEvent:
    """One committed change, as read back from the event stream."""

    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    raw: bytes  # the object's JSON, resourceVersion included
    prev: bytes  # the fields that selectors look at, before the change ("" if none)
    # A FAILOVER marker: the last revision before the jump (revisions after it and
    # before this one were never committed on the current primary).
    jumped_from: int = 0


def member_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def split_serialized(obj: dict[str, Any]) -> tuple[str, str]:
    """Serializes an object whose metadata.resourceVersion is RV_PLACEHOLDER.

    Returns the JSON text before and after the placeholder's contents.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    head, sep, tail = text.partition(_RV_PLACEHOLDER_JSON)
    if not sep:
        raise ValueError("object has no resourceVersion placeholder")
    return head + '"', '"' + tail


def parse_event(entry_id: bytes, fields: dict[bytes, bytes]) -> StoredEvent:
    return StoredEvent(
        revision=int(entry_id.split(b"-", 1)[0]),
        type=fields[b"t"].decode(),
        resource=fields[b"r"].decode(),
        raw=fields[b"o"],
        prev=fields.get(b"p", b""),
        jumped_from=int(fields.get(b"f") or 0),
    )


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        return text.strip(), default_port
    return host or "127.0.0.1", int(port)


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (port 26379 when left out) as (host, port) pairs."""
    return [parse_address(part, 26379) for part in text.split(",") if part.strip()]


class _EpochSentinel(Sentinel):
    """Sentinel discovery that also remembers the config epoch each primary came with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epochs: dict[tuple[str, int], int] = {}

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        errors = []
        for sentinel in self.sentinels:
            try:
                state = (await sentinel.sentinel_masters()).get(service_name)
            except (RedisError, OSError) as err:
                errors.append(f"{err!r}")
                continue
            if state and self.check_master_state(state, service_name):
                address = (state["ip"], int(state["port"]))
                # The address and its epoch come from one reply, so a connection to
                # the new primary never carries the old primary's epoch.
                self.epochs[address] = int(state.get("config-epoch") or 0)
                return address
        raise MasterNotFoundError(f"No master found for {service_name!r}: {', '.join(errors)}")


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's primary discovery with the blocking pool's queueing."""

    epoch_keys: tuple[str, str, str] = ("", "", "")
    history: int = 0


class _EpochConnection(SentinelManagedConnection):
    """Runs the epoch script on every new connection to a primary, before any command.

    `primary` names the primary it was opened to; commits on it check that this is
    still the primary the data knows (a connection can outlive a demotion and a
    promotion back, with no write in between to break it).
    """

    primary = ""

    async def connect_to(self, address: tuple[str, int]) -> None:
        await super().connect_to(address)
        pool = self.connection_pool
        epoch = pool.sentinel_manager.epochs.get(tuple(address), 0)
        identity = f"{epoch}@{address[0]}:{address[1]}"
        try:
            await self.send_command("EVAL", _EPOCH, 3, *pool.epoch_keys, identity,
                                    EPOCH_BLOCK, pool.history)
            jumped = await self.read_response()
        except ResponseError as err:
            await self.disconnect()
            raise RedisConnectionError(f"primary {identity} refused the epoch check: "
                                       f"{err}") from None
        self.primary = identity
        if jumped:
            log.warning("a new primary: the revision counter jumps past the old one's",
                        extra={"kv": {"primary": identity, "from": int(jumped[0]),
                                      "to": int(jumped[1])}})


class Storage:
    """The apiserver's only door to Redis. Redis failures become UnavailableError."""

    def __init__(self, url: str, *, prefix: str = "kl", history: int = 10000,
                 timeout: float = 5.0, sentinels: Sequence[tuple[str, int]] = (),
                 master_name: str = "kubelite", min_replicas: int = 0,
                 wait_timeout: float = 1.0) -> None:
        self.prefix = prefix
        self.history = history
        self.timeout = timeout
        self.min_replicas = min_replicas
        self.wait_timeout = wait_timeout
        self.rev_key = f"{prefix}:rev"
        self.events_key = f"{prefix}:events"
        self.epoch_key = f"{prefix}:epoch"
        self.fence_channel = f"{prefix}:fence"
        self.terminating_key = f"{prefix}:terminating"
        common: dict[str, Any] = dict(
            socket_connect_timeout=min(timeout, 2.0),
            retry=Retry(NoBackoff(), 0),
        )
        self.sentinel: _EpochSentinel | None = None
        if sentinels:
            self.sentinel = _EpochSentinel(
                list(sentinels), sentinel_kwargs=dict(
                    socket_timeout=min(timeout, 1.0), socket_connect_timeout=min(timeout, 1.0)))
            pools = [
                _BlockingSentinelPool(master_name, self.sentinel,
                                      connection_class=_EpochConnection,
                                      max_connections=64, timeout=timeout, **common),
                _BlockingSentinelPool(master_name, self.sentinel,
                                      connection_class=_EpochConnection, max_connections=2,
                                      timeout=timeout, socket_timeout=timeout + 5.0,
                                      client_name="kubelite-watchcache", **common),
            ]
            for pool in pools:
                pool.epoch_keys = (self.rev_key, self.events_key, self.epoch_key)
                pool.history = history
            self.redis = aioredis.Redis(connection_pool=pools[0])
            self.stream_redis = aioredis.Redis(connection_pool=pools[1])
        else:
            # No socket_timeout here: guard() bounds every call already, and redis-py
            # would wrap each send in one more wait_for. A blocking pool queues calls
            # beyond max_connections instead of failing them.
            self.redis = aioredis.Redis(connection_pool=BlockingConnectionPool.from_url(
                url, max_connections=64, timeout=timeout, **common))
            # Blocking stream reads get a connection of their own, with a timeout
            # longer than the block, so that they never starve ordinary calls.
            self.stream_redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout + 5.0, client_name="kubelite-watchcache",
                max_connections=2, **common)
        self._commit = self.redis.register_script(_COMMIT)
        self._list = self.redis.register_script(_LIST)

    def hash_key(self, resource: str) -> str:
        return f"{self.prefix}:o:{resource}"

    def index_key(self, resource: str) -> str:
        return f"{self.prefix}:i:{resource}"

    def allocator_key(self, allocator: str) -> str:
        return f"{self.prefix}:alloc:{allocator}"

    async def allocated(self, allocator: str) -> set[str]:
        """Every value of an allocator that some object holds."""
        return {v.decode() for v in await self.guard(
            self.redis.hkeys(self.allocator_key(allocator)))}

    async def close(self) -> None:
        await self.redis.aclose()
        await self.stream_redis.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()

    async def guard(self, op: Awaitable[T] | Callable[[], Awaitable[T]],
                    timeout: float | None = None) -> T:
        """Runs one Redis operation, bounded in time, with failures as UnavailableError."""
        awaitable = op() if callable(op) else op
        try:
            async with asyncio.timeout(timeout or self.timeout):
                return await awaitable
        except TimeoutError:
            raise UnavailableError("storage is unavailable: redis did not answer in time") from None
        except ResponseError as err:
            if redis_error_code(err) in _TRANSIENT_REDIS_CODES:
                raise UnavailableError(f"storage is unavailable: {err}") from None
            raise
        except (RedisError, OSError) as err:
            raise UnavailableError(f"storage is unavailable: {err}") from None

    async def ping(self) -> None:
        await self.guard(self.redis.ping())

    async def get(self, resource: str, namespace: str, name: str) -> bytes | None:
        return await self.guard(self.redis.hget(self.hash_key(resource),
                                                member_key(namespace, name)))

    async def commit(
        self,
        op: str,
        resource: str,
        namespace: str,
        name: str,
        parts: tuple[str, str],
        *,
        expected_rv: str = "",
        event_type: str,
        check_namespace: str = "",
        prev: bytes = b"",
        claims: Sequence[tuple[str, str]] = (),
        releases: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """Atomically writes (create/update) or removes (delete) one object.

        `parts` is the object's JSON split around its revision (split_serialized).
        `claims` and `releases` are (allocator, value) pairs taken for this object
        or given back by it in the same transaction. Returns the new revision and
        the stored JSON; raises AllocationConflict if a claim is held by another.
        """
        head, tail = parts
        keys = [self.rev_key, self.events_key, self.hash_key(resource), self.index_key(resource),
                self.hash_key("namespaces"), self.terminating_key]
        keys += [self.allocator_key(a) for a, _ in claims]
        keys += [self.allocator_key(a) for a, _ in releases]
        keys.append(self.epoch_key)
        args = [op, member_key(namespace, name), expected_rv, head, tail, event_type, resource,
                self.history, check_namespace, prev, len(claims), *(v for _, v in claims),
                len(releases), *(v for _, v in releases)]
        if self.min_replicas > 0 or self.sentinel is not None:
            result = await self.guard(self._pinned_commit(keys, args),
                                      max(timeout or self.timeout, self.wait_timeout + 1.0))
        else:
            result = await self.guard(self._commit(keys=keys, args=[*args, ""]), timeout)
        code = int(result[0])
        if code > 0:
            return code, f"{head}{code}{tail}".encode()
        if code == -6:
            raise AllocationConflict(int(result[1]) - 1)
        if code == -1:
            raise AlreadyExistsError(f'{resource} "{name}" already exists')
        if code == -2:
            raise NotFoundError(f'namespaces "{check_namespace}" not found')
        if code == -3:
            message = (f"unable to create new content in namespace {check_namespace} "
                       "because it is being terminated")
            raise PreconditionFailedError(message, reason="Forbidden", causes=[
                Cause(NAMESPACE_TERMINATING, message, "metadata.namespace")])
        if code == -4:
            raise NotFoundError(f'{resource} "{name}" not found')
        raise ConflictError(
            f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
            f'modified; please apply your changes to the latest version and try again')

    async def _pinned_commit(self, keys: list[Any], args: list[Any]) -> Any:
        """The commit script, then (with min_replicas) WAIT, on one connection whose
        primary the script checks: acknowledged once replicated.

        When fewer than min_replicas confirm within wait_timeout the write is NOT
        acknowledged (UnavailableError), although it is committed on the primary and
        may yet survive, as etcd's request timeouts: the caller must read to know.
        """
        loaded = False
        for _ in range(3):
            conn = await self.redis.connection_pool.get_connection()
            pipe = self.redis.pipeline(transaction=False)
            pipe.connection = conn  # the pipeline releases it when done
            pipe.evalsha(self._commit.sha, len(keys), *keys, *args,
                         getattr(conn, "primary", ""))
            if self.min_replicas > 0:
                pipe.execute_command("WAIT", self.min_replicas, int(self.wait_timeout * 1000))
            result, *acked = await pipe.execute(raise_on_error=False)
            if isinstance(result, NoScriptError) and not loaded:
                # A primary just promoted (or restarted) has an empty script cache.
                await self.redis.script_load(_COMMIT)
                loaded = True
                continue
            if isinstance(result, Exception):
                raise result
            code = int(result[0])
            if code == -7:
                # Opened to this server before it became (again) the primary: the next
                # connection asks Sentinel and runs the epoch script first.
                await conn.disconnect()
                continue
            if code > 0 and acked and (isinstance(acked[0], Exception)
                                       or int(acked[0]) < self.min_replicas):
                raise UnavailableError(
                    f"storage is unavailable: revision {code} was committed but not confirmed "
                    f"by {self.min_replicas} replica(s) within {self.wait_timeout:g}s; it may "
                    f"or may not survive a failover (read it back to know)")
            return result
        raise UnavailableError("storage is unavailable: no connection to the current primary")

    async def replicated(self) -> bool:
        """Whether everything committed so far is held by min_replicas replicas.

        A write on this connection (a PUBLISH nobody hears) moves its replication
        offset past every commit made before it, so WAIT then covers them all.
        """
        if self.min_replicas <= 0:
            return True
        pipe = self.redis.pipeline(transaction=False)
        pipe.publish(self.fence_channel, b"")
        pipe.execute_command("WAIT", self.min_replicas, int(self.wait_timeout * 1000))
        _, acked = await self.guard(pipe.execute(), self.wait_timeout + self.timeout)
        return int(acked) >= self.min_replicas

    async def list(self, resource: str, namespace: str, *, after: str = "",
                   count: int = 0) -> tuple[int, list[tuple[str, bytes]]]:
        """Reads objects in key order, with the revision they are consistent with.

        namespace "" lists every namespace; `after` is an exclusive start key.
        """
        if namespace:
            low, high = f"[{namespace}/", f"({namespace}0"  # '0' sorts right after '/'
        else:
            low, high = "-", "+"
        if after and (low == "-" or after >= low[1:]):
            low = f"({after}"
        keys = [self.rev_key, self.hash_key(resource), self.index_key(resource)]
        result = await self.guard(self._list(keys=keys, args=[low, high, count]))
        pairs = [(result[i].decode(), result[i + 1]) for i in range(1, len(result), 2)]
        return int(result[0]), pairs

    async def current_revision(self) -> int:
        return int(await self.guard(self.redis.get(self.rev_key)) or 0)

    async def last_stream_revision(self) -> int:
        """The revision of the newest retained event (or the counter, if none)."""
        entries = await self.guard(self.redis.xrevrange(self.events_key, count=1))
        if entries:
            return int(entries[0][0].split(b"-", 1)[0])
        return await self.current_revision()

    async def read_range(self, after: int, upto: int, count: int = 1000) -> list[StoredEvent]:
        """Events with after < revision <= upto; raises ExpiredError if some were trimmed."""
        out: list[StoredEvent] = []
        start = after + 1
        while start <= upto:
            entries = await self.guard(self.redis.xrange(
                self.events_key, min=f"{start}-0", max=f"{upto}-0", count=count))
            if not entries:
                break
            events = [parse_event(eid, fields) for eid, fields in entries]
            contiguous = 0
            for event in events:
                # A FAILOVER marker continues the revision it jumped from.
                if event.revision != start and not (
                        event.type == FAILOVER and event.jumped_from == start - 1):
                    break
                out.append(event)
                start = event.revision + 1
                contiguous += 1
            if contiguous < len(events):
                break
        if start <= upto:
            raise ExpiredError(
                f"too old resource version: {after} (history is trimmed; list again)")
        return out

    async def read_stream(self, after: int, block_ms: int, count: int = 1000
                          ) -> list[StoredEvent]:
        """Blocks up to block_ms for events after revision `after` (the watch cache's reader)."""
        response = await self.guard(
            self.stream_redis.xread({self.events_key: f"{after}-0"}, count=count,
                                    block=block_ms),
            timeout=self.timeout + block_ms / 1000,
        )
        if not response:
            return []
        return [parse_event(eid, fields) for eid, fields in response[0][1]]

    async def mark_terminating(self, namespace: str) -> None:
        await self.guard(self.redis.sadd(self.terminating_key, namespace))

    async def unmark_terminating(self, namespace: str) -> None:
        await self.guard(self.redis.srem(self.terminating_key, namespace))

    async def terminating_namespaces(self) -> list[str]:
        return sorted(m.decode() for m in await self.guard(
            self.redis.smembers(self.terminating_key)))
