"""The scheduler process: flags → Config → wiring → run until SIGTERM.

    python -m services.scheduler --server HOST:PORT [--scheduler-name NAME] ...
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from kubelite.client import Client
from kubelite.component import (
    add_common_flags,
    add_leader_flags,
    common_config,
    leader_config,
    run_component,
    run_leader_elected,
)
from kubelite.config import add_flag, setup_logging
from kubelite.events import EventRecorder

from .config import DEFAULT_SCHEDULER_NAME, Config, format_score_weights, parse_score_weights
from .plugins import DEFAULT_SCORE_WEIGHTS, SCORE_PLUGINS, new_framework
from .scheduler import Scheduler

log = logging.getLogger("kubelite.scheduler")


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="kubelite-scheduler", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(p, health_port=10259, metrics_port=10251)
    add_leader_flags(p, lease_name="kube-scheduler")
    add_flag(p, "--scheduler-name", default=DEFAULT_SCHEDULER_NAME,
             help="schedule the pods whose spec.schedulerName is this")
    add_flag(p, "--score-weights", default=format_score_weights(DEFAULT_SCORE_WEIGHTS),
             help="Name=weight,... for the score plugins "
                  f"({', '.join(SCORE_PLUGINS)}); unnamed ones keep their default, 0 disables")
    add_flag(p, "--pod-initial-backoff", default=1.0,
             help="seconds an unschedulable pod first waits before a retry")
    add_flag(p, "--pod-max-backoff", default=10.0, help="cap of the doubling retry backoff")
    add_flag(p, "--pod-max-unschedulable-duration", default=60.0,
             help="seconds after which an unschedulable pod is retried even if nothing changed")
    add_flag(p, "--assumed-pod-ttl", default=30.0,
             help="seconds a bound pod counts on its node before the watch confirms it")
    a = p.parse_args(argv)
    try:
        weights = parse_score_weights(a.score_weights)
        new_framework(weights)  # rejects unknown plugin names
    except ValueError as err:
        p.error(f"--score-weights: {err}")
    for flag in ("pod_initial_backoff", "pod_max_backoff", "pod_max_unschedulable_duration"):
        if getattr(a, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')} must be positive")
    return Config(
        scheduler_name=a.scheduler_name, score_weights=tuple(weights.items()),
        pod_initial_backoff=a.pod_initial_backoff,
        pod_max_backoff=max(a.pod_max_backoff, a.pod_initial_backoff),
        pod_max_unschedulable_duration=a.pod_max_unschedulable_duration,
        assumed_pod_ttl=a.assumed_pod_ttl,
        common=common_config(a), leader=leader_config(a),
    )


async def serve(config: Config) -> None:
    assert config.common is not None and config.leader is not None
    client = Client(config.common.server)
    recorder = EventRecorder(client, component=config.scheduler_name,
                             host=config.leader.identity)
    scheduler = Scheduler(client, config, framework=new_framework(dict(config.score_weights)),
                          recorder=recorder)

    async def work() -> None:
        try:
            await scheduler.start()
            await run_leader_elected(client, config.leader, scheduler.run)
        finally:
            await scheduler.stop()
            try:
                await asyncio.wait_for(recorder.flush(), 1.0)
            except TimeoutError:
                pass
            await recorder.stop()
            await client.close()

    await run_component("scheduler", config.common, work)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    assert config.common is not None
    setup_logging(config.common.log_level)
    log.info("configuration", extra={"kv": {
        "scheduler_name": config.scheduler_name,
        "score_weights": format_score_weights(dict(config.score_weights)),
        "backoff": f"{config.pod_initial_backoff}-{config.pod_max_backoff}s",
        "identity": config.leader.identity if config.leader else ""}})
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
