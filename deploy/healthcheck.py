"""docker-compose's health check for kubelite components: gRPC health checking.

    python3 /etc/kubelite/healthcheck.py HOST:PORT [SERVICE]

Exits 0 when the component at HOST:PORT answers SERVING (for SERVICE, default
the server as a whole), else 1, printing the status or the error, which Docker
keeps in `docker inspect`'s State.Health.Log. Every component serves gRPC
health: the apiserver on its API port once Redis answers, the kubelet on
--listen once its Node is registered, the others on --health-listen.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def check(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as err:
            print(f"{address}: {err.code().name}: {err.details()}")
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(check(*sys.argv[1:]))
