"""REST and WebSocket onto the gRPC services, driven by the protos' `google.api.http` rules."""
