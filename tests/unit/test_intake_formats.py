"""Phone photos and messy folders: AVIF and HEIC with every EXIF orientation come out upright; a folder's
README, .DS_Store, .xmp sidecar and video are skipped (exit 0), while a non-image named outright still fails."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from images import jpeg
from visual_search.cli import main
from visual_search.library.intake import is_image_kind, load_image

# The transpose that, applied to an upright picture, gives the pixels a camera stores with EXIF orientation n.
STORED_AS = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
             7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def upright() -> Image.Image:
    """60 x 30: blue left half, red right half, a green band at the top."""
    img = Image.new("RGB", (60, 30), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 30, 30))
    img.paste((0, 255, 0), (0, 0, 60, 6))
    return img


def photo(fmt: str, orientation: int) -> bytes:
    pixels = upright() if STORED_AS[orientation] is None else upright().transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    pixels.save(buf, fmt, exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def _close(a: tuple, b: tuple) -> bool:
    return all(abs(x - y) < 40 for x, y in zip(a, b))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt,ext", [("AVIF", ".avif"), ("HEIF", ".heic")])
def test_avif_and_heic_come_out_upright(fmt, ext, orientation):
    img = load_image(photo(fmt, orientation), f"phone{ext}", 1 << 26, 1 << 26)
    assert (img.format, img.ext, img.image.size) == (fmt, ext, (60, 30))
    px = img.image.getpixel
    assert _close(px((10, 20)), (0, 0, 255)) and _close(px((50, 20)), (255, 0, 0)) and _close(px((30, 2)), (0, 255, 0))


def test_a_video_is_not_an_image_but_a_heic_is():
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
    assert not is_image_kind(mp4) and is_image_kind(photo("HEIF", 1)) and is_image_kind(photo("AVIF", 1))
    assert is_image_kind(b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>")  # refused, not skipped


def test_a_folder_of_mixed_files_indexes_its_images_and_skips_the_rest(settings, tmp_path, capsys):
    folder = tmp_path / "DCIM"
    folder.mkdir()
    (folder / "IMG_0001.jpg").write_bytes(jpeg(1))
    (folder / "IMG_0002.HEIC").write_bytes(photo("HEIF", 6))
    (folder / "IMG_0003.avif").write_bytes(photo("AVIF", 3))
    (folder / "README.md").write_text("# Holiday\nphotos from the trip\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 60)
    (folder / "IMG_0001.xmp").write_text('<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>')
    (folder / "IMG_0004.MOV").write_bytes(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + b"\x00" * 64)
    code = main(["index", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and not report["failed"] and len(report["added"]) == 3
    skipped = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in report["skipped"]}
    assert skipped == {".DS_Store": "hidden file", "README.md": "it is a text file",
                       "IMG_0001.xmp": "it is a text file", "IMG_0004.MOV": "it is a video or other media file"}
    code = main(["index", str(folder)])
    out = capsys.readouterr().out
    assert code == 0 and "0 added, 3 duplicates, 0 rejected, 4 skipped (not images)" in out

    code = main(["index", str(folder / "README.md"), "--json"])  # named outright: the user meant it
    report = json.loads(capsys.readouterr().out)
    assert code == 2 and report["failed"][0]["error"].startswith("not a supported image: it is a text file")
    assert report["skipped"] == []


def test_a_folder_of_netpbm_scans_is_indexed(settings, tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, (name, mode) in enumerate([("page.pbm", "1"), ("page.pgm", "L"), ("page.ppm", "RGB"), ("page.pnm", "RGB")]):
        buf = io.BytesIO()
        Image.effect_noise((48, 32), 40 + i).convert(mode).save(buf, "PPM")
        (folder / name).write_bytes(buf.getvalue())
    (folder / "plain.pbm").write_bytes(b"P1\n# plain\n4 2\n1 0 1 0\n0 1 0 1\n")
    code = main(["index", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and not report["failed"] and not report["skipped"] and len(report["added"]) == 5
