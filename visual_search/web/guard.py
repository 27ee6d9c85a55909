"""The server's own defences in front of gradio (SECURITY.md "Resource exhaustion"): an ASGI middleware.

- **A queue that cannot be stopped.** gradio 6.31 keeps the pending messages of at most 2,000 sessions
  (`Queue.pending_messages_per_session`, an `LRUCache(2000)`). Enough anonymous queue joins with unread
  results evict a session whose event still waits; the next `broadcast_estimations` raises KeyError
  inside the queue's processing loop, which marks the queue stopped for good ("503 Queue is stopped").
  Here the cache forgets sessions as before but answers a message for a forgotten one by dropping it
  (`ForgivingSessions`), and a stopped queue is started again by the next request or `GET /healthz`.
- **A bounded queue.** A queue join (or `/call`) while `VS_QUEUE_MAX` events already wait is answered
  503 "busy, try again" before gradio sees it.
- **Per-address limits** (public demo): `VS_REQUESTS_PER_MINUTE` queue joins and uploads a minute per
  client address, `VS_UPLOAD_MB_PER_HOUR` megabytes of uploads an hour per address, and
  `VS_UPLOADS_TMP_MAX_MB` in gradio's upload folder in all; answered 429 / 507 with a message that
  says which limit and when to come back. The folder is swept of old files (tmpfiles.py).
- **Small request bodies.** A queue join's JSON must stay under 1 MB (checked from its declared length,
  or read up to the limit when a proxy sent it without one): files travel through
  `/gradio_api/upload`, which gradio holds to VS_MAX_FILE_MB per file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from gradio.utils import LRUCache
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..demo.recent import RecentTimes
from .tmpfiles import UNDER_PRESSURE_S, folder_bytes, sweep

log = logging.getLogger(__name__)
API = "/gradio_api"
JOINS = (f"{API}/queue/join", f"{API}/call/", f"{API}/run/")
UPLOAD = f"{API}/upload"
HEALTH = "/healthz"
MB = 1024 * 1024
TMP_SIZE_EVERY_S = 5.0  # the upload folder's size is measured again at most this often
SWEEP_EVERY_S = 600.0  # old files in the upload folder are looked for at most this often (tmpfiles.py)
MAX_JSON_BYTES = 1024 * 1024  # a queue join's body: texts, numbers and file references, never file contents
BUSY = "The demo is busy: {n} requests are waiting. Please try again in a minute."
TOO_MANY = "Too many requests from your address ({n} in the last minute). Please try again in {s} s."
TOO_MUCH = "Your address uploaded {mb:.0f} MB in the last hour, the most this demo takes. Try again in {m} min."
FULL = "The demo's upload space is full for now. Please try again later."


class ForgivingSessions(LRUCache):
    """gradio's cache of pending messages per session, where a message for a session already forgotten is
    dropped instead of raising KeyError in the queue's loop (which would stop the queue for good)."""

    def __getitem__(self, key: Any) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            return asyncio.Queue()  # a queue nobody reads: the message is dropped


def keep_queue_running(queue: Any, closing: bool = False) -> str:
    """Install ForgivingSessions in gradio's queue, and start the queue again if it stopped (not while the
    app is closing: `Blocks.close` stops the queue first). Returns "running", "recovered" or "stopped"."""
    sessions = queue.pending_messages_per_session
    if not isinstance(sessions, ForgivingSessions):
        forgiving = ForgivingSessions(sessions.max_size)
        forgiving.update(sessions)
        queue.pending_messages_per_session = forgiving
    if not queue.stopped:
        return "running"
    if closing:
        return "stopped"
    log.warning("gradio's queue had stopped: starting it again")
    queue.stopped = False
    queue.start()
    return "recovered"


class RecentAmounts:
    """Amounts (bytes) per key over a sliding window; keys whose amounts all left it are forgotten."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._amounts: dict[str, deque[tuple[float, int]]] = {}

    def total(self, key: str, now: float) -> tuple[int, float]:
        """(sum inside the window, seconds until the oldest of them leaves it)."""
        q = self._amounts.get(key, deque())
        while q and now - q[0][0] >= self.window_s:
            q.popleft()
        return sum(n for _, n in q), (self.window_s - (now - q[0][0]) if q else 0.0)

    def add(self, key: str, now: float, n: int) -> None:
        self._amounts.setdefault(key, deque()).append((now, n))
        if len(self._amounts) > 10_000:
            for old in [k for k, q in self._amounts.items() if not q or now - q[-1][0] >= self.window_s]:
                del self._amounts[old]


class Guard:
    """ASGI middleware: the defences listed in this module's docstring."""

    def __init__(self, app: ASGIApp, settings: Settings, upload_dir: str | Path,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.settings = settings
        self.upload_dir = Path(upload_dir)
        self.clock = clock
        self._lock = threading.Lock()
        self._requests = RecentTimes(60.0)
        self._uploads = RecentAmounts(3600.0)
        self._tmp_size: tuple[float, int] = (-math.inf, 0)
        self._swept_at = -math.inf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        self._sweep_now_and_then()
        blocks = self._blocks(scope)
        queue = getattr(blocks, "_queue", None)
        state = keep_queue_running(queue, not blocks.is_running) if queue is not None else "no queue"
        if path == HEALTH and method in ("GET", "HEAD"):
            waiting = len(queue) if queue is not None else 0
            await _answer(send, 200, {"status": "ok", "queue": state, "waiting": waiting})
            return
        refusal = self._refusal(scope, path, queue) if method == "POST" else None
        if refusal is None and method == "POST" and path.startswith(JOINS) and _content_length(scope) is None:
            receive, refusal = await _bounded_body(receive, MAX_JSON_BYTES)  # a body without a declared length
        if refusal is not None:
            await _answer(send, *refusal)
            return
        if method == "POST" and path.startswith(UPLOAD) and _content_length(scope) is None:
            receive = self._counted(receive, _address(scope))
        await self.app(scope, receive, send)

    @staticmethod
    def _blocks(scope: Scope) -> Any:
        app = scope.get("app")
        return app.get_blocks() if hasattr(app, "get_blocks") else None

    def _refusal(self, scope: Scope, path: str, queue: Any) -> tuple[int, dict] | None:
        """(status, body) when this POST is refused before gradio sees it; None when it may go on."""
        joins, upload = path.startswith(JOINS), path.startswith(UPLOAD)
        if not (joins or upload):
            return None
        s, now, address = self.settings, self.clock(), _address(scope)
        if joins and (_content_length(scope) or 0) > MAX_JSON_BYTES:
            return TOO_BIG
        with self._lock:
            if s.public_demo and s.requests_per_minute > 0:
                times = self._requests.times(address, now)
                if len(times) >= s.requests_per_minute:
                    wait = math.ceil(60.0 - (now - times[-s.requests_per_minute]))
                    return 429, {"detail": TOO_MANY.format(n=len(times), s=max(wait, 1))}
                self._requests.add(address, now)
            if joins and queue is not None and s.queue_max > 0 and len(queue) >= s.queue_max:
                return 503, {"detail": BUSY.format(n=len(queue))}
            if upload and s.public_demo:
                return self._upload_refusal(scope, address, now)
        return None

    def _upload_refusal(self, scope: Scope, address: str, now: float) -> tuple[int, dict] | None:
        """Uploads are counted by their declared length, or as their bytes arrive when a proxy sent them
        without one (gradio refuses a file above VS_MAX_FILE_MB whatever is declared)."""
        s = self.settings
        size = _content_length(scope) or 0
        if s.upload_mb_per_hour > 0:
            sent, wait = self._uploads.total(address, now)
            if sent + size > s.upload_mb_per_hour * MB:
                return 429, {"detail": TOO_MUCH.format(mb=sent / MB, m=max(1, math.ceil(wait / 60)))}
        if s.uploads_tmp_max_mb > 0 and self._tmp_bytes(now) + size > s.uploads_tmp_max_mb * MB:
            self._sweep_soon(UNDER_PRESSURE_S)
            self._tmp_size = (-math.inf, 0)  # measured again once swept
            return 507, {"detail": FULL}
        self._uploads.add(address, now, size)
        self._tmp_size = (self._tmp_size[0], self._tmp_size[1] + size)
        return None

    def _counted(self, receive: Receive, address: str) -> Receive:
        """`receive`, adding each chunk of the body to the address's uploads of the hour."""
        async def counting() -> dict:
            message = await receive()
            size = len(message.get("body", b""))
            if size:
                with self._lock:
                    self._uploads.add(address, self.clock(), size)
            return message

        return counting

    def _sweep_now_and_then(self) -> None:
        now = self.clock()
        if now - self._swept_at >= SWEEP_EVERY_S:
            self._swept_at = now
            self._sweep_soon(self.settings.visitor_ttl_hours * 3600)

    def _sweep_soon(self, max_age_s: float) -> None:
        """Sweep in a thread of its own: a big folder must not hold up the server's event loop."""
        threading.Thread(target=sweep, args=(self.upload_dir, max_age_s), name="vs-sweep-uploads",
                         daemon=True).start()

    def _tmp_bytes(self, now: float) -> int:
        measured, size = self._tmp_size
        if now - measured >= TMP_SIZE_EVERY_S:
            size = folder_bytes(self.upload_dir)
            self._tmp_size = (now, size)
        return size


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None
    return None


TOO_BIG = (413, {"detail": "A request must stay under 1 MB: send files through the upload route."})


async def _bounded_body(receive: Receive, limit: int) -> tuple[Receive, tuple[int, dict] | None]:
    """Read a body that declared no length, up to `limit` bytes: (a `receive` that replays it, None), or
    (_, TOO_BIG) past the limit. Proxies may re-frame a request without its Content-Length."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            return receive, TOO_BIG
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    async def replay() -> dict:
        return messages.pop(0) if messages else await receive()

    return replay, None


async def _answer(send: Send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
