"""grpc-gateway's rules as pure functions: path templates, bindings, query parsing, JSON
marshalling, OpenAPI.
"""
