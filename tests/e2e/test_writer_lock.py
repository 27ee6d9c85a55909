"""Models run outside the writer lock (library/indexer.py): while one visitor's upload is being
captioned, another person's caption edit, tag edit or delete goes through at once (issue 21,
finding 6: a third visitor's edit waited 16 s behind two uploads). Writes still take turns."""

from __future__ import annotations

import io
import threading
import time

from PIL import Image

from visual_search import SearchEngine


class HeldCaptioner:
    """The tiny test captioner, held at the door until the test lets it go: a slow model, on demand."""

    def __init__(self, real) -> None:
        self.real, self.identity = real, real.identity
        self.entered, self.go = threading.Event(), threading.Event()

    def caption(self, images):
        self.entered.set()
        assert self.go.wait(60), "the test never let the model go"
        return self.real.caption(images)


def _png(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 40), (shade, 90, 255 - shade)).save(out, "PNG")
    return out.getvalue()


def test_edits_do_not_wait_for_another_upload_s_models(settings, shared_models):
    held = HeldCaptioner(shared_models["captioner"])
    engine = SearchEngine(settings, captioner=held, text_encoder=shared_models["text_encoder"],
                          clip=shared_models["clip"])
    held.go.set()
    first, second = engine.index_bytes([("kept.png", _png(10)), ("gone.png", _png(200))]).added
    held.go.clear()
    held.entered.clear()

    upload = threading.Thread(target=engine.index_bytes, args=([(f"new-{i}.png", _png(20 + i)) for i in range(3)],))
    upload.start()
    try:
        assert held.entered.wait(60)  # the upload's model work has begun, and is held there
        started = time.perf_counter()
        engine.set_caption(first.id, "a hand-written caption")
        engine.set_tags(first.id, ["mine"])
        engine.remove(second.id)
        waited = time.perf_counter() - started
        assert waited < 5, f"edits waited {waited:.1f} s for another upload's models"
        assert engine.get(first.id).caption == "a hand-written caption" and engine.count() == 1
    finally:
        held.go.set()
        upload.join(60)
    assert not upload.is_alive() and engine.count() == 4  # the upload landed after the edits
