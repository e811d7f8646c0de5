"""Leading comments of every proto element, by full name, from the checked-in descriptor set.

The generated Python modules drop source info; `finance/descriptors.binpb` keeps it. Elements
not in it (a test's dynamic protos) simply have no description.
"""

import functools
import logging

from google.protobuf import descriptor_pb2

from finplat.contract.descriptors import load_descriptor_set

logger = logging.getLogger(__name__)

# Field numbers used in SourceCodeInfo paths (google/protobuf/descriptor.proto).
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def comment(full_name: str) -> str:
    """The cleaned leading comment of a message, field, enum, enum value, service or method."""
    return _index().get(full_name, "")


@functools.cache
def _index() -> dict[str, str]:
    try:
        files = load_descriptor_set().file
    except (OSError, ValueError):
        logger.warning("no descriptor set: the OpenAPI document will have no descriptions")
        return {}
    index: dict[str, str] = {}
    for file in files:
        comments = {
            tuple(loc.path): _clean(loc.leading_comments)
            for loc in file.source_code_info.location
            if loc.leading_comments
        }
        prefix = f"{file.package}." if file.package else ""
        for i, msg in enumerate(file.message_type):
            _message(index, comments, msg, prefix, (_FILE_MESSAGE, i))
        for i, enum in enumerate(file.enum_type):
            _enum(index, comments, enum, prefix, (_FILE_ENUM, i))
        for i, service in enumerate(file.service):
            name = prefix + service.name
            index[name] = comments.get((_FILE_SERVICE, i), "")
            for j, method in enumerate(service.method):
                index[f"{name}.{method.name}"] = comments.get(
                    (_FILE_SERVICE, i, _SERVICE_METHOD, j), ""
                )
    return index


def _message(
    index: dict[str, str],
    comments: dict[tuple[int, ...], str],
    msg: descriptor_pb2.DescriptorProto,
    prefix: str,
    path: tuple[int, ...],
) -> None:
    name = prefix + msg.name
    index[name] = comments.get(path, "")
    for i, field in enumerate(msg.field):
        index[f"{name}.{field.name}"] = comments.get((*path, _MESSAGE_FIELD, i), "")
    for i, nested in enumerate(msg.nested_type):
        _message(index, comments, nested, f"{name}.", (*path, _MESSAGE_NESTED, i))
    for i, enum in enumerate(msg.enum_type):
        _enum(index, comments, enum, f"{name}.", (*path, _MESSAGE_ENUM, i))


def _enum(
    index: dict[str, str],
    comments: dict[tuple[int, ...], str],
    enum: descriptor_pb2.EnumDescriptorProto,
    prefix: str,
    path: tuple[int, ...],
) -> None:
    name = prefix + enum.name
    index[name] = comments.get(path, "")
    # Enum values are scoped like siblings of their enum, as in protobuf's own naming.
    for i, value in enumerate(enum.value):
        index[f"{name}.{value.name}"] = comments.get((*path, _ENUM_VALUE, i), "")


def _clean(text: str) -> str:
    # Keep paragraphs, join wrapped lines: OpenAPI descriptions are CommonMark.
    paragraphs = text.strip().split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)
