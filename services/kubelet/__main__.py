"""python -m services.kubelet --server HOST:PORT --node-name NAME [--listen HOST:PORT] ...

Flags (and KUBELITE_* environment) → a frozen KubeletConfig → the runtime,
the Kubelet and its Logs service → run_component, which serves the Kubelet
gRPC service and gRPC health on --listen and metrics on --metrics-port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import grpc

from kubelite.api.v1 import api_pb2_grpc
from kubelite.client import Client
from kubelite.component import run_component
from kubelite.config import setup_logging
from services.kubelet.config import KubeletConfig, add_kubelet_flags, config_from_args
from services.kubelet.kubelet import Kubelet
from services.kubelet.runtime import Runtime
from services.kubelet.runtime_process import ProcessRuntime
from services.kubelet.stats import KubeletStatsService

log = logging.getLogger("kubelite.kubelet")


def parse_args(argv: list[str] | None = None) -> KubeletConfig:
    parser = argparse.ArgumentParser(prog="kubelite-kubelet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_kubelet_flags(parser)
    args = parser.parse_args(argv)
    try:
        return config_from_args(args)
    except ValueError as err:
        parser.error(str(err))
        raise  # unreachable: parser.error exits


async def make_runtime(config: KubeletConfig) -> Runtime:
    if config.runtime == "docker":
        # Imported here: the docker SDK is an optional dependency ('.[docker]').
        from services.kubelet.runtime_docker import DockerRuntime

        return await DockerRuntime.connect(
            node_name=config.node_name, network=config.docker_network,
            pod_infra_image=config.pod_infra_image, docker_host=config.docker_host,
            state_dir=config.root_dir)
    return ProcessRuntime(config.root_dir, pod_cidr=config.pod_cidr)


async def serve(config: KubeletConfig) -> None:
    runtime = await make_runtime(config)
    client = Client(config.common.server)
    kubelet = Kubelet(config, client, runtime)

    def register(server: grpc.aio.Server) -> list[str]:
        api_pb2_grpc.add_KubeletServicer_to_server(
            KubeletStatsService(kubelet.runtime, kubelet.pod_by_name, kubelet.stats), server)
        return ["kubelite.api.v1.Kubelet"]

    log.info("kubelet starting", extra={"kv": {
        "node": config.node_name, "listen": config.listen, "root_dir": config.root_dir,
        "pod_cidr": config.pod_cidr, "runtime": config.runtime}})
    try:
        await run_component("kubelet", config.common, kubelet.run, register=register,
                            ready=kubelet.ready)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    setup_logging(config.common.log_level)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
