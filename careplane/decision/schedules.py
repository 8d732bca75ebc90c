"""Schedule floors: recurring windows (clinic hours, nightly batch) with a replica floor.

A window is active at ``now`` when the latest cron start at or before ``now``
(in the schedule's IANA time zone) is less than ``durationSeconds`` ago. croniter
does the cron arithmetic and zoneinfo the daylight-saving rules, so "07:00
Monday to Friday in America/Chicago" stays 07:00 local across DST changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from careplane.policy import Schedule


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def window_active(schedule: Schedule, now: float) -> bool:
    """Whether ``now`` (epoch seconds) lies inside one of the schedule's windows."""
    local_now = datetime.fromtimestamp(now, tz=UTC).astimezone(_zone(schedule.timezone))
    it = croniter(schedule.cron, local_now.replace(microsecond=0))
    start = it.get_prev(datetime)
    if local_now.second == 0 and croniter.match(schedule.cron, local_now):
        start = local_now  # get_prev is strict: a window starting exactly now counts
    return (local_now - start).total_seconds() < schedule.durationSeconds


def schedule_floor(schedules: list[Schedule], now: float) -> tuple[int, Schedule | None]:
    """The highest ``minReplicas`` among the windows active at ``now`` (0 and None when none is)."""
    best, which = 0, None
    for schedule in schedules:
        if schedule.minReplicas > best and window_active(schedule, now):
            best, which = schedule.minReplicas, schedule
    return best, which
