"""Model choice is data (models/registry.py): a new captioner is one class and one registry line,
loaded by name from configuration; an unknown family is refused with the names that exist."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from visual_search import ModelLoadError, SearchEngine
from visual_search.models import registry


class ColourCaptioner:
    """A captioner family of its own: names an image's dominant colour from a word list it loads."""

    def __init__(self, folder: str) -> None:
        self.identity = folder
        self.words = Path(folder, "colours.txt").read_text().split()  # red green blue

    def caption(self, images):
        means = [im.convert("RGB").resize((1, 1)).getpixel((0, 0)) for im in images]
        return [f"a mostly {self.words[max(range(3), key=mean.__getitem__)]} picture" for mean in means]


def _png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, "PNG")
    return out.getvalue()


def test_a_new_captioner_is_one_class_and_one_line(settings, shared_models, tmp_path, monkeypatch):
    folder = tmp_path / "colour-captioner"
    folder.mkdir()
    (folder / "colours.txt").write_text("red green blue")
    monkeypatch.setitem(registry.CAPTIONERS, "colour", lambda s: ColourCaptioner(s.caption_model))
    engine = SearchEngine(replace(settings, caption_family="colour", caption_model=str(folder)),
                          text_encoder=shared_models["text_encoder"], clip=shared_models["clip"])
    report = engine.index_bytes([("r.png", _png((200, 10, 10))), ("b.png", _png((10, 10, 200)))])
    assert sorted(a.caption for a in report.added) == ["a mostly blue picture", "a mostly red picture"]
    assert engine.caption_identity.startswith(str(folder))  # its identity names the collection
    top = engine.search("blue", k=1, alpha=1.0, min_relevance=0.0).results[0]
    assert top.record.filename == "b.png"


def test_an_unknown_family_is_refused_with_the_known_ones(settings):
    engine = SearchEngine(replace(settings, caption_family="nope"))
    with pytest.raises(ModelLoadError, match="VS_CAPTION_FAMILY='nope'.*blip"):
        engine.index_bytes([("r.png", _png((200, 10, 10)))])


def test_the_text_family_follows_the_documented_shorthand(settings):
    assert settings.family("text") == "sentence-transformers"
    assert replace(settings, text_model="clip").family("text") == "clip"
    assert replace(settings, text_family="clip").clip_text_captions
