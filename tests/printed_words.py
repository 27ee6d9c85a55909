"""Photos with words printed on them, for the OCR tests and benchmark: (image, the words it carries).

The backgrounds are the sample photos (busy: leaves, water, fur, stars), scaled to fill a 1600 x 1067
picture. Each word is drawn in one of several DejaVu/Liberation fonts, 24 to 120 pixels tall, in a
colour that contrasts with what lies under it (sometimes on a plate, like a sign), turned by up to
5 degrees either way. Everything follows the seed: the same seed draws the same picture.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageStat

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"
SIZE = (1600, 1067)
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
)
# Words a sign, a label or a document carries: letters, and a few with digits.
VOCABULARY = tuple("""
bakery station exit invoice pharmacy museum library garden market harbour bridge castle coffee
pizza hotel taxi police airport ticket platform entrance closed open sale discount parking
hospital school theatre cinema gallery bicycle river mountain forest village street avenue
square north south east west central office bank post fresh bread cheese flowers books music
dance winter summer autumn spring morning evening welcome private danger caution stop slow
water fire lemon orange tomato apple garlic pepper salmon butter honey market farmers vintage
antiques repair laundry barber tailor bookshop station42 gate7 room101 route66 exit12 2024 1987
""".split())


@lru_cache(maxsize=None)
def _background(name: str) -> Image.Image:
    """A sample photo scaled and cropped to fill SIZE."""
    with Image.open(SAMPLES / name) as img:
        img = img.convert("RGB")
        scale = max(SIZE[0] / img.width, SIZE[1] / img.height)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    left, top = (img.width - SIZE[0]) // 2, (img.height - SIZE[1]) // 2
    return img.crop((left, top, left + SIZE[0], top + SIZE[1]))


def backgrounds() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.jpg"))


def _styled(word: str, rng: random.Random) -> str:
    return rng.choice((word.upper(), word.capitalize(), word.lower()))


def _contrasting(luma: float, rng: random.Random) -> tuple[int, int, int]:
    """A colour at least ~120 luminance levels away from `luma`."""
    dark = luma > 128
    for _ in range(100):
        colour = tuple(rng.randrange(0, 90) if dark else rng.randrange(170, 256) for _ in range(3))
        r, g, b = colour
        if abs(0.299 * r + 0.587 * g + 0.114 * b - luma) >= 120:
            return colour
    return (0, 0, 0) if dark else (255, 255, 255)


def _word_layer(word: str, font: ImageFont.FreeTypeFont, fill: tuple[int, int, int],
                plate: tuple[int, int, int] | None, angle: float) -> Image.Image:
    """The word alone on a transparent layer (on its plate when given), turned by `angle` degrees."""
    left, top, right, bottom = font.getbbox(word)
    pad = max(6, font.size // 4)
    layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if plate is not None:
        draw.rectangle((0, 0, layer.width - 1, layer.height - 1), fill=plate + (255,))
    draw.text((pad - left, pad - top), word, font=font, fill=fill + (255,))
    return layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def _overlaps(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], gap: int) -> bool:
    return any(box[0] < b[2] + gap and b[0] < box[2] + gap and box[1] < b[3] + gap and b[1] < box[3] + gap
               for b in taken)


def printed(seed: int, words: int = 6, min_px: int = 24, max_px: int = 120,
            background: str | None = None) -> tuple[Image.Image, list[str]]:
    """A 1600 x 1067 photo with `words` words printed on it, and those words as drawn (their case kept)."""
    rng = random.Random(seed)
    canvas = _background(background or rng.choice(backgrounds())).copy()
    taken: list[tuple[int, int, int, int]] = []
    drawn: list[str] = []
    for _ in range(words):
        word = _styled(rng.choice(VOCABULARY), rng)
        font = ImageFont.truetype(rng.choice(FONTS), rng.randint(min_px, max_px))
        on_plate = rng.random() < 0.4
        angle = rng.uniform(-5.0, 5.0)
        for _attempt in range(50):
            probe = _word_layer(word, font, (0, 0, 0), None, angle)
            if probe.width >= SIZE[0] or probe.height >= SIZE[1]:
                break
            x, y = rng.randrange(0, SIZE[0] - probe.width), rng.randrange(0, SIZE[1] - probe.height)
            box = (x, y, x + probe.width, y + probe.height)
            if _overlaps(box, taken, gap=font.size):
                continue
            luma = ImageStat.Stat(canvas.crop(box).convert("L")).mean[0]
            plate = _contrasting(255 - luma, rng) if on_plate else None
            fill = _contrasting(_luma(plate) if plate else luma, rng)
            canvas.paste(layer := _word_layer(word, font, fill, plate, angle), (x, y), layer)
            taken.append(box)
            drawn.append(word)
            break
    return canvas, drawn


def _luma(colour: tuple[int, int, int]) -> float:
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


def sign(word: str, size: tuple[int, int] = (1200, 800), background: str = "forest_path.jpg") -> Image.Image:
    """One big word on a plate over a sample photo: a shop sign."""
    canvas = _background(background).resize(size)
    font = ImageFont.truetype(FONTS[1], size[1] // 6)
    layer = _word_layer(word, font, (20, 20, 20), (240, 235, 220), 2.0)
    canvas.paste(layer, ((size[0] - layer.width) // 2, (size[1] - layer.height) // 2), layer)
    return canvas


def page_of_words(count: int, seed: int = 0, size: tuple[int, int] = (3000, 3000), px: int = 11) -> Image.Image:
    """A page crammed with up to `count` words `px` pixels tall (a photo of a document, or an attack on
    the OCR: 10,000 words fit the default page)."""
    rng = random.Random(seed)
    canvas = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(FONTS[0], px)
    step = round(px * 1.3)
    x = y = 2
    for _ in range(count):
        word = rng.choice(VOCABULARY)
        width = draw.textlength(word, font=font) + px // 2
        if x + width > size[0]:
            x, y = 2, y + step
        if y + step > size[1]:
            break
        draw.text((x, y), word, font=font, fill=(0, 0, 0))
        x += width
    return canvas
