"""The gateway application: the ASGI app, routing, forwarding with header and deadline mapping,
streaming, the WebSocket fan-out and the gRPC-status-to-HTTP mapping."""
