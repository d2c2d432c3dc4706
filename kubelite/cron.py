"""CronJob schedules: what Kubernetes accepts in `spec.schedule`, and the times it names.

The one idea: a schedule is parsed once into a Schedule that answers "the next
start after t" in the CronJob's time zone, and the controller's question, "which
start times were missed between the last one and now", is answered from it
with Kubernetes' cap of 100 (more than that is reported, not replayed).

Kubernetes parses schedules with robfig/cron's standard parser: five fields
(minute, hour, day of month, month, day of week), names for months and days,
and the macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
`@midnight` and `@hourly`. The field arithmetic comes from croniter, the
well-kept Python cron library (day-of-month and day-of-week are ORed when both
are restricted, as in robfig and Vixie cron). `TZ=`/`CRON_TZ=` prefixes are
refused, as the apiserver refuses them: the time zone is `spec.timeZone`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: More missed start times than this are not counted one by one (Kubernetes' limit).
MAX_MISSED = 100


class ScheduleError(ValueError):
    """A schedule or time zone the apiserver must refuse; str() is the reason."""


def time_zone(name: str | None) -> tzinfo:
    """The IANA zone of spec.timeZone (None: the controller's local zone, UTC here)."""
    if not name:
        return UTC
    if name.startswith(("/", ".")) or ".." in name or name != name.strip():
        raise ScheduleError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name}") from None


@dataclass(frozen=True)
class Schedule:
    expression: str  # five fields, macros expanded
    zone: tzinfo

    def next_after(self, t: float) -> float:
        """The first start time strictly after t (seconds since the epoch)."""
        start = datetime.fromtimestamp(t, self.zone)
        return float(croniter(self.expression, start).get_next(float))

    def prev_at_or_before(self, t: float) -> float:
        """The last start time at or before t."""
        nxt = self.next_after(t)
        start = datetime.fromtimestamp(nxt, self.zone)
        return float(croniter(self.expression, start).get_prev(float))


def parse(schedule: str, zone: str | None = None) -> Schedule:
    """The Schedule of a spec.schedule and spec.timeZone, or ScheduleError."""
    text = " ".join(str(schedule).split())
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    expression = MACROS.get(text.lower(), text)
    if expression.startswith("@"):
        raise ScheduleError(f"unrecognized descriptor: {text}")
    fields = expression.split(" ")
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    if not croniter.is_valid(expression):
        raise ScheduleError(f"unparseable schedule: {text}")
    return Schedule(expression, time_zone(zone))


def missed_start_times(schedule: Schedule, earliest: float, now: float
                       ) -> tuple[float | None, int]:
    """(the most recent start time in (earliest, now], how many there were).

    Past MAX_MISSED the count is estimated rather than walked: the caller only
    needs to know that it is more than the limit (Kubernetes' mostRecentScheduleTime).
    """
    t = schedule.next_after(earliest)
    if t > now:
        return None, 0
    count, last = 0, t
    while t <= now and count <= MAX_MISSED:
        last, count = t, count + 1
        t = schedule.next_after(t)
    if count > MAX_MISSED:
        # Too many to walk: the last one directly, and the count as if the schedule's
        # first interval repeated (Kubernetes' estimate, good enough for the warning).
        first = schedule.next_after(earliest)
        interval = schedule.next_after(first) - first
        last = schedule.prev_at_or_before(now)
        count = max(count, int((now - first) // interval) + 1 if interval > 0 else count)
    return last, count


def job_name(cronjob: str, scheduled: float) -> str:
    """`<cronjob>-<scheduled time in minutes since the epoch>`, as Kubernetes names it."""
    return f"{cronjob}-{int(scheduled // 60)}"


__all__ = ["MACROS", "MAX_MISSED", "Schedule", "ScheduleError", "job_name",
           "missed_start_times", "parse", "time_zone"]
