"""When a cron trigger fires: a cron expression read in an IANA timezone (croniter + zoneinfo).
The scheduler plans with it; worker settings validate with it before a trigger is committed."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


def next_fire(cron: str, timezone: str | None, after: dt.datetime) -> dt.datetime:
    """The first fire time of `cron` strictly after `after`, evaluated in `timezone` (IANA; UTC
    when None), returned in UTC. Raises ValueError for a bad expression or zone."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc
    if not croniter.is_valid(cron):
        raise ValueError(f"invalid cron expression {cron!r}")
    local = after.astimezone(zone)
    nxt = croniter(cron, local).get_next(dt.datetime)
    return nxt.astimezone(dt.UTC)
