"""Finding the candidates of one query on both channels, exactly, with or without a filter.

Each channel's index is asked for its nearest images (among those the filter lets through: the
filter is inside the query, never applied afterwards). The other channel's cosine of each of them
is read exactly. How deep to ask is decided the way Fagin's threshold algorithm does: an image not
returned by either channel can score at most

    bound = alpha * relevance(last caption cosine) + (1 - alpha) * relevance(last visual cosine)

so once the page's last result scores at least `bound` (sort by relevance), or once `bound` is
below the minimum relevance (nothing unseen can pass: the whole set above the cut-off is known,
which sorting newest first needs), no unseen image could change the answer. Otherwise the depth is
multiplied by 4, up to MAX_POOL per channel (then the answer is the best of that many).

Each channel is one lane: ask its index, read the other channel's vectors of what it found. The two
lanes share nothing until they are scored together, so the engine runs them at once (Lanes, below).

A filter decided in memory (`allowed`, search/facets.py) is applied to what each channel returns, and the
same bound holds, since it bounds every unseen image, passing or not. The first depth is scaled by
how few pass, to about FILTERED_PER_RESULT passing candidates per result needed (a filter that lets
1 in 10 through asks 20 per result); when so few pass that the index would be asked deeper than
their number, it is asked among exactly those ids instead. A filter
Chroma has to decide (`where`, `ids`) goes inside its query: slower (tens of ms at 10k), as exact.

The word channel (stages/words.py) is a third list, complete (every image holding a query's word,
with its word relevance), best first. Every candidate of a lane is scored with its own word
relevance; the list's first `word_pool` images are scored too (their vectors read exactly), and the
bound becomes fuse(bound, word relevance of the first find not scored): rank.fuse is monotonic in
both. What binds is deepened: the lanes while an image without the words could still enter the
page, else only the word list (its vectors read, the lanes not asked again).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import numpy as np

from ..stages import rank
from .facets import Selection
from ..stages.rank import Calibration
from ..stages.store import CAPTION, VISUAL, Hit, VectorStore
from ..stages.words import WordMatches

CANDIDATE_POOL = 40  # first depth asked of each channel...
POOL_PER_RESULT = 4  # ... or this many times the results needed, if more
MAX_POOL = 4096  # deepest a channel is asked; beyond it a page is the best of these
# Passing candidates first asked per result under a filter decided in memory. Fewer than unfiltered:
# a deeper query costs ~11 us per neighbour returned (Chroma 1.5, 2 cores), and the threshold test
# deepens the few queries where it is not enough.
FILTERED_PER_RESULT = 2


# ---- lanes: a search's two channels at once -------------------------------------------------------
# A search asks two channels for the same things: two query vectors, two index queries, two reads of
# the other channel's vectors. ONNX Runtime and Chroma release the GIL while they work, so each pair
# can overlap instead of waiting in line (measured: docs/benchmarks.md). One extra thread per engine:
# while another search holds it (concurrent visitors already keep the cores busy), a pair runs one
# call after the other, as it always did, instead of queueing for the thread.

A = TypeVar("A")
B = TypeVar("B")


class Lanes:
    """`both(first, second)`: `first` here, `second` on the lane thread, when it is free."""

    def __init__(self) -> None:
        self._free = threading.Semaphore(1)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def both(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        """(first(), second()); either's exception is raised once both have finished."""
        if not self._free.acquire(blocking=False):
            return first(), second()
        try:
            later = self._thread().submit(second)
            try:
                a = first()
            except BaseException:
                wait([later])
                raise
            return a, later.result()
        finally:
            self._free.release()

    def _thread(self) -> ThreadPoolExecutor:
        """The lane's executor, made anew in a forked child (ZeroGPU's workers), where the parent's
        thread does not exist and a task submitted to its executor would never run."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool, self._pid = ThreadPoolExecutor(1, thread_name_prefix="vs-lane"), os.getpid()
            return self._pool


class OneLane:
    """`both` one call after the other: for callers without an engine's lanes (tests, measurements)."""

    @staticmethod
    def both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        return first(), second()


SEQUENTIAL = OneLane()
Runner = Lanes | OneLane


@dataclass(frozen=True)
class Query:
    """One query's vectors and how to read their cosines."""

    caption: np.ndarray | None  # None: no words (an uploaded image) -> caption cosine 0
    visual: np.ndarray
    caption_cal: Calibration
    visual_cal: Calibration
    alpha: float
    words: WordMatches | None = None  # the word channel's finds (None: no words to look up)


@dataclass
class _Lane:
    """What one channel's lane found: its hits (all, best first: depth and bound are read from them),
    their cosines on it (those the filter keeps), and the other channel's vectors of those."""

    hits: list[Hit] = field(default_factory=list)
    cosines: dict[str, float] = field(default_factory=dict)
    other: dict[str, np.ndarray] = field(default_factory=dict)  # of its hits and of the word finds
    found: set[str] = field(default_factory=set)  # the word finds whose vectors `other` holds


@dataclass
class Candidates:
    """Scored images, best first (relevance order), with both channels' scores and cosines."""

    ids: list[str]
    total: np.ndarray
    caption_score: np.ndarray
    visual_score: np.ndarray
    caption_cosine: np.ndarray
    visual_cosine: np.ndarray
    word_score: np.ndarray


def pool_size(need: int) -> int:
    return max(CANDIDATE_POOL, POOL_PER_RESULT * need)


def gather(store: VectorStore, q: Query, need: int, min_relevance: float, complete: bool,
           where: dict | None = None, ids: list[str] | None = None, allowed: Selection | None = None,
           lanes: Runner = SEQUENTIAL) -> Candidates:
    """The candidates that decide the best `need` results (or, `complete`, every result above the cut-off),
    among the images `where`, `ids` and `allowed` let through. `lanes` runs the two channels at once."""
    pool = pool_size(need)
    if allowed is not None:
        spread = allowed.total / max(1, allowed.count)  # neighbours asked per passing one
        if allowed.count <= max(pool, FILTERED_PER_RESULT * need * spread):  # so few pass: ask among just those
            ids, allowed = allowed.ids(), None
        else:
            pool = min(MAX_POOL, max(pool, math.ceil(FILTERED_PER_RESULT * need * spread)))
    ask_caption, ask_visual = q.alpha > 0 and q.caption is not None, q.alpha < 1
    words = _word_list(store, q.words, where, ids, allowed)
    scores = dict(words)  # every find's word relevance: a lane's candidate gets its own too
    word_pool, asked = _through_ties(words, pool_size(need)), 0
    cap = vis = _Lane()
    while True:
        if asked != pool:  # the lanes are asked again only when they go deeper; the finds read with them
            finds = [i for i, _ in words[:word_pool]]
            cap, vis = lanes.both(lambda: _lane(store, q, CAPTION, ask_caption, pool, where, ids, allowed, finds),
                                  lambda: _lane(store, q, VISUAL, ask_visual, pool, where, ids, allowed, finds))
            asked = pool
        elif finds := [i for i, _ in words[:word_pool] if i not in cap.found]:
            got_vis, got_cap = lanes.both(lambda: store.embeddings(VISUAL, finds),
                                          lambda: store.embeddings(CAPTION, finds))
            cap.other.update(got_vis)
            vis.other.update(got_cap)
            cap.found.update(finds)
        found = _score(q, cap, vis, scores)
        # a channel that returned fewer than asked has returned every image that passes the filter
        exhausted = (not (ask_caption or ask_visual) or (ask_caption and len(cap.hits) < pool)
                     or (ask_visual and len(vis.hits) < pool))
        meaning = _bound(q, cap.hits, vis.hits)  # of any image neither lane returned
        unseen_words = words[word_pool][1] if len(words) > word_pool else 0.0  # of any find not scored yet
        bound = float(rank.fuse(meaning, unseen_words))
        last = found.total[need - 1] if not complete and len(found.ids) >= need else -1.0
        if exhausted or bound < min_relevance or last >= bound:
            return found
        # deepen what binds: the lanes while an image without the words could still enter, else the words
        lanes_bind = meaning >= min_relevance if complete else last < meaning
        if lanes_bind or word_pool >= len(words):
            if pool >= MAX_POOL:  # as deep as a channel is asked: the best of these, or exactly among what passes
                return found if allowed is None else gather(store, q, need, min_relevance, complete,
                                                            ids=allowed.ids(), lanes=lanes)
            pool = min(pool * 4, MAX_POOL)
        else:
            word_pool = _through_ties(words, word_pool * 4)


def _through_ties(words: list[tuple[str, float]], n: int) -> int:
    """`n`, or more so as not to end inside a group of equal word relevance: the finds of one tie
    (every "city_street_*.jpg" for "city street") are ranked by their meaning, which needs them all
    read, best in one go."""
    while 0 < n < len(words) and words[n][1] == words[n - 1][1]:
        n += 1
    return n


def _lane(store: VectorStore, q: Query, kind: str, ask: bool, pool: int, where: dict | None, ids: list[str] | None,
          allowed: Selection | None, finds: list[str]) -> _Lane:
    """One channel: its `pool` nearest (those `allowed` keeps) and the other channel's vectors of them
    and of the word channel's `finds` (one read for both)."""
    hits = store.query(kind, q.caption if kind == CAPTION else q.visual, pool, where, ids) if ask else []
    cosines = {h.id: h.cosine for h in hits}
    if allowed is not None:
        kept = allowed.keep(list(cosines))
        cosines = {i: c for i, c in cosines.items() if i in kept}
    other = VISUAL if kind == CAPTION else CAPTION
    wanted = [*cosines, *(i for i in finds if i not in cosines)]
    return _Lane(hits, cosines, store.embeddings(other, wanted), set(finds))


def _word_list(store: VectorStore, words: WordMatches | None, where: dict | None, ids: list[str] | None,
               allowed: Selection | None) -> list[tuple[str, float]]:
    """The word channel's images that pass the filter, (id, word relevance) best first."""
    if words is None or not words.scores:
        return []
    ranked = words.ranked()
    keep: set[str] | None = None
    if ids is not None:
        keep = set(ids)
    elif allowed is not None:
        keep = allowed.keep([i for i, _ in ranked])
    if where is not None:
        keep = store.passing([i for i, _ in ranked if keep is None or i in keep], where)
    return ranked if keep is None else [(i, w) for i, w in ranked if i in keep]


def _bound(q: Query, cap_hits, vis_hits) -> float:
    """The highest hybrid score an image returned by neither channel could have.

    A channel not asked adds 0: its weight is 0, or the query has no words (caption cosine 0,
    relevance 0 as every caption floor is above 0).
    """
    cap = float(rank.relevance(cap_hits[-1].cosine, q.caption_cal)) if cap_hits else 0.0
    vis = float(rank.relevance(vis_hits[-1].cosine, q.visual_cal)) if vis_hits else 0.0
    return q.alpha * cap + (1 - q.alpha) * vis


def _score(q: Query, cap: _Lane, vis: _Lane, words: dict[str, float] | None = None) -> Candidates:
    """Both channels' cosines of every candidate -> relevance -> hybrid, fused with the word channel
    (rank.fuse), best first.

    A candidate's cosine on its own channel comes from the index, on the other from the vector its
    lane read (a word-channel find: both from the vectors the lanes read for it). An image without a
    vector on either channel is still half-written and left out.
    """
    words = words or {}
    vis_cos = {**_cosines(q.visual, cap.other), **vis.cosines}
    if q.caption is None:  # no words: 0 for every image whose caption vector exists
        cap_cos = dict.fromkeys(vis.other, 0.0)
    else:
        cap_cos = {**_cosines(q.caption, vis.other), **cap.cosines}
    ids = [i for i in dict.fromkeys([*cap.cosines, *vis.cosines, *cap.found]) if i in cap_cos and i in vis_cos]
    cap_arr = np.array([cap_cos[i] for i in ids], np.float64)
    vis_arr = np.array([vis_cos[i] for i in ids], np.float64)
    word_arr = np.array([words.get(i, 0.0) for i in ids], np.float64)
    cap_rel, vis_rel = rank.relevance(cap_arr, q.caption_cal), rank.relevance(vis_arr, q.visual_cal)
    total = rank.fuse(rank.hybrid(cap_rel, vis_rel, q.alpha), word_arr)
    order = rank.top_k(total, len(ids))
    return Candidates([ids[i] for i in order], total[order], cap_rel[order], vis_rel[order], cap_arr[order],
                      vis_arr[order], word_arr[order])


def _cosines(vector: np.ndarray, stored: dict[str, np.ndarray]) -> dict[str, float]:
    """Exact cosines of `vector` with the `stored` vectors."""
    if not stored:
        return {}
    return dict(zip(stored, rank.cosine(vector, np.stack(list(stored.values()))).tolist()))
