"""Make the index agree with the catalog: after a crash, a model change, or a missing index folder.

The catalog is the truth; Chroma is an index rebuilt from the vectors stored in the catalog. Only
images without vectors for the current models (or not captioned by the current captioner) run a
model, on the stored originals, never the user's files. Stored metadata that lacks a field the
current code writes (a filter clause added later, search/filters.py) is written again from the
record: no model runs for that either. Nor for what the files say (library/metadata.py): a record
read by an older metadata reader (or every record, when asked) is read again from its stored original.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..models.memory import release_freed_memory
from ..records import ImageRecord
from ..stages import words
from ..stages.store import CAPTION, VISUAL
from . import ocr
from .intake import load_image
from .metadata import METADATA_VERSION, apply, read_metadata, with_keywords
from .pipeline import ordered_map
from .state import Progress, State

REBUILD_GROUP = 500  # stored vectors copied into the index per Chroma call while rebuilding it
REPAIR_GROUP = 8  # stored images run through the models together


class Reconciler:
    def __init__(self, state: State) -> None:
        self.s = state

    def reconcile(self, progress: Progress | None = None, metadata: bool = False) -> int:
        """Returns how many images went into the index again. `metadata`: read every stored original's
        metadata again, not only those read by an older reader."""
        with self.s.writer():
            return self._run(progress, metadata)

    def read_text(self, progress: Progress | None = None) -> int:
        """`reindex --ocr`: the text in the picture read again where the OCR model changed (library/ocr.py)."""
        return ocr.read_again(self.s, progress)

    def _run(self, progress: Progress | None, metadata: bool = False) -> int:
        s = self.s
        s.writer.reconciled = True
        entries = {r.id: (r, keys) for r, keys in s.catalog.entries(sweep=True)}
        self._read_metadata(entries, progress, metadata)
        store = s.store
        caption_meta, visual_meta = store.stored_metadata(CAPTION), store.stored_metadata(VISUAL)
        have_caption, have_visual = set(caption_meta), set(visual_meta)
        store.delete(sorted((have_caption | have_visual) - entries.keys()))
        self._adopt_index_vectors(entries, have_caption, have_visual)
        stored = store.captions() if have_caption else {}
        todo = [r for r, _ in entries.values()
                if r.id not in have_visual or r.id not in have_caption or stored.get(r.id) != r.caption
                or store.stale(CAPTION, r, caption_meta[r.id]) or store.stale(VISUAL, r, visual_meta[r.id])]
        cap_key, vis_key = s.keys()
        caption_model = s.models.caption_model
        ready = [r for r in todo if {cap_key, vis_key} <= entries[r.id][1]
                 and (r.caption_edited or r.caption_model == caption_model)]
        ready_ids = {r.id for r in ready}
        compute = [r for r in todo if r.id not in ready_ids]
        done = 0
        for start in range(0, len(ready), REBUILD_GROUP):
            self._index_stored(ready[start : start + REBUILD_GROUP])
            done += len(ready[start : start + REBUILD_GROUP])
            if progress:
                progress(done, len(todo), "rebuilding the index from the catalog")
        groups = [compute[start : start + REPAIR_GROUP] for start in range(0, len(compute), REPAIR_GROUP)]
        with ThreadPoolExecutor(1, thread_name_prefix="vs-repair") as pool:
            # the next group's originals are read and decoded while this one is in the models
            decoded = ordered_map(pool, self._decode, groups, ahead=2)
            for group, images in zip(groups, decoded):
                self._repair(group, images)
                done += len(group)
                if progress:
                    progress(done, len(todo), "re-indexing stored images")
        self._agree_words(entries)
        return len(todo)

    def _read_metadata(self, entries: dict[str, tuple[ImageRecord, frozenset[str]]], progress: Progress | None,
                       everything: bool) -> None:
        """What the files say, read again from the stored originals (bytes and headers: no model runs)
        for records read by an older reader. The catalog is written here; the index's copies of the
        changed fields (the taken time, tags) are then stale, and the steps after this one write them
        from the records, as for a new filter column, and the word index follows (_agree_words)."""
        old = [r for r, _ in entries.values() if everything or r.metadata_version < METADATA_VERSION]
        for done, record in enumerate(old, 1):
            try:
                data = Path(record.path).read_bytes()
            except OSError:  # the sweep handles a record without its original
                continue
            updated = apply(record, read_metadata(data))
            if updated != record:
                self.s.catalog.put_record(updated)  # its vectors are kept
                entries[record.id] = (updated, entries[record.id][1])
            if progress:
                progress(done, len(old), "reading what the files say (date, place, camera)")

    def _agree_words(self, entries: dict[str, tuple[ImageRecord, frozenset[str]]]) -> None:
        """The word index (stages/words.py) agrees with the catalog: what it lacks or holds stale is
        written again from the records, what the catalog no longer has is dropped. No model runs."""
        index = self.s.store.words
        if index is None:
            return
        have = index.digests()
        index.delete(sorted(have.keys() - entries.keys()))
        stale = [r for r, _ in entries.values() if have.get(r.id) != words.digest(r)]
        for start in range(0, len(stale), REBUILD_GROUP):
            index.put(stale[start : start + REBUILD_GROUP])

    def _adopt_index_vectors(self, entries: dict[str, tuple[ImageRecord, frozenset[str]]], have_caption: set[str],
                             have_visual: set[str]) -> None:
        """Records written before the catalog kept vectors: copy the index's vectors into them once."""
        s = self.s
        cap_key, vis_key = s.keys()
        caption_model = s.models.caption_model
        for kind, key, have in ((CAPTION, cap_key, have_caption), (VISUAL, vis_key, have_visual)):
            lacking = [i for i, (r, keys) in entries.items() if key not in keys and i in have
                       and (kind == VISUAL or r.caption_edited or r.caption_model == caption_model)]
            for start in range(0, len(lacking), REBUILD_GROUP):
                got = s.store.embeddings(kind, lacking[start : start + REBUILD_GROUP])
                if kind == CAPTION:  # only a vector of the record's own words is worth keeping
                    docs = s.store.records(got)
                    got = {i: v for i, v in got.items() if docs.get(i, {}).get("caption") == entries[i][0].caption}
                for image_id, vector in got.items():
                    record, keys = entries[image_id]
                    s.catalog.put_record(record, {**s.catalog.vectors(image_id), key: vector})
                    entries[image_id] = (record, keys | {key})

    def _index_stored(self, records: list[ImageRecord]) -> None:
        """Put catalogued images into the index from their stored vectors: no model runs."""
        cap_key, vis_key = self.s.keys()
        vectors = {r.id: self.s.catalog.vectors(r.id) for r in records}
        self.s.store.upsert_visual(records, np.stack([vectors[r.id][vis_key] for r in records]))
        self.s.store.upsert_captions(records, np.stack([vectors[r.id][cap_key] for r in records]))

    def _decode(self, records: list[ImageRecord]) -> list:
        """The stored originals of a group, decoded at working size (a worker thread, ahead of the models)."""
        return [load_image(Path(r.path).read_bytes(), r.filename, 1 << 62, self.s.settings.max_pixels).image
                for r in records]

    def _repair(self, records: list[ImageRecord], images: list) -> None:
        """Images whose vectors for the current models are missing: run the models on the stored originals."""
        s = self.s
        cap_key, vis_key = s.keys()
        caption_model = s.models.caption_model
        stored = {r.id: s.catalog.vectors(r.id) for r in records}
        recaption = [not r.caption_edited and r.caption_model != caption_model for r in records]
        need_visual = any(vis_key not in stored[r.id] for r in records)
        got = s.compute.understand(images, [None if redo else r.caption for r, redo in zip(records, recaption)],
                                   visual=need_visual)
        fresh = []
        for i, r in enumerate(records):
            updated = replace(r, caption=got.captions[i], caption_model=caption_model) if recaption[i] else r
            kept = {k: v for k, v in stored[r.id].items() if not (recaption[i] and k.startswith(CAPTION + "|"))}
            kept[cap_key] = got.caption_vectors[i]
            if got.visual_vectors is not None:
                kept[vis_key] = got.visual_vectors[i]
            fresh.append((updated, kept))
        retagged = self._retag([r for r, _ in fresh], np.stack([v[vis_key] for _, v in fresh]))
        fresh = [(r, kept) for r, (_, kept) in zip(retagged, fresh)]
        for r, kept in fresh:
            s.catalog.put_record(r, kept)
        s.store.upsert_visual([r for r, _ in fresh], np.stack([v[vis_key] for _, v in fresh]))
        s.store.upsert_captions([r for r, _ in fresh], np.stack([v[cap_key] for _, v in fresh]))
        release_freed_memory()

    def _retag(self, records: list[ImageRecord], vectors: np.ndarray) -> list[ImageRecord]:
        """Tags chosen by another CLIP model are chosen again (a person's tags are kept, and so are the
        file's keywords)."""
        identity = self.s.models.visual_identity
        return [replace(r, tags=with_keywords(tags, r.keywords), tags_model=identity)
                if not r.tags_edited and r.tags_model != identity else r
                for r, tags in zip(records, self.s.tagger.tag(vectors))]
