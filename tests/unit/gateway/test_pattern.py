"""Path templates, parsed and matched as grpc-gateway v2's httprule parser and pattern do."""

import pytest

from finplat.gateway.domain.pattern import PatternError, parse_template, split_path, split_verb


def match(template: str, path: str) -> dict[str, str] | None:
    pattern = parse_template(template)
    components, verb = split_verb(split_path(path), pattern.verb)
    return pattern.match(components, verb)


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        pytest.param("/api/prices", "/api/prices", {}, id="literal segments match exactly"),
        pytest.param(
            "/api/prices/{symbol}",
            "/api/prices/BTCUSDT",
            {"symbol": "BTCUSDT"},
            id="single variable takes one segment",
        ),
        pytest.param(
            "/api/prices/{symbol}",
            "/api/prices/",
            {"symbol": ""},
            id="OpPush matches an empty segment",
        ),
        pytest.param("/v1/{a.b}/x", "/v1/val/x", {"a.b": "val"}, id="nested field path variable"),
        pytest.param(
            "/v1/{name=things/*}",
            "/v1/things/abc",
            {"name": "things/abc"},
            id="variable over several segments keeps the slashes",
        ),
        pytest.param(
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/1/books/2",
            {"name": "shelves/1/books/2"},
            id="variable over literal and wildcard segments",
        ),
        pytest.param(
            "/v1/{path=**}", "/v1/a/b/c", {"path": "a/b/c"}, id="deep wildcard takes the rest"
        ),
        pytest.param("/v1/{path=**}", "/v1", {"path": ""}, id="OpPushM may take zero segments"),
        pytest.param("/v1/*/x", "/v1/anything/x", {}, id="bare wildcard outside a variable"),
        pytest.param(
            "/api/prices:stream", "/api/prices:stream", {}, id="custom verb after the last segment"
        ),
        pytest.param(
            "/v1/{name=things/*}:archive",
            "/v1/things/a:archive",
            {"name": "things/a"},
            id="custom verb after a variable",
        ),
        pytest.param("/", "/", {}, id="root template matches only the root"),
        pytest.param(
            "/v1/{x}",
            "/v1/a:b",
            {"x": "a:b"},
            id="no verb in pattern: colon stays in the component",
        ),
    ],
)
def test_template_matches(template: str, path: str, expected: dict[str, str]) -> None:
    assert match(template, path) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        pytest.param("/api/prices/{symbol}", "/api/prices", id="too few segments"),
        pytest.param("/api/prices/{symbol}", "/api/prices/a/b", id="too many segments"),
        pytest.param("/api/prices", "/api/price", id="literal differs"),
        pytest.param(
            "/v1/{name=things/*}", "/v1/others/abc", id="literal inside a variable differs"
        ),
        pytest.param("/api/prices:stream", "/api/prices", id="verb missing"),
        pytest.param(
            "/api/prices", "/api/prices:stream", id="unexpected verb stays part of the literal"
        ),
        pytest.param("/api/prices:stream", "/api/prices:watch", id="other verb"),
        pytest.param("/v1/{x}:get", "/v1/:get", id="a bare ':verb' component is not a verb"),
        pytest.param("/", "/x", id="root template does not match a path"),
    ],
)
def test_template_does_not_match(template: str, path: str) -> None:
    assert match(template, path) is None


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("api/prices", id="must start with a slash"),
        pytest.param("/a/{b", id="unbalanced braces"),
        pytest.param("/a/x{b}", id="variable must fill its segment"),
        pytest.param("/a/{b}/{b}", id="variable bound twice"),
        pytest.param("/a/{b.}", id="bad field path"),
        pytest.param("/a/{b={c}}", id="nested variable"),
        pytest.param("/a/**/b", id="deep wildcard must be last"),
        pytest.param("/a//b", id="empty segment"),
        pytest.param("/a/", id="trailing slash"),
        pytest.param("/a:", id="empty verb"),
    ],
)
def test_invalid_templates_are_rejected(template: str) -> None:
    with pytest.raises(PatternError):
        parse_template(template)


def test_verb_is_split_only_for_the_patterns_own_verb() -> None:
    assert split_verb(["v1", "things:watch"], "watch") == (["v1", "things"], "watch")
    assert split_verb(["v1", "things:watch"], "") == (["v1", "things:watch"], "")
    assert split_verb(["v1", "things:watch"], "list") == (["v1", "things:watch"], "")
