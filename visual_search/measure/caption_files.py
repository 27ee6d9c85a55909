"""Read human reference captions in the formats public captioning data sets ship in.

  * CSV `image,caption` (header optional; the Flickr8k `captions.txt` of Kaggle, whose captions
    contain unquoted commas, reads too);
  * Flickr30k `results.csv`: `image_name| comment_number| comment`;
  * Flickr8k / Flickr30k token files: `image.jpg#n<TAB>caption`;
  * COCO captions JSON (`images` + `annotations`), and the Karpathy split JSON (`images` with
    `sentences`), which many papers use.

Each gives `{image file name: [caption, ...]}` in file order. A line that fits none of the
formats stops the read with its line number, unless the caller asks to skip such lines.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Callable

from ..errors import VisualSearchError

Captions = dict[str, list[str]]
FORMATS = ("auto", "csv", "flickr30k", "flickr8k", "coco")
_HEADER_NAMES = {"image", "image_name", "filename", "file_name", "file", "img", "image_id", "path"}
_TOKEN_LINE = re.compile(r"^(?P<image>[^\t]+?)#(?P<n>\d+)\t(?P<caption>.*)$")


class CaptionFileError(VisualSearchError):
    """A caption file that cannot be read as any of the supported formats."""


class _Reader:
    """Collects captions and either raises on a malformed line or counts it (skip=True)."""

    def __init__(self, path: Path, skip: bool) -> None:
        self.path, self.skip = path, skip
        self.captions: Captions = {}
        self.skipped: list[str] = []

    def add(self, image: str, caption: str, where: str, raw: str, expected: str) -> None:
        image, caption = image.strip(), " ".join(caption.split())
        if not image or not caption:
            self.bad(where, raw, expected)
            return
        self.captions.setdefault(image, []).append(caption)

    def bad(self, where: str, raw: str, expected: str) -> None:
        """`where` says which line (or JSON entry) is wrong, so a person can find and fix it."""
        if self.skip:
            self.skipped.append(where)
            return
        raise CaptionFileError(
            f"{self.path.name}, {where}: expected {expected}, got {raw.strip()[:120]!r}. "
            "Fix that line, or pass --skip-malformed to leave such lines out."
        )


def read_captions(path: str | Path, fmt: str = "auto", skip_malformed: bool = False) -> tuple[Captions, list[str]]:
    """(captions per image, the lines skipped). Raises CaptionFileError on unreadable input."""
    path = Path(path)
    if fmt not in FORMATS:
        raise CaptionFileError(f"unknown caption format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CaptionFileError(f"caption file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptionFileError(f"cannot read caption file {path}: {exc}") from None
    if fmt == "auto":
        fmt = detect_format(path, text)
    reader = _Reader(path, skip_malformed)
    _PARSERS[fmt](text, reader)
    if not reader.captions:
        raise CaptionFileError(f"{path.name} holds no captions (read as {fmt})")
    return reader.captions, reader.skipped


def detect_format(path: Path, text: str) -> str:
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        return "coco"
    first = next((line for line in text.splitlines() if line.strip()), "")
    if _TOKEN_LINE.match(first):
        return "flickr8k"
    if "|" in first:
        return "flickr30k"
    return "csv"


def parse_csv(text: str, r: _Reader) -> None:
    expected = "'image,caption'"
    rows = csv.reader(io.StringIO(text))
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a quote opened and never closed
            raise CaptionFileError(f"{r.path.name}, line {rows.line_num}: not valid CSV ({exc})") from None
        n = rows.line_num
        if not row or not "".join(row).strip():
            continue
        if n == 1 and row[0].strip().lower() in _HEADER_NAMES:
            continue  # header
        if len(row) < 2:
            r.bad(f"line {n}", ",".join(row), expected)
            continue
        r.add(row[0], ",".join(row[1:]), f"line {n}", ",".join(row), expected)  # unquoted commas stay in the caption


def parse_flickr30k(text: str, r: _Reader) -> None:
    expected = "'image_name| comment_number| comment'"
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|", 2)
        if n == 1 and parts[0].strip().lower() in _HEADER_NAMES:
            continue
        if len(parts) != 3 or not parts[1].strip().isdigit():
            r.bad(f"line {n}", line, expected)
            continue
        r.add(parts[0], parts[2], f"line {n}", line, expected)


def parse_flickr8k(text: str, r: _Reader) -> None:
    expected = "'image.jpg#n<TAB>caption'"
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _TOKEN_LINE.match(line)
        if m is None:
            r.bad(f"line {n}", line, expected)
            continue
        r.add(m["image"], m["caption"], f"line {n}", line, expected)


def parse_coco(text: str, r: _Reader) -> None:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CaptionFileError(f"{r.path.name} is not valid JSON: {exc}") from None
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise CaptionFileError(f"{r.path.name}: expected COCO captions JSON with 'images' and 'annotations'")
    if "annotations" not in doc:  # Karpathy split: {"images": [{"filename", "sentences": [{"raw"}]}]}
        for i, img in enumerate(images):
            name = img.get("filename") if isinstance(img, dict) else None
            sentences = img.get("sentences") if isinstance(img, dict) else None
            if not isinstance(name, str) or not isinstance(sentences, list):
                r.bad(f"image entry {i + 1}", json.dumps(img)[:120], "image entry {'filename', 'sentences'}")
                continue
            for s in sentences:
                raw = s.get("raw") if isinstance(s, dict) else None
                text_ = raw if isinstance(raw, str) else ""
                r.add(name, text_, f"image entry {i + 1}", json.dumps(s)[:120], "a sentence with 'raw' text")
        return
    names = {}
    for img in images:
        if isinstance(img, dict) and "id" in img and isinstance(img.get("file_name"), str):
            names[img["id"]] = img["file_name"]
    expected = "annotation {'image_id', 'caption'} of a listed image"
    for i, ann in enumerate(doc["annotations"] if isinstance(doc["annotations"], list) else []):
        ok = isinstance(ann, dict) and ann.get("image_id") in names and isinstance(ann.get("caption"), str)
        if not ok:
            r.bad(f"annotation {i + 1}", json.dumps(ann)[:120], expected)
            continue
        r.add(names[ann["image_id"]], ann["caption"], f"annotation {i + 1}", ann["caption"], expected)


_PARSERS: dict[str, Callable[[str, _Reader], None]] = {
    "csv": parse_csv,
    "flickr30k": parse_flickr30k,
    "flickr8k": parse_flickr8k,
    "coco": parse_coco,
}
