"""A kit for test harnesses: real kubelite processes, and waits that watch instead of poll.

Importing it needs no pytest; the pytest fixtures live in kubelite.testing.plugin,
which pytest loads by itself once kubelite is installed (a pytest11 entry point).
"""

from kubelite.testing.processes import (
    FAST_TIMINGS,
    ApiServer,
    LocalCluster,
    create_namespace,
    is_ready,
    start_apiserver,
    start_cluster,
    unique_name,
    wait_nodes_ready,
)
from kubelite.testing.waiting import (
    WaitTimeout,
    eventually,
    eventually_sync,
    wait_deleted,
    wait_for,
    wait_for_list,
)

__all__ = [
    "FAST_TIMINGS",
    "ApiServer",
    "LocalCluster",
    "WaitTimeout",
    "create_namespace",
    "eventually",
    "eventually_sync",
    "is_ready",
    "start_apiserver",
    "start_cluster",
    "unique_name",
    "wait_deleted",
    "wait_for",
    "wait_for_list",
    "wait_nodes_ready",
]
