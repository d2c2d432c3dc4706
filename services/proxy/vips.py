"""Holding ClusterIPs as addresses of this host, for runtimes where they are not
already local.

In the process runtime ClusterIPs come from a loopback range (127.96.0.0/16 by
default): every 127/8 address is local on Linux, so a listener can bind one
with nothing else to do, and no `VipManager` is used. With docker-compose the
ClusterIPs come from the cluster network's subnet, outside the DHCP-like
`ip_range`, and the proxy (with NET_ADMIN) adds each one as a /32 to its own
interface before it binds it (`--cluster-ip-interface eth0`), and removes it
when the last listener on it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from .commands import CommandResult, run_command

log = logging.getLogger("kubelite.proxy")

Runner = Callable[[Sequence[str]], Awaitable[CommandResult]]


class VipManager:
    def __init__(self, interface: str, *, runner: Runner | None = None) -> None:
        self.interface = interface
        self._run: Runner = runner or (lambda argv: run_command(argv))
        self.held: set[str] = set()

    async def hold(self, ip: str) -> None:
        """Adds ip/32 to the interface (idempotent); raises OSError if `ip` fails."""
        if ip in self.held:
            return
        res = await self._run(["ip", "addr", "replace", f"{ip}/32", "dev", self.interface])
        if res.returncode != 0:
            raise OSError(f"ip addr replace {ip}/32 dev {self.interface}: "
                          f"{res.stderr.decode().strip()}")
        self.held.add(ip)

    async def release(self, ip: str) -> None:
        if ip not in self.held:
            return
        self.held.discard(ip)
        res = await self._run(["ip", "addr", "del", f"{ip}/32", "dev", self.interface])
        if res.returncode != 0:
            log.warning("cannot remove a ClusterIP address", extra={"kv": {
                "ip": ip, "interface": self.interface, "error": res.stderr.decode().strip()}})
