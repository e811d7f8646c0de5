"""grpc-gateway's rules as pure functions: path templates, bindings, query and header parsing, JSON
marshalling, OpenAPI.
"""
