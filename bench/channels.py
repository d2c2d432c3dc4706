"""How the benchmark's concurrent callers share gRPC channels.

- shared:      one channel (one kubelite Client) for every caller;
- channels:    a Client per caller. grpc pools subchannels process-wide, so
               channels with the same target and options still share one TCP
               connection: this only separates the channels' call queues;
- connections: a Client per caller whose channel has a local subchannel pool,
               so each caller has a TCP connection (an HTTP/2 session) of its own,
               as separate client processes would.
"""

from __future__ import annotations

import grpc

from kubelite.api.v1 import api_pb2_grpc
from kubelite.client import MAX_MESSAGE_BYTES, Client

MODES = ("shared", "channels", "connections")


def channel_options(own_connection: bool) -> list[tuple[str, int]]:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    return options


async def own_connection_client(target: str) -> Client:
    """A kubelite Client whose channel has a TCP connection nobody else shares.

    Client takes no channel options, so this swaps its (never connected) channel
    for one with a local subchannel pool; every call still goes through Client.
    """
    client = Client(target)
    await client._channel.close()
    client._channel = grpc.aio.insecure_channel(target, options=channel_options(True))
    client._stub = api_pb2_grpc.ApiStub(client._channel)
    return client


async def open_clients(targets: list[str], count: int, mode: str) -> list[Client]:
    """`count` clients for `count` callers (the same object `count` times when shared).

    Unshared clients take the targets (apiserver replicas) in turn.
    """
    if mode == "shared":
        return [Client(targets[0])] * count
    if mode == "channels":
        return [Client(targets[i % len(targets)]) for i in range(count)]
    if mode == "connections":
        return [await own_connection_client(targets[i % len(targets)]) for i in range(count)]
    raise ValueError(f"unknown channel mode {mode!r}")


async def close_clients(clients: list[Client]) -> None:
    for client in {id(c): c for c in clients}.values():
        await client.close()
