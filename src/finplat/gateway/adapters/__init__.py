"""The gateway's adapters: channels to the upstream gRPC services and their health."""
