"""What the file itself says about a photo: when and where it was taken, with which camera, and what
its owner typed (title, description, keywords). A pure function of the original's bytes.

Read: EXIF DateTimeOriginal (else DateTimeDigitized, else DateTime) with its OffsetTime* when given;
GPS (refs, rationals) -> latitude, longitude and an offline place name (places.py); Make + Model;
IPTC and XMP title, description and keywords (embedded_text.py), with EXIF ImageDescription and the
Windows XP tags as a last resort. Any format Pillow opens (JPEG, PNG, WebP, TIFF, HEIC through
pillow-heif, registered by intake.py).

`taken_at` is ISO 8601 as the camera's clock read it: with its UTC offset when the file gives one
("2019-07-01T18:30:00+01:00"), else naive local time ("2019-07-01T18:30:00"), never converted, since
a camera without an offset does not say where its clock was. Filters and "newest first" compare that
wall-clock time (search/filters.py `taken_ts`): "taken on 1 July" is 1 July as the photo says.

Files lie: a date in year 0 or 9999, GPS out of range, a megabyte of XMP, text that is not UTF-8,
a number where text belongs. Nothing here raises: what can be trusted is kept, and each thing left
out becomes one short note (`notes`, the record's `metadata_notes`). Bump METADATA_VERSION when the
reader improves: `reconcile` then reads every older record's original again (no model runs).
"""

from __future__ import annotations

import io
import math
import warnings
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Iterable

from PIL import Image, IptcImagePlugin

from ..records import ImageRecord
from ..search.filters import MAX_TAGS, normalise_tag
from . import intake  # noqa: F401  (registers the HEIC opener)
from .embedded_text import MAX_XMP_BYTES, Typed, decode, printable, read_iptc, read_xmp
from .places import place_name

METADATA_VERSION = 1
EARLIEST_YEAR = 1826  # the oldest surviving photograph; an earlier date is a wrong clock
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_CAMERA_CHARS = 100
MAX_KEYWORDS = 50  # kept as read (all searchable); the tags take the first few (MAX_TAGS in all)
MAX_KEYWORD_CHARS = 60
MAX_NOTES = 12
MAX_NOTE_CHARS = 160
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_MAKE, _MODEL, _IMAGE_DESCRIPTION = 0x010F, 0x0110, 0x010E
_XP_TITLE, _XP_COMMENT, _XP_KEYWORDS = 0x9C9B, 0x9C9C, 0x9C9E  # UTF-16LE, written by Windows Explorer
# (tag, its offset tag, its name, in the Exif sub-IFD?) in the order trusted
_DATES = ((0x9003, 0x9011, "DateTimeOriginal", True), (0x9004, 0x9012, "DateTimeDigitized", True),
          (0x0132, 0x9010, "DateTime", False))
_COMPANY = frozenset({"corporation", "corp", "co", "ltd", "inc", "company", "imaging", "optical", "gmbh", "ag"})
# What cameras write into ImageDescription when the owner wrote nothing.
_BOILERPLATE = frozenset({"olympus digital camera", "sony dsc", "digital camera", "default", "image",
                          "samsung", "kodak digital still camera", "minolta digital camera", "exif_jpeg_picture"})


@dataclass(frozen=True)
class PhotoMetadata:
    """The record fields read from one file (each empty when the file says nothing trustworthy)."""

    taken_at: str = ""
    latitude: float | None = None
    longitude: float | None = None
    place: str = ""
    camera: str = ""
    title: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    version: int = METADATA_VERSION  # 0: not read

    def fields(self) -> dict[str, object]:
        """As ImageRecord keyword arguments (the tags are `with_keywords`' job)."""
        return {"taken_at": self.taken_at, "place": self.place, "latitude": self.latitude,
                "longitude": self.longitude, "camera": self.camera, "title": self.title,
                "description": self.description, "keywords": self.keywords, "metadata_notes": self.notes,
                "metadata_version": self.version}


NOT_READ = PhotoMetadata(version=0)


def read_metadata(data: bytes, now: datetime | None = None) -> PhotoMetadata:
    """Everything trustworthy the file says; never raises (`now`: the latest believable date, for tests)."""
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd EXIF; the notes say what matters
            with Image.open(io.BytesIO(data)) as img:
                if img.format == "PNG":  # Pillow reads chunks after the pixels only by decoding them
                    img.info = {**_png_chunks(data), **img.info}
                return _read(img, notes, now or datetime.now(timezone.utc))
    except Exception as exc:  # a file intake accepted, but whose metadata Pillow cannot walk
        return PhotoMetadata(notes=_capped([*notes, f"metadata unreadable ({type(exc).__name__}): left out"]))


def _read(img: Image.Image, notes: list[str], now: datetime) -> PhotoMetadata:
    base, exif, gps = _exif(img, notes)
    typed = Typed(notes=notes)
    read_xmp(_raw_xmp(img), typed)  # first: XMP is what today's programs write, IPTC-IIM its older twin
    try:
        read_iptc(IptcImagePlugin.getiptcinfo(img), typed)
    except Exception as exc:
        notes.append(f"IPTC unreadable ({type(exc).__name__}): left out")
    typed.descriptions += [d for d in (_text(base.get(_IMAGE_DESCRIPTION), "ImageDescription", notes),)
                           if d and printable(d).lower() not in _BOILERPLATE]
    typed.titles.append(_xp(base.get(_XP_TITLE)))
    typed.descriptions.append(_xp(base.get(_XP_COMMENT)))
    typed.keywords += _xp(base.get(_XP_KEYWORDS)).split(";")
    latitude, longitude = _position(gps, notes)
    return PhotoMetadata(
        taken_at=_taken(base, exif, notes, now),
        latitude=latitude, longitude=longitude,
        place=place_name(latitude, longitude) if latitude is not None and longitude is not None else "",
        camera=_camera(base, notes),
        title=_first(typed.titles + typed.headlines, MAX_TITLE_CHARS, "title", notes),
        description=_first(typed.descriptions, MAX_DESCRIPTION_CHARS, "description", notes),
        keywords=_keywords(typed.keywords, notes),
        notes=_capped(notes),
    )


def _exif(img: Image.Image, notes: list[str]) -> tuple[dict, dict, dict]:
    """(IFD0, the Exif sub-IFD, the GPS IFD) as plain dicts; empty when absent or unreadable."""
    try:
        exif = Image.Exif()
        if img.format != "PNG":
            exif = img.getexif()
        elif img.info.get("exif"):  # PngImageFile.getexif would decode every pixel to look for it
            exif.load(img.info["exif"])
    except Exception as exc:
        notes.append(f"EXIF unreadable ({type(exc).__name__}): left out")
        return {}, {}, {}
    out = [dict(exif)]
    for ifd, name in ((_EXIF_IFD, "Exif"), (_GPS_IFD, "GPS")):
        try:
            out.append(dict(exif.get_ifd(ifd)) if ifd in exif else {})
        except Exception as exc:
            notes.append(f"EXIF {name} block unreadable ({type(exc).__name__}): left out")
            out.append({})
    return out[0], out[1], out[2]


def _png_chunks(data: bytes) -> dict[str, bytes | str]:
    """The eXIf and XMP chunks of a PNG wherever they are, found by walking the chunk headers (no
    pixel is decoded); a compressed XMP is inflated no further than MAX_XMP_BYTES + 1."""
    found: dict[str, bytes | str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"eXIf":
            found["exif"] = body
        elif kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00") and len(body) > 19:
            compressed, rest = body[18], body[20:]
            text = rest.split(b"\x00", 2)[-1]  # after the language tag and the translated keyword
            try:
                inflated = zlib.decompressobj().decompress(text, MAX_XMP_BYTES + 1) if compressed else text
                found["XML:com.adobe.xmp"] = inflated
            except zlib.error:
                found["XML:com.adobe.xmp"] = b"<not-deflate"  # unreadable XMP, said so by read_xmp
        elif kind == b"IEND":
            break
        pos += 12 + length
    return found


def _raw_xmp(img: Image.Image) -> object:
    """The XMP packet where each format keeps it (JPEG/WebP/HEIC: "xmp", PNG: iTXt, TIFF: tag 700)."""
    raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if raw is None and hasattr(img, "tag_v2"):
        raw = img.tag_v2.get(700)
    return raw


def _text(value: object, name: str, notes: list[str]) -> str:
    """An EXIF ASCII value as text. Pillow decodes it as Latin-1; most writers meant UTF-8."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        text, ok = decode(value)
    elif isinstance(value, str):
        try:
            text, ok = value.encode("latin-1").decode("utf-8"), True
        except UnicodeEncodeError:  # already more than Latin-1: Pillow did not decode it
            text, ok = value, True
        except UnicodeDecodeError:
            text, ok = value, False
    else:
        notes.append(f"EXIF {name} is not text ({type(value).__name__}): left out")
        return ""
    if not ok:
        notes.append(f"EXIF {name} is not UTF-8: read as Latin-1")
    return printable(text)


def _xp(value: object) -> str:
    """A Windows XP tag (UTF-16LE bytes, or a tuple of byte values)."""
    if isinstance(value, tuple) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
        value = bytes(value)
    return value.decode("utf-16-le", "replace").strip("\x00") if isinstance(value, bytes) else ""


def _taken(base: dict, exif: dict, notes: list[str], now: datetime) -> str:
    latest = now.astimezone(timezone.utc).replace(tzinfo=None) + timedelta(days=1)
    for tag, offset_tag, name, in_exif in _DATES:
        text = _text((exif if in_exif else base).get(tag), name, notes)
        if not text or set(text) <= set("0: -"):  # blank or zeros: the camera did not know
            continue
        when = _parse_when(text)
        if when is None:
            notes.append(f"EXIF {name} {text[:40]!r} is not a date: left out")
        elif not EARLIEST_YEAR <= when.year or when > latest:
            notes.append(f"EXIF {name} {text[:40]!r} is out of range: left out")
        else:
            return when.isoformat(timespec="seconds") + _offset(exif.get(offset_tag) or base.get(offset_tag), notes)
    return ""


def _parse_when(text: str) -> datetime | None:
    """'2019:07:01 18:30:00' (EXIF), also with '-' in the date or without seconds; None if not a real time."""
    date, _, clock = text.strip().partition(" ")
    parts = date.replace("-", ":").split(":") + (clock.split(":") if clock else [])
    try:
        numbers = [int(p) for p in parts[:6]]
        return datetime(*numbers) if len(numbers) >= 3 else None
    except (ValueError, TypeError, OverflowError):
        return None


def _offset(value: object, notes: list[str]) -> str:
    """'+01:00' when the file gives a valid UTC offset, else ''."""
    text = _text(value, "OffsetTime", notes) if value is not None else ""
    if not text:
        return ""
    sign, hours, minutes = text[:1], text[1:3], text[4:6]
    if (len(text) == 6 and sign in "+-" and text[3] == ":" and hours.isdigit() and minutes.isdigit()
            and int(hours) <= 14 and int(minutes) < 60):
        return text
    notes.append(f"EXIF time offset {text[:20]!r} is not an offset: time kept without it")
    return ""


def _position(gps: dict, notes: list[str]) -> tuple[float | None, float | None]:
    if not gps or (2 not in gps and 4 not in gps):
        return None, None
    latitude = _coordinate(gps.get(2), gps.get(1), "NS", 90.0, "latitude", notes)
    longitude = _coordinate(gps.get(4), gps.get(3), "EW", 180.0, "longitude", notes)
    if latitude is None or longitude is None:
        return None, None
    if latitude == 0 and longitude == 0:
        notes.append("GPS 0, 0 (a receiver without a fix): position left out")
        return None, None
    return round(latitude, 6), round(longitude, 6)


def _coordinate(raw: object, ref: object, refs: str, limit: float, what: str, notes: list[str]) -> float | None:
    """Degrees from (degrees, minutes, seconds) rationals and an N/S or E/W reference."""
    try:
        parts = [float(p) for p in (raw if isinstance(raw, (tuple, list)) else (raw,))]
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        parts = []
    if not 1 <= len(parts) <= 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        notes.append(f"GPS {what} is not a number: position left out")
        return None
    value = sum(p / 60**i for i, p in enumerate(parts))
    side = _text(ref, f"GPS {what} reference", []).strip().upper()[:1] if isinstance(ref, (str, bytes)) else ""
    if not side or side not in refs:
        notes.append(f"GPS {what} has no {'/'.join(refs)} reference: position left out")
        return None
    if value > limit:
        notes.append(f"GPS {what} {value:.6g} is out of range: position left out")
        return None
    return -value if side == refs[1] else value


def _camera(base: dict, notes: list[str]) -> str:
    """Make and model, the make said once and without its company form ("Canon" + "Canon EOS R5" ->
    "Canon EOS R5", "OLYMPUS IMAGING CORP." + "E-M10" -> "OLYMPUS E-M10")."""
    brand = [w for w in _text(base.get(_MAKE), "Make", notes).split() if w.lower().strip(".,") not in _COMPANY]
    model = _text(base.get(_MODEL), "Model", notes)
    if any(model.lower().startswith(word.lower()) for word in brand):
        brand = []
    return " ".join([*brand, model]).strip()[:MAX_CAMERA_CHARS].strip()


def _first(candidates: Iterable[str], limit: int, what: str, notes: list[str]) -> str:
    for candidate in candidates:
        text = printable(candidate)
        if text:
            if len(text) > limit:
                notes.append(f"{what} cut to {limit} characters")
                text = text[:limit].rstrip()
            return text
    return ""


def _keywords(candidates: Iterable[str], notes: list[str]) -> tuple[str, ...]:
    """Keywords as typed, each once (any case), at most MAX_KEYWORDS."""
    seen: dict[str, str] = {}
    for candidate in candidates:
        text = printable(candidate)[:MAX_KEYWORD_CHARS].strip()
        if text:
            seen.setdefault(text.casefold(), text)
    if len(seen) > MAX_KEYWORDS:
        notes.append(f"{len(seen) - MAX_KEYWORDS} keywords beyond the first {MAX_KEYWORDS} left out")
    return tuple(seen.values())[:MAX_KEYWORDS]


def _capped(notes: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(n[:MAX_NOTE_CHARS] for n in notes))
    if len(unique) > MAX_NOTES:
        unique = unique[: MAX_NOTES - 1] + [f"{len(unique) - MAX_NOTES + 1} more problems not listed"]
    return tuple(unique)


def with_keywords(tags: Iterable[str], keywords: Iterable[str]) -> tuple[str, ...]:
    """The file's keywords as tags (normalised as a person's tags are), before the model's; at most MAX_TAGS."""
    merged = (normalise_tag(printable(t)) for t in (*keywords, *tags))
    return tuple(dict.fromkeys(t for t in merged if t))[:MAX_TAGS]


def apply(record: ImageRecord, meta: PhotoMetadata) -> ImageRecord:
    """`record` with what its file says. What a person set stays exactly as it is: tags (tags_edited),
    title and description (details_edited); otherwise the keywords read before give way to the ones
    read now, the model's tags stay."""
    tags = record.tags
    if not record.tags_edited:
        old = set(with_keywords((), record.keywords))
        tags = with_keywords((t for t in record.tags if t not in old), meta.keywords)
    kept = {"title": record.title, "description": record.description} if record.details_edited else {}
    return replace(record, tags=tags, **{**meta.fields(), **kept})
