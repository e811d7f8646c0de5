"""The gateway application: the ASGI app, routing, forwarding, streaming, the WebSocket fan-out and
the HTTP error mapping.
"""
