"""The word channel: the words an image carries, looked up as typed, beside the meaning of stages 1-4.

Semantic search guesses when a person types a word the picture itself carries: BLIP does not read
the "BAKERY" on a shop sign, and the file "black cat at night.jpg" is found by "black cat" only if
its caption happens to say so. So each image's words go into a full-text index too:

    field         from                                   weight (how much a match there counts)
    text          the words printed in the picture (OCR)  1.0
    name          the file name, split at _ - . , camel case and digits   1.0
    title, description, keywords   what the owner typed (IPTC/XMP)        1.0
    tags          CLIP's tags or a person's               0.8  (CLIP's are a guess)
    place         from GPS ("Lisbon, Lisbon, Portugal")   1.0
    camera        EXIF make and model                     1.0
    caption       stage 1's sentence                      0: highlighted, never counted

The caption is the caption channel's: its meaning is scored there already. Counting its words here
as well (weight 0.4 was tried) raised R@1 at caption weight 0.5 from 0.900 to 0.950 on the sample
captions, but only by counting the caption twice, and it made the channel's cost grow with how
common caption words are: at 10,000 images with words shared as captions share them, a search went
from 15 to 115 ms (7.7x; `python benchmarks/word_channel.py`). So a word channel find is an image
carrying the query's words where the meaning cannot see them.

The index is SQLite's FTS5 (Python's own sqlite3), tokenised `porter unicode61 remove_diacritics 2`:
"Dogs" finds "dog", "café" finds "cafe". It is a file of the data dir, never the truth: the vector
store writes it with every record it writes (stages/store.py) and the reconciler rebuilds it from
the catalog (library/reconcile.py).

A query's terms are its words, less a short list of English stop words ("a dog" looks for "dog"),
and each "quoted phrase" as one term that MUST appear (in one field, words in that order). Each term
weighs its BM25 inverse document frequency over the images the person may see,
idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5)), so a rare word counts more than a common one. The
word relevance of an image, in [0, 1], is the share of the query's weight it carries, each term
counted in the best field holding it:

    words(image) = sum_t idf(t) * weight(best field of t) / sum_t idf(t)

BM25's term-frequency and length parts are left out on purpose: a word printed once on a sign is as
much evidence as one printed twice, and a long description must not dilute a file name. How words
and meaning make one relevance is stage 4's (stages/rank.py `fuse`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..records import ImageRecord, Matched

# (column, what a person calls it, weight); the order is the FTS5 table's columns.
FIELDS: tuple[tuple[str, str, float], ...] = (
    ("text", "text in picture", 1.0),
    ("name", "file name", 1.0),
    ("title", "title", 1.0),
    ("description", "description", 1.0),
    ("keywords", "keywords", 1.0),
    ("tags", "tags", 0.8),
    ("place", "place", 1.0),
    ("camera", "camera", 1.0),
    ("caption", "caption", 0.0),
)
# the fields by weight, best first: one FTS5 query each per term (WordIndex._holding)
_BY_WEIGHT = tuple((w, tuple(n for n, _, x in FIELDS if x == w)) for w in sorted({x for _, _, x in FIELDS}, reverse=True))
COLUMNS = tuple(name for name, _, _ in FIELDS)
LABELS = {name: label for name, label, _ in FIELDS}
WEIGHTS = {name: weight for name, _, weight in FIELDS}
MAX_FIELD_CHARS = 20_000  # indexed per field; the record keeps what it keeps
MAX_TERMS = 16  # words of a query looked up; the rest are only meaning
TOKENIZER = "porter unicode61 remove_diacritics 2"
SCHEMA_VERSION = "1"
STOP_WORDS = frozenset(
    "a an the of in on at to for from by with without and or but not no is are was were be been being it its "
    "this that these those there here some any all very just than then so as into onto over under near up "
    "down out off about photo photos picture pictures image images".split()
)

_RUN = re.compile(r"[^\W_]+")  # letters and digits: what unicode61 keeps as one token at most
_PIECE = re.compile(r"\d+|[^\W\d_]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_PHRASE = re.compile(r'"([^"]*)"')


def token_spans(text: str) -> list[tuple[int, int]]:
    """Where each indexed token lies in `text` (NFC): runs of letters and digits, split again where
    letters meet digits and at camel case ("IMG_2041BlackCat" -> IMG, 2041, Black, Cat)."""
    spans: list[tuple[int, int]] = []
    for run in _RUN.finditer(text):
        for piece in _PIECE.finditer(run.group()):
            start = run.start() + piece.start()
            cuts = [0, *(m.start() for m in _CAMEL.finditer(piece.group())), len(piece.group())]
            spans += [(start + a, start + b) for a, b in zip(cuts, cuts[1:]) if b > a]
    return spans


def tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text)
    return [text[a:b] for a, b in token_spans(text)]


def _clean(text: str) -> str:
    """Text SQLite and JSON can hold: a lone surrogate (an undecodable byte of a file name or EXIF
    field) becomes U+FFFD, NUL a space."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")


def _fold(text: str) -> str:
    """Lower case without diacritics, as the index compares words ("Bogotá" -> "bogota")."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def document(record: ImageRecord) -> dict[str, str]:
    """The display text of each field of one image (highlights are offsets into these)."""
    return {name: _clean(text) for name, text in _fields(record).items()}


def _fields(record: ImageRecord) -> dict[str, str]:
    return {
        "text": record.ocr_text,
        "name": record.filename,
        "title": record.title,
        "description": record.description,
        "keywords": ", ".join(record.keywords),
        "tags": ", ".join(record.tags),
        "place": record.place,
        "camera": record.camera,
        "caption": record.caption,
    }


def _indexed(text: str) -> str:
    """What FTS5 indexes for a field: exactly the tokens of `token_spans`, one space apart, so the
    token offsets it reports point into the display text."""
    return " ".join(tokens(unicodedata.normalize("NFC", text)[:MAX_FIELD_CHARS]))


def digest(record: ImageRecord) -> str:
    """Changes when anything indexed for the image changes (the reconciler compares it)."""
    doc = {"v": SCHEMA_VERSION, "owner": record.owner, **document(record)}
    return hashlib.sha1(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Terms:
    """A query's terms: words (stop words left out) and quoted phrases (each must appear)."""

    words: tuple[str, ...]
    phrases: tuple[tuple[str, ...], ...]

    @property
    def empty(self) -> bool:
        return not self.words and not self.phrases


def parse(query: str) -> Terms:
    phrases = tuple(t for t in (tuple(w.lower() for w in tokens(p)) for p in _PHRASE.findall(query)) if t)
    rest = _PHRASE.sub(" ", query).replace('"', " ")
    words = [w.lower() for w in tokens(rest)]
    kept = tuple(dict.fromkeys(w for w in words if w not in STOP_WORDS))
    return Terms(kept[:MAX_TERMS], phrases[:MAX_TERMS])


@dataclass
class WordMatches:
    """What the word channel found for one query, among the images the person may see."""

    terms: Terms
    scores: dict[str, float] = field(default_factory=dict)  # image id -> word relevance in (0, 1]
    required: set[str] | None = None  # the images holding every quoted phrase; None: the query has none
    stems: tuple[str, ...] = ()  # the query's words as the index stores them
    phrase_stems: tuple[tuple[str, ...], ...] = ()
    stemmer: Callable[[Sequence[str]], list[str]] | None = None  # the index's (for the highlights)

    def ranked(self) -> list[tuple[str, float]]:
        """(id, word relevance), best first; equal scores by id, so the order is stable."""
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))

    def matched(self, record: ImageRecord) -> tuple[Matched, ...]:
        """Which words of each field matched, as spans of the field's display text: worked out for the
        few results shown, not for every image found (the lookup only asks which fields hold a term)."""
        if record.id not in self.scores or self.stemmer is None:
            return ()
        doc, out = document(record), []
        words = set(self.stems)
        # a stem keeps its word's first letters (porter changes endings): a field without any of them
        # holds no match, and is not tokenised and stemmed for nothing
        starts = {st[:3] for st in (*words, *(w for p in self.phrase_stems for w in p))}
        for name in COLUMNS:
            text = unicodedata.normalize("NFC", doc[name])[:MAX_FIELD_CHARS]
            folded = _fold(text)
            if not any(start in folded for start in starts):
                continue
            spans = token_spans(text)
            stems = self.stemmer([text[a:b].lower() for a, b in spans])
            hit = {i for i, st in enumerate(stems) if st in words}
            for phrase in self.phrase_stems:
                n = len(phrase)
                hit.update(j for i in range(len(stems) - n + 1) if tuple(stems[i:i + n]) == phrase
                           for j in range(i, i + n))
            if hit:
                out.append(Matched(name, LABELS[name], text, tuple(spans[i] for i in sorted(hit))))
        return tuple(out)


def idf(n: int, total: int) -> float:
    """BM25's inverse document frequency of a term held by `n` of `total` images."""
    return math.log(1.0 + (total - n + 0.5) / (n + 0.5))


class WordIndex:
    """The full-text index of one data dir (`words.sqlite`), safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ready = False

    # ---- connections: one per thread, made anew in a forked child ------------------------------
    def _db(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # the catalog is the truth; this is rebuilt from it
            with self._lock:
                if not self._ready:
                    self._create(db)
                    self._ready = True
            local.db, local.pid, local.scratch = db, os.getpid(), None
        return local.db

    def _create(self, db: sqlite3.Connection) -> None:
        cols = ", ".join(COLUMNS)
        version = None
        try:
            version = db.execute("SELECT value FROM about WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            pass
        if version is not None and version[0] != SCHEMA_VERSION:  # another layout: rebuilt by the reconciler
            db.executescript("DROP TABLE IF EXISTS words; DROP TABLE IF EXISTS words_instance; "
                             "DROP TABLE IF EXISTS images; DROP TABLE IF EXISTS about;")
        db.executescript(f"""
            CREATE TABLE IF NOT EXISTS about(key TEXT PRIMARY KEY, value TEXT);
            INSERT OR REPLACE INTO about VALUES ('schema', '{SCHEMA_VERSION}');
            CREATE TABLE IF NOT EXISTS images(rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                                              owner TEXT NOT NULL, digest TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS images_owner ON images(owner);
            CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5({cols}, tokenize='{TOKENIZER}');
            CREATE VIRTUAL TABLE IF NOT EXISTS words_instance USING fts5vocab(words, instance);
        """)

    def _stems(self, words: Sequence[str]) -> list[str]:
        """Each word as the index stores it (porter stem, lower case, no diacritics)."""
        local = self._local
        if getattr(local, "scratch", None) is None:
            scratch = sqlite3.connect(":memory:", check_same_thread=False)
            scratch.executescript(f"""
                CREATE VIRTUAL TABLE s USING fts5(t, tokenize='{TOKENIZER}');
                CREATE VIRTUAL TABLE sv USING fts5vocab(s, instance);""")
            local.scratch = scratch
        scratch = local.scratch
        scratch.execute("DELETE FROM s")
        scratch.execute("INSERT INTO s(rowid, t) VALUES (1, ?)", (" ".join(words),))
        by_offset = dict(scratch.execute("SELECT offset, term FROM sv").fetchall())
        return [by_offset.get(i, w) for i, w in enumerate(words)]

    # ---- writes ------------------------------------------------------------------------------------
    def put(self, records: Iterable[ImageRecord]) -> None:
        """Index (or index again) these images; an unchanged one costs a lookup."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for r in records:
                d = digest(r)
                row = db.execute("SELECT rowid, digest FROM images WHERE id = ?", (r.id,)).fetchone()
                if row is not None and row[1] == d:
                    continue
                if row is not None:
                    db.execute("DELETE FROM words WHERE rowid = ?", (row[0],))
                    db.execute("UPDATE images SET owner = ?, digest = ? WHERE rowid = ?", (r.owner, d, row[0]))
                    rowid = row[0]
                else:
                    rowid = db.execute("INSERT INTO images(id, owner, digest) VALUES (?, ?, ?)",
                                       (r.id, r.owner, d)).lastrowid
                doc = document(r)
                db.execute(f"INSERT INTO words(rowid, {', '.join(COLUMNS)}) VALUES (?{', ?' * len(COLUMNS)})",
                           (rowid, *(_indexed(doc[c]) for c in COLUMNS)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete(self, ids: Iterable[str]) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for image_id in ids:
                row = db.execute("SELECT rowid FROM images WHERE id = ?", (image_id,)).fetchone()
                if row is not None:
                    db.execute("DELETE FROM words WHERE rowid = ?", (row[0],))
                    db.execute("DELETE FROM images WHERE rowid = ?", (row[0],))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def digests(self) -> dict[str, str]:
        """id -> digest of what is indexed for it (the reconciler compares them with the catalog)."""
        return dict(self._db().execute("SELECT id, digest FROM images").fetchall())

    def count(self) -> int:
        return self._db().execute("SELECT count(*) FROM images").fetchone()[0]

    # ---- lookup ------------------------------------------------------------------------------------
    def lookup(self, query: str, owners: tuple[str, ...] | None = None) -> WordMatches | None:
        """The images whose words match `query`, among those of `owners` (every image when None);
        None when the query has no term to look up (only stop words)."""
        terms = parse(query)
        if terms.empty:
            return None
        db = self._db()
        visible, args = ("", ()) if owners is None else (
            f" AND i.owner IN ({', '.join('?' * len(owners))})", tuple(owners))
        total = db.execute(f"SELECT count(*) FROM images i WHERE 1{visible}", args).fetchone()[0]
        weight_sum = 0.0
        gained: dict[str, float] = {}
        required: set[str] | None = None
        for term, phrase in [*(((w,), False) for w in terms.words), *((p, True) for p in terms.phrases)]:
            held = self._holding(db, term, visible, args, phrase)
            weight = idf(len(held), total)
            weight_sum += weight
            for image_id, best in held.items():
                gained[image_id] = gained.get(image_id, 0.0) + weight * best
            if phrase:
                required = set(held) if required is None else required & set(held)
        scores = {i: min(1.0, g / weight_sum) for i, g in gained.items() if g > 0} if weight_sum > 0 else {}
        if required is not None:
            scores = {i: s for i, s in scores.items() if i in required}
        stems = self._stems([*terms.words, *(w for p in terms.phrases for w in p)])
        word_stems, rest = tuple(stems[: len(terms.words)]), stems[len(terms.words):]
        phrase_stems = []
        for phrase_words in terms.phrases:
            phrase_stems.append(tuple(rest[: len(phrase_words)]))
            rest = rest[len(phrase_words):]
        return WordMatches(terms, scores, required, word_stems, tuple(phrase_stems), self._stems)

    @staticmethod
    def _holding(db: sqlite3.Connection, term: tuple[str, ...], visible: str, args: tuple,
                 phrase: bool) -> dict[str, float]:
        """id -> the weight of the best field holding `term` (a word, or a phrase: its words in order),
        one FTS5 query per weight, best first: no per-occurrence row reaches Python. A phrase is looked
        for in the caption too (weight 0: it must match there, it scores nothing)."""
        quoted = '"' + " ".join(w.replace('"', '""') for w in term) + '"'
        best: dict[str, float] = {}
        for weight, cols in _BY_WEIGHT:
            if weight == 0 and not phrase:
                continue
            rows = db.execute(f"SELECT i.id FROM words w JOIN images i ON i.rowid = w.rowid "
                              f"WHERE words MATCH ?{visible}", (f"{{{' '.join(cols)}}} : {quoted}", *args))
            for (image_id,) in rows:
                best.setdefault(image_id, weight)
        return best
