"""The `kubelite` entry point: argparse wiring, one client per run, one line per failure.

Global flags (--server, --request-timeout, -n) are accepted before or after
the command name, as kubectl accepts them. Every failure ends here as a single
line on stderr and exit code 1; a Ctrl-C ends a watch with exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from kubelite.cli import (
    apply,
    create,
    delete,
    describe,
    drain,
    expose,
    get,
    info,
    logs,
    rollout,
    scale,
    top,
    up,
)
from kubelite.cli.reporting import CliError, api_error_line, one_line
from kubelite.cli.session import Session
from kubelite.client import Client, default_server
from kubelite.errors import ApiError

DEFAULT_REQUEST_TIMEOUT = 30.0
NO_DEADLINE = 1e7  # --request-timeout 0: no deadline, as in kubectl (grpc wants a number)
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h)?)$")


class UsageError(CliError):
    """A command line argparse rejected."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 1, like every other failure."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class CommandParser(Parser):
    """A subcommand's parser: positionals may come after flags (`get po -n demo web`)."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        # The intermixed parse calls back in here; and a parser with subcommands of
        # its own (`rollout status`) cannot intermix: its subcommands do.
        if self._intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def duration(text: str) -> float:
    """Seconds from `30`, `30s`, `500ms`, `2m` or `1h` (kubectl's duration flags)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f'invalid duration "{text}" (use e.g. 30s, 2m)')
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean "{text}"')


def common_flags(*, top_level: bool) -> argparse.ArgumentParser:
    """Flags every command takes; SUPPRESS keeps a subcommand from resetting a global value."""
    parent = Parser(add_help=False)
    default = None if top_level else argparse.SUPPRESS
    parent.add_argument("--server", "-s", default=default, metavar="ADDR",
                        help="apiserver address, or several separated by commas to fail over "
                             "between (default $KUBELITE_SERVER or 127.0.0.1:6443)")
    parent.add_argument("--request-timeout", type=duration, default=default, metavar="SECONDS",
                        help=f"deadline of each request, 0 for none "
                             f"(default {DEFAULT_REQUEST_TIMEOUT:g}s)")
    parent.add_argument("--namespace", "-n", default=default, metavar="NS",
                        help="the namespace (default: default)")
    return parent


def build_parser() -> Parser:
    parser = Parser(prog="kubelite", parents=[common_flags(top_level=True)],
                    description="Control a kubelite cluster, the way kubectl controls "
                                "Kubernetes.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=CommandParser)
    common = [common_flags(top_level=False)]

    p = commands.add_parser("apply", parents=common, help="create or update objects from files")
    p.add_argument("-f", "--filename", action="append", required=True, dest="files",
                   metavar="FILE", help="a file, a directory or - (stdin); repeatable")

    p = commands.add_parser("get", parents=common, help="show objects")
    p.add_argument("targets", nargs="*", metavar="KIND[,KIND...] [NAME...]")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    p.add_argument("--field-selector", default="", help="e.g. spec.nodeName=node-0")
    p.add_argument("-o", "--output", default="", choices=get.OUTPUTS)
    p.add_argument("-w", "--watch", action="store_true", help="then print every change")
    p.add_argument("--show-labels", action="store_true")

    p = commands.add_parser("describe", parents=common, help="show one object in detail")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")

    p = commands.add_parser("delete", parents=common, help="delete objects")
    p.add_argument("targets", nargs="*", metavar="KIND NAME...")
    p.add_argument("-f", "--filename", action="append", default=[], dest="files",
                   metavar="FILE")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--all", action="store_true", help="every object of the kinds given")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds a pod gets to stop (-1: its own setting)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--cascade", nargs="?", const="background", default="background",
                   help="background (default), foreground or orphan")
    p.add_argument("--wait", nargs="?", type=boolean, const=True, default=True,
                   help="wait until the objects are gone (default true)")
    p.add_argument("--no-wait", dest="wait", action="store_false")
    p.add_argument("--timeout", type=duration, default=0.0,
                   help="how long to wait for the deletion (0: as long as it takes)")
    p.add_argument("--ignore-not-found", action="store_true")

    p = commands.add_parser("create", parents=common, help="create a namespace or objects")
    p.add_argument("targets", nargs="*", metavar="namespace NAME")
    p.add_argument("-f", "--filename", action="append", default=[], dest="files",
                   metavar="FILE")
    p.add_argument("--from", dest="from_", default="", metavar="cronjob/NAME",
                   help="create job NAME: the CronJob whose jobTemplate the Job runs")

    add_workload_commands(commands, common)
    drain.add_commands(commands, common, duration=duration)

    p = commands.add_parser("top", parents=common,
                            help="show cpu and memory use of nodes or pods")
    p.add_argument("targets", nargs="+", metavar="node|pod [NAME]")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    p.add_argument("--containers", action="store_true", help="one line per container")
    p.add_argument("--sort-by", default="", choices=top.SORT_KEYS)
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--show-capacity", action="store_true",
                   help="node percentages of capacity instead of allocatable")

    commands.add_parser("api-resources", parents=common, help="list the kinds served")
    commands.add_parser("version", parents=common, help="print the client version")

    p = commands.add_parser("up", parents=common, help="run a local cluster until Ctrl-C")
    p.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="the apiserver's address (default 127.0.0.1:6443)")
    p.add_argument("--redis-url", default="", help="use this Redis instead of starting one")
    p.add_argument("--data-dir", default=up.DEFAULT_DATA_DIR,
                   help="Redis data and logs (default ./.kubelite)")
    p.add_argument("--nodes", type=int, default=1, help="kubelets to run (default 1)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="the apiserver's metrics port (default: a free one)")
    up.add_passed_on_flags(p)
    p.add_argument("--ha", action="store_true",
                   help="high availability: Redis with a replica and 3 Sentinels, 2 apiservers "
                        "(--listen and the next port), 2 schedulers, 2 controller managers")
    return parser


def add_workload_commands(commands: argparse._SubParsersAction,
                          common: list[argparse.ArgumentParser]) -> None:
    """logs, scale, rollout and expose."""
    p = commands.add_parser("logs", parents=common, help="print the log of a pod's container")
    p.add_argument("targets", nargs="+", metavar="POD|TYPE/NAME",
                   help="the pod (optionally followed by a container), or TYPE/NAME of a "
                        "deployment, replicaset or service")
    p.add_argument("-c", "--container", default="", help="the container (default: the first)")
    p.add_argument("-f", "--follow", action="store_true", help="stream the log until Ctrl-C")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the log of the previous, terminated instance of the container")
    p.add_argument("--tail", type=int, default=-1, metavar="N",
                   help="only the last N lines (default -1: all)")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--pod-running-timeout", type=duration, default=20.0, metavar="DURATION",
                   help="how long TYPE/NAME waits for a pod to exist (default 20s)")

    p = commands.add_parser("scale", parents=common,
                            help="set the replicas of deployments and replicasets")
    p.add_argument("targets", nargs="*", metavar="KIND/NAME|KIND NAME")
    p.add_argument("--replicas", type=int, default=None, metavar="N")
    p.add_argument("-f", "--filename", action="append", default=[], dest="files",
                   metavar="FILE")
    p.add_argument("--current-replicas", type=int, default=-1, metavar="N",
                   help="only scale when the current replicas are N")
    p.add_argument("--resource-version", default="",
                   help="only scale when the object is at this resourceVersion")

    rollout_parser = commands.add_parser(
        "rollout", parents=common,
        help="manage the rollout of a deployment, daemonset or statefulset")
    steps = rollout_parser.add_subparsers(dest="rollout_command", metavar="SUBCOMMAND",
                                          parser_class=CommandParser, required=True)
    target_help = "KIND/NAME or KIND NAME (deployment, daemonset or statefulset)"
    target_metavar = "KIND/NAME"
    p = steps.add_parser("status", parents=common, help="wait for the rollout to finish")
    p.add_argument("targets", nargs="+", metavar=target_metavar, help=target_help)
    # `-w` takes no value, so that `status -w deploy/web` parses; `--watch=false` does.
    p.add_argument("-w", dest="rollout_watch", action="store_const", const=True, default=True,
                   help="watch until the rollout finishes (the default)")
    p.add_argument("--watch", dest="rollout_watch", nargs="?", type=boolean, const=True,
                   metavar="BOOL", help="--watch=false prints the status once")
    p.add_argument("--timeout", type=duration, default=0.0, metavar="DURATION",
                   help="give up after this long (default 0: never)")
    p.add_argument("--revision", type=int, default=0,
                   help="insist on this revision (default 0: the current one)")
    p = steps.add_parser("history", parents=common, help="list the revisions")
    p.add_argument("targets", nargs="+", metavar=target_metavar, help=target_help)
    p.add_argument("--revision", type=int, default=0, help="show this revision's pod template")
    p = steps.add_parser("undo", parents=common, help="roll back to a previous revision")
    p.add_argument("targets", nargs="+", metavar=target_metavar, help=target_help)
    p.add_argument("--to-revision", type=int, default=0,
                   help="the revision to roll back to (default 0: the previous one)")
    for name, text in (("restart", "replace every pod"), ("pause", "pause the rollout"),
                       ("resume", "resume a paused rollout")):
        p = steps.add_parser(name, parents=common, help=text)
        p.add_argument("targets", nargs="+", metavar=target_metavar, help=target_help)

    p = commands.add_parser("expose", parents=common,
                            help="create a Service for a deployment, replicaset, pod or service")
    p.add_argument("targets", nargs="+", metavar="KIND/NAME",
                   help="KIND/NAME or KIND NAME (deployment, rs, pod or svc)")
    p.add_argument("--port", default="", help="the service port(s), comma-separated "
                                              "(default: the container ports)")
    p.add_argument("--target-port", default="",
                   help="the port (number or name) on the pods (default: the port)")
    p.add_argument("--type", default="", choices=("ClusterIP", "NodePort", "LoadBalancer"))
    p.add_argument("--name", default="", help="the service's name (default: the object's)")
    p.add_argument("--protocol", default="", choices=("TCP", "UDP", "SCTP"),
                   help="the ports' protocol (default: the container ports', else TCP)")
    p.add_argument("--selector", default="",
                   help="the pods to select, key=value[,...] (default: the object's)")
    p.add_argument("-l", "--labels", default="",
                   help="the service's labels, key=value[,...] (default: the object's)")
    p.add_argument("--cluster-ip", default="", help='the ClusterIP to ask for ("None": headless)')


async def dispatch_workload(args: argparse.Namespace, session: Session) -> int | None:
    """Runs logs, scale, rollout or expose; None for any other command."""
    command = args.command
    if command == "logs":
        options = logs.LogsOptions(container=args.container, follow=args.follow,
                                   previous=args.previous, tail=args.tail,
                                   timestamps=args.timestamps,
                                   pod_running_timeout=args.pod_running_timeout)
        return await logs.run(session, args.targets, options)
    if command == "scale":
        scale_options = scale.ScaleOptions(replicas=args.replicas,
                                           current_replicas=args.current_replicas,
                                           resource_version=args.resource_version)
        return await scale.run(session, args.targets, args.files, scale_options)
    if command == "expose":
        expose_options = expose.ExposeOptions(
            port=args.port, target_port=args.target_port, type=args.type, name=args.name,
            protocol=args.protocol, selector=args.selector, labels=args.labels,
            cluster_ip=args.cluster_ip)
        return await expose.run(session, args.targets, expose_options)
    if command != "rollout":
        return None
    step = args.rollout_command
    if step == "status":
        status_options = rollout.StatusOptions(watch=args.rollout_watch, timeout=args.timeout,
                                               revision=args.revision)
        return await rollout.status(session, args.targets, status_options)
    if step == "history":
        return await rollout.history(session, args.targets, args.revision)
    if step == "undo":
        return await rollout.undo(session, args.targets, args.to_revision)
    if step == "restart":
        return await rollout.restart(session, args.targets)
    if step in ("pause", "resume"):
        return await rollout.set_paused(session, args.targets, paused=step == "pause")
    raise CliError(f'unknown command "rollout {step}"')


async def dispatch(args: argparse.Namespace, session: Session) -> int:
    command = args.command
    if command == "apply":
        return await apply.run(session, args.files)
    if command == "get":
        options = get.GetOptions(all_namespaces=args.all_namespaces,
                                 label_selector=args.selector,
                                 field_selector=args.field_selector, output=args.output,
                                 watch=args.watch, show_labels=args.show_labels)
        return await get.run(session, args.targets, options)
    if command == "describe":
        return await describe.run(session, args.kind, args.names)
    if command == "delete":
        grace = 1 if args.now else (args.grace_period if args.grace_period >= 0 else None)
        options = delete.DeleteOptions(grace_period=grace, cascade=args.cascade,
                                       wait=args.wait, timeout=args.timeout,
                                       ignore_not_found=args.ignore_not_found,
                                       label_selector=args.selector, all=args.all)
        return await delete.run(session, args.files, args.targets, options)
    if command == "create":
        return await create.run(session, args.files, args.targets, args.from_)
    if command == "top":
        top_options = top.TopOptions(all_namespaces=args.all_namespaces,
                                     label_selector=args.selector, containers=args.containers,
                                     sort_by=args.sort_by, no_headers=args.no_headers,
                                     show_capacity=args.show_capacity)
        return await top.run(session, args.targets, top_options)
    code = await dispatch_workload(args, session)
    if code is None:
        code = await drain.dispatch(args, session)
    if code is not None:
        return code
    raise CliError(f'unknown command "{command}"')


async def run_with_client(args: argparse.Namespace, server: str,
                          request_timeout: float) -> int:
    def warn(text: str) -> None:
        print(f"Warning: {one_line(text)}", file=sys.stderr, flush=True)

    async with Client(server, timeout=request_timeout, on_warning=warn) as client:
        session = Session(client, server, request_timeout, namespace=args.namespace)
        return await dispatch(args, session)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    server = default_server()
    timeout = DEFAULT_REQUEST_TIMEOUT
    watching = False
    try:
        args = parser.parse_args(argv)
        server = args.server or server
        if args.request_timeout is not None:
            timeout = args.request_timeout or NO_DEADLINE
        # A watch or `logs -f` ends with Ctrl-C, and that is success.
        watching = bool(getattr(args, "watch", False) or getattr(args, "follow", False))
        if args.command is None:
            parser.print_help()
            return 1
        if args.command == "version":
            print(info.version_text(server))
            return 0
        if args.command == "api-resources":
            print(info.api_resources_table())
            return 0
        if args.command == "up":
            return up.run(up.UpOptions(listen=args.listen, redis_url=args.redis_url,
                                       data_dir=args.data_dir, nodes=args.nodes,
                                       metrics_port=args.metrics_port,
                                       component_flags=up.passed_on(args), ha=args.ha))
        return asyncio.run(run_with_client(args, server, timeout))
    except CliError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 1
    except ApiError as err:
        print(api_error_line(err, server=server, timeout=timeout), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0 if watching else 130
    except BrokenPipeError:
        # The reader went away (`kubelite get ... | head`): nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # a bug, or an OS failure: still one line unless debugging
        if os.environ.get("KUBELITE_DEBUG"):
            raise
        print(f"error: {type(err).__name__}: {one_line(str(err))} "
              f"(set KUBELITE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
