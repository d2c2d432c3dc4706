"""Naming one object on the command line, and changing it safely.

Commands such as `logs`, `scale`, `rollout` and `expose` act on one object
that the user names as kubectl lets them: `KIND NAME` or `KIND/NAME`, and for
some commands a bare `NAME` of a default kind (`logs web-1` means a pod).

`update_object` is the read-modify-write that every command uses when a
merge patch cannot express the change (replacing a whole template, checking
a precondition): it sends the live resourceVersion and starts again on a
conflict, so that a concurrent writer is never overwritten.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.cli.reporting import CliError
from kubelite.cli.session import Session, resolve_kind
from kubelite.errors import ConflictError
from kubelite.resources import ResourceInfo
from kubelite.selectors import selector_from_label_selector_spec

Obj = dict[str, Any]
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    name: str

    @property
    def display(self) -> str:
        """`deployment.apps/web`: how kubectl names an object in its messages."""
        return f"{self.info.qualified}/{self.name}"


def parse_target(args: Sequence[str], *, verb: str, default_kind: str | None = None,
                 usage: str = "") -> Target:
    """One object from `KIND/NAME`, `KIND NAME` or (with a default kind) `NAME`."""
    usage = usage or f"kubelite {verb} KIND NAME"
    if not args:
        raise CliError(f"you must specify the resource to {verb} (usage: {usage})")
    first = args[0]
    if "/" in first:
        if len(args) > 1:
            raise CliError(f"expected one resource, got {' '.join(args)} (usage: {usage})")
        kind, _, name = first.partition("/")
        if not kind or not name:
            raise CliError(f'invalid resource "{first}" (usage: {usage})')
        return Target(resolve_kind(kind), name)
    if len(args) == 1:
        if default_kind is None:
            raise CliError(f"you must specify the name of the {first} to {verb} "
                           f"(usage: {usage})")
        return Target(resolve_kind(default_kind), first)
    if len(args) > 2:
        raise CliError(f"expected one resource, got {' '.join(args)} (usage: {usage})")
    return Target(resolve_kind(first), args[1])


def require_kind(target: Target, kinds: Sequence[str], message: str) -> None:
    """CliError(message) unless the target is of one of the given kinds."""
    if target.info.kind not in kinds:
        raise CliError(message)


def selector_string(spec: Obj | None, *, what: str) -> str:
    """A LabelSelector object as a selector string for List (`app=web,tier in (a)`).

    An empty or absent selector would select every pod: that is refused.
    """
    if not spec or not (spec.get("matchLabels") or spec.get("matchExpressions")):
        raise CliError(f"{what} has no selector")
    return str(selector_from_label_selector_spec(spec))


async def update_object(session: Session, info: ResourceInfo, namespace: str | None,
                        name: str, change: Callable[[Obj], Obj | None]) -> Obj:
    """Gets the object, applies `change` to a copy, and updates it; retries on conflict.

    `change` returns the object to write, or None when nothing needs writing
    (then the live object is returned unchanged). It may raise CliError.
    """
    for attempt in range(MAX_ATTEMPTS):
        live = await session.client.get(info.plural, name, namespace=namespace)
        desired = change(copy.deepcopy(live))
        if desired is None:
            return live
        try:
            return await session.client.update(info.plural, desired, namespace=namespace)
        except ConflictError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
