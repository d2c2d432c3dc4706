"""Informers: a local, indexed cache of one resource, kept current by list+watch.

The one idea: *list once, then follow the commit log from the list's
resourceVersion*, so the cache is the truth as of `last_resource_version`.

- The informer lists (page by page), replaces its cache, and watches from the
  list's resourceVersion with bookmarks, recording the resourceVersion of every
  event, bookmarks included.
- When the watch breaks (UNAVAILABLE, any other API error, or a stream that
  simply ends) it reconnects with jittered exponential backoff and resumes from
  the last resourceVersion it saw: nothing is missed and nothing is relisted.
- When the server says that resourceVersion is too old (`ExpiredError`, the
  history was trimmed) only a new list can tell what changed, so it relists and
  replaces the cache, emitting add/update/delete for the difference.

Handlers are plain (sync) callables, called on the event loop in commit order;
a controller's handler should only enqueue a key. Cached objects are shared
dicts: callers must never mutate them (`copy.deepcopy` before changing one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from kubelite.client import ObjectList, WatchEvent
from kubelite.errors import ApiError, ExpiredError, is_resource_version_too_large
from kubelite.supervise import TASK_FAILURES, spawn

log = logging.getLogger("kubelite.informer")

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str] | str | None]


class ListWatchClient(Protocol):
    """The two calls an informer needs (kubelite.client.Client has them)."""

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> ObjectList: ...

    def watch(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        allow_bookmarks: bool = True,
    ) -> Any: ...  # an async iterator of WatchEvent


def object_key(obj: Obj) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object (client-go's MetaNamespaceKey)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = meta.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str, str]:
    """The (namespace, name) of a key; namespace is "" for cluster-scoped objects."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def index_by_namespace(obj: Obj) -> list[str]:
    """An index function: the object's namespace."""
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def _resource_version(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


def _index_values(fn: IndexFunc, obj: Obj) -> list[str]:
    values = fn(obj)
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return list(values)


class Store:
    """Objects by key, plus named secondary indices (client-go's Indexer)."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Adds an index; fn maps an object to the values it is filed under."""
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    def _index(self, name: str, key: str, obj: Obj) -> None:
        index = self._indices[name]
        for value in _index_values(self._index_funcs[name], obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, name: str, key: str, obj: Obj) -> None:
        index = self._indices[name]
        for value in _index_values(self._index_funcs[name], obj):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def upsert(self, key: str, obj: Obj) -> Obj | None:
        """Stores obj under key; returns the object it replaced, if any."""
        old = self._items.get(key)
        for name in self._index_funcs:
            if old is not None:
                self._unindex(name, key, old)
            self._index(name, key, obj)
        self._items[key] = obj
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._index_funcs:
                self._unindex(name, key, old)
        return old

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def by_index(self, name: str, value: str) -> list[Obj]:
        if name not in self._indices:
            raise KeyError(f"no index named {name!r}")
        return [self._items[key] for key in self._indices[name].get(value, ())]

    def index_keys(self, name: str, value: str) -> list[str]:
        if name not in self._indices:
            raise KeyError(f"no index named {name!r}")
        return sorted(self._indices[name].get(value, ()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


@dataclass
class Handler:
    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Informer:
    """A list+watch cache of one resource (see the module docstring).

    `namespace=None` watches every namespace. `resync` > 0 calls on_update(obj, obj)
    for every cached object that often, so controllers re-check their work.
    `backoff_base`/`backoff_cap` bound the jittered reconnect delay; `page_size`
    is the list page size (0 lists everything at once).
    """

    def __init__(
        self,
        client: ListWatchClient,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resync: float = 0.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        page_size: int = 500,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.page_size = page_size
        self.store = Store()
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._failures = 0
        #: The resourceVersion the cache is current to ("" before the first list).
        self.last_resource_version = ""
        #: Lists after the first one (each because history expired).
        self.relists = 0
        #: Watches restarted from last_resource_version, without a list.
        self.reconnects = 0
        #: Every list that succeeded, the first one included.
        self.lists = 0

    # -- the cache ------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self.store.add_index(name, fn)

    def by_index(self, name: str, value: str) -> list[Obj]:
        """Cached objects filed under value in the named index. Do not mutate them."""
        return self.store.by_index(name, value)

    def get(self, key: str) -> Obj | None:
        """The cached object with this key, or None. Do not mutate it."""
        return self.store.get(key)

    def list(self) -> list[Obj]:
        """Every cached object. Do not mutate them."""
        return self.store.list()

    def keys(self) -> list[str]:
        return self.store.keys()

    # -- handlers -------------------------------------------------------------

    def add_handler(
        self,
        *,
        on_add: Callable[[Obj], None] | None = None,
        on_update: Callable[[Obj, Obj], None] | None = None,
        on_delete: Callable[[Obj], None] | None = None,
    ) -> None:
        """Registers sync callbacks; a late handler first gets on_add for each cached object."""
        handler = Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in self.store.list():
                self._call(handler.on_add, obj)

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer %s: event handler %r failed", self.resource, fn)

    def _emit_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- lifecycle ------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first list has filled the cache."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Waits for the first list; raises if the informer task died instead."""
        if self._synced.is_set():
            return
        if self._task is None:
            raise RuntimeError("informer not started")
        waiter = asyncio.ensure_future(self._synced.wait())
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self._synced.is_set():
            if self._task.cancelled():
                raise RuntimeError("informer stopped before it synced")
            exc = self._task.exception()
            raise RuntimeError("informer stopped before it synced") from exc

    def start(self) -> asyncio.Task[None]:
        """Starts (or resumes, from last_resource_version) the list+watch task."""
        if self._task is None or self._task.done():
            self._task = spawn(f"informer-{self.resource}", self._run, logger=log)
        if self.resync > 0 and (self._resync_task is None or self._resync_task.done()):
            self._resync_task = spawn(f"informer-{self.resource}-resync", self._resync_loop,
                                      logger=log)
        return self._task

    async def stop(self) -> None:
        """Stops watching; the cache stays as it is, and start() resumes from it."""
        for task in (self._task, self._resync_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- list and watch -------------------------------------------------------

    async def _run(self) -> None:
        need_list = not self._synced.is_set()
        resumed = not need_list  # a restart after stop() resumes the watch
        while True:
            just_listed = False
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                    just_listed = True
                    self._failures = 0
                elif resumed:
                    self.reconnects += 1
                resumed = True
                await self._watch()
                log.info(
                    "informer %s: watch ended at %s; reconnecting",
                    self.resource,
                    self.last_resource_version,
                )
            except ExpiredError as err:
                log.info("informer %s: %s; relisting", self.resource, err)
                # Relist at once, unless the list itself (a continue token) or the
                # watch straight after it expired: then the server is struggling.
                if need_list or just_listed:
                    await self._backoff()
                need_list = True
                resumed = False
                continue
            except ApiError as err:
                log.warning("informer %s: %s: %s; retrying", self.resource, type(err).__name__, err)
                if is_resource_version_too_large(err):
                    # The server is behind the revision we resume from (another replica,
                    # a failover): only a fresh list is consistent, as client-go does.
                    need_list = True
                    resumed = False
            except Exception:
                # A bug or an unexpected transport failure: keep the cache, retry,
                # counted as a failure of this background task.
                TASK_FAILURES.labels(f"informer-{self.resource}").inc()
                log.exception("informer %s: unexpected error; retrying", self.resource)
            await self._backoff()

    async def _backoff(self) -> None:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** min(self._failures, 32))
        self._failures += 1
        await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _list_and_replace(self) -> None:
        items: list[Obj] = []
        token = ""
        while True:
            page = await self.client.list(
                self.resource,
                namespace=self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size,
                continue_token=token,
            )
            items.extend(page.items)
            if not token:
                resource_version = page.resource_version  # the snapshot of the first page
            token = page.continue_token
            if not token:
                break
        self._replace(items)
        self.last_resource_version = resource_version
        if self._synced.is_set():
            self.relists += 1
        self.lists += 1
        self._synced.set()

    def _replace(self, items: list[Obj]) -> None:
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self.store.keys() if k not in fresh]:
            old = self.store.delete(key)
            if old is not None:
                self._emit_delete(old)
        for key, obj in fresh.items():
            old = self.store.upsert(key, obj)
            if old is None:
                self._emit_add(obj)
            elif _resource_version(old) != _resource_version(obj):
                self._emit_update(old, obj)

    async def _watch(self) -> None:
        stream = self.client.watch(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self.last_resource_version,
            allow_bookmarks=True,
        )
        try:
            async for event in stream:
                self._failures = 0  # the connection works again
                self._apply(event)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _apply(self, event: WatchEvent) -> None:
        rv = event.resource_version
        if event.type == "BOOKMARK":
            if rv:
                self.last_resource_version = rv
            return
        obj = event.object
        key = object_key(obj)
        if event.type in ("ADDED", "MODIFIED"):
            old = self.store.upsert(key, obj)
            if old is None:
                self._emit_add(obj)
            else:
                self._emit_update(old, obj)
        elif event.type == "DELETED":
            old = self.store.delete(key)
            if old is not None:
                self._emit_delete(obj)
        else:
            log.warning("informer %s: unknown watch event type %r", self.resource, event.type)
        if rv:
            self.last_resource_version = rv

    async def _resync_loop(self) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(self.resync)
            for obj in self.store.list():
                self._emit_update(obj, obj)


__all__ = [
    "Informer",
    "ListWatchClient",
    "Store",
    "index_by_namespace",
    "object_key",
    "split_key",
]
