"""The Gradio app, launched in-process and driven through gradio_client the way a browser's calls go:
search, upload, bad upload, caption edit, delete, empty states, first-start indexing, served paths."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from visual_search import SearchEngine, Settings
from visual_search.stages.rank import CAPTION_TEXT
from visual_search.web.startup import MARKER, StartupJob
from visual_search.web import launch_options

from conftest import SAMPLES, column, launch_app
from images import encode, picture

N_SAMPLES = len(list(SAMPLES.glob("*.jpg")))
TILE = re.compile(r"^(\d\.\d\d) \| (.+)$")  # "0.87 | a cat laying on a couch"
CAPTIONS = {  # people's words for a few samples (the tiny test captioner writes word salad)
    "cat.jpg": "a tabby cat with green eyes",
    "coffee_cup.jpg": "a cup of espresso on a red saucer",
    "rocket_launch.jpg": "a rocket standing on its launch pad at dusk",
    "dogs_at_door.jpg": "two brown dogs looking out of a wooden door",
}


def _launch(engine: SearchEngine, startup: StartupJob | None = None):
    demo = launch_app(engine, startup)
    return demo, Client(demo.local_url, verbose=False)


def _png(color: tuple[int, int, int], size=(96, 64)) -> bytes:
    return encode(Image.new("RGB", size, color), "PNG")


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory, tiny_settings) -> Settings:
    return tiny_settings(tmp_path_factory.mktemp("app") / "data", max_file_mb=1.0)


@pytest.fixture(scope="module")
def app(app_settings, shared_models):
    """The app after its first start: the sample images indexed by the startup job, some captions corrected."""
    engine = SearchEngine(app_settings, **shared_models)
    job = StartupJob(engine)
    job.run()  # what app.py starts in a thread
    for record in engine.list():
        if record.filename in CAPTIONS:
            engine.set_caption(record.id, CAPTIONS[record.filename])
    demo, client = _launch(engine, job)
    yield engine, client, job
    demo.close()


def _search(client: Client, query: str, k: int = 8, alpha: float = 1.0):
    gallery, table, status, _selected = client.predict(query, k, alpha, api_name="/search")
    return gallery, table, status


def _id_of(engine: SearchEngine, filename: str) -> str:
    return next(r.id for r in engine.list() if r.filename == filename)


def test_first_start_indexes_the_samples_and_a_restart_reuses_them(app, app_settings, shared_models):
    engine, client, job = app
    assert job.status.error is None and job.status.indexed == N_SAMPLES
    assert engine.count() == N_SAMPLES
    assert (app_settings.data_dir / MARKER).read_text().strip() == "done"
    assert client.predict(api_name="/status").startswith(f"**{N_SAMPLES} images** in the collection")

    again = StartupJob(SearchEngine(app_settings, **shared_models))
    again.run()  # a restart on the same data dir: nothing captioned or embedded twice
    assert (again.status.indexed, again.status.repaired, again.status.error) == (0, 0, None)
    assert engine.count() == N_SAMPLES


def test_search_shows_relevance_and_caption_on_every_tile(app):
    engine, client, _ = app
    gallery, table, status = _search(client, "a cat", k=5)
    assert "result" in status and "“a cat”" in status
    tiles = [TILE.match(tile["caption"]) for tile in gallery]
    assert all(tiles) and len(tiles) == len(table["data"]) >= 1
    assert tiles[0].group(2) == CAPTIONS["cat.jpg"] + " — file name: «cat».jpg"  # ranked first, and why
    scores = [float(t.group(1)) for t in tiles]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1
    assert table["headers"] == ["rank", "relevance", "caption score", "visual score", "word score", "caption",
                                "why it matched", "file", "tags", "added (UTC)"]
    first = dict(zip(table["headers"], table["data"][0]))
    assert first["rank"] == 1 and (first["caption"], first["file"]) == (CAPTIONS["cat.jpg"], "cat.jpg")
    why = first["why it matched"].replace("\\", "")  # markdown, its dots escaped
    assert "file name: **cat**.jpg" in why and "caption: a tabby **cat** with" in why and first["word score"] > 0
    assert all(re.search(r"\.webp$", tile["image"]) for tile in gallery)  # thumbnails, not originals


def test_empty_and_invalid_queries_get_messages_not_errors(app):
    _, client, _ = app
    gallery, table, status = _search(client, "quarterly financial report spreadsheet", alpha=1.0)
    assert gallery == [] and table["data"] in ([], [[]])
    assert status.startswith("Nothing relevant for “quarterly financial report spreadsheet” among")
    gallery, _, status = _search(client, "   ")
    assert gallery == [] and status.startswith("⚠️ The query is empty")
    _, _, status = _search(client, "<img src=x onerror=alert(1)> *cat*")
    assert "“&lt;img src=x onerror=alert\\(1\\)&gt; \\*cat\\*”" in status  # shown as typed, not as HTML
    gallery, _, status = _search(client, "cat " * 300)
    assert gallery == [] and status.startswith("⚠️ The query is 1,199 characters long; the limit is 1,000")


def test_upload_makes_an_image_searchable_and_updates_the_count(app, tmp_path):
    engine, client, _ = app
    before = engine.count()
    path = tmp_path / "teal_square.png"
    path.write_bytes(_png((0, 128, 128)))
    outcome, status, header = client.predict([handle_file(str(path))], api_name="/add_images")
    assert outcome["data"][0][:2] == ["teal_square.png", "indexed"] and outcome["data"][0][2]
    assert f"{before + 1:,} images in the collection" in status and header.startswith(f"**{before + 1} images**")

    # searchable at once: by the image itself (relevance 1.00) and by its caption's words
    gallery, table, status = client.predict(handle_file(str(path)), 3, api_name="/similar")
    assert column(table, "file")[0] == "teal_square.png" and gallery[0]["caption"].startswith("1.00 | ")
    new_id = _id_of(engine, "teal_square.png")
    client.predict(new_id, "a teal square on a plain background", api_name="/set_caption")
    _, table, _ = _search(client, "teal square", k=3)
    assert column(table, "file")[0] == "teal_square.png"

    # the same file again is a duplicate, not a second copy
    outcome, _, _ = client.predict([handle_file(str(path))], api_name="/add_images")
    assert outcome["data"][0][1].startswith("duplicate") and engine.count() == before + 1


def test_a_bad_upload_is_rejected_with_its_reason_and_changes_nothing(app, tmp_path):
    engine, client, _ = app
    before = engine.count()
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not a picture, only text with a .jpg name\n")
    good = tmp_path / "orange.png"
    good.write_bytes(_png((255, 140, 0)))
    outcome, status, _ = client.predict([handle_file(str(fake)), handle_file(str(good))], api_name="/add_images")
    rows = {row[0]: row[1:] for row in outcome["data"]}
    assert rows["holiday.jpg"] == ["rejected", "not a supported image: it is a text file; accepted: "
                                   "JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, HEIC or Netpbm"]
    assert rows["orange.png"][0] == "indexed"  # one bad file does not stop the others
    assert "1 indexed" in status and "1 rejected" in status
    assert engine.count() == before + 1
    assert "holiday.jpg" not in [r.filename for r in engine.list()]


def test_uploads_over_the_size_limit_are_refused(app, tmp_path):
    engine, client, _ = app
    before = engine.count()
    big = tmp_path / "big.png"
    picture((800, 800)).save(big)  # noise: ~1.9 MB as PNG
    assert big.stat().st_size > engine.settings.max_file_bytes
    with pytest.raises(Exception, match="(?i)file size|too large|exceeds"):
        client.predict([handle_file(str(big))], api_name="/add_images")
    assert engine.count() == before


def test_correcting_a_caption_makes_it_searchable_by_the_new_words(app):
    engine, client, _ = app
    image_id = _id_of(engine, "kite_in_sky.jpg")
    status, tiles, table, note = client.predict(image_id, "a colourful kite flying in a blue sky",
                                                api_name="/set_caption")
    assert status.startswith("Caption saved for **kite\\_in\\_sky\\.jpg**")
    row = next(r for r in table["data"] if r[4] == image_id)
    assert row[1:3] == ["a colourful kite flying in a blue sky", "yes"]
    _, table, _ = _search(client, "a kite in the sky", k=3)
    assert [column(table, "caption")[0], column(table, "file")[0]] == ["a colourful kite flying in a blue sky", "kite_in_sky.jpg"]

    status, *_ = client.predict(image_id, "  ", api_name="/set_caption")
    assert status.startswith("⚠️ The caption is empty\\: write what the picture shows")
    assert "describe what you want to see" not in status  # that is the query's hint, not a caption's


def test_the_library_corrects_the_text_in_the_picture_and_the_details(app):
    """Text in the picture, title and description, edited in the Library: kept, searchable at once, shown."""
    engine, client, _ = app
    image_id = _id_of(engine, "raccoon.jpg")
    status, tiles, table, note, text, title, description = client.predict(
        image_id, "OPEN 24 HOURS\nzanzibar grill", "Night visitor", "a masked bandit by the bins",
        api_name="/set_text")
    assert status.startswith("Text and details saved for **raccoon\\.jpg**")
    assert (text, title, description) == ("OPEN 24 HOURS\nzanzibar grill", "Night visitor", "a masked bandit by the bins")
    record = engine.get(image_id)
    assert record.ocr_edited and record.details_edited and record.title == "Night visitor"
    row = dict(zip(table["headers"], next(r for r in table["data"] if r[4] == image_id)))
    assert row["text in picture"] == "OPEN 24 HOURS\nzanzibar grill"
    _, table, _ = _search(client, "zanzibar", k=3)
    assert column(table, "file")[0] == "raccoon.jpg" and "**zanzibar**" in column(table, "why it matched")[0]
    _, table, _ = _search(client, "bandit", k=3)
    assert column(table, "file")[0] == "raccoon.jpg"


def test_deleting_an_image_removes_it_everywhere(app):
    engine, client, _ = app
    before = engine.count()
    image_id = _id_of(engine, "coffee_cup.jpg")
    record = engine.get(image_id)
    served = [f"{client.src}gradio_api/file={p}" for p in (record.path, engine.thumbnail(record))]
    assert [urllib.request.urlopen(u).status for u in served] == [200, 200]
    status, *rest, header = client.predict(image_id, api_name="/delete")
    assert status == "Deleted **coffee\\_cup\\.jpg**."
    assert header.startswith(f"**{before - 1} images**") and engine.count() == before - 1
    _, table, note = client.predict(api_name="/library")[:3]
    assert "coffee_cup.jpg" not in [r[0] for r in table["data"]] and note.startswith(f"**{before - 1} images**")
    _, table, _ = _search(client, "a cup of espresso", k=50)
    assert "coffee_cup.jpg" not in [r[5] for r in table["data"]]
    for url in served:  # the original and its thumbnail: Not Found, not "not allowed"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url)
        assert err.value.code == 404
    status, *_ = client.predict(image_id, api_name="/delete")
    assert status.startswith("⚠️ No indexed image has the id")


def test_search_results_gives_programs_plain_data(app):
    """`/search_results`: one dict per result, best first, with a URL that serves the stored original."""
    engine, client, _ = app
    rows = client.predict("two dogs at a door", 3, 1.0, api_name="/search_results")
    assert [set(r) for r in rows] == [{"id", "filename", "caption", "relevance", "caption_score", "visual_score",
                                       "word_score", "added_at", "taken_at", "place", "camera", "ocr_text", "tags",
                                       "matched", "image_url"}] * len(rows) and rows
    first = rows[0]
    assert (first["filename"], first["caption"]) == ("dogs_at_door.jpg", CAPTIONS["dogs_at_door.jpg"])
    assert first["id"] == _id_of(engine, "dogs_at_door.jpg") and first["added_at"].startswith("20")
    assert [r["relevance"] for r in rows] == sorted((r["relevance"] for r in rows), reverse=True)
    assert first["relevance"] == first["caption_score"] > 0  # weight 1: the caption score alone
    with urllib.request.urlopen(first["image_url"]) as resp:
        assert resp.read() == open(engine.get(first["id"]).path, "rb").read()
    assert str(engine.settings.data_dir.resolve()) not in first["image_url"]  # no folder of the server named
    for wrong in ("x" * 64 + ".jpg", first["id"] + ".json", "..%2f..%2fetc%2fpasswd"):  # only originals, by name
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(first["image_url"].rsplit("/", 1)[0] + "/" + wrong)
    with pytest.raises(Exception, match="The query is empty"):
        client.predict("  ", 3, 1.0, api_name="/search_results")


def test_the_library_finds_images_by_name_or_caption(app):
    engine, client, _ = app
    _, table, note = client.predict("DOGS door", api_name="/library")
    assert [r[0] for r in table["data"]] == ["dogs_at_door.jpg"]  # every word, any case, name or caption
    assert note.startswith(f"**{engine.count()} images** · 1 with")
    _, table, _ = client.predict("kite_in", api_name="/library")
    assert [r[0] for r in table["data"]] == ["kite_in_sky.jpg"]
    _, table, _ = client.predict("", api_name="/library")
    assert len(table["data"]) == engine.count()


def test_find_similar_to_an_indexed_image_puts_it_first(app):
    engine, client, _ = app
    gallery, table, status, query_image = client.predict(_id_of(engine, "raccoon.jpg"), 4,
                                                         api_name="/similar_by_id")
    assert column(table, "file")[0] == "raccoon.jpg" and gallery[0]["caption"].startswith("1.00 | ")
    assert "like “raccoon\\.jpg”" in status


def test_how_it_works_explains_a_query(app):
    engine, client, _ = app
    stage3, _, stage4, table, _, caption_map, tiles = client.predict("two dogs", 3, 1.0, api_name="/explain_query")
    assert "Stage 3" in stage3 and "384 numbers" in stage3
    assert "`clamp((" in stage4 and "clip(" not in stage4  # clamp, never to be read as CLIP
    assert tiles[0]["caption"].startswith("#1 · ") and tiles[0]["caption"].endswith(CAPTIONS["dogs_at_door.jpg"])
    assert len(tiles) == len(table["data"])
    for text in (stage3, stage4):  # no server paths: not the data dir, not a model folder
        assert str(engine.settings.data_dir) not in text and "/site-packages/" not in text
    again, *_ = client.predict("two dogs", 3, 1.0, api_name="/explain_query")
    assert "came from the query cache" in again and " ms" not in again.split("Query vector")[0]
    two_words = CAPTION_TEXT.for_query("two dogs")  # the search's calibration of a two-word query (issue 24)
    assert f"floor {two_words.floor:.2f}, ceiling {two_words.ceiling:.2f}" in stage4 and table["data"][0][6] == "dogs_at_door.jpg"
    with Image.open(caption_map) as im:  # the map of caption vectors, with the query drawn in orange
        assert im.size == (1000, 560) and (235, 110, 20) in {c for _, c in im.convert("RGB").getcolors(1 << 20)}
    stage1, stage2, _ = client.predict(None, _id_of(app[0], "cat.jpg"), api_name="/explain_image")
    assert "Stage 1" in stage1 and " s** and wrote" in stage1 and CAPTIONS["cat.jpg"] in stage1
    assert "384 numbers" in stage2 and "Chroma collection `vs-caption-" in stage2
    assert str(engine.settings.data_dir) not in stage2 and "data folder" in stage2


def test_how_it_works_stage_2_embeds_the_stored_caption(app):
    """The tiny captioner writes word salad; the index keeps a person's words: stage 2 shows their vector."""
    engine, client, _ = app
    _, stage2, plot = client.predict(None, _id_of(engine, "cat.jpg"), api_name="/explain_image")
    assert "The caption the index keeps becomes a vector" in stage2
    stored = engine.text_encoder.encode([CAPTIONS["cat.jpg"]])[0]
    values = [row[1] for row in plot["data"]]
    assert len(values) == len(stored) and max(abs(a - float(b)) for a, b in zip(values, stored)) < 1e-5


def test_only_stored_images_and_samples_are_served(app):
    engine, client, _ = app
    opts = launch_options(engine.settings)
    s = engine.settings
    assert opts["allowed_paths"] == [str(s.images_dir.resolve()), str(s.thumbs_dir.resolve()), str(SAMPLES.resolve())]
    assert opts["max_file_size"] == engine.settings.max_file_bytes
    secret = engine.settings.data_dir / "chroma" / "chroma.sqlite3"
    for path in (secret, engine.settings.data_dir / MARKER):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{client.src}gradio_api/file={path.resolve()}")
        assert err.value.code in (403, 404)
    sample = SAMPLES / "cat.jpg"
    with urllib.request.urlopen(f"{client.src}gradio_api/file={sample.resolve()}") as resp:
        assert resp.status == 200 and resp.read() == sample.read_bytes()


def test_an_empty_index_says_so(engine):
    demo, client = _launch(engine)
    try:
        gallery, _, status = _search(client, "a cat")
        assert gallery == [] and status == "The index is empty: add images in the **Add images** tab."
        assert client.predict(api_name="/status") == "**0 images** in the collection"
    finally:
        demo.close()
