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

from kubelite.cli import apply, create, delete, describe, get, info, up
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
        if self._intermixing:  # the intermixed parse calls back in here
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
                        help="apiserver address (default $KUBELITE_SERVER or 127.0.0.1:6443)")
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
    return parser


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
        return await create.run(session, args.files, args.targets)
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
        watching = bool(getattr(args, "watch", False))
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
                                       metrics_port=args.metrics_port))
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
