"""The platform's contract: protos, the Python generated from them, and the Avro schema."""
