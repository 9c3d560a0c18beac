"""The one clock: every timestamp the domain writes or compares comes from here.

Tests drive it with :func:`use` (a fixed or moving source); production reads the system clock.
The table's timestamp format is UTC with milliseconds and a ``Z``: ``2026-12-02T17:39:46.123Z``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


def _system() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system


def now() -> datetime:
    return _source()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(now())


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def scheduled(event: object) -> datetime:
    """The moment a scheduled run is for: its EventBridge event's ``time`` (so a run retried or
    started by hand for a moment acts as of that moment), else now."""
    if isinstance(event, dict) and event.get("time"):
        return parse_iso(str(event["time"]))
    return now()


@contextmanager
def use(source: Callable[[], datetime]) -> Iterator[None]:
    """Read time from ``source`` inside the block (tests)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
