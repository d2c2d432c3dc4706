"""`kubelite cordon|uncordon|drain NODE`: the operator's verbs for taking a node out.

As kubectl (staging/src/k8s.io/kubectl/pkg/drain): cordon sets the node's
spec.unschedulable, so the scheduler places nothing new there. Drain cordons,
lists the node's pods, refuses the ones it must not remove without being told
(pods no controller would recreate, without --force; DaemonSet pods, without
--ignore-daemonsets; pods with emptyDir data, without --delete-emptydir-data),
then evicts the others all at once through pods/eviction. An eviction that a
PodDisruptionBudget refuses (TooManyRequests) is retried every 5 seconds
until --timeout, so the drain proceeds as fast as replacements become Ready
elsewhere and never faster than the budgets allow. A pod counts as gone once
it is deleted or replaced by another of the same name (a new uid).

$KUBELITE_DRAIN_RETRY_INTERVAL shortens kubectl's 5 s between retries (tests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelite.cli.reporting import CliError
from kubelite.cli.session import Session
from kubelite.errors import ApiError, NotFoundError, TooManyRequestsError

Obj = dict[str, Any]

DEFAULT_RETRY_INTERVAL = 5.0
DELETE_POLL_INTERVAL = 0.5
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

DAEMONSET_FATAL = "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = ("cannot delete Pods with local storage (use --delete-emptydir-data to "
                       "override)")
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"


@dataclass(frozen=True)
class DrainOptions:
    force: bool = False
    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False
    grace_period: int | None = None  # None: each pod's own
    timeout: float = 0.0  # 0: as long as it takes
    disable_eviction: bool = False
    pod_selector: str = ""
    dry_run: str = "none"  # none, client or server
    retry_interval: float = DEFAULT_RETRY_INTERVAL


def retry_interval_from_env() -> float:
    try:
        return float(os.environ.get("KUBELITE_DRAIN_RETRY_INTERVAL") or DEFAULT_RETRY_INTERVAL)
    except ValueError:
        return DEFAULT_RETRY_INTERVAL


def _dry_run_suffix(dry_run: str) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")


def _name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _controller(pod: Obj) -> Obj | None:
    return next((o for o in (pod.get("metadata") or {}).get("ownerReferences") or ()
                 if o.get("controller")), None)


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class PodFilter:
    """Which of a node's pods a drain removes, and what it warns or refuses about."""

    delete: list[Obj]
    warnings: dict[str, list[str]]
    errors: dict[str, list[str]]

    def error_text(self) -> str:
        return "; ".join(f"{msg}: {', '.join(pods)}" for msg, pods in self.errors.items())


def filter_pods(pods: list[Obj], options: DrainOptions) -> PodFilter:
    """kubectl's filters, in its order: DaemonSet, mirror, local storage, unreplicated."""
    result = PodFilter([], {}, {})

    def note(into: dict[str, list[str]], message: str, pod: Obj) -> None:
        into.setdefault(message, []).append(_name(pod))

    for pod in pods:
        controller = _controller(pod)
        if controller is not None and controller.get("kind") == "DaemonSet":
            # The DaemonSet controller would put it straight back: never evicted.
            if options.ignore_daemonsets:
                note(result.warnings, DAEMONSET_WARNING, pod)
            else:
                note(result.errors, DAEMONSET_FATAL, pod)
            continue
        if MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            continue  # a static pod's mirror: the kubelet owns it
        if not _finished(pod) and any("emptyDir" in (v or {})
                                      for v in (pod.get("spec") or {}).get("volumes") or ()):
            if not options.delete_emptydir_data:
                note(result.errors, LOCAL_STORAGE_FATAL, pod)
                continue
            note(result.warnings, LOCAL_STORAGE_WARNING, pod)
        if controller is None and not _finished(pod):
            if not options.force:
                note(result.errors, UNMANAGED_FATAL, pod)
                continue
            note(result.warnings, UNMANAGED_WARNING, pod)
        result.delete.append(pod)
    return result


async def cordon(session: Session, node_name: str, *, unschedulable: bool,
                 dry_run: str = "none") -> None:
    """Sets spec.unschedulable; prints `node/NAME cordoned` as kubectl does."""
    verb = "cordoned" if unschedulable else "uncordoned"
    node = await session.client.get("nodes", node_name)
    if bool((node.get("spec") or {}).get("unschedulable")) == unschedulable:
        session.print(f"node/{node_name} already {verb}{_dry_run_suffix(dry_run)}")
        return
    if dry_run == "none":
        # null removes the field, as kubectl's patch leaves an uncordoned node.
        await session.client.patch("nodes", node_name,
                                   {"spec": {"unschedulable": True if unschedulable else None}})
    session.print(f"node/{node_name} {verb}{_dry_run_suffix(dry_run)}")


class Drainer:
    """One drain of one node: remove each pod, honouring budgets, within one deadline."""

    def __init__(self, session: Session, options: DrainOptions, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.options = options
        self.clock = clock
        self.deadline = clock() + options.timeout if options.timeout > 0 else None

    def _timed_out(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def _timeout_error(self, pod: Obj, action: str) -> CliError:
        meta = pod["metadata"]
        return CliError(f'error when {action} pods/"{meta["name"]}" -n "{meta["namespace"]}": '
                        f"global timeout reached: {self.options.timeout:g}s")

    async def remove(self, pod: Obj) -> None:
        """Evicts (or deletes) one pod, retrying refusals, then waits until it is gone."""
        meta = pod["metadata"]
        client, options = self.session.client, self.options
        evicting = not options.disable_eviction
        suffix = _dry_run_suffix(options.dry_run)
        if evicting:
            self.session.print(f"evicting pod {_name(pod)}{suffix}")
        if options.dry_run == "client" and evicting:
            return
        if options.dry_run != "none" and not evicting:
            # (pods/eviction can answer a server dry run; a plain delete here cannot)
            self.session.print(f"pod/{meta['name']} {'evicted' if evicting else 'deleted'}"
                               f"{suffix}")
            return
        while True:
            try:
                if evicting:
                    await client.evict(meta["name"], namespace=meta["namespace"],
                                       grace_period_seconds=options.grace_period,
                                       dry_run=options.dry_run == "server")
                else:
                    await client.delete("pods", meta["name"], namespace=meta["namespace"],
                                        grace_period_seconds=options.grace_period)
                break
            except NotFoundError:
                break  # gone already
            except TooManyRequestsError as err:
                if not evicting:
                    raise
                self.session.warn(f'error when evicting pods/"{meta["name"]}" -n '
                                  f'"{meta["namespace"]}" (will retry after '
                                  f"{options.retry_interval:g}s): {err.message}")
            if self._timed_out():
                raise self._timeout_error(pod, "evicting" if evicting else "deleting")
            await asyncio.sleep(options.retry_interval)
        if options.dry_run == "none":
            await self.wait_gone(pod)
        self.session.print(f"pod/{meta['name']} {'evicted' if evicting else 'deleted'}{suffix}")

    async def wait_gone(self, pod: Obj) -> None:
        meta = pod["metadata"]
        while True:
            try:
                current = await self.session.client.get("pods", meta["name"],
                                                        namespace=meta["namespace"])
            except NotFoundError:
                return
            if current["metadata"].get("uid") != meta.get("uid"):
                return  # a new pod of the same name
            if self._timed_out():
                raise self._timeout_error(pod, "waiting for deletion of")
            await asyncio.sleep(DELETE_POLL_INTERVAL)

    async def drain(self, node_name: str) -> int:
        await cordon(self.session, node_name, unschedulable=True, dry_run=self.options.dry_run)
        pods = (await self.session.client.list(
            "pods", field_selector=f"spec.nodeName={node_name}",
            label_selector=self.options.pod_selector)).items
        found = filter_pods(pods, self.options)
        if found.errors:
            return self.fail(node_name, found.error_text())
        for message, names in found.warnings.items():
            self.session.warn(f"Warning: {message}: {', '.join(names)}")
        results = await asyncio.gather(*(self.remove(pod) for pod in found.delete),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, CliError | ApiError):
                raise failure
        if failures:
            return self.fail(node_name, "; ".join(str(f) for f in failures))
        self.session.print(f"node/{node_name} drained{_dry_run_suffix(self.options.dry_run)}")
        return 0

    def fail(self, node_name: str, text: str) -> int:
        self.session.warn(f'error: unable to drain node "{node_name}" due to error: {text}, '
                          "continuing command...")
        self.session.warn(f"There are pending nodes to be drained:\n {node_name}\n{text}")
        return 1


def add_commands(commands: argparse._SubParsersAction, common: list[argparse.ArgumentParser],
                 *, duration: Callable[[str], float]) -> None:
    """cordon, uncordon and drain, with kubectl's flags."""
    for name, text in (("cordon", "mark a node unschedulable"),
                       ("uncordon", "mark a node schedulable")):
        p = commands.add_parser(name, parents=common, help=text)
        p.add_argument("node", metavar="NODE")
        p.add_argument("--dry-run", nargs="?", const="client", default="none",
                       choices=("none", "client", "server"))
    p = commands.add_parser("drain", parents=common,
                            help="cordon a node and evict its pods, honouring disruption "
                                 "budgets")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--force", action="store_true",
                   help="also delete pods that no controller would recreate")
    p.add_argument("--ignore-daemonsets", action="store_true",
                   help="leave DaemonSet-managed pods in place instead of refusing")
    p.add_argument("--delete-emptydir-data", action="store_true",
                   help="also delete pods with emptyDir volumes (their data is lost)")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds each pod gets to stop (-1: its own setting)")
    p.add_argument("--timeout", type=duration, default=0.0,
                   help="give up after this long (0: as long as it takes)")
    p.add_argument("--disable-eviction", action="store_true",
                   help="delete pods directly, bypassing PodDisruptionBudgets")
    p.add_argument("--pod-selector", default="", help="only pods matching this label selector")
    p.add_argument("--dry-run", nargs="?", const="client", default="none",
                   choices=("none", "client", "server"),
                   help="client: only print; server: ask the apiserver without changing")


async def dispatch(args: argparse.Namespace, session: Session) -> int | None:
    """Runs cordon, uncordon or drain; None for any other command."""
    if args.command in ("cordon", "uncordon"):
        await cordon(session, args.node, unschedulable=args.command == "cordon",
                     dry_run=args.dry_run)
        return 0
    if args.command != "drain":
        return None
    options = DrainOptions(
        force=args.force, ignore_daemonsets=args.ignore_daemonsets,
        delete_emptydir_data=args.delete_emptydir_data,
        grace_period=args.grace_period if args.grace_period >= 0 else None,
        timeout=args.timeout, disable_eviction=args.disable_eviction,
        pod_selector=args.pod_selector, dry_run=args.dry_run,
        retry_interval=retry_interval_from_env())
    return await Drainer(session, options).drain(args.node)


__all__ = ["DrainOptions", "Drainer", "PodFilter", "add_commands", "cordon", "dispatch",
           "filter_pods"]
