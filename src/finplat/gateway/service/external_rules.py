"""HTTP rules for the methods of protos we do not own, as grpc-gateway takes them from its
`grpc_api_configuration` file: `proto/grpc-gateway.yaml` holds the same rules, for a real
grpc-gateway in front of the same services, and a test keeps the two equal.

googleapis' google.longrunning.Operations annotates get, delete and cancel under
/v1/operations; its list route is shadowed by the get route (whose `**` may match nothing) and
WaitOperation has no route, so those two get one here.
"""

from collections.abc import Mapping, Sequence

from google.api import http_pb2  # type: ignore[import-untyped]

EXTERNAL_RULES: Mapping[str, Sequence[http_pb2.HttpRule]] = {
    "google.longrunning.Operations.ListOperations": (http_pb2.HttpRule(get="/api/operations"),),
    "google.longrunning.Operations.WaitOperation": (
        http_pb2.HttpRule(post="/v1/{name=operations/**}:wait", body="*"),
    ),
}
