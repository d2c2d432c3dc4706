"""Loading manifests for `apply -f` and `delete -f`: files, directories and stdin.

A source may hold several YAML documents, one JSON object, or a `List` whose
`items` are objects; all become a flat sequence of Manifests in source order.
Every problem becomes a CliError naming the file, never a parser traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from kubelite.cli.reporting import CliError, one_line
from kubelite.errors import InvalidError
from kubelite.resources import ResourceInfo, for_kind

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


@dataclass(frozen=True)
class Manifest:
    source: str  # the file it came from ("-" for stdin)
    obj: dict[str, Any]
    info: ResourceInfo

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        return self.obj["metadata"].get("namespace") or None


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files named directly, plus each directory's manifest files in name order."""
    found: list[str] = []
    for path in paths:
        if path == STDIN:
            found.append(path)
            continue
        p = Path(path)
        if p.is_dir():
            children = sorted(c for c in p.iterdir()
                              if c.is_file() and c.suffix.lower() in MANIFEST_SUFFIXES)
            found.extend(str(c) for c in children)
        elif p.exists():
            found.append(path)
        else:
            raise CliError(f'the path "{path}" does not exist')
    return found


def parse_documents(text: str, source: str) -> list[Any]:
    """The documents of one source: JSON when it parses as JSON, else multi-document YAML."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with { or [; let YAML judge it
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        raise CliError(f"{source}: yaml parse error: {one_line(str(err))}") from None


def flatten(doc: Any, source: str) -> Iterator[dict[str, Any]]:
    """One document's objects: itself, or the items of a List."""
    if not isinstance(doc, dict):
        raise CliError(f"{source}: expected an object, got {type(doc).__name__}")
    if doc.get("kind") == "List" or (doc.get("kind", "").endswith("List")
                                     and isinstance(doc.get("items"), list)):
        for item in doc.get("items") or []:
            yield from flatten(item, source)
        return
    yield doc


def to_manifest(obj: dict[str, Any], source: str) -> Manifest:
    """Checks that an object names its kind and itself, and resolves its resource."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        raise CliError(f"{source}: an object is missing apiVersion or kind")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise CliError(f"{source}: a {kind} is missing metadata.name")
    try:
        info = for_kind(str(api_version), str(kind))
    except InvalidError as err:
        raise CliError(f"{source}: {err.message}") from None
    return Manifest(source, obj, info)


def load_text(text: str, source: str) -> list[Manifest]:
    return [to_manifest(obj, source)
            for doc in parse_documents(text, source) for obj in flatten(doc, source)]


def load(paths: Iterable[str], stdin: IO[str] | None = None, *,
         verb: str = "apply") -> list[Manifest]:
    """Every manifest in the given files, directories and `-` (stdin), in order."""
    paths = list(paths)
    if not paths:
        raise CliError("must specify -f")
    manifests: list[Manifest] = []
    for path in expand_paths(paths):
        if path == STDIN:
            text = (stdin or sys.stdin).read()
        else:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise CliError(f"{path}: {one_line(str(err))}") from None
        manifests.extend(load_text(text, path))
    if not manifests:
        raise CliError(f"no objects passed to {verb}")
    return manifests
