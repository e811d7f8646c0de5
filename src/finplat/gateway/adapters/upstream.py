"""The gRPC channels behind the gateway: one per upstream address, opened in the lifespan."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor, message, message_factory

from finplat.core.grpc_security import ChannelSecurity

logger = logging.getLogger(__name__)

UnaryCallable = grpc.aio.UnaryUnaryMultiCallable[message.Message, message.Message]
StreamCallable = grpc.aio.UnaryStreamMultiCallable[message.Message, message.Message]


@dataclass(frozen=True)
class Upstream:
    """A gRPC server and the services the gateway reaches there."""

    name: str
    address: str
    services: tuple[descriptor.ServiceDescriptor, ...]


class UpstreamPool:
    """Channels per upstream and a ready multi-callable per RPC, built once, shared by requests."""

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        *,
        keepalive_time_s: float,
        keepalive_timeout_s: float,
        security: ChannelSecurity | None = None,
    ) -> None:
        self.upstreams = tuple(upstreams)
        self._security = security or ChannelSecurity()
        self._options = [
            ("grpc.keepalive_time_ms", int(keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(keepalive_timeout_s * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._by_service: dict[str, str] = {
            service.full_name: upstream.name
            for upstream in upstreams
            for service in upstream.services
        }
        self._unary: dict[str, UnaryCallable] = {}
        self._stream: dict[str, StreamCallable] = {}

    async def open(self) -> None:
        for upstream in self.upstreams:
            # Channels connect lazily: the gateway starts even when an upstream is down, and
            # /health says so.
            self._channels[upstream.name] = self._security.open_channel(
                upstream.address, self._options
            )
            logger.info(
                "upstream channel", extra={"upstream": upstream.name, "address": upstream.address}
            )

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._unary.clear()
        self._stream.clear()
        for channel in channels.values():
            await channel.close(grace=None)

    def channel(self, upstream_name: str) -> grpc.aio.Channel:
        try:
            return self._channels[upstream_name]
        except KeyError:
            raise RuntimeError(f"upstream {upstream_name!r} is not open") from None

    def channel_for(self, service: descriptor.ServiceDescriptor) -> grpc.aio.Channel:
        return self.channel(self._by_service[service.full_name])

    def unary(self, method: descriptor.MethodDescriptor) -> UnaryCallable:
        callable_ = self._unary.get(method.full_name)
        if callable_ is None:
            callable_ = self.channel_for(method.containing_service).unary_unary(
                _rpc_path(method),
                request_serializer=_serialize,
                response_deserializer=message_factory.GetMessageClass(
                    method.output_type
                ).FromString,
            )
            self._unary[method.full_name] = callable_
        return callable_

    def stream(self, method: descriptor.MethodDescriptor) -> StreamCallable:
        callable_ = self._stream.get(method.full_name)
        if callable_ is None:
            callable_ = self.channel_for(method.containing_service).unary_stream(
                _rpc_path(method),
                request_serializer=_serialize,
                response_deserializer=message_factory.GetMessageClass(
                    method.output_type
                ).FromString,
            )
            self._stream[method.full_name] = callable_
        return callable_


def _rpc_path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _serialize(msg: message.Message) -> bytes:
    return msg.SerializeToString()
