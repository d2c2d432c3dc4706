"""`kubelite api-resources` and `kubelite version`: what this CLI knows, no server needed."""

from __future__ import annotations

from importlib import metadata

from kubelite.cli.printers import render_table
from kubelite.resources import RESOURCES


def api_resources_table() -> str:
    rows = [[info.plural, ",".join(info.short_names), info.api_version,
             "true" if info.namespaced else "false", info.kind]
            for info in sorted(RESOURCES, key=lambda i: (i.group != "", i.group, i.plural))]
    return render_table(["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], rows)


def client_version() -> str:
    try:
        return metadata.version("kubelite")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_text(server: str) -> str:
    return f"Client Version: v{client_version()}\nServer Address: {server}"
