"""What the server answers on gradio's file routes for the app's own folders.

- Only what a page shows is served from the data dir: a stored original or a thumbnail, named by its
  content hash. Anything else there (each original's JSON record, temporary files, dot files) answers
  404 whoever asks: a record names its owner, and nothing but the pictures needs to leave the server.
- A stored image that is gone answers 404 Not Found. Gradio answers 403 "File not allowed" for any
  missing file (so that nobody can probe which paths exist on the server); under the app's own folders
  (stored originals, thumbnails, gradio's copies of uploads) names are content hashes, so saying "not
  found" reveals nothing, and it is the truth a browser, a cache and a program reading
  `/search_results` need after a delete.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
FILE_ROUTE = FILE_ROUTES[0]
ORIGINAL = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{2,5}$")  # catalog.original_path: <sha256>.<format>
THUMBNAIL = re.compile(r"^[0-9a-f]{64}\.webp$")  # thumbnails.path
GONE = "This image is no longer in the collection."


def served_path(path: str) -> str | None:
    """The file a request path asks gradio to serve (resolved, links followed), or None."""
    for route in FILE_ROUTES:
        at = path.find(route)
        if at >= 0:
            return os.path.realpath(path[at + len(route):])
    return None


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root + os.sep)


IMAGE_ROUTE = "/image/"  # `/image/<sha256>.<format>`: a stored original, by name alone


class StoredImageRoute:
    """ASGI middleware: `/image/<name>` is the stored original of that name, passed on as gradio's file
    route for it (so every rule of the file route and of the middlewares below holds), so that a link
    to a picture (`/search_results`' image_url) names no folder of the server."""

    def __init__(self, app: ASGIApp, images: str | Path) -> None:
        self.app = app
        self.images = os.path.realpath(images)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(IMAGE_ROUTE):
            name = path[len(IMAGE_ROUTE):]
            if not ORIGINAL.fullmatch(name):
                await PlainTextResponse(GONE, status_code=404)(scope, receive, send)
                return
            target = FILE_ROUTE + os.path.join(self.images, name[:2], name)
            scope = {**scope, "path": target, "raw_path": target.encode()}
        await self.app(scope, receive, send)


class GoneIsNotFound:
    """ASGI middleware: a GET or HEAD of a missing file under one of `roots` answers 404."""

    def __init__(self, app: ASGIApp, roots: Sequence[str | Path]) -> None:
        self.app = app
        self.roots = [os.path.realpath(r) for r in roots]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and self._gone(scope.get("path", "")):
            await PlainTextResponse(GONE, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _gone(self, path: str) -> bool:
        target = served_path(path)
        inside = target is not None and any(_inside(target, r) for r in self.roots)
        return inside and not os.path.exists(target)


class OnlyPictures:
    """ASGI middleware: under the originals' folder only `<sha256>.<format>` (never a `.json` record),
    under the thumbnails' only `<sha256>.webp`; anything else there answers 404, as a missing file."""

    def __init__(self, app: ASGIApp, images: str | Path, thumbs: str | Path) -> None:
        self.app = app
        self.rules = [(os.path.realpath(images), ORIGINAL), (os.path.realpath(thumbs), THUMBNAIL)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._refused(scope.get("path", "")):
            await PlainTextResponse(GONE, status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refused(self, path: str) -> bool:
        target = served_path(path)
        if target is None:
            return False
        name = os.path.basename(target)
        return any(_inside(target, root) and (not pattern.match(name) or name.endswith(".json"))
                   for root, pattern in self.rules)
