"""The price service application: wiring, the gRPC API, the stream hub, the pipeline and sink
buffers.
"""
