"""Pod IP allocation from the node's pod CIDR (host-local IPAM, in memory).

Addresses are handed out round-robin after the last one given, so that an
address freed by a deleted pod is not at once reused by the next pod (a client
that still holds the old address should reach nothing, not a stranger).
The allocator does no I/O: after a restart its owner re-reserves the addresses
of the sandboxes that exist and restores `last_allocated` (as host-local IPAM
keeps last_reserved_ip on disk), so the round robin carries on where it was.
"""

from __future__ import annotations

import ipaddress


class PodCIDRExhausted(Exception):
    """Every address of the pod CIDR is in use."""


class PodIPAllocator:
    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.IPv4Network(cidr, strict=False)
        if self.network.num_addresses < 4:
            raise ValueError(f"pod CIDR {cidr} is too small")
        # The network and broadcast addresses are never handed out.
        self._first = int(self.network.network_address) + 1
        self._last = int(self.network.broadcast_address) - 1
        self._next = self._first
        self.last_allocated = ""
        self._by_owner: dict[str, str] = {}
        self._owner_of: dict[str, str] = {}

    def __contains__(self, ip: str) -> bool:
        try:
            address = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        return self._first <= address <= self._last

    def resume_after(self, ip: str) -> None:
        """Continues the round robin after ip (the last address handed out before a restart)."""
        if ip in self:
            address = int(ipaddress.IPv4Address(ip))
            self._next = address + 1 if address < self._last else self._first
            self.last_allocated = ip

    def get(self, owner: str) -> str | None:
        return self._by_owner.get(owner)

    def in_use(self) -> dict[str, str]:
        """owner -> ip, for every allocated address."""
        return dict(self._by_owner)

    def reserve(self, owner: str, ip: str) -> bool:
        """Records ip as owner's (after a restart); False if it is not free or not ours."""
        if self._by_owner.get(owner) == ip:
            return True
        if ip not in self or ip in self._owner_of or owner in self._by_owner:
            return False
        self._by_owner[owner] = ip
        self._owner_of[ip] = owner
        return True

    def allocate(self, owner: str, *, preferred: str = "") -> str:
        """owner's address: the one it has, else preferred if free, else the next free one."""
        current = self._by_owner.get(owner)
        if current is not None:
            return current
        if preferred and self.reserve(owner, preferred):
            self.last_allocated = preferred
            return preferred
        size = self._last - self._first + 1
        candidate = self._next
        for _ in range(size):
            ip = str(ipaddress.IPv4Address(candidate))
            candidate = candidate + 1 if candidate < self._last else self._first
            if ip not in self._owner_of:
                self._next = candidate
                self._by_owner[owner] = ip
                self._owner_of[ip] = owner
                self.last_allocated = ip
                return ip
        raise PodCIDRExhausted(f"no free address left in {self.network}")

    def release(self, owner: str) -> None:
        ip = self._by_owner.pop(owner, None)
        if ip is not None:
            self._owner_of.pop(ip, None)
