"""The controller-manager process: flags → Config → wiring → run until SIGTERM.

    python -m services.controller --server HOST:PORT [--controllers '*,-nodelifecycle']
"""

from __future__ import annotations

import asyncio

from kubelite.client import Client
from kubelite.component import run_component, run_leader_elected
from kubelite.config import setup_logging

from .config import Config, parse_args
from .manager import run_controllers


async def serve(config: Config) -> None:
    async with Client(config.common.server) as client:
        async def work() -> None:
            await run_leader_elected(client, config.leader,
                                     lambda: run_controllers(client, config))

        await run_component("controller-manager", config.common, work)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    setup_logging(config.common.log_level)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
