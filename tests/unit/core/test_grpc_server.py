"""The shared server bootstrap: health follows the service, reflection lists every service."""

import asyncio

import grpc
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from finance.market.v1 import price_service_pb2_grpc
from finplat.core.grpc_server import ServiceBinding, start_server
from finplat.core.health_cli import health

PRICE_SERVICE = "finance.market.v1.PriceService"


def _binding() -> ServiceBinding:
    # The generated base servicer answers UNIMPLEMENTED: enough to be registered and listed.
    servicer = price_service_pb2_grpc.PriceServiceServicer()  # type: ignore[abstract]
    return ServiceBinding(
        name=PRICE_SERVICE,
        register=lambda server: price_service_pb2_grpc.add_PriceServiceServicer_to_server(
            servicer, server
        ),
    )


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    status: int = response.status
    return status


@pytest.mark.asyncio
async def test_health_starts_not_serving_then_follows_the_service() -> None:
    server = await start_server("127.0.0.1:0", [_binding()])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            before = await _status(channel, "")
            await server.health.set_all(serving=True)
            after_overall = await _status(channel, "")
            after_service = await _status(channel, PRICE_SERVICE)
    finally:
        await server.stop(grace_s=0)

    assert before == health_pb2.HealthCheckResponse.NOT_SERVING
    assert after_overall == health_pb2.HealthCheckResponse.SERVING
    assert after_service == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.asyncio
async def test_reflection_lists_services() -> None:
    server = await start_server("127.0.0.1:0", [_binding()])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            responses = [response async for response in stub.ServerReflectionInfo(iter([request]))]
    finally:
        await server.stop(grace_s=0)

    names = {service.name for service in responses[0].list_services_response.service}
    assert names == {
        PRICE_SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


@pytest.mark.asyncio
async def test_taken_port_is_a_clear_error() -> None:
    first = await start_server("127.0.0.1:0", [_binding()])
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            await start_server(f"127.0.0.1:{first.port}", [_binding()])
    finally:
        await first.stop(grace_s=0)


@pytest.mark.asyncio
async def test_health_command_follows_the_server() -> None:
    server = await start_server("127.0.0.1:0", [_binding()])
    address = f"127.0.0.1:{server.port}"
    try:
        before = await asyncio.to_thread(CliRunner().invoke, health, [address])
        await server.health.set_all(serving=True)
        after = await asyncio.to_thread(
            CliRunner().invoke, health, [address, "--service", PRICE_SERVICE]
        )
    finally:
        await server.stop(grace_s=0)

    assert (before.exit_code, before.output) == (1, f"{address} (server): NOT_SERVING\n")
    assert (after.exit_code, after.output) == (0, f"{address} {PRICE_SERVICE}: SERVING\n")


@pytest.mark.asyncio
async def test_reported_dependencies_are_listed_and_fold_into_the_overall_status() -> None:
    server = await start_server("127.0.0.1:0", [_binding()])
    statuses = health_pb2.HealthCheckResponse
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await server.health.report({"deps.kafka": "no broker reachable", "deps.redis": None})
            while_out = await stub.List(health_pb2.HealthListRequest())
            await server.health.report({"deps.kafka": None, "deps.redis": None})
            back = await _status(channel, "")
    finally:
        await server.stop(grace_s=0)

    listed = {name: reply.status for name, reply in while_out.statuses.items()}
    assert listed == {
        "": statuses.NOT_SERVING,
        PRICE_SERVICE: statuses.NOT_SERVING,  # still starting: nothing flipped it yet
        "deps.kafka": statuses.NOT_SERVING,
        "deps.redis": statuses.SERVING,
    }
    assert back == statuses.SERVING
