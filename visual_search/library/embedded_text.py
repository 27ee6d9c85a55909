"""What the owner typed into a photo (Lightroom, Apple Photos, digiKam...): IPTC and XMP, read defensively.

Both are written by many programs, well and badly, so everything here is a function of bytes that
never raises: text in an unknown encoding is decoded as UTF-8 when it is valid UTF-8 and as
Windows-1252 (Latin-1's superset) otherwise, which is what IPTC writers without a declared character
set used; an XMP packet larger than MAX_XMP_BYTES is not parsed at all (a real one is a few KB; one
of a megabyte is padding or an attack), and XML is parsed by defusedxml (no entities, no network).
Each problem becomes one short note for `metadata_notes`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

MAX_XMP_BYTES = 256 * 1024
# IPTC-IIM record 2 datasets: object name (the title), headline, keywords, caption/abstract.
IPTC_TITLE, IPTC_HEADLINE, IPTC_KEYWORDS, IPTC_CAPTION = (2, 5), (2, 105), (2, 25), (2, 120)
IPTC_CHARSET = (1, 90)  # ESC % G declares UTF-8
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DC = "{http://purl.org/dc/elements/1.1/}"
_PHOTOSHOP = "{http://ns.adobe.com/photoshop/1.0/}"
_LIGHTROOM = "{http://ns.adobe.com/lightroom/1.0/}"


@dataclass
class Typed:
    """Candidates for each field, best source first, and the notes of what was left out."""

    titles: list[str] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)  # a title when there is none
    descriptions: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def decode(raw: bytes, utf8: bool = False) -> tuple[str, bool]:
    """(text, whether it was valid UTF-8). `utf8`: the file declares UTF-8 (bad bytes become U+FFFD)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", "replace"), True
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        if utf8:
            return raw.decode("utf-8", "replace"), False
        return raw.decode("cp1252", "replace"), False


def printable(text: str) -> str:
    """Control and format characters become spaces; runs of white space one space."""
    return " ".join("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text).split())


def read_iptc(iptc: dict | None, into: Typed) -> None:
    """IPTC-IIM as Pillow's IptcImagePlugin.getiptcinfo gives it: {(record, dataset): bytes or [bytes]}."""
    if not iptc:
        return
    utf8 = b"\x1b%G" in b"".join(_values(iptc.get(IPTC_CHARSET)))
    bad = False

    def texts(key: tuple[int, int]) -> list[str]:
        nonlocal bad
        out = []
        for raw in _values(iptc.get(key)):
            text, ok = decode(raw, utf8)
            bad = bad or not ok
            out.append(text)
        return out

    into.titles += texts(IPTC_TITLE)
    into.headlines += texts(IPTC_HEADLINE)
    into.descriptions += texts(IPTC_CAPTION)
    into.keywords += texts(IPTC_KEYWORDS)
    if bad:
        into.notes.append("IPTC text is not valid UTF-8: read as Windows-1252" if not utf8
                          else "IPTC text declared UTF-8 holds invalid bytes: they were replaced")


def _values(value: object) -> list[bytes]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, bytes)]


def read_xmp(raw: object, into: Typed) -> None:
    """An XMP packet (bytes or text): dc:title, dc:description, photoshop:Headline, dc:subject and the
    leaves of lr:hierarchicalSubject ("Places|Portugal|Lisbon" -> "Lisbon")."""
    if raw is None or raw == b"" or raw == "":
        return
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    if not isinstance(data, (bytes, bytearray)):
        into.notes.append(f"XMP of type {type(raw).__name__} left out")
        return
    if len(data) > MAX_XMP_BYTES:
        into.notes.append(f"XMP of {len(data) / 2**20:.1f} MB not read (over {MAX_XMP_BYTES // 1024} KB)")
        return
    try:
        from defusedxml import ElementTree

        root = ElementTree.fromstring(bytes(data).strip(b"\x00 \t\r\n"))
    except Exception as exc:  # defusedxml's refusals, ParseError, a bad encoding declaration
        into.notes.append(f"XMP unreadable ({type(exc).__name__}): left out")
        return
    descriptions = list(root.iter(_RDF + "Description"))
    into.titles += _property(descriptions, _DC + "title")
    into.headlines += _property(descriptions, _PHOTOSHOP + "Headline")
    into.descriptions += _property(descriptions, _DC + "description")
    into.keywords += _property(descriptions, _DC + "subject")
    into.keywords += [leaf.rsplit("|", 1)[-1] for leaf in _property(descriptions, _LIGHTROOM + "hierarchicalSubject")]


def _property(descriptions: Iterable, name: str) -> list[str]:
    """A property's values in every rdf:Description: as an attribute, a simple element, or an rdf:Alt
    (the x-default language first), rdf:Bag or rdf:Seq of rdf:li."""
    out: list[str] = []
    for desc in descriptions:
        if isinstance(desc.get(name), str):
            out.append(desc.get(name))
        for element in desc.findall(name):
            items = element.findall(f"./*/{_RDF}li")
            if not items:
                out.append(element.text or "")
                continue
            items.sort(key=lambda li: li.get(_XML_LANG) != "x-default")
            alt = element.find(_RDF + "Alt") is not None
            out += [li.text or "" for li in (items[:1] if alt else items)]
    return [t for t in out if t.strip()]
