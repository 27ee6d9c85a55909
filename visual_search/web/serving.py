"""What the server answers for a stored image that is gone: 404 Not Found.

Gradio answers 403 "File not allowed" for any missing file (so that nobody can probe which paths
exist on the server). Under the app's own folders (stored originals, thumbnails, gradio's copies of
uploads) names are content hashes, so saying "not found" reveals nothing, and it is the truth a
browser, a cache and a program reading `/search_results` need after a delete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

FILE_ROUTE = "/gradio_api/file="


class GoneIsNotFound:
    """ASGI middleware: a GET or HEAD of a missing file under one of `roots` answers 404."""

    def __init__(self, app: ASGIApp, roots: Sequence[str | Path]) -> None:
        self.app = app
        self.roots = [os.path.realpath(r) for r in roots]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and self._gone(scope.get("path", "")):
            await PlainTextResponse("This image is no longer in the collection.", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _gone(self, path: str) -> bool:
        at = path.find(FILE_ROUTE)
        if at < 0:
            return False
        target = os.path.realpath(path[at + len(FILE_ROUTE):])
        inside = any(target == r or target.startswith(r + os.sep) for r in self.roots)
        return inside and not os.path.exists(target)
