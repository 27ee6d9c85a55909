"""What a search may return: added after / before a date, file name contains, carries a tag.

A filtered search ranks every image that passes, not the survivors of an unfiltered candidate
pool. A filter is decided in one of two places, with the same result (tests/test_facets.py):
  * in memory, in a long-running engine: `Facets.select` (facets.py) turns it into a mask, and
    retrieval.py keeps the neighbours that pass, asking each channel deep enough;
  * by Chroma, in a one-off process (the CLI): `where()` on the metadata both collections keep
    (store.py), inside each channel's query; a file-name substring, which a metadata `where`
    cannot say, becomes the exact ids whose file name contains it (store.name_ids, `needs_ids`).

To add a clause later, add a field, one line in `where()` and one in `Facets.select` (plus the
column it reads, if it is a new field).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import InvalidQuery
from ..times import parse_iso

MAX_NAME_CHARS = 200
MAX_TAG_CHARS = 60


def parse_day(text: str | None, what: str) -> datetime | None:
    """An ISO date (`2026-12-01`) or date-time; a naive value is taken as UTC. None/blank -> None."""
    raw = (text or "").strip()
    if not raw:
        return None
    value = parse_iso(raw)
    if value is None:
        raise InvalidQuery(f"The '{what}' date must be an ISO date such as 2026-12-01, got {raw[:40]!r}.")
    return value


def normalise_tag(tag: str) -> str:
    """Tags compare case- and space-insensitively: ` Red  Car ` is `red car`."""
    return " ".join(str(tag).lower().split())[:MAX_TAG_CHARS]


@dataclass(frozen=True)
class SearchFilter:
    """Every clause is optional; an empty filter lets everything through.

    `after` is inclusive, `before` exclusive. A bare date for `before` means "before that day
    begins": `--after 2026-12-01 --before 2026-12-02` is exactly the first of December (UTC).
    """

    after: datetime | None = None
    before: datetime | None = None
    name: str = ""  # case-insensitive substring of the file name
    tag: str = ""

    @classmethod
    def parse(cls, after: str | None = None, before: str | None = None, name: str | None = None,
              tag: str | None = None) -> "SearchFilter":
        """From what a person typed (CLI options, the app's filter row); raises InvalidQuery."""
        f = cls(parse_day(after, "after"), parse_day(before, "before"), (name or "").strip(), normalise_tag(tag or ""))
        if len(f.name) > MAX_NAME_CHARS:
            raise InvalidQuery(f"The file-name filter is limited to {MAX_NAME_CHARS} characters.")
        if f.after and f.before and f.after >= f.before:
            raise InvalidQuery("The 'after' date must be earlier than the 'before' date.")
        return f

    @property
    def active(self) -> bool:
        return bool(self.after or self.before or self.name or self.tag)

    @property
    def needs_ids(self) -> bool:
        """True when the filter has a clause `where()` cannot express (the name substring)."""
        return bool(self.name)

    def where(self) -> dict | None:
        """The Chroma `where` for the clauses metadata can express; None when there are none."""
        clauses: list[dict] = []
        if self.after:
            clauses.append({"added_ts": {"$gte": int(self.after.timestamp())}})
        if self.before:
            clauses.append({"added_ts": {"$lt": int(self.before.timestamp())}})
        if self.tag:
            clauses.append({"tags": {"$contains": self.tag}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}
