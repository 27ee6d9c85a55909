"""The public demo attacked as a hostile stranger would (issue 21), through the real app on loopback:
raw `/gradio_api/queue/join` calls with session hashes and event indexes of the attacker's choice.
One test per finding; each failed on the code before its fix. Load tests with bigger numbers are in
benchmarks/load.py (docs/load.md)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from attacker import Attacker, api_index, fn_index
from conftest import column, launch_app
from images import jpeg
from visual_search import SearchEngine
from visual_search.demo.visibility import REFUSED
from visual_search.web.common import md
from visual_search.search.filters import CLAUSES

SEARCH = ["a photo", 3, 0.5, 0.0, "relevance", *[""] * len(CLAUSES)]  # /search's inputs, filters empty

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    settings = tiny_settings(tmp_path_factory.mktemp("attacked") / "data", public_demo=True,
                             admin_password=PASSWORD)
    engine = SearchEngine(settings, **shared_models)
    engine.index_bytes([(f"shared{i}.jpg", jpeg(i)) for i in range(3)])
    demo = launch_app(engine)
    yield engine, demo
    demo.close()


def _upload_as_visitor(app, tmp_path: Path, seed: int, name: str) -> tuple[Client, str]:
    """Visitor A (a gradio_client session) adds one private picture; its id (scoped to A, so not the
    file's sha256: library/catalog.image_id)."""
    engine, demo = app
    path = tmp_path / name
    path.write_bytes(jpeg(seed))
    a = Client(demo.local_url, verbose=False)
    outcome, _, _ = a.predict([handle_file(str(path))], api_name="/add_images")
    assert outcome["data"][0][1] == "indexed"
    image_id = next(r.id for r in engine.list() if r.filename == name)
    assert image_id != hashlib.sha256(path.read_bytes()).hexdigest()
    return a, image_id


def _library_files(attacker: Attacker, demo) -> list[str]:
    _, table, _, _ = attacker.output(api_index(demo, "library"), [""])
    return [row[0] for row in table["data"]]


def test_1_a_record_is_not_served_and_a_bare_visitor_id_is_not_adopted(app, tmp_path):
    """Finding 1: whoever holds one of A's photos computed its sha256, read its record (which names A's
    visitor id), sent that id to the page-load event and became A."""
    engine, demo = app
    _, image_id = _upload_as_visitor(app, tmp_path, 501, "mine.jpg")
    record = engine.get(image_id)
    images = engine.settings.images_dir.resolve()
    mallory = Attacker(demo.local_url)
    json_path = images / image_id[:2] / f"{image_id}.json"
    assert json_path.exists()
    for route in ("gradio_api/file=", "gradio_api/file/"):
        assert mallory.get(f"{route}{json_path}").status_code == 404
        assert mallory.get(f"{route}{record.path}").status_code == 200  # the picture itself still is

    adopted = mallory.output(fn_index(demo, "adopt"), [record.owner])[0]  # the bare id, as the record says
    assert record.owner not in adopted.split(".")[0]
    assert "mine.jpg" not in _library_files(mallory, demo)
    forged = mallory.output(fn_index(demo, "adopt"), [f"{record.owner}.forgedsignature"])[0]
    assert not forged.startswith(record.owner) and "mine.jpg" not in _library_files(mallory, demo)
    mallory.close()


def test_1_a_signed_token_brings_the_same_visitor_back(app):
    """The browser's own token (what the server signed at its first page load) is adopted on a reload."""
    _, demo = app
    first = Attacker(demo.local_url)
    token = first.output(fn_index(demo, "adopt"), [None])[0]
    again = Attacker(demo.local_url)
    assert again.output(fn_index(demo, "adopt"), [token])[0] == token
    first.close(), again.close()


def test_2_an_id_prefix_finds_nothing_and_another_visitors_full_id_neither(app, tmp_path):
    """Finding 2: the How-it-works picker looked any id or 8-character prefix up without the visitor,
    answering with the full id, the server path and a download URL of another visitor's upload."""
    engine, demo = app
    _, image_id = _upload_as_visitor(app, tmp_path, 502, "private.jpg")
    mallory = Attacker(demo.local_url)
    show = fn_index(demo, "show_picked")
    for guess in (image_id[:8], image_id[:40], image_id):
        out = mallory.output(show, [guess])[0]
        assert image_id not in str(out), guess
    shared = engine.list("")[0].id  # the shared collection answers as ever, by full id
    assert shared in str(mallory.output(show, [shared])[0])
    stage1 = mallory.output(api_index(demo, "explain_image"), [None, image_id[:8]])[0]
    assert "full id" in stage1 and image_id not in stage1
    mallory.close()


def _search_by_a_visitor(demo) -> str:
    status = Client(demo.local_url, verbose=False).predict("a photo", 3, 0.5, api_name="/search")[2]
    return status


def test_3_anonymous_joins_with_unread_results_do_not_stop_the_queue(app):
    """Finding 3: gradio keeps pending messages of at most 2,000 sessions; ~2,100 joins with new session
    hashes and nobody reading evicted a session whose event still waited, a KeyError stopped the queue,
    and every later call got '503 Queue is stopped'. The same with the cache cut to 40 sessions, so that
    60 joins do it (benchmarks/load.py runs the 3,000 joins against the real size)."""
    _, demo = app
    assert "result" in _search_by_a_visitor(demo)  # the queue has served a request: its cache exists
    sessions = demo._queue.pending_messages_per_session
    size, sessions.max_size = sessions.max_size, 40
    try:
        mallory = Attacker(demo.local_url)
        search = api_index(demo, "search")
        for i in range(60):
            mallory.join(search, SEARCH, session=f"flood{i}")
        mallory.close()
        assert "result" in _search_by_a_visitor(demo)
        assert not demo._queue.stopped
    finally:
        demo._queue.pending_messages_per_session.max_size = size


def test_3_a_stopped_queue_is_noticed_by_the_health_route_and_started_again(app):
    _, demo = app
    demo._queue.close()  # however it stopped
    health = Attacker(demo.local_url).get("healthz")
    assert health.status_code == 200 and health.json()["queue"] == "recovered"
    assert "result" in _search_by_a_visitor(demo)
    assert Attacker(demo.local_url).get("healthz").json()["queue"] == "running"


def test_3_the_queue_is_bounded_and_one_address_is_rate_limited_with_a_message(tmp_path, tiny_settings,
                                                                               shared_models):
    settings = tiny_settings(tmp_path / "data", public_demo=True, queue_max=4, requests_per_minute=30)
    engine = SearchEngine(settings, **shared_models)
    engine.index_bytes([("shared.jpg", jpeg(1))])
    demo = launch_app(engine)
    try:
        mallory = Attacker(demo.local_url)
        search = api_index(demo, "search")
        codes = [mallory.join(search, SEARCH, session=f"s{i}")
                 for i in range(40)]
        busy = [r for r in codes if r.status_code == 503]
        limited = [r for r in codes if r.status_code == 429]
        assert busy and "The demo is busy" in busy[0].json()["detail"]
        assert len(limited) == 10 and "Too many requests from your address" in limited[0].json()["detail"]
        mallory.close()
    finally:
        demo.close()


def _data_url(size: tuple[int, int]) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", size).save(buf, "PNG")  # a few KB that decode to size[0] * size[1] pixels
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_4_image_inputs_take_uploaded_files_only_not_data_urls_or_server_paths(app, tmp_path):
    """Finding 4: an Image input's `data:` URL was decoded in full and re-encoded by gradio before any of
    the app's limits (a 78 KB payload: 81 megapixels; eight of 12000x12000: 10 GB resident). Its
    payload could also name any path on the server without gradio's upload check."""
    engine, demo = app
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    before = set(folder.rglob("*.webp"))  # where gradio wrote what it decoded from a data: URL
    mallory = Attacker(demo.local_url)
    _, private = _upload_as_visitor(app, tmp_path, 504, "theirs.jpg")
    json_record = engine.settings.images_dir / private[:2] / f"{private}.json"
    for payload, refusal in [
        ({"url": _data_url((3000, 3000)), "path": None}, "data: URLs"),
        ({"path": str(json_record)}, "only reads files uploaded"),  # no meta: gradio's path check is skipped
        ({"path": str(json_record), "meta": {"_type": "gradio.FileData"}}, "only reads files uploaded"),
        ({"path": "/etc/hostname"}, "only reads files uploaded"),
    ]:
        for api in ("similar", "explain_image"):
            data = [payload, 5, ""] if api == "similar" else [payload, None]
            message = mallory.call(api_index(demo, api), data)
            assert not message["success"] and refusal in str(message["output"]), (api, message)
    assert set(folder.rglob("*.webp")) <= before  # nothing was decoded
    mallory.close()


def test_5_uploads_without_a_page_are_capped_per_address_and_old_ones_are_swept(tmp_path, tiny_settings,
                                                                              shared_models):
    """Finding 5: `/gradio_api/upload` wrote into gradio's upload folder for anyone, with no visitor, no
    cap and no cleanup (30 MB in 0.21 s); query images of Find similar were kept for ever."""
    from gradio.utils import get_upload_folder

    # gradio's upload folder in tests is shared (/tmp/gradio): its size is not this test's to cap
    settings = tiny_settings(tmp_path / "data", public_demo=True, upload_mb_per_hour=3.0, uploads_tmp_max_mb=0)
    engine = SearchEngine(settings, **shared_models)
    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / "vs-test-stale" / "query.jpg"  # a query image left a day and a half ago
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(jpeg(7))
    day_and_a_half_ago = stale.stat().st_mtime - 36 * 3600
    os.utime(stale, (day_and_a_half_ago, day_and_a_half_ago))
    demo = launch_app(engine)
    try:
        mallory = Attacker(demo.local_url)
        blob = os.urandom(900 * 1024)
        codes = [mallory.http.post(f"{mallory.url}gradio_api/upload", files={"files": ("x.bin", blob)}).status_code
                 for _ in range(6)]
        assert codes[:3] == [200] * 3 and codes[3:] == [429] * 3
        refused = mallory.http.post(f"{mallory.url}gradio_api/upload", files={"files": ("x.bin", blob)})
        assert "uploaded 3 MB in the last hour" in refused.json()["detail"]
        for _ in range(50):  # the sweep runs beside the first request
            if not stale.exists():
                break
            time.sleep(0.1)
        assert not stale.exists() and not stale.parent.exists()
        mallory.close()
    finally:
        demo.close()


def test_7_a_curators_rights_need_a_request_from_this_apps_own_pages(app):
    """Finding 7: gradio echoes any Origin with credentials allowed and the Hugging Face sign-in cookie is
    SameSite=None, so a page of another site, opened by a signed-in curator, could edit or delete shared
    images. Here the curator's credentials (their session) come with another site's Origin."""
    engine, demo = app
    curator = Client(demo.local_url, verbose=False)
    assert curator.predict(PASSWORD, api_name="/sign_in").startswith("Signed in as a curator")
    shared = engine.list("")[-1]
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page.html"}):
        page = Attacker(demo.local_url, session=curator.session_hash, headers=headers)
        status = page.output(api_index(demo, "delete"), [shared.id, ""])[0]
        assert status == f"⚠️ {md(REFUSED)}" and engine.get(shared.id)
        page.close()
    host = demo.local_url.split("//")[1].rstrip("/")
    own_page = Attacker(demo.local_url, session=curator.session_hash, headers={"Origin": f"http://{host}"})
    status = own_page.output(api_index(demo, "set_caption"), [shared.id, "curated from the app's own page", ""])[0]
    assert status.startswith("Caption saved")
    own_page.close()


def test_8_a_session_flood_forgets_idle_sessions_not_active_ones(app, tmp_path, monkeypatch):
    """Finding 8: the memory of sessions dropped the oldest-created first: 50,010 new sessions signed out
    an active curator and changed an active visitor's id. The same with the memory cut to 30 sessions."""
    from visual_search.web import visitors

    engine, demo = app
    monkeypatch.setattr(visitors, "MAX_SESSIONS", 30)
    curator = Client(demo.local_url, verbose=False)
    assert curator.predict(PASSWORD, api_name="/sign_in").startswith("Signed in as a curator")
    visitor, _ = _upload_as_visitor(app, tmp_path, 508, "still-mine.jpg")
    mallory = Attacker(demo.local_url)
    status = api_index(demo, "status")
    for round in range(4):
        for i in range(20):
            mallory.join(status, [], session=f"flood{round}-{i}")
        curator.predict(api_name="/status")  # both are at work between the waves
        visitor.predict(api_name="/status")
    mallory.close()
    assert "still-mine.jpg" in [row[0] for row in visitor.predict(api_name="/library")[1]["data"]]
    shared = engine.list("")[-1]
    assert curator.predict(shared.id, "still a curator", api_name="/set_caption")[0].startswith("Caption saved")


def test_9_a_forwarded_for_header_does_not_make_a_guesser_a_new_address(tmp_path, tiny_settings, shared_models):
    """Finding 9: X-Forwarded-For was trusted from 127.0.0.1, so a proxy on the same host let a password
    guesser look like a new address at each try and dodge the per-address limit."""
    settings = tiny_settings(tmp_path / "data", public_demo=True, admin_password=PASSWORD)
    demo = launch_app(SearchEngine(settings, **shared_models))
    try:
        sign_in = api_index(demo, "sign_in")
        answers = [Attacker(demo.local_url, headers={"X-Forwarded-For": f"203.0.113.{i}"}).output(sign_in, ["guess"])[0]
                   for i in range(7)]
        assert "Too many wrong passwords" in answers[-1], answers
    finally:
        demo.close()


def test_9_a_curators_add_tells_nothing_of_visitors_uploads(app, tmp_path):
    """Finding 9: a curator's add counted private images, and on a duplicate showed a visitor's private caption."""
    engine, demo = app
    visitor, image_id = _upload_as_visitor(app, tmp_path, 509, "secret.jpg")
    assert visitor.predict(image_id, "my private words", "", api_name="/set_caption")[0].startswith("Caption saved")
    curator = Client(demo.local_url, verbose=False)
    assert curator.predict(PASSWORD, api_name="/sign_in").startswith("Signed in as a curator")
    outcome, status, _ = curator.predict([handle_file(str(tmp_path / "secret.jpg"))], api_name="/add_images")
    assert "my private words" not in str(outcome) and outcome["data"][0][1] == "indexed"  # shared now
    assert f"{engine.count(''):,} images in the collection" in status


def test_9_tags_keep_no_control_or_direction_characters(app, tmp_path):
    engine, demo = app
    visitor, image_id = _upload_as_visitor(app, tmp_path, 510, "tagged.jpg")
    status = visitor.predict(image_id, "\u202egpj.tac, sofa\u200b\x07", "", api_name="/set_tags")[0]
    assert status.startswith("Tags saved")
    assert all(not any(ch in tag for ch in "\u202e\u200b\x07") for tag in engine.get(image_id).tags)


def test_9_find_similar_redrawn_after_a_change_is_the_same_visitors_search(app, tmp_path):
    """Finding 9: going back to Find similar after a change re-ran the search as a new anonymous visitor."""
    engine, demo = app
    visitor, image_id = _upload_as_visitor(app, tmp_path, 511, "query.jpg")
    _, table, *_ = visitor.predict(image_id, 8, "", api_name="/similar_by_id")
    assert "query.jpg" in column(table, "file")
    engine.index_bytes([("another-shared.jpg", jpeg(512))])  # the collection changed meanwhile
    page = Attacker(demo.local_url, session=visitor.session_hash)
    _, table, status, *_ = page.output(fn_index(demo, "redraw_similar"), [8, "", None])
    assert "query.jpg" in column(table, "file"), status
    page.close()


def test_9_page_loads_do_not_each_read_every_record(app, monkeypatch):
    """Finding 9: every page load read every record from disk (to expire visitors' uploads)."""
    engine, demo = app
    calls = []
    monkeypatch.setattr(engine, "expire_uploads", lambda: calls.append(1) or [])
    mallory = Attacker(demo.local_url)
    first_visit = fn_index(demo, "first_visit")
    for i in range(5):
        mallory.join(first_visit, [], session=f"load{i}")
    mallory.output(first_visit, [])
    mallory.close()
    assert len(calls) <= 1


def test_9_on_a_space_the_visitors_address_is_the_one_the_proxy_wrote(monkeypatch):
    """Hugging Face's proxy connects from an internal address: there (only) its X-Forwarded-For counts,
    its right-most entry outside the private networks, so a client-written entry on the left is ignored."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    from visual_search.web.app import default_trusted_proxies

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    monkeypatch.setenv("SPACE_ID", "someone/visual-search")
    default_trusted_proxies()
    trusted = _TrustedHosts(os.environ["FORWARDED_ALLOW_IPS"])
    assert "10.16.3.80" in trusted and "127.0.0.1" not in trusted
    assert trusted.get_trusted_client_address("198.51.100.7, 203.0.113.9, 10.16.3.80")[0] == "203.0.113.9"
    monkeypatch.delenv("FORWARDED_ALLOW_IPS")
    monkeypatch.delenv("SPACE_ID")
    default_trusted_proxies()
    assert "127.0.0.1" not in _TrustedHosts(os.environ["FORWARDED_ALLOW_IPS"])


def test_5_the_upload_folder_has_a_cap_in_all(tmp_path, tiny_settings):
    """Many addresses together cannot fill the disk either: past VS_UPLOADS_TMP_MAX_MB uploads wait."""
    import asyncio

    from visual_search.web.guard import FULL, Guard

    folder = tmp_path / "uploads-tmp"
    (folder / "abc").mkdir(parents=True)
    (folder / "abc" / "big.bin").write_bytes(b"x" * 900 * 1024)
    passed = []

    async def gradio(scope, receive, send):
        passed.append(scope["path"])

    guard = Guard(gradio, tiny_settings(tmp_path / "data", public_demo=True, uploads_tmp_max_mb=1.0), folder)
    sent = []

    async def send(message):
        sent.append(message)

    def upload(address: str, size: int) -> None:
        scope = {"type": "http", "method": "POST", "path": "/gradio_api/upload", "client": (address, 1),
                 "headers": [(b"content-length", str(size).encode())]}
        asyncio.run(guard(scope, None, send))

    upload("198.51.100.1", 100 * 1024)
    assert passed == ["/gradio_api/upload"]
    upload("198.51.100.2", 100 * 1024)  # another address: the folder is full for everyone
    assert passed == ["/gradio_api/upload"] and sent[0]["status"] == 507 and FULL in sent[1]["body"].decode()


def test_5_a_body_without_a_declared_length_is_read_up_to_the_limit_only(app):
    """A proxy may send a request on without its Content-Length (chunked): a join still passes, and a
    JSON body past 1 MB is refused without gradio reading it."""
    _, demo = app
    index = api_index(demo, "status")

    def chunks(body: bytes):
        for at in range(0, len(body), 64 * 1024):
            yield body[at : at + 64 * 1024]

    def join(data: list) -> httpx.Response:
        body = json.dumps({"data": data, "fn_index": index, "session_hash": "chunked", "event_data": None,
                           "trigger_id": None}).encode()
        return httpx.post(f"{demo.local_url}gradio_api/queue/join", content=chunks(body),
                          headers={"content-type": "application/json"}, timeout=30)

    ok = join([])
    assert ok.status_code == 200 and "event_id" in ok.json()
    big = join(["x" * (2 * 1024 * 1024)])
    assert big.status_code == 413 and "under 1 MB" in big.json()["detail"]
