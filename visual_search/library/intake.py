"""Intake: turn untrusted bytes into a clean RGB picture, or refuse with a reason a person understands.

The format is identified from the content (magic bytes), never the extension. Size and pixel limits
are checked before any pixel is decoded, so a decompression bomb costs a header read, not memory.
Nothing here touches the store: a rejected file leaves no trace.

Each image is decoded once, at the size the work needs (WORK_SIZE): a JPEG straight to 1/2, 1/4 or
1/8 of its size (DCT scaling, `Image.draft`), other formats shrunk by a whole factor after decoding.
The models and the thumbnail all read that bitmap; the stored original keeps every pixel.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import re
import struct
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

from ..errors import NotAnImage, RejectedImage

try:  # HEIC/HEIF (iPhone photos); Pillow itself reads AVIF
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pinned in requirements.txt
    pillow_heif = None

# Magic bytes -> (format name, stored file extension). Order matters only for overlapping prefixes.
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "JPEG", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "PNG", ".png"),
    (b"GIF87a", "GIF", ".gif"),
    (b"GIF89a", "GIF", ".gif"),
    (b"BM", "BMP", ".bmp"),
    (b"II*\x00", "TIFF", ".tif"),
    (b"MM\x00*", "TIFF", ".tif"),
)
# ISO media files ("....ftyp<brand>") that hold a still image: AVIF, and HEIF/HEIC. Videos (mp4, mov)
# share the container with other brands and are not images.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
# Netpbm (Pillow's "PPM"): "P1".."P6", then width and height in ASCII, comments ("# ...") allowed between.
_NETPBM = re.compile(rb"P([1-6])(?:\s+|#[^\r\n]*[\r\n])+\d+(?:\s+|#[^\r\n]*[\r\n])+\d+\s")
_NETPBM_EXT = {b"1": ".pbm", b"4": ".pbm", b"2": ".pgm", b"5": ".pgm", b"3": ".ppm", b"6": ".ppm"}
# Images of kinds we do not read: refused with a reason, never skipped as "not an image".
_OTHER_IMAGE_SIGNATURES = (b"8BPS", b"\x00\x00\x01\x00", b"\xff\x0a", b"\x00\x00\x00\x0cJXL ",
                           b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51", b"FORM", b"gimp xcf")
ACCEPTED_FORMATS = "JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF, HEIC or Netpbm"
# File names that usually hold one of them: only to pick files out of a folder of mixed content
# (the samples); whatever is picked is still judged by its content.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic",
                            ".heif", ".pbm", ".pgm", ".ppm", ".pnm"})
# A picture more elongated than this cannot be described or resized sanely (1 x 100000, say).
MAX_ASPECT_RATIO = 25.0
MAX_NAME_CHARS = 200
# The short side, in pixels, of the bitmap the work reads: BLIP squashes each picture to 384 x 384 (both
# sides need 384 pixels), the thumbnail's long side is 384 (thumbnails.SIZE), CLIP crops 224 x 224.
WORK_SIZE = 384
# EXIF orientation -> the transpose that shows the picture upright (ImageOps.exif_transpose's table).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SIDEWAYS = frozenset({5, 6, 7, 8})  # orientations stored with width and height swapped
# Modes a box filter can shrink as they are; the others (palette, 1-bit, 16-bit) become RGB first.
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})


@dataclass(frozen=True)
class IntakeImage:
    """A decoded, upright RGB image at the size the work needs, plus the exact bytes it came from."""

    id: str  # sha256 hex of `data`
    data: bytes
    format: str  # "JPEG", "PNG", ...
    ext: str  # extension the stored original gets
    image: Image.Image  # RGB, upright, short side >= WORK_SIZE (or the original's, when smaller); no metadata
    filename: str  # sanitised display name
    width: int  # of the upright original, not of `image`
    height: int


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def display_name(name: str) -> str:
    """A file name safe to show and store as text: no folders, no control characters, bounded length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = base.strip() or "image"
    return base[:MAX_NAME_CHARS]


def sniff_format(data: bytes) -> tuple[str, str]:
    """Return (format, extension) from the leading bytes, or raise RejectedImage saying what it is."""
    for magic, fmt, ext in _SIGNATURES:
        if data.startswith(magic):
            return fmt, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", ".webp"
    brands = _iso_brands(data)
    if brands & _AVIF_BRANDS:
        return "AVIF", ".avif"
    if brands & _HEIF_BRANDS:
        return "HEIF", ".heic"
    netpbm = _NETPBM.match(data[:4096])
    if netpbm:
        return "PPM", _NETPBM_EXT[netpbm[1]]
    raise RejectedImage(f"not a supported image: {_describe_non_image(data)}; accepted: {ACCEPTED_FORMATS}")


def _iso_brands(data: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO media file's leading `ftyp` box; empty if it has none."""
    if data[4:8] != b"ftyp" or len(data) < 12:
        return set()
    size = min(struct.unpack(">I", data[:4])[0], len(data), 4096)
    return {data[8:12]} | {data[i : i + 4] for i in range(16, size - 3, 4)}


def is_image_kind(data: bytes) -> bool:
    """Whether the first bytes are an image of any kind, read here or not (a folder's other files are skipped)."""
    try:
        sniff_format(data)
        return True
    except RejectedImage:
        pass
    head = data[:512].lstrip().lower()
    return data.startswith(_OTHER_IMAGE_SIGNATURES) or b"<svg" in head or bool(_iso_brands(data) & {b"avci", b"jxl "})


def check_image_kind(data: bytes) -> bytes:
    """`data` unchanged, or NotAnImage saying what it is instead (for files met inside a folder).

    An empty file passes: it is more likely a photo whose copy failed than a document, and fails.
    """
    if data and not is_image_kind(data):
        raise NotAnImage(_describe_non_image(data))
    return data


def _describe_non_image(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "it is a PDF document"
    if b"<svg" in head:
        return "it is an SVG drawing (vector images are not supported)"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "it is an HTML page"
    if data[4:8] == b"ftyp":
        return "it is a video or other media file"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data[:4096])  # a cut last character is fine
    except UnicodeDecodeError:
        text = "\x00"
    if any(ord(ch) < 32 and ch not in "\t\n\r\f" for ch in text):  # NUL & co: binary (ZIP, ELF...)
        return "the content is not a known image format"
    return "it is a text file"


def read_file(path: Path, max_bytes: int) -> bytes:
    """Read a regular file, refusing before reading when it is too big."""
    try:
        st = path.stat()
    except OSError as exc:
        raise RejectedImage(f"cannot read file: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise RejectedImage("not a regular file")
    if st.st_size > max_bytes:
        raise RejectedImage(_too_big(st.st_size, max_bytes))
    try:
        with open(path, "rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise RejectedImage(f"cannot read file: {exc.strerror or exc}") from exc


def _too_big(size: int, max_bytes: int) -> str:
    return f"file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB"


def load_image(data: bytes, filename: str, max_bytes: int, max_pixels: int) -> IntakeImage:
    """Validate and decode `data`. Raises RejectedImage, and nothing else, for any bad input."""
    if not data:
        raise RejectedImage("file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise RejectedImage(_too_big(len(data), max_bytes))
    fmt, ext = sniff_format(data)
    try:
        image, (width, height) = _decode(data, fmt, max_pixels)
    except RejectedImage:
        raise
    except Image.DecompressionBombError as exc:
        raise RejectedImage(f"image has too many pixels (limit {max_pixels / 1e6:.0f} megapixels)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
            ZeroDivisionError, struct.error, MemoryError, RuntimeError, AttributeError) as exc:
        raise RejectedImage(f"{fmt} file is corrupt or truncated ({_short(exc)})") from exc
    return IntakeImage(id=content_id(data), data=data, format=fmt, ext=ext, image=image,
                       filename=display_name(filename), width=width, height=height)


def _short(exc: BaseException) -> str:
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc)).strip()  # no "<_io.BytesIO object at 0x...>"
    return (text or type(exc).__name__)[:120]


def _decode(data: bytes, fmt: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """The working bitmap (see IntakeImage.image) and the upright original's (width, height)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # we enforce our own pixel limit below, before decoding
        with Image.open(io.BytesIO(data)) as probe:
            _check_header(probe, fmt, max_pixels)
            probe.verify()  # checksums (PNG CRC) and structure, without decoding pixels
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)  # first frame of an animation or a multi-page TIFF
            full = img.size
            # A JPEG is decoded at 1/2, 1/4 or 1/8 of its size, the smallest that keeps both sides >= WORK_SIZE.
            drafted = img.draft("RGB", (WORK_SIZE, WORK_SIZE)) is not None
            img.decodermaxblock = len(data)  # the bytes to the decoder at once, not in 64 KB pieces: 2-6% faster
            img.load()
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            work = _upright(img, _shrink(img), orientation)
    width, height = full if drafted else img.size
    return work, ((height, width) if orientation in _SIDEWAYS else (width, height))


def _upright(img: Image.Image, work: Image.Image, orientation: int) -> Image.Image:
    """`work` (made from `img`) turned upright, as a bitmap of its own without metadata."""
    if orientation in _UPRIGHT:
        work = work.transpose(_UPRIGHT[orientation])
    if work is img:  # nothing made a new bitmap: detach it from the file
        work = img.copy()
    work.info = {}  # pixels only; the metadata stays in the stored original
    return work


def decode_at(data: bytes, side: int) -> Image.Image:
    """An RGB, upright copy of an image `load_image` accepted, its long side at most `side` pixels: a
    second look at more pixels than the working bitmap has (the OCR reads small print). A JPEG is
    decoded at the smallest 1/2, 1/4 or 1/8 scale that keeps that size (`Image.draft`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load_image checked the pixel limit already
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)
            scale = min(1.0, side / max(img.size))
            img.draft("RGB", (max(1, int(img.width * scale)), max(1, int(img.height * scale))))
            img.load()
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            fitted = to_rgb(img)
            if max(fitted.size) > side:
                fitted.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
            return _upright(img, fitted, orientation)


def _shrink(img: Image.Image) -> Image.Image:
    """`img` in RGB, shrunk by the largest whole factor (a box filter) that keeps its short side >= WORK_SIZE."""
    if img.mode not in _REDUCIBLE:
        img = to_rgb(img)
    factor = min(img.size) // WORK_SIZE
    return to_rgb(img.reduce(factor) if factor >= 2 else img)


def _check_header(img: Image.Image, fmt: str, max_pixels: int) -> None:
    if (img.format or "").upper() not in {fmt, "MPO" if fmt == "JPEG" else fmt}:
        raise RejectedImage(f"file starts like {fmt} but does not decode as one")
    w, h = img.size
    if w <= 0 or h <= 0:
        raise RejectedImage(f"image has no pixels ({w} x {h})")
    if w * h > max_pixels:
        raise RejectedImage(
            f"image is {w} x {h} = {w * h / 1e6:.0f} megapixels; the limit is {max_pixels / 1e6:.0f} megapixels"
        )
    if max(w, h) / min(w, h) > MAX_ASPECT_RATIO:
        raise RejectedImage(f"image is {w} x {h} pixels: too elongated to describe (limit {MAX_ASPECT_RATIO:.0f}:1)")


def to_rgb(img: Image.Image) -> Image.Image:
    """Normalise any mode to 8-bit RGB; transparency is flattened onto white."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = _deep_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def _deep_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float grayscale -> 8-bit, scaled by the type's range rather than clipped."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        top = 65535.0
    elif img.mode == "F":
        lo = float(arr.min()) if arr.size else 0.0
        arr = arr - lo
        top = float(arr.max()) or 1.0
    else:
        peak = float(arr.max()) if arr.size else 0.0
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    scaled = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def image_files(folder: Path) -> list[Path]:
    """The image-named files directly in `folder`, sorted (none when it is not a folder)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def walk(paths: list[str | os.PathLike], hidden: list[Path] | None = None) -> list[tuple[Path, str | None]]:
    """Expand files and folders (recursively, sorted) into (file, problem) pairs.

    A symbolic link inside a folder that points outside that folder is reported, not followed:
    indexing a folder never reads what lies outside it. Hidden files and folders (`.DS_Store`,
    `.git`) are not walked; the hidden files met are appended to `hidden` when it is given.
    """
    out: list[tuple[Path, str | None]] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            out.append((root, "no such file or folder"))
        elif root.is_dir():
            real_root = root.resolve()
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        if hidden is not None:
                            hidden.append(Path(dirpath) / name)
                        continue
                    f = Path(dirpath) / name
                    if f.is_symlink() and not f.resolve().is_relative_to(real_root):
                        out.append((f, "symbolic link points outside the folder; not followed"))
                    else:
                        out.append((f, None))
        else:
            out.append((root, None))
    return out
