"""Light tiles: each indexed image gets a small WebP at index time, remade from the original if lost,
removed with the image."""

from __future__ import annotations

from PIL import Image

from images import encode, picture


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
