"""What every command shares: the client, the output streams, namespace rules."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import IO

from kubelite.cli.reporting import CliError, api_error_line
from kubelite.client import Client
from kubelite.errors import ApiError, InvalidError
from kubelite.resources import ResourceInfo, lookup

DEFAULT_NAMESPACE = "default"


def resolve_kind(name: str) -> ResourceInfo:
    """The resource a user means by `po`, `deployments.apps`, `Service`...; else CliError."""
    try:
        return lookup(name)
    except InvalidError as err:
        raise CliError(err.message) from None


@dataclass
class Session:
    client: Client
    server: str
    timeout: float
    namespace: str | None = None  # -n; None means the default namespace
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)

    @property
    def effective_namespace(self) -> str:
        return self.namespace or DEFAULT_NAMESPACE

    def namespace_for(self, info: ResourceInfo) -> str | None:
        """The namespace a request about `info` goes to (None for cluster-scoped kinds)."""
        return self.effective_namespace if info.namespaced else None

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def report(self, err: ApiError) -> None:
        """Prints the one line for an API error (the command goes on or stops: its choice)."""
        self.warn(api_error_line(err, server=self.server, timeout=self.timeout))
