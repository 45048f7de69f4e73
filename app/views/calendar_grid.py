"""The calendar's grid: rows of time slots, one column per doctor (day) or per day (week).

Pure layout, no database: the calendar view hands in each column's working intervals, its
free slots and its appointments, and gets back a table whose cells span rows (an appointment
of 45 minutes covers three 15-minute rows). Everything here is in the branch's local time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from app.models.scheduling import RELEASED_STATUSES

#: Minutes per row of the grid.
SLOT_MIN = 15
#: The hours shown when nobody works and nothing is booked (a holiday, a Sunday).
DEFAULT_HOURS = (9, 17)


def as_utc(when: datetime) -> datetime:
    """An aware datetime; SQLite hands back naive ones, which are stored UTC."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def local(when: datetime, tz: ZoneInfo) -> datetime:
    return as_utc(when).astimezone(tz)


def _minutes(moment: datetime, day: date) -> int:
    """Minutes from the local midnight starting ``day`` (negative before it, > 1440 after)."""
    return (moment.date() - day).days * 1440 + moment.hour * 60 + moment.minute


@dataclass
class Off:
    """Why a doctor cannot be booked in a stretch of a column."""

    kind: str  # "closed" (holiday), "leave", "break", "off" (outside working hours)
    label: str


@dataclass
class Cell:
    """One table cell: a stretch of ``rows`` slots starting at ``starts`` (local)."""

    kind: str  # "booked" (appointments), "free", "unavailable" or "off"
    starts: datetime
    rows: int = 1
    items: list[Any] = field(default_factory=list)
    off: Off | None = None
    book_url: str | None = None

    @property
    def ends(self) -> datetime:
        return self.starts + timedelta(minutes=SLOT_MIN * self.rows)


@dataclass
class ColumnSpec:
    """What the view knows about one column before layout."""

    key: str
    heading: str
    subheading: str
    doctor: Any
    day: date
    intervals: list[tuple[time, time]]
    is_on_leave: bool
    holiday: str | None
    free: set[datetime]
    appointments: list[Any]
    is_today: bool = False


@dataclass
class Column:
    spec: ColumnSpec
    cells: list[Cell | None]  # one entry per row: a cell starting there, or None (spanned)
    off_label: str | None = None  # the whole column is off (leave, holiday, not working)


@dataclass
class Grid:
    times: list[time]
    columns: list[Column]

    def rows(self) -> Iterable[tuple[time, list[Cell | None]]]:
        for index, moment in enumerate(self.times):
            yield moment, [column.cells[index] for column in self.columns]


def _row_range(specs: list[ColumnSpec], tz: ZoneInfo) -> tuple[int, int]:
    """First and last minute (whole hours) the grid must show for every column."""
    starts, ends = [], []
    for spec in specs:
        for begin, end in spec.intervals:
            starts.append(begin.hour * 60 + begin.minute)
            ends.append(end.hour * 60 + end.minute)
        for appointment in spec.appointments:
            begin = max(0, _minutes(local(appointment.starts_at, tz), spec.day))
            end = min(1440, _minutes(local(appointment.ends_at, tz), spec.day))
            if begin < 1440 and end > 0:
                starts.append(begin)
                ends.append(end)
    if not starts:
        return DEFAULT_HOURS[0] * 60, DEFAULT_HOURS[1] * 60
    first = min(starts) // 60 * 60
    last = min(1440, -(-max(ends) // 60) * 60)
    return first, max(last, first + 60)


def _off_for(spec: ColumnSpec, minute: int, labels: dict[str, str]) -> Off | None:
    """Why the slot starting ``minute`` is outside the doctor's time, or None inside it."""
    if spec.holiday:
        return Off("closed", labels["closed"] % {"name": spec.holiday})
    if spec.is_on_leave:
        return Off("leave", labels["leave"])
    bounds = [(b.hour * 60 + b.minute, e.hour * 60 + e.minute) for b, e in spec.intervals]
    if any(begin <= minute < end for begin, end in bounds):
        return None
    if bounds and min(b for b, _ in bounds) <= minute < max(e for _, e in bounds):
        return Off("break", labels["break"])
    return Off("off", labels["off"])


def build_column(
    spec: ColumnSpec,
    first_minute: int,
    row_count: int,
    tz: ZoneInfo,
    labels: dict[str, str],
    book_url: Callable[[ColumnSpec, datetime], str | None],
) -> Column:
    """Lay out one column: appointment blocks, free slots, unavailable and off stretches."""

    def slot_start(row: int) -> datetime:
        minute = first_minute + row * SLOT_MIN
        return datetime.combine(spec.day, time(minute // 60, minute % 60), tzinfo=tz)

    def row_of(moment: datetime) -> int:
        return (_minutes(local(moment, tz), spec.day) - first_minute) // SLOT_MIN

    live, released = [], []
    for appointment in sorted(spec.appointments, key=lambda a: (as_utc(a.starts_at), a.id)):
        (released if appointment.status in RELEASED_STATUSES else live).append(appointment)

    # Overlapping live appointments (rare: only a slot edge shared) share one block.
    blocks: list[list[Any]] = []  # [start_row, end_row, items]
    for appointment in live:
        start = max(0, row_of(appointment.starts_at))
        end_minute = _minutes(local(appointment.ends_at, tz), spec.day) - first_minute
        end = min(row_count, max(start + 1, -(-end_minute // SLOT_MIN)))
        if start >= row_count:
            continue
        if blocks and start < blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], end)
            blocks[-1][2].append(appointment)
        else:
            blocks.append([start, end, [appointment]])

    cells: list[Cell | None] = [None] * row_count
    covered = [False] * row_count
    for start, end, items in blocks:
        cells[start] = Cell("booked", slot_start(start), end - start, list(items))
        for row in range(start, end):
            covered[row] = True

    row = 0
    while row < row_count:
        if covered[row]:
            row += 1
            continue
        moment = slot_start(row)
        off = _off_for(spec, first_minute + row * SLOT_MIN, labels)
        if off is None and moment in spec.free:
            cells[row] = Cell("free", moment, book_url=book_url(spec, moment))
            row += 1
            continue
        kind = "off" if off else "unavailable"
        run = 1
        while row + run < row_count and not covered[row + run]:
            following = _off_for(spec, first_minute + (row + run) * SLOT_MIN, labels)
            if (following is None) != (off is None) or (off and following.label != off.label):
                break
            if following is None and slot_start(row + run) in spec.free:
                break
            run += 1
        cells[row] = Cell(kind, moment, run, off=off)
        row += run

    # Cancelled and no-show appointments free their time: shown small in the slot they held.
    for appointment in released:
        index = min(max(0, row_of(appointment.starts_at)), row_count - 1)
        while cells[index] is None:
            index -= 1
        cells[index].items.append(appointment)

    whole_off = None
    if spec.holiday or spec.is_on_leave or not spec.intervals:
        whole_off = _off_for(spec, -1, labels).label
    return Column(spec, cells, whole_off)


def build_grid(
    specs: list[ColumnSpec],
    tz: ZoneInfo,
    labels: dict[str, str],
    book_url: Callable[[ColumnSpec, datetime], str | None],
) -> Grid:
    """The whole table: the hours every column needs, each column laid out over them."""
    first, last = _row_range(specs, tz)
    row_count = (last - first) // SLOT_MIN
    times = [
        time((first + i * SLOT_MIN) // 60, (first + i * SLOT_MIN) % 60) for i in range(row_count)
    ]
    columns = [build_column(spec, first, row_count, tz, labels, book_url) for spec in specs]
    return Grid(times, columns)
