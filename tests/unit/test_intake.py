"""Intake: formats identified by content, every mode normalised to RGB, bad input refused clearly."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from images import encode, jpeg, picture, png
from visual_search.errors import RejectedImage
from visual_search.library.intake import WORK_SIZE, display_name, load_image, walk

MB = 1 << 20


def load(data: bytes, name: str = "x.jpg", max_bytes: int = 20 * MB, max_pixels: int = 40_000_000):
    return load_image(data, name, max_bytes, max_pixels)


@pytest.mark.parametrize(
    "fmt,kwargs,ext",
    [("JPEG", {}, ".jpg"), ("PNG", {}, ".png"), ("WEBP", {"lossless": True}, ".webp"), ("GIF", {}, ".gif"),
     ("BMP", {}, ".bmp"), ("TIFF", {}, ".tif")],
)
def test_every_accepted_format_decodes_to_rgb_whatever_the_name(fmt, kwargs, ext):
    data = encode(picture((40, 30)), fmt, **kwargs)
    img = load(data, name="misleading.txt")  # the extension is ignored; the content decides
    assert (img.format, img.ext) == (fmt, ext)
    assert img.image.mode == "RGB" and (img.width, img.height) == (40, 30)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "1", "I;16"])
def test_modes_are_normalised_to_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    img = load(encode(picture((20, 10), mode="RGB").convert(mode), fmt))
    assert img.image.mode == "RGB" and img.image.size == (20, 10)


def test_transparency_is_flattened_onto_white():
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert load(encode(clear, "PNG")).image.getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    data = encode(Image.fromarray(arr), "PNG")
    r, g, b = load(data).image.getpixel((0, 0))
    assert 120 <= r <= 135 and r == g == b


def test_exif_orientation_is_applied():
    img = picture((60, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    loaded = load(encode(img, "JPEG", exif=exif.tobytes()))
    assert (loaded.width, loaded.height) == (20, 60)


def test_gif_takes_the_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r, g, b = load(buf.getvalue()).image.getpixel((5, 5))
    assert r > 200 and b < 50


def test_id_is_content_hash_and_name_does_not_matter():
    data = jpeg(1)
    assert load(data, "a.jpg").id == load(data, "b.png").id == hashlib.sha256(data).hexdigest() != load(jpeg(2)).id


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"hello, this is just some text\n" * 3, "text file"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"\x00\x01\x02\x03garbage\xff" * 10, "not a known image format"),
        (jpeg(3)[:200], "corrupt or truncated"),
        (png(3)[:120], "corrupt or truncated"),
        (_png_header_only(100_000, 100_000), "megapixels"),
        (_png_header_only(1, 100_000), "too elongated"),
    ],
    ids=["empty", "text", "html", "pdf", "svg", "binary", "truncated-jpeg", "truncated-png", "bomb", "absurd"],
)
def test_bad_input_is_refused_with_a_message(data, message):
    with pytest.raises(RejectedImage, match=message):
        load(data)


def test_png_with_bad_crc_is_refused():
    data = bytearray(png(4))
    data[30] ^= 0xFF  # IHDR's checksum no longer matches
    with pytest.raises(RejectedImage, match="PNG file is corrupt or truncated"):
        load(bytes(data))


def test_size_and_pixel_limits_are_configurable():
    data = jpeg(5, size=(100, 100))
    with pytest.raises(RejectedImage, match="limit is 0 MB"):
        load(data, max_bytes=100)
    with pytest.raises(RejectedImage, match="megapixels"):
        load(data, max_pixels=5_000)


def test_display_name_strips_folders_and_control_characters():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("a\x00b\nc.jpg") == "abc.jpg"
    assert display_name("C:\\Users\\x\\cat.png") == "cat.png"
    assert len(display_name("é" * 300 + ".jpg")) == 200


def test_walk_recurses_sorted_and_does_not_follow_links_outside(tmp_path):
    root = tmp_path / "photos"
    (root / "b").mkdir(parents=True)
    (root / "b" / "2.jpg").write_bytes(jpeg(1))
    (root / "1.jpg").write_bytes(jpeg(2))
    (root / ".hidden.jpg").write_bytes(jpeg(3))
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg(4))
    (root / "link.jpg").symlink_to(outside)
    walked = walk([root, tmp_path / "missing"])
    assert [p.name for p, _ in walked] == ["1.jpg", "link.jpg", "2.jpg", "missing"]  # files, then subfolders
    found = {p.name: problem for p, problem in walked}
    assert found["1.jpg"] is None and found["2.jpg"] is None
    assert "outside" in found["link.jpg"]
    assert found["missing"] == "no such file or folder"
    assert ".hidden.jpg" not in found


# ---- decoded once, at the size the work needs ----------------------------------------------------
def smooth_photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Gradients and blocks of colour: a JPEG of it is small and quick to make, unlike random pixels."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 255 // w), (y * 255 // h), np.full_like(x, int(rng.integers(0, 256)))], axis=-1)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - w // 4)), int(rng.integers(0, h - h // 4))
        img.paste(tuple(int(v) for v in rng.integers(0, 256, 3)), (x0, y0, x0 + w // 4, y0 + h // 4))
    return img


def test_a_large_jpeg_is_decoded_small_but_keeps_its_original_size():
    data = encode(smooth_photo((3200, 2400)), "JPEG", quality=90)
    img = load(data)
    assert (img.width, img.height) == (3200, 2400)  # the record's size: the original's
    assert img.image.size == (800, 600) and img.image.mode == "RGB"  # DCT-scaled to 1/4
    assert min(img.image.size) >= WORK_SIZE and img.data == data
    assert type(img.image) is Image.Image and img.image.info == {}  # a plain bitmap, detached from the file


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_other_large_formats_are_shrunk_by_a_whole_factor(fmt):
    img = load(encode(smooth_photo((2000, 1000)), fmt))
    assert (img.width, img.height) == (2000, 1000) and img.image.size == (1000, 500)


def test_a_small_image_is_kept_at_its_size():
    img = load(encode(smooth_photo((500, 400)), "JPEG"))
    assert img.image.size == (img.width, img.height) == (500, 400)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_large_rotated_jpeg_comes_out_upright_with_the_upright_size(orientation):
    upright = Image.new("RGB", (1600, 800), (255, 0, 0))  # red right half
    upright.paste((0, 0, 255), (0, 0, 800, 800))  # blue left half
    upright.paste((0, 255, 0), (0, 0, 1600, 160))  # green band at the top
    stored = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    img = load(encode(upright if stored is None else upright.transpose(stored), "JPEG", exif=exif.tobytes()))
    assert (img.width, img.height) == (1600, 800) and img.image.size == (800, 400)
    px = img.image.getpixel
    assert px((100, 300))[2] > 200 and px((700, 300))[0] > 200 and px((400, 20))[1] > 200


def test_a_truncated_large_jpeg_is_refused_even_decoded_small():
    data = encode(smooth_photo((3200, 2400)), "JPEG", quality=90)
    with pytest.raises(RejectedImage, match="JPEG file is corrupt or truncated"):
        load(data[: len(data) * 2 // 3])


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims another size."""
    data = bytearray(encode(smooth_photo((64, 48)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_a_jpeg_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(RejectedImage, match="12000 x 9000 = 108 megapixels; the limit is 40 megapixels"):
        load(_jpeg_claiming(12000, 9000))  # 1/8 of it (1500 x 1125) would fit: the original's size counts


def test_the_models_inputs_from_the_small_decode_match_those_from_the_full_one():
    """BLIP squashes each picture to 384 x 384 and CLIP crops 224 x 224: from the working bitmap they see
    what they saw from the full decode, to well under one grey level on average."""
    import open_clip
    from transformers import BlipImageProcessor

    photo = Image.open(SAMPLES / "cat.jpg").convert("RGB").resize((3200, 2400), Image.Resampling.LANCZOS)
    data = encode(photo, "JPEG", quality=92)
    with Image.open(io.BytesIO(data)) as full:
        full = full.convert("RGB")
    work = load(data).image
    blip = BlipImageProcessor(size={"height": 384, "width": 384})
    clip = open_clip.image_transform(224, is_train=False)
    for model_input in (lambda im: blip(images=[im], return_tensors="np")["pixel_values"][0],
                        lambda im: clip(im).numpy()):
        diff = np.abs(model_input(work) - model_input(full))  # normalised units: ~0.015 per grey level
        assert diff.mean() < 0.01 and diff.max() < 0.2


# ---- Netpbm ----------------------------------------------------------------------------------------
NETPBM_PLAIN = {
    "P1": b"P1\n# a 3 x 2 bitmap\n3 2\n1 0 1\n0 1 0\n",
    "P2": b"P2\n3 2\n255\n0 128 255\n255 128 0\n",
    "P3": b"P3 3 2 255\n255 0 0  0 255 0  0 0 255\n0 0 0  128 128 128  255 255 255\n",
}


@pytest.mark.parametrize("magic,ext", [("P1", ".pbm"), ("P2", ".pgm"), ("P3", ".ppm"), ("P4", ".pbm"),
                                       ("P5", ".pgm"), ("P6", ".ppm")])
def test_netpbm_files_are_read(magic, ext):
    if magic in NETPBM_PLAIN:
        data = NETPBM_PLAIN[magic]
    else:
        mode = {"P4": "1", "P5": "L", "P6": "RGB"}[magic]
        data = encode(picture((3, 2)).convert(mode), "PPM")
        assert data.startswith(magic.encode())
    img = load(data, name="scan.pnm")
    assert (img.format, img.ext, img.image.mode, img.width, img.height) == ("PPM", ext, "RGB", 3, 2)
    if magic == "P1":  # 1 is black in a PBM
        assert img.image.getpixel((0, 0)) == (0, 0, 0) and img.image.getpixel((1, 0)) == (255, 255, 255)
    if magic == "P3":
        assert img.image.getpixel((1, 0)) == (0, 255, 0) and img.image.getpixel((1, 1)) == (128, 128, 128)


def test_a_large_netpbm_is_shrunk_like_any_other():
    img = load(encode(smooth_photo((1600, 800)), "PPM"), name="scan.ppm")
    assert (img.width, img.height, img.image.size) == (1600, 800, (800, 400))


@pytest.mark.parametrize("text", [b"P1 is the first point of the plan\n", b"P6\nnot a size\n", b"P7\n3 2\n"])
def test_text_that_starts_like_netpbm_is_still_text(text):
    with pytest.raises(RejectedImage, match="text file"):
        load(text)


def test_a_truncated_netpbm_is_refused():
    data = encode(picture((40, 30)), "PPM")
    with pytest.raises(RejectedImage, match="PPM file is corrupt or truncated"):
        load(data[:-100])
