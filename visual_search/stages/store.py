"""Stage 2 - storing understanding: vectors in Chroma (persistent on disk, or a Chroma server).

Two collections per model combination:
  * caption collection: the caption vector of each image, the caption as document, and the
    record's fields as metadata (what a rebuild compares and `sort="newest"` reads; results
    themselves are read from the catalog, the truth);
  * visual collection: the CLIP image vector of each image, with the metadata a search filters by
    (every stored column of search/filters.py), so that both channels filter inside their own
    query, and the file name (lower case) as document, for the name filter.
Both keep each image's owner (demo/visibility.py), so a query can filter by owner inside Chroma. The
store also keeps those filterable fields in memory (search/facets.py), in step with its own writes, once
`load_facets` has read them: a filter is then decided without a Chroma `where`.
Their names are derived from the model identities, so vectors of different models never mix: a
model change opens fresh, empty collections, which the engine fills from the catalog.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar
from urllib.parse import urlparse

import numpy as np

from ..config import Settings
from ..errors import StoreUnavailable
from ..search.facets import Facet, Facets
from ..search.filters import COLUMNS, STORED
from ..records import ImageRecord
from .words import WordIndex

CAPTION, VISUAL = "caption", "visual"
MAX_BATCH = 5000  # Chroma refuses batches above 5461
GET_PAGE = 5000  # rows read per get (store._get)
SERVER_TIMEOUT_S = 30.0  # a Chroma server that stops answering fails a request after this, not never
_T = TypeVar("_T")


def collection_name(kind: str, identity: str) -> str:
    """`vs-caption-all-minilm-l6-v2-1a2b3c4d5e6f`: readable, unique per identity, Chroma-legal."""
    slug = re.sub(r"[^a-z0-9]+", "-", identity.rsplit("/", 1)[-1].lower()).strip("-")[:40] or "model"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"vs-{kind}-{slug}-{digest}"


@dataclass(frozen=True)
class Hit:
    id: str
    cosine: float


def make_client(settings: Settings):
    """An embedded PersistentClient under VS_DATA_DIR, or an HttpClient when VS_CHROMA_URL is set."""
    import chromadb
    import httpx
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if not settings.chroma_url:
        path = settings.chroma_dir
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    url = urlparse(settings.chroma_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise StoreUnavailable(f"VS_CHROMA_URL must look like http://host:port, got {settings.chroma_url!r}")
    port = url.port or (443 if url.scheme == "https" else 8000)
    try:
        # chromadb's HttpClient has no timeout and talks to the server in its constructor: a server
        # that accepts connections but never answers would block us forever. Probe it, bounded,
        # then bound every later request the same way.
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        httpx.get(f"{url.scheme}://{host}:{port}/api/v2/heartbeat", timeout=SERVER_TIMEOUT_S).raise_for_status()
        client = chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https", settings=chroma_settings)
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = httpx.Timeout(SERVER_TIMEOUT_S)
        client.heartbeat()
    except Exception as exc:
        raise StoreUnavailable(f"cannot reach the Chroma server at {settings.chroma_url}: {_reason(exc)}") from exc
    return client


def _reason(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__)[:200]


class VectorStore:
    def __init__(self, client, caption_identity: str, visual_identity: str, where: str = "",
                 words: WordIndex | None = None) -> None:
        self.where = where  # for error messages: the data dir or the server URL
        self._client = client
        self.facets = Facets()  # empty until load_facets(); then updated by every write below
        self.words = words  # the word channel's full-text index (stages/words.py): every record write below too
        self.names = {CAPTION: collection_name(CAPTION, caption_identity), VISUAL: collection_name(VISUAL, visual_identity)}
        self._cols = {
            kind: self._guard(
                lambda kind=kind, ident=ident: client.get_or_create_collection(
                    self.names[kind],
                    embedding_function=None,
                    metadata={"hnsw:space": "cosine", "identity": ident[:500]},
                )
            )
            for kind, ident in ((CAPTION, caption_identity), (VISUAL, visual_identity))
        }

    def _guard(self, call: Callable[[], _T]) -> _T:
        """Turn connection failures into StoreUnavailable with a message a person can act on."""
        try:
            return call()
        except Exception as exc:
            if _is_connection_error(exc):
                raise StoreUnavailable(f"the vector store at {self.where} is unavailable: {_reason(exc)}") from exc
            raise

    def _get(self, kind: str, include: list[str], ids: list[str] | None = None) -> dict[str, list]:
        """`get` of every image (or of `ids`) with `include`, GET_PAGE rows a call: in one call, SQLite
        refuses the statement that reads more than ~32k rows' fields ("too many SQL variables")."""
        col = self._cols[kind]
        out: dict[str, list] = {"ids": [], **{key: [] for key in include}}
        for lo in range(0, len(ids), GET_PAGE) if ids is not None else itertools.count(0, GET_PAGE):
            page = dict(ids=ids[lo : lo + GET_PAGE]) if ids is not None else dict(limit=GET_PAGE, offset=lo)
            got = self._guard(lambda: col.get(include=include, **page))
            out["ids"] += got["ids"]
            for key in include:
                out[key] += list(got[key] if got[key] is not None else [None] * len(got["ids"]))
            if ids is None and len(got["ids"]) < GET_PAGE:
                break
        return out

    def count(self) -> int:
        return self._guard(self._cols[CAPTION].count)

    def ids(self, kind: str, where: dict | None = None) -> set[str]:
        col = self._cols[kind]
        return set(self._guard(lambda: col.get(where=where, include=[])["ids"]))

    def captions(self) -> dict[str, str]:
        got = self._get(CAPTION, ["documents"])
        return dict(zip(got["ids"], got["documents"]))

    def stored_metadata(self, kind: str) -> dict[str, dict]:
        """The metadata stored beside each vector of one channel ({} for a vector stored without any)."""
        got = self._get(kind, ["metadatas"])
        return {i: dict(m or {}) for i, m in zip(got["ids"], got["metadatas"])}

    @staticmethod
    def stale(kind: str, record: ImageRecord, stored: dict) -> bool:
        """The filterable fields stored on `kind`'s collection differ from what `record` says (a field
        added after the image was indexed, an owner written before owners were stored)."""
        return any(stored.get(k) != v for k, v in _filterable(record).items())

    def count_where(self, where: dict | None) -> int:
        """Images matching `where` (all when None), e.g. those one visitor may see."""
        if where is None:
            return self.count()
        col = self._cols[CAPTION]
        return len(self._guard(lambda: col.get(where=where, include=[])["ids"]))

    def upsert_visual(self, items: list[ImageRecord] | list[str], vectors: np.ndarray) -> None:
        """Records (vectors with their filterable metadata, and the file name in lower case as the document, for
        a name filter) or bare ids (vectors only: not found by a filter)."""
        col = self._cols[VISUAL]
        for lo in range(0, len(items), MAX_BATCH):
            batch = items[lo : lo + MAX_BATCH]
            records = [r for r in batch if isinstance(r, ImageRecord)]
            self._guard(lambda: col.upsert(ids=[getattr(r, "id", r) for r in batch],
                                           embeddings=np.asarray(vectors[lo : lo + MAX_BATCH], np.float32),
                                           metadatas=[_filterable(r) for r in records] if records else None,
                                           documents=[_name_document(r) for r in records] if records else None))

    def update_metadata(self, records: list[ImageRecord]) -> None:
        """New tags (or other record fields) on both collections, vectors untouched."""
        for kind, shape in ((CAPTION, _to_metadata), (VISUAL, _filterable)):
            col = self._cols[kind]
            self._guard(lambda col=col, shape=shape: col.update(
                ids=[r.id for r in records], metadatas=[_cleared(shape(r)) for r in records]))
        self.facets.put(map(_facet, records))
        if self.words is not None:
            self.words.put(records)

    def upsert_captions(self, records: list[ImageRecord], vectors: np.ndarray) -> None:
        col = self._cols[CAPTION]
        for lo in range(0, len(records), MAX_BATCH):
            batch = records[lo : lo + MAX_BATCH]
            self._guard(
                lambda: col.upsert(
                    ids=[r.id for r in batch],
                    embeddings=np.asarray(vectors[lo : lo + MAX_BATCH], np.float32),
                    documents=[r.caption for r in batch],
                    metadatas=[_to_metadata(r) for r in batch],
                )
            )
        self.facets.put(map(_facet, records))
        if self.words is not None:
            self.words.put(records)

    def query(self, kind: str, vector: np.ndarray, n: int, where: dict | None = None,
              ids: list[str] | None = None) -> list[Hit]:
        """The n nearest on one channel, best first; only among `ids` and images matching `where` when given."""
        col = self._cols[kind]
        if ids is not None and not ids:
            return []
        got = self._guard(
            lambda: col.query(query_embeddings=[np.asarray(vector, np.float32)], n_results=n, where=where, ids=ids,
                              include=["distances"])
        )
        return [Hit(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0])]

    def embeddings(self, kind: str, ids: Iterable[str]) -> dict[str, np.ndarray]:
        ids = list(ids)
        if not ids:
            return {}
        got = self._get(kind, ["embeddings"], ids)
        if not got["ids"]:  # none of them has a vector on this channel (yet)
            return {}
        # one conversion of every row (Chroma hands back float64), not one per row: a search reads ~80
        return dict(zip(got["ids"], np.asarray(got["embeddings"], np.float32)))

    def records(self, ids: Iterable[str] | None = None) -> dict[str, dict]:
        """Metadata of the given ids (all when None), as stored beside the caption vectors."""
        ids = None if ids is None else list(ids)
        if ids == []:
            return {}
        got = self._get(CAPTION, ["metadatas", "documents"], ids)
        return {
            i: {**(m or {}), "caption": doc} for i, m, doc in zip(got["ids"], got["metadatas"], got["documents"])
        }

    def passing(self, ids: list[str], where: dict) -> set[str]:
        """Which of `ids` match `where` (the word channel's finds under a filter Chroma decides)."""
        col = self._cols[CAPTION]
        out: set[str] = set()
        for lo in range(0, len(ids), GET_PAGE):
            page = ids[lo : lo + GET_PAGE]
            out.update(self._guard(lambda: col.get(ids=page, where=where, include=[])["ids"]))
        return out

    def name_ids(self, name: str, where: dict | None = None) -> list[str]:
        """Ids of the images whose file name contains `name` (any case) and that match `where`.

        Chroma's document `$contains` (its full-text index) on the visual collection, whose document
        is the lower-cased file name: exact substring matching without reading every record.
        """
        col = self._cols[VISUAL]
        got = self._guard(lambda: col.get(where=where, where_document={"$contains": name.lower()}, include=[]))
        return list(got["ids"])

    def delete(self, ids: list[str]) -> None:
        if ids:
            self.facets.remove(ids)  # first: a search that runs meanwhile must not count them
            for col in self._cols.values():
                self._guard(lambda col=col: col.delete(ids=ids))
            if self.words is not None:
                self.words.delete(ids)

    def load_facets(self) -> None:
        """Read every image's filterable fields into `facets` (one pass over the caption collection's metadata)."""
        got = self._get(CAPTION, ["metadatas"])
        self.facets.load(Facet.from_metadata(i, m or {}) for i, m in zip(got["ids"], got["metadatas"]))

    def lookup_facets(self, ids: list[str]) -> list[Facet]:
        """The facets of images the table did not know (written by another process), added to it."""
        found = [Facet.from_metadata(i, m) for i, m in self.records(ids).items()]
        self.facets.put(found)
        return found


def _to_metadata(r: ImageRecord) -> dict:
    return {
        "filename": r.filename,
        "width": r.width,
        "height": r.height,
        "added_at": r.added_at,
        "ext": "." + r.path.rsplit(".", 1)[-1] if "." in r.path else "",
        "caption_model": r.caption_model,
        "caption_edited": r.caption_edited,
        "tags_model": r.tags_model,
        "tags_edited": r.tags_edited,
        **_filterable(r),
    }


def _filterable(r: ImageRecord) -> dict:
    """What a query's `where` reads: every stored filter column (search/filters.py) and the owner
    (demo/visibility.py). Chroma refuses an empty list: no tags, no key."""
    values = {name: COLUMNS[name].of(r) for name in STORED}
    return {k: v for k, v in values.items() if v != []}


def _facet(r: ImageRecord) -> Facet:
    return Facet.from_metadata(r.id, _to_metadata(r))


def _name_document(r: ImageRecord) -> str:
    return r.filename.lower() or " "  # Chroma refuses an empty document


def _cleared(meta: dict) -> dict:
    """For `update`: a key set to None is removed, so tags a person deleted do not linger."""
    return {"tags": None, **meta}


def _is_connection_error(exc: BaseException) -> bool:
    import httpx

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
