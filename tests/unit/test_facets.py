"""Filters decided in memory (search/facets.py) give exactly the answer of a brute-force search over every
image that passes, and of Chroma deciding the same filter; they follow writes, including writes by
another engine on the same data dir (another process)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from visual_search import Settings, SearchEngine
from visual_search.search import candidates as retrieval
from visual_search.search.filters import SearchFilter
from visual_search.search.candidates import Lanes
from visual_search.stages.rank import Calibration, hybrid, relevance
from visual_search.records import ImageRecord
from visual_search.stages.store import CAPTION, VISUAL, VectorStore, make_client
from visual_search.demo.visibility import where_for

from conftest import SAMPLES

# relevance = (cosine + 1) / 2: nothing is clamped, so no two images tie
SPREAD = Calibration(floor=-1.0, ceiling=1.0)
EPOCH = datetime(2026, 3, 1, tzinfo=timezone.utc)
TAKEN = datetime(2019, 1, 1)
N, DIM = 300, 8
OWNERS = ["", "", "", "", "visitor-1", "visitor-2"]
TAGS = ["cat", "dog", "beach", "night", "car"]
SHAPES = [(4000, 3000), (3000, 4000), (1000, 1000)]  # landscape, portrait, square


def _shape(r: ImageRecord) -> str:
    return "square" if r.width == r.height else "portrait" if r.height > r.width else "landscape"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _record(i: int, rng: np.random.Generator) -> ImageRecord:
    tags = tuple(sorted({TAGS[j] for j in rng.choice(len(TAGS), size=rng.integers(0, 3), replace=False)}))
    added = (EPOCH + timedelta(hours=int(rng.integers(0, 24 * 60)))).isoformat(timespec="seconds")
    # two in three were taken in 2019-2020 by their EXIF, half of those with a UTC offset
    taken = "" if i % 3 == 0 else (TAKEN + timedelta(hours=37 * i)).isoformat() + ("+05:00" if i % 2 else "")
    return ImageRecord(id=f"{i:064x}", path=f"{i}.jpg", filename=f"{'Beach' if i % 7 == 0 else 'IMG'}_{i:04d}.JPG",
                       caption=f"image {i}", width=SHAPES[i % 3][0], height=SHAPES[i % 3][1], added_at=added, tags=tags,
                       owner=OWNERS[int(rng.integers(0, len(OWNERS)))], taken_at=taken)


class Collection:
    """A real store holding N images, and what a brute-force search needs to check it."""

    def __init__(self, data_dir) -> None:
        rng = np.random.default_rng(7)
        self.records = {r.id: r for r in (_record(i, rng) for i in range(N))}
        self.caption, self.visual = _unit(rng, N), _unit(rng, N)
        self.store = VectorStore(make_client(Settings(data_dir=data_dir)), "captions-facets", "visual-facets")
        records = list(self.records.values())
        self.store.upsert_captions(records, self.caption)
        self.store.upsert_visual(records, self.visual)
        self.rng = rng

    def passes(self, r: ImageRecord, f: SearchFilter, visitor: str | None) -> bool:
        added = datetime.fromisoformat(r.added_at)
        # taken: the photo's own clock (its offset not applied), else when added
        taken = datetime.fromisoformat(r.taken_at[:19]).replace(tzinfo=timezone.utc) if r.taken_at else added
        return ((visitor is None or r.owner in ("", visitor)) and (not f.after or added >= f.after)
                and (not f.taken_after or taken >= f.taken_after) and (not f.taken_before or taken < f.taken_before)
                and (not f.before or added < f.before) and (not f.tag or f.tag in r.tags)
                and f.name.lower() in r.filename.lower() and (not f.orientation or _shape(r) == f.orientation))

    def brute_force(self, q: retrieval.Query, f: SearchFilter, visitor: str | None, need: int) -> list[str]:
        ids = list(self.records)
        cap = relevance(self.caption @ q.caption, SPREAD) if q.caption is not None else np.zeros(len(ids))
        total = hybrid(cap, relevance(self.visual @ q.visual, SPREAD), q.alpha)
        order = [j for j in np.argsort(-total) if self.passes(self.records[ids[j]], f, visitor)]
        return [ids[j] for j in order[:need]]

    def change(self) -> None:
        """Re-tag and re-own some images, delete a few: the facets must follow."""
        ids = list(self.records)
        picked = [ids[int(j)] for j in self.rng.choice(len(ids), size=40, replace=False)]
        changed = []
        for image_id in picked[:30]:
            r = self.records[image_id]
            r = replace(r, tags=(TAGS[int(self.rng.integers(0, len(TAGS)))],),
                        owner=OWNERS[int(self.rng.integers(0, len(OWNERS)))])
            self.records[image_id] = r
            changed.append(r)
        self.store.update_metadata(changed)
        self.store.delete(picked[30:])
        keep = [j for j, i in enumerate(ids) if i not in picked[30:]]
        self.caption, self.visual = self.caption[keep], self.visual[keep]
        self.records = {i: self.records[i] for i in ids if i not in picked[30:]}


FILTERS = [
    SearchFilter(),
    SearchFilter(after=EPOCH + timedelta(days=30)),  # about half pass
    SearchFilter(before=EPOCH + timedelta(days=3)),  # few pass
    SearchFilter(tag="cat"),
    SearchFilter(tag="night", after=EPOCH + timedelta(days=10)),
    SearchFilter(name="beach"),  # 1 in 7, in another case than stored
    SearchFilter(name="img_01"),
    SearchFilter(tag="nothing-has-this"),
    SearchFilter(orientation="portrait"),  # a clause added through its declaration alone (issue 20)
    SearchFilter(orientation="square", tag="cat"),
    SearchFilter(taken_after=datetime(2019, 9, 1, tzinfo=timezone.utc)),  # later photos, and the undated
    SearchFilter(taken_before=datetime(2019, 4, 1, tzinfo=timezone.utc), tag="cat"),
    # a week from the day image 109 was taken: at 01:00 its time (+05:00), so the day before in UTC
    SearchFilter(taken_after=datetime(2019, 6, 18, tzinfo=timezone.utc),
                 taken_before=datetime(2019, 6, 25, tzinfo=timezone.utc)),
]


LANES = Lanes()


@pytest.fixture(params=["first depth", "shallow"])
def depth(request, monkeypatch):
    """As shipped, and starting at one candidate per result: every deepening step and fallback runs."""
    if request.param == "shallow":
        monkeypatch.setattr(retrieval, "CANDIDATE_POOL", 1)
        monkeypatch.setattr(retrieval, "POOL_PER_RESULT", 1)
        monkeypatch.setattr(retrieval, "FILTERED_PER_RESULT", 1)
        monkeypatch.setattr(retrieval, "MAX_POOL", 64)


def test_filters_in_memory_answer_as_brute_force_and_as_chroma(tmp_path, depth):
    c = Collection(tmp_path)
    c.store.load_facets()
    rng = np.random.default_rng(3)
    for round_ in range(3):
        for f in FILTERS:
            for visitor in (None, "", "visitor-1"):
                alpha = float(rng.choice([0.0, 0.3, 1.0]))
                need = int(rng.choice([1, 5, 20]))
                qc, qv = _unit(rng, 2)
                # now and then a query without words (an uploaded image: no caption vector)
                q = retrieval.Query(None if alpha == 0.0 and need == 5 else qc, qv, SPREAD, SPREAD, alpha)
                expected = c.brute_force(q, f, visitor, need)
                allowed = c.store.facets.select(f if f.active else None, visitor)
                in_memory = retrieval.gather(c.store, q, need, 0.0, False, allowed=allowed)
                assert in_memory.ids[:need] == expected, (round_, f, visitor, alpha, need)
                # as the engine asks: the two channels' lanes at once
                in_lanes = retrieval.gather(c.store, q, need, 0.0, False, allowed=allowed, lanes=LANES)
                assert in_lanes.ids[:need] == expected
                where = where_for(visitor, f.where())
                ids = c.store.name_ids(f.name, where) if f.needs_ids else None
                by_chroma = retrieval.gather(c.store, q, need, 0.0, False, where, ids)
                assert by_chroma.ids[:need] == expected
        c.change()  # the second round runs on facets kept up to date by the store's writes


def test_an_id_the_table_does_not_know_is_looked_up_not_guessed(tmp_path):
    c = Collection(tmp_path)
    c.store.load_facets()
    other = VectorStore(make_client(Settings(data_dir=tmp_path)), "captions-facets", "visual-facets")
    newcomer = ImageRecord(id="f" * 64, path="new.jpg", filename="new.jpg", caption="new", width=1, height=1,
                           added_at=EPOCH.isoformat(), tags=("cat",), owner="visitor-2")
    vc, vv = _unit(c.rng, 2)
    other.upsert_captions([newcomer], vc[None])  # written beside this store's table, as another process would
    other.upsert_visual([newcomer], vv[None])
    q = retrieval.Query(vc, vv, SPREAD, SPREAD, 0.5)  # the newcomer is the best match on both channels
    for visitor, seen in ((None, True), ("visitor-2", True), ("visitor-1", False)):
        allowed = c.store.facets.select(SearchFilter(tag="cat"), visitor)
        found = retrieval.gather(c.store, q, 3, 0.0, False, allowed=allowed.with_lookup(c.store.lookup_facets))
        assert (found.ids[0] == newcomer.id) is seen, visitor


def test_counts_per_visitor_match_chroma(tmp_path):
    c = Collection(tmp_path)
    c.store.load_facets()
    for visitor in ("", "visitor-1", "visitor-2", "nobody"):
        assert c.store.facets.count(visitor) == c.store.count_where(where_for(visitor))


def test_another_engine_on_the_same_data_dir_is_noticed(settings, shared_models):
    """Two engines on one data dir stand for two processes: one re-tags, the other's next filtered search
    (facets loaded, as the app loads them) sees the new tag and stops seeing the old one."""
    app = SearchEngine(settings, **shared_models)
    app.index_paths(sorted(SAMPLES.glob("*.jpg"))[:4])
    app.load_facets()
    cli = SearchEngine(settings, **shared_models)
    target = app.list()[0]
    assert app.search("anything", k=10, filter=SearchFilter(tag="freshly-added")).results == []
    cli.set_tags(target.id, ["freshly-added"])
    tagged = SearchFilter(tag="freshly-added")
    assert [r.record.id for r in app.search("anything", k=10, filter=tagged).results] == [target.id]
    _wait_for_facets(app)  # read again in the background; Chroma answered meanwhile
    assert [r.record.id for r in app.search("anything", k=10, filter=tagged).results] == [target.id]
    cli.remove(target.id)
    assert app.search("anything", k=10, filter=tagged).results == []
    _wait_for_facets(app)
    assert app.search("anything", k=10, filter=tagged).results == []
    assert app.count("") == 3 and app.store.facets.count("") == 3


def _wait_for_facets(engine: SearchEngine, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not engine.store.facets.loaded:
        assert time.monotonic() < deadline, "the facets were not read again"
        time.sleep(0.05)


def test_whole_collection_reads_come_back_whole_across_pages(tmp_path, monkeypatch):
    """SQLite refuses one read of more than ~32k rows' fields (a 100k-image bench run failed so), so the
    store reads in pages: with pages of 7 rows, every read still returns all 300 images exactly once."""
    import visual_search.stages.store as store_module

    c = Collection(tmp_path)
    monkeypatch.setattr(store_module, "GET_PAGE", 7)
    c.store.load_facets()
    assert len(c.store.facets) == N
    ids = list(c.records)
    assert set(c.store.records()) == set(ids) and len(c.store.captions()) == N
    assert set(c.store.stored_metadata(VISUAL)) == set(ids)
    stored = c.store.embeddings(CAPTION, ids)
    assert list(stored) == ids and np.allclose(np.stack(list(stored.values())), c.caption, atol=1e-6)
