"""Light tiles: each indexed image gets a small WebP at index time, remade from the original if lost,
removed with the image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from conftest import SAMPLES
from images import encode, picture
from visual_search.library import thumbnails
from visual_search.library.intake import WORK_SIZE, load_image
from visual_search.library.thumbnails import fitted, make, shrink


def test_an_indexed_phone_photo_gets_a_small_upright_thumbnail(engine, tmp_path):
    photo = picture((4000, 3000), seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the picture is 3000 wide x 4000 high upright
    path = tmp_path / "phone.jpg"
    path.write_bytes(encode(photo, "JPEG", quality=92, exif=exif))
    added = engine.index_paths([path]).added[0]
    record = engine.get(added.id)
    thumb = engine.thumbnail(record)
    with Image.open(thumb) as small:
        assert small.format == "WEBP" and max(small.size) == 384
        assert small.size == (288, 384)  # upright, like the record (3000 x 4000)
    assert (record.width, record.height) == (3000, 4000)
    assert thumb.stat().st_size < path.stat().st_size / 20

    thumb.unlink()  # lost (or made before thumbnails existed): remade from the stored original
    assert engine.thumbnail(record).exists()
    engine.remove(record.id)
    assert not thumb.exists()


def test_thumbnail_sizes():
    assert thumbnails.SIZE <= WORK_SIZE  # the intake's working bitmap is never enlarged for a tile
    assert fitted((1000, 750)) == (384, 288) and fitted((750, 1000)) == (288, 384)
    assert fitted((300, 200)) == (300, 200) and fitted((5000, 200)) == (384, 15) and fitted((384, 384)) == (384, 384)


def test_a_thumbnail_from_the_working_bitmap_looks_like_one_from_the_full_decode():
    photo = Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
    data = encode(photo, "JPEG", quality=92)
    with Image.open(io.BytesIO(data)) as full:
        full = full.convert("RGB")
    work = load_image(data, "a.jpg", 1 << 26, 10**8).image
    assert work.size == (1000, 750)
    small, reference = shrink(work), full.copy()
    reference.thumbnail((384, 384), Image.Resampling.LANCZOS)  # the tile as it was made before
    assert small.size == reference.size == (384, 288)
    mse = np.mean((np.asarray(small, np.float64) - np.asarray(reference, np.float64)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 40  # dB: no visible difference
    with Image.open(io.BytesIO(make(work))) as tile:
        assert (tile.format, tile.size) == ("WEBP", (384, 288))
