"""The small core every service shares: logging, settings conventions, gRPC bootstrap."""
