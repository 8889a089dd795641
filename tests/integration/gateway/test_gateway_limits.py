"""What a caller cannot make the gateway hold: its gRPC method cache stays bounded."""

from __future__ import annotations

import asyncio

import grpc

from tests.conftest import free_port


def test_random_grpc_method_names_do_not_grow_the_method_cache():
    from ksrv.gateway import grpc_proxy
    from ksrv.gateway.app import Gateway

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0, grpc_port=free_port())
        try:
            assert gateway._grpc is not None
            cache = gateway._grpc.forwarder.handler
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
                for number in range(grpc_proxy.MAX_CACHED_METHODS + 100):
                    call = channel.unary_unary(f"/attacker.Service/Method{number}")
                    try:
                        await call(b"", metadata=(("host", "nowhere.example.com"),))
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert cache.cache_info().currsize == grpc_proxy.MAX_CACHED_METHODS
        finally:
            await gateway.stop()

    asyncio.run(run())
