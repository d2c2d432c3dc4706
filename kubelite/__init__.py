"""kubelite: a Kubernetes-style orchestrator. This package is the shared library
(client, informers, work queue, leader election) and the CLI."""

import os

# kubelite processes fork children that exec at once (redis-server, components,
# container shims). gRPC's fork handlers are for children that keep using gRPC;
# with calls in flight they make such forks crash now and then. Turn them off
# before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
