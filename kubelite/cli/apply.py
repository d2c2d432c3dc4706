"""`kubelite apply -f`: create what is absent, update what differs, leave the rest.

An object counts as unchanged when every field the manifest sets already has
that value in the live object (fields the server filled in are not compared).
Otherwise the manifest is merged onto the live object the way a JSON merge
patch would be (maps merge, lists and scalars are replaced, `null` removes a
field) and sent as an Update carrying the live resourceVersion, so a
concurrent writer causes a conflict and a retry rather than a lost update.

Unlike kubectl, kubelite keeps no last-applied annotation: a field dropped
from a manifest stays on the live object until it is set to `null`.
"""

from __future__ import annotations

import copy
from typing import Any

from kubelite.cli.manifests import Manifest, load
from kubelite.cli.printers import object_name, qualified_plural
from kubelite.cli.reporting import CliError, is_fatal
from kubelite.cli.session import Session
from kubelite.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError

# Metadata the server owns: never compared, never taken from a manifest.
SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation",
                   "managedFields", "selfLink", "deletionTimestamp",
                   "deletionGracePeriodSeconds")
MAX_ATTEMPTS = 5


def desired_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of a manifest that apply compares and writes: no status, no server metadata."""
    desired = copy.deepcopy(obj)
    desired.pop("status", None)
    metadata = desired.get("metadata") or {}
    for key in SERVER_METADATA:
        metadata.pop(key, None)
    return desired


def is_subset(wanted: Any, live: Any) -> bool:
    """True when every field `wanted` sets has that value in `live`, recursively.

    Lists must have the same length and match element by element (so defaults
    the server added inside list items are not differences); a `null` in
    `wanted` matches an absent field.
    """
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return False
        for key, value in wanted.items():
            if value is None:
                if live.get(key) is not None:
                    return False
            elif key not in live or not is_subset(value, live[key]):
                return False
        return True
    if isinstance(wanted, list):
        return (isinstance(live, list) and len(wanted) == len(live)
                and all(is_subset(w, v) for w, v in zip(wanted, live, strict=True)))
    if isinstance(wanted, bool) or isinstance(live, bool):
        return wanted is live
    return bool(wanted == live)


def merge_onto(live: Any, patch: Any) -> Any:
    """RFC 7386 merge of `patch` onto `live`; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(live) if isinstance(live, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_onto(result.get(key), value)
    return result


def updated_object(live: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """What apply sends as the Update: the manifest merged onto the live object."""
    merged = merge_onto(live, desired_fields(manifest))
    live_meta = live.get("metadata") or {}
    for key in SERVER_METADATA:
        if key in live_meta:
            merged["metadata"][key] = live_meta[key]
    return merged


def target_namespace(manifest: Manifest, session: Session) -> str | None:
    """The manifest's namespace; -n fills it in, and must agree with it when both are set."""
    if not manifest.info.namespaced:
        return None
    if manifest.namespace and session.namespace and manifest.namespace != session.namespace:
        raise CliError(
            f'the namespace from the provided object "{manifest.namespace}" does not match '
            f'the namespace "{session.namespace}". You must pass '
            f"'--namespace={manifest.namespace}' to perform this operation.")
    return manifest.namespace or session.effective_namespace


async def apply_one(session: Session, manifest: Manifest) -> str:
    """Applies one object; returns 'created', 'configured' or 'unchanged'."""
    client, resource = session.client, manifest.info.plural
    namespace = target_namespace(manifest, session)
    body = desired_fields(manifest.obj)
    if namespace:
        body["metadata"]["namespace"] = namespace
    else:
        body["metadata"].pop("namespace", None)
    for _ in range(MAX_ATTEMPTS):
        try:
            live = await client.get(resource, manifest.name, namespace=namespace)
        except NotFoundError:
            try:
                await client.create(resource, body, namespace=namespace)
                return "created"
            except AlreadyExistsError:
                continue  # created meanwhile by someone else: compare against theirs
        if is_subset(body, live):
            return "unchanged"
        try:
            await client.update(resource, updated_object(live, body), namespace=namespace)
            return "configured"
        except ConflictError:
            continue  # the object changed under us: read it again
    raise ConflictError(f'{qualified_plural(manifest.info)} "{manifest.name}" kept changing; '
                        f"gave up after {MAX_ATTEMPTS} attempts")


async def run(session: Session, files: list[str]) -> int:
    """Applies every object of the files in order; an object that fails does not stop
    the rest. Returns the exit code."""
    manifests = load(files)
    for manifest in manifests:  # check every namespace before changing anything
        target_namespace(manifest, session)
    code = 0
    for manifest in manifests:
        try:
            outcome = await apply_one(session, manifest)
        except ApiError as err:
            if is_fatal(err):
                raise
            session.report(err)
            code = 1
            continue
        session.print(f"{object_name(manifest.obj, manifest.info)} {outcome}")
    return code
