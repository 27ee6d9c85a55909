"""Plain data passed between the stages, the engine, the CLI and the UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ImageRecord:
    """One indexed image: what the catalog keeps beside the stored original."""

    id: str  # sha256 of the original bytes (scoped to the owner for a visitor's upload: library/catalog.image_id)
    path: str  # the stored original under VS_DATA_DIR/images/
    filename: str  # the user's file name, for display only (never used as a path)
    caption: str
    width: int  # after EXIF orientation
    height: int
    added_at: str  # ISO 8601, UTC
    caption_model: str = ""
    caption_edited: bool = False
    tags: tuple[str, ...] = ()  # CLIP zero-shot against the tag vocabulary (stages/tags.py), or a person's
    tags_model: str = ""  # the CLIP identity that chose them; "" when none did
    tags_edited: bool = False  # a person's tags are never recomputed
    owner: str = ""  # "" : the shared collection; else the public-demo visitor who uploaded it (demo/visibility.py)
    # Words printed in the picture (stages/ocr.py), or a person's correction of them.
    ocr_text: str = ""
    ocr_model: str = ""  # the OCR identity that read them; "" when none did
    ocr_edited: bool = False  # a person's text is never re-read
    # What the file itself says (library/metadata.py), each "" or empty when it says nothing trustworthy.
    taken_at: str = ""  # ISO 8601 from EXIF DateTimeOriginal, with its UTC offset when the file gives one
    place: str = ""  # from GPS, offline: "city, region, country"
    latitude: float | None = None
    longitude: float | None = None
    camera: str = ""  # EXIF make and model
    title: str = ""  # IPTC/XMP, as the owner typed it in Lightroom, Apple Photos, digiKam...
    description: str = ""
    details_edited: bool = False  # a person's title and description are never re-read from the file
    keywords: tuple[str, ...] = ()
    metadata_notes: tuple[str, ...] = ()  # what the file claimed that could not be trusted, and was left out
    metadata_version: int = 0  # the reader that filled the fields above (0: never read: backfilled)

    def __post_init__(self) -> None:
        for name in ("tags", "keywords", "metadata_notes"):  # JSON brings a list
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Matched:
    """A query's words found in one field of an image (the word channel, stages/words.py)."""

    field: str  # "text", "name", "caption", ...
    label: str  # what a person calls it: "text in picture", "file name", ...
    text: str  # the field as shown
    spans: tuple[tuple[int, int], ...]  # [start, end) of each matched word in `text`

    def to_dict(self) -> dict:
        return {"field": self.field, "label": self.label, "text": self.text,
                "words": [self.text[a:b] for a, b in self.spans], "spans": [list(s) for s in self.spans]}

    def marked(self, before: str, after: str, width: int = 90, escape=lambda s: s) -> str:
        """`label: text` with the matched words between `before` and `after` ("**" for markdown; words
        next to each other marked as one), cut to about `width` characters around the matches at word
        boundaries (a page of printed text shows where it matched)."""
        spans: list[list[int]] = []
        for a, b in self.spans:
            if spans and not self.text[spans[-1][1]:a].strip():
                spans[-1][1] = b
            else:
                spans.append([a, b])
        text = self.text
        start = max(0, spans[0][0] - width // 3) if spans else 0
        end = min(len(text), max(spans[-1][1] if spans else 0, start + width))
        while 0 < start < len(text) and not text[start - 1].isspace():
            start += 1
        while end < len(text) and not text[end].isspace():
            end += 1
        out, at = [], start
        for a, b in spans:
            if a < at or b > end:
                continue
            out += [escape(text[at:a]), before, escape(text[a:b]), after]
            at = b
        out.append(escape(text[at:end]))
        body = " ".join("".join(out).split())  # line breaks of printed text read as spaces
        return f"{self.label}: {'…' * (start > 0)}{body}{'…' * (end < len(text))}"


@dataclass(frozen=True)
class SearchResult:
    """One ranked hit. `relevance` is in [0, 1]; the channel scores are too (see stages/rank.py)."""

    record: ImageRecord
    relevance: float
    caption_score: float
    visual_score: float
    caption_cosine: float
    visual_cosine: float
    word_score: float = 0.0  # the word channel's relevance in [0, 1] (stages/words.py)
    matched: tuple[Matched, ...] = ()  # why it matched, word by word

    def to_dict(self) -> dict:
        r = self.record
        return {
            "id": r.id,
            "path": r.path,
            "filename": r.filename,
            "caption": r.caption,
            "added_at": r.added_at,
            "tags": list(r.tags),
            "ocr_text": r.ocr_text,
            "taken_at": r.taken_at,
            "place": r.place,
            "camera": r.camera,
            "relevance": round(self.relevance, 4),
            "caption_score": round(self.caption_score, 4),
            "visual_score": round(self.visual_score, 4),
            "word_score": round(self.word_score, 4),
            "matched": [m.to_dict() for m in self.matched],
        }


@dataclass
class SearchResponse:
    query: str
    results: list[SearchResult]
    elapsed_ms: float
    alpha: float
    offset: int = 0
    hidden: int = 0  # results of this page left out for scoring below the minimum relevance
    min_relevance: float = 0.0  # the cut-off applied (0 for images asked for by name: search/searcher.py)
    # Images the filter lets through: 0 when none does, so an empty answer is the filter's, not the
    # words'; the exact count where it is known cheaply; None without a filter or when unknown.
    passing: int | None = None
    # The query's "quoted phrases" when no image the person may see holds them all (then no result).
    missing_phrases: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "results": [r.to_dict() for r in self.results],
            "offset": self.offset,
            "hidden": self.hidden,
            "min_relevance": self.min_relevance,
            "passing": self.passing,
            "missing_phrases": list(self.missing_phrases),
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


@dataclass(frozen=True)
class Added:
    id: str
    path: str  # the input as the user named it
    caption: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Duplicate:
    id: str
    path: str


@dataclass(frozen=True)
class Failed:
    path: str
    error: str


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class IndexReport:
    """What one `index` call did, input by input."""

    added: list[Added] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # files in a folder that are not images at all
    refused: list[Skipped] = field(default_factory=list)  # past a public demo visitor's cap: nothing written
    count: int = 0  # images in the index afterwards

    def to_dict(self) -> dict:
        return {
            "added": [{"id": a.id, "path": a.path, "caption": a.caption} for a in self.added],
            "duplicates": [{"id": d.id, "path": d.path} for d in self.duplicates],
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "refused": [{"path": r.path, "reason": r.reason} for r in self.refused],
            "count": self.count,
        }
