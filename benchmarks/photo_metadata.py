"""Photo metadata benchmark: what reading a file's EXIF, GPS place, IPTC and XMP (library/metadata.py)
adds to indexing one photo, side by side with the intake's decode of the same bytes, and how fast a
backfill reads stored originals again (bytes from disk + metadata, no model).

The photos are generated 4000 x 3000 JPEGs (smooth shapes, sensor-like noise, quality 92) carrying
EXIF with a date, an offset and GPS, and an XMP packet with a title and keywords, as a phone's photo
edited in Lightroom does. The first call also loads the offline place names (reverse-geocode's
k-d tree): printed apart, it is paid once per process.

    python benchmarks/photo_metadata.py          # 12 photos
    python benchmarks/photo_metadata.py -n 30 --json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from photo_files import exif, xmp  # noqa: E402
from visual_search.library.intake import load_image  # noqa: E402
from visual_search.library.metadata import read_metadata  # noqa: E402


def photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((4000, 3000), Image.BICUBIC)
    noisy = np.asarray(base.filter(ImageFilter.GaussianBlur(8)), np.int16) + rng.normal(0, 4, (3000, 4000, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=92,
        exif=exif(taken=f"2019:07:{1 + seed % 28:02d} 18:30:00", offset="+01:00",
                  position=(38.72 + seed * 0.01, -9.14), make=b"Canon", model=b"Canon EOS R5"),
        xmp=xmp(title=f"Photo {seed}", subjects=("tram", "Lisbon", f"roll {seed}")))
    return buf.getvalue()


def per_photo_ms(fn, items) -> float:
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    photos = [photo(i) for i in range(args.n)]
    t0 = time.perf_counter()
    read_metadata(photos[0])
    first = (time.perf_counter() - t0) * 1000
    decode = per_photo_ms(lambda d: load_image(d, "p.jpg", 50 << 20, 100_000_000), photos)
    meta = per_photo_ms(read_metadata, photos)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{i}.jpg" for i in range(args.n)]
        for path, data in zip(paths, photos):
            path.write_bytes(data)
        backfill = per_photo_ms(lambda p: read_metadata(p.read_bytes()), paths)
    figures = {"photos": args.n, "mb_per_photo": round(sum(map(len, photos)) / len(photos) / 2**20, 2),
               "first_call_ms": round(first, 1), "intake_decode_ms": round(decode, 2),
               "metadata_ms": round(meta, 2), "metadata_to_decode": round(meta / decode, 3),
               "backfill_ms_per_photo": round(backfill, 2), "backfill_photos_per_s": round(1000 / backfill)}
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.n} photos, {figures['mb_per_photo']} MB each (4000 x 3000 JPEG, EXIF + GPS + XMP)")
    print(f"first call (loads the place names once): {first:.0f} ms")
    print(f"per photo, median: intake decode {decode:.1f} ms | metadata {meta:.2f} ms "
          f"(x{meta / decode:.3f} of the decode)")
    print(f"backfill (read the stored file + metadata): {backfill:.2f} ms per photo, "
          f"~{1000 / backfill:.0f} photos/s")


if __name__ == "__main__":
    main()
