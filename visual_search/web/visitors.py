"""Who is asking, in a public demo: a visitor id per browser (kept in the browser) or per API session,
and whether they signed in as a curator (README "Public demo", SECURITY.md).

A browser keeps its visitor id in `gr.BrowserState` as a token the server signed (`VisitorTokens`); a
page load hands the token to the server, which checks the signature and remembers the id for that
page's session. A bare id, or one signed by anyone else, is never adopted: ids are written in records
and BrowserState's key is public (it is in `/config`), so only the server's signature makes one worth
anything. An API client without a page is a visitor of its own for its
session. Curators sign in with Hugging Face (`gr.LoginButton`, user names in VS_ADMINS) on a
Space, or with VS_ADMIN_PASSWORD elsewhere. With VS_PUBLIC_DEMO off, everyone is everything: one
library, every tab writable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import gradio as gr

from ..config import Settings
from ..demo.recent import RecentTimes
from ..errors import NotFound

VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
FULL_ID = re.compile(r"^[0-9a-f]{64}$")
NEEDS_FULL_ID = ("No indexed image has the id {asked!r}: this demo names images by their full id (64 characters, "
                 "as the Library table and /search_results give it).")
MAX_SESSIONS = 50_000  # sessions remembered (the longest idle forgotten first: they get a new visitor id)
SIGN_IN_REFUSED = "That is not the curator password."
# Wrong curator passwords remembered for SIGN_IN_WINDOW_S: past either limit, sign-in is refused without
# looking at the password, so guessing gains nothing. The second bounds guessing from many addresses.
SIGN_IN_WINDOW_S = 15 * 60
SIGN_IN_FAILS_PER_ADDRESS = 5
SIGN_IN_FAILS_IN_ALL = 50


@dataclass(frozen=True)
class Who:
    visitor: str | None  # None: no restriction (VS_PUBLIC_DEMO off)
    admin: bool  # may edit and delete the shared collection


def new_visitor_id() -> str:
    return secrets.token_urlsafe(18)  # 144 random bits


class VisitorTokens:
    """Visitor ids as the browser keeps them: `<id>.<HMAC-SHA256 of the id under the server's key>`."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def sign(self, visitor: str) -> str:
        return f"{visitor}.{self._mac(visitor)}"

    def verify(self, token: object) -> str | None:
        """The visitor id of a token this server signed; None for anything else (a bare id included)."""
        if not isinstance(token, str) or token.count(".") != 1:
            return None
        visitor, mac = token.split(".")
        ok = VISITOR_ID.match(visitor) and hmac.compare_digest(mac.encode(), self._mac(visitor).encode())
        return visitor if ok else None

    def _mac(self, visitor: str) -> str:
        digest = hmac.new(self._key, visitor.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_admin_profile(profile: object, admins: frozenset[str]) -> bool:
    """A Hugging Face sign-in (gr.OAuthProfile) whose user name is on the VS_ADMINS allow-list."""
    name = getattr(profile, "username", None) or getattr(profile, "preferred_username", None)
    return isinstance(name, str) and bool(name) and name.strip().lower() in admins


def oauth_available() -> bool:
    """Hugging Face sign-in works on a Space with `hf_oauth: true` (it sets OAUTH_CLIENT_ID)."""
    return bool(os.environ.get("SPACE_ID", "").strip() and os.environ.get("OAUTH_CLIENT_ID", "").strip())


_ALL, _ADDRESS = "*", "address:"  # FailedSignIns keys: every address together, one address (a prefix)


class FailedSignIns:
    """Wrong passwords per client address and in all, over a sliding window (clock injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._recent = RecentTimes(SIGN_IN_WINDOW_S)  # by address, and "*" for all of them

    def wait_s(self, address: str) -> float:
        """Seconds until `address` may try again (0: now). Call under the owner's lock."""
        now = self.clock()
        waits = [SIGN_IN_WINDOW_S - (now - times[-limit]) for times, limit in
                 ((self._recent.times(_ADDRESS + address, now), SIGN_IN_FAILS_PER_ADDRESS),
                  (self._recent.times(_ALL, now), SIGN_IN_FAILS_IN_ALL)) if len(times) >= limit]
        return max(waits, default=0.0)

    def failed(self, address: str) -> None:
        now = self.clock()
        self._recent.add(_ALL, now)
        self._recent.add(_ADDRESS + address, now)

    def succeeded(self, address: str) -> None:
        self._recent.forget(_ADDRESS + address)


class Access:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.public = settings.public_demo
        self.failed_sign_ins = FailedSignIns(clock)
        self._lock = threading.Lock()
        self._visitors: OrderedDict[str, str] = OrderedDict()  # session hash -> visitor id
        self._curators: set[str] = set()  # session hashes signed in with the password
        self.tokens = VisitorTokens(settings.visitor_secret or _kept_secret(settings.data_dir / ".visitor-secret"))

    def who(self, request: gr.Request | None, profile: object = None) -> Who:
        if not self.public:
            return Who(None, True)
        session = _session(request)
        if not session:  # no session to remember it by: a visitor of its own for this one call
            return Who(new_visitor_id(), is_admin_profile(profile, self.settings.admins) and same_origin(request))
        with self._lock:
            visitor = self._visitors.get(session)
            if visitor is None:  # an API client (no page load): a visitor of its own for this session
                visitor = new_visitor_id()
            self._remember(session, visitor)  # now its most recently active: a flood of new sessions forgets others
            admin = session in self._curators
        admin = (admin or is_admin_profile(profile, self.settings.admins)) and same_origin(request)
        return Who(visitor, admin)

    def adopt(self, stored: object, request: gr.Request) -> str:
        """Page load: the visitor of the browser's signed token (a new visitor for anything else, a bare
        or forged id included) becomes this session's; the browser keeps the signed token. A browser
        without one keeps the id its session already acted as (an upload sent before this ran stays its own)."""
        session = _session(request)
        with self._lock:
            visitor = self.tokens.verify(stored) or (self._visitors.get(session) if session else None) \
                or new_visitor_id()
            if session:
                self._remember(session, visitor)
        return self.tokens.sign(visitor)

    def image_id(self, asked: str | None) -> str:
        """The id a client named, as the engine should look it up. A public demo takes full ids only: an
        id prefix would let anyone guess their way into other visitors' uploads, 8 characters at a time."""
        key = (asked or "").strip().lower()
        if self.public and key and not FULL_ID.match(key):
            raise NotFound(NEEDS_FULL_ID.format(asked=key[:80]))
        return key

    def sign_in(self, password: str, request: gr.Request) -> str:
        expected = self.settings.admin_password
        if not expected:
            return "Curator sign-in with a password is not set up here (VS_ADMIN_PASSWORD)."
        address = _address(request)
        with self._lock:
            wait = self.failed_sign_ins.wait_s(address)
            right = not wait and hmac.compare_digest((password or "").encode(), expected.encode())
            if not wait and not right:
                self.failed_sign_ins.failed(address)
        if wait:
            message = f"Too many wrong passwords: try again in {math.ceil(wait / 60)} min."
            gr.Warning(message)
            return f"⚠️ {message}"
        if not right:
            gr.Warning(SIGN_IN_REFUSED)
            return f"⚠️ {SIGN_IN_REFUSED}"
        if not _session(request):
            return "⚠️ Sign-in needs a session (a page, or one gradio_client)."
        with self._lock:
            self.failed_sign_ins.succeeded(address)
            self._curators.add(_session(request))
        return "Signed in as a curator: you can edit and delete the shared images."

    def _remember(self, session: str, visitor: str) -> str:
        """Remember (or touch) a session: past MAX_SESSIONS the one idle the longest is forgotten, not the
        oldest, so new sessions by the thousand do not sign out a curator or re-key a visitor at work."""
        self._visitors[session] = visitor
        self._visitors.move_to_end(session)
        while len(self._visitors) > MAX_SESSIONS:
            old, _ = self._visitors.popitem(last=False)
            self._curators.discard(old)
        return visitor

    def can_sign_in(self) -> bool:
        """Whether this page offers a curator sign-in at all (a password, or Hugging Face on a Space)."""
        return bool(self.settings.admin_password) or oauth_available()

    def read_only_note(self) -> str:
        """Why a shared image cannot be edited here; sign-in is named only where there is one."""
        return ("a shared image: read-only unless you sign in as a curator" if self.can_sign_in()
                else "a shared image: read-only in this demo; you can edit your own uploads")

    def note(self) -> str:
        s = self.settings
        text = (f"**Public demo.** Images you add are yours alone (★ in the Library): only you can find them, and "
                f"they are deleted after {s.visitor_ttl_hours:g} h. Up to {s.visitor_max_images} images "
                f"({s.visitor_max_mb:g} MB) per visitor. The shared collection is read-only")
        return text + (" unless you sign in as a curator." if self.can_sign_in() else ".")


def same_origin(request: gr.Request | None) -> bool:
    """Whether a browser sent this request from a page of this app (its Origin, else its Referer, names
    the host it was sent to). A curator's rights need it: the Hugging Face sign-in is a cookie that a
    browser also sends with requests another site's page makes, and gradio lets any origin call it.
    A program (no Origin, no Referer) is not a browser carrying someone's cookie: it passes."""
    headers = getattr(request, "headers", None) or {}
    claimed = headers.get("origin") or headers.get("referer") or ""
    if not claimed:
        return True
    hosts = {h.strip().lower() for h in (headers.get("host", ""), headers.get("x-forwarded-host", "")) if h.strip()}
    return urlsplit(claimed).netloc.lower() in hosts


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", None) or "")


def _address(request: gr.Request | None) -> str:
    """The connecting address (not a forwarded-for header, which the client writes)."""
    return str(getattr(getattr(request, "client", None), "host", None) or "")


def browser_secret(settings: Settings) -> str:
    """The key gradio encrypts the browser's stored visitor id with, kept in the data dir: a restart
    of the app does not make every visitor a stranger to their own uploads."""
    return _kept_secret(settings.data_dir / ".browser-secret")


def _kept_secret(path) -> str:
    """A random key kept in `path` (made on first use): the same across restarts of the app."""
    try:
        return path.read_text().strip() or _new_secret(path)
    except OSError:
        return _new_secret(path)


def _new_secret(path) -> str:
    secret = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret)
    except OSError:
        pass  # a read-only data dir: visitor ids then last as long as this process
    return secret


class PageLoad:
    """Where the events of a page load hang. In a public demo they run once the browser's visitor id is
    adopted: an event run beside the adoption reads the session before it is known, as a new visitor
    with nothing of their own (once, after a reload, the header said 20 images while the Library
    listed 34: issue 24, item 9)."""

    def __init__(self, demo: gr.Blocks, adopted=None) -> None:
        self.demo, self.adopted = demo, adopted

    def load(self, fn, inputs=None, outputs=None, **kwargs):
        """`demo.load(...)`, after the adoption where there is one."""
        if self.adopted is None:
            return self.demo.load(fn, inputs, outputs, **kwargs)
        return self.adopted.then(fn, inputs, outputs, **kwargs)


def build_access(access: Access, demo: gr.Blocks) -> tuple[PageLoad, list]:
    """The visitor id in the browser, the public-demo note, and the curator sign-in (public mode only);
    returns where the page's load events hang, and the sign-in's events (for what should follow one)."""
    if not access.public:
        return PageLoad(demo), []
    stored = gr.BrowserState(None, storage_key="visual-search-visitor", secret=browser_secret(access.settings))
    page = PageLoad(demo, demo.load(access.adopt, [stored], [stored], api_visibility="private",
                                    show_progress="hidden"))
    gr.Markdown(access.note(), elem_id="public-demo-note")
    if oauth_available():
        gr.LoginButton("Sign in with Hugging Face (curators)")
    if access.settings.admin_password:
        with gr.Accordion("Curator sign-in", open=False):
            with gr.Row(equal_height=True):
                password = gr.Textbox(label="Curator password", type="password", max_lines=1, scale=4,
                                      elem_id="curator-password")
                go = gr.Button("Sign in", scale=1, min_width=100)
            signed = gr.Markdown(elem_id="curator-status")
        return page, [go.click(access.sign_in, [password], [signed], api_name="sign_in"),
                      password.submit(access.sign_in, [password], [signed], api_visibility="private")]
    return page, []
