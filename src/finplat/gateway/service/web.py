"""The web page built from web/: the live page at `/`, Swagger UI at `/docs`, files at /assets/.

Everything comes from one built directory (`make install` builds it), so the browser loads
nothing from a CDN. A missing build is a 503 whose message names the fix, checked on every
request: building while the gateway runs is enough, no restart needed.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from finplat.gateway.service.routes import ROUTE_KEY

PAGE = "index.html"
DOCS_PAGE = "docs.html"
ASSETS = "assets"
# Pages and assets keep fixed names, so browsers must revalidate them (a 304 when unchanged).
_REVALIDATE = {"Cache-Control": "no-cache"}


class WebPage:
    """Routes serving one built directory of the front end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._assets = StaticFiles(directory=directory / ASSETS, check_dir=False)

    def built(self) -> bool:
        return (self.directory / PAGE).is_file()

    def missing_message(self, missing: Path | None = None) -> str:
        return (
            f"The web page is not built: {missing or self.directory / PAGE} does not exist.\n"
            "Build it with `make install` (npm ci and the build of web/), or point "
            "FINPLAT_GATEWAY_WEB_DIR at a built directory.\n"
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._page(PAGE, "/"), methods=["GET"], include_in_schema=False),
            Route(
                "/docs", self._page(DOCS_PAGE, "/docs"), methods=["GET"], include_in_schema=False
            ),
            Mount(f"/{ASSETS}", app=self._serve_asset),
        ]

    def _page(self, name: str, route: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request.scope[ROUTE_KEY] = route  # the metrics label; Starlette routes set none
            path = self.directory / name
            if not path.is_file():
                return self._missing(path)
            return FileResponse(path, media_type="text/html; charset=utf-8", headers=_REVALIDATE)

        return endpoint

    async def _serve_asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[ROUTE_KEY] = f"/{ASSETS}"  # one metrics label for every file
        if not (self.directory / ASSETS).is_dir():
            await self._missing(self.directory / ASSETS)(scope, receive, send)
            return

        async def send_revalidated(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(_REVALIDATE)
            await send(message)

        await self._assets(scope, receive, send_revalidated)

    def _missing(self, path: Path) -> Response:
        return PlainTextResponse(self.missing_message(path), status_code=503)
