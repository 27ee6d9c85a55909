"""Image inputs that take a file uploaded to this server, and nothing else.

gradio's `Image` input also takes a `data:` URL inside the JSON of a queue join, decodes it in full and
re-encodes it before any handler runs (gradio 6.31 `image_utils.preprocess_image`): a 190 KB payload
can make the server decode 144 megapixels, past every limit of the app, and JSON bodies have no size
limit. Its payload (`ImageData`) is also taken without gradio's check that a path is an upload. So
here a payload is refused, before gradio reads a byte of it, unless it names a file of at most
VS_MAX_FILE_MB inside gradio's upload folder (which `/gradio_api/upload` fills, within VS_MAX_FILE_MB)
or a stored original or thumbnail (the app puts one in the box when a visitor picks an indexed image:
the thumbnail for a format a browser cannot show, such as HEIC; its name is its sha256, which only
someone holding the same file can compute).
With `type="filepath"` gradio then reads only the header; the engine checks the pixels
(VS_MAX_PIXELS) before it decodes any (library/intake.py).
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from .serving import ORIGINAL

NOT_A_DATA_URL = "Upload the image as a file: this app does not take images sent inside the request (data: URLs)."
NOT_AN_UPLOAD = "Upload the image as a file: this app only reads files uploaded to it."
TOO_BIG = "The image is {mb:.1f} MB; this app takes images of up to {max_mb:g} MB."


def uploaded_image(max_bytes: int, *stored: str | os.PathLike, **kwargs: Any) -> gr.Image:
    """`gr.Image(type="filepath")` that refuses anything but a file uploaded to this server or one of
    the `stored` folders' sha256-named files (see above). Its `preprocess` is wrapped on the instance: a
    subclass of a gradio component makes gradio write a `.pyi` file beside this module at import."""
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    preprocess, folders = image.preprocess, [os.path.realpath(f) for f in stored]

    def checked(payload: Any) -> Any:
        if payload is not None:
            url, path = getattr(payload, "url", None), getattr(payload, "path", None)
            check_uploaded(url, path, max_bytes, *folders)
        return preprocess(payload)

    image.preprocess = checked
    return image


def check_uploaded(url: str | None, path: str | None, max_bytes: int, *stored: str) -> None:
    """Raise gr.Error unless `path` is a file of at most `max_bytes` in gradio's upload folder (or a
    sha256-named file of a `stored` folder)."""
    if url and url.strip().lower().startswith("data:"):
        raise gr.Error(NOT_A_DATA_URL)
    target = os.path.realpath(path) if path else ""
    uploaded = target.startswith(os.path.realpath(get_upload_folder()) + os.sep)
    original = any(target.startswith(folder + os.sep) for folder in stored) and _is_original(target)
    if not (uploaded or original) or not os.path.isfile(target):
        raise gr.Error(NOT_AN_UPLOAD)
    size = os.path.getsize(target)
    if max_bytes and size > max_bytes:
        raise gr.Error(TOO_BIG.format(mb=size / 1024 / 1024, max_mb=max_bytes / 1024 / 1024))


def _is_original(path: str) -> bool:
    name = os.path.basename(path)
    return bool(ORIGINAL.match(name)) and not name.endswith(".json")
