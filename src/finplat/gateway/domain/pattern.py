"""Path templates of `google.api.http` rules: parsing and matching as grpc-gateway v2 does.

Grammar (google/api/http.proto):

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

Matching follows grpc-gateway's default `UnescapingModeLegacy`: the router sees the
percent-decoded path (ASGI `scope["path"]`), splits it on "/", and variables receive the
decoded components, joined by "/" when they span several.
"""

import re
from dataclasses import dataclass
from enum import Enum

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PatternError(ValueError):
    """A path template that does not follow the grammar."""


class SegmentKind(Enum):
    LITERAL = "literal"
    WILDCARD = "*"
    DEEP_WILDCARD = "**"


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    literal: str = ""


@dataclass(frozen=True)
class Variable:
    """A `{field.path=...}` capture over segments `start` (inclusive) to `end` (exclusive)."""

    field_path: tuple[str, ...]
    start: int
    end: int
    template: str

    @property
    def name(self) -> str:
        return ".".join(self.field_path)


@dataclass(frozen=True)
class PathPattern:
    template: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str
    # Computed once by parse_template, because matching runs for every route of every request:
    # index of the `**` segment (always the last one) or -1, the literal segments to compare,
    # and each variable's component slice (end None: to the end, when it holds the `**`).
    deep_index: int = -1
    literals: tuple[tuple[int, str], ...] = ()
    captures: tuple[tuple[str, int, int | None], ...] = ()

    def match(self, components: list[str], verb: str) -> dict[str, str] | None:
        """Captured variables when `components` (the split path) and `verb` match, else None."""
        if verb != self.verb:
            return None
        count = len(self.segments)
        if count == 0:
            # The root template "/" matches only the root path.
            return {} if components == [""] else None
        if self.deep_index < 0:
            if len(components) != count:
                return None
        elif len(components) < count - 1:
            # `**` takes whatever is left, possibly nothing, like grpc-gateway's OpPushM.
            return None
        for index, literal in self.literals:
            if components[index] != literal:
                return None
        return {name: "/".join(components[start:end]) for name, start, end in self.captures}


def split_path(path: str) -> list[str]:
    """The components grpc-gateway's ServeMux matches: the path without its leading "/", split."""
    return path[1:].split("/")


def split_verb(components: list[str], verb: str) -> tuple[list[str], str]:
    """Detach `:verb` from the last component when the pattern has that verb.

    grpc-gateway looks for the pattern's own verb as a suffix (so a verb may contain ":"); a
    pattern without a verb sees the last component unchanged.
    """
    if not verb:
        return components, ""
    last = components[-1]
    suffix = ":" + verb
    if len(last) > len(suffix) and last.endswith(suffix):
        return [*components[:-1], last[: -len(suffix)]], verb
    return components, ""


def parse_template(template: str) -> PathPattern:
    """Compile a path template, rejecting what grpc-gateway's httprule parser rejects."""
    if not template.startswith("/"):
        raise PatternError(f"{template!r}: a path template starts with '/'")
    body, verb = _cut_verb(template[1:], template)
    if body == "":
        return PathPattern(template, (), (), verb)
    segments: list[Segment] = []
    variables: list[Variable] = []
    for token in _split_top_level(body):
        if "{" not in token and "}" not in token:
            segments.append(_segment(token, template))
            continue
        if not (token.startswith("{") and token.endswith("}")) or token.count("{") != 1:
            raise PatternError(f"{template!r}: a variable must fill whole segments: {token!r}")
        field, _, inner = token[1:-1].partition("=")
        path = tuple(field.split("."))
        if not all(_IDENT.fullmatch(p) for p in path):
            raise PatternError(f"{template!r}: bad field path {field!r}")
        if any(v.field_path == path for v in variables):
            raise PatternError(f"{template!r}: variable {field!r} bound twice")
        start = len(segments)
        segments.extend(_segment(part, template) for part in (inner or "*").split("/"))
        variables.append(Variable(path, start, len(segments), token))
    deep = [i for i, s in enumerate(segments) if s.kind is SegmentKind.DEEP_WILDCARD]
    if deep and (len(deep) > 1 or deep[0] != len(segments) - 1):
        raise PatternError(f"{template!r}: '**' must be the last segment")
    deep_index = deep[0] if deep else -1
    literals = tuple(
        (i, s.literal) for i, s in enumerate(segments) if s.kind is SegmentKind.LITERAL
    )
    captures = tuple(
        (v.name, v.start, None if v.end - 1 == deep_index else v.end) for v in variables
    )
    return PathPattern(
        template, tuple(segments), tuple(variables), verb, deep_index, literals, captures
    )


def _cut_verb(body: str, template: str) -> tuple[str, str]:
    # The verb is a ":" after the last "/" and outside any variable.
    depth = 0
    colon = -1
    for i, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            colon = -1
        elif char == ":" and depth == 0:
            colon = i
    if depth != 0:
        raise PatternError(f"{template!r}: unbalanced braces")
    if colon < 0:
        return body, ""
    verb = body[colon + 1 :]
    if not verb or "*" in verb or "{" in verb:
        raise PatternError(f"{template!r}: bad verb {verb!r}")
    return body[:colon], verb


def _split_top_level(body: str) -> list[str]:
    # Split on "/" outside braces: `{name=things/*}` stays one token.
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        depth += (char == "{") - (char == "}")
        if char == "/" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _segment(text: str, template: str) -> Segment:
    if text == "*":
        return Segment(SegmentKind.WILDCARD)
    if text == "**":
        return Segment(SegmentKind.DEEP_WILDCARD)
    if not text or "*" in text or "{" in text or "}" in text:
        raise PatternError(f"{template!r}: bad segment {text!r}")
    return Segment(SegmentKind.LITERAL, text)
