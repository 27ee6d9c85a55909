"""A GPS position -> a place name a person searches for ("Intendente, Lisbon, Portugal"), offline.

`reverse_geocode` (GeoNames places of 1,000+ people, 3.4 MB in the wheel) answers from a k-d tree
built on its first call (~0.5 s), so it is loaded lazily, once per process, under a lock: indexing
reads files on a few threads. A position farther than MAX_PLACE_KM from any place (at sea, on an
ice cap) gets no name rather than a wrong one.
"""

from __future__ import annotations

import math
import threading

MAX_PLACE_KM = 100.0  # the nearest named place farther than this is not where the photo was taken
_EARTH_KM = 6371.0
_lock = threading.Lock()


def place_name(latitude: float, longitude: float) -> str:
    """'city, region, country' of the nearest named place, parts that repeat said once; '' if none is near."""
    import reverse_geocode

    with _lock:  # the first call builds the tree; its Singleton is not thread-safe
        found = dict(reverse_geocode.search([(latitude, longitude)])[0])  # a copy: the package shares its dicts
    near = float(found.get("latitude", 0)), float(found.get("longitude", 0))
    if distance_km(latitude, longitude, *near) > MAX_PLACE_KM:
        return ""
    parts = [str(found.get(key) or "").strip() for key in ("city", "state", "country")]
    return ", ".join(dict.fromkeys(p for p in parts if p))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))
