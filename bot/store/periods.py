"""Quota periods: where the current daily, weekly or monthly period starts and ends (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.errors import InvalidRequest

# The quota periods, declared once (settings, the CLI and the store check against this).
from bot.settings import PERIODS  # declared once, with the setting that names them

PERIOD_WORDS = dict(zip(PERIODS, ("today", "this week", "this month"), strict=True))


def check_period(period: str) -> str:
    """`period` if it is one of PERIODS; otherwise one sentence naming the choices."""
    if period not in PERIODS:
        choices = f"{', '.join(PERIODS[:-1])} or {PERIODS[-1]}"
        raise InvalidRequest(f"The period must be {choices}, not {period!r}.")
    return period


def utc(dt: datetime | None = None) -> datetime:
    """Return `dt` (or now) as an aware UTC datetime; naive datetimes are taken as UTC."""
    if dt is None:
        return datetime.now(UTC)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    """Fixed-width ISO text, so that timestamps stored as TEXT sort and compare correctly."""
    if dt.tzinfo is not UTC:
        dt = utc(dt)
    return dt.isoformat(timespec="microseconds")


def parse_iso(text: str | None) -> datetime | None:
    """Inverse of :func:`iso`; None stays None."""
    return None if text is None else datetime.fromisoformat(text)


def _add_month(dt: datetime) -> datetime:
    year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
    return dt.replace(year=year, month=month)


def period_bounds(period: str, reset_hour: int, now: datetime) -> tuple[datetime, datetime]:
    """Start (inclusive) and end (exclusive) of the period containing `now`."""
    now = utc(now)
    if period == "daily":
        start = now.replace(hour=reset_hour, minute=0, second=0, microsecond=0)
        if start > now:
            start -= timedelta(days=1)
        return start, start + timedelta(days=1)
    if period == "weekly":
        # Weeks start on Monday at the reset hour.
        day = now.replace(hour=reset_hour, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=now.weekday())
        if start > now:
            start -= timedelta(days=7)
        return start, start + timedelta(days=7)
    if period == "monthly":
        start = now.replace(day=1, hour=reset_hour, minute=0, second=0, microsecond=0)
        if start > now:
            prev = start - timedelta(days=1)
            start = prev.replace(day=1)
        return start, _add_month(start)
    check_period(period)
    raise AssertionError(f"period_bounds has no rule for {period!r}")
