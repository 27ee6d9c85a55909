"""What a search may return: every filter clause, declared once.

A clause says everything about itself in one `Clause` entry of CLAUSES: the stored column it reads
(and how a record fills it, so images indexed before the clause existed are backfilled by
`reconcile` from their records, without a model), how a person types it (parse), how the index
expresses it (a Chroma `where`), how the in-memory table masks it (search/facets.py), its CLI flag
(`--key`), its URL parameter and API name (`key`), and its control in the app's filter row.
The store, the table, the CLI, the web filter row and links all read CLAUSES.

A filtered search ranks every image that passes, not the survivors of an unfiltered candidate
pool: a filter is decided inside each channel's query, in memory or by Chroma, with the same
result (tests/unit/test_facets.py). To add a clause: one entry below (and a COLUMNS entry if it reads
a new column), plus its test rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from ..errors import InvalidQuery
from ..records import ImageRecord
from ..times import parse_iso, timestamp

if TYPE_CHECKING:
    from .facets import Facets

MAX_NAME_CHARS = 200
MAX_TAG_CHARS = 60
MAX_TAGS = 20  # per image: a person's, or the file's keywords before the model's (library/metadata.py)
ORIENTATIONS = ("portrait", "landscape", "square")
SQUARE_TOLERANCE = 0.02  # width and height within 2% of each other count as square


def normalise_tag(tag: str) -> str:
    """Tags compare case- and space-insensitively: ` Red  Car ` is `red car`."""
    return " ".join(str(tag).lower().split())[:MAX_TAG_CHARS]


def taken_ts(taken_at: object, added_at: object) -> int:
    """When a photo was taken, by its own clock read as if it were UTC (library/metadata.py: a camera's
    offset, when known, is not applied, so a date filter means the day the photo says), else when it
    was added: the time "newest first" and the taken filters compare."""
    value = parse_iso(taken_at) if taken_at else None
    return int(value.replace(tzinfo=timezone.utc).timestamp()) if value else timestamp(added_at)


def orientation(width: int, height: int) -> str:
    if not width or not height:
        return ""
    if abs(width - height) <= SQUARE_TOLERANCE * max(width, height):
        return "square"
    return "portrait" if height > width else "landscape"


@dataclass(frozen=True)
class Column:
    """A filterable field stored beside each vector: "int" (a number), "category" (one word), "set"
    (words, e.g. tags) or "text" (searched by substring)."""

    kind: str
    of: Callable[[ImageRecord], object]  # the value written for a record
    from_meta: Callable[[Mapping], object]  # the value read back (older metadata may lack the key)


COLUMNS: dict[str, Column] = {
    "added_ts": Column("int", lambda r: timestamp(r.added_at),
                       lambda m: int(m["added_ts"]) if m.get("added_ts") is not None else timestamp(m.get("added_at"))),
    "taken_ts": Column("int", lambda r: taken_ts(r.taken_at, r.added_at),
                       lambda m: int(m["taken_ts"]) if m.get("taken_ts") is not None
                       else taken_ts(m.get("taken_at"), m.get("added_at"))),
    "owner": Column("category", lambda r: r.owner, lambda m: str(m.get("owner") or "")),
    "tags": Column("set", lambda r: list(r.tags),
                   lambda m: frozenset(normalise_tag(t) for t in m.get("tags") or ())),
    "name": Column("text", lambda r: r.filename.lower(), lambda m: str(m.get("filename") or "").lower()),
    "orientation": Column("category", lambda r: orientation(r.width, r.height),
                          lambda m: str(m.get("orientation") or orientation(m.get("width") or 0, m.get("height") or 0))),
}
STORED = ("added_ts", "taken_ts", "owner", "tags", "orientation")  # the columns a Chroma `where` reads (name: the document)


@dataclass(frozen=True)
class Clause:
    key: str  # the SearchFilter field, CLI flag (--key), URL parameter and API argument
    label: str  # the app's control
    help: str  # the CLI's help
    column: str
    parse: Callable[[str], object]  # what a person typed -> the value ("" / None: no clause); raises InvalidQuery
    where: Callable[[object], dict] | None  # the Chroma `where`; None: Chroma cannot say it (ids instead)
    mask: Callable[["Facets", object], np.ndarray]  # the rows of the in-memory table that pass
    choices: tuple[str, ...] = ()  # a fixed set of values: a dropdown in the app, choices on the CLI
    placeholder: str = ""
    metavar: str = "TEXT"  # the CLI's name for the value


def _day(what: str) -> Callable[[str], datetime | None]:
    def parse(text: str) -> datetime | None:
        raw = (text or "").strip()
        if not raw:
            return None
        value = parse_iso(raw)
        if value is None:
            raise InvalidQuery(f"The '{what}' date must be an ISO date such as 2026-12-01, got {raw[:40]!r}.")
        return value
    return parse


def _name(text: str) -> str:
    value = (text or "").strip()
    if len(value) > MAX_NAME_CHARS:
        raise InvalidQuery(f"The file-name filter is limited to {MAX_NAME_CHARS} characters.")
    return value


def _choice(key: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = (text or "").strip().lower()
        if value and value not in choices:
            raise InvalidQuery(f"The {key} must be one of {', '.join(choices)}, got {value[:40]!r}.")
        return value
    return parse


CLAUSES: tuple[Clause, ...] = (
    Clause("after", "Added after", "only images added on or after this ISO date (UTC)", "added_ts", _day("after"),
           lambda v: {"added_ts": {"$gte": int(v.timestamp())}},
           lambda t, v: t.compare("added_ts", np.greater_equal, int(v.timestamp())), placeholder="2026-12-01",
           metavar="DATE"),
    Clause("before", "Added before", "only images added before this ISO date (UTC)", "added_ts", _day("before"),
           lambda v: {"added_ts": {"$lt": int(v.timestamp())}},
           lambda t, v: t.compare("added_ts", np.less, int(v.timestamp())), placeholder="2026-12-31",
           metavar="DATE"),
    Clause("name", "File name contains", "only images whose file name contains TEXT (any case)", "name", _name,
           None, lambda t, v: t.contains("name", v.lower())),
    Clause("tag", "Tag", "only images with this tag", "tags", lambda text: normalise_tag(text or ""),
           lambda v: {"tags": {"$contains": v}}, lambda t, v: t.has("tags", v), metavar="TAG"),
    Clause("orientation", "Shape", "only portrait, landscape or square images", "orientation",
           _choice("orientation", ORIENTATIONS), lambda v: {"orientation": v},
           lambda t, v: t.equals("orientation", v), choices=ORIENTATIONS),
    # After the others, so that positional API arguments written before them keep their meaning.
    Clause("taken_after", "Taken after (else added)",
           "only images taken on or after this ISO date, by the photo's own clock (EXIF); one the file "
           "gives no date for counts from when it was added", "taken_ts", _day("taken after"),
           lambda v: {"taken_ts": {"$gte": int(v.timestamp())}},
           lambda t, v: t.compare("taken_ts", np.greater_equal, int(v.timestamp())), placeholder="2019-07-01",
           metavar="DATE"),
    Clause("taken_before", "Taken before (else added)",
           "only images taken before this ISO date, by the photo's own clock (EXIF), else added before it",
           "taken_ts", _day("taken before"),
           lambda v: {"taken_ts": {"$lt": int(v.timestamp())}},
           lambda t, v: t.compare("taken_ts", np.less, int(v.timestamp())), placeholder="2019-08-01",
           metavar="DATE"),
)
DATE_COLUMNS = ("added_ts", "taken_ts")
BY_KEY = {c.key: c for c in CLAUSES}


class SearchFilter:
    """Every clause is optional; an empty filter lets everything through. `after` is inclusive, `before`
    exclusive: a bare date for `before` means "before that day begins", so `--after 2026-12-01 --before
    2026-12-02` is exactly the first of December (UTC). `taken_after` and `taken_before` read the same
    way, on the photo's own clock (`taken_ts`)."""

    __slots__ = ("values",)

    def __init__(self, **values: object) -> None:
        unknown = set(values) - BY_KEY.keys()
        if unknown:
            raise TypeError(f"unknown filter clause(s): {', '.join(sorted(unknown))}")
        object.__setattr__(self, "values", {k: v for k, v in values.items() if v not in (None, "")})

    def __getattr__(self, key: str) -> object:
        if key in BY_KEY:
            return self.values.get(key, None if BY_KEY[key].column in DATE_COLUMNS else "")
        raise AttributeError(key)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("a SearchFilter is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchFilter) and self.values == other.values

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self.values.items())))

    def __repr__(self) -> str:
        return f"SearchFilter({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"

    @classmethod
    def parse(cls, *texts: str | None, **named: str | None) -> "SearchFilter":
        """From what a person typed (CLI options, the app's filter row, a link), by clause key or in the
        order of CLAUSES; raises InvalidQuery."""
        given = {**dict(zip((c.key for c in CLAUSES), texts)), **named}
        f = cls(**{key: BY_KEY[key].parse(text or "") for key, text in given.items()})
        for after, before in (("after", "before"), ("taken_after", "taken_before")):
            if f.values.get(after) and f.values.get(before) and f.values[after] >= f.values[before]:
                raise InvalidQuery(f"The '{after.replace('_', ' ')}' date must be earlier than the "
                                   f"'{before.replace('_', ' ')}' date.")
        return f

    @property
    def active(self) -> bool:
        return bool(self.values)

    @property
    def needs_ids(self) -> bool:
        """True when a clause cannot be said as a Chroma `where` (the file-name substring)."""
        return any(BY_KEY[k].where is None for k in self.values)

    def where(self) -> dict | None:
        """The Chroma `where` for the clauses metadata can express; None when there are none."""
        clauses = [c.where(self.values[c.key]) for c in CLAUSES if c.key in self.values and c.where is not None]
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def mask(self, table: "Facets") -> np.ndarray | None:
        """The table rows every clause lets through (None: no clause)."""
        masks = [c.mask(table, self.values[c.key]) for c in CLAUSES if c.key in self.values]
        return np.logical_and.reduce(masks) if masks else None

    def substring(self) -> str:
        """The clause Chroma decides by ids: the file-name substring."""
        return str(self.values.get("name", ""))
