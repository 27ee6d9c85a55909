"""Fuzzing the intake: whatever bytes arrive, `load_image` returns a sane RGB picture or raises
RejectedImage, and nothing else ever escapes (no OSError, struct.error, zlib.error, ValueError...).

Inputs: random bytes, random bytes behind a real format's magic, and real photos from
sample_images/ (as JPEG and re-encoded to every accepted format, Netpbm included) mutated by flips, cuts, inserts
and duplicated spans. Bounded: a few hundred examples, small pictures, a low pixel limit.
"""

from __future__ import annotations

import io
from functools import lru_cache

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import SAMPLES
from visual_search.errors import RejectedImage
from visual_search.library.intake import MAX_ASPECT_RATIO, load_image

MAX_BYTES = 2 << 20
MAX_PIXELS = 2_000_000  # keeps every decode the fuzzer can reach small and fast
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L",
         b"P1\n5 4\n", b"P3\n4 3\n255\n", b"P4\n48 36\n", b"P5 48 36 255\n", b"P6\n48 36\n255\n"]


@lru_cache(maxsize=1)
def seeds() -> list[bytes]:
    """Real photos: three original JPEGs as they are, and small re-encodings in every format and mode."""
    photos = sorted(SAMPLES.glob("*.jpg"))
    out = [p.read_bytes() for p in photos[:3]]
    for i, path in enumerate(photos):
        with Image.open(path) as im:
            small = im.convert("RGB").resize((48, 36))
        fmt, kwargs = [("PNG", {}), ("GIF", {}), ("WEBP", {"quality": 60}), ("TIFF", {"compression": "tiff_lzw"}),
                       ("BMP", {}), ("JPEG", {"progressive": True}), ("PNG", {"optimize": True}),
                       ("TIFF", {})][i % 8]
        image = small.convert("P") if fmt == "GIF" else small.convert("LA") if i % 5 == 0 and fmt == "PNG" else small
        buf = io.BytesIO()
        image.save(buf, fmt, **kwargs)
        out.append(buf.getvalue())
        if i < 3:  # Netpbm: P6, P5, P4
            buf = io.BytesIO()
            small.convert(["RGB", "L", "1"][i]).save(buf, "PPM")
            out.append(buf.getvalue())
    return out


def check(data: bytes) -> None:
    """The property: a clean picture within the limits, or a RejectedImage with a message."""
    try:
        img = load_image(data, "fuzz.bin", MAX_BYTES, MAX_PIXELS)
    except RejectedImage as exc:
        assert str(exc).strip()
        event(f"rejected: {str(exc).split('(')[0].split(':')[0][:40]}")
        return
    event(f"accepted {img.format}")
    w, h = img.image.size
    assert img.image.mode == "RGB" and w > 0 and h > 0
    assert img.width * img.height <= MAX_PIXELS and max(img.width, img.height) / min(img.width, img.height) <= \
        MAX_ASPECT_RATIO
    assert w <= max(img.width, img.height) and h <= max(img.width, img.height)  # never larger than the original
    img.image.getpixel((w - 1, h - 1))  # the pixels are really there


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup", "zero"]))
        # Half the mutations hit the first 512 bytes, where headers (sizes, modes, offsets) live.
        # Most keep the magic number (else the sniffer alone answers): they start after byte 12.
        limit = min(len(data), 512) if draw(st.booleans()) else len(data)
        low = 0 if draw(st.integers(0, 9)) == 0 else min(12, max(limit - 1, 0))
        at = draw(st.integers(low, max(limit - 1, low)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            end = at + draw(st.integers(1, 4096)) if draw(st.booleans()) else len(data)  # a hole, or the tail
            del data[at:end]
            if not data:
                data = bytearray(b"\xff")
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "dup":
            span = bytes(data[at : at + draw(st.integers(1, 256))])
            data[at:at] = span * draw(st.integers(1, 8))
        else:
            n = draw(st.integers(1, 32))
            data[at : at + n] = b"\x00" * len(data[at : at + n])
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_real_images_are_decoded_or_rejected(data):
    check(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_are_rejected_or_decoded(data):
    check(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MAGIC), st.binary(max_size=1024))
def test_random_bytes_behind_a_real_magic_number(magic, tail):
    check(magic + tail)


def test_the_seeds_themselves_are_accepted():
    """Guard: the fuzzer starts from valid files (else it would only ever test rejection)."""
    for data in seeds():
        load_image(data, "seed", MAX_BYTES, 40_000_000)
