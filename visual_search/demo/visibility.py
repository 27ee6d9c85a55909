"""Who sees and who may change which image, in a public demo (README "Public demo", SECURITY.md).

Every image has an owner: "" for the shared collection, else the visitor who uploaded it. A visitor
sees the shared collection and their own uploads. The rule has three forms, kept together here and
in facets.py: `where_visible` (a Chroma `where`, inside each query of a one-off process),
`Facets.select` (the same rule as a mask, where the engine has loaded its facets) and `visible`
(one record). Another visitor's upload is never a result, nor counted. `visitor=None` means no
restriction at all: local use, the CLI, maintenance jobs.
"""

from __future__ import annotations

from ..errors import NotAllowed, NotFound
from ..records import ImageRecord

SHARED = ""
REFUSED = ("The shared collection is read-only in this demo: sign in as a curator to edit or delete it. "
           "You can edit and delete your own uploads.")


def where_visible(visitor: str) -> dict:
    """The Chroma `where` of what `visitor` may see ("" : a visitor of nobody, the shared collection only)."""
    return {"owner": {"$in": [SHARED, visitor]}} if visitor else {"owner": SHARED}


def where_for(visitor: str | None, where: dict | None = None) -> dict | None:
    """`where` (any other filter, e.g. a search filter) ANDed with the visibility rule of `visitor`."""
    rule = None if visitor is None else where_visible(visitor)
    if rule is None or where is None:
        return rule or where
    return {"$and": [rule, where]}


def visible(record: ImageRecord, visitor: str | None) -> bool:
    return visitor is None or record.owner in (SHARED, visitor)


def check_visible(record: ImageRecord, visitor: str | None, asked: str) -> ImageRecord:
    """Another visitor's upload answers exactly as an id nobody has indexed."""
    if not visible(record, visitor):
        raise NotFound(f"No indexed image has the id {asked[:80]!r}.")
    return record


def check_may_change(record: ImageRecord, visitor: str | None, admin: bool = False) -> None:
    """A visitor may change their own uploads; the shared collection needs a signed-in curator."""
    if visitor is None or (visitor and record.owner == visitor) or (admin and record.owner == SHARED):
        return
    check_visible(record, visitor, record.id)
    raise NotAllowed(REFUSED)
