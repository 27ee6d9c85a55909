"""ISO 8601 times, read one way everywhere: a naive time is UTC, an unreadable one is None."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_iso(text: object) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def timestamp(iso: object) -> int:
    """Seconds since the epoch (what the store keeps to filter by date); 0 if unreadable."""
    value = parse_iso(iso)
    return int(value.timestamp()) if value else 0


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
