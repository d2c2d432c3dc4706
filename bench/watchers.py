"""Watchers for bench.api, in a process of their own.

Opens N watches on ConfigMaps in one namespace and records, for every event,
the revision and the moment it arrived (time.monotonic(), which on Linux is
CLOCK_MONOTONIC, one clock for every process on the machine, so bench.api can
subtract its own acknowledgement times from these).

Protocol with bench.api: the namespace holds one object named `sentinel` before
this starts; each watch lists first, so its ADDED event for the sentinel proves
the watch is open. When every watch has seen it this prints `READY`. It stops
when every watch has seen the object named by --end (or at --timeout), writes
{"watchers": [[[rv, t], ...], ...], ...} to --out, and prints `DONE`.

    python -m bench.watchers --target HOST:PORT --namespace NS --watchers 100 \
        --end end --out /tmp/w.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable

from bench.channels import close_clients, open_clients
from kubelite.client import Client

SENTINEL = "sentinel"


async def watch_one(client: Client, namespace: str, end: str, on_ready: Callable[[], None],
                    record: list[list[float]]) -> None:
    async for event in client.watch("configmaps", namespace=namespace, resource_version="",
                                    allow_bookmarks=False):
        now = time.monotonic()
        name = event.object["metadata"]["name"]
        if name == SENTINEL:
            on_ready()
            continue
        if name == end:
            return
        record.append([int(event.resource_version), now])


async def run(args: argparse.Namespace) -> dict:
    clients = await open_clients(args.target.split(","), args.watchers, args.connections)
    records: list[list[list[float]]] = [[] for _ in range(args.watchers)]
    opened = 0

    def on_ready() -> None:
        nonlocal opened
        opened += 1
        if opened == args.watchers:
            print("READY", flush=True)

    tasks = [
        asyncio.create_task(watch_one(clients[i % len(clients)], args.namespace, args.end,
                                      on_ready, records[i]))
        for i in range(args.watchers)
    ]
    started = time.process_time()
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors = [repr(t.exception()) for t in done if t.exception() is not None]
    await close_clients(clients)
    return {"watchers": records, "timed_out": len(pending), "errors": errors[:5],
            "cpu_seconds": time.process_time() - started}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.watchers",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True,
                        help="apiserver address; several, comma-separated, are taken in turn")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--watchers", type=int, default=1)
    parser.add_argument("--connections", choices=("shared", "channels", "connections"),
                        default="shared", help="how the watches share gRPC channels")
    parser.add_argument("--end", default="end", help="the name of the last object to wait for")
    parser.add_argument("--out", required=True, help="file to write the results to (JSON)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after seconds")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    with open(args.out, "w") as out:
        json.dump(result, out)
    print("DONE", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
