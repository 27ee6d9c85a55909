"""Consistency checker for one data dir: the catalog and both Chroma collections must agree.

Used by the crash, hostile-input and Chroma-server tests and benchmarks/load.py. It opens a Chroma
client as the settings say (embedded or HTTP); in a process that writes through an engine it shares
that engine's client. Do not check a data dir that another live process is writing.

What "consistent" means (the invariant the engine's write order + reconcile must restore):
  * catalog: no temp files, no original without a record, no record without its original, every
    record's id is the sha256 of its original (content-addressed: no duplicates possible);
  * each collection holds exactly the catalog's ids, once each, with finite unit vectors, and its
    nearest-neighbour index reaches every distinct stored vector (HNSW cannot return every copy of
    an exactly repeated vector, e.g. of identical captions, so copies count once);
  * the caption collection's document and metadata match the record (caption, file name, size...);
  * both collections keep each record's owner ("" : shared; a public-demo visitor's id otherwise);
  * the catalog is the truth: each record keeps its vectors for the current models (under
    `caption|<identity>` / `visual|<identity>`), and the index holds exactly those vectors;
  * optionally (pass `clip`), each visual vector is CLIP's vector of that id's stored original.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np

from visual_search.stages.visual import ClipEncoder
from visual_search.config import CLIP_TEXT_MODEL, Settings
from visual_search.library.catalog import image_id as image_id_of
from visual_search.stages.store import CAPTION, VISUAL, collection_name, make_client


def identities(settings: Settings) -> dict[str, str]:
    """The model identity of each channel for these settings (model ids as configured)."""
    visual_identity = ClipEncoder.identity_of(settings.clip_model, settings.clip_pretrained)
    text = f"clip-text:{visual_identity}" if settings.text_model == CLIP_TEXT_MODEL else settings.text_model
    return {CAPTION: f"{settings.caption_model}|{text}", VISUAL: visual_identity}


def collection_names(settings: Settings) -> dict[str, str]:
    """The names the engine gives its collections for these settings."""
    return {kind: collection_name(kind, identity) for kind, identity in identities(settings).items()}


def catalog_files(settings: Settings) -> dict[str, str]:
    """Relative path -> sha256 of every file under the data dir's images/ (a snapshot of the catalog)."""
    root = settings.images_dir
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def snapshot(settings: Settings, client=None) -> dict:
    """Everything a write can change: catalog files with their hashes, ids in every collection."""
    client = client or make_client(settings)
    cols = {c.name: sorted(client.get_collection(c.name).get(include=[])["ids"]) for c in client.list_collections()}
    return {"catalog": catalog_files(settings), "collections": cols}


def _catalog_problems(root: Path) -> tuple[dict[str, dict], list[str]]:
    problems: list[str] = []
    records: dict[str, dict] = {}
    originals: dict[str, Path] = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_dir():
            if path.parent != root or len(path.name) != 2:
                problems.append(f"unexpected folder in catalog: {path.name}")
            continue
        rel = path.relative_to(root)
        stem = path.name.split(".", 1)[0]
        if path.name.startswith(".tmp-"):
            problems.append(f"temp file left behind: {rel}")
        elif len(stem) != 64 or path.parent.name != stem[:2]:
            problems.append(f"stray file in catalog: {rel}")
        elif path.suffix == ".json":
            try:
                records[stem] = json.loads(path.read_text())
            except ValueError:
                problems.append(f"unreadable record: {rel}")
        elif stem in originals:
            problems.append(f"two originals for one id: {rel}, {originals[stem].name}")
        else:
            originals[stem] = path
    for image_id, doc in records.items():
        original = root / image_id[:2] / str(doc.get("path", ""))
        if doc.get("id") != image_id:
            problems.append(f"record {image_id[:12]} names another id {str(doc.get('id'))[:12]}")
        if not original.is_file() or original.parent != root / image_id[:2]:
            problems.append(f"record {image_id[:12]} points to a missing original {doc.get('path')!r}")
        elif image_id_of(hashlib.sha256(original.read_bytes()).hexdigest(), doc.get("owner") or "") != image_id:
            problems.append(f"original of {image_id[:12]} does not hash to its id")
    for image_id in originals.keys() - records.keys():
        problems.append(f"original without a record: {originals[image_id].name}")
    return records, problems


def _stored_vector(doc: dict, key: str) -> np.ndarray | None:
    text = (doc.get("vectors") or {}).get(key)
    return None if text is None else np.frombuffer(base64.b64decode(text), "<f4").astype(np.float64)


def _collection_problems(col, kind: str, identity: str, records: dict[str, dict]) -> tuple[dict, list[str]]:
    problems: list[str] = []
    got = col.get(include=["embeddings", "metadatas", "documents"])
    ids = list(got["ids"])
    if len(ids) != len(set(ids)):
        problems.append(f"{kind}: duplicate ids")
    have = set(ids)
    for missing in sorted(records.keys() - have):
        problems.append(f"{kind}: no vector for catalogued image {missing[:12]}")
    for extra in sorted(have - records.keys()):
        problems.append(f"{kind}: vector {extra[:12]} has no image in the catalog")
    vectors = {i: np.asarray(e, np.float64) for i, e in zip(ids, got["embeddings"] if ids else [])}
    for i, v in vectors.items():
        if not np.all(np.isfinite(v)) or abs(np.linalg.norm(v) - 1.0) > 1e-3:
            problems.append(f"{kind}: vector {i[:12]} is not a finite unit vector")
        if i in records:
            kept = _stored_vector(records[i], f"{kind}|{identity}")
            if kept is None:
                problems.append(f"{kind}: the record of {i[:12]} keeps no vector for the current models")
            elif kept.shape != v.shape or float(np.abs(kept - v).max()) > 1e-5:
                problems.append(f"{kind}: the index's vector of {i[:12]} is not the one its record keeps")
    if ids:  # the nearest-neighbour index must agree with the stored rows
        probe = next(iter(vectors.values()))
        hits = col.query(query_embeddings=[probe.astype(np.float32)], n_results=len(ids), include=[])["ids"][0]
        # HNSW cannot reach every copy of an exactly repeated vector (same caption -> same vector): it
        # returns some of them. So every distinct vector must be reachable, not every id.
        groups: dict[tuple, set[str]] = {}
        for i, v in vectors.items():
            groups.setdefault(tuple(np.round(v, 4)), set()).add(i)
        unreachable = [g for g in groups.values() if not g & set(hits)]
        if len(hits) != len(set(hits)) or not set(hits) <= have or unreachable:
            problems.append(f"{kind}: the vector index returns {len(hits)} ids for {len(groups)} distinct vectors; "
                            f"{sum(map(len, unreachable))} stored vectors cannot be found")
    for i, meta in zip(ids, got["metadatas"] or []):
        if i in records and (meta or {}).get("owner") != records[i].get("owner", ""):
            problems.append(f"{kind}: owner of {i[:12]} is {(meta or {}).get('owner')!r}, "
                            f"record {records[i].get('owner', '')!r}")
    if kind == CAPTION:
        for i, meta, doc in zip(ids, got["metadatas"] or [], got["documents"] or []):
            rec = records.get(i)
            if rec is None:
                continue
            meta = meta or {}
            if doc != rec.get("caption"):
                problems.append(f"caption: stored caption of {i[:12]} is {doc!r}, record {rec.get('caption')!r}")
            for key in ("filename", "width", "height", "added_at", "caption_model", "caption_edited"):
                if meta.get(key) != rec.get(key):
                    problems.append(f"caption: metadata {key} of {i[:12]} is {meta.get(key)!r}, "
                                    f"record {rec.get(key)!r}")
            if meta.get("ext") != Path(str(rec.get("path", ""))).suffix:
                problems.append(f"caption: metadata ext of {i[:12]} does not match the original")
    return vectors, problems


def problems(settings: Settings, client=None, clip=None) -> list[str]:
    """Every way the data dir breaks the invariant (empty list: consistent)."""
    records, found = _catalog_problems(settings.images_dir)
    client = client or make_client(settings)
    existing = {c.name for c in client.list_collections()}
    names = collection_names(settings)
    for kind, identity in identities(settings).items():
        name = names[kind]
        if name not in existing:
            if records:
                found.append(f"{kind}: collection {name} is missing")
            continue
        vectors, more = _collection_problems(client.get_collection(name), kind, identity, records)
        found += more
        if kind == VISUAL and clip is not None and vectors:
            found += _visual_vectors_match(settings, records, vectors, clip)
    return found


def _visual_vectors_match(settings, records, vectors, clip) -> list[str]:
    """Each visual vector must be CLIP's vector of that id's stored original (not another image's)."""
    from visual_search.library.intake import load_image

    ids = [i for i in vectors if i in records]
    root = settings.images_dir
    images = [load_image((root / i[:2] / records[i]["path"]).read_bytes(), "x", 1 << 62, settings.max_pixels).image
              for i in ids]
    expected = clip.encode_images(images)
    return [
        f"visual: vector of {i[:12]} is not the vector of its original"
        for i, e in zip(ids, expected)
        if float(np.dot(e, vectors[i])) < 0.999
    ]
