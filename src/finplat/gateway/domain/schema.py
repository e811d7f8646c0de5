"""proto messages as OpenAPI 3.0 schemas of their proto3 JSON, as the gateway writes it.

Types follow protoc-gen-openapiv2 (64-bit integers are strings, enums are their names,
well-known types their JSON forms); names are JSON names. Singular message fields are
`nullable`, because the default marshaler emits unset ones as `null`.
"""

from typing import Any

from google.protobuf import descriptor

from finplat.gateway.domain.comments import comment

FieldDescriptor = descriptor.FieldDescriptor
Schema = dict[str, Any]

_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": {}},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.DoubleValue": {"type": "number", "format": "double"},
    "google.protobuf.FloatValue": {"type": "number", "format": "float"},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte"},
}
ANY_SCHEMA: Schema = {
    "type": "object",
    "properties": {"@type": {"type": "string"}},
    "additionalProperties": {},
    "description": "A message of any type, named by its `@type` URL.",
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class SchemaRegistry:
    """Component schemas of every message and enum reached, under stable short names."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {
            "protobufAny": ANY_SCHEMA,
            "rpcStatus": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "format": "int32"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": ref("protobufAny")},
                },
                "description": "The error: a google.rpc.Status.",
            },
        }
        self._names: dict[str, str] = {
            "google.protobuf.Any": "protobufAny",
            "google.rpc.Status": "rpcStatus",
        }

    def message(self, desc: descriptor.Descriptor) -> Schema:
        """A reference to (or, for a well-known type, the inline schema of) a message."""
        known = _WELL_KNOWN.get(desc.full_name)
        if known is not None:
            return dict(known)
        name = self._names.get(desc.full_name)
        if name is None:
            name = self._name_for(desc.full_name)
            self._names[desc.full_name] = name
            self.components[name] = {}  # placeholder: recursive messages refer to it
            self.components[name] = self._message_schema(desc)
        return ref(name)

    def field(self, field: FieldDescriptor, *, nullable: bool = True) -> Schema:
        sub = field.message_type
        if sub is not None and sub.GetOptions().map_entry:
            value = self.field(sub.fields_by_name["value"], nullable=False)
            schema: Schema = {"type": "object", "additionalProperties": value}
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single(field)}
        elif sub is not None and nullable:
            inner = self._single(field)
            schema = {"allOf": [inner]} if "$ref" in inner else inner
            schema["nullable"] = True
        else:
            schema = self._single(field)
        text = comment(field.full_name)
        if text:
            schema["description"] = text
        return schema

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def enum(self, enum: descriptor.EnumDescriptor) -> Schema:
        name = self._names.get(enum.full_name)
        if name is None:
            name = self._name_for(enum.full_name)
            self._names[enum.full_name] = name
            values = list(enum.values)
            lines = [comment(enum.full_name)] if comment(enum.full_name) else []
            lines += [f"- `{v.name}`: {comment(_value_name(enum, v))}" for v in values]
            self.components[name] = {
                "type": "string",
                "enum": [v.name for v in values],
                "default": values[0].name,
                "description": "\n".join(lines),
            }
        return ref(name)

    def _message_schema(self, desc: descriptor.Descriptor) -> Schema:
        schema: Schema = {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in desc.fields},
        }
        text = comment(desc.full_name)
        if text:
            schema["description"] = text
        return schema

    def _name_for(self, full_name: str) -> str:
        # protoc-gen-openapiv2 style ("v1PriceUpdate"), with more of the package when two
        # packages share their last component and message name.
        parts = full_name.split(".")
        taken = set(self._names.values())
        for size in range(2, len(parts) + 1):
            candidate = "".join(parts[-size:])
            if candidate not in taken:
                return candidate
        return full_name.replace(".", "_")


def _value_name(enum: descriptor.EnumDescriptor, value: descriptor.EnumValueDescriptor) -> str:
    return f"{enum.full_name}.{value.name}"
