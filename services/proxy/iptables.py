"""iptables mode: keep the kernel's rules equal to `render_rules(current service ports)`.

Applying follows kube-proxy:
- the jumps from the built-in chains (PREROUTING, OUTPUT, POSTROUTING, INPUT,
  FORWARD) into ours are ensured one at a time (`-C`, then `-I` if missing) on
  every full sync, so nothing else in those chains is touched;
- the rule set is loaded with `iptables-restore --noflush`: every chain it
  declares is flushed and refilled in one atomic transaction, and every other
  chain is left alone; stale per-service chains (KUBE-SVC/SEP/EXT of services
  that are gone) are flushed and deleted in the same transaction;
- a sync whose rendered text equals what was last applied runs nothing, syncs
  are at most one per `--min-sync-period`, and a full resync every
  `--sync-period` re-applies the rules even if unchanged (repairing anything
  changed behind our back).

Commands run through `asyncio.create_subprocess_exec`, never blocking the loop;
`exec_prefix` (e.g. `ip netns exec NAME`) runs them in another network namespace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from . import metrics
from .commands import CommandResult, run_command
from .model import ServicePort
from .rules import JUMP_RULES, RenderOptions, RuleSet, chains_in_save, render_rules
from .syncrunner import SyncRunner

log = logging.getLogger("kubelite.proxy")


class IptablesError(Exception):
    """An iptables command failed; the message carries its stderr."""


class Iptables:
    """The four iptables operations the proxier needs, as subprocesses."""

    def __init__(self, *, binary: str = "iptables", exec_prefix: Sequence[str] = (),
                 lock_wait: int = 5) -> None:
        self.binary = binary
        self.exec_prefix = list(exec_prefix)
        self.lock_wait = lock_wait

    def _argv(self, tool: str, *args: str) -> list[str]:
        return [*self.exec_prefix, tool, *args]

    async def _run(self, argv: list[str], stdin: bytes | None = None) -> CommandResult:
        try:
            return await run_command(argv, stdin)
        except FileNotFoundError as err:
            raise IptablesError(f"{argv[0]}: not found ({err})") from None

    async def ensure_chain(self, table: str, chain: str) -> None:
        res = await self._run(self._argv(self.binary, "-w", str(self.lock_wait), "-t", table,
                                         "-N", chain))
        if res.returncode != 0 and b"exists" not in res.stderr:
            raise IptablesError(f"creating {table}/{chain}: {res.stderr.decode().strip()}")

    async def ensure_rule_first(self, table: str, chain: str, args: Sequence[str]) -> bool:
        """Inserts the rule at the top of chain unless it is there; True if it was added."""
        base = ["-w", str(self.lock_wait), "-t", table]
        check = await self._run(self._argv(self.binary, *base, "-C", chain, *args))
        if check.returncode == 0:
            return False
        res = await self._run(self._argv(self.binary, *base, "-I", chain, *args))
        if res.returncode != 0:
            raise IptablesError(f"adding a rule to {table}/{chain}: "
                                f"{res.stderr.decode().strip()}")
        return True

    async def save(self, table: str) -> str:
        res = await self._run(self._argv(f"{self.binary}-save", "-t", table))
        if res.returncode != 0:
            raise IptablesError(f"{self.binary}-save -t {table}: {res.stderr.decode().strip()}")
        return res.stdout.decode()

    async def restore(self, text: str) -> None:
        res = await self._run(self._argv(f"{self.binary}-restore", "-w", str(self.lock_wait),
                                         "--noflush", "--counters"), text.encode())
        if res.returncode != 0:
            raise IptablesError(f"{self.binary}-restore: {res.stderr.decode().strip()}")


class IptablesProxier:
    """Holds the current service ports and syncs them into iptables (see the module doc)."""

    def __init__(self, *, iptables: Iptables, options: RenderOptions | None = None,
                 min_sync_period: float = 1.0, sync_period: float = 30.0) -> None:
        self.iptables = iptables
        self.options = options or RenderOptions()
        self._ports: dict[str, list[ServicePort]] = {}
        #: Wall-clock trigger times of endpoint changes not yet programmed.
        self._pending: list[float] = []
        self._applied: str | None = None
        #: Per-service chains we know to exist in the kernel (to delete when stale).
        self._known_chains: set[str] = set()
        self.runner = SyncRunner(self.sync, min_interval=min_sync_period,
                                 max_interval=sync_period)
        self.restores = 0

    # -- fed by the ServiceTracker --------------------------------------------------

    def update(self, key: str, ports: list[ServicePort],
               trigger_time: float | None = None) -> None:
        if ports:
            self._ports[key] = ports
        else:
            self._ports.pop(key, None)
        if trigger_time is not None:
            self._pending.append(trigger_time)
        self.runner.request()

    def service_ports(self) -> list[ServicePort]:
        return [sp for ports in self._ports.values() for sp in ports]

    def render(self) -> RuleSet:
        return render_rules(self.service_ports(), self.options)

    # -- syncing ----------------------------------------------------------------------

    async def run(self) -> None:
        await self.runner.run()

    async def sync(self, full: bool) -> bool:
        """One sync; returns False (to be retried with backoff) if iptables failed."""
        start = time.monotonic()
        pending, self._pending = self._pending, []
        ruleset = self.render()
        text = ruleset.text()
        if not full and text == self._applied:
            metrics.SYNCS_SKIPPED.inc()
            self._programmed(pending)
            return True
        try:
            if full or self._applied is None:
                await self._ensure_jumps()
                saved = await self.iptables.save("nat")
                self._known_chains |= chains_in_save(saved, "nat")
            payload = ruleset.deleting(self._known_chains).text()
            await self.iptables.restore(payload)
        except (IptablesError, OSError, TimeoutError) as err:
            metrics.RESTORE_FAILURES.inc()
            log.error("sync failed; retrying", extra={"kv": {"error": str(err)}})
            self._applied = None  # the kernel may hold anything now: apply in full next time
            self._pending = pending + self._pending
            return False
        self.restores += 1
        metrics.IPTABLES_RESTORES.inc()
        self._applied = text
        self._known_chains = ruleset.dynamic_chains()
        for table in ruleset.tables:
            metrics.IPTABLES_RULES.labels(table.name).set(table.rule_count())
        elapsed = time.monotonic() - start
        metrics.SYNC_DURATION.observe(elapsed)
        metrics.SYNC_LAST_TIMESTAMP.set(time.time())
        self._programmed(pending)
        log.debug("synced iptables rules", extra={"kv": {
            "full": full, "services": len(self._ports), "seconds": round(elapsed, 4)}})
        return True

    async def _ensure_jumps(self) -> None:
        for table, chain in sorted({(j.table, j.target) for j in JUMP_RULES}):
            await self.iptables.ensure_chain(table, chain)
        for jump in JUMP_RULES:
            await self.iptables.ensure_rule_first(jump.table, jump.source, jump.args())

    @staticmethod
    def _programmed(pending: list[float]) -> None:
        now = time.time()
        for trigger in pending:
            metrics.NETWORK_PROGRAMMING.observe(max(0.0, now - trigger))

    async def close(self) -> None:
        """Leaves the rules in place, as kube-proxy does: traffic keeps flowing while
        the proxy restarts (`--cleanup` would remove them; not implemented)."""
