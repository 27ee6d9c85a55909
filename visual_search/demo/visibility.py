"""Who sees and who may change which image, in a public demo (README "Public demo", SECURITY.md).

Every image has an owner: "" for the shared collection, else the visitor who uploaded it. A visitor
sees the shared collection and their own uploads. The rule is `owners_seen`; its three forms
stand beside it: `where_visible` (a Chroma `where`), `visible_mask` (the in-memory table's mask)
and `visible` (one record). Another visitor's upload is never a result, nor counted. `visitor=None` means no
restriction at all: local use, the CLI, maintenance jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import NotAllowed, NotFound
from ..records import ImageRecord

if TYPE_CHECKING:
    from ..search.facets import Facets

SHARED = ""
# No sign-in named: the library cannot know whether this deployment offers one (web/visitors.py does).
REFUSED = ("The shared collection is read-only in this demo: only a curator may edit or delete it. "
           "You can edit and delete your own uploads.")


def owners_seen(visitor: str) -> tuple[str, ...]:
    """THE rule: the owners whose images `visitor` sees (a visitor of nobody, "": the shared collection)."""
    return (SHARED, visitor) if visitor else (SHARED,)


def where_visible(visitor: str) -> dict:
    """The rule as a Chroma `where`, inside each query of a one-off process."""
    owners = owners_seen(visitor)
    return {"owner": {"$in": list(owners)}} if len(owners) > 1 else {"owner": owners[0]}


def where_for(visitor: str | None, where: dict | None = None) -> dict | None:
    """`where` (any other filter, e.g. a search filter) ANDed with the visibility rule of `visitor`."""
    rule = None if visitor is None else where_visible(visitor)
    if rule is None or where is None:
        return rule or where
    return {"$and": [rule, where]}


def visible_mask(table: "Facets", visitor: str) -> np.ndarray:
    """The rule as a mask over the in-memory table (search/facets.py)."""
    return table.equals("owner", *owners_seen(visitor))


def visible(record: ImageRecord, visitor: str | None) -> bool:
    """The rule for one record."""
    return visitor is None or record.owner in owners_seen(visitor)


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
