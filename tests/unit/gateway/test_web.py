"""The built front end: `/`, `/docs` and `/assets/` from the web directory, or a 503 naming the
fix when it was never built."""

import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from finplat.gateway.service.app import create_app
from finplat.gateway.service.settings import GatewaySettings
from tests.paths import REPO_ROOT
from tests.unit.gateway.conftest import FAKE_WEB_DIR, settings


def _client(web_dir: Path) -> TestClient:
    # No upstreams and no lifespan: serving files needs neither.
    return TestClient(create_app(settings(web_dir=web_dir), upstreams=[]))


def test_page_at_the_root() -> None:
    response = _client(FAKE_WEB_DIR).get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "<title>fake finplat page</title>" in response.text


def test_swagger_ui_page_at_docs_names_the_openapi_document() -> None:
    response = _client(FAKE_WEB_DIR).get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert 'data-url="/openapi.json"' in response.text


def test_assets_are_served_for_revalidation() -> None:
    response = _client(FAKE_WEB_DIR).get("/assets/app.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == 'document.title = "fake app";\n'


def test_unchanged_asset_is_a_304() -> None:
    client = _client(FAKE_WEB_DIR)
    etag = client.get("/assets/app.js").headers["etag"]

    response = client.get("/assets/app.js", headers={"If-None-Match": etag})

    assert response.status_code == 304


@pytest.mark.parametrize("path", ["/assets/nope.js", "/assets/../docs.html", "/index.html"])
def test_unknown_files_are_404_with_a_status_body(path: str) -> None:
    response = _client(FAKE_WEB_DIR).get(path)

    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "Not Found", "details": []}


@pytest.mark.parametrize(
    ("path", "missing_file"),
    [("/", "index.html"), ("/docs", "docs.html"), ("/assets/app.js", "assets")],
)
def test_missing_build_is_a_503_naming_the_fix(
    tmp_path: Path, path: str, missing_file: str
) -> None:
    missing = tmp_path / "never-built"

    response = _client(missing).get(path)

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")
    assert "make install" in response.text
    assert f"{missing / missing_file} does not exist" in response.text


def test_missing_build_leaves_the_api_up(tmp_path: Path) -> None:
    response = _client(tmp_path / "never-built").get("/openapi.json")

    assert response.status_code == 200


def test_a_build_made_while_running_is_served_without_a_restart(tmp_path: Path) -> None:
    web_dir = tmp_path / "dist"
    client = _client(web_dir)
    before = client.get("/")

    shutil.copytree(FAKE_WEB_DIR, web_dir)
    after = client.get("/")

    assert before.status_code == 503
    assert after.status_code == 200


def test_asset_requests_share_one_metrics_label() -> None:
    client = _client(FAKE_WEB_DIR)
    client.get("/assets/app.js")
    client.get("/assets/nope.js")

    metrics = client.get("/metrics").text

    assert 'method="GET",route="/assets",status="200"' in metrics
    assert 'method="GET",route="/assets",status="404"' in metrics
    assert "app.js" not in metrics


def test_web_dir_defaults_to_the_repository_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINPLAT_GATEWAY_WEB_DIR", raising=False)

    assert GatewaySettings().web_dir == REPO_ROOT / "web" / "dist"


def test_web_dir_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPLAT_GATEWAY_WEB_DIR", "/srv/finplat-web")

    assert GatewaySettings().web_dir == Path("/srv/finplat-web")
