"""Public demo through the app's API: two gradio_client sessions are two visitors, a third signs in
as a curator. What visitor A adds, visitor B cannot find (text, "similar" with the same file, the
Library, How it works); B cannot change the shared images; the curator can; caps refuse cleanly."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest
from gradio_client import Client, handle_file

import consistency
from images import jpeg
from visual_search import SearchEngine
from visual_search.demo.visibility import REFUSED
from visual_search.web.common import md
from visual_search.web.visitors import (SIGN_IN_FAILS_IN_ALL, SIGN_IN_FAILS_PER_ADDRESS, SIGN_IN_REFUSED,
                                        SIGN_IN_WINDOW_S, Access, is_admin_profile)

from conftest import launch_app

SECRET = "a purple giraffe riding a skateboard"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_settings, shared_models):
    settings = tiny_settings(tmp_path_factory.mktemp("demo") / "data", public_demo=True, visitor_max_images=3,
                             admin_password=PASSWORD, admins=frozenset({"alice"}))
    engine = SearchEngine(settings, **shared_models)
    engine.index_bytes([(f"shared{i}.jpg", jpeg(i)) for i in range(3)])  # the shared collection
    demo = launch_app(engine)
    clients = [Client(demo.local_url, verbose=False) for _ in range(3)]
    yield engine, *clients
    demo.close()


def _files(table) -> list[str]:
    column = table["headers"].index("file")
    return [row[column] for row in table["data"]]


def _library(client) -> dict[str, str]:
    """file name -> id, as the visitor's Library lists them."""
    _, table, _ = client.predict(api_name="/library")
    return {row[0]: row[4] for row in table["data"]}


def test_what_a_visitor_adds_nobody_else_sees(app, tmp_path):
    engine, a, b, _ = app
    path = tmp_path / "giraffe.jpg"
    path.write_bytes(jpeg(42))
    outcome, status, header = a.predict([handle_file(str(path))], api_name="/add_images")
    assert outcome["data"][0][:2] == ["giraffe.jpg", "indexed"] and header.startswith("**4 images**")
    mine = _library(a)["giraffe.jpg"]
    status, *_ = a.predict(mine, SECRET, api_name="/set_caption")  # a visitor may edit their own upload
    assert status.startswith("Caption saved")

    _, table, _, _ = a.predict(SECRET, 8, 1.0, api_name="/search")
    assert _files(table)[0] == "giraffe.jpg"
    _, table, _ = a.predict(handle_file(str(path)), 8, api_name="/similar")
    assert _files(table)[0] == "giraffe.jpg"

    _, table, status, _ = b.predict(SECRET, 50, 1.0, api_name="/search")
    assert "giraffe.jpg" not in _files(table) and "among 3 images" in status
    _, table, _ = b.predict(handle_file(str(path)), 50, api_name="/similar")
    assert "giraffe.jpg" not in _files(table)
    _, table, status, _ = b.predict(mine, 50, api_name="/similar_by_id")
    assert table["data"] == [] and "giraffe" not in status  # answered as for an image not in the collection
    assert "No indexed image has the id" in status or "deleted from the collection" in status
    assert "giraffe.jpg" not in _library(b) and b.predict(api_name="/status").startswith("**3 images**")
    _, _, _, breakdown, *_ = b.predict(SECRET, 10, 1.0, api_name="/explain_query")
    assert "giraffe.jpg" not in [row[6] for row in breakdown["data"]]
    stage1, _, _ = b.predict(None, mine, api_name="/explain_image")
    assert "No indexed image has the id" in stage1
    assert engine.get(mine).owner  # it is there, and A's


def test_a_visitor_cannot_change_the_shared_collection_but_a_curator_can(app):
    engine, _, b, curator = app
    shared = _library(b)["shared0.jpg"]
    before = consistency.snapshot(engine.settings)
    status, *_ = b.predict(shared, "vandalised", api_name="/set_caption")
    assert status == f"⚠️ {md(REFUSED)}"
    status, *_ = b.predict(shared, "BUY NOW", "spam", "spam", api_name="/set_text")
    assert status == f"⚠️ {md(REFUSED)}"
    status, *_ = b.predict(shared, api_name="/delete")
    assert status == f"⚠️ {md(REFUSED)}"
    assert b.predict("guess", api_name="/sign_in").startswith("⚠️ That is not the curator password")
    status, *_ = b.predict(shared, api_name="/delete")
    assert status == f"⚠️ {md(REFUSED)}"
    assert consistency.snapshot(engine.settings) == before

    assert curator.predict(PASSWORD, api_name="/sign_in").startswith("Signed in as a curator")
    status, *_ = curator.predict(shared, "a curated caption", api_name="/set_caption")
    assert status.startswith("Caption saved") and engine.get(shared).caption == "a curated caption"
    status, *_ = curator.predict(shared, api_name="/delete")
    assert status == "Deleted **shared0\\.jpg**." and "shared0.jpg" not in _library(b)
    assert consistency.problems(engine.settings) == []


def test_a_visitor_at_the_cap_gets_what_fits_and_the_rest_says_why(app, tmp_path):
    engine, _, b, _ = app
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"many{i}.jpg")
        paths[-1].write_bytes(jpeg(100 + i))
    shared = len(_library(b))
    outcome, status, header = b.predict([handle_file(str(p)) for p in paths], api_name="/add_images")
    # the first 3 fit the cap of 3; the fourth has its row saying why (issue 24, item 9), the status too
    rows = sorted(row[:3] for row in outcome["data"])
    assert [row[:2] for row in rows] == [[p.name, "indexed"] for p in paths[:3]] + [["many3.jpg", "not added"]]
    assert rows[3][2] == "Each visitor may keep 3 images and you have 3: delete some in the Library, or add fewer."
    assert "Each visitor may keep 3 images and you have 3" in status and header.startswith(f"**{shared + 3} images**")
    assert "**3 indexed**, 0 duplicates, 0 rejected, 1 not added" in status  # not "rejected": it was fine
    before = consistency.snapshot(engine.settings)
    outcome, status, _ = b.predict([handle_file(str(paths[3]))], api_name="/add_images")  # nothing fits: nothing written
    assert [row[:2] for row in outcome["data"]] == [["many3.jpg", "not added"]]
    assert consistency.snapshot(engine.settings) == before and consistency.problems(engine.settings) == []


def test_curators_on_a_space_are_the_hugging_face_users_on_the_allow_list():
    from gradio import OAuthProfile

    admins = frozenset({"alice"})
    profile = OAuthProfile({"name": "Alice", "preferred_username": "Alice", "profile": "", "picture": ""})
    assert profile.username == "Alice" and is_admin_profile(profile, admins)
    assert not is_admin_profile(OAuthProfile({"name": "Bob", "preferred_username": "bob", "profile": "",
                                              "picture": ""}), admins)
    assert not is_admin_profile(None, admins) and not is_admin_profile(profile, frozenset())


def test_local_use_is_one_library_where_everything_is_writable(tiny_settings, tmp_path):
    who = Access(tiny_settings(tmp_path)).who(None)
    assert who.visitor is None and who.admin


def test_sign_in_is_suggested_only_where_there_is_one(tiny_settings, tmp_path, monkeypatch):
    """No VS_ADMIN_PASSWORD and no Hugging Face sign-in: nothing tells a visitor to sign in (issue 24, item 9)."""
    monkeypatch.delenv("SPACE_ID", raising=False)
    none = Access(tiny_settings(tmp_path / "a", public_demo=True))
    assert not none.can_sign_in()
    assert not [t for t in (none.note(), none.read_only_note(), REFUSED) if "sign in" in t.lower()]
    password = Access(tiny_settings(tmp_path / "b", public_demo=True, admin_password=PASSWORD))
    assert "sign in as a curator" in password.note() and "sign in" in password.read_only_note()
    monkeypatch.setenv("SPACE_ID", "someone/visual-search")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "x")
    assert Access(tiny_settings(tmp_path / "c", public_demo=True)).can_sign_in()


def _request(session: str, host: str) -> SimpleNamespace:
    """What sign-in reads of gradio's request: the session and the connecting address."""
    return SimpleNamespace(session_hash=session, client=SimpleNamespace(host=host))


def test_a_first_visit_keeps_the_visitor_its_session_acted_as_before_the_page_load_ran(tiny_settings, tmp_path):
    """An upload sent before the browser's id was adopted stays the visitor's own; a valid token still
    wins, and a forged one is never adopted."""
    access = Access(tiny_settings(tmp_path, public_demo=True))
    page = _request("s1", "203.0.113.7")
    early = access.who(page).visitor  # e.g. an upload, before the page load's adoption
    assert access.tokens.verify(access.adopt(None, page)) == early == access.who(page).visitor
    assert access.tokens.verify(access.adopt("x" * 22 + ".forged", page)) == early
    returning = access.tokens.sign("r" * 24)
    assert access.tokens.verify(access.adopt(returning, page)) == "r" * 24 == access.who(page).visitor


def test_guessing_the_curator_password_is_refused_after_a_few_wrong_tries(tiny_settings, tmp_path):
    now = [0.0]
    access = Access(tiny_settings(tmp_path, public_demo=True, admin_password=PASSWORD), clock=lambda: now[0])
    guesser = _request("s1", "203.0.113.7")
    for i in range(SIGN_IN_FAILS_PER_ADDRESS):
        assert access.sign_in(f"guess {i}", guesser) == f"⚠️ {SIGN_IN_REFUSED}"
    # from now on even the right password is refused unread: guessing on gains nothing
    assert access.sign_in(PASSWORD, guesser) == "⚠️ Too many wrong passwords: try again in 15 min."
    assert not access.who(guesser).admin
    assert access.sign_in(PASSWORD, _request("s2", "198.51.100.2")).startswith("Signed in")  # others are not locked out
    now[0] += SIGN_IN_WINDOW_S - 59
    assert access.sign_in(PASSWORD, guesser) == "⚠️ Too many wrong passwords: try again in 1 min."
    now[0] += 59
    assert access.sign_in(PASSWORD, guesser).startswith("Signed in") and access.who(guesser).admin


def test_guessing_from_many_addresses_is_bounded_in_all(tiny_settings, tmp_path):
    now = [0.0]
    access = Access(tiny_settings(tmp_path, public_demo=True, admin_password=PASSWORD), clock=lambda: now[0])
    for i in range(SIGN_IN_FAILS_IN_ALL):
        now[0] += 1
        assert access.sign_in("guess", _request(f"s{i}", f"10.0.0.{i}")) == f"⚠️ {SIGN_IN_REFUSED}"
    assert access.sign_in(PASSWORD, _request("new", "192.0.2.1")).startswith("⚠️ Too many wrong passwords")
    now[0] += SIGN_IN_WINDOW_S - SIGN_IN_FAILS_IN_ALL + 1  # the first failure has left the window
    assert access.sign_in(PASSWORD, _request("new", "192.0.2.1")).startswith("Signed in")


def test_the_api_refuses_a_guesser_after_a_few_wrong_passwords(app):
    _, _, b, _ = app
    for i in range(SIGN_IN_FAILS_PER_ADDRESS):
        assert b.predict(f"guess {i}", api_name="/sign_in") == f"⚠️ {SIGN_IN_REFUSED}"
    assert b.predict(PASSWORD, api_name="/sign_in").startswith("⚠️ Too many wrong passwords")


def _photos(tmp_path, n: int, first: int = 100) -> list[tuple[str, str]]:
    files = []
    for i in range(first, first + n):
        path = tmp_path / f"photo{i:03}.jpg"
        path.write_bytes(jpeg(i, (64, 48)))
        files.append((path.name, str(path)))
    return files


def test_an_upload_past_the_per_minute_cap_uses_all_of_it_and_each_file_left_says_why(tiny_settings, shared_models,
                                                                                      tmp_path):
    """23 files against a cap of 20 a minute: exactly 20 indexed, the other 3 each have a row saying why
    and when to retry (issue 24, item 9: the cap dropped files silently, then used only 16 of the 20)."""
    from visual_search.web.uploads import UploadJobs

    engine = SearchEngine(tiny_settings(tmp_path / "data", public_demo=True, visitor_uploads_per_minute=20,
                                        visitor_max_images=50), **shared_models)
    files = _photos(tmp_path, 23)
    jobs = UploadJobs(engine)
    job = jobs.wait(jobs.start(files, visitor="visitor-with-a-long-enough-id").id)
    assert sorted(row[0] for row in job.rows) == [name for name, _ in files]
    assert job.added == 20 and engine.count("visitor-with-a-long-enough-id") == 20
    left = sorted(row for row in job.rows if row[1] != "indexed")
    assert [row[:2] for row in left] == [(name, "not added") for name, _ in files[20:]]
    for _, _, reason in left:  # the first of the minute's images leaves the window a minute after it went in
        wait = re.fullmatch(r"At most 20 images a minute per visitor: try again in (\d+) s\.", reason)
        assert wait and 30 <= int(wait[1]) <= 60, reason
    assert not job.running and job.done == job.total and job.error.startswith("At most 20 images a minute")
    assert consistency.problems(engine.settings) == []


def test_a_second_upload_made_while_the_first_runs_waits_for_it(tiny_settings, shared_models, tmp_path):
    """A visitor adds more files while the first upload is indexed (nothing of it indexed yet): the second
    waits its turn and says so, instead of "still being added: wait" and nothing added (issue 24, item 9)."""
    from visual_search.web.uploads import WAITING, UploadJobs

    engine = SearchEngine(tiny_settings(tmp_path / "data", public_demo=True), **shared_models)
    visitor = "visitor-with-a-long-enough-id"
    second: list[str] = []
    seen_waiting: list[bool] = []

    class HeldFirst(UploadJobs):
        def _update(self, job_id, **changes):  # the first job, inside its first group, waits for the second
            super()._update(job_id, **changes)
            if second and job_id != second[0] and changes.get("current") and not seen_waiting:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and (j := self.get(second[0])).running and j.current != WAITING:
                    time.sleep(0.02)
                seen_waiting.append(self.get(second[0]).current == WAITING)

    jobs = HeldFirst(engine)
    first = jobs.start(_photos(tmp_path, 3), visitor=visitor)
    second.append(jobs.start(_photos(tmp_path, 2, first=200), visitor=visitor).id)
    done = [jobs.wait(first.id), jobs.wait(second[0])]
    assert [(j.added, j.failed, j.error) for j in done] == [(3, 0, None), (2, 0, None)], [j.rows for j in done]
    assert seen_waiting == [True] and engine.count(visitor) == 5
