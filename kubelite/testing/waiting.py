"""Waiting for a condition: through a watch for API objects, by polling for anything else.

A harness that polls the API either sleeps too long or hammers the apiserver; a
watch wakes up on the change itself. `wait_for_list` lists once for the current
state and its resourceVersion, watches from there, and lists again when the
watch history has been trimmed (ExpiredError) or the stream ends, so no change
between the list and the watch is missed. `eventually` polls, for conditions
the API cannot announce (a process exited, a port answers, a log line showed up).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import reprlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from kubelite.client import Client
from kubelite.errors import ExpiredError, UnavailableError

Obj = dict[str, Any]
T = TypeVar("T")

# A failure message shows what was last seen, but never a whole object list.
_short = reprlib.Repr()
_short.maxstring = 200
_short.maxother = 200
_short.maxlist = 5
_short.maxdict = 8
_short.maxlevel = 4


class WaitTimeout(AssertionError):
    """A condition did not hold in time. An AssertionError, so pytest reports a failed
    test (not an error), with what was awaited and what was last seen."""

    def __init__(self, what: str, timeout: float, last: Any) -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        super().__init__(f"timed out after {timeout:g}s waiting for {what}; "
                         f"last seen: {_short.repr(last)}")


def _describe(condition: Callable[..., Any]) -> str:
    name = getattr(condition, "__qualname__", None) or repr(condition)
    return "a condition" if name == "<lambda>" else name


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 30.0,
    *,
    interval: float = 0.1,
    what: str = "",
    ignore: Sequence[type[BaseException]] = (),
) -> T:
    """Calls condition (sync or async) until it returns something truthy, and returns that.

    Exceptions of the `ignore` types count as "not yet" (say NotFoundError while an object
    is being created); anything else propagates at once. Raises WaitTimeout after
    `timeout` seconds, naming `what` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    ignored = tuple(ignore)
    last: Any = None
    while True:
        try:
            last = await _value(condition())
        except ignored as err:
            last = err
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(what or _describe(condition), timeout, last)
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T],
    timeout: float = 30.0,
    *,
    interval: float = 0.1,
    what: str = "",
    ignore: Sequence[type[BaseException]] = (),
) -> T:
    """`eventually` for code without an event loop (blocking; never call it from one)."""
    deadline = time.monotonic() + timeout
    ignored = tuple(ignore)
    last: Any = None
    while True:
        try:
            last = condition()
        except ignored as err:
            last = err
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(what or _describe(condition), timeout, last)
        time.sleep(interval)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


async def wait_for_list(
    client: Client,
    resource: str,
    condition: Callable[[list[Obj]], T | Awaitable[T]],
    *,
    namespace: str | None = None,
    label_selector: str = "",
    field_selector: str = "",
    timeout: float = 30.0,
    what: str = "",
) -> T:
    """Waits until condition(objects) is truthy and returns its value.

    `objects` are all the objects of `resource` that match the namespace (None: all
    namespaces) and selectors, as of the latest event. The condition is checked on the
    listed state first, then after every watch event; an apiserver that is restarting
    (UNAVAILABLE) is retried until the deadline.
    """
    seen: dict[tuple[str, str], Obj] = {}
    what = what or f"{resource} to satisfy {_describe(condition)}"

    async def run() -> T:
        while True:
            try:
                listed = await client.list(resource, namespace=namespace,
                                           label_selector=label_selector,
                                           field_selector=field_selector)
                seen.clear()
                seen.update((_key(o), o) for o in listed.items)
                if result := await _value(condition(list(seen.values()))):
                    return result
                stream = client.watch(resource, namespace=namespace,
                                      label_selector=label_selector,
                                      field_selector=field_selector,
                                      resource_version=listed.resource_version)
                async with contextlib.aclosing(stream) as events:
                    async for event in events:
                        if event.type == "BOOKMARK":
                            continue
                        if event.type == "DELETED":
                            seen.pop(_key(event.object), None)
                        else:
                            seen[_key(event.object)] = event.object
                        if result := await _value(condition(list(seen.values()))):
                            return result
            except ExpiredError:
                continue  # history trimmed: the next list is the new starting point
            except UnavailableError:
                await asyncio.sleep(0.1)

    try:
        async with asyncio.timeout(timeout):
            return await run()
    except TimeoutError:
        raise WaitTimeout(what, timeout, list(seen.values())) from None


def _where(resource: str, name: str, namespace: str | None) -> str:
    return f"{resource} {namespace}/{name}" if namespace else f"{resource} {name}"


async def wait_for(
    client: Client,
    resource: str,
    name: str,
    predicate: Callable[[Obj], Any] | None = None,
    *,
    namespace: str | None = None,
    timeout: float = 30.0,
    what: str = "",
) -> Obj:
    """Waits through a watch until the object exists and predicate(object) (sync or
    async) is truthy, and returns the object. Without a predicate, waits for it to exist.

    `namespace` is required for namespaced kinds and None for cluster-scoped ones.
    """
    async def satisfied(objects: list[Obj]) -> Obj | None:
        for obj in objects:
            if predicate is None or await _value(predicate(obj)):
                return obj
        return None

    where = _where(resource, name, namespace)
    return await wait_for_list(
        client, resource, satisfied, namespace=namespace,
        field_selector=f"metadata.name={name}", timeout=timeout,
        what=what or (f"{where} to satisfy {_describe(predicate)}" if predicate
                      else f"{where} to exist"))


async def wait_deleted(
    client: Client, resource: str, name: str, *, namespace: str | None = None,
    timeout: float = 30.0,
) -> None:
    """Waits through a watch until the object is gone (finalizers and grace included)."""
    await wait_for_list(
        client, resource, lambda objects: not objects, namespace=namespace,
        field_selector=f"metadata.name={name}", timeout=timeout,
        what=f"{_where(resource, name, namespace)} to be deleted")
