"""A test-only proto with the http rules the product protos lack, compiled at test time.

It has nested path variables (`{parent.id}`, `{thing.name=things/*}`), multi-segment variables,
`**`, custom verbs, additional_bindings, a single-field body, `response_body`, every scalar and
well-known type for the query parser, and RPCs that fail, sleep and stream on request.
"""

from pathlib import Path

from google.api import annotations_pb2  # type: ignore[import-untyped]
from google.protobuf import (
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from grpc_tools import protoc

from tests.paths import PROTO_DIR

# Imported so their files are in the default pool, where the test proto's imports resolve.
_DEPENDENCIES = (
    annotations_pb2,
    duration_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

PACKAGE = "finplat.gatewaytest.v1"
SERVICE = f"{PACKAGE}.ThingService"
FILE_NAME = "finplat/gatewaytest/v1/things.proto"

SOURCE = """
syntax = "proto3";

package finplat.gatewaytest.v1;

import "google/api/annotations.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

// Colour of a thing.
enum Color {
  // Not set.
  COLOR_UNSPECIFIED = 0;
  // Red.
  COLOR_RED = 1;
  // Green.
  COLOR_GREEN = 2;
}

message Deeper { int32 level = 1; }

message Inner {
  string label = 1;
  Deeper deeper = 2;
}

// A thing with a field of every kind the query parser handles.
message Thing {
  string name = 1;
  int32 i32 = 2;
  int64 i64 = 3;
  uint32 u32 = 4;
  uint64 u64 = 5;
  sint32 s32 = 6;
  fixed64 f64 = 7;
  double dbl = 8;
  float flt = 9;
  bool flag = 10;
  bytes data = 11;
  Color color = 12;
  repeated string tags = 13;
  repeated int32 nums = 14;
  repeated Color colors = 15;
  map<string, int32> counts = 16;
  google.protobuf.Timestamp when = 17;
  google.protobuf.Duration ttl = 18;
  google.protobuf.Int64Value maybe_i64 = 19;
  google.protobuf.StringValue maybe_str = 20;
  google.protobuf.BoolValue maybe_flag = 21;
  google.protobuf.DoubleValue maybe_dbl = 22;
  Inner inner = 23;
  oneof choice {
    string alpha = 24;
    int32 beta = 25;
  }
  optional string nickname = 26;
  google.protobuf.FieldMask mask = 27;
  google.protobuf.Struct extra = 28;
  string display_name = 29 [json_name = "title"];
}

message Parent { string id = 1; }

message GetThingRequest {
  string name = 1;
  Thing thing = 2;
}

message SearchThingsRequest {
  Parent parent = 1;
  Thing thing = 2;
  int32 page_size = 3;
}

message UpdateThingRequest {
  Thing thing = 1;
  google.protobuf.FieldMask update_mask = 2;
}

message CreateThingRequest {
  Thing thing = 1;
  string request_id = 2;
}

message ListFilesRequest {
  string path = 1;
  bool recursive = 2;
}

message ArchiveRequest {
  string name = 1;
  string reason = 2;
}

message FailRequest {
  int32 code = 1;
  string message = 2;
  bool with_details = 3;
}

message SleepRequest { int32 millis = 1; }

message TagsRequest { repeated string tags = 1; }

message WatchRequest {
  int32 count = 1;
  int32 fail_code = 2;
}

message WatchResponse {
  Thing thing = 1;
  int32 seq = 2;
}

// Things, for testing the gateway.
service ThingService {
  // Returns the request, under three bindings.
  rpc GetThing(GetThingRequest) returns (GetThingRequest) {
    option (google.api.http) = {
      get: "/v1/{name=things/*}"
      additional_bindings { get: "/v1/alias/{name=things/*}" }
      additional_bindings {
        post: "/v1/{name=things/*}:get"
        body: "*"
      }
    };
  }
  rpc SearchThings(SearchThingsRequest) returns (SearchThingsRequest) {
    option (google.api.http) = {get: "/v1/parents/{parent.id}/things"};
  }
  rpc UpdateThing(UpdateThingRequest) returns (UpdateThingRequest) {
    option (google.api.http) = {
      patch: "/v1/{thing.name=things/*}"
      body: "thing"
    };
  }
  rpc CreateThing(CreateThingRequest) returns (CreateThingRequest) {
    option (google.api.http) = {
      post: "/v1/things"
      body: "thing"
      response_body: "thing"
    };
  }
  rpc ListFiles(ListFilesRequest) returns (ListFilesRequest) {
    option (google.api.http) = {get: "/v1/files/{path=**}"};
  }
  rpc ArchiveThing(ArchiveRequest) returns (ArchiveRequest) {
    option (google.api.http) = {
      post: "/v1/{name=things/*}:archive"
      body: "*"
    };
  }
  rpc DeleteThing(GetThingRequest) returns (GetThingRequest) {
    option (google.api.http) = {delete: "/v1/{name=things/*}"};
  }
  rpc Fail(FailRequest) returns (FailRequest) {
    option (google.api.http) = {get: "/v1/fail/{code}"};
  }
  rpc Sleep(SleepRequest) returns (SleepRequest) {
    option (google.api.http) = {get: "/v1/sleep/{millis}"};
  }
  rpc Tags(TagsRequest) returns (TagsRequest) {
    option (google.api.http) = {get: "/v1/tags/{tags}"};
  }
  rpc Watch(WatchRequest) returns (stream WatchResponse) {
    option (google.api.http) = {get: "/v1/things:watch"};
  }
  rpc WatchThings(WatchRequest) returns (stream WatchResponse) {
    option (google.api.http) = {
      get: "/v1/things:watchThings"
      response_body: "thing"
    };
  }
  rpc Unmapped(FailRequest) returns (FailRequest);
}
"""


def compile_into_default_pool(workdir: Path) -> descriptor.ServiceDescriptor:
    """Compile SOURCE with grpc_tools.protoc and add it to the default pool (once a process)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(SERVICE)
    except KeyError:
        pass
    source = workdir / FILE_NAME
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(SOURCE)
    out = workdir / "things.binpb"
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(
        [
            "protoc",
            f"-I{workdir}",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--descriptor_set_out={out}",
            FILE_NAME,
        ]
    )
    assert status == 0, "protoc failed on the test proto"
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool.AddSerializedFile(files.file[0].SerializeToString())
    return pool.FindServiceByName(SERVICE)
