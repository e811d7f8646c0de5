"""The gRPC channels behind the gateway: one per upstream address, opened in the lifespan.

An upstream may have several addresses, instances that serve the same (the price service's
shards each answer for every symbol). Calls then go to the first whose channel is not failing,
so that one instance dying moves calls to the next; the fan-out of StreamPrices picks its
instance itself (`streams`), to resume on the next one where the stream broke.
"""

import logging
from collections.abc import Callable, Sequence
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
    """host:port; several, comma-separated, for instances that serve the same."""
    services: tuple[descriptor.ServiceDescriptor, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        """Each host:port of `address`."""
        return tuple(part.strip() for part in self.address.split(",") if part.strip())


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
        self._channels: dict[str, tuple[grpc.aio.Channel, ...]] = {}
        self._by_service: dict[str, str] = {
            service.full_name: upstream.name
            for upstream in upstreams
            for service in upstream.services
        }
        # Per (method, channel): a multi-callable is bound to one channel.
        self._unary: dict[tuple[str, grpc.aio.Channel], UnaryCallable] = {}
        self._stream: dict[tuple[str, grpc.aio.Channel], StreamCallable] = {}

    async def open(self) -> None:
        for upstream in self.upstreams:
            # Channels connect lazily: the gateway starts even when an upstream is down, and
            # /health says so.
            self._channels[upstream.name] = tuple(
                self._security.open_channel(address, self._options)
                for address in upstream.addresses
            )
            logger.info(
                "upstream channel", extra={"upstream": upstream.name, "address": upstream.address}
            )

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._unary.clear()
        self._stream.clear()
        for group in channels.values():
            for channel in group:
                await channel.close(grace=None)

    def channels(self, upstream_name: str) -> tuple[grpc.aio.Channel, ...]:
        """One channel per address of the upstream, in the order given."""
        try:
            return self._channels[upstream_name]
        except KeyError:
            raise RuntimeError(f"upstream {upstream_name!r} is not open") from None

    def channel(self, upstream_name: str) -> grpc.aio.Channel:
        """The channel calls go to: the first that is not failing (the first of all when each
        is), so that calls move on while an instance is away and come back after."""
        channels = self.channels(upstream_name)
        if len(channels) == 1:
            return channels[0]
        for channel in channels:
            state = channel.get_state(try_to_connect=True)
            if state != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                return channel
        return channels[0]

    def channel_for(self, service: descriptor.ServiceDescriptor) -> grpc.aio.Channel:
        return self.channel(self._by_service[service.full_name])

    def unary(self, method: descriptor.MethodDescriptor) -> UnaryCallable:
        channel = self.channel_for(method.containing_service)
        callable_ = self._unary.get((method.full_name, channel))
        if callable_ is None:
            callable_ = channel.unary_unary(
                _rpc_path(method),
                request_serializer=_serialize,
                response_deserializer=_deserializer(method),
            )
            self._unary[(method.full_name, channel)] = callable_
        return callable_

    def stream(self, method: descriptor.MethodDescriptor) -> StreamCallable:
        return self._stream_on(self.channel_for(method.containing_service), method)

    def streams(self, method: descriptor.MethodDescriptor) -> tuple[StreamCallable, ...]:
        """`method` on each address of its upstream, in the order given."""
        upstream = self._by_service[method.containing_service.full_name]
        return tuple(self._stream_on(channel, method) for channel in self.channels(upstream))

    def _stream_on(
        self, channel: grpc.aio.Channel, method: descriptor.MethodDescriptor
    ) -> StreamCallable:
        callable_ = self._stream.get((method.full_name, channel))
        if callable_ is None:
            callable_ = channel.unary_stream(
                _rpc_path(method),
                request_serializer=_serialize,
                response_deserializer=_deserializer(method),
            )
            self._stream[(method.full_name, channel)] = callable_
        return callable_


def _rpc_path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _serialize(msg: message.Message) -> bytes:
    return msg.SerializeToString()


def _deserializer(method: descriptor.MethodDescriptor) -> Callable[[bytes], message.Message]:
    deserialize: Callable[[bytes], message.Message] = message_factory.GetMessageClass(
        method.output_type
    ).FromString
    return deserialize
