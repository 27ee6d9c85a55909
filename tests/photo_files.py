"""Photos whose files say things (EXIF, GPS, IPTC, XMP), written here byte by byte for the tests of
library/metadata.py: piexif builds EXIF, Pillow writes XMP, and IPTC goes into a JPEG's APP13
(Photoshop 3.0 / 8BIM 0x0404) as Lightroom and Photoshop write it."""

from __future__ import annotations

import io
import struct
import zlib

import piexif
from PIL import PngImagePlugin

from images import picture

LISBON = (38.72, -9.14)


def _rational(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 100)
    return (degrees, 1), (minutes, 1), (seconds, 100)


def gps(latitude: float, longitude: float) -> dict:
    return {piexif.GPSIFD.GPSLatitudeRef: b"N" if latitude >= 0 else b"S",
            piexif.GPSIFD.GPSLatitude: _rational(abs(latitude)),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if longitude >= 0 else b"W",
            piexif.GPSIFD.GPSLongitude: _rational(abs(longitude))}


def exif(taken: str | bytes | None = None, offset: str | None = None, position: tuple[float, float] | None = None,
         make: bytes | None = None, model: bytes | None = None, description: bytes | None = None,
         artist: bytes | None = None, digitized: str | None = None, modified: str | None = None,
         gps_ifd: dict | None = None) -> bytes:
    """An EXIF block (piexif) with the given fields."""
    zeroth, sub = {}, {}
    for ifd, tag, value in ((zeroth, piexif.ImageIFD.Make, make), (zeroth, piexif.ImageIFD.Model, model),
                            (zeroth, piexif.ImageIFD.ImageDescription, description),
                            (zeroth, piexif.ImageIFD.Artist, artist), (zeroth, piexif.ImageIFD.DateTime, modified),
                            (sub, piexif.ExifIFD.DateTimeOriginal, taken),
                            (sub, piexif.ExifIFD.DateTimeDigitized, digitized),
                            (sub, piexif.ExifIFD.OffsetTimeOriginal, offset)):
        if value is not None:
            ifd[tag] = value.encode() if isinstance(value, str) else value
    location = gps_ifd if gps_ifd is not None else gps(*position) if position else {}
    return piexif.dump({"0th": zeroth, "Exif": sub, "GPS": location})


def xmp(title: str = "", description: str = "", subjects: tuple[str, ...] = (), headline: str = "",
        hierarchical: tuple[str, ...] = (), padding: int = 0) -> bytes:
    """An XMP packet as Lightroom writes one (dc:title as rdf:Alt with x-default, dc:subject as rdf:Bag)."""
    def alt(name: str, text: str) -> str:
        return (f"<{name}><rdf:Alt><rdf:li xml:lang='de'>Deutsch</rdf:li><rdf:li xml:lang='x-default'>{text}"
                f"</rdf:li></rdf:Alt></{name}>") if text else ""

    def bag(name: str, items: tuple[str, ...]) -> str:
        return f"<{name}><rdf:Bag>{''.join(f'<rdf:li>{i}</rdf:li>' for i in items)}</rdf:Bag></{name}>" if items else ""

    body = (alt("dc:title", title) + alt("dc:description", description) + bag("dc:subject", subjects)
            + bag("lr:hierarchicalSubject", hierarchical)
            + (f"<photoshop:Headline>{headline}</photoshop:Headline>" if headline else ""))
    return ("<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>"
            "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
            "<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/' "
            "xmlns:lr='http://ns.adobe.com/lightroom/1.0/' xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/'>"
            f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>{' ' * padding}<?xpacket end='w'?>").encode()


def iptc(*datasets: tuple[int, bytes]) -> bytes:
    """IPTC-IIM record 2 datasets ((5, title), (120, caption), (25, keyword) ...) as a JPEG APP13 segment."""
    iim = b"".join(b"\x1c\x02" + bytes([ds]) + len(v).to_bytes(2, "big") + v for ds, v in datasets)
    block = b"8BIM\x04\x04\x00\x00" + len(iim).to_bytes(4, "big") + iim + b"\x00" * (len(iim) % 2)
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload


def photo(seed: int = 0, fmt: str = "JPEG", exif_block: bytes | None = None, xmp_packet: bytes | None = None,
          iptc_segment: bytes | None = None, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small picture in `fmt` carrying the given metadata."""
    options: dict = {}
    if exif_block is not None:
        options["exif"] = exif_block
    if xmp_packet is not None and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp_packet.decode("utf-8", "replace"))
        options["pnginfo"] = info
    elif xmp_packet is not None:
        options["xmp"] = xmp_packet
    buf = io.BytesIO()
    picture(size, seed).save(buf, fmt, **options)
    data = buf.getvalue()
    return data[:2] + iptc_segment + data[2:] if iptc_segment else data


ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 2, 3, 4, 5, 7
_TYPE_SIZE = {ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, UNDEFINED: 1}


def raw_exif(zeroth: dict, sub: dict | None = None, gps_ifd: dict | None = None) -> bytes:
    """EXIF written by hand, byte by byte: {tag: (type, count, value bytes)}, any type for any tag (a
    number where EXIF wants text, a date as rationals, a count that lies): what a buggy writer produces."""
    def ifd(entries: dict, start: int) -> bytes:
        head, data = len(entries).to_bytes(2, "little"), b""
        area = start + 2 + 12 * len(entries) + 4
        for tag, (kind, count, value) in sorted(entries.items()):
            if len(value) <= 4:
                field = value.ljust(4, b"\x00")
            else:
                field = (area + len(data)).to_bytes(4, "little")
                data += value + b"\x00" * (len(value) % 2)
            head += tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + count.to_bytes(4, "little") + field
        return head + b"\x00\x00\x00\x00" + data

    def size(entries: dict) -> int:
        return len(ifd(entries, 0))

    zeroth = dict(zeroth)
    children = [(0x8769, sub), (0x8825, gps_ifd)]
    for tag, child in children:  # placeholders, so the sizes are known
        if child:
            zeroth[tag] = (LONG, 1, b"\x00" * 4)
    offset, blocks = 8 + size(zeroth), []
    for tag, child in children:
        if child:
            zeroth[tag] = (LONG, 1, offset.to_bytes(4, "little"))
            blocks.append(ifd(child, offset))
            offset += len(blocks[-1])
    return b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + ifd(zeroth, 8) + b"".join(blocks)


def text(value: str | bytes) -> tuple[int, int, bytes]:
    raw = (value.encode() if isinstance(value, str) else value) + b"\x00"
    return ASCII, len(raw), raw


def long(value: int) -> tuple[int, int, bytes]:
    return LONG, 1, value.to_bytes(4, "little")


def rationals(*pairs: tuple[int, int]) -> tuple[int, int, bytes]:
    return RATIONAL, len(pairs), b"".join(n.to_bytes(4, "little") + d.to_bytes(4, "little") for n, d in pairs)


def png_with_late_chunks(*chunks: tuple[bytes, bytes]) -> bytes:
    """A PNG with the given (type, body) chunks after its pixels, where Pillow reads them only by decoding."""
    buf = io.BytesIO()
    picture((16, 16), 5).save(buf, "PNG")
    raw = buf.getvalue()
    end = raw.rindex(b"IEND") - 4
    extra = b"".join(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
                     for kind, body in chunks)
    return raw[:end] + extra + raw[end:]


def compressed_xmp_chunk(packet: bytes) -> tuple[bytes, bytes]:
    return b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(packet)
